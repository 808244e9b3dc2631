"""Two private Docker engines, a private RabbitMQ node, one `runner worker` per engine,
and `runner serve` with executor = "celery": all on loopback and unix sockets.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import docker
import httpx
import pytest
from conftest import TEST_INSTANCE
from scaleout_support import Broker, Worker, celery_section, worker_config
from service_support import (
    BREAKS_OTHER,
    GOOD,
    NOT_APPLYING,
    Server,
    job_containers,
    make_calc_repo,
    make_server,
    wait_for,
)

from runner.client import RunnerClient
from runner.distributed.engines import LocalEngine, copy_image, start_engine, stop_engine
from runner.environments.images import BaseImage
from runner.models import FixJob, Verdict
from runner.service.models import JobView

pytestmark = pytest.mark.docker

INSTANCE = f"{TEST_INSTANCE}-scale"
HOSTS = ("h1", "h2")
EXPECTED = {GOOD: "verified", BREAKS_OTHER: "rejected", NOT_APPLYING: "rejected"}


@dataclass
class Cluster:
    """The whole multi-host setup of this module."""

    engines: dict[str, LocalEngine]
    clients: dict[str, docker.DockerClient]
    broker: Broker
    workers: dict[str, Worker]
    server: Server
    repo: Path
    slow_repo: Path

    def client(self) -> RunnerClient:
        return self.server.client()

    def containers(self, host: str, job_id: str | None = None) -> list:
        return job_containers(self.clients[host], INSTANCE, job_id)

    def host_running(self, job_id: str) -> str | None:
        """The engine that holds a container of this job now, if any."""
        for host in HOSTS:
            if self.containers(host, job_id):
                return host
        return None

    def assert_engines_clean(self, timeout_s: float = 20) -> None:
        wait_for(
            lambda: not any(self.containers(h) for h in HOSTS),
            timeout_s,
            "no container of the runner on either engine",
        )


def _job(repo: Path, patch: str) -> FixJob:
    return FixJob(repo=str(repo), patch=patch)


@pytest.fixture(scope="module")
def cluster(
    tmp_path_factory: pytest.TempPathFactory,
    base_image: BaseImage,
    docker_client: docker.DockerClient,
) -> Iterator[Cluster]:
    # Short paths: dockerd and containerd sockets live under each engine's folder.
    root = Path(tempfile.mkdtemp(prefix="fxr-", dir="/tmp"))
    folder = tmp_path_factory.mktemp("scaleout")
    engines: dict[str, LocalEngine] = {}
    broker = Broker(folder / "broker", name=f"fxr{TEST_INSTANCE.split('-')[-1]}")
    workers: dict[str, Worker] = {}
    server: Server | None = None
    try:
        with ThreadPoolExecutor(max_workers=3) as pool:
            broker_started = pool.submit(broker.start)
            for host in HOSTS:
                engines[host] = start_engine(root / host, host)
            clients = {h: e.client() for h, e in engines.items()}
            copies = [
                pool.submit(copy_image, docker_client, c, base_image.tag) for c in clients.values()
            ]
            for future in [broker_started, *copies]:
                future.result()
        worker_state = folder / "worker-state"
        for host in HOSTS:
            config = worker_config(
                folder / f"worker-{host}.toml", INSTANCE, worker_state, broker.url
            )
            workers[host] = Worker(host, engines[host].url, config, folder / f"worker-{host}.log")
            workers[host].start()
        server = make_server(folder / "svc", folder / "svc-state", "scale", executor="celery")
        with server.config.open("a", encoding="utf-8") as handle:
            handle.write("\n".join(celery_section(broker.url)) + "\n")
        server.start()
        repo = make_calc_repo(folder / "calc")
        slow_repo = make_calc_repo(folder / "slow", slow_seconds=15)
        cluster = Cluster(engines, clients, broker, workers, server, repo, slow_repo)
        _wait_for_workers(cluster, set(HOSTS))
        yield cluster
        cluster.assert_engines_clean()
    finally:
        if server is not None and server.proc is not None:
            server.stop()
        for worker in workers.values():
            worker.stop()
        broker.close()
        left = {}
        for host, engine in engines.items():
            try:
                left[host] = [c.name for c in job_containers(engine.client(30), INSTANCE)]
            except docker.errors.DockerException:
                left[host] = ["<engine did not answer>"]
            stop_engine(engine)
        with_left = {h: names for h, names in left.items() if names}
        with contextlib.suppress(OSError):
            root.rmdir()  # empty once every engine's folder is gone
        assert not root.exists(), f"engine folders left in {root}"
        assert not with_left, f"containers left on the private engines: {with_left}"


def _live_workers(server: Server) -> dict[str, dict]:
    proc = server.runner("workers", "--json", "--timeout", "2")
    if proc.returncode != 0:
        return {}
    return {w["host"]: w for w in json.loads(proc.stdout)}


def _wait_for_workers(cluster: Cluster, hosts: set[str], timeout_s: float = 120) -> dict:
    def ready() -> dict | None:
        for host in hosts:
            if not cluster.workers[host].alive():
                raise AssertionError(f"worker {host} exited: {cluster.workers[host].log_tail()}")
        live = _live_workers(cluster.server)
        return live if hosts <= set(live) else None

    return wait_for(ready, timeout_s, f"workers {sorted(hosts)} to answer", poll_s=1)


def _metrics(cluster: Cluster) -> str:
    response = httpx.get(
        f"{cluster.server.url}/metrics",
        headers={"Authorization": f"Bearer {cluster.server.token}"},
        timeout=10,
    )
    response.raise_for_status()
    return response.text


def test_twelve_jobs_get_right_verdicts_on_both_workers(cluster: Cluster) -> None:
    client = cluster.client()
    patches = [GOOD, BREAKS_OTHER, NOT_APPLYING] * 4
    refs = [client.submit(_job(cluster.repo, p)) for p in patches]
    with ThreadPoolExecutor(max_workers=12) as pool:
        verdicts = list(pool.map(lambda r: _wait(cluster, r.id), refs))
    assert [v.status for v in verdicts] == [EXPECTED[p] for p in patches]
    assert {v.host for v in verdicts} == set(HOSTS), [v.host for v in verdicts]
    assert all(client.get(r.id).status == "done" for r in refs)
    assert "started on" in client.logs(refs[0].id)
    cluster.assert_engines_clean()

    live = _live_workers(cluster.server)
    assert {h: live[h]["slots"] for h in HOSTS} == {"h1": 2, "h2": 2}
    assert all(live[h]["images"] for h in HOSTS), live  # each built the env image

    def metrics_with_workers() -> str | None:
        text = _metrics(cluster)
        return text if 'fixrunner_worker_up{host="h2"}' in text else None

    text = wait_for(metrics_with_workers, 15, "per-worker metrics")
    assert 'fixrunner_worker_slots{host="h1"} 2.0' in text
    assert 'fixrunner_queue_messages{queue="fixrunner.jobs"}' in text
    assert 'fixrunner_verdicts_total{status="verified"} 4.0' in text


def test_a_job_runs_where_its_environment_image_is(cluster: Cluster, tmp_path: Path) -> None:
    # Another pin set: a new environment image, built only where the first job runs.
    repo = make_calc_repo(tmp_path / "pinned")
    (repo / "requirements-test.txt").write_text("pytest==8.3.5\nflake8==7.1.1\n")
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.invalid"]
    subprocess.run([*git, "commit", "-qam", "pins"], cwd=repo, check=True, timeout=30)
    client = cluster.client()
    first = _wait(cluster, client.submit(_job(repo, GOOD)).id, 300)
    assert first.status == "verified"
    home, other = first.host, next(h for h in HOSTS if h != first.host)
    image = first.images.environment_image
    assert cluster.clients[home].images.list(name=image)
    assert not cluster.clients[other].images.list(name=image)
    wait_for(
        lambda: image in _live_workers(cluster.server).get(home, {}).get("images", []),
        20,
        "the worker to report its new image",
    )
    time.sleep(4)  # the service's view of the workers refreshes every 3 s
    for _ in range(3):
        verdict = _wait(cluster, client.submit(_job(repo, GOOD)).id, 300)
        assert verdict.status == "verified"
        assert verdict.host == home
    assert not cluster.clients[other].images.list(name=image)


def test_cancel_removes_the_running_container_within_seconds(cluster: Cluster) -> None:
    client = cluster.client()
    ref = client.submit(_job(cluster.slow_repo, GOOD))
    host = wait_for(lambda: cluster.host_running(ref.id), 240, "the job's container")
    started = time.monotonic()
    client.cancel(ref.id)
    wait_for(lambda: not cluster.containers(host, ref.id), 10, "the container to go")
    assert time.monotonic() - started < 10
    view = wait_for(lambda: _finished(client, ref.id), 20, "the job to be cancelled")
    assert view.status == "cancelled"
    assert view.verdict is not None and "cancelled" in view.verdict.summary


def test_a_killed_worker_s_job_finishes_on_the_other_worker(cluster: Cluster) -> None:
    client = cluster.client()
    ref = client.submit(_job(cluster.slow_repo, GOOD))
    victim = wait_for(lambda: cluster.host_running(ref.id), 240, "the job's container")
    survivor = next(h for h in HOSTS if h != victim)
    cluster.workers[victim].kill()
    assert cluster.containers(victim, ref.id), "the killed worker's container should remain"

    verdict = _wait(cluster, ref.id, 300)
    assert verdict.status == "verified"
    assert verdict.host == survivor
    view = client.get(ref.id)
    assert view.status == "done" and view.attempts == 2
    log = client.logs(ref.id)
    # Two runs started (the killed one and its redelivery), one reached a verdict.
    assert log.count("service   run ") == 2 and log.count("worker    done: verified") == 1

    cluster.workers[victim].start()  # it sweeps what its predecessor left
    _wait_for_workers(cluster, {victim})
    wait_for(lambda: not cluster.containers(victim), 30, "the orphaned container's removal")
    time.sleep(2)
    assert client.get(ref.id).verdict == view.verdict  # no second verdict


def test_nothing_is_lost_when_the_broker_restarts(cluster: Cluster) -> None:
    client = cluster.client()
    patches = [GOOD, BREAKS_OTHER] * 4
    refs = [client.submit(_job(cluster.repo, p)) for p in patches]
    time.sleep(2)  # published: most are waiting in the broker's queue
    cluster.broker.stop()
    # Accepted while the broker is down: kept in the store, published when it is back.
    late = [client.submit(_job(cluster.repo, GOOD)) for _ in range(2)]
    time.sleep(2)
    cluster.broker.start()
    every = [*refs, *late]
    with ThreadPoolExecutor(max_workers=10) as pool:
        verdicts = list(pool.map(lambda r: _wait(cluster, r.id), every))
    assert [v.status for v in verdicts] == [EXPECTED[p] for p in [*patches, GOOD, GOOD]]
    assert all(client.get(r.id).status == "done" for r in every)
    cluster.assert_engines_clean(60)


def _wait(cluster: Cluster, job_id: str, timeout_s: float = 420) -> Verdict:
    # A client per waiting thread, polling more often than uvicorn's 5 s keep-alive: a
    # pooled connection the server is closing just then would be reset under us.
    with cluster.server.client() as client:
        return client.wait(job_id, timeout=timeout_s, max_poll_s=2.0)


def _finished(client: RunnerClient, job_id: str) -> JobView | None:
    view = client.get(job_id)
    return view if view.status in ("done", "cancelled") else None
