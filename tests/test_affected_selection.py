"""The affected-tests selection as a pure function: real diffs parsed, a map as recorded.

The map below is what the harness records for a two-module project (see
tests/test_affected.py for the same rules end to end in the sandbox).
"""

from __future__ import annotations

import difflib

from runner.core.affected import TestMap, select_tests, touched_lines
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
