"""The job: what to verify, as callers submit it."""

from __future__ import annotations

import re
import secrets
from datetime import UTC, datetime

from pydantic import Field, field_validator

from runner.models.base import Model

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


def one_line(value: str) -> str:
    """A job field that is one line without control characters or edge whitespace."""
    if _CONTROL.search(value) or "\n" in value or value != value.strip():
        raise ValueError("must be one line without control characters or edge whitespace")
    return value


def revision(value: str) -> str:
    """A base revision: one line, no whitespace (git checks the rest)."""
    if any(c.isspace() for c in one_line(value)):
        raise ValueError("a revision has no whitespace")
    return value


class FixJob(Model):
    """One request to verify a candidate patch."""

    repo: str = Field(min_length=1, max_length=4096, description="Local path or git URL.")
    base: str = Field(default="HEAD", min_length=1, max_length=256, description="Base revision.")
    patch: str = Field(min_length=1, description="The candidate's unified diff.")
    test_patch: str | None = Field(default=None, description="Regression tests showing the bug.")
    fail_to_pass: list[str] = Field(
        default_factory=list, description="Test ids that must fail before and pass after."
    )
    policy: str = Field(default="default", min_length=1, description="Policy name or file.")
    repro: list[str] = Field(default_factory=list, description="Repro commands (argv strings).")
    expect_error: str | None = Field(default=None, description="Expected last exception.")
    job_id: str | None = Field(
        default=None, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$", description="Caller's id."
    )

    @field_validator("repo", "policy")
    @classmethod
    def _one_line(cls, value: str) -> str:
        return one_line(value)

    @field_validator("base")
    @classmethod
    def _revision(cls, value: str) -> str:
        return revision(value)

    @field_validator("patch", "test_patch")
    @classmethod
    def _no_nul(cls, value: str | None) -> str | None:
        if value is not None and "\x00" in value:
            raise ValueError("a patch is text; it has no NUL bytes")
        return value

    @field_validator("fail_to_pass", "repro")
    @classmethod
    def _lines(cls, value: list[str]) -> list[str]:
        for item in value:
            if not item.strip() or _CONTROL.search(item) or "\n" in item:
                raise ValueError(f"{item!r}: must be a non-empty single line")
        return value

    @field_validator("expect_error")
    @classmethod
    def _expect(cls, value: str | None) -> str | None:
        if value is not None and not value.strip():
            raise ValueError("expect_error must not be blank")
        return value


def new_job_id() -> str:
    """A sortable, unique job id: UTC time to the second and 6 random hex digits."""
    return f"{datetime.now(UTC):%Y%m%dT%H%M%S}-{secrets.token_hex(3)}"


def new_fix_id() -> str:
    """A fix job's id (its attempts' verify jobs are <id>-a1, -a2 …)."""
    return f"fix-{new_job_id()}"
