"""What the job store holds and promises: its records and its protocol.

The SQLite implementation lives in :mod:`runner.service.store`; these types are what
the rest of the service sees.
"""

from __future__ import annotations

import builtins
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from runner.fix.result import FixResult
from runner.models import Verdict
from runner.service.models import (
    CallbackState,
    Delivery,
    FixSubmission,
    FixView,
    JobKind,
    JobStatus,
    JobSubmission,
    JobView,
)

MAX_CRASHES = 2

Submission = JobSubmission | FixSubmission
Outcome = Verdict | FixResult
ResultFor = Callable[[str, FixSubmission, str], FixResult]


def now() -> datetime:
    """The current time in UTC."""
    return datetime.now(UTC)


@dataclass(frozen=True)
class JobRecord:
    """One row of the store."""

    id: str
    token: str
    idem_key: str | None
    request_hash: str
    submission: Submission
    status: JobStatus
    attempts: int
    crashes: int
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    verdict: Verdict | None
    callback_state: CallbackState
    kind: JobKind = "verify"
    result: FixResult | None = None  # a fix job's outcome (verdict stays None)

    @property
    def outcome(self) -> Outcome | None:
        """The verdict of a verify job, the FixResult of a fix job."""
        return self.result if self.kind == "fix" else self.verdict

    def view(self, deliveries: list[Delivery]) -> JobView:
        """The public view of a verify job."""
        assert isinstance(self.submission, JobSubmission)
        return JobView(
            **self._common(deliveries), policy=self.submission.policy, verdict=self.verdict
        )

    def fix_view(self, deliveries: list[Delivery]) -> FixView:
        """The public view of a fix job."""
        assert isinstance(self.submission, FixSubmission)
        return FixView(
            **self._common(deliveries),
            error=self.submission.error.summary.splitlines()[0],
            max_attempts=self.submission.max_attempts,
            result=self.result,
        )

    def _common(self, deliveries: list[Delivery]) -> dict[str, Any]:
        """The fields both public views share."""
        return {
            "id": self.id,
            "status": self.status,
            "created_at": self.created_at,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "attempts": self.attempts,
            "crashes": self.crashes,
            "repo": self.submission.repo,
            "base": self.submission.base,
            "callback_url": self.submission.callback_url,
            "callback_state": self.callback_state,
            "deliveries": deliveries,
        }


def fix_error(fix_id: str, submission: FixSubmission, reason: str) -> FixResult:
    return submission.error_result(fix_id, reason)


class QueueLimitReached(Exception):
    """The store refused an insert: ``queued`` jobs wait already (the limit or more)."""

    def __init__(self, queued: int) -> None:
        super().__init__(f"{queued} jobs queued")
        self.queued = queued


@dataclass(frozen=True)
class Recovery:
    """What start-up recovery did with jobs a crash interrupted."""

    requeued: list[str]
    failed: list[str]


class JobStore(Protocol):
    """Where jobs live between submission and verdict (SQLite here; a server DB later)."""

    def add(
        self,
        job_id: str,
        token: str,
        idem_key: str | None,
        request_hash: str,
        sub: Submission,
        queue_limit: int | None = None,
    ) -> tuple[JobRecord, bool]:
        """Insert a queued job, or return the one with the same token and key (created=False).

        Raise :class:`QueueLimitReached` when ``queue_limit`` jobs are queued already;
        the count and the insert are one transaction.
        """
        ...

    def find(self, token: str, idem_key: str) -> JobRecord | None: ...
    def get(self, job_id: str) -> JobRecord | None: ...
    def list(
        self, token: str | None, status: JobStatus | None, limit: int, kind: JobKind = "verify"
    ) -> list[JobRecord]: ...
    def counts(self) -> dict[str, int]: ...
    def claim_next(self) -> JobRecord | None:
        """Oldest queued job → running (FIFO), or None."""
        ...

    def start(self, job_id: str) -> JobRecord | None:
        """A job claimed elsewhere (a Celery worker) → running; None if it already finished."""
        ...

    def finish(self, job_id: str, status: JobStatus, verdict: Outcome) -> JobRecord | None: ...
    def requeue(self, job_id: str) -> None: ...
    def cancel_queued(self, job_id: str, verdict: Outcome) -> bool: ...
    def recover(self, verdict_for: VerdictFor, result_for: ResultFor = ...) -> Recovery: ...
    def add_delivery(self, job_id: str, delivery: Delivery) -> None: ...
    def deliveries(self, job_id: str) -> builtins.list[Delivery]: ...
    def set_callback_state(self, job_id: str, state: CallbackState) -> None: ...
    def pending_callbacks(self) -> builtins.list[str]: ...
    def check_writable(self) -> None: ...
    def close(self) -> None: ...


class VerdictFor(Protocol):
    def __call__(self, job_id: str, reason: str) -> Verdict: ...
