"""The affected-tests selection as a pure function: real diffs parsed, a map as recorded.

The map below is what the harness records for a two-module project (see
tests/test_affected.py for the same rules end to end in the sandbox).
"""

from __future__ import annotations

import difflib
from pathlib import Path

import pytest

from runner.config import load_settings
from runner.config.sections import RecordMap
from runner.core.affected import TestMap, select_tests, touched_lines
from runner.core.maprecording import Caller, map_outcome, plan_baseline, plan_map
from runner.core.patch import parse_patch
from runner.core.paths import DEFAULT_TEST_GLOBS
from runner.models import SuiteRun, TestResult

AREA = "def square(side):\n    return side * side\n\n\ndef rect(a, b):\n    return a * b\n"
SQUARE, RECT = "tests/test_area.py::test_square", "tests/test_area.py::test_rect"
PERIMETER = "tests/test_perimeter.py::test_square"
# files: 0 tests/test_area.py, 1 shapes/area.py, 2 tests/test_perimeter.py, 3 shapes/perimeter.py
MAP = TestMap(
    files=[
        "tests/test_area.py",
        "shapes/area.py",
        "tests/test_perimeter.py",
        "shapes/perimeter.py",
    ],
    tests={SQUARE: [0, 1], RECT: [0, 1], PERIMETER: [2, 3]},
    deps={"0": [1], "2": [3]},
    units=[[1, 1, 2], [1, 5, 6], [3, 1, 2], [0, 4, 5], [0, 8, 9], [2, 4, 5]],
    functions={SQUARE: [0, 3], RECT: [1, 4], PERIMETER: [2, 5]},
)
BASELINE = SuiteRun(
    valid=True, tests={t: TestResult(id=t, outcome="passed") for t in (SQUARE, RECT, PERIMETER)}
)


def _diff(path: str, before: str, after: str) -> str:
    lines = difflib.unified_diff(
        before.splitlines(keepends=True), after.splitlines(keepends=True), f"a/{path}", f"b/{path}"
    )
    return "".join(lines)


def _select(diff: str) -> tuple[bool, list[str], list[str], str]:
    chosen = select_tests(parse_patch(diff), MAP, BASELINE, [], list(DEFAULT_TEST_GLOBS))
    return chosen.everything, chosen.ids, chosen.files, chosen.reason


def test_a_change_inside_a_function_selects_the_tests_that_ran_it() -> None:
    diff = _diff("shapes/area.py", AREA, AREA.replace("side * side", "side ** 2"))
    assert touched_lines(diff) == {"shapes/area.py": {2}}
    assert _select(diff)[:3] == (False, [SQUARE], [])


def test_a_module_level_change_selects_every_test_that_ran_the_file() -> None:
    diff = _diff("shapes/area.py", AREA, "UNIT = 1\n" + AREA)
    everything, ids, files, _ = _select(diff)
    # both area tests, so their file is named whole; never the perimeter test
    assert (everything, ids, files) == (False, [], ["tests/test_area.py"])


def test_conftest_and_non_python_files_select_everything() -> None:
    conftest = _diff("tests/conftest.py", "import pytest\n", "import pytest\nX = 1\n")
    assert _select(conftest)[0] and "conftest.py" in _select(conftest)[3]
    data = _diff("shapes/table.csv", "a,b\n", "a,c\n")
    assert _select(data)[0] and "not Python" in _select(data)[3]


def test_a_changed_test_file_runs_whole_and_no_map_means_everything() -> None:
    before = "def test_square():\n    assert 1\n"
    diff = _diff("tests/test_perimeter.py", before, before + "\n\ndef test_more():\n    pass\n")
    assert _select(diff)[:3] == (False, [], ["tests/test_perimeter.py"])
    chosen = select_tests(parse_patch(diff), None, BASELINE, [], list(DEFAULT_TEST_GLOBS))
    assert chosen.everything and "no per-test map" in chosen.reason
    # a baseline that could record no map leaves an empty one: everything, and why
    empty = TestMap(monitor="none")
    chosen = select_tests(parse_patch(diff), empty, BASELINE, [], list(DEFAULT_TEST_GLOBS))
    assert chosen.everything and "maps no test" in chosen.reason


# --------------------------------------------------------------- when the map is recorded


@pytest.mark.parametrize(
    ("setting", "caller", "asked", "wanted"),
    [
        ("auto", "one-shot", False, False),
        ("auto", "fix-loop", False, True),
        ("auto", "service", False, True),
        ("auto", "one-shot", True, True),
        ("never", "fix-loop", False, False),
        ("never", "service", False, False),
        ("never", "one-shot", True, True),  # the command line's explicit ask wins
        ("always", "one-shot", False, True),
    ],
)
def test_the_setting_and_the_caller_decide_whether_the_map_is_wanted(
    setting: RecordMap, caller: Caller, asked: bool, wanted: bool
) -> None:
    plan = plan_map(setting, caller, asked)
    assert plan.wanted is wanted
    assert plan.reason


def test_auto_is_the_default_and_says_how_to_ask_for_the_map(tmp_path: Path) -> None:
    empty = tmp_path / "runner.toml"
    empty.write_text("", encoding="utf-8")
    assert load_settings(empty, environ={}).affected.record_map == "auto"
    never = load_settings(empty, environ={"RUNNER_AFFECTED__RECORD_MAP": "never"})
    assert never.affected.record_map == "never"
    settings = load_settings(empty, environ={})
    reason = plan_map(settings.affected.record_map, "one-shot", False).reason
    assert "one-shot" in reason and "--record-map" in reason


def test_a_cached_baseline_is_reused_while_the_map_is_not_wanted() -> None:
    unwanted = plan_map("auto", "one-shot", False)
    plan = plan_baseline(unwanted, baseline_cached=True, map_cached=False)
    assert not plan.run and not plan.with_map
    fresh = plan_baseline(unwanted, baseline_cached=False, map_cached=False)
    assert fresh.run and not fresh.with_map


def test_a_cached_baseline_without_the_map_runs_again_once_the_map_is_wanted() -> None:
    wanted = plan_map("auto", "fix-loop", False)
    again = plan_baseline(wanted, baseline_cached=True, map_cached=False)
    assert again.run and again.with_map
    outcome = map_outcome(wanted, again, recorded=True, valid=True)
    assert outcome.recorded and "ran again" in outcome.reason
    # once the commit has its map, neither a cached nor a fresh baseline records it again
    assert not plan_baseline(wanted, baseline_cached=True, map_cached=True).run
    fresh = plan_baseline(wanted, baseline_cached=False, map_cached=True)
    assert fresh.run and not fresh.with_map
    said = map_outcome(wanted, fresh, recorded=False, valid=True)
    assert not said.recorded and said.reason.startswith("not needed")


def test_the_verdict_says_why_a_wanted_map_was_not_recorded() -> None:
    wanted = plan_map("always", "one-shot", False)
    plan = plan_baseline(wanted, baseline_cached=False, map_cached=False)
    invalid = map_outcome(wanted, plan, recorded=False, valid=False)
    assert not invalid.recorded and invalid.reason.endswith("the baseline run was not valid")
    unwanted = plan_map("never", "service", False)
    said = map_outcome(unwanted, plan_baseline(unwanted, False, False), False, True)
    assert said.reason == "not recorded: affected.record_map = never"
