"""runner.toml sections for what serves jobs: the service, Celery, the fixer, projects, GitHub."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator

from runner.models import Model


class ServiceToken(Model):
    """One API token of `runner serve`: its hash only, never the token itself."""

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$", description="Who holds it.")
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$", description="SHA-256 hex of the token.")
    callback_secret: str | None = Field(
        default=None, description="HMAC key signing this token's callbacks (kept out of logs)."
    )
    callback_secret_env: str | None = Field(
        default=None, description="Environment variable holding the callback secret instead."
    )


class ServiceSettings(Model):
    """`runner serve`: the HTTP API, its job queue, limits, tokens and callbacks."""

    host: str = Field(default="127.0.0.1", description="Address to listen on.")
    port: int = Field(default=8088, ge=0, le=65535, description="Port to listen on.")
    concurrency: int = Field(
        default_factory=lambda: os.cpu_count() or 1, ge=1, description="Jobs run at once."
    )
    queue_limit: int = Field(default=100, ge=1, description="Queued jobs before 429.")
    max_body_bytes: int = Field(default=4 * 2**20, ge=1024, description="Request body cap (413).")
    max_patch_bytes: int = Field(
        default=2**20, ge=1, description="Cap on patch and test_patch, each (413)."
    )
    repo_allowlist: list[str] = Field(
        default_factory=list,
        description="Hosts (github.com) or URL prefixes (https://git.example.com/team/) "
        "jobs may name; empty allows no remote repository.",
    )
    allow_local_repos: bool = Field(
        default=False, description="Accept local paths and file:// URLs (off for a service)."
    )
    policies: list[str] = Field(
        default_factory=list,
        description="Policy names jobs may ask for; empty: the bundled policies/*.toml names. "
        "Never a path.",
    )

    @field_validator("policies")
    @classmethod
    def _policy_names(cls, value: list[str]) -> list[str]:
        bad = [name for name in value if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}", name)]
        if bad:
            raise ValueError(f"policy names only, never paths: {', '.join(map(repr, bad))}")
        return value

    store_path: Path | None = Field(
        default=None, description="SQLite job store; default <state_dir>/service.db."
    )
    tokens_file: Path | None = Field(
        default=None,
        description="Tokens written by `runner token create`; default <state_dir>/tokens.json.",
    )
    tokens: list[ServiceToken] = Field(
        default_factory=list, description="Tokens configured here, besides the tokens file."
    )
    callback_allowlist: list[str] = Field(
        default_factory=list,
        description="Hosts or addresses/networks (127.0.0.1, 10.0.0.0/8) a callback may reach "
        "although not public; by default only public addresses are.",
    )
    callback_attempts: int = Field(default=5, ge=1, description="Delivery attempts per callback.")
    callback_backoff_s: float = Field(
        default=1.0, gt=0, description="First retry delay; doubles each attempt."
    )
    callback_backoff_max_s: float = Field(default=60.0, gt=0, description="Longest retry delay.")
    callback_timeout_s: float = Field(default=10.0, gt=0, description="One delivery's timeout.")
    shutdown_grace_s: float = Field(
        default=30.0, ge=0, description="SIGTERM: how long running jobs may take to finish."
    )
    executor: Literal["local", "celery"] = Field(
        default="local",
        description="local: an in-process worker pool; celery: `runner worker`s via [celery].",
    )


class CelerySettings(Model):
    """The Celery executor: a broker, `runner worker`s (one per Docker engine), routing."""

    broker_url: str = Field(
        default="amqp://guest@127.0.0.1:5672//",
        description="RabbitMQ (amqp://) by default; Redis (redis://) is supported.",
    )
    queue: str = Field(default="fixrunner.jobs", description="Shared queue every worker reads.")
    host_queue_prefix: str = Field(
        default="fixrunner.host.", description="Per-host queues for cache affinity: prefix+host."
    )
    events_queue: str = Field(
        default="fixrunner.events",
        description="Queue of worker → service events (started, progress, verdict).",
    )
    prefetch_multiplier: int = Field(
        default=1, ge=1, description="Jobs a worker reserves per slot; 1 so none waits behind."
    )
    acks_late: bool = Field(
        default=True, description="Acknowledge a job after it ran, so a lost worker's job requeues."
    )
    reject_on_worker_lost: bool = Field(
        default=True, description="Requeue a job whose worker process died."
    )
    task_time_limit_s: float = Field(
        default=3600,
        gt=0,
        description="Hard limit of one job on a worker; above the policy's job timeout, "
        "below the broker's consumer_timeout.",
    )
    slots: int = Field(
        default_factory=lambda: os.cpu_count() or 1,
        ge=1,
        description="Jobs one `runner worker` runs at once (its host's job slots).",
    )
    host: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$",
        description="This worker's host name (queue and verdict); default: the machine's name.",
    )
    affinity: bool = Field(
        default=True, description="Route a job to a free host that has its environment image."
    )
    affinity_wait_s: float = Field(
        default=20,
        gt=0,
        description="A pinned job not taken by its host in this time goes to any host.",
    )
    cancel_wait_s: float = Field(
        default=10, gt=0, description="DELETE waits this long for the worker's cancelled verdict."
    )

    @model_validator(mode="after")
    def _limits(self) -> CelerySettings:
        if self.broker_url.split("://", 1)[0] not in ("amqp", "pyamqp", "redis", "rediss"):
            raise ValueError("broker_url must be amqp:// (RabbitMQ) or redis:// (Redis)")
        return self


class Price(Model):
    """What one model costs, in US dollars per million tokens."""

    input_per_mtok: float = Field(ge=0, description="Price of a million input tokens.")
    output_per_mtok: float = Field(ge=0, description="Price of a million output tokens.")


def _default_prices() -> dict[str, Price]:
    return {
        "claude-sonnet-5": Price(input_per_mtok=2.0, output_per_mtok=10.0),
        "claude-opus-5": Price(input_per_mtok=5.0, output_per_mtok=25.0),
        "claude-haiku-4-5": Price(input_per_mtok=1.0, output_per_mtok=5.0),
        "claude-sonnet-4-5": Price(input_per_mtok=3.0, output_per_mtok=15.0),
    }


class FixerSettings(Model):
    """`runner fix`: the Claude loop from an error report to a verified patch."""

    model: str = Field(
        default="claude-sonnet-5",
        min_length=1,
        description="Model name; it must accept a forced tool_choice with thinking disabled.",
    )
    max_tokens: int = Field(default=8192, ge=256, le=20000, description="Output cap per reply.")
    max_attempts: int = Field(default=3, ge=1, le=20, description="Candidates tried per job.")
    token_budget: int = Field(
        default=400_000, ge=1000, description="Input plus output tokens one job may spend."
    )
    context_tokens: int = Field(
        default=24_000, ge=500, description="Budget of the code context in the first prompt."
    )
    api_key: SecretStr | None = Field(
        default=None, description="API key; None reads ANTHROPIC_API_KEY (preferred)."
    )
    base_url: str | None = Field(
        default=None, description="API base URL; None reads ANTHROPIC_BASE_URL, else the default."
    )
    max_retries: int = Field(
        default=4, ge=0, le=10, description="SDK retries for 429, 529, 5xx and timeouts."
    )
    timeout_s: float = Field(default=300, gt=0, description="One API request's timeout.")
    policy: str = Field(default="default", min_length=1, description="Policy for verification.")
    prices: dict[str, Price] = Field(
        default_factory=_default_prices, description="Price per model, for the cost estimate."
    )


class ProjectSettings(Model):
    """One error-tracking project ([projects.<id>]): where its events come from and go."""

    key: SecretStr = Field(
        description="The DSN's public key (sentry_key): the credential of the SDK's requests."
    )
    repo: str = Field(min_length=1, description="Repository: local path or git URL.")
    branch: str = Field(default="main", min_length=1, description="Branch the app runs from.")
    fix: bool = Field(default=True, description="Start fix jobs for this project's groups.")
    open_pr: bool = Field(default=False, description="Open a draft PR when a fix verifies.")
    github_repo: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$",
        description="owner/name on GitHub for the pull request.",
    )
    push_url: str | None = Field(
        default=None, description="Remote the fix branch is pushed to; default: repo."
    )
    labels: list[str] = Field(default_factory=lambda: ["fixrunner"], description="PR labels.")
    fix_after_events: int = Field(
        default=1, ge=1, description="Events of one group within fix_window_s that start a fix."
    )
    fix_window_s: float = Field(default=3600.0, gt=0, description="Window for fix_after_events.")


class GitHubSettings(Model):
    """Pushes and pull requests ([github])."""

    api_url: str = Field(default="https://api.github.com", description="REST API base URL.")
    token: SecretStr | None = Field(
        default=None, description="Token for the API and https pushes; default: $GITHUB_TOKEN."
    )
    author_name: str = Field(default="fixrunner", description="Author of the fix commit.")
    author_email: str = Field(
        default="fixrunner@users.noreply.github.com", description="Author's email."
    )
    co_author: str | None = Field(
        default=None, description="'Name <email>' added as a Co-authored-by trailer."
    )
    public_url: str | None = Field(
        default=None, description="This service's URL, for the PR's link to its error group."
    )
    timeout_s: float = Field(default=30.0, gt=0, description="One API request's timeout.")
