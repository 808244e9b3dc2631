"""The service: store, executor, callbacks, tokens and metrics wired around one Runtime.

HTTP-free (app.py maps its errors to status codes), so it can be driven directly.
"""

from __future__ import annotations

import hashlib
import math
import re
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import docker.errors
import requests.exceptions
import structlog

from runner import __version__
from runner.config import ServiceSettings, Settings
from runner.engine import LABEL_JOB, owned_containers, sweep_expired
from runner.errors import JobInputError, RunnerError
from runner.images import find_base_image
from runner.models import Verdict
from runner.pipeline import Runtime, new_job_id
from runner.service.auth import TokenBook
from runner.service.callbacks import CallbackSender
from runner.service.metrics import ServiceMetrics
from runner.service.models import FINISHED, JobStatus, JobSubmission, JobView, Readiness
from runner.service.store import JobRecord, JobStore, SqliteStore
from runner.service.workers import CANCELLED, Executor, ThreadPool, run_job
from runner.workspace import validate_repo_url

log = structlog.get_logger(__name__)

_SCP = re.compile(r"^(?:[^@/:]+@)?([^/:]+):(?!//)")


class ServiceRefusal(RunnerError):
    """A request the service will not take; ``status`` is its HTTP status."""

    status = 400

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


def store_path(settings: Settings) -> Path:
    """The job store: [service] store_path, or <state_dir>/service.db."""
    configured = settings.service.store_path
    return configured.expanduser() if configured else settings.paths.root / "service.db"


def service_settings(settings: Settings) -> Settings:
    """Settings as the service runs them: local repositories only if [service] allows."""
    security = settings.security.model_copy(
        update={"allow_local_repos": settings.service.allow_local_repos}
    )
    return settings.model_copy(update={"security": security})


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


def request_hash(submission: JobSubmission) -> str:
    """A digest of the submission, to tell a retried request from a different one."""
    return hashlib.sha256(submission.model_dump_json().encode()).hexdigest()


def error_verdict(job_id: str, reason: str) -> Verdict:
    """An ``error`` verdict decided by the service, not the pipeline."""
    return Verdict(
        job_id=job_id, status="error", summary=f"error: {reason}", runner_version=__version__
    )


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

    def __post_init__(self) -> None:
        self.metrics = ServiceMetrics(
            queued=lambda: self.store.counts().get("queued", 0),
            running=lambda: self.store.counts().get("running", 0),
        )
        self.callbacks = CallbackSender(
            self.store, self.settings.service, self.tokens.callback_secret, self.metrics
        )
        if self.runtime is None:
            from runner.distributed.executor import CeleryExecutor

            self.executor = CeleryExecutor(
                self.settings,
                self.store,
                store_path(self.settings),
                self.jobs_dir,
                self._finished,
                self.metrics,
            )
            return
        runtime = self.runtime
        self.executor = ThreadPool(
            self.store,
            lambda job, progress, cancel: run_job(job, runtime, progress, cancel),
            self.settings.service.concurrency,
            self.jobs_dir,
            self._finished,
        )

    @property
    def jobs_dir(self) -> Path:
        """Job folders: progress and phase logs, verdict.json."""
        return self.settings.paths.root / "jobs"

    @classmethod
    def build(cls, settings: Settings) -> Service:
        """Connect to the engine and open the store (nothing runs yet)."""
        settings = service_settings(settings)
        local = settings.service.executor == "local"
        runtime = Runtime.start(settings) if local else None
        return cls(
            settings=settings,
            runtime=runtime,
            store=SqliteStore(store_path(settings)),
            tokens=TokenBook(settings),
        )

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        """Recover from a crash, remove orphaned containers, start workers and callbacks."""
        if self.runtime is not None:
            # In-process jobs a crash interrupted; Celery's keep running on their workers.
            recovery = self.store.recover(error_verdict)
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
        limits = self.settings.service
        for name in ("patch", "test_patch"):
            text = getattr(submission, name)
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
            if existing.request_hash != digest:
                raise Conflict("this Idempotency-Key was used for a different job")
            return existing, False
        queued = self.store.counts().get("queued", 0)
        if queued >= limits.queue_limit:
            self.metrics.rejected.labels(reason="queue_full").inc()
            raise QueueFull(f"the queue is full ({queued} jobs)", self._retry_after(queued))
        record, created = self.store.add(new_job_id(), token, idem_key, digest, submission)
        if created:
            self.metrics.submitted.inc()
            self.executor.notify()
            log.info("job.queued", job_id=record.id, token=token, repo=submission.repo)
        return record, created

    def _retry_after(self, queued: int) -> int:
        workers = self.settings.service.concurrency
        estimate = self.metrics.typical_job_seconds() * max(1, queued) / workers
        return max(1, min(600, math.ceil(estimate)))

    def job(self, token: str, job_id: str) -> JobRecord:
        """The job, if this token submitted it."""
        record = self.store.get(job_id)
        if record is None or record.token != token:
            raise NotFound(f"no job {job_id}")
        return record

    def view(self, record: JobRecord) -> JobView:
        """The job as the API shows it, with its deliveries."""
        return record.view(self.store.deliveries(record.id))

    def list(self, token: str, status: JobStatus | None, limit: int) -> list[JobView]:
        """This token's jobs, newest first."""
        return [self.view(r) for r in self.store.list(token, status, limit)]

    def cancel(self, token: str, job_id: str) -> JobRecord:
        """Cancel a queued job at once, or stop a running one (its container is removed)."""
        record = self.job(token, job_id)
        if record.status in FINISHED:
            return record
        if self.store.cancel_queued(job_id, error_verdict(job_id, CANCELLED)):
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
        return self.job(token, job_id)

    def _finished(self, record: JobRecord, seconds: float) -> None:
        if record.verdict is not None and record.status == "done":
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
