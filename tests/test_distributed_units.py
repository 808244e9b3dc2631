"""The Celery executor's pure parts: settings, queues, events applied to a real store."""

from __future__ import annotations

from pathlib import Path

import pytest

from runner.config import Settings, load_settings
from runner.distributed.broker import WorkerEvent, host_queue, make_celery
from runner.distributed.dispatch import Dispatch
from runner.distributed.executor import CeleryExecutor
from runner.errors import ConfigError
from runner.models import ImagesInfo, Verdict
from runner.service.metrics import ServiceMetrics
from runner.service.models import JobSubmission
from runner.service.records import JobRecord
from runner.service.store import SqliteStore


def _settings(tmp_path: Path, **celery: object) -> Settings:
    env = {"RUNNER_PATHS__STATE_DIR": str(tmp_path)}
    env.update({f"RUNNER_CELERY__{k.upper()}": str(v) for k, v in celery.items()})
    return load_settings(Path(__file__).resolve().parent.parent / "runner.toml", environ=env)


def test_the_time_limit_must_be_above_twice_the_sandbox_timeout(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="task_time_limit_s"):
        _settings(tmp_path, task_time_limit_s=500)


def test_only_rabbitmq_and_redis_brokers_are_accepted(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="broker_url"):
        _settings(tmp_path, broker_url='"sqs://queue"')


def test_a_host_queue_dead_letters_into_the_shared_queue(tmp_path: Path) -> None:
    c = _settings(tmp_path, affinity_wait_s=7).celery
    queue = host_queue(c, "h1")
    assert queue.name == "fixrunner.host.h1"
    assert queue.queue_arguments == {
        "x-message-ttl": 7000,
        "x-dead-letter-exchange": "fixrunner.jobs",
        "x-dead-letter-routing-key": "fixrunner.jobs",
    }


def test_redis_has_no_queue_ttl_and_a_long_visibility_timeout(tmp_path: Path) -> None:
    settings = _settings(tmp_path, broker_url='"redis://127.0.0.1:6379/0"')
    assert host_queue(settings.celery, "h1").queue_arguments == {}
    app = make_celery(settings)
    assert app.conf.broker_transport_options["visibility_timeout"] == 7200
    assert app.conf.task_acks_late and app.conf.worker_prefetch_multiplier == 1


def test_affinity_remembers_the_image_of_the_same_repository(tmp_path: Path) -> None:
    dispatch = Dispatch(tmp_path / "s.db")
    dispatch.remember("repo", "HEAD", "fixrunner-env:aaa", "h1")
    dispatch.remember("repo", "v2", "fixrunner-env:bbb", "h2")
    assert dispatch.env_image("repo", "v2") == "fixrunner-env:bbb"
    assert dispatch.env_image("repo", "HEAD") == "fixrunner-env:aaa"
    assert dispatch.env_image("other", "HEAD") is None


class _Executor:
    """A CeleryExecutor over a real store; no broker is contacted by apply()."""

    def __init__(self, tmp_path: Path) -> None:
        self.settings = _settings(tmp_path)
        self.store = SqliteStore(tmp_path / "service.db")
        self.finished: list[JobRecord] = []
        self.executor = CeleryExecutor(
            self.settings,
            self.store,
            tmp_path / "service.db",
            tmp_path / "jobs",
            lambda record, seconds: self.finished.append(record),
            ServiceMetrics(queued=lambda: 0, running=lambda: 0),
        )

    def add(self) -> str:
        sub = JobSubmission(repo="/tmp/r", patch="x")
        record, _ = self.store.add("job-1", "t", None, "h", sub)
        return record.id


def _finished(job_id: str, run_id: str, host: str) -> WorkerEvent:
    verdict = Verdict(
        job_id=job_id,
        status="verified",
        summary="verified",
        host=host,
        images=ImagesInfo(environment_image="fixrunner-env:abc"),
    )
    return WorkerEvent(
        kind="finished", job_id=job_id, run_id=run_id, host=host, status="done",
        verdict=verdict, logs={"candidate.log": "ok\n", "../evil.log": "no"},
    )  # fmt: skip


def test_a_verdict_lands_once_even_when_a_second_run_reports(tmp_path: Path) -> None:
    ex = _Executor(tmp_path)
    job_id = ex.add()
    ex.executor.apply(WorkerEvent(kind="started", job_id=job_id, run_id="h1/a", host="h1"))
    ex.executor.apply(WorkerEvent(kind="started", job_id=job_id, run_id="h2/b", host="h2"))
    ex.executor.apply(
        WorkerEvent(kind="progress", job_id=job_id, run_id="h2/b", host="h2", line="x\n")
    )
    ex.executor.apply(_finished(job_id, "h2/b", "h2"))
    ex.executor.apply(_finished(job_id, "h1/a", "h1"))  # late: ignored
    record = ex.store.get(job_id)
    assert record is not None and record.status == "done" and record.attempts == 2
    assert record.verdict is not None and record.verdict.host == "h2"
    assert [r.id for r in ex.finished] == [job_id]
    folder = tmp_path / "jobs" / job_id
    assert (folder / "logs" / "candidate.log").read_text() == "ok\n"
    assert not (folder / "evil.log").exists()
    assert "x\n" in (folder / "progress.log").read_text()
    assert ex.executor._dispatch.env_image("/tmp/r", "HEAD") == "fixrunner-env:abc"
