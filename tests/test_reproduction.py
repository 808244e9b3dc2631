"""Which fail-to-pass tests are evidence of the bug (pure: graded runs and test texts in)."""

from __future__ import annotations

import pytest

from runner.core.asserts import test_checks_outcome, test_written
from runner.core.comparison import compare
from runner.core.grading import grade
from runner.core.reproduction import standings
from runner.core.weakening import weakening_findings
from runner.models import (
    Evidence,
    FileChange,
    JUnitReport,
    ParsedPatch,
    SourceChange,
    TestResult,
)

T = "tests/test_x.py::test_y"
BEFORE = "def test_other():\n    assert 1\n"


def baseline(**fields: object) -> Evidence:
    """Evidence where ``T`` fails on the baseline as ``fields`` say and passes after."""
    failing = TestResult(id=T, **{"outcome": "failed", **fields})  # type: ignore[arg-type]
    before = grade(JUnitReport(tests=[failing]), 1)
    after = grade(JUnitReport(tests=[TestResult(id=T, outcome="passed")]), 0)
    return Evidence(baseline=before, candidate=after, comparison=compare(before, after))


def with_test(ev: Evidence, body: str, **extra: object) -> Evidence:
    text = BEFORE + f"\n\ndef test_y():\n{body}"
    sources = [SourceChange(path="tests/test_x.py", before=BEFORE, after=text)]
    return ev.model_copy(update={"sources": sources, **extra})


def standing(ev: Evidence, reported: tuple[str, ...] = ()) -> tuple[bool, str]:
    (only,) = standings(ev, reported)
    return only.counts, only.why


def test_an_assertion_failing_in_the_call_phase_counts() -> None:
    ev = baseline(phase="call", exception_type="AssertionError", assertion=True)
    assert standing(with_test(ev, "    assert f() == 1\n"))[0]


def test_a_missing_fixture_at_setup_is_not_evidence() -> None:
    ev = baseline(
        outcome="error",
        phase="setup",
        exception_type="FixtureLookupError",
        text="  def test_y(db):\nE       fixture 'db' not found\n>       available fixtures: x",
    )
    counts, why = standing(with_test(ev, "    assert f() == 1\n"))
    assert not counts
    assert why == f"{T} fails on the baseline at setup (fixture 'db' not found): not evidence"


def test_a_module_that_fails_to_collect_is_not_evidence() -> None:
    broken = TestResult(
        id="tests/test_x.py", outcome="error", message="ImportError: cannot import name 'g'"
    )
    before = grade(JUnitReport(collection_errors=[broken]), 1)
    after = grade(JUnitReport(tests=[TestResult(id=T, outcome="passed")]), 0)
    ev = Evidence(baseline=before, candidate=after, comparison=compare(before, after))
    counts, why = standing(ev)
    assert not counts and "at collection (ImportError: cannot import name 'g')" in why


def test_an_import_error_in_the_call_phase_is_not_evidence_without_a_report() -> None:
    ev = baseline(phase="call", exception_type="ModuleNotFoundError", assertion=False)
    counts, why = standing(with_test(ev, "    assert f() == 1\n"))
    assert not counts and "an import error" in why


def test_another_exception_than_the_reported_one_is_not_evidence() -> None:
    ev = baseline(phase="call", exception_type="TypeError", assertion=False)
    assert standing(with_test(ev, "    assert f() == 1\n"), ("ValueError",))[0] is False
    assert standing(with_test(ev, "    assert f() == 1\n"), ("TypeError",))[0] is True


@pytest.mark.parametrize(
    ("reported", "counts"), [((), False), (("RuntimeError",), True), (("ValueError",), False)]
)
def test_an_assertion_free_test_counts_only_for_the_reported_crash(
    reported: tuple[str, ...], counts: bool
) -> None:
    ev = baseline(phase="call", exception_type="RuntimeError", assertion=False)
    got, why = standing(with_test(ev, "    main()\n"), reported)
    assert got is counts
    if not counts:
        assert "asserts nothing (no assert, pytest.raises or mock assertion)" in why


def test_an_assertion_free_test_the_candidate_did_not_write_is_judged_by_its_failure() -> None:
    ev = baseline(phase="call", exception_type="RuntimeError", assertion=False)
    assert standing(ev)[0]  # not in the diff: the project's own test, not ceremony


def test_a_named_unchanged_test_failing_at_setup_counts() -> None:
    ev = baseline(outcome="error", phase="setup", exception_type="FixtureLookupError")
    counts, why = standing(ev.model_copy(update={"fail_to_pass_ids": [T]}))
    assert counts and "named with --fail-to-pass" in why


def test_a_named_test_the_candidate_wrote_gets_no_setup_allowance() -> None:
    ev = baseline(outcome="error", phase="setup", exception_type="FixtureLookupError")
    counts, _ = standing(with_test(ev, "    assert f()\n", fail_to_pass_ids=[T]))
    assert not counts


@pytest.mark.parametrize(
    ("body", "checks"),
    [
        ("    assert f() == 1\n", True),
        ("    with pytest.raises(ValueError):\n        f()\n", True),
        ("    m = Mock()\n    f(m)\n    m.assert_called_once_with(1)\n", True),
        ("    self.assertEqual(f(), 1)\n", True),
        ("    pytest.fail('no')\n", True),
        ("    check(f())\n", True),  # a module helper that asserts
        ("    f()\n", False),
        ("    x = f()\n    print(x)\n", False),
    ],
)
def test_what_checks_an_outcome(body: str, checks: bool) -> None:
    text = f"def check(x):\n    assert x\n\n\ndef test_y():\n{body}"
    assert test_checks_outcome(text, "test_y") is checks


def test_a_method_is_found_by_its_class() -> None:
    text = "class TestC:\n    def test_y(self):\n        assert 1\n"
    assert test_checks_outcome(text, "TestC.test_y") is True
    assert test_checks_outcome(text, "test_missing") is None


def test_written_means_added_or_changed() -> None:
    old = "def test_y():\n    assert f() == 1\n"
    assert not test_written(old, "import os\n\n\n" + old, "test_y")
    assert test_written(old, old.replace("1", "2"), "test_y")
    assert test_written(None, old, "test_y")


# --------------------------------------------------------------------------- conftest fixes

CONFTEST = "import pytest\n\n\n@pytest.fixture\ndef cart():\n    return []\n"


def conftest_findings(after: str, before: str | None = CONFTEST) -> list[str]:
    change = FileChange(path="tests/conftest.py", status="modified" if before else "added")
    patch = ParsedPatch(text="", files=[change])
    source = SourceChange(path="tests/conftest.py", before=before, after=after)
    return weakening_findings(patch, sources=[source])


@pytest.mark.parametrize(
    "added",
    [
        "\n\n@pytest.fixture\ndef prices():\n    return [1]\n",
        "\n\n@pytest.fixture(scope='module')\ndef prices():\n    return [1]\n",
        "\nimport os\n\n\n@fixture\ndef prices():\n    return [os.sep]\n",
    ],
)
def test_a_conftest_that_only_adds_fixtures_is_not_a_harness_change(added: str) -> None:
    assert conftest_findings(CONFTEST + added) == []


@pytest.mark.parametrize(
    "after",
    [
        CONFTEST + "\n\n@pytest.fixture(autouse=True)\ndef quiet():\n    yield\n",
        CONFTEST + "\n\ndef pytest_collection_modifyitems(items):\n    items.clear()\n",
        CONFTEST + "\n\n@pytest.fixture\ndef monkeypatch():\n    return None\n",
        CONFTEST + "\n\n@pytest.fixture(name='caplog')\ndef quiet():\n    return None\n",
        CONFTEST.replace("return []", "pass"),  # an existing fixture made a no-op
        CONFTEST + "\npytest_plugins = ['evil']\n",
    ],
    ids=["autouse", "hook", "builtin-name", "builtin-renamed", "no-op", "plugin"],
)
def test_a_conftest_change_that_alters_how_tests_run_is_weakening(after: str) -> None:
    # Judged by what it does (issue 17, class 10): each of these changes what every test
    # sees or how it is collected or reported.
    assert any(f.startswith("tests/conftest.py: ") for f in conftest_findings(after))


def test_a_unittest_helper_method_that_asserts_counts() -> None:
    from runner.core.asserts import test_checks_outcome

    text = (
        "import unittest\n\n\nclass TestPattern(unittest.TestCase):\n"
        "    def _check(self, fmt, expected):\n        self.assertEqual(parse(fmt), expected)\n\n"
        "    def test_numbered(self):\n        self._check('{0}', 'x')\n\n"
        "    def test_prints(self):\n        print(parse('{0}'))\n"
    )
    assert test_checks_outcome(text, "TestPattern.test_numbered") is True
    assert test_checks_outcome(text, "TestPattern.test_prints") is False
