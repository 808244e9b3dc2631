"""Test and lint evidence, one import away: junit, grading, comparison, lint.

Pure functions on plain data. Outcomes come from the JUnit file and pytest's exit code,
never from stdout: a candidate can print anything.

Test ids are pytest node ids rebuilt from JUnit attributes. With ``junit_family=xunit1``
pytest writes a ``file`` attribute and the id is exact; run pytest with
``PYTEST_JUNIT_ARGS``. Without it the module path comes from the dotted classname, cut
before the first component that starts with a capital letter (a class), which is right
for the usual lower-case modules and CapWords classes. The same rule serves both runs,
so comparison by id stays consistent either way.
"""

from runner.core.comparison import apply_reruns, compare, rerun_selection, test_summary
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
    "compare",
    "grade",
    "is_blocking",
    "lint_diff",
    "parse_flake8",
    "parse_junit",
    "rerun_selection",
    "test_summary",
]
