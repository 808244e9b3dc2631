"""Projects whose environment needs their build backend: classes 4 and 5 of issue 17.

Real engine, real git repositories: a setup.py that computes its extras (read through
PEP 517 metadata in a network-less container) and a setuptools-scm project whose
version file only exists once the project is built.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import textwrap
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest

from runner.config import Settings
from runner.environments.builds import commit_date, ensure_env_image
from runner.environments.images import BaseImage
from runner.models import Limits, Mount, RunSpec
from runner.sandbox.docker import DockerSandbox
from runner.sandbox.labels import LABEL_OWNER

pytestmark = pytest.mark.docker

# Not "pytest…": see tests/test_environments.py (conftest's check judges those owners).
TEST_INSTANCE = "projbuildtest"


def make_repo(root: Path, files: dict[str, str], tag: str | None = None) -> Path:
    """A git repository with ``files`` in one commit of November 2024, tagged ``tag``."""
    root.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
    when = "2024-11-10T12:00:00+00:00"
    env = {**os.environ, "GIT_COMMITTER_DATE": when, "GIT_AUTHOR_DATE": when}
    identity = ["-c", "user.name=t", "-c", "user.email=t@example.invalid"]
    steps = [["init", "-q"], ["add", "-A"], [*identity, "commit", "-qm", "c"]]
    if tag:
        steps.append([*identity, "tag", tag])
    for argv in steps:
        subprocess.run(["git", *argv], cwd=root, env=env, check=True, timeout=30)
    return root


@pytest.fixture(autouse=True)
def no_leftover_containers(docker_client: docker.DockerClient) -> Iterator[None]:
    """This module's own containers only."""
    yield
    left = docker_client.containers.list(
        all=True, ignore_removed=True, filters={"label": f"{LABEL_OWNER}={TEST_INSTANCE}"}
    )
    assert not left, f"containers left behind: {[c.name for c in left]}"


@pytest.fixture(scope="module")
def env_settings(
    tmp_path_factory: pytest.TempPathFactory, docker_client: docker.DockerClient
) -> Iterator[Settings]:
    """A throw-away state dir and an image repository only this module uses."""
    repository = f"fixrunner-projbuild-{secrets.token_hex(3)}"
    state = tmp_path_factory.mktemp("state")
    yield Settings.model_validate(
        {
            "paths": {"state_dir": str(state)},
            "images": {"repository": repository},
            "engine": {"instance": TEST_INSTANCE},
        }
    )
    for image in docker_client.images.list(name=f"{repository}-env"):
        docker_client.images.remove(image.id, force=True)


def run_in(
    client: docker.DockerClient, settings: Settings, image: str, tree: Path, argv: list[str]
) -> tuple[int | None, str]:
    spec = RunSpec(
        image=image,
        command=argv,
        mounts=[Mount(source=tree, target="/work")],
        limits=Limits(timeout_s=120),
        phase="env-test",
    )
    result = DockerSandbox(client, settings.engine).run(spec)
    return result.exit_code, result.output


def test_computed_setup_py_extras_come_from_backend_metadata(
    docker_client: docker.DockerClient,
    base_image: BaseImage,
    env_settings: Settings,
    tmp_path: Path,
) -> None:
    marker = tmp_path / "setup-ran-on-host"
    repo = make_repo(
        tmp_path / "computed",
        {
            "setup.py": f"""
                import pathlib, sys
                from setuptools import setup

                # Would show that the host ran this file: it must only run in a sandbox.
                if pathlib.Path({str(tmp_path)!r}).exists():
                    pathlib.Path({str(marker)!r}).write_text("ran")
                EXTRAS = {{"tests_base": ["iniconfig==2.0.0"]}}
                if sys.version_info >= (3, 8):
                    EXTRAS["tests_base"].append("six==1.16.0")
                EXTRAS["tests"] = EXTRAS["tests_base"] + ["computed[speed]"]
                EXTRAS["speed"] = ["tomli==2.0.1"]
                NAME = "computed"  # only the build backend knows it: the name is not a literal
                setup(
                    name=NAME,
                    version="1.0",
                    packages=["computed"],
                    extras_require=EXTRAS,
                )
            """,
            "tox.ini": "[testenv]\nextras = tests\n",
            "computed/__init__.py": "VALUE = 1\n",
            "tests/test_it.py": "import iniconfig, six, tomli\n\ndef test_it():\n    pass\n",
        },
    )
    image = ensure_env_image(
        docker_client, base_image, repo, env_settings, str(repo), commit_date(repo)
    )
    assert not marker.exists()
    packages = image.environment.packages
    assert (packages["iniconfig"], packages["six"], packages["tomli"]) == (
        "2.0.0",
        "1.16.0",
        "2.0.1",
    )
    assert image.environment.origins["six==1.16.0"] == "build backend metadata (PEP 517)"
    assert image.environment.project_name == "computed"
    code, output = run_in(
        docker_client, env_settings, image.tag, repo, ["python", "-m", "pytest", "-q"]
    )
    assert code == 0, output
