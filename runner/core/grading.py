"""Grading one pytest run: per-test outcomes plus whether the run can be trusted."""

from __future__ import annotations

from collections.abc import Iterable

from runner.models import (
    JUnitReport,
    RunCounts,
    SuiteRun,
    TestResult,
)

# pytest's exit codes
EXIT_OK, EXIT_TESTS_FAILED, EXIT_INTERRUPTED, EXIT_INTERNAL, EXIT_USAGE, EXIT_NO_TESTS = range(6)


def grade(
    report: JUnitReport | None,
    exit_code: int | None,
    *,
    timed_out: bool = False,
    oom_killed: bool = False,
) -> SuiteRun:
    """Grade one pytest run from its JUnit report (None: no file) and exit status."""
    tests = {t.id: t for t in report.tests} if report else {}
    collection = list(report.collection_errors) if report else []
    counts = _counts(tests.values())
    reason = _invalid_reason(report, exit_code, timed_out, oom_killed, counts, collection)
    return SuiteRun(
        valid=reason is None,
        invalid_reason=reason,
        exit_code=exit_code,
        timed_out=timed_out,
        oom_killed=oom_killed,
        results_found=report is not None and report.error is None,
        tests=tests,
        collection_errors=collection,
        counts=counts,
    )


def _invalid_reason(
    report: JUnitReport | None,
    exit_code: int | None,
    timed_out: bool,
    oom_killed: bool,
    counts: RunCounts,
    collection: list[TestResult],
) -> str | None:
    if timed_out:
        return "the test run timed out"
    if oom_killed:
        return "the test run was killed by the memory limit"
    if report is None:
        return f"the test run produced no results file (exit code {exit_code})"
    if report.error:
        return report.error
    if exit_code is None:
        return "the test process did not exit on its own"
    if exit_code == EXIT_NO_TESTS or (counts.total == 0 and not collection):
        return "no tests were collected"
    if exit_code == EXIT_INTERRUPTED:
        return "pytest was interrupted (exit code 2)"
    if exit_code == EXIT_INTERNAL:
        return "pytest hit an internal error (exit code 3)"
    if exit_code == EXIT_USAGE:
        return "pytest was called wrongly (exit code 4)"
    broken = counts.failed + counts.error + len(collection)
    if exit_code == EXIT_OK and broken:
        return f"exit code 0 next to {broken} failing results: the report is inconsistent"
    if exit_code != EXIT_OK and not broken:
        return (
            f"exit code {exit_code} next to a report with no failures: the report is inconsistent"
        )
    if exit_code not in (EXIT_OK, EXIT_TESTS_FAILED):
        return f"pytest exited with unexpected code {exit_code}"
    return None


def _counts(results: Iterable[TestResult]) -> RunCounts:
    counts = RunCounts()
    for r in results:
        counts.total += 1
        if r.outcome in ("passed", "xpassed"):
            counts.passed += 1
        elif r.outcome == "failed":
            counts.failed += 1
        elif r.outcome == "error":
            counts.error += 1
        else:
            counts.skipped += 1
    return counts
