"""One job's working state, private to the pipeline, and its timed phases."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from runner.core.maprecording import MapPlan
from runner.core.policy import Policy
from runner.core.testfiles import UnittestFiles
from runner.environments.imagebuild import EnvImage
from runner.environments.images import BaseImage
from runner.models import (
    EarlyAnswer,
    Evidence,
    FixJob,
    PhaseLog,
)
from runner.models import new_job_id as new_job_id
from runner.verify.deadlines import CandidateDeadline

_T = TypeVar("_T")

Progress = Callable[[str, str], None]
_DEADLINE_LOCK = threading.Lock()


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
    deadline: CandidateDeadline | None = None
    commit: str = ""
    started: float = field(default_factory=time.monotonic)
    fail_fast: bool = False
    early: EarlyAnswer | None = None
    unittest_files: UnittestFiles = field(default_factory=UnittestFiles)
    # whether this job's baseline should record the commit's per-test map (verify decides)
    map_plan: MapPlan = field(default_factory=lambda: MapPlan(False, "not decided"))

    @property
    def candidate_deadline(self) -> CandidateDeadline:
        """The deadline of the candidate's runs (made on first use from the policy)."""
        # the job's runs start in threads: one deadline for all of them
        with _DEADLINE_LOCK:
            if self.deadline is None:
                self.deadline = CandidateDeadline(self.policy.limits)
            return self.deadline

    @contextlib.contextmanager
    def phase(self, name: str, message: str = "") -> Iterator[None]:
        self.progress(name, message or name)
        started = time.monotonic()
        try:
            yield
        finally:
            self.timings[name] = round(self.timings.get(name, 0) + time.monotonic() - started, 3)


def timed(state: Job, name: str, work: Callable[[], _T]) -> _T:
    with state.phase(name, _PHASE_MESSAGES.get(name, name)):
        return work()


_PHASE_MESSAGES = {
    "baseline": "running the tests without the fix",
    "candidate": "running the tests with the fix",
    "lint": "running flake8 on the changed files",
    "candidate-affected": "running the affected tests first, beside the suite",
    "reruns-early": "re-running the baseline's failing tests with the fix, beside the suite",
    "repro-baseline": "running the repro command(s) without the fix",
    "repro-candidate": "running the repro command(s) with the fix",
}
