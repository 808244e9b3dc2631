"""Sandboxed pytest runs: the suite in one tree, and re-runs of chosen tests."""

from __future__ import annotations

import shlex
import threading
from pathlib import Path

from runner.config import Settings
from runner.core.suite import (
    PYTEST_JUNIT_ARGS,
    grade,
)
from runner.models import (
    Mount,
    RunResult,
    RunSpec,
    SuiteRun,
)
from runner.verify.job import Job
from runner.verify.jobfolder import (
    keep_log,
    read_junit,
    results_dir,
)
from runner.verify.runtime import Runtime

WORK = "/work"
RESULTS = "/results"
# pytest as both trees run it: per-test results to JUnit (xunit1 keeps the file
# attribute, so ids are real node ids), no cache, no random order, plain output.
PYTEST_ARGS = [
    *PYTEST_JUNIT_ARGS,
    "-p",
    "no:randomly",
    "--color=no",
    "-q",
    "-rfE",
    "--tb=short",
]

# Early re-runs of the candidate (beside its main run) get their own results folder, so a


def test_command(settings: Settings, repo: str) -> list[str]:
    override = settings.repos.get(repo)
    if override is not None and override.test_command:
        return list(override.test_command)
    return ["python", "-m", "pytest"]


def run_pytest(
    state: Job,
    runtime: Runtime,
    tree: Path,
    phase: str,
    command: list[str],
    cancel: threading.Event | None,
    extra: list[str] | None = None,
) -> SuiteRun:
    results = results_dir(state, phase, runtime)
    argv = [*command, *PYTEST_ARGS, f"--junitxml={RESULTS}/junit.xml", *(extra or [])]
    result = sandboxed(state, runtime, tree, results, argv, phase, "test", cancel)
    report = read_junit(results / "junit.xml", state.folder / "junit" / f"{phase}.xml")
    return grade(report, result.exit_code, timed_out=result.timed_out, oom_killed=result.oom_killed)


def rerun(
    state: Job,
    runtime: Runtime,
    tree: Path,
    phase: str,
    command: list[str],
    test_ids: list[str],
    cancel: threading.Event | None,
) -> list[SuiteRun]:
    # All re-runs of one tree go in one container: one start, N pytest runs.
    results = results_dir(state, phase, runtime)
    runs = []
    for i in range(state.policy.reruns):
        argv = [*command, *PYTEST_ARGS, f"--junitxml={RESULTS}/junit-{i}.xml", *test_ids]
        runs.append(shlex.join(argv))
    script = " ; ".join(runs)
    result = sandboxed(state, runtime, tree, results, ["sh", "-c", script], phase, "test", cancel)
    graded = []
    for i in range(state.policy.reruns):
        report = read_junit(results / f"junit-{i}.xml", None)
        # The shell's own exit code is the last run's; per-run exit codes are not kept,
        # so re-runs are graded on their JUnit results alone (exit 1 = some failed).
        failed = report is not None and any(t.outcome in ("failed", "error") for t in report.tests)
        graded.append(grade(report, 1 if failed else 0, timed_out=result.timed_out))
    return graded


def sandboxed(
    state: Job,
    runtime: Runtime,
    tree: Path,
    results: Path,
    argv: list[str],
    phase: str,
    kind: str,
    cancel: threading.Event | None,
) -> RunResult:
    assert state.env is not None
    spec = RunSpec(
        image=state.env.id,
        command=argv,
        workdir=WORK,
        mounts=[
            Mount(source=tree, target=WORK, read_only=False),
            Mount(source=results, target=RESULTS, read_only=False),
            *mirror_mount(state),
        ],
        limits=state.policy.limits.for_phase(kind),  # type: ignore[arg-type]
        job_id=state.job_id,
        phase=phase,
    )
    result = runtime.sandbox.run(spec, cancel)
    keep_log(state, phase, result)
    return result


def mirror_mount(state: Job) -> list[Mount]:
    # A checkout borrows the mirror's objects through an alternates file that names the
    # mirror's host path: mounting it read-only there lets git in the sandbox (a suite
    # using setuptools-scm or `git describe`) read history, and never write it.
    if state.mirror is None:
        return []
    return [Mount(source=state.mirror, target=str(state.mirror), read_only=True)]
