"""The outcome of a fix job: :class:`FixResult` and its :class:`Attempt` s.

Apart from :mod:`runner.fix.loop` so that the service's models and the client can use it
without importing the Anthropic SDK (about 1.5 s).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from runner import __version__
from runner.fix.errorreport import Repro
from runner.models import Model, Verdict

__all__ = ["Attempt", "AttemptStatus", "FixResult", "FixStatus", "PullRequestRecord"]


AttemptStatus = Literal["verified", "rejected", "error"]


class Attempt(Model):
    """One candidate: what Claude proposed, what the sandbox said, what it cost."""

    number: int = Field(description="1-based attempt number.")
    status: AttemptStatus = Field(description="verified, rejected (with reasons) or error.")
    reasons: list[str] = Field(default_factory=list, description="Why it was not verified.")
    explanation: str = Field(default="", description="Claude's root cause and fix.")
    patch: str = Field(default="", description="The proposed source diff.")
    test_patch: str = Field(default="", description="The proposed regression test diff.")
    verdict: Verdict | None = Field(default=None, description="The sandbox's verdict, if run.")
    input_tokens: int = Field(default=0, description="Input tokens of this request.")
    output_tokens: int = Field(default=0, description="Output tokens of this reply.")
    cost_usd: float | None = Field(default=None, description="From the price table.")
    seconds: float = Field(default=0.0, description="Wall time of the attempt.")


FixStatus = Literal["verified", "not_verified", "error"]


class PullRequestRecord(Model):
    """What became of a verified fix's branch and draft pull request."""

    state: Literal["opened", "updated", "failed"] = Field(
        description="opened (new PR), updated (the group's open PR), or failed (see error)."
    )
    branch: str = Field(description="The branch pushed: fixrunner/<group>-<short id>.")
    commit: str | None = Field(default=None, description="The fix commit pushed.")
    url: str | None = Field(default=None, description="The pull request's HTML URL.")
    number: int | None = Field(default=None, description="The pull request's number.")
    error: str | None = Field(default=None, description="Why the push or the PR failed.")
    seconds_from_first_event: float | None = Field(
        default=None, description="From the group's first event to the opened PR."
    )


class FixResult(Model):
    """The outcome of one fix job: every attempt, and the verified patch if there is one."""

    schema_version: str = "1.1"  # 1.1: pr (the branch and draft PR), additive
    fix_id: str = Field(description="Id of the fix job (attempt job ids start with it).")
    status: FixStatus = Field(description="verified, not_verified, or error.")
    summary: str = Field(description="One line.")
    repo: str = Field(description="Repository as given.")
    base: str = Field(description="Revision as given.")
    commit: str | None = Field(default=None, description="The commit it resolved to.")
    error: str = Field(description="The reported error, 'Type: first message line'.")
    model: str = Field(description="Model name.")
    repro: Repro | None = Field(default=None, description="Repro derived from the report.")
    context_tokens: int = Field(default=0, description="Estimated tokens of the code context.")
    attempts: list[Attempt] = Field(default_factory=list)
    patch: str | None = Field(default=None, description="The verified source diff.")
    test_patch: str | None = Field(default=None, description="The verified test diff.")
    pull_request: str | None = Field(default=None, description="PR description (Markdown).")
    pr: PullRequestRecord | None = Field(
        default=None, description="The branch and draft PR, when one was asked for."
    )
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float | None = None
    seconds: float = 0.0
    runner_version: str = __version__
