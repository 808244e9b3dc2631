"""When a fix attempt counts: a fail-to-pass test that fails on the base with the reported error.

The error may reach the test directly, or from a worker thread (pytest's unhandled-thread
report, or an assertion naming the captured error).
"""

from __future__ import annotations

import re

from runner.models import SuiteRun, TestResult, Verdict

NOT_REPRODUCED = "test does not reproduce the reported error"

_THREAD_REPORTS = (
    "PytestUnhandledThreadExceptionWarning",
    "Exception in thread",
    "Task exception was never retrieved",
)


def _names_error(test: TestResult, short_type: str) -> bool:
    if test.exception_type and test.exception_type.rsplit(".", 1)[-1] == short_type:
        return True
    # pytest's "E   Type: message" lines name every exception of a chain.
    prefixes = (f"E   {short_type}:", f"E       {short_type}:")
    if any(
        line.startswith(prefixes) or f".{short_type}: " in line
        for line in test.text.splitlines()
        if line.startswith("E ")
    ):
        return True
    return _names_error_from_thread(test, short_type)


def _names_error_from_thread(test: TestResult, short_type: str) -> bool:
    """An error raised in a thread or task never reaches the test as itself.

    It shows as pytest's report of an unhandled thread exception, or as an assertion
    about the captured error (``assert errors == []`` prints ``[RuntimeError('…')]``).
    """
    named = re.compile(rf"(?<![\w.]){re.escape(short_type)}(?:\(|: )")
    thread = any(marker in test.text for marker in _THREAD_REPORTS)
    assertion = (test.exception_type or "").endswith("AssertionError") or (
        test.message.lstrip().startswith("assert ")
    )
    failure_lines = [
        test.message,
        *(line for line in test.text.splitlines() if line.startswith("E ")),
    ]
    if assertion and any(named.search(line) for line in failure_lines):
        return True
    return thread and named.search(test.text) is not None


def reproduces(verdict: Verdict, baseline: SuiteRun | None, short_type: str) -> str | None:
    """None when a fail-to-pass test fails on the base with the reported type, else why not."""
    ids = verdict.tests.fail_to_pass
    if not ids:
        return f"{NOT_REPRODUCED}: no test fails before the fix and passes after it"
    if baseline is None:
        return f"{NOT_REPRODUCED}: the baseline's test results are missing"
    whys = []
    for test_id in ids:
        test = baseline.tests.get(test_id)
        if test is not None and _names_error(test, short_type):
            return None
        first = test.message.strip().splitlines()[0][:120] if test and test.message.strip() else ""
        if first.startswith("assert "):  # pytest's message for a failed assert statement
            first = f"AssertionError ({first})"
        got = (test.exception_type if test else None) or first or "an error that names no type"
        whys.append(f"{test_id} fails on the current code with {got}")
    return f"{NOT_REPRODUCED} ({short_type}): " + "; ".join(whys)
