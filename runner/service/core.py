"""The service: store, executor, callbacks, tokens and metrics wired around one Runtime.

HTTP-free (app.py maps its errors to status codes), so it can be driven directly.
"""

from __future__ import annotations

import builtins
import math
import re
import sqlite3
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import docker.errors
import requests.exceptions
import structlog

from runner import __version__
from runner.config import Settings, service_settings
from runner.environments.images import find_base_image
from runner.errors import ConfigError, WorkspaceError
from runner.fix.result import FixResult
from runner.models import Verdict, new_fix_id, new_job_id
from runner.sandbox.engine import owned_containers, sweep_expired
from runner.sandbox.labels import LABEL_JOB
from runner.service.admission import (
    Conflict,
    FixerNotConfigured,
    FixesNotSupported,
    NotAccepting,
    NotAllowed,
    NotFound,
    QueueFull,
    TooLarge,
    fixer_key_configured,
    policy_refusal,
    repo_refusal,
    request_hash,
)
from runner.service.auth import TokenBook
from runner.service.callbacks import CallbackSender
from runner.service.egress import CallbackRefused, resolve_callback
from runner.service.jobs import CANCELLED, Executor, ThreadPool, run_fix_job, run_job
from runner.service.metrics import ServiceMetrics
from runner.service.models import (
    FINISHED,
    FixSubmission,
    FixView,
    JobKind,
    JobStatus,
    JobSubmission,
    JobView,
    Readiness,
)
from runner.service.records import JobRecord, JobStore, Outcome, QueueLimitReached, Submission
from runner.service.store import SqliteStore
from runner.verify.pipeline import Runtime
from runner.workspace.trees import remove_tree

log = structlog.get_logger(__name__)

_ATTEMPT = re.compile(r"^(fix-.+)-a\d+$")  # a fix attempt's verify job id


def store_path(settings: Settings) -> Path:
    """The job store: [service] store_path, or <state_dir>/service.db."""
    configured = settings.service.store_path
    return configured.expanduser() if configured else settings.paths.root / "service.db"


def error_verdict(job_id: str, reason: str) -> Verdict:
    """An ``error`` verdict decided by the service, not the pipeline."""
    return Verdict.error(job_id, reason, __version__)


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
    # Runs after a fix job's loop, inside the job (the error groups' PRs); None: nothing.
    fix_hook: Callable[[str, FixSubmission, FixResult], FixResult] | None = None

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
            lambda fix_id, sub, progress, cancel: self._after_fix(
                fix_id, sub, run_fix_job(fix_id, sub, runtime, progress, cancel)
            ),
        )

    def _after_fix(self, fix_id: str, submission: FixSubmission, result: FixResult) -> FixResult:
        return result if self.fix_hook is None else self.fix_hook(fix_id, submission, result)

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
            self._remove_trees([*recovery.requeued, *recovery.failed])
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

    def _remove_trees(self, job_ids: builtins.list[str]) -> None:
        # A crash skips the pipeline's own cleanup: the checkouts of every job it
        # interrupted go now, whether the job is retried or ended (a requeued job
        # checks out afresh; a second crash ends it for good).
        for job_id in job_ids:
            folders = [self.jobs_dir / job_id, *self.jobs_dir.glob(f"{job_id}-a*")]
            for folder in folders:
                try:
                    remove_tree(folder / "trees")
                except (OSError, WorkspaceError) as exc:
                    log.warning("service.trees_not_removed", job_id=job_id, error=str(exc))

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
        if submission.callback_url:
            try:
                resolve_callback(submission.callback_url, limits.callback_allowlist)
            except CallbackRefused as exc:
                self.metrics.rejected.labels(reason="callback_not_allowed").inc()
                raise NotAllowed(str(exc), "callback_url") from exc
        digest = request_hash(submission)
        if idem_key is not None and (existing := self.store.find(token, idem_key)) is not None:
            if existing.request_hash != digest or type(existing.submission) is not type(submission):
                raise Conflict("this Idempotency-Key was used for a different job")
            return existing, False
        try:
            record, created = self.store.add(
                new_id(), token, idem_key, digest, submission, limits.queue_limit
            )
        except QueueLimitReached as full:
            self.metrics.rejected.labels(reason="queue_full").inc()
            queued = full.queued
            raise QueueFull(
                f"the queue is full ({queued} jobs)", self._retry_after(queued)
            ) from None
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
