"""`runner worker`: a Celery worker beside one Docker engine, running the same pipeline.

One worker per engine; its slots are the thread pool's size. Jobs run in threads of
this one process, so a kill -9 takes every job with it (no orphaned child keeps
running) and the broker redelivers them. At start it removes the containers a killed
predecessor left on its engine; a revoke stops the job and removes its containers.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Literal

import docker.errors
import requests.exceptions
import structlog
from celery import Celery
from celery.concurrency.thread import TaskPool
from celery.signals import task_revoked
from celery.worker.control import inspect_command

from runner import __version__
from runner.common.logs import bind_job, unbind_job
from runner.config import Settings, service_settings
from runner.distributed.broker import (
    INFO_COMMAND,
    LOG_CAP,
    TASK_NAME,
    WorkerEvent,
    host_queue,
    make_celery,
    publish_event,
    shared_queue,
)
from runner.models import Verdict
from runner.sandbox.engine import owned_containers, remove_job_containers
from runner.service.jobs import progress_writer, run_job
from runner.service.models import JobSubmission
from runner.verify.pipeline import Progress, Runtime
from runner.workspace.trees import remove_tree

log = structlog.get_logger(__name__)

_STATE: WorkerState | None = None


class CancellableThreadPool(TaskPool):
    """Celery's thread pool, whose revoke-terminate is left to the revoke handler.

    A thread cannot be killed; the handler sets the job's cancel event instead, and
    the sandbox then kills the job's container, as the in-process pool does.
    """

    def terminate_job(self, pid: Any, signal: Any = None) -> None:
        return None


@dataclass
class WorkerState:
    """What this worker process holds: its engine, its host name, its running jobs."""

    settings: Settings
    runtime: Runtime
    app: Celery
    host: str
    slots: int
    active: dict[str, threading.Event] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def engine(self) -> str:
        configured = self.settings.engine.docker_host or os.environ.get("DOCKER_HOST")
        return configured or "unix:///var/run/docker.sock"

    def info(self) -> dict[str, Any]:
        """What `runner workers` and the service's routing see of this worker."""
        repository = f"{self.settings.images.repository}-env"
        try:
            images = sorted(
                tag
                for image in self.runtime.client.images.list(name=repository)
                for tag in image.tags
            )
            version = str(self.runtime.client.version().get("Version", "?"))
        except (docker.errors.APIError, requests.exceptions.RequestException) as exc:
            images, version = [], f"unreachable: {exc}"
        with self.lock:
            running = sorted(self.active)
        base = self.runtime.base_image().tag  # built or found before the worker started
        return {
            "host": self.host,
            "engine": self.engine,
            "engine_version": version,
            "instance": self.settings.engine.instance,
            "slots": self.slots,
            "running": running,
            "base_image": base,
            "images": images,
            "runner_version": __version__,
        }

    def cancel(self, job_id: str) -> bool:
        """Stop a running job: set its cancel event and remove its containers now."""
        with self.lock:
            event = self.active.get(job_id)
        if event is None:
            return False
        event.set()
        instance = self.settings.engine.instance
        removed = len(remove_job_containers(self.runtime.client, instance, job_id))
        log.info("worker.cancelled", job_id=job_id, containers=removed)
        return True


def sweep_orphans(runtime: Runtime, instance: str) -> list[str]:
    """Remove every container of this instance on the engine: no job runs here yet."""
    removed = []
    for container in owned_containers(runtime.client, instance):
        with contextlib.suppress(docker.errors.NotFound):
            container.remove(force=True, v=True)
            removed.append(container.short_id)
    if removed:
        log.info("worker.orphans_removed", containers=removed)
    return removed


def run_task(state: WorkerState, job_id: str, submission_json: str, redelivered: bool) -> None:
    """One delivery of one job: run the pipeline and report events to the service."""
    c = state.settings.celery
    cancel = threading.Event()
    with state.lock:
        if job_id in state.active:
            # The broker came back and redelivered a job this worker is still running.
            log.info("worker.duplicate_delivery", job_id=job_id)
            return
        state.active[job_id] = cancel
    run_id = f"{state.host}/{secrets.token_hex(4)}"
    timed_out = threading.Event()

    def over_time() -> None:
        timed_out.set()
        cancel.set()

    # Celery's thread pool enforces no time limit: this timer is the hard limit.
    timer = threading.Timer(c.task_time_limit_s, over_time)
    timer.daemon = True
    started = time.monotonic()
    bind_job(job_id)
    try:
        folder = state.runtime.jobs_dir / job_id
        _clear_previous_run(folder)
        event = WorkerEvent(
            kind="started", job_id=job_id, run_id=run_id, host=state.host, redelivered=redelivered
        )
        publish_event(state.app, c, event, patient=True)
        log.info("worker.job_started", run_id=run_id, redelivered=redelivered)
        progress = _progress(state, folder, job_id, run_id)
        progress("worker", f"started on {state.host} ({run_id})")
        timer.start()
        try:
            job = JobSubmission.model_validate_json(submission_json).fix_job(job_id)
            verdict = run_job(job, state.runtime, progress, cancel)
        except Exception as exc:  # a bug must not kill the worker; the job still ends
            log.exception("worker.job_crashed")
            verdict = Verdict.error(job_id, f"internal error: {exc}", __version__)
        timer.cancel()
        if timed_out.is_set():
            summary = f"error: exceeded the job time limit ({c.task_time_limit_s:g} s)"
            verdict = verdict.model_copy(update={"status": "error", "summary": summary})
        verdict = verdict.model_copy(update={"host": state.host})
        cancelled = cancel.is_set() and not timed_out.is_set()
        status: Literal["cancelled", "done"] = "cancelled" if cancelled else "done"
        progress("worker", f"{status}: {verdict.summary}")
        finished = WorkerEvent(
            kind="finished",
            job_id=job_id,
            run_id=run_id,
            host=state.host,
            status=status,
            verdict=verdict,
            seconds=round(time.monotonic() - started, 3),
            logs=_phase_logs(folder),
        )
        publish_event(state.app, c, finished, patient=True)
    finally:
        timer.cancel()
        with state.lock:
            state.active.pop(job_id, None)
        unbind_job()


def _progress(state: WorkerState, folder: Any, job_id: str, run_id: str) -> Progress:
    local = progress_writer(folder)

    def progress(phase: str, message: str) -> None:
        local(phase, message)
        line = f"{time.strftime('%H:%M:%S', time.gmtime())} {phase:<9} {message}\n"
        event = WorkerEvent(
            kind="progress", job_id=job_id, run_id=run_id, host=state.host, line=line
        )
        publish_event(state.app, state.settings.celery, event, patient=False)

    return progress


def _phase_logs(folder: Any) -> dict[str, str]:
    logs = folder / "logs"
    if not logs.is_dir():
        return {}
    found = {}
    for path in sorted(logs.glob("*.log")):
        text = path.read_text(encoding="utf-8", errors="replace")
        found[path.name] = text[:LOG_CAP]
    return found


def _clear_previous_run(folder: Any) -> None:
    # A redelivered job may find the folder of a run a killed worker left (shared state).
    with contextlib.suppress(OSError):
        remove_tree(folder / "trees")
    for name in ("logs", "junit"):
        with contextlib.suppress(FileNotFoundError):
            shutil.rmtree(folder / name)


def _on_revoked(request: Any = None, **_: Any) -> None:
    if _STATE is not None and request is not None:
        _STATE.cancel(str(request.id))


def _register(state: WorkerState) -> None:
    global _STATE
    _STATE = state
    app = state.app

    @app.task(name=TASK_NAME, bind=True)
    def verify_task(self: Any, job_id: str, submission: str) -> None:
        delivery = self.request.delivery_info or {}
        run_task(state, job_id, submission, bool(delivery.get("redelivered")))

    task_revoked.connect(_on_revoked, weak=False)

    def info(panel: Any) -> dict[str, Any]:
        return _STATE.info() if _STATE is not None else {}

    inspect_command(name=INFO_COMMAND)(info)


def host_name(settings: Settings, explicit: str | None) -> str:
    """This worker's host name: --host, [celery] host, or the machine's name."""
    name = explicit or settings.celery.host or socket.gethostname().split(".")[0]
    return "".join(ch if ch.isalnum() or ch in "._-" else "-" for ch in name)[:63]


def main(settings: Settings, host: str | None, slots: int | None, seed_from: str | None) -> int:
    """Start the worker: engine, base image, orphan sweep, then consume until stopped."""
    settings = service_settings(settings)  # the service's repository policy applies here too
    name = host_name(settings, host)
    slots = slots or settings.celery.slots
    runtime = Runtime.start(settings)
    if seed_from:
        from runner.distributed.engines import seed_base_image

        seed_base_image(seed_from, runtime.client, settings)
    base = runtime.base_image()
    sweep_orphans(runtime, settings.engine.instance)
    c = settings.celery
    queues = [shared_queue(c), host_queue(c, name)]
    app = make_celery(settings, queues)
    state = WorkerState(settings=settings, runtime=runtime, app=app, host=name, slots=slots)
    _register(state)
    log.info("worker.starting", host=name, slots=slots, engine=state.engine, base=base.tag)
    worker = app.Worker(
        hostname=f"fixrunner@{name}",
        pool_cls=CancellableThreadPool,
        concurrency=slots,
        queues=[q.name for q in queues],
        loglevel=settings.log_level.upper(),
        without_gossip=True,
        optimization="fair",
        quiet=True,
    )
    worker.start()
    return int(worker.exitcode or 0)


def list_workers(settings: Settings, timeout_s: float = 2.0) -> list[dict[str, Any]]:
    """The live workers and what they report (Celery's broadcast with replies)."""
    app = make_celery(settings)
    replies = app.control.broadcast(INFO_COMMAND, reply=True, timeout=timeout_s)
    found = []
    for reply in replies or []:
        for node, info in reply.items():
            if isinstance(info, dict) and info:
                found.append({"node": node, **info})
    return sorted(found, key=lambda w: str(w.get("host")))
