"""Affected tests first: the baseline's per-test map, the early answer and fail_fast.

A small two-module project (``shapes``: area and perimeter, each with its own tests) in
a real git repository; the first job records the baseline and its map, later jobs select
from it. Real engine, real diffs, verdicts checked against the published schema.
"""

from __future__ import annotations

import os
from pathlib import Path

import docker
import pytest
from conftest import TEST_INSTANCE, make_settings
from test_pipeline import (
    Project,
    _policy_file,
    cli_env,  # noqa: F401  # a fixture this module's CLI test uses
    validated,
    verify_patch,
)

from runner.config import Settings
from runner.core.maprecording import Caller
from runner.environments.images import BaseImage
from runner.models import FixJob, SuiteRun, Verdict
from runner.verify.pipeline import Runtime, verify

pytestmark = pytest.mark.docker

AREA = "def square(side):\n    return side * side\n\n\ndef rect(a, b):\n    return a * b\n"
PERIMETER = "def square(side):\n    return 4 * side\n"
UNITS = 'NAME = "cm"\n'
SHOW = "from shapes.units import NAME\n\n\ndef show(value):\n    return f'{value} {NAME}'\n"
TEST_AREA = (
    "from shapes.area import rect, square\n\n\n"
    "def test_square_area():\n    assert square(3) == 9\n\n\n"
    "def test_rect_area():\n    assert rect(2, 3) == 6\n"
)
TEST_PERIMETER = (
    "from shapes.perimeter import square\n\n\n"
    "def test_square_perimeter():\n    assert square(3) == 12\n\n\n"
    "def test_zero():\n    assert square(0) == 0\n"
)
TEST_SHOW = (
    "from shapes.show import show\n\n\ndef test_show(unit):\n    assert show(2) == f'2 {unit}'\n"
)
FILES = {
    "shapes/__init__.py": '"""Shapes."""\n',
    "shapes/area.py": AREA,
    "shapes/perimeter.py": PERIMETER,
    "shapes/units.py": UNITS,
    "shapes/show.py": SHOW,
    "tests/conftest.py": "import pytest\n\n\n@pytest.fixture\ndef unit():\n    return 'cm'\n",
    "tests/test_area.py": TEST_AREA,
    "tests/test_perimeter.py": TEST_PERIMETER,
    "tests/test_show.py": TEST_SHOW,
    "requirements-test.txt": "pytest==8.3.5\nflake8==7.1.2\n",
}
SQUARE_AREA = "tests/test_area.py::test_square_area"
INSTANCE = f"{TEST_INSTANCE}-affected"


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Project:
    return Project.create(tmp_path_factory.mktemp("shapes"), "shapes", FILES, "shapes")


@pytest.fixture(scope="module")
def module_settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return make_settings(tmp_path_factory.mktemp("state"), INSTANCE)


@pytest.fixture(scope="module")
def runtime(
    module_settings: Settings, base_image: BaseImage, docker_client: docker.DockerClient
) -> Runtime:
    return Runtime.start(module_settings)


@pytest.fixture(scope="module")
def fail_fast(tmp_path_factory: pytest.TempPathFactory) -> str:
    folder = tmp_path_factory.mktemp("policies")
    return _policy_file(folder, "failfast", fail_fast=True, evidence="none")


@pytest.fixture(scope="module")
def warm(runtime: Runtime, project: Project) -> Verdict:
    """The first job on the base: it runs the baseline, which records the map."""
    return _verify(runtime, project, {"shapes/area.py": AREA.replace("a * b", "b * a")})


def _verify(
    runtime: Runtime,
    project: Project,
    files: dict[str, str | None],
    caller: Caller = "service",
    record_map: bool = False,
    **job: object,
) -> Verdict:
    """One job; by default as the service runs it (whose baselines record the map)."""
    lines: list[tuple[str, str]] = []
    # no fail-to-pass test is needed: these candidates only exercise the selection
    job.setdefault("policy", "lenient")
    fix = FixJob(repo=str(project.repo), patch=project.diff(files), **job)  # type: ignore[arg-type]

    def progress(phase: str, message: str) -> None:
        lines.append((phase, message))

    verdict = verify(fix, runtime, progress, caller=caller, record_map=record_map)
    validated(verdict, runtime)
    assert verdict.early is not None
    # the progress stream carries the same early answer the verdict records
    assert ("early", verdict.early.answer) in lines
    return verdict


def _recorded_map(runtime: Runtime, verdict: Verdict) -> bool:
    stream = runtime.jobs_dir / verdict.job_id / "harness" / "baseline.jsonl"
    return '"kind": "testmap"' in stream.read_text(encoding="utf-8")


def test_first_run_has_no_map_and_selects_everything(warm: Verdict, runtime: Runtime) -> None:
    assert warm.status == "verified", warm.summary
    assert warm.early is not None
    assert warm.early.selection == "all" and warm.early.selected == 0
    assert "no per-test map for this commit yet" in warm.early.reason
    assert _recorded_map(runtime, warm)
    assert warm.early.testmap is not None and warm.early.testmap.recorded
    assert "the service verifies later candidates" in warm.early.testmap.reason


def test_a_change_to_one_module_selects_the_tests_that_execute_it(
    warm: Verdict, runtime: Runtime, project: Project
) -> None:
    verdict = _verify(runtime, project, {"shapes/area.py": AREA.replace("side * side", "side**2")})
    assert verdict.status == "verified", verdict.summary
    early = verdict.early
    assert early is not None and early.selection == "affected"
    # the change is inside square(): the test that ran it, not rect()'s nor perimeter's
    assert early.ids == [SQUARE_AREA]
    assert early.selected == 1 and early.passed == 1 and early.failed == []
    assert early.answer == "1 affected tests pass; full suite running"
    assert early.seconds is not None and early.agrees is True
    assert verdict.tests.candidate.passed == 5  # the full suite still ran and decided


def test_a_module_read_only_for_its_constants_selects_its_importers(
    warm: Verdict, runtime: Runtime, project: Project
) -> None:
    verdict = _verify(runtime, project, {"shapes/units.py": 'NAME = "mm"\n'})
    assert verdict.status == "rejected", verdict.summary
    assert verdict.early is not None and verdict.early.ids == ["tests/test_show.py::test_show"]
    assert verdict.early.failed == ["tests/test_show.py::test_show"]
    assert not verdict.early.stopped and verdict.early.agrees is True
    assert verdict.tests.pass_to_fail == ["tests/test_show.py::test_show"]


def test_a_conftest_change_selects_everything(
    warm: Verdict, runtime: Runtime, project: Project
) -> None:
    conftest = FILES["tests/conftest.py"] + "\n\n@pytest.fixture\ndef side():\n    return 3\n"
    verdict = _verify(runtime, project, {"tests/conftest.py": conftest})
    assert verdict.early is not None and verdict.early.selection == "all"
    assert "tests/conftest.py" in verdict.early.reason
    assert verdict.early.selected == 0
    # its baseline ran afresh (the conftest change is in it) without recording the map again
    assert "baseline" in verdict.timings and not _recorded_map(runtime, verdict)
    assert verdict.early.testmap is not None and not verdict.early.testmap.recorded
    assert verdict.early.testmap.reason.startswith("not needed: an earlier baseline")


BROKEN_AREA = {"shapes/area.py": AREA.replace("side * side", "side + side")}


def test_a_failing_affected_test_with_fail_fast_rejects_early(
    warm: Verdict, runtime: Runtime, project: Project, fail_fast: str
) -> None:
    verdict = _verify(runtime, project, BROKEN_AREA, policy=fail_fast)
    assert verdict.status == "rejected"
    assert verdict.summary.startswith("rejected early (fail_fast")
    early = verdict.early
    assert early is not None and early.stopped
    assert early.failed == [SQUARE_AREA]
    assert early.answer.endswith("; stopping (fail_fast)")
    # the evidence is the early run's: the perimeter tests never ran to completion
    assert verdict.tests.pass_to_fail == ["tests/test_area.py::test_square_area"]
    kept = runtime.jobs_dir / verdict.job_id / "candidate.json"
    assert list(SuiteRun.model_validate_json(kept.read_text(encoding="utf-8")).tests) == [
        SQUARE_AREA
    ]


def test_without_fail_fast_the_full_suite_still_runs(
    warm: Verdict, runtime: Runtime, project: Project
) -> None:
    verdict = _verify(runtime, project, BROKEN_AREA)
    assert verdict.status == "rejected"
    early = verdict.early
    assert early is not None and not early.stopped
    assert early.failed == [SQUARE_AREA]
    assert early.answer.endswith("; full suite running")
    assert not verdict.summary.startswith("rejected early")
    assert verdict.tests.candidate.passed == 4  # every other test ran in the full suite
    assert early.agrees is True


def test_the_early_line_is_in_the_cli_progress_stream(
    warm: Verdict,
    project: Project,
    runtime: Runtime,
    cli_env: dict[str, str],  # noqa: F811  # the fixture imported above
    tmp_path: Path,
) -> None:
    patch = tmp_path / "fix.diff"
    patch.write_text(
        project.diff({"shapes/perimeter.py": "def square(side):\n    return side * 4\n"})
    )
    job_id = f"cli-early-{os.urandom(4).hex()}"
    proc = verify_patch(
        cli_env,
        *("--repo", str(project.repo), "--patch", str(patch), "--job-id", job_id),
        *("--policy", "lenient"),
    )
    assert proc.returncode == 0, proc.stderr
    line = "early     2 affected tests pass; full suite running"
    assert line in proc.stderr, proc.stderr


NEGATIVE = "tests/test_area.py::test_a_negative_side_is_refused"
# the job's own test: square(-1) must raise; the base returns 1
SHOWS_BUG = {
    "tests/test_area.py": TEST_AREA.replace("from shapes", "import pytest\n\nfrom shapes", 1)
    + "\n\ndef test_a_negative_side_is_refused():\n"
    "    with pytest.raises(ValueError):\n        square(-1)\n"
}
REFUSES = AREA.replace(
    "    return side * side",
    "    if side < 0:\n        raise ValueError(side)\n    return side * side",
)


def test_the_jobs_own_tests_still_failing_are_an_early_failure(
    warm: Verdict, runtime: Runtime, project: Project, tmp_path: Path
) -> None:
    # the right fix first: its baseline (the base with the new test) is cached
    fixed = _verify(runtime, project, {**SHOWS_BUG, "shapes/area.py": REFUSES}, policy="default")
    assert fixed.status == "verified", fixed.summary
    # then a candidate with the same test that changes square() without fixing it
    policy = _policy_file(tmp_path, "failfast-tests", fail_fast=True)
    touched = AREA.replace("    return side * side", "    return side * side  # squared")
    verdict = _verify(runtime, project, {**SHOWS_BUG, "shapes/area.py": touched}, policy=policy)
    assert verdict.status == "rejected", verdict.summary
    early = verdict.early
    assert early is not None and early.stopped and early.failed == [NEGATIVE]
    assert early.answer.startswith("the job's tests that failed on the baseline 0/1 pass, ")
    assert early.fail_to_pass == "0/1"
    assert early.agrees is True


def test_without_evidence_from_tests_a_still_failing_own_test_stops_nothing(
    warm: Verdict, runtime: Runtime, project: Project, fail_fast: str
) -> None:
    # evidence = "none": the verdict does not rest on a test showing the bug
    touched = AREA.replace("    return side * side", "    return side * side  # sq")
    verdict = _verify(runtime, project, {**SHOWS_BUG, "shapes/area.py": touched}, policy=fail_fast)
    early = verdict.early
    assert early is not None and not early.stopped and early.failed == []
    assert verdict.status == "verified", verdict.summary
    assert early.agrees is True
