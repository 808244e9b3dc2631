"""One job's candidate deadline: learned once the baseline's suite time is known.

The sandbox's watchdog asks :meth:`CandidateDeadline.seconds` while a candidate run
goes on, so a baseline that finishes first shortens a candidate run already started.
"""

from __future__ import annotations

import threading
from typing import Literal

from runner.core.deadlines import deadline_for, stop_reason
from runner.core.policy import LimitsPolicy
from runner.models import Deadlines, RunResult, SuiteRun

__all__ = ["CandidateDeadline", "with_stop_reason"]


class CandidateDeadline:
    """The deadline of a job's candidate runs, and whether one was stopped by it."""

    def __init__(self, limits: LimitsPolicy) -> None:
        self._limits = limits
        self._lock = threading.Lock()
        self._current = deadline_for(limits, None)
        self._stopped: Literal["deadline", "process_limit"] | None = None

    def learn(self, baseline: SuiteRun) -> None:
        """Take the baseline's suite time (a valid run's only) as what to learn from."""
        if baseline.valid and baseline.duration_s:
            with self._lock:
                self._current = deadline_for(self._limits, baseline.duration_s)

    @property
    def pids(self) -> int:
        """The policy's process limit, for the reason a stopped run gives."""
        return self._limits.pids

    def seconds(self) -> float:
        """Seconds a candidate run may take now (the sandbox's watchdog asks this)."""
        return self._current.suite_s

    def record(self, result: RunResult) -> None:
        """Note a candidate run the sandbox stopped: at the process limit or the deadline."""
        with self._lock:
            if result.pids_limited:
                self._stopped = "process_limit"
            elif result.timed_out and self._stopped is None:
                self._stopped = "deadline"

    def verdict(self) -> Deadlines:
        """What the verdict records: the deadline, its source and reason, and any stop."""
        return self._current.model_copy(update={"stopped": self._stopped})


def with_stop_reason(
    run: SuiteRun, result: RunResult, deadline: CandidateDeadline, candidate: bool
) -> SuiteRun:
    """The graded run, saying why the runner stopped it when it did (else unchanged)."""
    if result.pids_limited:
        stopped: Literal["deadline", "process_limit"] = "process_limit"
    elif result.timed_out:
        stopped = "deadline"
    else:
        return run
    applied = deadline.verdict()
    timeout = result.timeout_s if result.timeout_s is not None else applied.suite_s
    learned = candidate and applied.source == "learned" and timeout == applied.suite_s
    source = "learned" if learned else "configured"
    reason = stop_reason(stopped, timeout, deadline.pids, source)
    return run.model_copy(
        update={"valid": False, "invalid_reason": reason, "pids_limited": result.pids_limited}
    )
