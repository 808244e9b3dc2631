"""The service under stress: cancel, a full queue, kill -9 and restart, SIGTERM."""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest
from service_support import (
    GOOD,
    Server,
    job_containers,
    make_calc_repo,
    make_server,
    shared_state,
    wait_for,
)

from runner.client import OverloadedError
from runner.environments.images import BaseImage
from runner.models import FixJob
from runner.service.store import SqliteStore

pytestmark = pytest.mark.docker

ENDLESS = 10**6


@pytest.fixture(scope="module")
def endless_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A repository whose suite never ends on its own."""
    return make_calc_repo(tmp_path_factory.mktemp("endless") / "repo", slow_seconds=ENDLESS)


@pytest.fixture(scope="module")
def single(tmp_path_factory: pytest.TempPathFactory, base_image: BaseImage) -> Iterator[Server]:
    """One worker and room for one queued job."""
    srv = make_server(
        tmp_path_factory.mktemp("svc-single"),
        shared_state(tmp_path_factory.getbasetemp()),
        "svc-single",
        concurrency=1,
        queue_limit=1,
    )
    srv.start()
    yield srv
    assert srv.stop() == 0, srv.log.read_text()[-3000:]


def _running_in_a_container(
    docker_client: docker.DockerClient, server: Server, job_id: str, timeout_s: float = 120
) -> None:
    wait_for(
        lambda: job_containers(docker_client, server.instance, job_id),
        timeout_s,
        f"a container of job {job_id}",
    )


def test_cancelling_a_running_job_removes_its_container_within_seconds(
    single: Server, endless_repo: Path, docker_client: docker.DockerClient
) -> None:
    with single.client() as client:
        ref = client.submit(FixJob(repo=str(endless_repo), patch=GOOD))
        _running_in_a_container(docker_client, single, ref.id)
        started = time.monotonic()
        client.cancel(ref.id)
        wait_for(lambda: not job_containers(docker_client, single.instance, ref.id), 10, "removal")
        assert time.monotonic() - started < 10
        verdict = client.wait(ref.id, timeout=60)
        view = client.get(ref.id)
    assert view.status == "cancelled"
    assert verdict.status == "error" and "cancelled" in verdict.summary


def test_a_full_queue_answers_429_with_retry_after(
    single: Server, endless_repo: Path, docker_client: docker.DockerClient
) -> None:
    with single.client() as client:
        running = client.submit(FixJob(repo=str(endless_repo), patch=GOOD))
        wait_for(lambda: client.get(running.id).status == "running", 60, "the first job to run")
        queued = client.submit(FixJob(repo=str(endless_repo), patch=GOOD))
        assert queued.status == "queued"
        with pytest.raises(OverloadedError) as caught:
            client.submit(FixJob(repo=str(endless_repo), patch=GOOD))
        assert caught.value.status_code == 429
        assert caught.value.retry_after is not None and caught.value.retry_after >= 1
        cancelled = client.cancel(queued.id)
        assert cancelled.status == "cancelled" and cancelled.verdict is not None
        _running_in_a_container(docker_client, single, running.id)
        client.cancel(running.id)
        client.wait(running.id, timeout=60)
    wait_for(lambda: not job_containers(docker_client, single.instance), 10, "no containers")


def test_after_kill_9_a_restart_finishes_the_job_and_leaves_no_container(
    tmp_path: Path, tmp_path_factory: pytest.TempPathFactory, base_image: BaseImage,
    docker_client: docker.DockerClient,
) -> None:  # fmt: skip
    repo = make_calc_repo(tmp_path / "repo", slow_seconds=4)
    server = make_server(
        tmp_path / "svc",
        shared_state(tmp_path_factory.getbasetemp()),
        "svc-crash",
        concurrency=1,
    )
    server.start()
    try:
        with server.client() as client:
            ref = client.submit(FixJob(repo=str(repo), patch=GOOD))
            _running_in_a_container(docker_client, server, ref.id)
            assert server.stop(signal.SIGKILL) == -signal.SIGKILL
            assert job_containers(docker_client, server.instance, ref.id), "orphans expected"
            server.start()
            verdict = client.wait(ref.id, timeout=120)
            view = client.get(ref.id)
            logs = client.logs(ref.id)
        assert verdict.status == "verified", verdict.summary
        assert (view.status, view.attempts, view.crashes) == ("done", 2, 1)
        assert "started (attempt 1)" in logs and "started (attempt 2)" in logs
        assert not job_containers(docker_client, server.instance)
    finally:
        if server.proc is not None:
            assert server.stop() == 0


def test_sigterm_requeues_an_unfinished_job_and_exits_0(
    tmp_path: Path, tmp_path_factory: pytest.TempPathFactory, endless_repo: Path,
    base_image: BaseImage, docker_client: docker.DockerClient,
) -> None:  # fmt: skip
    server = make_server(
        tmp_path / "svc",
        shared_state(tmp_path_factory.getbasetemp()),
        "svc-term",
        concurrency=1,
        shutdown_grace_s=1.0,
    )
    server.start()
    with server.client() as client:
        ref = client.submit(FixJob(repo=str(endless_repo), patch=GOOD))
        _running_in_a_container(docker_client, server, ref.id)
    started = time.monotonic()
    assert server.stop(signal.SIGTERM, timeout_s=60) == 0
    assert time.monotonic() - started < 30
    assert not job_containers(docker_client, server.instance)
    store = SqliteStore(server.folder / "service.db")
    record = store.get(ref.id)
    store.close()
    assert record is not None and (record.status, record.crashes) == ("queued", 0)
