"""`verify(job) -> Verdict`: a row of short named steps.

prepare → intake → checkout → environment → apply → run (baseline ‖ candidate ‖ lint)
→ compare (with re-runs) → judge. Every job leaves a folder with its patch, capped
logs, JUnit files and verdict.json. Candidate faults become a ``rejected`` verdict;
infrastructure failures become ``error``; nothing is decided by reading log text.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import secrets
import shlex
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import TypeVar

import docker
import structlog
from pydantic import TypeAdapter

from runner import __version__
from runner.common.files import read_inside, read_regular
from runner.common.logs import bind_job, unbind_job
from runner.config import Settings
from runner.core.patch import parse_patch, patch_stats, split_test_part
from runner.core.policy import Policy, judge, load_policy
from runner.core.repro import (
    check_expected,
    evaluate,
    missing_files,
    not_runnable,
    split_command,
)
from runner.core.suite import (
    FLAKE8_FORMAT,
    PYTEST_JUNIT_ARGS,
    apply_reruns,
    compare,
    grade,
    lint_diff,
    parse_flake8,
    parse_junit,
    test_summary,
)
from runner.environments.builds import EnvImage, commit_date, ensure_env_image
from runner.environments.dependencies import host_index_args
from runner.environments.images import BaseImage, ensure_base_image
from runner.errors import (
    CandidateError,
    InfrastructureError,
    PatchError,
    RunnerError,
    SandboxError,
)
from runner.models import (
    Comparison,
    Evidence,
    FixJob,
    ImagesInfo,
    JUnitReport,
    LintSummary,
    Mount,
    ParsedPatch,
    PatchStats,
    PhaseLog,
    ReproResult,
    ReproRun,
    Resources,
    RunResult,
    RunSpec,
    SuiteRun,
    Verdict,
)
from runner.sandbox.docker import DockerSandbox, hand_over
from runner.sandbox.engine import connect
from runner.workspace.repository import (
    MirrorCache,
    apply_patch,
    check_paths_against_tree,
    checkout,
    copy_tree,
    remove_tree,
    tree_id,
    validate_repo_url,
)

log = structlog.get_logger(__name__)

POLICIES_DIR = Path(__file__).resolve().parents[2] / "policies"
# setup.cfg or tox.ini read for a [flake8] section; a real one is a few KiB.
LINT_CONFIG_MAX_BYTES = 2**20
JUNIT_MAX_BYTES = 50 * 2**20
LOG_HEAD = 4000
LOG_TAIL = 8000
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
# later re-run of the same tree never reads their files.
EARLY_PHASE = "candidate-rerun-early"
EARLY_RERUN_MAX = 20
_SUITE_RUNS = TypeAdapter(list[SuiteRun])
_T = TypeVar("_T")

Progress = Callable[[str, str], None]


def _quiet(phase: str, message: str) -> None:
    return None


@dataclass
class Runtime:
    """What a process keeps between jobs: settings, engine, sandbox, caches."""

    settings: Settings
    client: docker.DockerClient
    sandbox: DockerSandbox
    mirrors: MirrorCache
    policies_dir: Path = POLICIES_DIR
    _base: BaseImage | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _warming: threading.Thread | None = None

    @classmethod
    def start(cls, settings: Settings) -> Runtime:
        """Connect to the engine and open the caches under the state directory."""
        # Reading the host's pip configuration takes a pip process (~0.15 s); it is only
        # needed at the environment step, so it runs while the engine and git work.
        warming = threading.Thread(target=host_index_args, name="warm-pip-config", daemon=True)
        warming.start()
        client = connect(settings.engine)
        root = settings.paths.root
        return cls(
            settings=settings,
            client=client,
            sandbox=DockerSandbox(client, settings.engine),
            mirrors=MirrorCache(root / "mirrors", allow_local=settings.security.allow_local_repos),
            _warming=warming,
        )

    def warmed(self) -> None:
        """Wait for the start-up warming (instant once done), so nothing runs twice."""
        if self._warming is not None:
            self._warming.join()

    def base_image(self) -> BaseImage:
        """The base image, built on first use and remembered."""
        with self._lock:
            if self._base is None:
                self._base = ensure_base_image(self.client, self.settings)
            return self._base

    @property
    def jobs_dir(self) -> Path:
        return self.settings.paths.root / "jobs"

    @property
    def baseline_cache(self) -> Path:
        return self.settings.paths.root / "baselines"


@dataclass
class Job:
    """One job's working state, private to :func:`verify`."""

    job: FixJob
    job_id: str
    folder: Path
    policy: Policy
    progress: Progress
    timings: dict[str, float] = field(default_factory=dict)
    logs: list[PhaseLog] = field(default_factory=list)
    evidence: Evidence = field(default_factory=Evidence)
    env: EnvImage | None = None
    mirror: Path | None = None
    base: BaseImage | None = None
    baseline_cached: bool = False
    repro_problems: dict[str, str] = field(default_factory=dict)

    @contextlib.contextmanager
    def phase(self, name: str, message: str = "") -> Iterator[None]:
        self.progress(name, message or name)
        started = time.monotonic()
        try:
            yield
        finally:
            self.timings[name] = round(self.timings.get(name, 0) + time.monotonic() - started, 3)


def new_job_id() -> str:
    """A sortable, unique job id."""
    return f"{datetime.now(UTC):%Y%m%dT%H%M%S}-{secrets.token_hex(3)}"


def verify(
    job: FixJob,
    runtime: Runtime,
    progress: Progress = _quiet,
    cancel: threading.Event | None = None,
) -> Verdict:
    """Verify one candidate patch; always returns a verdict, also written to the job folder."""
    job_id = job.job_id or new_job_id()
    bind_job(job_id)
    folder = runtime.jobs_dir / job_id
    folder.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    try:
        policy = load_policy(job.policy, runtime.policies_dir)
    except RunnerError as exc:
        unbind_job()
        return _write(folder, _error_verdict(job_id, str(exc)))
    state = Job(job=job, job_id=job_id, folder=folder, policy=policy, progress=progress)
    trees = folder / "trees"
    stop, expired, done = threading.Event(), threading.Event(), threading.Event()
    watcher = threading.Thread(
        target=_watch_job,
        args=(policy.limits.job_timeout_s, cancel, stop, expired, done),
        daemon=True,
    )
    watcher.start()
    try:
        _prepare(state)
        _run_job(state, runtime, trees, stop)
    except CandidateError as exc:
        check = exc.check if isinstance(exc, PatchError) else "applies"
        state.evidence = state.evidence.model_copy(
            update={
                "patch_error": str(exc),
                "patch_error_check": check,
                "applied_with": "not_applied",
            }
        )
    except InfrastructureError as exc:
        state.evidence = state.evidence.model_copy(update={"infrastructure_error": str(exc)})
    except RunnerError as exc:
        state.evidence = state.evidence.model_copy(update={"infrastructure_error": str(exc)})
    finally:
        done.set()
        watcher.join()
        with contextlib.suppress(OSError):
            remove_tree(trees)
    if expired.is_set():
        # Each phase has its own timeout; running past the job's means the runner
        # could not finish (a slow engine, a huge build), not that the candidate failed.
        state.evidence = state.evidence.model_copy(
            update={
                "infrastructure_error": f"the job ran past its {policy.limits.job_timeout_s:g}s "
                "timeout (policy limits.job_timeout_s); its containers were stopped"
            }
        )
    state.timings["total"] = round(time.monotonic() - started, 3)
    verdict = _verdict(state, runtime)
    log.info(
        "verdict", status=verdict.status, summary=verdict.summary, seconds=state.timings["total"]
    )
    unbind_job()
    return _write(folder, verdict)


def _watch_job(
    timeout_s: float,
    cancel: threading.Event | None,
    stop: threading.Event,
    expired: threading.Event,
    done: threading.Event,
) -> None:
    """Set ``stop`` when the caller cancels or the job's own deadline passes."""
    end = time.monotonic() + timeout_s
    while not done.is_set():
        if cancel is not None and cancel.is_set():
            stop.set()
            return
        if time.monotonic() >= end:
            expired.set()
            stop.set()
            return
        done.wait(0.2)


# ---------------------------------------------------------------------------- steps


def _prepare(state: Job) -> None:
    (state.folder / "patch.diff").write_text(state.job.patch, encoding="utf-8")
    if state.job.test_patch:
        (state.folder / "test.diff").write_text(state.job.test_patch, encoding="utf-8")
    (state.folder / "job.json").write_text(
        state.job.model_dump_json(indent=2, exclude={"patch", "test_patch"}), encoding="utf-8"
    )


def _intake(state: Job) -> tuple[ParsedPatch, ParsedPatch | None, str, str]:
    limits = state.policy.patch
    with state.phase("intake", "checking the patch"):
        parsed = parse_patch(
            state.job.patch,
            allow_binary=limits.allow_binary,
            max_bytes=limits.max_bytes,
            max_files=limits.max_files,
            max_lines=limits.max_changed_lines,
        )
        state.evidence = state.evidence.model_copy(update={"patch": parsed})
        test_parsed = None
        if state.job.test_patch:
            try:
                test_parsed = parse_patch(state.job.test_patch, allow_binary=limits.allow_binary)
            except PatchError as exc:
                raise PatchError(f"the test patch: {exc}", check=exc.check) from exc
            state.evidence = state.evidence.model_copy(update={"test_patch": test_parsed})
        test_part, _ = split_test_part(parsed, None, state.policy.test_globs)
        check_expected(state.job.expect_error)
        for command in state.job.repro:
            split_command(command)
    return parsed, test_parsed, test_part, parsed.text


def _run_job(state: Job, runtime: Runtime, trees: Path, cancel: threading.Event | None) -> None:
    parsed, test_parsed, test_part, whole = _intake(state)
    state.evidence = state.evidence.model_copy(update={"fail_to_pass_ids": state.job.fail_to_pass})
    with state.phase("checkout", "fetching the repository"):
        url = validate_repo_url(state.job.repo, runtime.settings.security.allow_local_repos)
        mirror, commit = runtime.mirrors.resolve(url, state.job.base)
        state.mirror = mirror
        baseline_dir = checkout(mirror, commit, trees / "baseline")
    # The environment reads only the baseline tree, so the candidate's checkout overlaps it.
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"checkout-{state.job_id}") as pool:
        candidate_future = pool.submit(checkout, mirror, commit, trees / "candidate")
        with state.phase("env", "preparing the environment image"):
            runtime.warmed()
            state.base = runtime.base_image()
            state.env = ensure_env_image(
                runtime.client,
                state.base,
                baseline_dir,
                runtime.settings,
                repo_key=state.job.repo,
                commit_date=commit_date(baseline_dir),
            )
            state.env.write_environment_json(state.folder)
        waited = time.monotonic()
        candidate_dir = candidate_future.result()
        state.timings["checkout"] += round(time.monotonic() - waited, 3)
    with state.phase("apply", "applying the patches"):
        applied = _apply(state, baseline_dir, candidate_dir, parsed, test_parsed, test_part, whole)
        state.evidence = state.evidence.model_copy(update={"applied_with": applied})
        baseline_tree = tree_id(baseline_dir)
    _runs(state, runtime, baseline_dir, candidate_dir, baseline_tree, parsed, cancel)


def _apply(
    state: Job,
    baseline_dir: Path,
    candidate_dir: Path,
    parsed: ParsedPatch,
    test_parsed: ParsedPatch | None,
    test_part: str,
    whole: str,
) -> str:
    allow_3way = state.policy.patch.allow_3way
    for tree in (baseline_dir, candidate_dir):
        if test_parsed is not None and state.job.test_patch:
            check_paths_against_tree(tree, sorted(test_parsed.paths()))
            apply_patch(tree, test_parsed.text, allow_3way, "test patch")
    check_paths_against_tree(baseline_dir, sorted(parsed.paths()))
    if test_part:
        apply_patch(baseline_dir, test_part, allow_3way, "candidate's test part")
    check_paths_against_tree(candidate_dir, sorted(parsed.paths()))
    return apply_patch(candidate_dir, whole, allow_3way, "candidate patch")


def _runs(
    state: Job,
    runtime: Runtime,
    baseline_dir: Path,
    candidate_dir: Path,
    baseline_tree: str,
    parsed: ParsedPatch,
    cancel: threading.Event | None,
) -> None:
    assert state.env is not None
    command = _test_command(runtime.settings, state.job.repo)
    limits = state.policy.limits.for_phase("test")
    key = _baseline_key(baseline_tree, state.env.id, command, limits.model_dump_json())
    cached = _load_baseline(runtime, key)
    user = runtime.sandbox._user
    repro_trees = _repro_trees(state, baseline_dir, candidate_dir)
    early_ids = _early_rerun_ids(state, cached)
    # Early re-runs read their own copy: the main run may write into the candidate tree.
    early_tree = (
        copy_tree(candidate_dir, candidate_dir.parent / "candidate-early") if early_ids else None
    )
    for tree in (baseline_dir, candidate_dir, *repro_trees, *filter(None, [early_tree])):
        hand_over(tree, user)
    with ThreadPoolExecutor(max_workers=6, thread_name_prefix=f"job-{state.job_id}") as pool:
        early_future = None
        if early_tree is not None:
            early_future = pool.submit(
                _timed,
                state,
                "reruns-early",
                lambda: _rerun(state, runtime, early_tree, EARLY_PHASE, command, early_ids, cancel),
            )
        repro_futures = [
            pool.submit(
                _timed,
                state,
                f"repro-{side}",
                partial(_repro, state, runtime, tree, side, cancel),
            )
            for side, tree in zip(("baseline", "candidate"), repro_trees, strict=False)
        ]
        baseline_future = None
        if cached is None:
            baseline_future = pool.submit(
                _timed,
                state,
                "baseline",
                lambda: _pytest(state, runtime, baseline_dir, "baseline", command, cancel),
            )
        candidate_future = pool.submit(
            _timed,
            state,
            "candidate",
            lambda: _pytest(state, runtime, candidate_dir, "candidate", command, cancel),
        )
        lint_future = pool.submit(
            _timed,
            state,
            "lint",
            lambda: _lint(
                state, runtime, baseline_dir, candidate_dir, baseline_tree, parsed, cancel
            ),
        )
        if baseline_future is not None:
            baseline = baseline_future.result()
            if baseline.valid:
                _store_baseline(runtime, key, baseline)
        else:
            assert cached is not None
            baseline = cached
            state.baseline_cached = True
            state.progress("baseline", "baseline results reused from the cache")
        candidate = candidate_future.result()
        lint = lint_future.result()
        repro_runs = _repro_evidence(state, [f.result() for f in repro_futures])
        early = _early_result(early_future)
    state.evidence = state.evidence.model_copy(
        update={"baseline": baseline, "candidate": candidate, "lint": lint, "repro": repro_runs}
    )
    # The graded baseline, cached or fresh, for callers that need per-test detail (the fix loop).
    (state.folder / "baseline.json").write_text(baseline.model_dump_json(), encoding="utf-8")
    if not (baseline.valid and candidate.valid):
        state.evidence = state.evidence.model_copy(
            update={"comparison": compare(baseline, candidate)}
        )
        return
    with state.phase("compare", "comparing test by test"):
        comparison = compare(baseline, candidate)
    if comparison.changed and state.policy.reruns > 0:
        trees = (baseline_dir, candidate_dir)
        early_runs = (early_ids, early) if early is not None else None
        comparison = _reruns(state, runtime, key, trees, command, comparison, early_runs, cancel)
    state.evidence = state.evidence.model_copy(update={"comparison": comparison})


def _early_result(future: Future[list[SuiteRun]] | None) -> list[SuiteRun] | None:
    """The early re-runs, or None: a sandbox failure there only means re-running later."""
    if future is None:
        return None
    try:
        return future.result()
    except SandboxError as exc:
        log.warning("reruns.early_failed", error=str(exc))
        return None


def _early_rerun_ids(state: Job, cached: SuiteRun | None) -> list[str]:
    """Tests whose candidate re-runs can start beside the main run: the likely fixes.

    With a cached baseline its failing tests are known before the candidate runs, and a
    fix's changed tests are among them (plus any the job names as fail-to-pass). Their
    re-runs then overlap the suite instead of following it; when the changed tests turn
    out to be others, the re-runs after the comparison run as before.
    """
    if state.policy.reruns <= 0 or (cached is None and not state.job.fail_to_pass):
        return []
    ids = set(state.job.fail_to_pass)
    if cached is not None and cached.valid:
        ids |= {t for t, r in cached.tests.items() if r.outcome in ("failed", "error")}
    # A long list is a broken baseline, not a fix: re-running it all early would waste cores.
    return sorted(ids) if 0 < len(ids) <= EARLY_RERUN_MAX else []


def _reruns(
    state: Job,
    runtime: Runtime,
    key: str,
    trees: tuple[Path, Path],
    command: list[str],
    comparison: Comparison,
    early: tuple[list[str], list[SuiteRun]] | None,
    cancel: threading.Event | None,
) -> Comparison:
    """Re-run the changed tests in both trees; reuse cached baseline and early candidate runs."""
    changed = comparison.changed
    rerun_key = _rerun_key(key, state.policy.reruns, changed)
    baseline_runs = _load_reruns(runtime, rerun_key)
    candidate_runs = early[1] if early is not None and _covers(*early, changed) else None
    if baseline_runs is not None:
        state.progress("reruns", "baseline re-runs reused from the cache")
    if baseline_runs is None or candidate_runs is None:
        message = f"re-running {len(changed)} changed test(s)"
        baseline_dir, candidate_dir = trees
        with state.phase("reruns", message), ThreadPoolExecutor(max_workers=2) as pool:
            b = None
            if baseline_runs is None:
                b = pool.submit(
                    _rerun, state, runtime, baseline_dir, "baseline-rerun", command, changed, cancel
                )
            c = None
            if candidate_runs is None:
                c = pool.submit(
                    _rerun,
                    state,
                    runtime,
                    candidate_dir,
                    "candidate-rerun",
                    command,
                    changed,
                    cancel,
                )
            if b is not None:
                baseline_runs = b.result()
                if all(r.valid for r in baseline_runs):
                    _store_reruns(runtime, rerun_key, baseline_runs)
            if c is not None:
                candidate_runs = c.result()
    assert baseline_runs is not None and candidate_runs is not None
    return apply_reruns(comparison, baseline_runs, candidate_runs)


def _covers(ids: list[str], runs: list[SuiteRun], changed: list[str]) -> bool:
    """True when early re-runs ran every changed test, each time with a result."""
    return set(changed) <= set(ids) and all(t in r.tests for r in runs for t in changed)


def _repro_trees(state: Job, baseline_dir: Path, candidate_dir: Path) -> list[Path]:
    # Repro commands get their own copies of the trees: a script may write files, and
    # the test runs read the same trees at the same time.
    if not state.job.repro:
        return []
    for command in state.job.repro:
        missing = missing_files(split_command(command), baseline_dir)
        if missing:
            state.repro_problems[command] = (
                f"names {', '.join(missing)}, which is not in the repository at the base revision"
            )
    return [
        copy_tree(baseline_dir, baseline_dir.parent / "baseline-repro"),
        copy_tree(candidate_dir, candidate_dir.parent / "candidate-repro"),
    ]


def _repro(
    state: Job, runtime: Runtime, tree: Path, side: str, cancel: threading.Event | None
) -> list[RunResult | None]:
    assert state.env is not None
    results: list[RunResult | None] = []
    for i, command in enumerate(state.job.repro):
        if command in state.repro_problems:
            results.append(None)
            continue
        spec = RunSpec(
            image=state.env.id,
            command=split_command(command),
            workdir=WORK,
            mounts=[Mount(source=tree, target=WORK, read_only=False), *_mirror_mount(state)],
            limits=state.policy.limits.for_phase("repro"),
            job_id=state.job_id,
            phase=f"repro-{side}-{i}",
        )
        result = runtime.sandbox.run(spec, cancel)
        _keep_log(state, f"repro-{side}-{i}", result)
        results.append(result)
    return results


def _repro_evidence(state: Job, sides: list[list[RunResult | None]]) -> list[ReproRun]:
    if not sides:
        return []
    baseline, candidate = sides
    runs = []
    for command, base, cand in zip(state.job.repro, baseline, candidate, strict=True):
        if base is None or cand is None:
            empty = ReproResult()
            runs.append(
                ReproRun(
                    command=command,
                    expect_error=state.job.expect_error,
                    baseline=empty,
                    candidate=empty,
                    problem=state.repro_problems.get(command, "did not run"),
                )
            )
            continue
        run = evaluate(command, state.job.expect_error, base, cand)
        why = not_runnable(base)
        if why:
            program = split_command(command)[0]
            run = run.model_copy(update={"problem": f"{program} {why} in the sandbox"})
        runs.append(run)
    return runs


def _timed(state: Job, name: str, work: Callable[[], _T]) -> _T:
    with state.phase(name, _PHASE_MESSAGES.get(name, name)):
        return work()


_PHASE_MESSAGES = {
    "baseline": "running the tests without the fix",
    "candidate": "running the tests with the fix",
    "lint": "running flake8 on the changed files",
    "reruns-early": "re-running the baseline's failing tests with the fix, beside the suite",
    "repro-baseline": "running the repro command(s) without the fix",
    "repro-candidate": "running the repro command(s) with the fix",
}


def _test_command(settings: Settings, repo: str) -> list[str]:
    override = settings.repos.get(repo)
    if override is not None and override.test_command:
        return list(override.test_command)
    return ["python", "-m", "pytest"]


def _pytest(
    state: Job,
    runtime: Runtime,
    tree: Path,
    phase: str,
    command: list[str],
    cancel: threading.Event | None,
    extra: list[str] | None = None,
) -> SuiteRun:
    results = _results_dir(state, phase, runtime)
    argv = [*command, *PYTEST_ARGS, f"--junitxml={RESULTS}/junit.xml", *(extra or [])]
    result = _sandboxed(state, runtime, tree, results, argv, phase, "test", cancel)
    report = _read_junit(results / "junit.xml", state.folder / "junit" / f"{phase}.xml")
    return grade(report, result.exit_code, timed_out=result.timed_out, oom_killed=result.oom_killed)


def _rerun(
    state: Job,
    runtime: Runtime,
    tree: Path,
    phase: str,
    command: list[str],
    test_ids: list[str],
    cancel: threading.Event | None,
) -> list[SuiteRun]:
    # All re-runs of one tree go in one container: one start, N pytest runs.
    results = _results_dir(state, phase, runtime)
    runs = []
    for i in range(state.policy.reruns):
        argv = [*command, *PYTEST_ARGS, f"--junitxml={RESULTS}/junit-{i}.xml", *test_ids]
        runs.append(shlex.join(argv))
    script = " ; ".join(runs)
    result = _sandboxed(state, runtime, tree, results, ["sh", "-c", script], phase, "test", cancel)
    graded = []
    for i in range(state.policy.reruns):
        report = _read_junit(results / f"junit-{i}.xml", None)
        # The shell's own exit code is the last run's; per-run exit codes are not kept,
        # so re-runs are graded on their JUnit results alone (exit 1 = some failed).
        failed = report is not None and any(t.outcome in ("failed", "error") for t in report.tests)
        graded.append(grade(report, 1 if failed else 0, timed_out=result.timed_out))
    return graded


def _lint(
    state: Job,
    runtime: Runtime,
    baseline_dir: Path,
    candidate_dir: Path,
    baseline_tree: str,
    parsed: ParsedPatch,
    cancel: threading.Event | None,
) -> object:
    lint_policy = state.policy.lint
    files = sorted(f.path for f in parsed.files if f.path.endswith(".py") and f.status != "deleted")
    if not files:
        return lint_diff([], [], parsed, lint_policy.blocking_select)
    has_config = _has_flake8_config(candidate_dir)
    options = ["--format", FLAKE8_FORMAT, "--exit-zero"]
    if not has_config:
        options += [
            f"--select={','.join(lint_policy.default_select)}",
            f"--extend-ignore={','.join(lint_policy.default_extend_ignore)}",
            f"--max-line-length={lint_policy.default_max_line_length}",
        ]
    old_files = [
        (f.old_path or f.path)
        for f in parsed.files
        if f.path.endswith(".py") and f.status not in ("added",)
    ]
    old_files = [p for p in old_files if (baseline_dir / p).is_file()]
    # The baseline's findings depend only on its tree, the image, the options and the
    # files: a later candidate on the same baseline reuses them.
    env_id = state.env.id if state.env else ""
    key = _lint_key(baseline_tree, env_id, options, old_files) if old_files else None
    cached = _load_text(runtime, f"{key}.lint.txt") if key else ""
    # One container lints both trees: flake8 never imports the code it reads.
    parts = []
    if cached is None:
        parts.append(f"cd /base && flake8 {shlex.join(options + old_files)}")
    parts.append("echo '::fixrunner-candidate::'")
    parts.append(f"cd /cand && flake8 {shlex.join(options + files)}")
    spec = RunSpec(
        image=state.env.id if state.env else "",
        command=["sh", "-c", " ; ".join(parts)],
        workdir="/tmp",
        mounts=[
            Mount(source=baseline_dir, target="/base", read_only=True),
            Mount(source=candidate_dir, target="/cand", read_only=True),
        ],
        limits=state.policy.limits.for_phase("lint"),
        job_id=state.job_id,
        phase="lint",
    )
    result = runtime.sandbox.run(spec, cancel)
    _keep_log(state, "lint", result)
    before_text, marker, after_text = result.output.partition("::fixrunner-candidate::")
    if cached is not None:
        before_text = cached
    elif key and marker and result.exit_code == 0 and not result.output_truncated:
        _store_text(runtime, f"{key}.lint.txt", before_text)
    before = parse_flake8(before_text, lint_policy.blocking_select)
    after = parse_flake8(after_text, lint_policy.blocking_select)
    return lint_diff(before, after, parsed, lint_policy.blocking_select)


def _has_flake8_config(tree: Path) -> bool:
    if (tree / ".flake8").is_file():
        return True
    for name in ("setup.cfg", "tox.ini"):
        # The candidate's tree: the candidate may have made these a FIFO or a link to
        # /dev/zero, so never through a link out of it, never a device, capped.
        data = read_inside(tree, tree / name, LINT_CONFIG_MAX_BYTES)
        if data is not None and b"[flake8]" in data:
            return True
    return False


def _sandboxed(
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
            *_mirror_mount(state),
        ],
        limits=state.policy.limits.for_phase(kind),  # type: ignore[arg-type]
        job_id=state.job_id,
        phase=phase,
    )
    result = runtime.sandbox.run(spec, cancel)
    _keep_log(state, phase, result)
    return result


def _mirror_mount(state: Job) -> list[Mount]:
    # A checkout borrows the mirror's objects through an alternates file that names the
    # mirror's host path: mounting it read-only there lets git in the sandbox (a suite
    # using setuptools-scm or `git describe`) read history, and never write it.
    if state.mirror is None:
        return []
    return [Mount(source=state.mirror, target=str(state.mirror), read_only=True)]


def _results_dir(state: Job, phase: str, runtime: Runtime) -> Path:
    results = state.folder / "trees" / "results" / phase
    results.mkdir(parents=True, exist_ok=True)
    hand_over(results, runtime.sandbox._user)
    return results


def _read_junit(path: Path, keep: Path | None) -> JUnitReport | None:
    # The file sits in a folder the sandbox could write: never follow a symlink,
    # read only a regular file, and only up to a size cap.
    data = read_regular(path, JUNIT_MAX_BYTES)
    if data is None:
        return None
    if keep is not None:
        keep.parent.mkdir(parents=True, exist_ok=True)
        keep.write_bytes(data[:JUNIT_MAX_BYTES])
    if len(data) > JUNIT_MAX_BYTES:
        return None
    return parse_junit(data)


def _keep_log(state: Job, phase: str, result: RunResult) -> None:
    logs = state.folder / "logs"
    logs.mkdir(exist_ok=True)
    (logs / f"{phase}.log").write_text(result.output, encoding="utf-8")
    text = result.output
    head, tail = text[:LOG_HEAD], text[-LOG_TAIL:] if len(text) > LOG_HEAD else ""
    state.logs.append(
        PhaseLog(phase=phase, head=head, tail=tail, truncated=result.output_truncated)
    )


# ---------------------------------------------------------------------------- baseline cache


def _baseline_key(tree: str, env_id: str, command: list[str], limits: str) -> str:
    material = json.dumps([tree, env_id, command, PYTEST_ARGS, limits], sort_keys=True)
    return hashlib.sha256(material.encode()).hexdigest()


def _load_baseline(runtime: Runtime, key: str) -> SuiteRun | None:
    path = runtime.baseline_cache / f"{key}.json"
    try:
        return SuiteRun.model_validate_json(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _store_baseline(runtime: Runtime, key: str, run: SuiteRun) -> None:
    _store_text(runtime, f"{key}.json", run.model_dump_json())


def _rerun_key(baseline_key: str, reruns: int, test_ids: list[str]) -> str:
    # The baseline key covers tree, image, command, pytest arguments and limits; the
    # re-runs add only how many there are and which tests they select.
    material = json.dumps([baseline_key, reruns, sorted(test_ids)])
    return hashlib.sha256(material.encode()).hexdigest()


def _load_reruns(runtime: Runtime, key: str) -> list[SuiteRun] | None:
    path = runtime.baseline_cache / f"{key}.reruns.json"
    try:
        return _SUITE_RUNS.validate_json(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _store_reruns(runtime: Runtime, key: str, runs: list[SuiteRun]) -> None:
    _store_text(runtime, f"{key}.reruns.json", _SUITE_RUNS.dump_json(runs).decode())


def _lint_key(tree: str, env_id: str, options: list[str], files: list[str]) -> str:
    material = json.dumps(["flake8", tree, env_id, options, files])
    return hashlib.sha256(material.encode()).hexdigest()


def _load_text(runtime: Runtime, name: str) -> str | None:
    try:
        return (runtime.baseline_cache / name).read_text(encoding="utf-8")
    except OSError:
        return None


def _store_text(runtime: Runtime, name: str, text: str) -> None:
    runtime.baseline_cache.mkdir(parents=True, exist_ok=True)
    tmp = runtime.baseline_cache / f".{name}.{secrets.token_hex(4)}"
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(runtime.baseline_cache / name)


# ---------------------------------------------------------------------------- verdict


def _verdict(state: Job, runtime: Runtime) -> Verdict:
    evidence = state.evidence
    judgement = judge(evidence, state.policy)
    tests = test_summary(evidence.baseline, evidence.candidate, evidence.comparison)
    patch = (
        patch_stats(evidence.patch, evidence.applied_with, state.policy.test_globs)
        if evidence.patch is not None
        else PatchStats(applied_with=evidence.applied_with)
    )
    images = ImagesInfo()
    if state.base is not None:
        images.base = state.base.tag
    if state.env is not None:
        images.environment_image = state.env.tag
        images.environment = state.env.info()
    timings = dict(state.timings)
    if state.baseline_cached:
        timings["baseline"] = 0.0
        timings["baseline_cached"] = 1.0
    return Verdict(
        job_id=state.job_id,
        status=judgement.status,
        summary=judgement.summary,
        checks=judgement.checks,
        tests=tests,
        lint=evidence.lint or LintSummary(),
        patch=patch,
        repro=evidence.repro,
        timings=timings,
        resources=Resources(limits=state.policy.limits.for_phase("test")),
        images=images,
        logs=state.logs,
        runner_version=__version__,
    )


def _error_verdict(job_id: str, reason: str) -> Verdict:
    return Verdict.error(job_id, reason, __version__)


def _write(folder: Path, verdict: Verdict) -> Verdict:
    (folder / "verdict.json").write_text(verdict.model_dump_json(indent=2), encoding="utf-8")
    return verdict
