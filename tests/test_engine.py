from __future__ import annotations

import time

import docker
import pytest
from conftest import TEST_INSTANCE

from runner.config import EngineSettings
from runner.environments.images import BaseImage
from runner.errors import EngineUnavailableError
from runner.sandbox.engine import connect, sweep_expired
from runner.sandbox.labels import LABEL_DEADLINE, LABEL_OWNER

pytestmark = pytest.mark.docker


def labelled(client: docker.DockerClient, image: BaseImage, owner: str, deadline: float):
    return client.containers.create(
        image.id,
        ["sleep", "600"],
        labels={LABEL_OWNER: owner, LABEL_DEADLINE: f"{deadline:.0f}"},
        network_mode="none",
    )


def test_gc_removes_only_own_expired_containers(
    docker_client: docker.DockerClient, base_image: BaseImage
) -> None:
    now = time.time()
    expired = labelled(docker_client, base_image, TEST_INSTANCE, now - 10)
    live = labelled(docker_client, base_image, TEST_INSTANCE, now + 3600)
    other = labelled(docker_client, base_image, f"{TEST_INSTANCE}-other", now - 10)
    try:
        sweep = sweep_expired(docker_client, TEST_INSTANCE)
        remaining = {c.id for c in docker_client.containers.list(all=True, ignore_removed=True)}
        assert expired.id not in remaining
        assert live.id in remaining
        assert other.id in remaining
        assert sweep.removed == [expired.short_id]
        assert sweep.live == 1
    finally:
        for container in (live, other):
            container.remove(force=True)


def test_unreachable_engine_is_one_clear_error() -> None:
    settings = EngineSettings(docker_host="unix:///nonexistent/docker.sock", start_timeout_s=2)
    with pytest.raises(EngineUnavailableError, match="does not answer at unix:///nonexistent"):
        connect(settings)
