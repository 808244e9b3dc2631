"""The service's Celery executor: publish accepted jobs, apply worker events to the store.

The store stays the truth. A job is published once its row is committed; a publisher
thread retries until the broker takes it, so a broker down at submit time loses
nothing. Worker events are applied idempotently (a finished job ignores later runs),
then acknowledged, so each verdict lands exactly once in effect.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import structlog
from kombu import Connection, Consumer, Message
from kombu.exceptions import KombuError
from kombu.mixins import ConsumerMixin
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from pydantic import ValidationError

from runner import __version__
from runner.config import Settings
from runner.distributed.broker import (
    INFO_COMMAND,
    TASK_NAME,
    WorkerEvent,
    events_queue,
    host_queue,
    is_amqp,
    make_celery,
    shared_queue,
)
from runner.distributed.dispatch import Dispatch
from runner.models import Verdict
from runner.service.core import Service, store_path
from runner.service.jobs import CANCELLED, PROGRESS_LOG, cancelled_verdict
from runner.service.metrics import ServiceMetrics
from runner.service.models import FINISHED
from runner.service.records import JobRecord, JobStore

log = structlog.get_logger(__name__)

OnFinished = Callable[[JobRecord, float], None]
REFRESH_S = 3.0


class CeleryExecutor:
    """Executor protocol over Celery: the service publishes, `runner worker`s run."""

    def __init__(
        self,
        settings: Settings,
        store: JobStore,
        store_file: Path,
        jobs_dir: Path,
        on_finished: OnFinished,
        metrics: ServiceMetrics,
    ) -> None:
        self._settings = settings
        self._c = settings.celery
        self._store = store
        self._jobs_dir = jobs_dir
        self._on_finished = on_finished
        self._dispatch = Dispatch(store_file)
        self._app = make_celery(settings)
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []
        self._consumer = _EventConsumer(self._c.broker_url, self)
        self._declared: set[str] = set()
        self.workers: dict[str, dict[str, Any]] = {}
        self.queues: dict[str, tuple[int, int]] = {}
        self.broker_ok = False
        self._refresh_soon = False
        metrics.registry.register(_Collector(self))

    # ------------------------------------------------------------------ Executor

    def start(self) -> None:
        """Start the publisher, the event consumer and the worker-info refresher."""
        for name, target in (
            ("celery-publish", self._publish_loop),
            ("celery-events", self._consumer.run),
            ("celery-refresh", self._refresh_loop),
        ):
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)

    def notify(self) -> None:
        """A job was queued in the store: publish it."""
        self._wake.set()

    def cancel(self, job_id: str) -> bool:
        """Revoke the job's task (its worker stops it and removes its containers)."""
        try:
            self._app.control.revoke(job_id, terminate=True, signal="SIGTERM")
        except (OSError, KombuError) as exc:
            log.warning("celery.revoke_failed", job_id=job_id, error=str(exc))
        record = self._store.get(job_id)
        if record is None or record.status in FINISHED:
            return True
        # The worker reports the cancelled verdict; if it cannot (gone), the service does.
        threading.Thread(target=self._cancel_fallback, args=(job_id,), daemon=True).start()
        return True

    def running(self) -> int:
        return self._store.counts().get("running", 0)

    def shutdown(self, grace_s: float) -> list[str]:
        """Stop the threads; running jobs go on on their workers (nothing to requeue)."""
        self._stopping.set()
        self._wake.set()
        self._consumer.should_stop = True
        for thread in self._threads:
            thread.join(timeout=10)
        self._dispatch.close()
        return []

    # ------------------------------------------------------------------ publishing

    def _publish_loop(self) -> None:
        while not self._stopping.is_set():
            self._wake.wait(timeout=2.0)
            self._wake.clear()
            try:
                self._publish_queued()
            except (OSError, KombuError) as exc:
                # The broker is down: the jobs stay queued in the store; try again soon.
                self.broker_ok = False
                log.warning("celery.publish_failed", error=str(exc))
                self._stopping.wait(1.0)
            except Exception:  # a bug must not stop publishing for good; the jobs wait
                log.exception("celery.publish_crashed")
                self._stopping.wait(5.0)

    def _publish_queued(self) -> None:
        queued = self._store.list(None, "queued", 10_000)
        for record in reversed(queued):  # oldest first
            if self._stopping.is_set():
                return
            if self._dispatch.published(record.id):
                continue
            queue = self._route(record)
            self._declare(queue)
            self._app.send_task(
                TASK_NAME,
                args=[record.id, record.submission.model_dump_json()],
                task_id=record.id,
                queue=queue,  # the Queue itself: host queues are not in task_queues here
                retry=True,
                retry_policy={"max_retries": 3, "interval_start": 0.5, "interval_step": 1},
            )
            self._dispatch.mark_published(record.id, queue.name)
            self.broker_ok = True
            log.info("celery.published", job_id=record.id, queue=queue.name)

    def _declare(self, queue: Any) -> None:
        if queue.name in self._declared:
            return
        with self._app.pool.acquire(block=True) as conn, conn.channel() as channel:
            queue(channel).declare()
        self._declared.add(queue.name)

    def _route(self, record: JobRecord) -> Any:
        """A free live host that has the job's environment image, else the shared queue."""
        shared = shared_queue(self._c)
        if not (self._c.affinity and is_amqp(self._c)):
            return shared
        image = self._dispatch.env_image(record.submission.repo, record.submission.base)
        if image is None:
            return shared
        holders = [w for w in self.workers.values() if image in w.get("images", [])]
        if not holders:
            return shared
        running = [r.id for r in self._store.list(None, "running", 10_000)]
        queued = [r.id for r in self._store.list(None, "queued", 10_000) if r.id != record.id]
        load = self._dispatch.load(running, queued)
        for worker in sorted(holders, key=lambda w: str(w["host"])):
            queue = host_queue(self._c, str(worker["host"]))
            busy = load.get(str(worker["host"]), 0) + load.get(f"queue:{queue.name}", 0)
            if busy < int(worker.get("slots", 1)):
                log.info("celery.affinity", job_id=record.id, host=worker["host"], image=image)
                return queue
        return shared

    # ------------------------------------------------------------------ events

    def apply(self, event: WorkerEvent) -> None:
        """Apply one worker event to the store (idempotent)."""
        folder = self._jobs_dir / event.job_id
        record = self._store.get(event.job_id)
        if record is None:
            log.warning("celery.unknown_job", job_id=event.job_id, kind=event.kind)
            return
        if event.kind == "started":
            started = self._store.start(event.job_id)
            if started is None:
                # Cancelled or finished already: make sure this run stops too.
                self._app.control.revoke(event.job_id, terminate=True, signal="SIGTERM")
                return
            self._dispatch.mark_started(event.job_id, event.host, event.run_id)
            _append(folder, f"service   run {event.run_id} started on {event.host}\n")
            log.info("job.started", job_id=event.job_id, host=event.host, attempt=started.attempts)
        elif event.kind == "progress" and event.line and record.status not in FINISHED:
            _append(folder, event.line)
        elif event.kind == "finished" and event.verdict is not None:
            self._finish(event, record, folder)

    def _finish(self, event: WorkerEvent, record: JobRecord, folder: Path) -> None:
        if record.status in FINISHED:
            log.info("celery.late_verdict_ignored", job_id=event.job_id, run_id=event.run_id)
            return
        if record.status == "queued":
            self._store.start(event.job_id)
        logs = folder / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        for name, text in event.logs.items():
            if "/" not in name and name.endswith(".log"):
                (logs / name).write_text(text, encoding="utf-8")
        assert event.verdict is not None
        status = event.status or "done"
        finished = self._store.finish(event.job_id, status, event.verdict)
        if finished is None:
            return
        (folder / "verdict.json").write_text(
            event.verdict.model_dump_json(indent=2), encoding="utf-8"
        )
        image = event.verdict.images.environment_image
        if image and event.verdict.host:
            self._dispatch.remember(
                record.submission.repo, record.submission.base, image, event.host
            )
            self._refresh_soon = True
        log.info("job.finished", job_id=event.job_id, host=event.host, status=status)
        self._on_finished(finished, event.seconds)

    def _cancel_fallback(self, job_id: str) -> None:
        deadline = time.monotonic() + self._c.cancel_wait_s
        while time.monotonic() < deadline:
            record = self._store.get(job_id)
            if record is None or record.status in FINISHED:
                return
            time.sleep(0.2)
        record = self._store.get(job_id)
        if record is None or record.status in FINISHED:
            return
        verdict = record.verdict or _service_cancelled(job_id)
        finished = self._store.finish(job_id, "cancelled", cancelled_verdict(verdict))
        if finished is None and self._store.cancel_queued(job_id, _service_cancelled(job_id)):
            finished = self._store.get(job_id)
        if finished is not None:
            log.info("job.cancelled_by_service", job_id=job_id)
            self._on_finished(finished, 0.0)

    # ------------------------------------------------------------------ live view

    def _refresh_loop(self) -> None:
        while not self._stopping.is_set():
            try:
                self.refresh()
            except (OSError, KombuError) as exc:
                self.broker_ok = False
                log.warning("celery.refresh_failed", error=str(exc))
            except Exception:  # a bug must not freeze the live view for good
                log.exception("celery.refresh_crashed")
            for _ in range(int(REFRESH_S / 0.25)):
                if self._stopping.is_set() or self._refresh_soon:
                    break
                time.sleep(0.25)
            self._refresh_soon = False

    def refresh(self) -> None:
        """Ask the live workers what they hold; read each queue's depth."""
        replies = self._app.control.broadcast(INFO_COMMAND, reply=True, timeout=1.0)
        workers: dict[str, dict[str, Any]] = {}
        for reply in replies or []:
            for node, info in reply.items():
                if isinstance(info, dict) and info.get("host"):
                    workers[str(info["host"])] = {"node": node, **info}
        self.workers = workers
        names = [self._c.queue, *(f"{self._c.host_queue_prefix}{h}" for h in workers)]
        depths: dict[str, tuple[int, int]] = {}
        with self._app.pool.acquire(block=True) as conn:
            for name in names:
                # A channel per queue: asking for a missing queue closes the channel.
                with contextlib.suppress(*conn.channel_errors), conn.channel() as channel:
                    _, messages, consumers = channel.queue_declare(name, passive=True)
                    depths[name] = (messages, consumers)
        self.queues = depths
        self.broker_ok = True

    def readiness(self) -> dict[str, str]:
        """Broker reachable and at least one live worker."""
        return {
            "broker": "ok" if self.broker_ok else "unreachable (see the service log)",
            "workers": "ok" if self.workers else "none live: jobs wait in the queue",
        }

    def _dispatch_counts(self) -> dict[str, int]:
        try:
            return self._dispatch.finished_by_host()
        except sqlite3.Error:
            return {}


def _service_cancelled(job_id: str) -> Verdict:
    return Verdict.error(job_id, CANCELLED, __version__)


def _append(folder: Path, line: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / PROGRESS_LOG).open("a", encoding="utf-8") as handle:
        handle.write(line)


class _EventConsumer(ConsumerMixin):
    """Consumes worker events; reconnects by itself when the broker restarts."""

    def __init__(self, url: str, executor: CeleryExecutor) -> None:
        self.connection = Connection(url, heartbeat=30)
        self._executor = executor

    def get_consumers(self, consumer_cls: Any, channel: Any) -> list[Consumer]:
        queue = events_queue(self._executor._c)
        return [
            consumer_cls(
                queues=[queue], accept=["json"], callbacks=[self._on_message], prefetch_count=20
            )
        ]

    def _on_message(self, body: Any, message: Message) -> None:
        try:
            event = WorkerEvent.model_validate(body)
        except ValidationError as exc:
            log.warning("celery.bad_event", error=str(exc)[:500])
            message.ack()
            return
        try:
            self._executor.apply(event)
        except (sqlite3.Error, OSError) as exc:
            # Not applied: leave it to the broker to deliver again.
            log.warning("celery.event_not_applied", job_id=event.job_id, error=str(exc))
            message.requeue()
            time.sleep(0.5)
            return
        except Exception:  # a bug: redelivering would fail the same way forever
            log.exception("celery.event_crashed", job_id=event.job_id, kind=event.kind)
        message.ack()

    def on_connection_error(self, exc: Exception, interval: float) -> None:
        self._executor.broker_ok = False
        log.warning("celery.events_reconnecting", error=str(exc), retry_in=interval)


class _Collector(Collector):
    """Per-worker and per-queue figures for /metrics, from the last refresh."""

    def __init__(self, executor: CeleryExecutor) -> None:
        self._executor = executor

    def collect(self) -> Iterator[GaugeMetricFamily]:
        ex = self._executor
        up = GaugeMetricFamily("fixrunner_worker_up", "Live Celery workers.", labels=["host"])
        slots = GaugeMetricFamily("fixrunner_worker_slots", "Job slots.", labels=["host"])
        busy = GaugeMetricFamily("fixrunner_worker_running", "Jobs running.", labels=["host"])
        images = GaugeMetricFamily(
            "fixrunner_worker_env_images", "Environment images held.", labels=["host"]
        )
        runs = GaugeMetricFamily(
            "fixrunner_worker_jobs_started", "Jobs started on the host.", labels=["host"]
        )
        for host, info in sorted(ex.workers.items()):
            up.add_metric([host], 1)
            slots.add_metric([host], float(info.get("slots", 0)))
            busy.add_metric([host], float(len(info.get("running", []))))
            images.add_metric([host], float(len(info.get("images", []))))
        for host, count in sorted(ex._dispatch_counts().items()):
            runs.add_metric([host], float(count))
        depth = GaugeMetricFamily(
            "fixrunner_queue_messages", "Messages ready in a broker queue.", labels=["queue"]
        )
        consumers = GaugeMetricFamily(
            "fixrunner_queue_consumers", "Consumers of a broker queue.", labels=["queue"]
        )
        for name, (messages, count) in sorted(ex.queues.items()):
            depth.add_metric([name], float(messages))
            consumers.add_metric([name], float(count))
        broker = GaugeMetricFamily("fixrunner_broker_up", "The broker answered the last refresh.")
        broker.add_metric([], 1.0 if ex.broker_ok else 0.0)
        yield from (up, slots, busy, images, runs, depth, consumers, broker)


def celery_executor(service: Service) -> CeleryExecutor:
    """The service's executor when ``executor = "celery"``: jobs go to the workers."""
    return CeleryExecutor(
        service.settings,
        service.store,
        store_path(service.settings),
        service.jobs_dir,
        service._finished,
        service.metrics,
    )
