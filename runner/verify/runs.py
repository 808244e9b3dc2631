"""Sandboxed pytest runs: the suite in one tree, and re-runs of chosen tests."""

from __future__ import annotations

import json
import shlex
import threading
from pathlib import Path

from runner.common.files import read_regular
from runner.config import Settings
from runner.core.harnessresults import grade_harness
from runner.core.suite import PYTEST_JUNIT_ARGS
from runner.models import (
    Mount,
    RunResult,
    RunSpec,
    SuiteRun,
)
from runner.verify.deadlines import with_stop_reason
from runner.verify.harness import HARNESS_SOURCE, MOUNT, PLUGIN
from runner.verify.job import Job
from runner.verify.jobfolder import (
    harness_dir,
    keep_log,
    read_harness,
    read_junit,
    results_dir,
)
from runner.verify.runtime import Runtime

WORK = "/work"
RESULTS = "/results"
HARNESS = "/fixrunner"
# pytest as both trees run it: outcomes from the runner's own plugin (loaded before any
# project code), JUnit for users beside it, no random order, plain output.
PYTEST_ARGS = [
    "-p",
    PLUGIN,
    *PYTEST_JUNIT_ARGS,
    "-p",
    "no:randomly",
    "--color=no",
    "-q",
    "-rfE",
    "--tb=short",
]
# The plugin's folder is on PYTHONPATH (before site-packages); the tree is not on sys.path
# through the working directory (``python -P``), so neither pytest nor the plugin can be
# shadowed. -P, not PYTHONSAFEPATH: the suite's own subprocesses (a script run beside its
# modules) keep their usual sys.path.
HARNESS_ENV = {
    "PYTHONPATH": MOUNT,
    "FIXRUNNER_HARNESS_DIR": HARNESS,
    "FIXRUNNER_WORK": WORK,
}
# The changed files to trace (a JSON list, relative to the tree): the plugin then records
# which of their lines each test executed (fixrunner_trace, for patch coverage).
TRACE_ENV = "FIXRUNNER_TRACE"
# Seconds one test's phase may take before the plugin fails it as timed out (SIGALRM).
ITEM_TIMEOUT_ENV = "FIXRUNNER_TEST_TIMEOUT"


# ``python -P -m MODULE`` for a Python older than 3.11 (no -P): drop the working
# directory from sys.path, then run the module as -m would.
_SAFE_PATH_RUN = (
    "import runpy, sys; sys.path.pop(0); runpy.run_module(sys.argv.pop(1), "
    "run_name='__main__', alter_sys=True)"
)


def test_command(settings: Settings, repo: str, python: str = "3.11") -> list[str]:
    """The command that starts pytest: a repository's override, or ``python -P -m pytest``.

    ``python`` is the image's version: before 3.11 ``-P`` does not exist, and ``-m``
    runs through a two-line equivalent.
    """
    override = settings.repos.get(repo)
    command = list(override.test_command) if override and override.test_command else []
    command = command or ["python", "-m", "pytest"]
    if not Path(command[0]).name.startswith("python") or "-P" in command:
        return command
    if _older_than_311(python):
        if command[1:2] == ["-m"] and len(command) > 2:
            return [command[0], "-c", _SAFE_PATH_RUN, *command[2:]]
        return command
    command.insert(1, "-P")
    return command


def _older_than_311(python: str) -> bool:
    parts = python.split(".")
    return len(parts) >= 2 and parts[0] == "3" and parts[1].isdigit() and int(parts[1]) < 11


test_command.__test__ = False  # type: ignore[attr-defined]  # not a pytest test


def run_pytest(
    state: Job,
    runtime: Runtime,
    tree: Path,
    phase: str,
    command: list[str],
    cancel: threading.Event | None,
    extra: list[str] | None = None,
) -> SuiteRun:
    """Run the suite in ``tree`` and grade it from the plugin's stream."""
    results = results_dir(state, phase, runtime)
    harness, (key,) = harness_dir(state, phase, runtime, 1)
    argv = [*command, *PYTEST_ARGS, f"--junitxml={RESULTS}/junit.xml", *(extra or [])]
    result = sandboxed(state, runtime, tree, (results, harness), argv, phase, "test", cancel)
    # JUnit stays an output for users; the verdict rests on the plugin's stream.
    read_junit(results / "junit.xml", state.folder / "junit" / f"{phase}.xml")
    report = read_harness(harness, 0, key, state.folder / "harness" / f"{phase}.jsonl")
    stopped = result.timed_out or result.pids_limited
    graded = grade_harness(
        report, result.exit_code, timed_out=stopped, oom_killed=result.oom_killed
    )
    graded = graded.model_copy(
        update={"timed_out": result.timed_out, "duration_s": result.duration_s}
    )
    return with_stop_reason(graded, result, state.candidate_deadline, _candidate(phase))


def rerun(
    state: Job,
    runtime: Runtime,
    tree: Path,
    phase: str,
    command: list[str],
    test_ids: list[str],
    cancel: threading.Event | None,
    pin: SuiteRun | None = None,
    trace: list[str] | None = None,
) -> list[SuiteRun]:
    """Re-run ``test_ids`` in ``tree``, pinned to the rootdir and config ``pin`` ran with.

    ``trace`` names changed files whose executed lines the plugin records per test.
    """
    # All re-runs of one tree go in one container: one start, N pytest runs.
    results = results_dir(state, phase, runtime)
    reruns = state.policy.reruns
    harness, keys = harness_dir(state, phase, runtime, reruns)
    pinned = _pinned(pin)
    runs = []
    for i in range(reruns):
        argv = [*command, *PYTEST_ARGS, *pinned, f"--junitxml={RESULTS}/junit-{i}.xml", *test_ids]
        # Only the first re-run is traced: while any tracer is set CPython 3.11 leaves its
        # fast paths for the whole process (flask's suite: 1.2 CPU-s traced, 0.7 s not),
        # and one run of the same tests executes the lines patch coverage reports.
        traced = f"{TRACE_ENV}={shlex.quote(json.dumps(trace))} " if trace and i == 0 else ""
        runs.append(f"{traced}FIXRUNNER_RUN={i} {shlex.join(argv)} ; echo $? > {RESULTS}/exit-{i}")
    script = " ; ".join(runs)
    result = sandboxed(
        state, runtime, tree, (results, harness), ["sh", "-c", script], phase, "test", cancel
    )
    graded = []
    for i, key in enumerate(keys):
        report = read_harness(harness, i, key, state.folder / "harness" / f"{phase}-{i}.jsonl")
        stopped = result.timed_out or result.pids_limited
        run = grade_harness(report, _exit_code(results / f"exit-{i}"), timed_out=stopped)
        run = run.model_copy(update={"timed_out": result.timed_out})
        graded.append(with_stop_reason(run, result, state.candidate_deadline, _candidate(phase)))
    return graded


def _candidate(phase: str) -> bool:
    """Whether a phase runs the candidate's tree (its suite or its re-runs)."""
    return phase.startswith("candidate")


def _pinned(pin: SuiteRun | None) -> list[str]:
    # Node ids are relative to the rootdir: a re-run that names tests/x.py::t would find
    # tests/pytest.ini and root itself there. Pin both to what the suite run used.
    if pin is None or not pin.rootdir:
        return []
    return [f"--rootdir={pin.rootdir}", "-c", pin.inifile or "/dev/null"]


def _exit_code(path: Path) -> int | None:
    data = read_regular(path, 64)
    try:
        return int(data.decode().strip()) if data is not None else None
    except ValueError:
        return None


def sandboxed(
    state: Job,
    runtime: Runtime,
    tree: Path,
    results: tuple[Path, Path],
    argv: list[str],
    phase: str,
    kind: str,
    cancel: threading.Event | None,
) -> RunResult:
    """Run ``argv`` on ``tree`` with the results and harness folders and the plugin mounted."""
    assert state.env is not None
    junit, harness = results
    spec = RunSpec(
        image=state.env.id,
        command=argv,
        workdir=WORK,
        mounts=[
            Mount(source=tree, target=WORK, read_only=False, quota=True),
            Mount(source=junit, target=RESULTS, read_only=False),
            Mount(source=harness, target=HARNESS, read_only=False),
            Mount(source=HARNESS_SOURCE, target=MOUNT, read_only=True),
            *mirror_mount(state),
        ],
        env={**HARNESS_ENV, **_item_timeout(state)},
        limits=state.policy.limits.for_phase(kind),  # type: ignore[arg-type]
        job_id=state.job_id,
        phase=phase,
    )
    if not _candidate(phase):
        result = runtime.sandbox.run(spec, cancel)
    else:
        deadline = state.candidate_deadline
        result = runtime.sandbox.run(spec, cancel, deadline.seconds)
        deadline.record(result)
    keep_log(state, phase, result)
    return result


def _item_timeout(state: Job) -> dict[str, str]:
    """The harness's per-test limit (``limits.test_item_timeout_s``), when the policy sets one."""
    seconds = state.policy.limits.test_item_timeout_s
    return {ITEM_TIMEOUT_ENV: f"{seconds:g}"} if seconds > 0 else {}


def mirror_mount(state: Job) -> list[Mount]:
    # A checkout borrows the mirror's objects through an alternates file that names the
    # mirror's host path: mounting it read-only there lets git in the sandbox (a suite
    # using setuptools-scm or `git describe`) read history, and never write it.
    if state.mirror is None:
        return []
    return [Mount(source=state.mirror, target=str(state.mirror), read_only=True)]
