"""Executors: who runs a job. Here an in-process thread pool; a Celery executor later.

A job's work is a pure function of its FixJob (:func:`run_job`): everything it needs
comes from the job and the process's Runtime, so another executor can run the same
function beside its own engine. The store is the queue: workers claim jobs FIFO.
A fix job's work is :func:`run_fix_job`, on the same pool (local executor only).
"""

from __future__ import annotations

import contextlib
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal, Protocol

import structlog

from runner import __version__
from runner.common.logs import bind_job, unbind_job
from runner.fix.result import FixResult
from runner.models import FixJob, Verdict
from runner.sandbox.engine import remove_job_containers
from runner.service.models import FixSubmission
from runner.service.records import JobRecord, JobStore, Outcome
from runner.verify.pipeline import Progress, Runtime, verify
from runner.workspace.trees import remove_tree

log = structlog.get_logger(__name__)

PROGRESS_LOG = "progress.log"
CANCELLED = "cancelled by request"

JobWork = Callable[[FixJob, Progress, threading.Event], Verdict]
FixWork = Callable[[str, FixSubmission, Progress, threading.Event], FixResult]
OnFinished = Callable[[JobRecord, float], None]


def run_job(job: FixJob, runtime: Runtime, progress: Progress, cancel: threading.Event) -> Verdict:
    """One job's whole work: the pipeline, and a cancelled verdict if it was cancelled."""
    # later jobs on the same commit are likely: the baseline records the per-test map
    verdict = verify(job, runtime, progress=progress, cancel=cancel, caller="service")
    if cancel.is_set():
        _sweep(runtime, verdict.job_id)
        verdict = cancelled_verdict(verdict)
        (runtime.jobs_dir / verdict.job_id / "verdict.json").write_text(
            verdict.model_dump_json(indent=2), encoding="utf-8"
        )
    return verdict


def run_fix_job(
    fix_id: str,
    submission: FixSubmission,
    runtime: Runtime,
    progress: Progress,
    cancel: threading.Event,
) -> FixResult:
    """One fix job's whole work: the Claude loop; a cancelled result if it was cancelled.

    The API key comes from the process ([fixer] api_key or ANTHROPIC_API_KEY), never
    from the submission.
    """
    # Imported here: the SDK takes over a second to import, and most services never fix.
    from runner.fix.loop import run_fix

    _clear_previous_fix(runtime, fix_id)
    result = run_fix(
        submission.error,
        submission.repo,
        submission.base,
        runtime,
        progress=progress,
        cancel=cancel,
        max_attempts=submission.max_attempts,
        fix_id=fix_id,
    )
    if cancel.is_set():
        _sweep(runtime, fix_id, prefix=True)
        result = result.model_copy(update={"status": "error", "summary": f"error: {CANCELLED}"})
    return result


def _sweep(runtime: Runtime, job_id: str, *, prefix: bool = False) -> None:
    # Each container of a cancelled job removes itself; one whose removal the engine
    # refused is swept by label now, as the CLI does after Ctrl-C, not left for `runner gc`.
    owner = runtime.settings.engine.instance
    removed = remove_job_containers(runtime.client, owner, job_id, prefix=prefix)
    if removed:
        log.info("job.containers_swept", job_id=job_id, containers=removed)


def _clear_previous_fix(runtime: Runtime, fix_id: str) -> None:
    # A crash or shutdown interrupted an earlier run: its attempts' job folders and
    # checkout would collide with this run's (same ids), so start from nothing.
    for folder in runtime.jobs_dir.glob(f"{fix_id}-a*"):
        remove_tree(folder)
    with contextlib.suppress(OSError):
        remove_tree(runtime.settings.paths.root / "fixes" / fix_id / "tree")


def cancelled_verdict(verdict: Verdict) -> Verdict:
    """The verdict of a cancelled job: error, reason cancelled; evidence so far kept."""
    return verdict.model_copy(update={"status": "error", "summary": f"error: {CANCELLED}"})


def progress_writer(folder: Path) -> Progress:
    """A progress callback appending ``HH:MM:SS phase message`` lines to the job folder."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / PROGRESS_LOG
    lock = threading.Lock()

    def progress(phase: str, message: str) -> None:
        line = f"{datetime.now(UTC):%H:%M:%S} {phase:<9} {message}\n"
        with lock, path.open("a", encoding="utf-8") as handle:
            handle.write(line)

    return progress


class Executor(Protocol):
    """Runs queued jobs from the store."""

    def start(self) -> None: ...
    def notify(self) -> None:
        """New work is in the store."""
        ...

    def cancel(self, job_id: str) -> bool:
        """Ask a running job to stop; False if it is not running here."""
        ...

    def running(self) -> int: ...
    def shutdown(self, grace_s: float) -> list[str]:
        """Stop claiming, let running jobs finish within ``grace_s``, requeue the rest."""
        ...


@dataclass
class _Active:
    cancel: threading.Event
    started: float
    interrupted: bool = False


class ThreadPool:
    """The in-process executor: ``concurrency`` threads claiming jobs FIFO."""

    def __init__(
        self,
        store: JobStore,
        work: JobWork,
        concurrency: int,
        jobs_dir: Path,
        on_finished: OnFinished,
        fix_work: FixWork | None = None,
    ) -> None:
        self._store = store
        self._work = work
        self._fix_work = fix_work
        self._concurrency = concurrency
        self._jobs_dir = jobs_dir
        self._on_finished = on_finished
        self._wake = threading.Condition()
        self._stopping = threading.Event()
        self._active: dict[str, _Active] = {}
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        """Start the worker threads."""
        for i in range(self._concurrency):
            thread = threading.Thread(target=self._loop, name=f"worker-{i}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def notify(self) -> None:
        """Wake a worker: a job was queued."""
        with self._wake:
            self._wake.notify()

    def cancel(self, job_id: str) -> bool:
        """Set the running job's cancel event: its sandbox kills the container."""
        with self._lock:
            active = self._active.get(job_id)
        if active is None:
            return False
        active.cancel.set()
        return True

    def running(self) -> int:
        """Jobs running now."""
        with self._lock:
            return len(self._active)

    def shutdown(self, grace_s: float) -> list[str]:
        """Stop claiming, wait ``grace_s`` for running jobs, interrupt and requeue the rest."""
        self._stopping.set()
        with self._wake:
            self._wake.notify_all()
        deadline = time.monotonic() + grace_s
        while self.running() and time.monotonic() < deadline:
            time.sleep(0.1)
        with self._lock:
            late = list(self._active.items())
        for _, active in late:
            active.interrupted = True
            active.cancel.set()
        for thread in self._threads:
            # A cancelled sandbox, git call or image build stops within a second or two;
            # a host-side wheel download does not, so wait a bounded while.
            thread.join(timeout=30)
        return [job_id for job_id, _ in late]

    def _loop(self) -> None:
        while not self._stopping.is_set():
            record = self._store.claim_next()
            if record is None:
                with self._wake:
                    self._wake.wait(timeout=1.0)
                continue
            self._run(record)

    def _run(self, record: JobRecord) -> None:
        active = _Active(cancel=threading.Event(), started=time.monotonic())
        with self._lock:
            self._active[record.id] = active
        bind_job(record.id)
        folder = self._jobs_dir / record.id
        try:
            if record.attempts > 1:
                _clear_previous_attempt(folder)
            progress = progress_writer(folder)
            progress("service", f"started (attempt {record.attempts})")
            log.info("job.started", attempt=record.attempts)
            outcome = self._outcome(record, progress, active.cancel)
            seconds = time.monotonic() - active.started
            if active.interrupted:
                self._store.requeue(record.id)
                progress("service", "interrupted by shutdown; requeued")
                log.info("job.requeued")
                return
            status: Literal["cancelled", "done"] = "cancelled" if active.cancel.is_set() else "done"
            progress("service", f"{status}: {outcome.summary}")
            finished = self._store.finish(record.id, status, outcome)
            if finished is not None:
                self._on_finished(finished, seconds)
        finally:
            with self._lock:
                self._active.pop(record.id, None)
            unbind_job()

    def _outcome(self, record: JobRecord, progress: Progress, cancel: threading.Event) -> Outcome:
        """Run the record's work: a verdict for a verify job, a FixResult for a fix job."""
        submission = record.submission
        try:
            if isinstance(submission, FixSubmission):
                if self._fix_work is None:
                    return submission.error_result(record.id, "this service does not run fixes")
                return self._fix_work(record.id, submission, progress, cancel)
            return self._work(submission.fix_job(record.id), progress, cancel)
        except Exception as exc:  # a bug must not kill the worker; the job still ends
            log.exception("job.crashed")
            reason = f"internal error: {exc}"
            if isinstance(submission, FixSubmission):
                return submission.error_result(record.id, reason)
            return Verdict.error(record.id, reason, __version__)


def _clear_previous_attempt(folder: Path) -> None:
    # An interrupted attempt left phase logs and possibly checkouts: start clean,
    # keeping progress.log, which tells the whole story across attempts.
    with contextlib.suppress(OSError):
        remove_tree(folder / "trees")
    for name in ("logs", "junit"):
        with contextlib.suppress(FileNotFoundError):
            shutil.rmtree(folder / name)
    with contextlib.suppress(FileNotFoundError):
        (folder / "verdict.json").unlink()
