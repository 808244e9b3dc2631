"""Cancellation: an interrupted job stops, starts no container after that, and leaves none.

The CLI is interrupted while its suite runs (a test that blocks, so the job cannot end
first however slow the machine) and while its environment image is being built.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import docker
import pytest
from anthropic_fake import FakeAnthropic, tool_use
from conftest import TEST_INSTANCE, make_settings
from service_support import GOOD, make_calc_repo
from test_fixer import EXAMPLE, KEY, REPORT_FILE
from test_fixer import GOOD as FLASK_GOOD

from runner.config import Settings
from runner.environments.builds import commit_date, ensure_env_image
from runner.environments.images import BaseImage
from runner.errors import ImageBuildError, SandboxError
from runner.models import Limits, RunSpec
from runner.sandbox.docker import DockerSandbox
from runner.sandbox.labels import LABEL_JOB, LABEL_OWNER, LABEL_PHASE

pytestmark = pytest.mark.docker

# A failure guard only: an interrupted job that hangs fails here instead of stalling the run.
EXIT_GUARD_S = 90
# A test that outlasts any wait below: the job can only end by being interrupted.
BLOCKS_S = 300

# A test runner started in the background of a script inherits SIGINT ignored, and Python
# keeps it ignored (as a shell wants for background jobs): the command under test gets
# Ctrl-C's usual handler back, or the signal would prove nothing.
CLI = (
    "import signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); "
    "from runner.cli.main import {main}; sys.exit({main}())"
)


def _owned(client: docker.DockerClient, owner: str) -> list[docker.models.containers.Container]:
    return client.containers.list(
        all=True, ignore_removed=True, filters={"label": f"{LABEL_OWNER}={owner}"}
    )


def _interrupt_when(
    proc: subprocess.Popen[str], ready: Callable[[], bool], signum: int
) -> tuple[int, str]:
    """Send ``signum`` once ``ready()`` holds; the exit code and stderr."""
    try:
        while not ready():
            assert proc.poll() is None, proc.communicate()
            time.sleep(0.1)
        proc.send_signal(signum)
        _, err = proc.communicate(timeout=EXIT_GUARD_S)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return proc.returncode, err


def _verify_patch(tmp_path: Path, repo: Path, owner: str) -> subprocess.Popen[str]:
    patch = tmp_path / "good.diff"
    patch.write_text(GOOD)
    env = {
        **os.environ,
        "RUNNER_PATHS__STATE_DIR": str(tmp_path / "state"),
        "RUNNER_ENGINE__INSTANCE": owner,
    }
    code = CLI.format(main="verify_patch_main")
    argv = [sys.executable, "-c", code, "--repo", str(repo), "--patch", str(patch)]
    return subprocess.Popen(
        argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


@pytest.mark.parametrize(
    ("signame", "code", "said"), [("SIGINT", 130, "interrupted"), ("SIGTERM", 143, "terminated")]
)
def test_a_job_interrupted_while_its_suite_runs_stops_and_leaves_no_container(
    tmp_path: Path,
    docker_client: docker.DockerClient,
    base_image: BaseImage,
    signame: str,
    code: int,
    said: str,
) -> None:
    repo = make_calc_repo(tmp_path / "repo", slow_seconds=BLOCKS_S)
    owner = f"{TEST_INSTANCE}-cancel-{signame.lower()}"
    proc = _verify_patch(tmp_path, repo, owner)

    def suite_running() -> bool:
        phases = {c.labels.get(LABEL_PHASE) for c in _owned(docker_client, owner)}
        return bool(phases & {"baseline", "candidate"})

    returncode, err = _interrupt_when(proc, suite_running, getattr(signal, signame))
    assert returncode == code, err
    assert "Traceback" not in err
    assert err.splitlines()[-1] == said, err
    assert _owned(docker_client, owner) == []


def test_a_job_interrupted_while_its_environment_builds_leaves_no_build_container(
    tmp_path: Path, docker_client: docker.DockerClient, base_image: BaseImage
) -> None:
    repo = make_calc_repo(tmp_path / "repo")
    # A project of its own name: its environment image is new, so it is built here.
    name = f"calc-{secrets.token_hex(4)}"
    (repo / "pyproject.toml").write_text(
        '[build-system]\nrequires = ["setuptools>=61"]\n'
        'build-backend = "setuptools.build_meta"\n\n'
        f'[project]\nname = "{name}"\nversion = "0.1.0"\n\n'
        "[tool.setuptools]\npy-modules = ['calc']\n"
    )
    identity = ["-c", "user.name=t", "-c", "user.email=t@example.invalid"]
    for argv in (["add", "-A"], [*identity, "commit", "-qm", "project"]):
        subprocess.run(["git", *argv], cwd=repo, check=True, timeout=30)
    owner = f"{TEST_INSTANCE}-cancel-envbuild"
    proc = _verify_patch(tmp_path, repo, owner)

    def building() -> bool:
        phases = {c.labels.get(LABEL_PHASE) for c in _owned(docker_client, owner)}
        return "env-build" in phases

    returncode, err = _interrupt_when(proc, building, signal.SIGINT)
    assert returncode == 130, err
    assert "Traceback" not in err
    assert err.splitlines()[-1] == "interrupted", err
    assert _owned(docker_client, owner) == []
    assert not [
        c.name
        for c in docker_client.containers.list(all=True, ignore_removed=True)
        if (c.name or "").startswith("fixrunner-envbuild-") and c.labels.get(LABEL_OWNER) == owner
    ]


def test_a_fix_interrupted_while_its_attempt_runs_leaves_no_container(
    tmp_path: Path, docker_client: docker.DockerClient, base_image: BaseImage
) -> None:
    repo = tmp_path / "repo"
    subprocess.run(
        ["bash", str(EXAMPLE / "make-repo.sh"), str(repo)], check=True, capture_output=True
    )
    (repo / "tests" / "test_zz_blocks.py").write_text(
        f"import time\n\n\ndef test_blocks():\n    time.sleep({BLOCKS_S})\n"
    )
    identity = ["-c", "user.name=t", "-c", "user.email=t@example.invalid"]
    for argv in (["add", "-A"], [*identity, "commit", "-qm", "a test that blocks"]):
        subprocess.run(["git", *argv], cwd=repo, check=True, timeout=30)
    owner = f"{TEST_INSTANCE}-cancel-fix"
    with FakeAnthropic([tool_use(*FLASK_GOOD, "push an app context")], api_key=KEY) as fake:
        config = tmp_path / "runner.toml"
        config.write_text(
            f'[engine]\ninstance = "{owner}"\n[paths]\nstate_dir = "{tmp_path / "state"}"\n'
            f'[fixer]\nbase_url = "{fake.base_url}"\nmax_retries = 1\n',
            encoding="utf-8",
        )
        argv = [
            sys.executable,
            "-c",
            CLI.format(main="runner_main"),
            "--config",
            str(config),
            "fix",
            "--repo",
            str(repo),
            "--error",
            str(REPORT_FILE),
        ]
        proc = subprocess.Popen(
            argv,
            env={**os.environ, "ANTHROPIC_API_KEY": KEY},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

        def attempt_running() -> bool:
            phases = {c.labels.get(LABEL_PHASE) for c in _owned(docker_client, owner)}
            return bool(phases & {"baseline", "candidate"})

        returncode, err = _interrupt_when(proc, attempt_running, signal.SIGINT)
    assert returncode == 130, err
    assert "Traceback" not in err
    assert err.splitlines()[-1] == "interrupted", err
    assert _owned(docker_client, owner) == []


def test_a_cancelled_job_starts_no_container(
    docker_client: docker.DockerClient, base_image: BaseImage, settings: Settings
) -> None:
    sandbox = DockerSandbox(docker_client, settings.engine)
    cancel = threading.Event()
    cancel.set()
    job_id = f"cancelled-{secrets.token_hex(3)}"
    since = int(time.time()) - 1
    spec = RunSpec(
        image=base_image.id, command=["true"], limits=Limits(timeout_s=30), job_id=job_id
    )
    with pytest.raises(SandboxError, match="the job was cancelled"):
        sandbox.run(spec, cancel=cancel)
    labels = [f"{LABEL_OWNER}={settings.engine.instance}", f"{LABEL_JOB}={job_id}"]
    created = docker_client.events(
        since=since,
        until=int(time.time()) + 1,
        decode=True,
        filters={"type": "container", "event": "create", "label": labels},
    )
    assert list(created) == []


def test_a_cancelled_environment_build_creates_no_build_container(
    tmp_path: Path, docker_client: docker.DockerClient, base_image: BaseImage
) -> None:
    owner = f"{TEST_INSTANCE}-cancel-{secrets.token_hex(3)}"
    settings = make_settings(tmp_path / "state", owner)
    repo = make_calc_repo(tmp_path / "repo")
    # the calc project's image may exist: a repository of its own makes the build due
    images = settings.images.model_copy(update={"repository": f"fixrunner-cancel-{owner[-6:]}"})
    settings = settings.model_copy(update={"images": images})
    cancel = threading.Event()
    cancel.set()
    since = int(time.time()) - 1
    with pytest.raises(ImageBuildError, match="cancelled"):
        ensure_env_image(
            docker_client,
            base_image,
            repo,
            settings,
            str(repo),
            commit_date(repo),
            job_id="cancelled",
            cancel=cancel,
        )
    created = docker_client.events(
        since=since,
        until=int(time.time()) + 1,
        decode=True,
        filters={"type": "container", "event": "create", "label": f"{LABEL_OWNER}={owner}"},
    )
    assert list(created) == []
    assert docker_client.images.list(name=f"{images.repository}-env") == []
