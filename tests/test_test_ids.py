"""Test ids as pytest names them, in both trees and every re-run (real engine, real git).

Three ways ids went wrong before outcomes came from the runner's own plugin: re-runs in
another rootdir (a ``tests/pytest.ini``), tests defined in one module and collected in
others (merged under the defining file by JUnit's ``file`` attribute), and parametrize
ids that change between runs.
"""

from __future__ import annotations

import docker
import pytest
from conftest import TEST_INSTANCE, make_settings
from test_pipeline import (
    FIXED_OPS,
    PROJECT,
    REGRESSION,
    RIGHT_FIX,
    Project,
    Verify,
    commit,
    git,
    validated,
)

from runner.environments.images import BaseImage
from runner.models import FixJob, Verdict
from runner.verify.pipeline import Runtime, verify

pytestmark = pytest.mark.docker
INSTANCE = f"{TEST_INSTANCE}-test-ids"

INI = "[pytest]\nmarkers =\n    slow: a slow test\n"


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Project:
    """main: the calc project; ini: main with its pytest config in tests/pytest.ini."""
    root = tmp_path_factory.mktemp("project")
    repo = root / "calc"
    repo.mkdir()
    git(repo, "init", "-q")
    commit(repo, PROJECT, "calc with a bug in mean()")
    git(repo, "checkout", "-q", "-b", "ini")
    commit(repo, {"tests/pytest.ini": INI}, "pytest's config beside the tests")
    git(repo, "checkout", "-q", "main")
    scratch = root / "scratch"
    git(root, "clone", "-q", str(repo), str(scratch))
    return Project(repo=repo, scratch=scratch)


@pytest.fixture(scope="module")
def runtime(
    tmp_path_factory: pytest.TempPathFactory,
    base_image: BaseImage,
    docker_client: docker.DockerClient,
) -> Runtime:
    return Runtime.start(make_settings(tmp_path_factory.mktemp("state"), INSTANCE))


@pytest.fixture
def run(runtime: Runtime, project: Project) -> Verify:
    def go(patch: str, **job: object) -> Verdict:
        job.setdefault("repo", str(project.repo))
        verdict = verify(FixJob(patch=patch, **job), runtime)  # type: ignore[arg-type]
        return validated(verdict, runtime)

    return go


def test_reruns_find_their_ids_when_the_config_sits_below_the_root(
    run: Verify, project: Project
) -> None:
    # Naming tests/test_calc.py::… on a re-run makes pytest find tests/pytest.ini and
    # root itself in tests/: unpinned, every id was "absent" and the fix "flaky".
    verdict = run(project.diff(RIGHT_FIX, base="ini"))
    assert verdict.status == "verified", verdict.summary
    assert verdict.tests.fail_to_pass == [REGRESSION]
    assert verdict.tests.flaky == [] and verdict.tests.not_rerun == []


BASE_CLASS = """\
from calc import mean


class MeanCases:
    values: list[float] = []
    expected = 0.0

    def test_mean(self):
        assert mean(self.values) == self.expected
"""
INHERITED = {
    "tests/cases.py": BASE_CLASS,
    "tests/test_pairs.py": "from cases import MeanCases\n\n\n"
    "class TestPairs(MeanCases):\n    values = [1, 2]\n    expected = 1.5\n",
    "tests/test_empty.py": "from cases import MeanCases\n\n\n"
    "class TestEmpty(MeanCases):\n    values = []\n    expected = 0.0\n",
}


def test_tests_defined_in_one_module_keep_the_ids_of_the_modules_that_collect_them(
    run: Verify, project: Project
) -> None:
    # JUnit names both tests after tests/cases.py, where the function is defined: one id
    # for two tests, one passing and one failing on the baseline.
    verdict = run(project.diff({"calc/ops.py": FIXED_OPS, **INHERITED}))
    assert verdict.status == "verified", verdict.summary
    assert verdict.tests.fail_to_pass == ["tests/test_empty.py::TestEmpty::test_mean"]
    assert verdict.tests.baseline.total == verdict.tests.candidate.total == 5


UNSTABLE = """\
import time

import pytest

from calc import mean


@pytest.mark.parametrize("values", [[], [2.0]], ids=lambda v: f"{len(v)}-at-{time.time_ns()}")
def test_mean_now(values):
    assert mean(values) == (values[0] if values else 0.0)
"""


def test_unstable_parametrize_ids_are_paired_by_function_and_position(
    run: Verify, project: Project
) -> None:
    # The ids carry the clock: they differ between the trees and between every re-run.
    verdict = run(project.diff({"calc/ops.py": FIXED_OPS, "tests/test_unstable.py": UNSTABLE}))
    assert verdict.status == "verified", verdict.summary
    (fixed,) = verdict.tests.fail_to_pass
    assert fixed.startswith("tests/test_unstable.py::test_mean_now[0-at-")
    assert verdict.tests.flaky == [] and verdict.tests.added == []
    assert verdict.tests.pass_to_fail == [] and verdict.tests.removed == []


def test_pytest_3_instance_segment_is_not_part_of_an_id() -> None:
    from runner.core.harnessresults import stable_id

    # pytest 3 (chosen for a 2019 commit) spells Cls::()::test; the truth and later eras do not
    assert (
        stable_id("tests/t.py::TestPluck::()::test_pluck[a]")
        == "tests/t.py::TestPluck::test_pluck[a]"
    )
    assert stable_id("tests/t.py::test_x[()::y]") == "tests/t.py::test_x[()::y]"
