"""A patch that changes what describes the environment is verified in the environment it declares.

The environment used to be described from the base commit only, so a fix whose new test
needs a test dependency the same patch adds (pytest-mock in pyproject.toml, upstream) could
never pass. End to end with the real engine; the rule itself is pure and tested first.
"""

from __future__ import annotations

import json

import pytest
from test_pipeline import Project, checks, failed, validated

from runner.environments.manifests import environment_files
from runner.models import FixJob
from runner.verify.pipeline import Runtime, verify


def test_the_files_that_describe_the_environment() -> None:
    touched = [
        "pyproject.toml",
        "setup.cfg",
        "requirements-test.txt",
        "tests/requirements.txt",
        "requirements/tests.in",
        "constraints.txt",
        "poetry.lock",
        ".github/workflows/ci.yml",
        "app/core.py",
        "tests/test_core.py",
        "docs/pyproject.toml",  # a nested manifest describes no environment of the root
        "examples/setup.py",
    ]
    assert environment_files(touched) == [
        ".github/workflows/ci.yml",
        "constraints.txt",
        "poetry.lock",
        "pyproject.toml",
        "requirements-test.txt",
        "requirements/tests.in",
        "setup.cfg",
        "tests/requirements.txt",
    ]
    assert environment_files(["app/core.py", "tests/test_core.py", "README.md"]) == []


PYPROJECT = """\
[build-system]
requires = ["setuptools>=61"]
build-backend = "setuptools.build_meta"

[project]
name = "words"
version = "1.0"

[project.optional-dependencies]
test = [{test}]
"""
TEST_DEPS = '"pytest==8.3.5", "flake8==7.1.2"'
FILES = {
    "words/__init__.py": "",
    "words/case.py": 'def shout(text):\n    """Upper case, with an exclamation mark."""\n'
    '    return text.lower() + "!"\n',
    "tests/test_case.py": "from words.case import shout\n\n\ndef test_empty():\n"
    '    assert shout("") == "!"\n',
    "pyproject.toml": PYPROJECT.format(test=TEST_DEPS),
}
FIX = {
    "words/case.py": FILES["words/case.py"].replace("text.lower()", "text.upper()"),
    # the regression test uses a test dependency the same patch declares (as upstream
    # fixes do: filelock's added pytest-mock to its test extras)
    "tests/test_shout.py": "import six\n\nfrom words.case import shout\n\n\n"
    "def test_shout_upper_cases():\n"
    '    assert shout(six.ensure_str("hi")) == "HI!"\n',
    "pyproject.toml": PYPROJECT.format(test=TEST_DEPS + ', "six==1.16.0"'),
}
NEW_TEST = "tests/test_shout.py::test_shout_upper_cases"


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Project:
    return Project.create(tmp_path_factory.mktemp("words"), "words", FILES, "shout()")


@pytest.fixture(scope="module")
def runtime(module_runtime: Runtime) -> Runtime:
    return module_runtime


@pytest.mark.docker
def test_a_fix_whose_test_needs_a_dependency_it_declares_is_verified(
    runtime: Runtime, project: Project
) -> None:
    verdict = validated(
        verify(FixJob(patch=project.diff(FIX), repo=str(project.repo)), runtime), runtime
    )
    assert verdict.status == "verified", verdict.summary
    assert verdict.tests.fail_to_pass == [NEW_TEST]
    assert checks(verdict)["reproduced"].passed
    assert verdict.images.environment.packages.get("six") == "1.16.0"
    note = (
        "environment described from the candidate's tree, not the base commit's: the patch "
        "changes pyproject.toml (both trees run in it)"
    )
    assert note in verdict.images.environment.notes
    record = json.loads((runtime.jobs_dir / verdict.job_id / "environment.json").read_text())
    assert note in record["notes"]


@pytest.mark.docker
def test_a_patch_that_leaves_the_declarations_alone_keeps_the_base_commits_environment(
    runtime: Runtime, project: Project
) -> None:
    # the same fix without its test: nothing the environment reads changes
    patch = project.diff({"words/case.py": FIX["words/case.py"]})
    verdict = validated(verify(FixJob(patch=patch, repo=str(project.repo)), runtime), runtime)
    assert "six" not in verdict.images.environment.packages
    assert not any("candidate's tree" in n for n in verdict.images.environment.notes)


@pytest.mark.docker
def test_a_declared_dependency_that_cannot_be_had_rejects_the_patch_not_the_runner(
    runtime: Runtime, project: Project
) -> None:
    # the base commit's environment builds, so the patch's declarations are at fault
    unknown = TEST_DEPS + ', "nonexistent-package-zzz==1.0"'
    broken = {**FIX, "pyproject.toml": PYPROJECT.format(test=unknown)}
    verdict = validated(
        verify(FixJob(patch=project.diff(broken), repo=str(project.repo)), runtime), runtime
    )
    assert verdict.status == "rejected", verdict.summary
    assert "applies" in failed(verdict), verdict.summary
    assert verdict.summary == "rejected: applies (refused by the environment check)"
    environment = checks(verdict)["environment"]
    assert not environment.passed
    assert (
        "the environment the patch declares (pyproject.toml) cannot be prepared, while the "
        "base commit's can" in environment.detail
    )
