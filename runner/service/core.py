"""The service: store, executor, callbacks, tokens and metrics wired around one Runtime.

HTTP-free (app.py maps its errors to status codes), so it can be driven directly.
"""

from __future__ import annotations

import builtins
import hashlib
import math
import os
import re
import sqlite3
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import docker.errors
import requests.exceptions
import structlog

from runner import __version__
from runner.config import ServiceSettings, Settings, service_settings
from runner.environments.images import find_base_image
from runner.errors import ConfigError, JobInputError, RunnerError
from runner.fix.result import FixResult
from runner.models import Verdict
from runner.sandbox.engine import LABEL_JOB, owned_containers, sweep_expired
from runner.service.auth import TokenBook
from runner.service.callbacks import CallbackSender
from runner.service.jobs import CANCELLED, Executor, ThreadPool, run_fix_job, run_job
from runner.service.metrics import ServiceMetrics
from runner.service.models import (
    FINISHED,
    POLICY_NAME,
    FixSubmission,
    FixView,
    JobKind,
    JobStatus,
    JobSubmission,
    JobView,
    Readiness,
)
from runner.service.store import JobRecord, JobStore, Outcome, SqliteStore, Submission
from runner.verify.pipeline import POLICIES_DIR, Runtime, new_job_id
from runner.workspace.repository import validate_repo_url

log = structlog.get_logger(__name__)

_SCP = re.compile(r"^(?:[^@/:]+@)?([^/:]+):(?!//)")
_ATTEMPT = re.compile(r"^(fix-.+)-a\d+$")  # a fix attempt's verify job id


class ServiceRefusal(RunnerError):
    """A request the service will not take; ``status`` is its HTTP status."""

    status = 400
    code: str | None = None  # sent as X-Runner-Refusal, for clients to tell refusals apart

    def __init__(self, message: str, field_name: str | None = None) -> None:
        super().__init__(message)
        self.field_name = field_name


class NotFound(ServiceRefusal):
    status = 404


class Conflict(ServiceRefusal):
    status = 409


class TooLarge(ServiceRefusal):
    status = 413


class NotAllowed(ServiceRefusal):
    status = 422


class QueueFull(ServiceRefusal):
    status = 429

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class NotAccepting(ServiceRefusal):
    status = 503


class FixerNotConfigured(ServiceRefusal):
    """503: no Anthropic API key in the service's settings or environment."""

    status = 503
    code = "fixer_not_configured"


class FixesNotSupported(ServiceRefusal):
    """501: fix jobs run on the local executor only."""

    status = 501
    code = "fixes_not_supported"


def fixer_key_configured(settings: Settings, environ: Mapping[str, str] | None = None) -> bool:
    """True when the fix loop has an API key: [fixer] api_key or ANTHROPIC_API_KEY."""
    env = os.environ if environ is None else environ
    key = settings.fixer.api_key
    return bool(key.get_secret_value() if key else env.get("ANTHROPIC_API_KEY"))


def store_path(settings: Settings) -> Path:
    """The job store: [service] store_path, or <state_dir>/service.db."""
    configured = settings.service.store_path
    return configured.expanduser() if configured else settings.paths.root / "service.db"


def repo_refusal(url: str, service: ServiceSettings) -> str | None:
    """Why the service refuses this repository URL, or None when it may be used."""
    try:
        validate_repo_url(url, service.allow_local_repos)
    except JobInputError as exc:
        return str(exc)
    if "://" in url:
        parts = urlsplit(url)
        if parts.scheme.lower() == "file":
            return None  # validate_repo_url allowed it: allow_local_repos is on
        host = (parts.hostname or "").lower()
    elif match := _SCP.match(url):
        host = match.group(1).lower()
    else:
        return None  # a local path, allowed by validate_repo_url
    for entry in service.repo_allowlist:
        if "/" not in entry and entry.lower() == host:
            return None
        prefix = entry.rstrip("/")
        if "/" in entry and (url == prefix or url.startswith(prefix + "/")):
            return None
    if not service.repo_allowlist:
        return "no remote repository is allowed: [service] repo_allowlist is empty"
    return f"repository host {host!r} is not in [service] repo_allowlist"


def policy_refusal(name: str, service: ServiceSettings) -> str | None:
    """Why the service refuses this policy name, or None: [service] policies, else the bundled."""
    # Checked at submission, not in the model: rows stored before this rule still load.
    if not POLICY_NAME.fullmatch(name):
        # A path would make the service open a file of the caller's choosing.
        return "the service takes a policy by name (e.g. 'default'), not a path"
    allowed = service.policies or sorted(p.stem for p in POLICIES_DIR.glob("*.toml"))
    if name in allowed:
        return None
    return f"policy {name!r} is not offered by this service (choose one of: {', '.join(allowed)})"


def request_hash(submission: Submission) -> str:
    """A digest of the submission, to tell a retried request from a different one."""
    return hashlib.sha256(submission.model_dump_json().encode()).hexdigest()


def error_verdict(job_id: str, reason: str) -> Verdict:
    """An ``error`` verdict decided by the service, not the pipeline."""
    return Verdict.error(job_id, reason, __version__)


def new_fix_id() -> str:
    """A sortable, unique fix job id (its attempts' verify jobs are <id>-a1, -a2 …)."""
    return f"fix-{new_job_id()}"


@dataclass
class Service:
    """One running service: accepts jobs, runs them, reports them."""

    settings: Settings
    runtime: Runtime | None  # None with executor = "celery": the workers hold the engines
    store: JobStore
    tokens: TokenBook
    metrics: ServiceMetrics = field(init=False)
    executor: Executor = field(init=False)
    callbacks: CallbackSender = field(init=False)
    accepting: bool = False
    # Builds the executor when jobs run elsewhere (runtime is None): the composition
    # root passes it, so this module never imports the distributed layer above it.
    remote_executor: Callable[[Service], Executor] | None = None

    def __post_init__(self) -> None:
        self.metrics = ServiceMetrics(
            queued=lambda: self.store.counts().get("queued", 0),
            running=lambda: self.store.counts().get("running", 0),
        )
        self.callbacks = CallbackSender(
            self.store, self.settings.service, self.tokens.callback_secret, self.metrics
        )
        if self.runtime is None:
            if self.remote_executor is None:
                raise ConfigError(
                    f"executor {self.settings.service.executor!r} needs a remote executor"
                )
            self.executor = self.remote_executor(self)
            return
        runtime = self.runtime
        self.executor = ThreadPool(
            self.store,
            lambda job, progress, cancel: run_job(job, runtime, progress, cancel),
            self.settings.service.concurrency,
            self.jobs_dir,
            self._finished,
            lambda fix_id, sub, progress, cancel: run_fix_job(
                fix_id, sub, runtime, progress, cancel
            ),
        )

    @property
    def jobs_dir(self) -> Path:
        """Job folders: progress and phase logs, verdict.json."""
        return self.settings.paths.root / "jobs"

    @classmethod
    def build(
        cls, settings: Settings, remote_executor: Callable[[Service], Executor] | None = None
    ) -> Service:
        """Connect to the engine and open the store (nothing runs yet)."""
        settings = service_settings(settings)
        local = settings.service.executor == "local"
        runtime = Runtime.start(settings) if local else None
        return cls(
            settings=settings,
            runtime=runtime,
            store=SqliteStore(store_path(settings)),
            tokens=TokenBook(settings),
            remote_executor=remote_executor,
        )

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        """Recover from a crash, remove orphaned containers, start workers and callbacks."""
        if self.runtime is not None:
            # In-process jobs a crash interrupted; Celery's keep running on their workers.
            recovery = self.store.recover(error_verdict, self._fix_error)
            if recovery.requeued or recovery.failed:
                log.warning("service.recovered", requeued=recovery.requeued, failed=recovery.failed)
            self._remove_orphans()
        self.executor.start()
        for job_id in self.store.pending_callbacks():
            self.callbacks.deliver(job_id)
        self.accepting = True
        log.info(
            "service.started",
            concurrency=self.settings.service.concurrency,
            queued=self.store.counts().get("queued", 0),
        )

    def stop(self) -> None:
        """Stop accepting, let running jobs finish within the grace, requeue the rest."""
        self.accepting = False
        requeued = self.executor.shutdown(self.settings.service.shutdown_grace_s)
        self.callbacks.stop()
        self.store.close()
        log.info("service.stopped", requeued=requeued)

    def _remove_orphans(self) -> None:
        # Containers of this instance whose job is in our store were left by a previous
        # process of this service (no worker runs yet); others' expired ones by deadline.
        removed = []
        assert self.runtime is not None
        try:
            for container in owned_containers(self.runtime.client, self.settings.engine.instance):
                job_id = container.labels.get(LABEL_JOB, "")
                if match := _ATTEMPT.match(job_id):
                    job_id = match.group(1)  # a fix attempt's sandbox: the fix is ours
                if job_id and self.store.get(job_id) is not None:
                    try:
                        container.remove(force=True, v=True)
                        removed.append(container.short_id)
                    except docker.errors.NotFound:
                        continue
            sweep_expired(self.runtime.client, self.settings.engine.instance)
        except (docker.errors.APIError, requests.exceptions.RequestException) as exc:
            log.warning("service.orphans_not_removed", error=str(exc))
        if removed:
            log.info("service.orphans_removed", containers=removed)

    # ------------------------------------------------------------------ jobs

    def submit(
        self, token: str, idem_key: str | None, submission: JobSubmission
    ) -> tuple[JobRecord, bool]:
        """Queue a job (or return the one with this idempotency key); raise a refusal."""
        if not self.accepting:
            raise NotAccepting("the service is shutting down")
        if reason := policy_refusal(submission.policy, self.settings.service):
            raise NotAllowed(reason, "policy")
        texts = {"patch": submission.patch, "test_patch": submission.test_patch}
        return self._admit(token, idem_key, submission, texts, new_job_id)

    def submit_fix(
        self, token: str, idem_key: str | None, submission: FixSubmission
    ) -> tuple[JobRecord, bool]:
        """Queue a fix job (or return the one with this idempotency key); raise a refusal."""
        if self.runtime is None:
            raise FixesNotSupported(
                "fix jobs run on the local executor only; this service uses "
                '[service] executor = "celery"'
            )
        if not fixer_key_configured(self.settings):
            raise FixerNotConfigured(
                "fixes are not available: the service has no Anthropic API key "
                "(set ANTHROPIC_API_KEY or [fixer] api_key where `runner serve` runs)"
            )
        if not self.accepting:
            raise NotAccepting("the service is shutting down")
        ceiling = self.settings.fixer.max_attempts
        if submission.max_attempts is not None and submission.max_attempts > ceiling:
            raise NotAllowed(
                f"max_attempts is above this service's limit ([fixer] max_attempts = {ceiling})",
                "max_attempts",
            )
        texts = {"error.traceback": submission.error.traceback}
        return self._admit(token, idem_key, submission, texts, new_fix_id)

    def _admit(
        self,
        token: str,
        idem_key: str | None,
        submission: Submission,
        texts: Mapping[str, str | None],
        new_id: Callable[[], str],
    ) -> tuple[JobRecord, bool]:
        """The checks every submission passes, then the row: sizes, repo, key, queue."""
        limits = self.settings.service
        for name, text in texts.items():
            if text is not None and len(text.encode("utf-8")) > limits.max_patch_bytes:
                self.metrics.rejected.labels(reason="patch_too_large").inc()
                raise TooLarge(f"{name} is larger than {limits.max_patch_bytes} bytes", name)
        if reason := repo_refusal(submission.repo, limits):
            self.metrics.rejected.labels(reason="repo_not_allowed").inc()
            raise NotAllowed(reason, "repo")
        if submission.callback_url and not self.tokens.callback_secret(token):
            raise NotAllowed("this token has no callback secret to sign with", "callback_url")
        digest = request_hash(submission)
        if idem_key is not None and (existing := self.store.find(token, idem_key)) is not None:
            if existing.request_hash != digest or type(existing.submission) is not type(submission):
                raise Conflict("this Idempotency-Key was used for a different job")
            return existing, False
        queued = self.store.counts().get("queued", 0)
        if queued >= limits.queue_limit:
            self.metrics.rejected.labels(reason="queue_full").inc()
            raise QueueFull(f"the queue is full ({queued} jobs)", self._retry_after(queued))
        record, created = self.store.add(new_id(), token, idem_key, digest, submission)
        if created:
            self.metrics.submitted.inc()
            self.executor.notify()
            log.info(
                "job.queued", job_id=record.id, kind=record.kind, token=token, repo=submission.repo
            )
        return record, created

    def _retry_after(self, queued: int) -> int:
        workers = self.settings.service.concurrency
        estimate = self.metrics.typical_job_seconds() * max(1, queued) / workers
        return max(1, min(600, math.ceil(estimate)))

    def job(self, token: str, job_id: str, kind: JobKind = "verify") -> JobRecord:
        """The job (or fix job, by ``kind``), if this token submitted it."""
        record = self.store.get(job_id)
        if record is None or record.token != token or record.kind != kind:
            raise NotFound(f"no {'fix' if kind == 'fix' else 'job'} {job_id}")
        return record

    def view(self, record: JobRecord) -> JobView:
        """The job as the API shows it, with its deliveries."""
        return record.view(self.store.deliveries(record.id))

    def fix_view(self, record: JobRecord) -> FixView:
        """The fix job as the API shows it, with its deliveries."""
        return record.fix_view(self.store.deliveries(record.id))

    def list(self, token: str, status: JobStatus | None, limit: int) -> list[JobView]:
        """This token's jobs, newest first."""
        return [self.view(r) for r in self.store.list(token, status, limit)]

    def list_fixes(
        self, token: str, status: JobStatus | None, limit: int
    ) -> builtins.list[FixView]:
        """This token's fix jobs, newest first."""
        return [self.fix_view(r) for r in self.store.list(token, status, limit, kind="fix")]

    def _fix_error(self, fix_id: str, submission: FixSubmission, reason: str) -> FixResult:
        return submission.error_result(fix_id, reason, self.settings.fixer.model)

    def cancel(self, token: str, job_id: str, kind: JobKind = "verify") -> JobRecord:
        """Cancel a queued job at once, or stop a running one (its container is removed)."""
        record = self.job(token, job_id, kind)
        if record.status in FINISHED:
            return record
        outcome: Outcome = (
            self._fix_error(job_id, record.submission, CANCELLED)
            if isinstance(record.submission, FixSubmission)
            else error_verdict(job_id, CANCELLED)
        )
        if self.store.cancel_queued(job_id, outcome):
            log.info("job.cancelled", job_id=job_id, was="queued")
            self.executor.cancel(job_id)  # a Celery worker may have taken it a moment ago
            cancelled = self.store.get(job_id)
            assert cancelled is not None
            self._finished(cancelled, 0.0)
            return cancelled
        # Running: it may have been claimed a moment ago, before its worker registered it.
        for _ in range(50):
            if self.executor.cancel(job_id):
                log.info("job.cancelled", job_id=job_id, was="running")
                break
            time.sleep(0.1)
        return self.job(token, job_id, kind)

    def _finished(self, record: JobRecord, seconds: float) -> None:
        if record.kind == "fix":
            status = record.result.status if record.result else "error"
            self.metrics.fixes.labels(
                status="cancelled" if record.status == "cancelled" else status
            ).inc()
        elif record.verdict is not None and record.status == "done":
            self.metrics.job_finished(record.verdict, seconds)
        elif record.status == "cancelled":
            self.metrics.verdicts.labels(status="cancelled").inc()
        if record.submission.callback_url:
            self.callbacks.deliver(record.id)

    # ------------------------------------------------------------------ health

    def readiness(self) -> Readiness:
        """Engine reachable, base image present, store writable."""
        checks: dict[str, str] = {}
        if self.runtime is None:
            # Celery: the broker and live workers; each worker checks its own engine.
            checks.update(getattr(self.executor, "readiness", dict)())
        else:
            checks.update(self._engine_checks(self.runtime))
        try:
            self.store.check_writable()
            checks["store"] = "ok"
        except sqlite3.Error as exc:
            checks["store"] = f"not writable: {exc}"
        checks["accepting"] = "ok" if self.accepting else "shutting down"
        return Readiness(ready=all(v == "ok" for v in checks.values()), checks=checks)

    def _engine_checks(self, runtime: Runtime) -> dict[str, str]:
        try:
            runtime.client.ping()
            image = find_base_image(runtime.client, self.settings.images)
        except (docker.errors.DockerException, requests.exceptions.RequestException) as exc:
            return {
                "engine": f"unreachable: {exc}",
                "base_image": "unknown: the engine does not answer",
            }
        return {
            "engine": "ok",
            "base_image": "ok" if image else "missing: run `runner images build`",
        }
