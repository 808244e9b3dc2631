"""Class 4 of issue 17: test dependencies declared where the detector did not look.

Detection only (no index, no Docker): each small repository declares its test
dependencies in one tool's configuration, and the plan must name them and say where
each came from.
"""

from __future__ import annotations

import os
import subprocess
import textwrap
from pathlib import Path

import pytest

from runner.config import Settings
from runner.environments.declarations import poetry_version
from runner.environments.dependencies import detect
from runner.environments.requirements import req_name

SETUP_CFG_PROJECT = {
    "setup.cfg": """
        [metadata]
        name = cfgproj

        [options]
        install_requires = six

        [options.extras_require]
        check = iniconfig
    """,
    "setup.py": "from setuptools import setup\nsetup()\n",
}


@pytest.fixture
def plain(tmp_path: Path) -> Settings:
    return Settings.model_validate({"paths": {"state_dir": str(tmp_path / "state")}})


def make_repo(root: Path, files: dict[str, str]) -> Path:
    """A git repository with ``files`` in one commit."""
    root.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.invalid"}
    env |= {"GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.invalid"}
    for argv in (["git", "init", "-q"], ["git", "add", "-A"], ["git", "commit", "-qm", "c"]):
        subprocess.run(argv, cwd=root, env=env, check=True, timeout=30)
    return root


def _names(lines: list[str]) -> set[str]:
    return {req_name(line) for line in lines}


def test_requirement_file_below_the_root_is_read(tmp_path: Path, plain: Settings) -> None:
    repo = make_repo(
        tmp_path / "below",
        {
            "pyproject.toml": "[project]\nname = 'below'\nversion = '1'\ndependencies = ['six']\n",
            "tests/requirements.txt": "pytest-timeout\n-r ../requirements/base.in\n",
            "requirements/base.in": "iniconfig\n",
        },
    )
    plan = detect(repo, plain)
    assert (plan.kind, plan.label) == ("pinned", "tests/requirements.txt")
    assert {"pytest-timeout", "iniconfig", "six"} <= _names(plan.requirements)
    assert plan.origins["pytest-timeout"] == "tests/requirements.txt"
    assert plan.origins["six"].startswith("project dependencies")
    assert plan.install_project


def test_requirements_in_chosen_by_name(tmp_path: Path, plain: Settings) -> None:
    repo = make_repo(
        tmp_path / "infiles",
        {
            "requirements/docs.in": "sphinx\n",
            "requirements/tests.in": "pytest-xdist\n",
        },
    )
    plan = detect(repo, plain)
    assert plan.label == "requirements/tests.in"
    assert _names(plan.requirements) == {"pytest-xdist"}


def test_nox_sessions_are_parsed_not_run(tmp_path: Path, plain: Settings) -> None:
    marker = tmp_path / "nox-ran"
    repo = make_repo(
        tmp_path / "noxproj",
        {
            "noxfile.py": f"""
                import pathlib
                import nox

                pathlib.Path({str(marker)!r}).write_text("ran")
                TEST_DEPS = ["pytest-timeout", "iniconfig"]


                @nox.session(python=["3.11"])
                def tests(session):
                    session.install("-r", "ci/test.txt", *TEST_DEPS)
                    session.install(".[check]")
                    session.run("pytest")


                @nox.session(name="docs")
                def build_docs(session):
                    session.install("sphinx")
            """,
            "ci/test.txt": "pytest-randomly\n",
            **SETUP_CFG_PROJECT,
        },
    )
    plan = detect(repo, plain)
    assert not marker.exists()
    names = _names(plan.requirements)
    assert {"pytest-timeout", "iniconfig", "pytest-randomly", "six"} <= names
    assert "sphinx" not in names
    assert plan.origins["pytest-randomly"] == "noxfile.py session tests"
    assert plan.project_extras == ["check"] and plan.install_project
    assert {"noxfile.py", "ci/test.txt"} <= set(plan.files)


def test_tox_extras_name_the_projects_extra(tmp_path: Path, plain: Settings) -> None:
    repo = make_repo(
        tmp_path / "toxextras",
        {
            "tox.ini": "[testenv]\nextras = check\ncommands = pytest\n",
            **SETUP_CFG_PROJECT,
        },
    )
    plan = detect(repo, plain)
    assert "iniconfig" in plan.requirements
    assert plan.origins["iniconfig"] == "project extras check"
    assert "tox.ini" in plan.files


def test_hatch_test_environment(tmp_path: Path, plain: Settings) -> None:
    repo = make_repo(
        tmp_path / "hatchproj",
        {
            "pyproject.toml": """
                [build-system]
                requires = ["hatchling"]
                build-backend = "hatchling.build"

                [project]
                name = "hatchproj"
                version = "1"

                [project.optional-dependencies]
                speed = ["iniconfig"]

                [tool.hatch.envs.default]
                dependencies = ["pytest-timeout"]

                [tool.hatch.envs.test]
                features = ["speed"]

                [tool.hatch.envs.docs]
                dependencies = ["sphinx"]
            """,
        },
    )
    plan = detect(repo, plain)
    assert {"pytest-timeout", "iniconfig"} <= set(plan.requirements)
    assert "sphinx" not in plan.requirements
    assert plan.origins["pytest-timeout"] == "pyproject.toml [tool.hatch.envs.default]"


def test_poetry_groups_without_a_lock(tmp_path: Path, plain: Settings) -> None:
    repo = make_repo(
        tmp_path / "poetrynolock",
        {
            "pyproject.toml": """
                [tool.poetry]
                name = "poetrynolock"
                version = "0.1.0"

                [tool.poetry.dependencies]
                python = "^3.8"
                six = "^1.16"

                [tool.poetry.dev-dependencies]
                pytest-timeout = "~2.1"

                [tool.poetry.group.test.dependencies]
                iniconfig = {version = "^0.2", extras = ["x"]}
                colorama = {version = "*", markers = "sys_platform == 'win32'"}

                [tool.poetry.group.docs.dependencies]
                sphinx = "*"

                [build-system]
                requires = ["poetry-core"]
                build-backend = "poetry.core.masonry.api"
            """,
        },
    )
    plan = detect(repo, plain)
    assert "six>=1.16,<2" in plan.requirements
    assert "pytest-timeout>=2.1,<2.2" in plan.requirements
    assert "iniconfig[x]>=0.2,<0.3" in plan.requirements
    assert not {"colorama", "sphinx"} & _names(plan.requirements)
    assert plan.origins["iniconfig[x]>=0.2,<0.3"] == "pyproject.toml [tool.poetry.group.test]"


def test_pdm_dev_groups_and_dependency_groups(tmp_path: Path, plain: Settings) -> None:
    repo = make_repo(
        tmp_path / "pdmproj",
        {
            "pyproject.toml": """
                [project]
                name = "pdmproj"
                version = "1"

                [dependency-groups]
                test = ["pytest-timeout"]

                [tool.pdm.dev-dependencies]
                testing = ["iniconfig", "-e file:///${PROJECT_ROOT}/plugins/one"]
                lint = ["ruff"]
            """,
        },
    )
    plan = detect(repo, plain)
    assert set(plan.requirements) == {"pytest-timeout", "iniconfig"}
    assert plan.origins["iniconfig"] == "pyproject.toml [tool.pdm.dev-dependencies] testing"


def test_computed_setup_py_asks_for_backend_metadata(tmp_path: Path, plain: Settings) -> None:
    repo = make_repo(
        tmp_path / "computed",
        {
            "setup.py": """
                from setuptools import setup
                EXTRAS = {"tests": ["iniconfig"]}
                EXTRAS["dev"] = EXTRAS["tests"] + ["pre-commit"]
                setup(name="computed", version="1", extras_require=EXTRAS)
            """,
            "tox.ini": "[testenv]\nextras = tests\n",
        },
    )
    plan = detect(repo, plain)
    assert plan.metadata_extras == ["tests"]
    assert any("build backend's metadata" in note for note in plan.notes)
    literal = make_repo(
        tmp_path / "literal",
        {"setup.py": "from setuptools import setup\nsetup(extras_require={'tests': ['x']})\n"},
    )
    assert detect(literal, plain).metadata_extras is None


@pytest.mark.parametrize(
    ("spec", "pep440"),
    [
        ("^1.2.3", ">=1.2.3,<2"),
        ("^0.2", ">=0.2,<0.3"),
        ("~1.4.2", ">=1.4.2,<1.5"),
        ("1.0", "==1.0"),
        (">=2,<3", ">=2,<3"),
        ("*", ""),
    ],
)
def test_poetry_constraints_in_pep_440(spec: str, pep440: str) -> None:
    assert poetry_version(spec) == pep440
