"""Re-runs of changed tests: early beside the suite, or after the comparison; cached."""

from __future__ import annotations

import threading
from collections import Counter
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import structlog

from runner.core.comparison import fix_rerun_unit
from runner.core.paths import is_test_path
from runner.core.suite import apply_reruns, apply_suite_repeat, repeat_reason, rerun_selection
from runner.errors import (
    SandboxError,
)
from runner.models import (
    Comparison,
    SuiteRun,
)
from runner.verify.caches import (
    load_repeat,
    load_reruns,
    rerun_key,
    store_repeat,
    store_reruns,
)
from runner.verify.job import Job
from runner.verify.runs import (
    rerun,
    run_pytest,
)
from runner.verify.runtime import Runtime

log = structlog.get_logger(__name__)


EARLY_PHASE = "candidate-rerun-early"
EARLY_RERUN_MAX = 20


def early_result(future: Future[list[SuiteRun]] | None) -> list[SuiteRun] | None:
    """The early re-runs, or None: a sandbox failure there only means re-running later."""
    if future is None:
        return None
    try:
        return future.result()
    except SandboxError as exc:
        log.warning("reruns.early_failed", error=str(exc))
        return None


def early_rerun_ids(state: Job, cached: SuiteRun | None) -> list[str]:
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
    if not 0 < len(ids) <= EARLY_RERUN_MAX:
        return []
    if cached is None or not cached.valid:
        return sorted(ids)
    # the same shape as the re-runs after the comparison (rerun_selection): a small
    # module whole, a large one by the ids
    sizes = Counter(t.split("::", 1)[0] for t in cached.tests)
    return sorted({fix_rerun_unit(t, sizes) for t in ids})


def run_reruns(
    state: Job,
    runtime: Runtime,
    key: str,
    trees: tuple[Path, Path],
    command: list[str],
    comparison: Comparison,
    early: tuple[list[str], list[SuiteRun]] | None,
    cancel: threading.Event | None,
    runs: tuple[SuiteRun, SuiteRun],
) -> Comparison:
    """Re-run the changed tests (a regression's whole module) in both trees; reuse cached runs.

    Re-runs are pinned to the baseline's rootdir and config, and select a test whose id
    differed between the two trees (an unstable parametrize id) by its function.
    """
    baseline, candidate = runs
    # a regression re-runs in its whole module: the conditions it failed under
    changed = selection(rerun_selection(comparison), baseline, candidate)
    reruns_key = rerun_key(key, state.policy.reruns, changed)
    baseline_runs = load_reruns(runtime, reruns_key)
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
                    rerun,
                    state,
                    runtime,
                    baseline_dir,
                    "baseline-rerun",
                    command,
                    changed,
                    cancel,
                    baseline,
                )
            c = None
            if candidate_runs is None:
                c = pool.submit(
                    rerun,
                    state,
                    runtime,
                    candidate_dir,
                    "candidate-rerun",
                    command,
                    changed,
                    cancel,
                    baseline,
                    traced_files(state),
                )
            if b is not None:
                baseline_runs = b.result()
                if all(r.valid for r in baseline_runs):
                    store_reruns(runtime, reruns_key, baseline_runs)
            if c is not None:
                candidate_runs = c.result()
    assert baseline_runs is not None and candidate_runs is not None
    record_lines(state, candidate_runs)
    comparison = apply_reruns(comparison, baseline_runs, candidate_runs, baseline, candidate)
    return repeat_suite(state, runtime, key, trees, command, comparison, cancel, runs)


def repeat_suite(
    state: Job,
    runtime: Runtime,
    key: str,
    trees: tuple[Path, Path],
    command: list[str],
    comparison: Comparison,
    cancel: threading.Event | None,
    runs: tuple[SuiteRun, SuiteRun],
) -> Comparison:
    """Run the whole suite once more in each tree when regressions failed only in it.

    At most one repeat per tree, and only for a non-empty ``order_dependent`` set; the
    baseline's repeat is cached beside its run. Same command, sandbox and deadlines as
    the suite runs (the candidate's learned one included).
    """
    reason = repeat_reason(comparison)
    if not reason or (cancel is not None and cancel.is_set()):
        return comparison
    baseline_dir, candidate_dir = trees
    baseline_repeat = load_repeat(runtime, key)
    cached = baseline_repeat is not None
    where = "the candidate's tree; the baseline's repeat is cached" if cached else "both trees"
    with (
        state.phase("repeat", f"re-running the whole suite in {where}: {reason}"),
        ThreadPoolExecutor(max_workers=2, thread_name_prefix=f"repeat-{state.job_id}") as pool,
    ):
        b = None
        if baseline_repeat is None:
            b = pool.submit(
                run_pytest, state, runtime, baseline_dir, "baseline-repeat", command, cancel
            )
        c = pool.submit(
            run_pytest, state, runtime, candidate_dir, "candidate-repeat", command, cancel
        )
        candidate_repeat = c.result()
        if b is not None:
            baseline_repeat = b.result()
            if baseline_repeat.valid:
                store_repeat(runtime, key, baseline_repeat)
    baseline, candidate = runs
    log.info("reruns.suite_repeat", tests=comparison.order_dependent, baseline_cached=cached)
    return apply_suite_repeat(
        comparison,
        candidate_repeat,
        baseline_repeat,
        baseline_cached=cached,
        positions={**candidate.positions, **baseline.positions},
    )


def selection(changed: list[str], baseline: SuiteRun, candidate: SuiteRun) -> list[str]:
    """What to name on the re-runs' command line: each id, or its function when unstable."""
    out: dict[str, None] = {}
    for test_id in changed:
        key = baseline.positions.get(test_id) or candidate.positions.get(test_id)
        stable = test_id in baseline.tests and test_id in candidate.tests
        if key is None or stable or "[" not in test_id:
            out[test_id] = None
        else:
            out[key.rpartition("#")[0]] = None
    return list(out)


def _covers(early: list[str], runs: list[SuiteRun], changed: list[str]) -> bool:
    """True when early re-runs ran every changed test (or module), each time with a result."""
    chosen = set(early)
    for entry in changed:
        if entry not in chosen and entry.split("::", 1)[0] not in chosen:
            return False
        for r in runs:
            if "::" in entry and entry not in r.tests:
                return False
            if "::" not in entry and not any(t.startswith(f"{entry}::") for t in r.tests):
                return False
    return True


def traced_files(state: Job) -> list[str]:
    """The candidate's changed Python source files (not tests): what patch coverage traces."""
    patch = state.evidence.patch
    if patch is None:
        return []
    return sorted(
        f.path
        for f in patch.files
        if f.status != "deleted"
        and f.path.endswith(".py")
        and f.added_lines
        and not is_test_path(f.path, state.policy.test_globs)
    )


def record_lines(state: Job, runs: list[SuiteRun]) -> None:
    """Keep the lines the traced candidate re-runs executed, per test, in the evidence."""
    if not traced_files(state):
        return
    merged: dict[str, dict[str, set[int]]] = {}
    for run in runs:
        for test_id, files in run.lines.items():
            mine = merged.setdefault(test_id, {})
            for path, numbers in files.items():
                mine.setdefault(path, set()).update(numbers)
    executed = {t: {p: sorted(n) for p, n in f.items()} for t, f in merged.items()}
    state.evidence = state.evidence.model_copy(update={"executed": executed})
