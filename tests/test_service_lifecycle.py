"""The service under stress: cancel, a full queue, kill -9 and restart, SIGTERM."""

from __future__ import annotations

import contextlib
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import pytest
from service_support import (
    GOOD,
    Server,
    job_containers,
    make_calc_repo,
    make_server,
    serving,
    shared_state,
    wait_for,
)

from runner.client import OverloadedError
from runner.environments.images import BaseImage
from runner.models import FixJob
from runner.sandbox.labels import LABEL_PHASE, LABEL_TARGET
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
    with serving(tmp_path_factory, "svc-single", concurrency=1, queue_limit=1) as srv:
        yield srv


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


def _build_container(docker_client: docker.DockerClient, server: Server, job_id: str) -> Any:
    found = [
        c
        for c in job_containers(docker_client, server.instance, job_id)
        if c.labels.get(LABEL_PHASE) == "env-build"
    ]
    return found[0] if found else None


def test_two_kill_9s_remove_the_build_container_and_the_trees_and_end_the_job(
    tmp_path: Path, tmp_path_factory: pytest.TempPathFactory, base_image: BaseImage,
    docker_client: docker.DockerClient,
) -> None:  # fmt: skip
    # An extra pin no other test uses: this job's environment image is built, not reused.
    repo = make_calc_repo(tmp_path / "repo", slow_seconds=ENDLESS)
    with (repo / "requirements-test.txt").open("a", encoding="utf-8") as handle:
        handle.write("six==1.17.0\n")
    subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@example.invalid", "commit", "-qam", "six"],
        cwd=repo, check=True, timeout=30,
    )  # fmt: skip
    state = shared_state(tmp_path_factory.getbasetemp())
    server = make_server(tmp_path / "svc", state, "svc-crash2", concurrency=1)
    target = None
    server.start()
    try:
        with server.client() as client:
            ref = client.submit(FixJob(repo=str(repo), patch=GOOD))
            trees = state / "jobs" / ref.id / "trees"
            build = wait_for(
                lambda: _build_container(docker_client, server, ref.id), 300, "the env build"
            )
            target = build.labels[LABEL_TARGET]
            assert server.stop(signal.SIGKILL) == -signal.SIGKILL
            assert trees.is_dir(), "the crash left the checkouts"
            server.start()  # recovery: requeued, the first build's container removed
            with pytest.raises(docker.errors.NotFound):
                docker_client.containers.get(build.id)
            wait_for(
                lambda: job_containers(docker_client, server.instance, ref.id), 300, "attempt 2"
            )
            assert server.stop(signal.SIGKILL) == -signal.SIGKILL
            server.start()  # a second crash: the job ends, nothing of it stays
            view = client.get(ref.id)
        assert (view.status, view.crashes) == ("done", 2)
        assert view.verdict is not None and view.verdict.status == "error"
        assert "stopped unexpectedly 2 times" in view.verdict.summary
        assert not job_containers(docker_client, server.instance, ref.id)
        assert not trees.exists()
    finally:
        if server.proc is not None:
            assert server.stop() == 0
        if target is not None:
            with contextlib.suppress(docker.errors.ImageNotFound):
                docker_client.images.remove(target, force=True)
