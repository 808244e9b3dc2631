"""Affected tests first: the baseline's per-test map cached, the early run, the early answer.

A baseline run carries ``--fixrunner-testmap`` when the job wants the commit's map and it
is not cached yet (runner/core/maprecording.py decides; the harness then records which of
the tree's functions each test executes); the map is cached per commit. With a cached
baseline and its map, the candidate's changed files select the affected tests, which run
in their own copy of the candidate tree beside the full suite. Their result is the early
answer: a progress line (``early: …``, in the CLI's stream and the service's job log) and
the verdict's ``early`` section. A failure among them, confirmed by the policy's re-runs,
ends the job ``rejected`` when fail_fast applies; otherwise the full suite decides.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import structlog

from runner.common.files import read_regular
from runner.core.affected import Selection, TestMap, early_answer, read_testmap, select_tests
from runner.core.maprecording import BaselinePlan, map_outcome, plan_baseline
from runner.core.paths import is_test_path
from runner.core.suite import compare
from runner.errors import SandboxError
from runner.models import Comparison, EarlyAnswer, Model, ParsedPatch, SuiteRun
from runner.sandbox.docker import hand_over
from runner.verify.caches import load_text, store_text
from runner.verify.job import Job, timed
from runner.verify.jobfolder import STREAM_MAX_BYTES
from runner.verify.runs import PYTEST_ARGS, rerun, run_pytest
from runner.verify.runtime import Runtime
from runner.workspace.trees import copy_tree

__all__ = [
    "TESTMAP_OPTION",
    "Early",
    "baseline_plan",
    "compare_early",
    "note_map",
    "record_testmap",
    "start_early",
]

log = structlog.get_logger(__name__)

# The harness's switch (runner/verify/harness/fixrunner_harness.py) for the map.
TESTMAP_OPTION = "--fixrunner-testmap"
PHASE = "candidate-affected"
# The early run is capped: past this many ids the command line is the suite's own size.
MAX_IDS = 20_000


class MapCache(Model):
    """A base commit's per-test map with the baseline outcomes it was recorded beside."""

    testmap: TestMap
    baseline: SuiteRun


def map_key(state: Job, command: list[str]) -> str:
    """The map belongs to the base commit, not to a job's test part: keyed without it."""
    assert state.env is not None
    material = json.dumps(["testmap", state.commit, state.env.id, command, PYTEST_ARGS])
    return hashlib.sha256(material.encode()).hexdigest()


def job_test_files(state: Job, parsed: ParsedPatch) -> set[str]:
    """Test files this job changes in both trees or in the candidate: its own tests."""
    globs = state.policy.test_globs
    patches = [parsed, *filter(None, [state.evidence.test_patch])]
    return {p for patch in patches for p in patch.paths() if is_test_path(p, globs)}


def bug_tests(state: Job, parsed: ParsedPatch, baseline: SuiteRun) -> list[str]:
    """The job's own tests that failed on a baseline run with them: the bug, shown by tests.

    None when the job names its fail-to-pass tests, or when the policy does not rest the
    verdict on tests showing the bug (evidence "none", or "either" with a repro command).
    """
    evidence = state.policy.evidence
    by_tests = evidence == "both" or (evidence == "either" and not state.job.repro)
    if state.job.fail_to_pass or not by_tests:
        return []
    files = job_test_files(state, parsed)
    return sorted(
        t
        for t, r in baseline.tests.items()
        if r.outcome in ("failed", "error") and t.split("::", 1)[0] in files
    )


def record_testmap(
    state: Job, runtime: Runtime, command: list[str], baseline: SuiteRun, parsed: ParsedPatch
) -> bool:
    """Cache the map a fresh, valid baseline run recorded (its stream is already checked).

    Tests in the files this job's patches change are left out: they are this job's, and
    may not exist for the next candidate on the same commit. True when a map was cached;
    a valid run that gave none caches an empty one, so later jobs that want the map do
    not run the baseline again for a map it cannot give (they select everything).
    """
    if not baseline.valid:
        return False
    data = read_regular(state.folder / "harness" / "baseline.jsonl", STREAM_MAX_BYTES)
    testmap = read_testmap(data) if data is not None else None
    recorded = testmap is not None
    if testmap is None:
        testmap = TestMap(monitor="none")
    own = job_test_files(state, parsed)
    keep = {t: f for t, f in testmap.tests.items() if t.split("::", 1)[0] not in own}
    outcomes = {t: r for t, r in baseline.tests.items() if t.split("::", 1)[0] not in own}
    entry = MapCache(
        testmap=testmap.model_copy(update={"tests": keep}),
        baseline=baseline.model_copy(update={"tests": outcomes, "collection_errors": []}),
    )
    store_text(runtime, f"{map_key(state, command)}.testmap.json", entry.model_dump_json())
    return recorded


def baseline_plan(
    state: Job, runtime: Runtime, command: list[str], cached: SuiteRun | None
) -> BaselinePlan:
    """Whether the baseline runs, and with the map's switch (recorded once per commit)."""
    mapped = load_testmap(state, runtime, command) is not None
    return plan_baseline(state.map_plan, cached is not None, mapped)


def note_map(state: Job, plan: BaselinePlan, recorded: bool, valid: bool) -> None:
    """Say in the verdict's ``early`` section whether this job recorded the map, and why."""
    if state.early is None:
        return
    outcome = map_outcome(state.map_plan, plan, recorded, valid)
    state.early = state.early.model_copy(update={"testmap": outcome})


def load_testmap(state: Job, runtime: Runtime, command: list[str]) -> MapCache | None:
    text = load_text(runtime, f"{map_key(state, command)}.testmap.json")
    try:
        return MapCache.model_validate_json(text) if text is not None else None
    except ValueError:
        return None


class _Either(threading.Event):
    """Set when it is, or when any of ``others`` is (the sandbox only polls ``is_set``)."""

    def __init__(self, *others: threading.Event | None) -> None:
        super().__init__()
        self._others = [e for e in others if e is not None]

    def is_set(self) -> bool:
        return super().is_set() or any(e.is_set() for e in self._others)


@dataclass
class Early:
    """The affected tests' run beside the full suite, and the switch that stops the suite."""

    selection: Selection
    fail_fast: bool
    baseline: SuiteRun | None = None
    unsure: set[str] = field(default_factory=set)
    # without --fail-to-pass: the tests of the job's own test files that failed on the
    # baseline (which ran with them), i.e. the tests that show the bug
    bug_tests: list[str] = field(default_factory=list)
    halt: threading.Event = field(default_factory=threading.Event)
    future: Future[SuiteRun] | None = None
    tree: Path | None = None
    run: SuiteRun | None = None
    stopped: bool = False

    def suite_cancel(self, cancel: threading.Event | None) -> threading.Event:
        """The cancel event for the full candidate suite: the job's, or fail_fast's stop."""
        return _Either(cancel, self.halt)

    def answer(
        self,
        state: Job,
        runtime: Runtime,
        command: list[str],
        cancel: threading.Event | None,
    ) -> EarlyAnswer:
        """Wait for the early run, emit the early line, and stop the suite under fail_fast."""
        named = state.job.fail_to_pass
        fail_to_pass = named or self.bug_tests
        run = None
        if self.future is not None:
            try:
                run = self.future.result()
            except SandboxError as exc:
                log.warning("affected.early_failed", error=str(exc))
        self.run = run
        seconds = round(time.monotonic() - state.started, 3)
        baseline = self.baseline
        early = early_answer(
            self.selection, baseline, run, fail_to_pass, seconds, named=bool(named)
        )
        # A test file the job changes has no comparable baseline outcome unless the
        # baseline ran with the change: its failure is reported, not acted on.
        blocking = [
            t for t in early.failed if t in fail_to_pass or t.split("::", 1)[0] not in self.unsure
        ]
        if blocking and self.fail_fast and run is not None and run.valid and baseline:
            confirmed = self._confirm(state, runtime, command, blocking, baseline, cancel)
            if confirmed:
                early = early.model_copy(update={"failed": confirmed, "stopped": True})
                self.stopped = True
                self.halt.set()
        line = early.answer + (
            "; stopping (fail_fast)"
            if early.stopped
            else ("; full suite running" if run is not None else "")
        )
        early = early.model_copy(update={"answer": line})
        state.progress("early", line)
        return early

    def _confirm(
        self,
        state: Job,
        runtime: Runtime,
        command: list[str],
        failed: list[str],
        baseline: SuiteRun,
        cancel: threading.Event | None,
    ) -> list[str]:
        """The failures that fail again in every re-run (a flaky test stops nothing)."""
        ids = [t for t in failed if not t.startswith("<")]
        if state.policy.reruns <= 0 or self.tree is None or not ids:
            return failed
        runs = rerun(state, runtime, self.tree, f"{PHASE}-rerun", command, ids, cancel, baseline)
        return [
            t
            for t in ids
            if all(r.valid and r.tests.get(t) is not None for r in runs)
            and all(r.tests[t].outcome in ("failed", "error") for r in runs)
        ]


def start_early(
    state: Job,
    runtime: Runtime,
    pool: ThreadPoolExecutor,
    candidate_dir: Path,
    command: list[str],
    cached: SuiteRun | None,
    parsed: ParsedPatch,
    cancel: threading.Event | None,
) -> Early:
    """Select the affected tests and start them in their own copy of the candidate tree.

    The map is the base commit's (from any earlier job on it); the outcomes compared
    against are this baseline's when cached, else the ones recorded beside the map (then
    a failure in a test file the job changes is reported but stops nothing).
    """
    entry = load_testmap(state, runtime, command)
    if entry is None:
        selection = Selection(
            everything=True, reason="no per-test map for this commit yet (its baseline records it)"
        )
        return Early(selection=selection, fail_fast=state.fail_fast)
    exact = cached is not None and cached.valid
    baseline = cached if cached is not None and exact else entry.baseline
    selection = select_tests(
        parsed, entry.testmap, baseline, state.job.fail_to_pass, state.policy.test_globs
    )
    early = Early(
        selection=selection,
        fail_fast=state.fail_fast,
        baseline=baseline,
        unsure=set() if exact else job_test_files(state, parsed),
        bug_tests=bug_tests(state, parsed, baseline) if exact else [],
    )
    args = [*selection.ids, *selection.files]
    if selection.everything or not args or len(args) > MAX_IDS:
        return early
    tree = copy_tree(candidate_dir, candidate_dir.parent / PHASE)
    hand_over(tree, runtime.sandbox._user)
    early.tree = tree
    pinned = [f"--rootdir={baseline.rootdir}", "-c", baseline.inifile or "/dev/null"]
    extra = [*(pinned if baseline.rootdir else []), *args]
    early.future = pool.submit(
        timed,
        state,
        PHASE,
        lambda: run_pytest(state, runtime, tree, PHASE, command, cancel, extra),
    )
    return early


def compare_early(baseline: SuiteRun, early: SuiteRun) -> Comparison:
    """Baseline vs the early run, over the tests the early run selected."""
    chosen = {t: r for t, r in baseline.tests.items() if t in early.tests}
    return compare(baseline.model_copy(update={"tests": chosen}), early)
