"""Test and lint evidence, one import away: junit, grading, comparison, lint.

A facade over the modules that own each part; see ``runner.core.junit`` for how ids
are read and ``runner.core.harnessresults`` for the runner's own record of outcomes.
"""

from runner.core.comparison import (
    apply_reruns,
    apply_suite_repeat,
    compare,
    repeat_reason,
    rerun_selection,
    test_summary,
)
from runner.core.grading import grade
from runner.core.junit import PYTEST_JUNIT_ARGS, parse_junit
from runner.core.lint import (
    DEFAULT_BLOCKING,
    FLAKE8_FORMAT,
    is_blocking,
    lint_diff,
    parse_flake8,
)

__all__ = [
    "DEFAULT_BLOCKING",
    "FLAKE8_FORMAT",
    "PYTEST_JUNIT_ARGS",
    "apply_reruns",
    "apply_suite_repeat",
    "compare",
    "grade",
    "is_blocking",
    "lint_diff",
    "parse_flake8",
    "parse_junit",
    "repeat_reason",
    "rerun_selection",
    "test_summary",
]
