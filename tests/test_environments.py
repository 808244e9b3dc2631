"""Environment images built on the real engine from real git repositories."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import textwrap
from collections.abc import Iterator
from pathlib import Path

import docker
import docker.errors
import pytest

from runner.config import Settings
from runner.environments.builds import commit_date, ensure_env_image
from runner.environments.imagebuild import EnvImage
from runner.environments.images import BaseImage
from runner.models import Limits, Mount, RunSpec
from runner.sandbox.docker import DockerSandbox
from runner.sandbox.labels import (
    LABEL_DEADLINE,
    LABEL_ENV_HASH,
    LABEL_KIND,
    LABEL_OWNER,
    LABEL_TARGET,
)

pytestmark = pytest.mark.docker

# Not "pytest…": conftest.py force-removes such owners' containers after every Docker
# test of any session, which would kill this module's builds when sessions overlap.
# env_settings checks this module's own leftovers instead.
TEST_INSTANCE = "envtest"

PYPROJECT = """
    [build-system]
    requires = ["setuptools>=61"]
    build-backend = "setuptools.build_meta"

    [project]
    name = "datedpkg"
    version = "0.3.0"
    dependencies = [{deps}]

    [project.optional-dependencies]
    test = ["pytest"]

    [project.entry-points."datedpkg.plugins"]
    one = "datedpkg:VALUE"
"""
TEST_FILE = """
    import importlib.metadata

    import pytest

    import datedpkg


    def test_written_for_pytest_8():
        assert pytest.__version__.startswith("8.")


    def test_project_metadata_is_installed():
        assert importlib.metadata.version("datedpkg") == "0.3.0"
        assert datedpkg.VALUE == 42
"""


def make_repo(root: Path, files: dict[str, str], when: str = "2024-11-10T12:00:00+00:00") -> Path:
    """A git repository with ``files`` committed at ``when`` (committer and author date)."""
    root.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
    env = {**os.environ, "GIT_COMMITTER_DATE": when, "GIT_AUTHOR_DATE": when}
    identity = ["-c", "user.name=t", "-c", "user.email=t@example.invalid"]
    for argv in (["init", "-q"], ["add", "-A"], [*identity, "commit", "-qm", "c"]):
        subprocess.run(["git", *argv], cwd=root, env=env, check=True, timeout=30)
    return root


@pytest.fixture(autouse=True)
def no_leftover_containers(docker_client: docker.DockerClient) -> Iterator[None]:
    """This module's own containers only (overrides conftest.py's check, which also
    judges and force-removes the live containers of other sessions on the engine)."""
    yield
    left = docker_client.containers.list(
        all=True, ignore_removed=True, filters={"label": f"{LABEL_OWNER}={TEST_INSTANCE}"}
    )
    assert not left, f"containers left behind: {[c.name for c in left]}"


@pytest.fixture(scope="module")
def env_settings(
    tmp_path_factory: pytest.TempPathFactory, docker_client: docker.DockerClient
) -> Iterator[Settings]:
    """Defaults, the test instance's owner label, a throw-away state dir (its wheel cache
    stays with it) and an image repository only this module uses, removed afterwards."""
    repository = f"fixrunner-envtest-{secrets.token_hex(3)}"
    state = tmp_path_factory.mktemp("state")
    yield Settings.model_validate(
        {
            "paths": {"state_dir": str(state)},
            "images": {"repository": repository},
            "engine": {"instance": TEST_INSTANCE},
        }
    )
    builders = docker_client.containers.list(
        all=True, ignore_removed=True, filters={"label": LABEL_TARGET}
    )
    leftovers = [c.name for c in builders if c.labels[LABEL_TARGET].startswith(repository)]
    for image in docker_client.images.list(name=f"{repository}-env"):
        docker_client.images.remove(image.id, force=True)
    assert not docker_client.images.list(name=f"{repository}-env")
    assert not leftovers, f"build containers left behind: {leftovers}"


@pytest.fixture(scope="module")
def dated_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An unpinned project whose only commit is dated November 2024."""
    return make_repo(
        tmp_path_factory.mktemp("repo") / "datedpkg",
        {
            "pyproject.toml": PYPROJECT.format(deps=""),
            "datedpkg/__init__.py": "VALUE = 42\n",
            "tests/test_dated.py": TEST_FILE,
        },
        when="2024-11-10T12:00:00+00:00",
    )


@pytest.fixture(scope="module")
def dated_image(
    docker_client: docker.DockerClient,
    base_image: BaseImage,
    dated_repo: Path,
    env_settings: Settings,
) -> EnvImage:
    return ensure_env_image(
        docker_client,
        base_image,
        dated_repo,
        env_settings,
        str(dated_repo),
        commit_date(dated_repo),
    )


def test_built_image_runs_the_suite_with_pytest_of_its_date(
    docker_client: docker.DockerClient,
    env_settings: Settings,
    dated_image: EnvImage,
    dated_repo: Path,
    tmp_path: Path,
) -> None:
    assert not dated_image.reused
    assert dated_image.environment.source == "as-of: 2024-11-10"
    assert dated_image.environment.pytest == "8.3.3"
    assert dated_image.install_mode == "editable"
    assert dated_image.python.startswith("3.11.")
    labels = docker_client.images.get(dated_image.tag).labels
    assert labels[LABEL_KIND] == "env"
    assert dated_image.tag.endswith(labels[LABEL_ENV_HASH][:16])
    assert labels[LABEL_TARGET] == labels[LABEL_DEADLINE] == ""

    # The sandbox mounts the job's own copy of the tree at /work, read-only.
    workspace = tmp_path / "work"
    shutil.copytree(dated_repo, workspace, ignore=shutil.ignore_patterns(".git"))
    spec = RunSpec(
        image=dated_image.tag,
        command=["python", "-m", "pytest", "-q", "-p", "no:cacheprovider"],
        mounts=[Mount(source=workspace, target="/work")],
        limits=Limits(timeout_s=120),
        phase="env-test",
    )
    result = DockerSandbox(docker_client, env_settings.engine).run(spec)
    assert result.exit_code == 0, result.output
    assert "2 passed" in result.output

    record = dated_image.write_environment_json(tmp_path)
    assert '"pytest": "8.3.3"' in record.read_text()


def test_unchanged_repo_reuses_and_changed_dependencies_rebuild(
    docker_client: docker.DockerClient,
    base_image: BaseImage,
    dated_image: EnvImage,
    dated_repo: Path,
    env_settings: Settings,
    tmp_path: Path,
) -> None:
    again = ensure_env_image(
        docker_client,
        base_image,
        dated_repo,
        env_settings,
        str(dated_repo),
        commit_date(dated_repo),
    )
    assert again.reused
    assert (again.id, again.tag) == (dated_image.id, dated_image.tag)
    assert (again.install_mode, again.python) == ("editable", dated_image.python)

    changed = tmp_path / "changed"
    shutil.copytree(dated_repo, changed)
    (changed / "pyproject.toml").write_text(
        PYPROJECT.format(deps='"six==1.16.0"'), encoding="utf-8"
    )
    subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@example.invalid", "commit", "-qam", "six"],
        cwd=changed,
        check=True,
        timeout=30,
        env={"GIT_COMMITTER_DATE": "2024-11-11T12:00:00+00:00", "PATH": "/usr/bin:/bin"},
    )
    rebuilt = ensure_env_image(
        docker_client, base_image, changed, env_settings, str(changed), commit_date(changed)
    )
    assert not rebuilt.reused
    assert rebuilt.tag != dated_image.tag
    assert rebuilt.environment.packages["six"] == "1.16.0"


def test_broken_build_backend_falls_back_to_the_pth_file(
    docker_client: docker.DockerClient,
    base_image: BaseImage,
    env_settings: Settings,
    tmp_path: Path,
) -> None:
    repo = make_repo(
        tmp_path / "broken",
        {
            "setup.py": "raise SystemExit('this project cannot be built')\n",
            "broken/__init__.py": "VALUE = 7\n",
            "requirements.txt": "iniconfig\nnot a requirement !!\n",
        },
    )
    image = ensure_env_image(
        docker_client, base_image, repo, env_settings, str(repo), commit_date(repo)
    )
    assert image.install_mode == "pth"
    assert any(note.startswith("editable install failed") for note in image.notes)
    # The fallback reaches the verdict beside detection's notes, neither replacing the other.
    for notes in (
        image.info().notes,
        json.loads(image.write_environment_json(tmp_path).read_text())["notes"],
    ):
        assert any(note.startswith("editable install failed") for note in notes)
        assert "'not a requirement !!': not a requirement, skipped" in notes
    assert "install-project (exit 1" in image.build_log_tail
    assert "this project cannot be built" in image.build_log_tail
    spec = RunSpec(
        image=image.tag,
        command=["python", "-c", "import broken; print(broken.VALUE)"],
        mounts=[Mount(source=repo, target="/work")],
        limits=Limits(timeout_s=60),
        phase="env-test",
    )
    result = DockerSandbox(docker_client, env_settings.engine).run(spec)
    assert (result.exit_code, result.output.strip()) == (0, "7")
