"""Request and response bodies of the service API, shared with ``runner.client``.

Every body is a pydantic model with ``extra="forbid"``; none of this imports FastAPI.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Literal

from pydantic import Field, field_validator

from runner.fix.errorreport import ErrorReport
from runner.fix.result import FixResult
from runner.models import FixJob, Model, Verdict, one_line, revision

JobStatus = Literal["queued", "running", "done", "cancelled"]
# What a row of the store is: a verify job (/v1/jobs) or a fix job (/v1/fixes).
JobKind = Literal["verify", "fix"]
# What a policy name may look like: a bundled or configured policy, never a path.
POLICY_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")
JOB_STATUSES: tuple[JobStatus, ...] = ("queued", "running", "done", "cancelled")
FINISHED: frozenset[str] = frozenset({"done", "cancelled"})


class JobSubmission(FixJob):
    """POST /v1/jobs: a FixJob plus where to deliver its verdict."""

    callback_url: str | None = Field(
        default=None,
        max_length=2048,
        description="http(s) URL that receives the verdict, signed with the token's secret.",
    )

    @field_validator("job_id")
    @classmethod
    def _no_job_id(cls, value: str | None) -> str | None:
        if value is not None:
            raise ValueError("the service assigns job ids; leave job_id out")
        return value

    @field_validator("callback_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        return _callback_url(value)

    def fix_job(self, job_id: str) -> FixJob:
        """The FixJob the pipeline runs, under the service's own job id."""
        data = self.model_dump(exclude={"callback_url"})
        data["job_id"] = job_id
        return FixJob.model_validate(data)


def _callback_url(value: str | None) -> str | None:
    if value is None:
        return value
    if not value.startswith(("http://", "https://")) or any(c.isspace() for c in value):
        raise ValueError("must be an http:// or https:// URL without whitespace")
    return value


class FixSubmission(Model):
    """POST /v1/fixes: an error report and the repository it happened in."""

    repo: str = Field(min_length=1, max_length=4096, description="Local path or git URL.")
    base: str = Field(
        default="HEAD", min_length=1, max_length=256, description="The failing revision."
    )
    error: ErrorReport = Field(description="The production error to fix.")
    max_attempts: int | None = Field(
        default=None,
        ge=1,
        le=20,
        description="Candidates to try; default and ceiling: [fixer] max_attempts.",
    )
    callback_url: str | None = Field(
        default=None,
        max_length=2048,
        description="http(s) URL that receives the FixResult, signed with the token's secret.",
    )

    # The same rules as a FixJob's: each attempt of the loop becomes one.
    @field_validator("repo")
    @classmethod
    def _one_line(cls, value: str) -> str:
        return one_line(value)

    @field_validator("base")
    @classmethod
    def _revision(cls, value: str) -> str:
        return revision(value)

    @field_validator("callback_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        return _callback_url(value)

    def error_result(self, fix_id: str, reason: str, model: str = "") -> FixResult:
        """An ``error`` FixResult decided by the service, not the fix loop."""
        return FixResult(
            fix_id=fix_id,
            status="error",
            summary=f"error: {reason}",
            repo=self.repo,
            base=self.base,
            error=self.error.summary.splitlines()[0],
            model=model,
        )


class JobRef(Model):
    """What a submission returns: the job's id and its status."""

    id: str = Field(description="The service's job id.")
    status: JobStatus = Field(description="queued, running, done or cancelled.")


class Delivery(Model):
    """One attempt to POST a job's verdict to its callback URL."""

    attempt: int = Field(description="1 for the first try.")
    at: datetime = Field(description="When the attempt was made (UTC).")
    ok: bool = Field(description="The receiver answered 2xx.")
    status_code: int | None = Field(default=None, description="The receiver's HTTP status.")
    error: str | None = Field(default=None, description="Why the attempt failed, if it did.")


CallbackState = Literal["none", "pending", "delivered", "failed"]


class JobView(Model):
    """GET /v1/jobs/{id}: a job's state and, once done, its verdict."""

    id: str
    status: JobStatus
    created_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    attempts: int = Field(default=0, description="How many times a worker started it.")
    crashes: int = Field(default=0, description="Service crashes while it ran.")
    repo: str = Field(description="The job's repository.")
    base: str = Field(description="The job's base revision.")
    policy: str = Field(description="The job's policy.")
    callback_url: str | None = None
    callback_state: CallbackState = "none"
    deliveries: list[Delivery] = Field(default_factory=list)
    verdict: Verdict | None = Field(default=None, description="Set when status is done/cancelled.")


class FixView(Model):
    """GET /v1/fixes/{id}: a fix job's state and, once finished, its FixResult."""

    id: str
    status: JobStatus
    created_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    attempts: int = Field(
        default=0,
        description="How many times a worker started it (the fix's own "
        "candidates are result.attempts).",
    )
    crashes: int = Field(default=0, description="Service crashes while it ran.")
    repo: str = Field(description="The fix's repository.")
    base: str = Field(description="The fix's base revision.")
    error: str = Field(description="The reported error, 'Type: first message line'.")
    max_attempts: int | None = Field(default=None, description="As requested.")
    callback_url: str | None = None
    callback_state: CallbackState = "none"
    deliveries: list[Delivery] = Field(default_factory=list)
    result: FixResult | None = Field(default=None, description="Set when status is done/cancelled.")


class FixList(Model):
    """GET /v1/fixes: fix jobs, newest first."""

    fixes: list[FixView]


class JobList(Model):
    """GET /v1/jobs: jobs, newest first."""

    jobs: list[JobView]


class CallbackBody(Model):
    """What a callback POSTs (signed): the job's id, final status and verdict."""

    id: str
    status: JobStatus
    verdict: Verdict


class FixCallbackBody(Model):
    """What a fix's callback POSTs (signed the same way): id, final status, FixResult."""

    id: str
    status: JobStatus
    result: FixResult


class FieldError(Model):
    """One problem with a request, in pydantic's shape."""

    loc: list[str | int] = Field(description="Where: e.g. ['body', 'repo'].")
    msg: str
    type: str


class ErrorBody(Model):
    """Every 4xx/5xx body: ``detail`` is a message or a list of field errors."""

    detail: str | list[FieldError]


class Readiness(Model):
    """GET /readyz: each dependency's state."""

    ready: bool
    checks: dict[str, str] = Field(description="Check name → 'ok' or why not.")
