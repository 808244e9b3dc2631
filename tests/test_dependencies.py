"""Dependency detection and resolution on real files and real git repositories.

Resolution uses the real index through the host's pip configuration (no Docker).
"""

from __future__ import annotations

import json
import os
import subprocess
import textwrap
from datetime import UTC, datetime
from pathlib import Path

import pytest

from runner.config import Settings
from runner.environments.builds import commit_date, describe_environment
from runner.environments.dependencies import (
    detect,
    host_index_args,
    resolve,
    uv_binary,
)
from runner.errors import ResolutionError

AS_OF = datetime(2024, 11, 10, 12, 0, tzinfo=UTC)


def make_repo(root: Path, files: dict[str, str], when: str = "2024-11-10T12:00:00+00:00") -> Path:
    """A git repository with ``files`` committed at ``when`` (committer and author date)."""
    root.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
    env = {
        **os.environ,
        "GIT_COMMITTER_DATE": when,
        "GIT_AUTHOR_DATE": when,
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@example.invalid",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@example.invalid",
    }
    for argv in (["git", "init", "-q"], ["git", "add", "-A"], ["git", "commit", "-qm", "c"]):
        subprocess.run(argv, cwd=root, env=env, check=True, timeout=30)
    return root


@pytest.fixture
def plain(tmp_path: Path) -> Settings:
    """Built-in defaults (not runner.toml) with a private state dir."""
    return Settings.model_validate({"paths": {"state_dir": str(tmp_path / "state")}})


def test_uv_lock_is_exported_with_its_test_group(tmp_path: Path, plain: Settings) -> None:
    repo = make_repo(
        tmp_path / "uvproj",
        {
            "pyproject.toml": """
                [project]
                name = "uvproj"
                version = "0.1"
                requires-python = ">=3.11"
                dependencies = ["six"]

                [dependency-groups]
                test = ["pytest<8.3"]
                docs = ["sphinx"]
            """,
        },
    )
    subprocess.run(
        [uv_binary(), "lock", "--no-config", "--exclude-newer", "2024-11-10", *host_index_args()],
        cwd=repo,
        check=True,
        timeout=300,
        capture_output=True,
    )
    plan = detect(repo, plain)
    assert (plan.kind, plan.label) == ("locked", "uv.lock")
    names = {line.split("==")[0] for line in plan.requirements}
    assert {"six", "pytest", "pluggy"} <= names
    assert "sphinx" not in names
    env = resolve(plan, plain, "3.11", AS_OF)
    assert env.source == "locked: uv.lock"
    assert env.pytest == "8.2.2"
    assert env.tool_sources == {"pytest": "repository", "flake8": "as-of"}
    assert env.flake8 is not None and env.flake8.startswith("7.")


def test_uv_lock_export_leaves_out_default_groups(tmp_path: Path, plain: Settings) -> None:
    # click's uv.lock (2025) sets default-groups = ["dev", "pre-commit", "tests", "typing"]:
    # without --no-default-groups the export brought mypy, pyright and pre-commit along.
    repo = make_repo(
        tmp_path / "uvgroups",
        {
            "pyproject.toml": """
                [project]
                name = "uvgroups"
                version = "0.1"
                requires-python = ">=3.11"

                [dependency-groups]
                tests = ["iniconfig"]
                typing = ["six"]

                [tool.uv]
                default-groups = ["tests", "typing"]
            """,
        },
    )
    subprocess.run(
        [uv_binary(), "lock", "--no-config", "--exclude-newer", "2024-11-10", *host_index_args()],
        cwd=repo,
        check=True,
        timeout=300,
        capture_output=True,
    )
    plan = detect(repo, plain)
    names = {line.split("==")[0] for line in plan.requirements}
    assert names == {"iniconfig"}


def test_pip_compiled_file_with_hashes_wins_over_declarations(
    tmp_path: Path, plain: Settings
) -> None:
    repo = tmp_path / "pinned"
    repo.mkdir()
    (repo / "requirements").mkdir()
    (repo / "requirements" / "tests.in").write_text("pytest==7.4.4\n", encoding="utf-8")
    subprocess.run(
        [
            uv_binary(),
            "pip",
            "compile",
            "--no-config",
            "requirements/tests.in",
            "-o",
            "requirements/tests.txt",
            "--generate-hashes",
            "--exclude-newer",
            "2024-11-10",
            "--python-version",
            "3.11",
            *host_index_args(),
        ],
        cwd=repo,
        check=True,
        timeout=300,
        capture_output=True,
    )
    assert "--hash=sha256:" in (repo / "requirements" / "tests.txt").read_text()
    make_repo(
        repo,
        {"requirements.txt": "six\n", "pyproject.toml": "[project]\nname='p'\nversion='1'\n"},
    )
    plan = detect(repo, plain)
    assert (plan.kind, plan.label) == ("pinned", "requirements/tests.txt")
    assert "pytest==7.4.4" in plan.requirements
    assert plan.install_project
    env = describe_environment(repo, plain, commit_date=commit_date(repo), python="3.11")
    assert env.source == "pinned: requirements/tests.txt"
    assert env.pytest == "7.4.4"


def test_poetry_lock_follows_main_and_dev_groups_with_markers(
    tmp_path: Path, plain: Settings
) -> None:
    repo = make_repo(
        tmp_path / "poetryproj",
        {
            "pyproject.toml": """
                [tool.poetry]
                name = "poetryproj"
                version = "0.1.0"
                description = ""
                authors = []

                [tool.poetry.dependencies]
                python = "^3.9"
                six = "^1.16"

                [tool.poetry.group.dev.dependencies]
                iniconfig = "^2.0"

                [tool.poetry.group.docs.dependencies]
                alabaster = "*"

                [build-system]
                requires = ["poetry-core"]
                build-backend = "poetry.core.masonry.api"
            """,
            "poetry.lock": """
                [[package]]
                name = "six"
                version = "1.16.0"
                description = ""
                optional = false
                python-versions = ">=2.7"
                files = []

                [package.dependencies]
                colorama = {version = "*", markers = "sys_platform == \\"win32\\""}

                [[package]]
                name = "iniconfig"
                version = "2.0.0"
                description = ""
                optional = false
                python-versions = ">=3.7"
                files = []

                [[package]]
                name = "alabaster"
                version = "0.7.16"
                description = ""
                optional = false
                python-versions = ">=3.9"
                files = []

                [[package]]
                name = "colorama"
                version = "0.4.6"
                description = ""
                optional = false
                python-versions = "*"
                files = []

                [metadata]
                lock-version = "2.0"
                python-versions = "^3.9"
                content-hash = "0"
            """,
        },
    )
    plan = detect(repo, plain)
    assert (plan.kind, plan.label) == ("locked", "poetry.lock")
    assert plan.requirements == ["iniconfig==2.0.0", "six==1.16.0"]
    assert plan.install_project
    assert "poetry-core" in plan.build_requires


def test_tox_ini_points_at_a_requirements_file(tmp_path: Path, plain: Settings) -> None:
    repo = make_repo(
        tmp_path / "toxproj",
        {
            "tox.ini": """
                [tox]
                envlist = py311

                [testenv]
                deps =
                    -r{toxinidir}/ci/test-reqs.txt
                    py38: mock
                commands = pytest
            """,
            "ci/test-reqs.txt": "pytest==7.4.4\n-c constraints.txt\n",
            "ci/constraints.txt": "iniconfig==2.0.0\n",
        },
    )
    plan = detect(repo, plain)
    assert (plan.kind, plan.label) == ("pinned", "ci/test-reqs.txt (via tox.ini)")
    assert plan.requirements == ["pytest==7.4.4"]
    assert plan.constraints == ["iniconfig==2.0.0"]
    assert plan.files == ["tox.ini", "ci/test-reqs.txt", "ci/constraints.txt"]
    env = resolve(plan, plain, "3.11", AS_OF)
    assert env.pytest == "7.4.4"
    assert "iniconfig==2.0.0" in env.pins


def test_dependency_groups_expand_includes(tmp_path: Path, plain: Settings) -> None:
    repo = make_repo(
        tmp_path / "groups",
        {
            "pyproject.toml": """
                [project]
                name = "groups"
                version = "1"
                dependencies = ["six"]

                [dependency-groups]
                lint = ["flake8==6.1.0"]
                test = ["pytest<8", {include-group = "lint"}]
            """,
        },
    )
    plan = detect(repo, plain)
    assert plan.kind == "declared"
    assert plan.requirements == ["pytest<8", "flake8==6.1.0", "six"]
    env = resolve(plan, plain, "3.11", AS_OF)
    assert env.source == "as-of: 2024-11-10"
    assert env.flake8 == "6.1.0"
    assert env.pytest is not None and env.pytest.startswith("7.")


def test_setup_py_project_is_read_statically_and_installed(tmp_path: Path, plain: Settings) -> None:
    repo = make_repo(
        tmp_path / "setuppy",
        {
            "setup.py": """
                import sys
                from setuptools import setup
                sys.exit("setup.py must never run on the host")
                setup(
                    name="setuppy",
                    install_requires=["six>=1.10"],
                    extras_require={"test": ["pytest"], "docs": ["sphinx"]},
                )
            """,
            "src/setuppy/__init__.py": "",
        },
    )
    plan = detect(repo, plain)
    assert plan.kind == "declared"
    assert plan.install_project
    assert plan.requirements == ["six>=1.10", "pytest"]
    assert plan.build_requires == ["setuptools>=40.8.0", "wheel"]
    assert plan.pth_paths == ["/work", "/work/src"]


def test_includes_never_leave_the_checkout(tmp_path: Path, plain: Settings) -> None:
    (tmp_path / "outside.txt").write_text("evil==1.0\n", encoding="utf-8")
    repo = make_repo(
        tmp_path / "escape",
        {"requirements-dev.txt": "-r ../outside.txt\n-r link.txt\npytest==8.3.3\n"},
    )
    (repo / "link.txt").symlink_to(tmp_path / "outside.txt")
    plan = detect(repo, plain)
    assert plan.requirements == ["pytest==8.3.3"]
    assert len([n for n in plan.notes if "outside the checkout" in n]) == 2


def test_override_from_runner_toml_wins(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "over", {"requirements-dev.txt": "pytest==8.3.3\n"})
    settings = Settings.model_validate(
        {
            "paths": {"state_dir": str(tmp_path / "state")},
            "repos": {str(repo): {"install": ["pytest==7.4.4", "-e ."], "python_path": ["lib"]}},
        }
    )
    plan = detect(repo, settings, repo_key=str(repo))
    assert (plan.kind, plan.label) == ("override", "runner.toml")
    assert plan.requirements == ["pytest==7.4.4"]
    assert plan.pth_paths == ["/work", "/work/lib"]
    assert detect(repo, settings, repo_key="other").kind == "pinned"


def test_pipfile_and_pdm_locks(tmp_path: Path, plain: Settings) -> None:
    pipfile = {
        "default": {"six": {"version": "==1.16.0"}},
        "develop": {
            "pytest": {"version": "==8.3.3"},
            "pywin32": {"version": "==306", "markers": "sys_platform == 'win32'"},
        },
    }
    repo = make_repo(tmp_path / "pipenv", {"Pipfile.lock": json.dumps(pipfile)})
    plan = detect(repo, plain)
    assert (plan.kind, plan.requirements) == ("locked", ["six==1.16.0", "pytest==8.3.3"])
    pdm = """
        [[package]]
        name = "six"
        version = "1.16.0"
        groups = ["default"]

        [[package]]
        name = "pytest"
        version = "8.3.3"
        groups = ["test"]

        [[package]]
        name = "tomli"
        version = "2.0.1"
        groups = ["test"]
        marker = "python_version < \\"3.11\\""

        [[package]]
        name = "mkdocs"
        version = "1.6.1"
        groups = ["docs"]
    """
    repo = make_repo(tmp_path / "pdm", {"pdm.lock": pdm})
    assert detect(repo, plain).requirements == ["six==1.16.0", "pytest==8.3.3"]


def test_unpinned_project_resolves_as_of_its_commit_date(tmp_path: Path, plain: Settings) -> None:
    repo = make_repo(
        tmp_path / "unpinned",
        {"requirements.txt": "flask\n"},
        when="2024-11-10T09:30:00+00:00",
    )
    env = describe_environment(repo, plain, commit_date=commit_date(repo), python="3.11")
    assert env.source == "as-of: 2024-11-10"
    assert (env.pytest, env.packages["flask"]) == ("8.3.3", "3.0.3")
    assert env.tool_sources["pytest"] == "as-of"
    latest = Settings.model_validate(
        {"paths": {"state_dir": str(tmp_path / "s2")}, "tools": {"resolution": "latest"}}
    )
    newest = describe_environment(repo, latest, commit_date=commit_date(repo), python="3.11")
    assert newest.source == "latest"
    assert newest.pytest is not None and not newest.pytest.startswith("8.3")


def test_runner_toml_tool_version_applies_when_the_repo_has_none(
    tmp_path: Path,
) -> None:
    repo = make_repo(tmp_path / "tools", {"requirements.txt": "six\n"})
    settings = Settings.model_validate(
        {"paths": {"state_dir": str(tmp_path / "state")}, "tools": {"pytest": "7.4.4"}}
    )
    env = describe_environment(repo, settings, commit_date=AS_OF, python="3.11")
    assert env.pytest == "7.4.4"
    assert env.tool_sources["pytest"] == "runner.toml"


def test_resolution_failure_carries_the_resolvers_message(tmp_path: Path, plain: Settings) -> None:
    repo = make_repo(tmp_path / "bad", {"requirements-dev.txt": "nonexistent-package-zzz==1.0\n"})
    with pytest.raises(ResolutionError) as caught:
        describe_environment(repo, plain, commit_date=AS_OF, python="3.11")
    message = str(caught.value)
    assert "nonexistent-package-zzz" in message
    assert "Traceback" not in message
    assert caught.value.log


def test_plain_test_file_beats_variants_and_self_extras_expand(
    tmp_path: Path, plain: Settings
) -> None:
    repo = make_repo(
        tmp_path / "variants",
        {
            "requirements/tests-min.txt": "pytest==7.0.0\n",
            "requirements/tests.txt": "-e .[test]\npytest==8.3.3\n",
            "pyproject.toml": """
                [build-system]
                requires = ["hatchling"]
                build-backend = "hatchling.build"

                [project]
                name = "variants"
                version = "1"
                dependencies = ["six"]

                [project.optional-dependencies]
                test = ["iniconfig", "variants[speed]"]
                speed = ["attrs"]
            """,
        },
    )
    plan = detect(repo, plain)
    assert (plan.kind, plan.label) == ("pinned", "requirements/tests.txt")
    assert plan.install_project
    assert plan.project_extras == ["test"]
    assert set(plan.requirements) == {"pytest==8.3.3", "iniconfig", "attrs", "six"}
    assert plan.build_requires == ["hatchling", "editables"]


def test_poetry_python_constraints_drop_backports(tmp_path: Path, plain: Settings) -> None:
    repo = make_repo(
        tmp_path / "backport",
        {
            "pyproject.toml": """
                [tool.poetry.dependencies]
                python = "^3.8"
                six = "*"
                importlib-metadata = {version = "*", python = "<3.8"}
            """,
            "poetry.lock": """
                [[package]]
                name = "six"
                version = "1.16.0"

                [[package]]
                name = "importlib-metadata"
                version = "4.0.0"
            """,
        },
    )
    assert detect(repo, plain).requirements == ["six==1.16.0"]


def test_a_package_without_a_wheel_for_the_python_moves_to_a_later_release() -> None:
    # simplejson had no cp39 wheel in March 2021 (3.17.2 has none; 3.17.3 of July 2021 has):
    # resolved as of the commit for 3.9, it moves to the first cutoff that has one, and says so.
    from runner.environments.resolution import compile_pins, compile_requirements
    from runner.errors import ResolutionError

    with pytest.raises(ResolutionError, match="no usable wheels"):
        compile_requirements(["simplejson"], [], "3.9", "2021-03-28", "2_31")
    pins, notes = compile_pins(["simplejson", "six"], [], "3.9", "2021-03-28", "2_31")
    versions = dict(p.split("==") for p in pins)
    assert versions["six"] == "1.15.0"  # everything else stays as of the commit
    assert versions["simplejson"].startswith("3.")  # the next release, not the newest
    assert len(notes) == 1 and notes[0].startswith("simplejson: no wheel for Python 3.9")


def test_a_package_pinning_a_wheelless_one_moves_with_it() -> None:
    # proselint 0.13 pins future < 0.19, whose 0.18 releases are sdists only; proselint
    # 0.14 (2024) dropped future.
    from runner.environments.resolution import compile_pins

    pins, notes = compile_pins(["proselint>=0.13"], [], "3.11", "2023-11-01", "2_36")
    assert "proselint==0.14.0" in pins and not any(p.startswith("future==") for p in pins)
    assert any(n.startswith("proselint: it pins future") for n in notes)
