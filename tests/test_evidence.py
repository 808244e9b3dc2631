"""Evidence, not ceremony (issue 18, items 3 and 7), end to end.

A tiny pricing package whose ``apply_discount`` takes the percentage off as an amount
(200 less 10 % is 190, not 180). The right fix comes with a test that fails an assertion
on the baseline; each ceremony candidate carries the same source fix with a test that
flips without showing the bug (it fails only at set-up, at collection, or asserts
nothing), and ends ``rejected`` by the ``reproduced`` check. The package ships its
fixtures in ``pricing/fixtures.py`` (loaded by ``tests/conftest.py``), the way packages
with a testing module do. Real engine, real git repository, real diffs.
"""

from __future__ import annotations

import json
from pathlib import Path

import docker
import pytest
from conftest import TEST_INSTANCE, make_settings
from test_pipeline import Project, Verify, checks, commit, failed, git, validated

from runner.environments.images import BaseImage
from runner.models import FixJob, Verdict
from runner.reports.github import render_summary
from runner.reports.text import fact_rows
from runner.verify.pipeline import Runtime, verify

pytestmark = pytest.mark.docker

DISCOUNT = '''\
"""Discounts."""


def apply_discount(price, percent):
    """The price after taking ``percent`` per cent off."""
    return price - percent


def _cents(amount):
    return round(amount * 100)


def total(prices):
    """The sum of ``prices``, to the cent."""
    return sum(_cents(p) for p in prices) / 100


def label(percent):
    """How a discount reads on a receipt."""
    return f"-{percent}"
'''

FIXTURES = '''\
"""Fixtures for the package's tests (tests/conftest.py loads them)."""

import pytest


@pytest.fixture
def cart():
    """An empty cart."""
    return []
'''

TESTS = """\
from pricing.discount import apply_discount


def test_no_discount():
    assert apply_discount(50, 0) == 50
"""

PROJECT = {
    "pricing/__init__.py": "",
    "pricing/discount.py": DISCOUNT,
    "pricing/fixtures.py": FIXTURES,
    "tests/__init__.py": "",
    "tests/conftest.py": "from pricing.fixtures import *  # noqa: F401,F403\n",
    "tests/test_discount.py": TESTS,
    "requirements-test.txt": "pytest==8.3.5\nflake8==7.1.2\n",
}

FIXED = DISCOUNT.replace(
    "    return price - percent\n", "    return price * (100 - percent) / 100\n"
).replace('    return f"-{percent}"\n', '    return f"{percent}% off"\n')
REGRESSION = "tests/test_discount.py::test_ten_percent_off"
RIGHT_TEST = TESTS + "\n\ndef test_ten_percent_off():\n    assert apply_discount(200, 10) == 180\n"
RIGHT_FIX = {"pricing/discount.py": FIXED, "tests/test_discount.py": RIGHT_TEST}

# The same fix; the test asks for a fixture the candidate adds to the package's fixtures:
# on the baseline it fails at set-up ("fixture 'prices' not found"), never reaching the bug.
SETUP_ONLY = {
    "pricing/discount.py": FIXED,
    "pricing/fixtures.py": FIXTURES + '\n\n@pytest.fixture\ndef prices():\n    """Two prices."""\n'
    "    return [200, 50]\n",
    "tests/test_discount.py": TESTS
    + "\n\ndef test_ten_percent_off(prices):\n    assert apply_discount(prices[0], 10) == 180\n",
}
# A new keyword, and a test that only calls with it: a TypeError on the baseline, no check.
NO_ASSERTION = {
    "pricing/discount.py": FIXED.replace(
        "def apply_discount(price, percent):", "def apply_discount(price, percent, places=None):"
    ),
    "tests/test_discount.py": TESTS
    + "\n\ndef test_discount_with_places():\n    apply_discount(200, 10, places=2)\n",
}
# A test module that imports a name the fix adds: it fails to collect on the baseline.
COLLECTION = {
    "pricing/discount.py": FIXED + '\n\ndef percent_off(price, percent):\n    """Alias."""\n'
    "    return apply_discount(price, percent)\n",
    "tests/test_alias.py": "from pricing.discount import percent_off\n\n\n"
    "def test_percent_off():\n    assert percent_off(200, 10) == 180\n",
}


# Branch missing-fixture: a test that asks for a fixture nobody defined (a bug in the tests).
CART = "tests/test_cart.py::test_cart_total"
CART_TEST = (
    "from pricing.discount import total\n\n\ndef test_cart_total(two_prices):\n"
    "    assert total(two_prices) == 2.5\n"
)
CONFTEST_FIX = {
    "tests/conftest.py": PROJECT["tests/conftest.py"]
    + '\nimport pytest\n\n\n@pytest.fixture\ndef two_prices():\n    """Two prices."""\n'
    "    return [1.25, 1.25]\n"
}


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Project:
    root = tmp_path_factory.mktemp("pricing")
    made = Project.create(root, "pricing", PROJECT, "apply_discount takes an amount off")
    git(made.repo, "checkout", "-q", "-b", "missing-fixture")
    commit(made.repo, {"tests/test_cart.py": CART_TEST}, "a test whose fixture is missing")
    git(made.repo, "checkout", "-q", "main")
    git(made.scratch, "fetch", "-q", "origin")
    return made


@pytest.fixture(scope="module")
def runtime(
    tmp_path_factory: pytest.TempPathFactory,
    base_image: BaseImage,
    docker_client: docker.DockerClient,
) -> Runtime:
    state = tmp_path_factory.mktemp("state")
    return Runtime.start(make_settings(state, f"{TEST_INSTANCE}-evidence"))


@pytest.fixture
def run(runtime: Runtime, project: Project) -> Verify:
    """Verify a candidate against the project; the verdict is checked against the schema."""

    def go(patch: str, **job: object) -> Verdict:
        job.setdefault("repo", str(project.repo))
        verdict = verify(FixJob(patch=patch, **job), runtime)  # type: ignore[arg-type]
        return validated(verdict, runtime)

    return go


def rejected_by_evidence(verdict: Verdict, test_id: str, why: str) -> None:
    assert verdict.status == "rejected", verdict.summary
    assert "reproduced" in failed(verdict), verdict.summary
    assert f"reproduced (no fail-to-pass test shows the bug: {test_id} {why}" in verdict.summary


COVERAGE = (
    "patch coverage: 1/2 changed lines executed by fail-to-pass tests; "
    "hunk pricing/discount.py:20 not executed"
)


def test_right_fix_is_verified_with_its_patch_coverage(
    run: Verify, project: Project, runtime: Runtime
) -> None:
    verdict = run(project.diff(RIGHT_FIX))
    assert verdict.status == "verified", verdict.summary
    assert verdict.tests.fail_to_pass == [REGRESSION]
    assert checks(verdict)["reproduced"].detail == f"fail_to_pass: {REGRESSION}"
    # the test runs apply_discount's new line, not label's (its own hunk): informational
    coverage = verdict.patch_coverage
    assert coverage is not None and coverage.measured, coverage
    assert coverage.tests == [REGRESSION]
    (only,) = coverage.files
    assert (only.path, only.changed_lines, only.executed_lines) == (
        "pricing/discount.py",
        [6, 20],
        [6],
    )
    assert only.unexecuted_hunks == ["20"]
    assert coverage.line() == COVERAGE
    assert "patch_coverage" not in checks(verdict)
    assert ("patch coverage", COVERAGE.split(": ", 1)[1]) in fact_rows(verdict)
    assert COVERAGE in render_summary(verdict)
    # only the first re-run is traced (a tracer slows the whole process); the second is not
    streams = runtime.jobs_dir / verdict.job_id / "harness"
    assert 6 in traced_lines(streams / "candidate-rerun-0.jsonl")["pricing/discount.py"]
    assert traced_lines(streams / "candidate-rerun-1.jsonl") == {}


def traced_lines(stream: Path) -> dict[str, set[int]]:
    """The changed-file lines a run's harness stream recorded, over all its tests."""
    out: dict[str, set[int]] = {}
    for line in stream.read_text(encoding="utf-8").splitlines():
        record = json.loads(line)["record"]
        if record["kind"] == "lines":
            for path, numbers in record["files"].items():
                out.setdefault(path, set()).update(numbers)
    return out


def test_min_patch_coverage_makes_it_blocking(
    run: Verify, project: Project, tmp_path: Path
) -> None:
    policy = tmp_path / "covered.toml"
    policy.write_text('name = "covered"\nmin_patch_coverage = 80\n', encoding="utf-8")
    verdict = run(project.diff(RIGHT_FIX), policy=str(policy))
    assert verdict.status == "rejected", verdict.summary
    assert "patch_coverage" in failed(verdict)
    assert f"patch_coverage ({COVERAGE} (50% < 80%))" in verdict.summary


def test_a_test_failing_only_at_setup_is_not_evidence(run: Verify, project: Project) -> None:
    verdict = run(project.diff(SETUP_ONLY))
    assert verdict.tests.fail_to_pass == [REGRESSION]
    rejected_by_evidence(
        verdict, REGRESSION, "fails on the baseline at setup (fixture 'prices' not found)"
    )


def test_an_assertion_free_test_for_a_wrong_result_is_not_evidence(
    run: Verify, project: Project
) -> None:
    verdict = run(project.diff(NO_ASSERTION))
    test_id = "tests/test_discount.py::test_discount_with_places"
    assert verdict.tests.fail_to_pass == [test_id]
    rejected_by_evidence(
        verdict,
        test_id,
        "asserts nothing (no assert, pytest.raises or mock assertion) and no error report",
    )


def test_an_assertion_free_test_with_another_crash_than_the_reported_is_not_evidence(
    run: Verify, project: Project
) -> None:
    verdict = run(project.diff(NO_ASSERTION), expect_error="ZeroDivisionError")
    test_id = "tests/test_discount.py::test_discount_with_places"
    rejected_by_evidence(
        verdict,
        test_id,
        "asserts nothing (no assert, pytest.raises or mock assertion) and "
        "fails with TypeError, not the reported ZeroDivisionError",
    )


def test_a_test_failing_at_collection_is_not_evidence(run: Verify, project: Project) -> None:
    verdict = run(project.diff(COLLECTION))
    test_id = "tests/test_alias.py::test_percent_off"
    assert verdict.tests.fail_to_pass == [test_id]
    rejected_by_evidence(
        verdict,
        test_id,
        "fails on the baseline at collection (ImportError: cannot import name 'percent_off'",
    )


# --------------------------------------------------------------------------- item 7


def test_a_fix_in_the_tests_is_verified_with_the_failing_test_named(
    run: Verify, project: Project
) -> None:
    patch = project.diff(CONFTEST_FIX, base="missing-fixture")
    verdict = run(patch, base="missing-fixture", fail_to_pass=[CART])
    assert verdict.status == "verified", verdict.summary
    assert verdict.tests.fail_to_pass == [CART]
    assert f"{CART} named with --fail-to-pass (setup: fixture 'two_prices' not found)" in (
        checks(verdict)["reproduced"].detail
    )
    assert checks(verdict)["tests_not_weakened"].passed  # a conftest that only adds a fixture
    assert verdict.patch_coverage is None  # no source line changed


def test_a_fix_in_the_tests_without_the_test_named_shows_nothing(
    run: Verify, project: Project
) -> None:
    # the fixture lands in both trees: no test fails before and passes after
    verdict = run(project.diff(CONFTEST_FIX, base="missing-fixture"), base="missing-fixture")
    assert verdict.status == "rejected", verdict.summary
    assert "reproduced (no test went from failing to passing)" in verdict.summary
