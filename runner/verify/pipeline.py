"""`verify(job) -> Verdict`: a row of short named steps.

The steps' work lives beside it by what it owns: runtime, job, jobfolder, caches, runs,
lint, repros, reruns, verdicts.

prepare → intake → checkout → environment → apply → run (baseline ‖ candidate ‖ lint)
→ compare (with re-runs) → judge. Every job leaves a folder with its patch, capped
logs, JUnit files and verdict.json. Candidate faults become a ``rejected`` verdict;
infrastructure failures become ``error``; nothing is decided by reading log text.
"""

from __future__ import annotations

import contextlib
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path

import structlog

from runner.common.logs import bind_job, unbind_job
from runner.core.maprecording import Caller, plan_map
from runner.core.patch import parse_patch, split_test_part
from runner.core.policy import load_policy
from runner.core.repro import (
    check_expected,
    split_command,
)
from runner.core.suite import (
    compare,
)
from runner.environments.treebuild import build_reasons, build_trees
from runner.errors import (
    CandidateError,
    InfrastructureError,
    PatchError,
    RunnerError,
    SandboxError,
)
from runner.models import (
    FixJob,
    ParsedPatch,
    Verdict,
)
from runner.sandbox.docker import hand_over
from runner.verify.affected import (
    TESTMAP_OPTION,
    baseline_plan,
    compare_early,
    note_map,
    record_testmap,
    start_early,
)
from runner.verify.caches import (
    baseline_key,
    load_baseline,
    store_baseline,
)
from runner.verify.environment import changed_environment_files, prepare_job_environment
from runner.verify.job import Job, Progress, new_job_id, timed
from runner.verify.jobfolder import (
    write_job_files,
    write_verdict,
)
from runner.verify.lint import run_lint
from runner.verify.repros import repro_evidence, repro_trees, run_repro
from runner.verify.reruns import (
    EARLY_PHASE,
    early_rerun_ids,
    early_result,
    run_reruns,
    traced_files,
)
from runner.verify.runs import (
    WORK,
    rerun,
    run_pytest,
    test_command,
)
from runner.verify.runtime import Runtime
from runner.verify.sources import read_befores, source_changes
from runner.verify.testfiles import collect_args, decide_unittest_files
from runner.verify.verdicts import build_verdict, error_verdict
from runner.workspace.trees import (
    CheckoutLimits,
    apply_patch,
    check_paths_against_tree,
    checkout,
    copy_tree,
    remove_tree,
    tree_id,
)
from runner.workspace.urls import validate_repo_url

__all__ = ["Progress", "Runtime", "new_job_id", "verify"]

log = structlog.get_logger(__name__)


def _quiet(phase: str, message: str) -> None:
    return None


def verify(
    job: FixJob,
    runtime: Runtime,
    progress: Progress = _quiet,
    cancel: threading.Event | None = None,
    *,
    fail_fast: bool = False,
    caller: Caller = "one-shot",
    record_map: bool = False,
) -> Verdict:
    """Verify one candidate patch; always returns a verdict, also written to the job folder.

    ``fail_fast`` is the caller's default for the policy's key of that name: a failure
    among the affected tests, run first, then ends the job ``rejected`` early. ``caller``
    and ``record_map`` (``--record-map``) decide with ``[affected] record_map`` whether
    the baseline records the commit's per-test map for later candidates.
    """
    job_id = job.job_id or new_job_id()
    bind_job(job_id)
    folder = runtime.jobs_dir / job_id
    folder.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    try:
        policy = load_policy(job.policy, runtime.policies_dir)
    except RunnerError as exc:
        unbind_job()
        return write_verdict(folder, error_verdict(job_id, str(exc)))
    state = Job(job=job, job_id=job_id, folder=folder, policy=policy, progress=progress)
    state.started = started
    state.fail_fast = fail_fast if policy.fail_fast is None else policy.fail_fast
    state.map_plan = plan_map(runtime.settings.affected.record_map, caller, record_map)
    trees = folder / "trees"
    stop, expired, done = threading.Event(), threading.Event(), threading.Event()
    watcher = threading.Thread(
        target=_watch_job,
        args=(policy.limits.job_timeout_s, cancel, stop, expired, done),
        daemon=True,
    )
    watcher.start()
    try:
        write_job_files(state)
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
    verdict = build_verdict(state, runtime)
    log.info(
        "verdict", status=verdict.status, summary=verdict.summary, seconds=state.timings["total"]
    )
    unbind_job()
    return write_verdict(folder, verdict)


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


def _intake(state: Job) -> tuple[ParsedPatch, ParsedPatch | None, str]:
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
        check_expected(state.job.expect_error)
        for command in state.job.repro:
            split_command(command)
    return parsed, test_parsed, parsed.text


def _test_part(state: Job, parsed: ParsedPatch) -> str:
    """The candidate's test files, which the baseline tree gets too."""
    test_part, source_part = split_test_part(parsed, None, state.policy.test_globs)
    if not source_part and state.job.fail_to_pass:
        # A fix that lives in the tests (a missing fixture): applied to both trees it
        # would leave nothing to compare, so the baseline stays the base commit, where
        # the tests the job names show the failure.
        return ""
    return test_part


def _run_job(state: Job, runtime: Runtime, trees: Path, cancel: threading.Event | None) -> None:
    parsed, test_parsed, whole = _intake(state)
    state.evidence = state.evidence.model_copy(
        update={"fail_to_pass_ids": state.job.fail_to_pass, "expect_error": state.job.expect_error}
    )
    with state.phase("checkout", "fetching the repository"):
        url = validate_repo_url(state.job.repo, runtime.settings.security.allow_local_repos)
        mirror, commit = runtime.mirrors.resolve(url, state.job.base, cancel)
        state.mirror, state.commit = mirror, commit
        limits = CheckoutLimits.of(runtime.settings.workspace)
        baseline_dir = checkout(mirror, commit, trees / "baseline", limits, cancel)
    # The environment reads only the baseline tree, so the candidate's checkout overlaps it;
    # a patch that changes what describes the environment gets the candidate tree's, below.
    changed_env = changed_environment_files(parsed, test_parsed)
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"checkout-{state.job_id}") as pool:
        candidate_future = pool.submit(
            checkout, mirror, commit, trees / "candidate", limits, cancel
        )
        if not changed_env:
            prepare_job_environment(state, runtime, baseline_dir, cancel)
        waited = time.monotonic()
        candidate_dir = candidate_future.result()
        state.timings["checkout"] += round(time.monotonic() - waited, 3)
    with state.phase("apply", "applying the patches"):
        # the base's text, before the candidate's test part lands in the baseline tree
        befores = read_befores(baseline_dir, parsed)
        test_befores = read_befores(baseline_dir, test_parsed) if test_parsed else {}
        applied = _apply(state, baseline_dir, candidate_dir, parsed, test_parsed, whole)
        sources = source_changes(befores, candidate_dir, parsed)
        test_sources = (
            source_changes(test_befores, baseline_dir, test_parsed) if test_parsed else []
        )
        state.evidence = state.evidence.model_copy(
            update={"applied_with": applied, "sources": sources, "test_sources": test_sources}
        )
        baseline_tree = tree_id(baseline_dir)
    if changed_env:
        prepare_job_environment(state, runtime, candidate_dir, cancel, (changed_env, baseline_dir))
    _build_trees(state, runtime, {"baseline": baseline_dir, "candidate": candidate_dir}, cancel)
    _runs(state, runtime, baseline_dir, candidate_dir, baseline_tree, parsed, cancel)


def _build_trees(
    state: Job, runtime: Runtime, trees: dict[str, Path], cancel: threading.Event | None
) -> None:
    # A version file or a C extension exists only once the project is built: build each
    # tree in place (the candidate's own sources), and say so in the environment notes.
    reasons = build_reasons(trees["baseline"])
    if not reasons or state.env is None:
        return
    with state.phase("build", "building the project in each tree"):
        notes = build_trees(runtime.sandbox, state.env, trees, state.job_id, cancel)
    state.env.notes += [f"each tree built before its tests: {', '.join(reasons)}", *notes]
    state.env.write_environment_json(state.folder)


def _apply(
    state: Job,
    baseline_dir: Path,
    candidate_dir: Path,
    parsed: ParsedPatch,
    test_parsed: ParsedPatch | None,
    whole: str,
) -> str:
    allow_3way = state.policy.patch.allow_3way
    for tree in (baseline_dir, candidate_dir):
        if test_parsed is not None and state.job.test_patch:
            check_paths_against_tree(tree, sorted(test_parsed.paths()))
            apply_patch(tree, test_parsed.text, allow_3way, "test patch")
    check_paths_against_tree(candidate_dir, sorted(parsed.paths()))
    applied = apply_patch(candidate_dir, whole, allow_3way, "candidate patch")
    # Which files are tests can depend on the trees (a test.py of TestCases): decided once
    # both hold every test, before the candidate's test part is split off for the baseline.
    decide_unittest_files(state, (baseline_dir, candidate_dir))
    test_part = _test_part(state, parsed)
    check_paths_against_tree(baseline_dir, sorted(parsed.paths()))
    if test_part:
        apply_patch(baseline_dir, test_part, allow_3way, "candidate's test part")
    return applied


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
    command = test_command(runtime.settings, state.job.repo, state.env.python)
    command += collect_args(state.unittest_files, command, WORK)
    limits = state.policy.limits.for_phase("test")
    key = baseline_key(baseline_tree, state.env.id, command, limits.model_dump_json())
    cached = load_baseline(runtime, key)
    if cached is not None:
        state.candidate_deadline.learn(cached)
    user = runtime.sandbox._user
    trees_for_repro = repro_trees(state, baseline_dir, candidate_dir)
    early_ids = early_rerun_ids(state, cached)
    # Early re-runs read their own copy: the main run may write into the candidate tree.
    early_tree = (
        copy_tree(candidate_dir, candidate_dir.parent / "candidate-early") if early_ids else None
    )
    for tree in (baseline_dir, candidate_dir, *trees_for_repro, *filter(None, [early_tree])):
        hand_over(tree, user)
    with ThreadPoolExecutor(max_workers=6, thread_name_prefix=f"job-{state.job_id}") as pool:
        early_future = None
        if early_tree is not None:
            early_future = pool.submit(
                timed,
                state,
                "reruns-early",
                lambda: rerun(
                    state,
                    runtime,
                    early_tree,
                    EARLY_PHASE,
                    command,
                    early_ids,
                    cancel,
                    cached,
                    traced_files(state),
                ),
            )
        repro_futures = [
            pool.submit(
                timed,
                state,
                f"repro-{side}",
                partial(run_repro, state, runtime, tree, side, cancel),
            )
            for side, tree in zip(("baseline", "candidate"), trees_for_repro, strict=False)
        ]
        baseline_future, recorded, ran_valid = None, False, True
        plan = baseline_plan(state, runtime, command, cached)
        if plan.run:
            mapping = [TESTMAP_OPTION] if plan.with_map else []
            baseline_future = pool.submit(
                timed,
                state,
                "baseline",
                lambda: run_pytest(
                    state, runtime, baseline_dir, "baseline", command, cancel, mapping
                ),
            )
        first = start_early(state, runtime, pool, candidate_dir, command, cached, parsed, cancel)
        suite_cancel = first.suite_cancel(cancel)
        candidate_future = pool.submit(
            timed,
            state,
            "candidate",
            lambda: run_pytest(state, runtime, candidate_dir, "candidate", command, suite_cancel),
        )
        lint_future = pool.submit(
            timed,
            state,
            "lint",
            lambda: run_lint(
                state, runtime, baseline_dir, candidate_dir, baseline_tree, parsed, cancel
            ),
        )
        if first.future is not None:
            state.early = first.answer(state, runtime, command, cancel)
        if baseline_future is not None:
            baseline = baseline_future.result()
            # learned now: shortens the candidate's runs still going (the watchdog asks)
            state.candidate_deadline.learn(baseline)
            ran_valid = baseline.valid
            if baseline.valid:
                store_baseline(runtime, key, baseline)
                recorded = plan.with_map and record_testmap(
                    state, runtime, command, baseline, parsed
                )
            elif cached is not None:
                # it ran again only for the map: the cached run still stands
                baseline, state.baseline_cached = cached, True
        else:
            assert cached is not None
            baseline = cached
            state.baseline_cached = True
            state.progress("baseline", "baseline results reused from the cache")
        if first.future is None:
            state.early = first.answer(state, runtime, command, cancel)
        note_map(state, plan, recorded, ran_valid)
        try:
            candidate = candidate_future.result()
        except SandboxError:
            # fail_fast stopped the suite before its container started: no container starts
            # after a stop, and the affected tests' run below is the candidate's evidence
            if not (first.stopped and first.run is not None):
                raise
            candidate = first.run
        lint = lint_future.result()
        repro_runs = repro_evidence(state, [f.result() for f in repro_futures])
        early = early_result(early_future)
    if first.stopped and first.run is not None:
        # fail_fast: the affected tests' run is the candidate's evidence; the suite was stopped
        candidate = first.run
    state.evidence = state.evidence.model_copy(
        update={"baseline": baseline, "candidate": candidate, "lint": lint, "repro": repro_runs}
    )
    # The graded runs (the baseline cached or fresh), for callers that need per-test detail
    # (the fix loop), under the ids pytest itself reported.
    (state.folder / "baseline.json").write_text(baseline.model_dump_json(), encoding="utf-8")
    (state.folder / "candidate.json").write_text(candidate.model_dump_json(), encoding="utf-8")
    if first.stopped:
        comparison = compare_early(baseline, candidate)
        state.evidence = state.evidence.model_copy(update={"comparison": comparison})
        return
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
        comparison = run_reruns(
            state,
            runtime,
            key,
            trees,
            command,
            comparison,
            early_runs,
            cancel,
            (baseline, candidate),
        )
    state.evidence = state.evidence.model_copy(update={"comparison": comparison})
