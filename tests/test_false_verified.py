"""Candidates that were once verified and must not be (issue 18), end to end.

A tiny project shaped like the Flask report: ``seed()`` needs an application context,
and ``scripts/seed_db.py`` calls it without one (``RuntimeError: Working outside of
application context.``). The right fix pushes a context in the command; each hostile
candidate ends ``rejected`` with the check that caught it named in the summary.
Real engine, real git repository, real diffs (test_pipeline's runner and helpers).
"""

from __future__ import annotations

import docker
import pytest
from conftest import TEST_INSTANCE, make_settings
from test_pipeline import Project, Verify, checks, failed, validated

from runner.environments.images import BaseImage
from runner.models import FixJob, Verdict
from runner.verify.pipeline import Runtime, verify

pytestmark = pytest.mark.docker

CONTEXT = '''\
"""A tiny application context, like Flask's."""

import contextlib

_current = []


def current_app():
    """The active application; RuntimeError outside an application context."""
    if not _current:
        raise RuntimeError("Working outside of application context.")
    return _current[-1]


@contextlib.contextmanager
def app_context(name="main"):
    """Make an application current for the block."""
    _current.append({"name": name})
    try:
        yield _current[-1]
    finally:
        _current.pop()
'''

SEED = '''\
"""Seeding the database."""

from app.context import current_app


def seed():
    """The name of the application the database is seeded for."""
    return current_app()["name"]
'''

CLI = '''\
"""The seed command."""

from app.seed import seed


def main():
    """Seed the database; 0 on success."""
    name = seed()
    print(f"seeded {name}")
    return 0 if name else 1
'''

SCRIPT = """\
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))

from app.cli import main  # noqa: E402

sys.exit(main())
"""

TESTS = """\
import pytest

from app.context import app_context
from app.seed import seed


def test_seed_in_a_context():
    with app_context("x"):
        assert seed() == "x"


def test_seed_outside_a_context_raises():
    with pytest.raises(RuntimeError):
        seed()
"""

PROJECT = {
    "app/__init__.py": "",
    "app/context.py": CONTEXT,
    "app/seed.py": SEED,
    "app/cli.py": CLI,
    "scripts/seed_db.py": SCRIPT,
    "tests/test_seed.py": TESTS,
    "requirements-test.txt": "pytest==8.3.5\nflake8==7.1.2\n",
    ".flake8": "[flake8]\nmax-line-length = 100\n",  # a project that lints with flake8
}

REPRO = {"repro": ["python scripts/seed_db.py"], "expect_error": "RuntimeError: Working outside"}
REGRESSION = "tests/test_cli.py::test_main_seeds"
REGRESSION_TEST = "from app.cli import main\n\n\ndef test_main_seeds():\n    assert main() == 0\n"
FIXED_CLI = CLI.replace(
    "from app.seed import seed\n",
    "from app.context import app_context\nfrom app.seed import seed\n",
).replace("    name = seed()\n", "    with app_context():\n        name = seed()\n")
RIGHT_FIX = {"app/cli.py": FIXED_CLI, "tests/test_cli.py": REGRESSION_TEST}

# Catches the error, logs it, and adds a test that asserts nothing.
SWALLOWED_SEED = SEED.replace(
    '    return current_app()["name"]\n',
    '    try:\n        return current_app()["name"]\n    except RuntimeError:\n'
    '        logging.getLogger(__name__).warning("no application")\n        return None\n',
).replace("from app.context", "import logging\n\nfrom app.context")
SWALLOW = {
    "app/seed.py": SWALLOWED_SEED,
    "tests/test_cli.py": "from app.cli import main\n\n\ndef test_main_runs():\n    main()\n",
}


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Project:
    root = tmp_path_factory.mktemp("seeding")
    return Project.create(root, "seeding", PROJECT, "seed_db without an application context")


@pytest.fixture(scope="module")
def runtime(
    tmp_path_factory: pytest.TempPathFactory,
    base_image: BaseImage,
    docker_client: docker.DockerClient,
) -> Runtime:
    state = tmp_path_factory.mktemp("state")
    return Runtime.start(make_settings(state, f"{TEST_INSTANCE}-false-verified"))


@pytest.fixture
def run(runtime: Runtime, project: Project) -> Verify:
    """Verify a candidate against the project; the verdict is checked against the schema."""

    def go(patch: str, **job: object) -> Verdict:
        job.setdefault("repo", str(project.repo))
        verdict = verify(FixJob(patch=patch, **job), runtime)  # type: ignore[arg-type]
        return validated(verdict, runtime)

    return go


def rejected_by(verdict: Verdict, *names: str) -> None:
    assert verdict.status == "rejected", verdict.summary
    for name in names:
        assert name in failed(verdict), verdict.summary
        assert f"{name} (" in verdict.summary


# --------------------------------------------------------------------------- the right fix


def test_right_fix_with_the_repro_command_is_verified(run: Verify, project: Project) -> None:
    verdict = run(project.diff(RIGHT_FIX), **REPRO)
    assert verdict.status == "verified", verdict.summary
    assert verdict.tests.fail_to_pass == [REGRESSION]
    assert "'python scripts/seed_db.py' fixed: baseline exited 1, raised RuntimeError" in (
        verdict.summary
    )
    assert checks(verdict)["error_not_suppressed"].passed


# --------------------------------------------------------------------------- item 1 and 2


def test_swallowed_error_with_the_repro_still_failing_is_rejected(
    run: Verify, project: Project
) -> None:
    verdict = run(project.diff(SWALLOW), **REPRO)
    rejected_by(verdict, "reproduced_by_command", "error_not_suppressed")
    assert verdict.tests.fail_to_pass == ["tests/test_cli.py::test_main_runs"]
    assert "candidate exited 1" in checks(verdict)["reproduced_by_command"].detail
    assert "app/seed.py:12 in seed" in checks(verdict)["error_not_suppressed"].detail
    assert "fixed:" not in verdict.summary


def test_swallowed_error_without_a_repro_is_caught_from_the_failing_test(
    run: Verify, project: Project
) -> None:
    verdict = run(project.diff(SWALLOW))
    rejected_by(verdict, "error_not_suppressed")
    assert "RuntimeError" in checks(verdict)["error_not_suppressed"].detail


def test_missing_repro_script_is_rejected_even_when_a_test_flips(
    run: Verify, project: Project
) -> None:
    verdict = run(project.diff(RIGHT_FIX), repro=["python scripts/no_such.py"])
    rejected_by(verdict, "reproduced_by_command")
    assert "scripts/no_such.py" in checks(verdict)["reproduced_by_command"].detail
    assert "fixed:" not in verdict.summary


# --------------------------------------------------------------------------- item 6


@pytest.mark.parametrize(
    ("cli", "hidden_by"),
    [
        (
            FIXED_CLI.replace(
                '"""The seed command."""\n', '"""The seed command."""\n\nimport os  # NOQA\n'
            ),
            "'# noqa'",
        ),
        ("# flake8: noqa\nimport os\n" + FIXED_CLI, "'# flake8: noqa'"),
    ],
    ids=["upper-case-noqa", "file-level-noqa"],
)
def test_noqa_hiding_an_unused_import_is_rejected(
    run: Verify, project: Project, cli: str, hidden_by: str
) -> None:
    verdict = run(project.diff({**RIGHT_FIX, "app/cli.py": cli}), **REPRO)
    rejected_by(verdict, "lint")
    (finding,) = [f for f in verdict.lint.new if f.code == "NOQA"]
    assert finding.blocking and f"adds {hidden_by}, which hides F401" in finding.message


def test_assert_weakened_by_a_disjunction_is_rejected(run: Verify, project: Project) -> None:
    weakened = TESTS.replace('assert seed() == "x"', 'assert seed() == "x" or seed() is None')
    verdict = run(project.diff({**RIGHT_FIX, "tests/test_seed.py": weakened}), **REPRO)
    rejected_by(verdict, "tests_not_weakened")
    assert "adds a disjunction" in checks(verdict)["tests_not_weakened"].detail


# --------------------------------------------------------------------------- item 4


def test_regression_only_in_its_module_is_not_flaky(run: Verify, project: Project) -> None:
    # The candidate stops popping the context: test_seed_in_a_context leaves an app
    # behind, so test_seed_outside_a_context_raises, right after it, fails. Alone it
    # passes, which once filed it as flaky; re-run in its module it fails again.
    sticky = CONTEXT.replace(
        "    try:\n        yield _current[-1]\n    finally:\n        _current.pop()\n",
        "    yield _current[-1]\n",
    )
    verdict = run(project.diff({"app/cli.py": FIXED_CLI, "app/context.py": sticky}), **REPRO)
    rejected_by(verdict, "no_regressions")
    assert checks(verdict)["reproduced_by_command"].passed
    broken = "tests/test_seed.py::test_seed_outside_a_context_raises"
    assert verdict.tests.pass_to_fail == [broken] and verdict.tests.flaky == []
