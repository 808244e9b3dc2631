"""The Celery app both sides share: queues, delivery settings and worker → service events.

The store stays the single source of truth: a worker never writes it. It publishes
events (started, progress, finished) on a durable queue that the service consumes
and applies idempotently, so a redelivered event or a second run changes nothing.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

import structlog
from celery import Celery
from kombu import Exchange, Queue
from kombu.exceptions import KombuError
from pydantic import Field

from runner.config import CelerySettings, Settings
from runner.models import Model, Verdict

# The remote-control command a worker answers with its identity (host, engine, cache).
INFO_COMMAND = "fixrunner_info"

log = structlog.get_logger(__name__)

TASK_NAME = "fixrunner.verify"
# A finished event carries the job's phase logs; each is capped like the sandbox output.
LOG_CAP = 1_000_000


class WorkerEvent(Model):
    """One message from a worker to the service about one run of one job."""

    kind: Literal["started", "progress", "finished"]
    job_id: str
    run_id: str = Field(description="This run: worker host plus a random id.")
    host: str = Field(description="The worker host that runs the job.")
    at: datetime = Field(default_factory=lambda: datetime.now(UTC))
    redelivered: bool = Field(default=False, description="The broker delivered the job again.")
    line: str | None = Field(default=None, description="progress: one progress line.")
    status: Literal["done", "cancelled"] | None = Field(default=None, description="finished.")
    verdict: Verdict | None = Field(default=None, description="finished: the verdict.")
    seconds: float = Field(default=0.0, description="finished: the run's wall time.")
    logs: dict[str, str] = Field(default_factory=dict, description="finished: phase logs.")


def is_amqp(settings: CelerySettings) -> bool:
    """RabbitMQ (amqp://) rather than Redis: per-queue TTL and dead-lettering exist."""
    return settings.broker_url.split("://", 1)[0] in ("amqp", "pyamqp")


def shared_queue(settings: CelerySettings) -> Queue:
    """The queue every worker reads."""
    return Queue(
        settings.queue, Exchange(settings.queue, type="direct"), settings.queue, durable=True
    )


def host_queue_name(settings: CelerySettings, host: str) -> str:
    """The per-host queue of a worker (cache affinity)."""
    return f"{settings.host_queue_prefix}{host}"


def host_queue(settings: CelerySettings, host: str) -> Queue:
    """A host's queue; on RabbitMQ a job not taken within affinity_wait_s moves to any host."""
    name = host_queue_name(settings, host)
    arguments: dict[str, Any] = {}
    if is_amqp(settings):
        arguments = {
            "x-message-ttl": int(settings.affinity_wait_s * 1000),
            "x-dead-letter-exchange": settings.queue,
            "x-dead-letter-routing-key": settings.queue,
        }
    return Queue(name, Exchange(name, type="direct"), name, durable=True, queue_arguments=arguments)


def events_queue(settings: CelerySettings) -> Queue:
    """Worker → service events, durable."""
    name = settings.events_queue
    return Queue(name, Exchange(name, type="direct"), name, durable=True)


def make_celery(settings: Settings, queues: list[Queue] | None = None) -> Celery:
    """The Celery app with the settings that make "nothing lost" true."""
    c = settings.celery
    app = Celery("fixrunner", broker=c.broker_url, set_as_current=False)
    transport: dict[str, Any] = {}
    if is_amqp(c):
        transport["confirm_publish"] = True  # a publish returns once the broker has it
    else:
        # Redis redelivers an unacknowledged job after this; longer than any job.
        transport["visibility_timeout"] = int(c.task_time_limit_s * 2)
    app.conf.update(
        task_serializer="json",
        accept_content=["json"],
        result_serializer="json",
        task_ignore_result=True,  # verdicts travel as events into the service's store
        task_acks_late=c.acks_late,
        task_reject_on_worker_lost=c.reject_on_worker_lost,
        worker_prefetch_multiplier=c.prefetch_multiplier,
        task_default_queue=c.queue,
        task_queues=queues or [shared_queue(c)],
        task_create_missing_queues=False,
        task_default_delivery_mode="persistent",
        broker_connection_retry_on_startup=True,
        broker_connection_max_retries=None,
        broker_transport_options=transport,
        worker_hijack_root_logger=False,
        worker_redirect_stdouts=False,
        worker_send_task_events=False,
        # On a lost broker connection running jobs go on: the broker redelivers their
        # messages, the worker skips a job it still runs, and the first verdict wins.
        worker_cancel_long_running_tasks_on_connection_loss=False,
        worker_enable_remote_control=True,
    )
    return app


def publish_event(app: Celery, settings: CelerySettings, event: WorkerEvent, patient: bool) -> bool:
    """Publish one event; ``patient`` retries through a broker restart (finished events)."""
    queue = events_queue(settings)
    policy = (
        {"max_retries": 600, "interval_start": 0.5, "interval_step": 0.5, "interval_max": 2}
        if patient
        else {"max_retries": 1, "interval_start": 0.2, "interval_step": 0.2, "interval_max": 0.5}
    )
    try:
        with app.producer_or_acquire() as producer:
            producer.publish(
                event.model_dump(mode="json"),
                exchange=queue.exchange,
                routing_key=queue.routing_key,
                declare=[queue],
                serializer="json",
                delivery_mode=2,
                retry=True,
                retry_policy=policy,
            )
    except (OSError, KombuError) as exc:
        log.warning("worker.event_not_sent", kind=event.kind, job_id=event.job_id, error=str(exc))
        return False
    return True
