"""The Docker engine connection and the sweep of leftover containers."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass

import docker
import docker.errors
import docker.models.containers
import requests.exceptions
import structlog

from runner.config import EngineSettings
from runner.errors import EngineUnavailableError
from runner.sandbox.labels import LABEL_DEADLINE, LABEL_JOB, LABEL_OWNER

log = structlog.get_logger(__name__)


# Transient failures talking to the engine: the engine is down or its socket is gone.
ENGINE_DOWN = (
    docker.errors.DockerException,
    requests.exceptions.ConnectionError,
    ConnectionError,
    FileNotFoundError,
)

UNAVAILABLE_HINT = (
    "the Docker engine does not answer{where}: run `make setup` (it installs and starts one), "
    "or start dockerd yourself and set DOCKER_HOST"
)


def connect(settings: EngineSettings) -> docker.DockerClient:
    """A client for the configured engine, the API version negotiated, answering a ping."""
    where = f" at {settings.docker_host}" if settings.docker_host else ""
    try:
        if settings.docker_host:
            client = docker.DockerClient(
                base_url=settings.docker_host,
                version="auto",
                timeout=settings.start_timeout_s,  # type: ignore[arg-type]  # a float works
            )
        else:
            client = docker.from_env(
                version="auto",
                timeout=settings.start_timeout_s,  # type: ignore[arg-type]  # a float works
            )
        client.ping()
    except ENGINE_DOWN as exc:
        raise EngineUnavailableError(UNAVAILABLE_HINT.format(where=where) + f" ({exc})") from exc
    return client


@dataclass(frozen=True)
class Sweep:
    """What a garbage-collection pass removed and what it left running."""

    removed: list[str]
    live: int


def owned_containers(
    client: docker.DockerClient, owner: str
) -> Iterator[docker.models.containers.Container]:
    """All containers, running or not, that carry this runner instance's owner label."""
    yield from client.containers.list(
        all=True, ignore_removed=True, filters={"label": f"{LABEL_OWNER}={owner}"}
    )


def sweep_expired(client: docker.DockerClient, owner: str, now: float | None = None) -> Sweep:
    """Remove this owner's containers whose deadline has passed; never another owner's."""
    now = time.time() if now is None else now
    removed: list[str] = []
    live = 0
    for container in owned_containers(client, owner):
        try:
            deadline = float(container.labels.get(LABEL_DEADLINE, "0"))
        except ValueError:
            deadline = 0.0
        if deadline > now:
            live += 1
            continue
        try:
            container.remove(force=True, v=True)
            removed.append(container.short_id)
        except docker.errors.NotFound:
            continue
    if removed:
        log.info("gc.removed", count=len(removed), containers=removed)
    return Sweep(removed=removed, live=live)


def removal_under_way(exc: docker.errors.APIError) -> bool:
    """The engine's 409 when another caller is already removing the container."""
    return exc.status_code == 409 and "already in progress" in str(exc.explanation or "")


def remove_job_containers(
    client: docker.DockerClient, owner: str, job_id: str, *, prefix: bool = False
) -> list[str]:
    """Remove one job's containers of this owner, running or not; the ids removed.

    With ``prefix``, every job whose id starts with ``job_id`` (a fix's attempts). Never
    raises: what the engine refuses is logged, and left for `runner gc`.
    """
    labels = [f"{LABEL_OWNER}={owner}", LABEL_JOB if prefix else f"{LABEL_JOB}={job_id}"]
    removed: list[str] = []
    try:
        listed = client.containers.list(all=True, ignore_removed=True, filters={"label": labels})
    except (docker.errors.APIError, requests.exceptions.RequestException) as exc:
        log.warning("sandbox.job_containers_not_listed", job_id=job_id, error=str(exc))
        return removed
    for container in listed:
        if not (container.labels or {}).get(LABEL_JOB, "").startswith(job_id):
            continue
        try:
            container.remove(force=True, v=True)
        except docker.errors.NotFound:
            continue
        except (docker.errors.APIError, requests.exceptions.RequestException) as exc:
            if not (isinstance(exc, docker.errors.APIError) and removal_under_way(exc)):
                log.warning("sandbox.remove_failed", container=container.short_id, error=str(exc))
                continue
        removed.append(container.short_id)
    return removed
