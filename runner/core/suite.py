"""Test evidence: JUnit parsing, run grading, comparison, re-runs (flake8: runner.core.lint).

Pure functions on plain data. Outcomes come from the JUnit file and pytest's exit code,
never from stdout: a candidate can print anything.

Test ids are pytest node ids rebuilt from JUnit attributes. With ``junit_family=xunit1``
pytest writes a ``file`` attribute and the id is exact; run pytest with
``PYTEST_JUNIT_ARGS``. Without it the module path comes from the dotted classname, cut
before the first component that starts with a capital letter (a class), which is right
for the usual lower-case modules and CapWords classes. The same rule serves both runs,
so comparison by id stays consistent either way.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Sequence

from runner.core.lint import DEFAULT_BLOCKING, FLAKE8_FORMAT, is_blocking, lint_diff, parse_flake8
from runner.models import (
    Comparison,
    JUnitReport,
    Outcome,
    RunCounts,
    SuiteRun,
    TestResult,
    TestSummary,
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

# Arguments the runner should pass to pytest so the JUnit file is exact and complete.
# The cache lives in the sandbox's fresh /tmp, so no run sees another's: disabling the
# cacheprovider instead breaks plugins that need config.cache (werkzeug's
# pytest-xprocess dev-server fixture) and addopts such as --ff or --lf.
PYTEST_JUNIT_ARGS: tuple[str, ...] = (
    "-o",
    "junit_family=xunit1",
    "-o",
    "cache_dir=/tmp/.pytest_cache",
    "--continue-on-collection-errors",
)

MESSAGE_CHARS = 500
TEXT_CHARS = 4000

# pytest's exit codes
EXIT_OK, EXIT_TESTS_FAILED, EXIT_INTERRUPTED, EXIT_INTERNAL, EXIT_USAGE, EXIT_NO_TESTS = range(6)

_NOT_PASSING: frozenset[Outcome] = frozenset({"failed", "error"})
_PASSING: frozenset[Outcome] = frozenset({"passed", "xpassed", "xfailed"})
_SKIPPED: frozenset[Outcome] = frozenset({"skipped"})
_TYPE_AT_END = re.compile(r"^\S.*:\d+: ([A-Za-z_][\w.]*)$")
_TYPE_IN_MESSAGE = re.compile(r"^([A-Za-z_][\w.]*(?:Error|Exception|Exit|Interrupt|Warning))\b")


# --------------------------------------------------------------------------- junit


def parse_junit(data: bytes) -> JUnitReport:
    """Parse pytest's JUnit XML; an unreadable file gives a report with ``error`` set."""
    # pytest never writes a DTD; refusing one rules out entity-expansion bombs
    if b"<!DOCTYPE" in data or b"<!ENTITY" in data:
        return JUnitReport(error="the JUnit file declares a DTD or entities; refused")
    try:
        root = ET.fromstring(data)
    except ET.ParseError as exc:
        return JUnitReport(error=f"malformed JUnit XML: {exc}")
    if root.tag not in ("testsuites", "testsuite"):
        return JUnitReport(error=f"not a JUnit file: root element is <{root.tag}>")
    tests: dict[str, TestResult] = {}
    collection: list[TestResult] = []
    for case in root.iter("testcase"):
        result, is_collection = _testcase(case)
        if is_collection:
            collection.append(result)
        elif result.id in tests:
            # pytest reports a teardown error as a second entry for the same id
            tests[result.id] = _worse(tests[result.id], result)
        else:
            tests[result.id] = result
    return JUnitReport(tests=list(tests.values()), collection_errors=collection)


def _testcase(case: ET.Element) -> tuple[TestResult, bool]:
    classname = case.get("classname", "")
    name = case.get("name", "")
    file = case.get("file")
    error, failure = case.find("error"), case.find("failure")
    skipped = case.find("skipped")
    is_collection = not classname or (
        error is not None and error.get("message") == "collection failure"
    )
    if is_collection:
        test_id = file or _module_to_path(name or classname)
    else:
        test_id = _node_id(classname, name, file)
    outcome: Outcome = "passed"
    detail: ET.Element | None = None
    if failure is not None:
        outcome, detail = "failed", failure
    elif error is not None:
        outcome, detail = "error", error
    elif skipped is not None:
        detail = skipped
        if skipped.get("type") == "pytest.xfail":
            outcome = "xfailed"
        elif skipped.get("message", "").startswith("xfail-marked test passes unexpectedly"):
            outcome = "xpassed"
        else:
            outcome = "skipped"
    message = (detail.get("message", "") if detail is not None else "") or ""
    text = (detail.text or "") if detail is not None else ""
    try:
        duration = float(case.get("time", "0") or 0)
    except ValueError:
        duration = 0.0
    result = TestResult(
        id=test_id,
        outcome=outcome,
        message=_trim(message, MESSAGE_CHARS),
        text=_trim_tail(text, TEXT_CHARS),
        exception_type=_exception_type(message, text) if outcome in _NOT_PASSING else None,
        duration_s=duration,
        line=_test_line(file or test_id.split("::")[0], case.get("line"), text),
    )
    return result, is_collection and outcome in ("error", "failed")


def _test_line(path: str, line: str | None, text: str) -> int | None:
    # The deepest traceback frame in the test's own file is the line a reviewer wants;
    # pytest's "line" attribute is the 0-based line of the test's definition.
    frames = re.findall(rf"^{re.escape(path)}:(\d+):", text, flags=re.MULTILINE)
    if frames:
        return int(frames[-1])
    try:
        return int(line) + 1 if line is not None else None
    except ValueError:
        return None


def _node_id(classname: str, name: str, file: str | None) -> str:
    parts = classname.split(".")
    if file:
        module = re.sub(r"\.py$", "", file).replace("/", ".")
        classes = classname[len(module) + 1 :].split(".") if classname.startswith(module) else []
        path = file
    else:
        cut = next((i for i, p in enumerate(parts) if p[:1].isupper()), len(parts))
        path, classes = "/".join(parts[:cut]) + ".py", parts[cut:]
    return "::".join([path, *[c for c in classes if c], name])


def _module_to_path(dotted: str) -> str:
    return dotted.replace(".", "/") + ".py" if dotted else "<unknown>"


def _exception_type(message: str, text: str) -> str | None:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    if lines and (m := _TYPE_AT_END.match(lines[-1])):
        return m.group(1)
    m = _TYPE_IN_MESSAGE.match(message.strip().strip('"'))
    return m.group(1) if m else None


def _worse(a: TestResult, b: TestResult) -> TestResult:
    rank = {"failed": 0, "error": 1, "skipped": 2, "xfailed": 3, "xpassed": 4, "passed": 5}
    return a if rank[a.outcome] <= rank[b.outcome] else b


def _trim(text: str, limit: int) -> str:
    text = text.strip()
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _trim_tail(text: str, limit: int) -> str:
    # the end of a traceback names the error; keep it
    text = text.strip()
    return text if len(text) <= limit else "…" + text[-(limit - 1) :]


# --------------------------------------------------------------------------- grading


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


# --------------------------------------------------------------------------- comparison


def _state(run: SuiteRun, test_id: str) -> str:
    """passing | skipped | failing | absent (never collected, and no collection error)."""
    result = run.tests.get(test_id)
    if result is None:
        module = test_id.split("::", 1)[0]
        # a test whose module failed to collect did run, and failed
        broken = any(c.id == module for c in run.collection_errors)
        return "failing" if broken else "absent"
    if result.outcome in _PASSING:
        return "passing"
    if result.outcome in _SKIPPED:
        return "skipped"
    return "failing"


def compare(baseline: SuiteRun, candidate: SuiteRun) -> Comparison:
    """Compare two runs test by test.

    A baseline test missing from the candidate counts as failed there (and is listed in
    ``removed``). Skipped is never a pass: failing→skipped goes to ``fail_to_skip`` (not
    a fix, not a regression), passing→skipped is ``pass_to_fail``. A test absent from
    the baseline counts as failing there only when its module failed to collect (the
    usual "new test imports the new function" case); otherwise it is only ``added``.
    A test skipped on the baseline proves nothing: skipped→passing is in no list,
    skipped→failing is ``still_failing``, and so is a module that fails to collect in
    both runs (by its module id). An invalid candidate run fixes nothing: its
    would-be ``fail_to_pass`` tests are ``still_failing``.
    """
    out: dict[str, list[str]] = {k: [] for k in Comparison.model_fields if k != "flaky"}
    for test_id in sorted(set(baseline.tests) | set(candidate.tests)):
        before, after = _state(baseline, test_id), _state(candidate, test_id)
        if test_id not in baseline.tests:
            out["added"].append(test_id)
        if test_id not in candidate.tests:
            out["removed"].append(test_id)
            after = "failing" if before != "absent" else after
        key = _transition(before, after)
        if key:
            out[key].append(test_id)
        if key in _CHANGES:
            out["changed"].append(test_id)
    out["new_collection_errors"] = sorted(
        {c.id for c in candidate.collection_errors} - {c.id for c in baseline.collection_errors}
    )
    # A module that fails to collect in both trees is a pre-existing failure: name it,
    # or its tests vanish from the verdict (ran in neither tree, listed nowhere).
    kept = {c.id for c in baseline.collection_errors} & {c.id for c in candidate.collection_errors}
    out["still_failing"] = sorted({*out["still_failing"], *kept})
    if not candidate.valid:
        # An untrustworthy run (forged report, killed, timed out) proves no test passes:
        # what it claims as fixed stays failing.
        fixed = set(out["fail_to_pass"])
        out["still_failing"] = sorted({*out["still_failing"], *fixed})
        out["changed"] = [t for t in out["changed"] if t not in fixed]
        out["fail_to_pass"] = []
    return Comparison(**out)


_CHANGES = ("fail_to_pass", "pass_to_fail", "fail_to_skip")


def _transition(before: str, after: str) -> str | None:
    if before == "passing":
        return "pass_to_pass" if after == "passing" else "pass_to_fail"
    if before == "skipped":
        return "still_failing" if after == "failing" else None
    if before == "absent":
        return "still_failing" if after == "failing" else None
    if after == "passing":
        return "fail_to_pass"
    if after == "skipped":
        return "fail_to_skip"
    return "still_failing"


def rerun_selection(comparison: Comparison) -> list[str]:
    """What to re-run: a regression's whole module (its order and neighbours), a fix's id.

    A test broken by state another test leaves behind passes when run alone; in its
    module, in the suite's order, it fails again.
    """
    modules = {t.split("::", 1)[0] for t in comparison.changed if t not in comparison.fail_to_pass}
    ids = [t for t in comparison.changed if t.split("::", 1)[0] not in modules]
    return sorted(modules | set(ids))


def apply_reruns(
    comparison: Comparison,
    baseline_reruns: Sequence[SuiteRun],
    candidate_reruns: Sequence[SuiteRun],
) -> Comparison:
    """Move changed tests whose outcome flips under the same conditions into ``flaky``.

    A re-run of a tree that disagrees with the first run on whether a changed test
    passed makes it flaky, with one exception: a regression that passes in every
    candidate re-run (of its whole module, see ``rerun_selection``) failed only in the
    suite's context. It stays a regression, ``order_dependent``, unless the baseline's
    re-runs show the same instability.
    """
    flaky = set(comparison.flaky)
    order_dependent = set()
    for test_id in comparison.changed:
        passed_before = test_id in comparison.pass_to_fail
        passed_after = test_id in comparison.fail_to_pass
        if any((_state(r, test_id) == "passing") != passed_before for r in baseline_reruns):
            flaky.add(test_id)
            continue
        after = [_state(r, test_id) == "passing" for r in candidate_reruns]
        if passed_before and after and all(after):
            order_dependent.add(test_id)
        elif any(state != passed_after for state in after):
            flaky.add(test_id)
    data = comparison.model_dump()
    for key in _CHANGES:
        data[key] = [t for t in data[key] if t not in flaky]
    data["flaky"] = sorted(flaky)
    data["order_dependent"] = sorted(order_dependent)
    return Comparison(**data)


def test_summary(
    baseline: SuiteRun | None, candidate: SuiteRun | None, comparison: Comparison | None
) -> TestSummary:
    """The verdict's ``tests`` section from the graded runs and the (re-run) comparison."""
    comp = comparison or Comparison()
    return TestSummary(
        baseline=baseline.counts if baseline else RunCounts(),
        candidate=candidate.counts if candidate else RunCounts(),
        fail_to_pass=comp.fail_to_pass,
        pass_to_fail=comp.pass_to_fail,
        # failing→skipped is neither fixed nor broken: it stays with the unfixed tests
        still_failing=sorted({*comp.still_failing, *comp.fail_to_skip}),
        flaky=comp.flaky,
        added=comp.added,
        removed=comp.removed,
        pass_to_pass=len(comp.pass_to_pass),
    )


test_summary.__test__ = False  # type: ignore[attr-defined]  # not a pytest test
