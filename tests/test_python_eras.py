"""A 2021 project whose pinned pytest cannot start on 3.10+: verified on the bullseye base.

One small git repository (tox envlist py37 to py39, ``pytest==6.2.4`` pinned) made once
per module; its verdicts must say Python 3.9 and why. The bullseye base is built once
per machine (the first run takes a minute or two more) and reused after.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import docker
import jsonschema
import pytest
from conftest import TEST_INSTANCE, make_settings

from runner.cli.main import runner_main
from runner.config import Settings
from runner.environments.images import BaseImage
from runner.models import FixJob, Verdict
from runner.verify.pipeline import Runtime, verify

pytestmark = pytest.mark.docker

REPO_ROOT = Path(__file__).resolve().parent.parent
SCHEMA = json.loads((REPO_ROOT / "docs" / "verdict.schema.json").read_text(encoding="utf-8"))
COMMIT_DATE = "2021-06-01T12:00:00+00:00"
REGRESSION = "tests/test_slug.py::test_slug_of_blank_is_empty"

SLUG = '''\
"""Slugs."""


def slug(text):
    """Lower-case words joined by dashes; '' for blank text."""
    words = text.split()
    return "-".join(w.lower() for w in words) if words[0] else ""
'''
FIXED_SLUG = SLUG.replace("if words[0] else", "if words else")
TESTS = """\
import sys

from era.slug import slug


def test_slug():
    assert slug("Hello  World") == "hello-world"


def test_runs_on_the_era_python():
    assert sys.version_info[:2] == (3, 9)
"""
TESTS_WITH_REGRESSION = (
    TESTS + '\n\ndef test_slug_of_blank_is_empty():\n    assert slug("  ") == ""\n'
)
PROJECT = {
    "era/__init__.py": "",
    "era/slug.py": SLUG,
    "tests/test_slug.py": TESTS,
    "tox.ini": "[tox]\nenvlist = py37,py38,py39\n\n[testenv]\ndeps = -rrequirements-test.txt\n",
    "requirements-test.txt": "pytest==6.2.4\n",
}
GIT_ENV = {
    "GIT_AUTHOR_NAME": "Test",
    "GIT_AUTHOR_EMAIL": "test@example.invalid",
    "GIT_AUTHOR_DATE": COMMIT_DATE,
    "GIT_COMMITTER_NAME": "Test",
    "GIT_COMMITTER_EMAIL": "test@example.invalid",
    "GIT_COMMITTER_DATE": COMMIT_DATE,
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_CONFIG_GLOBAL": os.devnull,
}


def git(cwd: Path, *args: str) -> str:
    proc = subprocess.run(
        ["git", "-c", "init.defaultBranch=main", *args],
        cwd=cwd,
        env={**os.environ, **GIT_ENV},
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, f"git {' '.join(args)}: {proc.stderr}"
    return proc.stdout


def write(tree: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        (tree / name).parent.mkdir(parents=True, exist_ok=True)
        (tree / name).write_text(text, encoding="utf-8")


def diff(repo: Path, files: dict[str, str]) -> str:
    """The ``git diff`` of ``files`` written over the repository's commit."""
    write(repo, files)
    git(repo, "add", "-A")
    text = git(repo, "diff", "--cached")
    git(repo, "reset", "-q", "--hard")
    return text


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("era") / "era"
    root.mkdir()
    git(root, "init", "-q")
    write(root, PROJECT)
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "slugs, tested with the era's pytest")
    return root


@pytest.fixture(scope="module")
def module_settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return make_settings(tmp_path_factory.mktemp("state"), f"{TEST_INSTANCE}-eras")


@pytest.fixture(scope="module")
def runtime(
    module_settings: Settings, base_image: BaseImage, docker_client: docker.DockerClient
) -> Runtime:
    return Runtime.start(module_settings)


def run(runtime: Runtime, repo: Path, patch: str, **job: object) -> Verdict:
    verdict = verify(FixJob(repo=str(repo), patch=patch, **job), runtime)  # type: ignore[arg-type]
    jsonschema.validate(json.loads(verdict.model_dump_json()), SCHEMA)
    return verdict


def test_an_era_project_is_verified_on_python_39(runtime: Runtime, repo: Path) -> None:
    verdict = run(
        runtime,
        repo,
        diff(repo, {"era/slug.py": FIXED_SLUG, "tests/test_slug.py": TESTS_WITH_REGRESSION}),
    )
    assert verdict.status == "verified", verdict.summary
    assert verdict.tests.fail_to_pass == [REGRESSION]
    environment = verdict.images.environment
    assert environment.python.startswith("3.9."), environment
    assert environment.tools["pytest"] == "6.2.4"
    assert "pytest==6.2.4" in environment.python_reason
    assert "cannot start on Python 3.10+" in environment.python_reason
    assert verdict.images.base.startswith("fixrunner-base:py3.9-")


def test_a_no_op_on_python_39_is_rejected(runtime: Runtime, repo: Path) -> None:
    no_op = SLUG.replace('"""Slugs."""', '"""Slugs (reviewed)."""')
    verdict = run(
        runtime,
        repo,
        diff(repo, {"era/slug.py": no_op}),
        test_patch=diff(repo, {"tests/test_slug.py": TESTS_WITH_REGRESSION}),
    )
    assert verdict.status == "rejected", verdict.summary
    assert verdict.tests.fail_to_pass == []
    assert verdict.tests.still_failing == [REGRESSION]
    assert verdict.images.environment.python.startswith("3.9.")


def test_images_build_python_39_builds_the_bullseye_base_once(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert runner_main(["images", "build", "--quiet", "--python", "3.9"]) == 0
    assert runner_main(["images", "build", "--quiet", "--python", "3.9"]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert out[-1].startswith("fixrunner-base:py3.9-")
    assert out[-1].endswith("up to date, nothing built")


def test_images_build_of_a_python_no_offline_base_has_is_a_usage_error(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert runner_main(["images", "build", "--quiet", "--python", "3.10"]) == 2
    err = capsys.readouterr().err
    assert "no offline base has Python 3.10" in err
    assert "Traceback" not in err
