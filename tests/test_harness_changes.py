"""A conftest.py change judged by what it does (issue 17, class 10).

Unit tests on texts, then end to end on the calculator of test_pipeline: the right fix
with a conftest that renames its fixture is verified; one whose fixture becomes a no-op
or that hooks into reporting is rejected as weakening.
"""

from __future__ import annotations

import docker
import pytest
from conftest import TEST_INSTANCE, make_settings
from test_pipeline import PROJECT, REGRESSION, RIGHT_FIX, TESTS_WITH_REGRESSION, Project, validated

from runner.core.conftest_changes import conftest_findings
from runner.environments.images import BaseImage
from runner.models import FixJob, Verdict
from runner.verify.pipeline import Runtime, verify

CONFTEST = PROJECT["tests/conftest.py"]
# The fixture's function renamed (its name kept for the tests), and one fixture added.
RENAMED = CONFTEST.replace(
    "@pytest.fixture\ndef numbers():", '@pytest.fixture(name="numbers")\ndef four_numbers():'
) + ("\n\n@pytest.fixture\ndef empty():\n    return []\n")
NO_OP = CONFTEST.replace("    return [1, 2, 3, 4]\n", "    pass\n")
HOOKED = CONFTEST + (
    "\n\ndef pytest_terminal_summary(terminalreporter):\n    terminalreporter.write_line('ok')\n"
)


def test_renamed_and_added_fixtures_are_fine() -> None:
    assert conftest_findings("tests/conftest.py", CONFTEST, RENAMED) == []


@pytest.mark.parametrize(
    ("after", "finding"),
    [
        (NO_OP, "fixture numbers now does nothing"),
        (HOOKED, "adds or changes pytest hook(s) pytest_terminal_summary"),
        (CONFTEST + "\ncollect_ignore = ['test_calc.py']\n", "changes collect_ignore"),
        (CONFTEST + "\npytest_plugins = ['evil']\n", "changes pytest_plugins"),
        (
            CONFTEST.replace("[1, 2, 3, 4]", "[2, 3]"),
            "changes the values fixture numbers provides",
        ),
        (
            CONFTEST + "\nfor _arg in []:\n    print(_arg)\n",
            "adds code that runs when pytest loads it (line 8)",
        ),
        (
            CONFTEST.replace("    return [1, 2, 3, 4]\n", "    v = [1, 2, 3, 4]\n    return v\n"),
            None,
        ),
    ],
)
def test_what_a_conftest_change_does(after: str, finding: str | None) -> None:
    found = conftest_findings("tests/conftest.py", CONFTEST, after)
    assert found == ([f"tests/conftest.py: {finding}"] if finding else [])


def test_removed_assert_in_a_fixture_is_weakening() -> None:
    before = CONFTEST.replace("    return", "    assert True\n    return")
    assert conftest_findings("c/conftest.py", before, CONFTEST) == [
        "c/conftest.py: removes 1 assert(s)"
    ]


def test_a_conftest_that_does_not_parse_is_left_to_the_caller() -> None:
    assert conftest_findings("conftest.py", CONFTEST, "def (:\n") is None


# --------------------------------------------------------------------------- end to end


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Project:
    root = tmp_path_factory.mktemp("harness")
    return Project.create(root, "calc", PROJECT, "calc with a bug in mean()")


@pytest.fixture(scope="module")
def runtime(
    tmp_path_factory: pytest.TempPathFactory,
    base_image: BaseImage,
    docker_client: docker.DockerClient,
) -> Runtime:
    return Runtime.start(
        make_settings(tmp_path_factory.mktemp("state"), f"{TEST_INSTANCE}-harness")
    )


def _run(runtime: Runtime, project: Project, files: dict[str, str]) -> Verdict:
    job = FixJob(patch=project.diff(files), repo=str(project.repo))
    return validated(verify(job, runtime), runtime)


@pytest.mark.docker
def test_fix_with_a_renamed_fixture_is_verified(runtime: Runtime, project: Project) -> None:
    tests = TESTS_WITH_REGRESSION.replace(
        "def test_mean_of_empty_is_zero():\n    assert mean([]) == 0.0",
        "def test_mean_of_empty_is_zero(empty):\n    assert mean(empty) == 0.0",
    )
    assert tests != TESTS_WITH_REGRESSION
    verdict = _run(
        runtime, project, {**RIGHT_FIX, "tests/test_calc.py": tests, "tests/conftest.py": RENAMED}
    )
    assert verdict.status == "verified", verdict.summary
    assert verdict.tests.fail_to_pass == [REGRESSION]


@pytest.mark.docker
@pytest.mark.parametrize(("conftest", "finding"), [(NO_OP, "now does nothing"), (HOOKED, "hook")])
def test_fix_with_a_weakening_conftest_is_rejected(
    runtime: Runtime, project: Project, conftest: str, finding: str
) -> None:
    verdict = _run(runtime, project, {**RIGHT_FIX, "tests/conftest.py": conftest})
    assert verdict.status == "rejected", verdict.summary
    check = next(c for c in verdict.checks if c.name == "tests_not_weakened")
    assert not check.passed and finding in check.detail, check.detail
