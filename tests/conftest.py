"""Shared fixtures. Docker tests use the real engine; a missing engine fails them."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest

from runner.config import Settings, load_settings
from runner.environments.images import BaseImage, ensure_base_image
from runner.errors import EngineUnavailableError
from runner.sandbox.engine import connect
from runner.sandbox.labels import LABEL_OWNER
from runner.verify.runtime import Runtime

REPO_ROOT = Path(__file__).resolve().parent.parent
# One owner label per test session: concurrent sessions never judge or remove each
# other's containers. Tests that need another instance name derive it from this prefix.
TEST_INSTANCE = f"pytest-{os.getpid()}"


@pytest.fixture(scope="session")
def docker_client() -> docker.DockerClient:
    """The real engine. Never skipped: CI must fail loudly when it is missing."""
    try:
        return connect(load_settings(REPO_ROOT / "runner.toml", environ={}).engine)
    except EngineUnavailableError as exc:
        pytest.fail(f"Docker tests need a running engine (make setup starts one): {exc}")


def make_settings(state_dir: Path, instance: str = TEST_INSTANCE) -> Settings:
    """Project defaults with the given state dir and owner label (a TEST_INSTANCE prefix)."""
    base = load_settings(REPO_ROOT / "runner.toml", environ={})
    return base.model_copy(
        update={
            "engine": base.engine.model_copy(update={"instance": instance}),
            "paths": base.paths.model_copy(update={"state_dir": state_dir}),
        }
    )


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Project defaults with a private state dir and the test instance's owner label."""
    return make_settings(tmp_path / "state")


@pytest.fixture(scope="session")
def base_image(docker_client: docker.DockerClient) -> BaseImage:
    """The sandbox base image, built once per machine (about a minute the first time)."""
    return ensure_base_image(docker_client, load_settings(REPO_ROOT / "runner.toml", environ={}))


@pytest.fixture(scope="module")
def module_runtime(
    tmp_path_factory: pytest.TempPathFactory,
    base_image: BaseImage,
    docker_client: docker.DockerClient,
    request: pytest.FixtureRequest,
) -> Runtime:
    """A runtime with a private state dir for one test module, its owner named after it."""
    name = request.module.__name__.removeprefix("test_").replace("_", "-")
    state = tmp_path_factory.mktemp("state")
    return Runtime.start(make_settings(state, f"{TEST_INSTANCE}-{name}"))


@pytest.fixture(autouse=True)
def no_leftover_containers(request: pytest.FixtureRequest) -> Iterator[None]:
    """After every Docker test, no container of a test runner instance may remain."""
    if request.node.get_closest_marker("docker") is None:
        yield
        return
    client = request.getfixturevalue("docker_client")
    yield
    # Only this session's containers (owners starting with TEST_INSTANCE): a runner, a
    # service or another test session running beside it is not this one's to judge.
    left = [
        c
        for c in client.containers.list(
            all=True, ignore_removed=True, filters={"label": LABEL_OWNER}
        )
        if c.labels.get(LABEL_OWNER, "").startswith(TEST_INSTANCE)
    ]
    for container in left:
        container.remove(force=True, v=True)
    assert not left, f"containers left behind: {[c.name for c in left]}"
