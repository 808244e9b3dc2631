"""The runner's own record of a pytest run: the plugin's signed stream, checked and graded.

The plugin (runner/verify/harness) writes JSON lines, each carrying an HMAC chained over
the previous one under a key only it and the runner hold. Ids are pytest's node ids as
pytest reported them, never rebuilt from JUnit attributes; two collected tests never
share an id. Grading cross-checks the stream against the process: it must be complete
(a ``finish`` record), agree with the exit status, and report only collected ids.
"""

from __future__ import annotations

import hashlib
import hmac
import io
import json
from collections.abc import Iterable, Iterator
from typing import Any

from runner.core.grading import grade
from runner.core.junit import (
    MESSAGE_CHARS,
    TEXT_CHARS,
    exception_type,
    failure_line,
    trim,
    trim_tail,
    worse,
)
from runner.models import (
    CollectedTest,
    HarnessAlert,
    HarnessReport,
    JUnitReport,
    Outcome,
    SuiteRun,
    TestResult,
)

__all__ = ["grade_harness", "read_stream", "stable_id"]

# Alerts that mean the record itself was under attack: the run is not evidence.
TAMPERING = frozenset({"results-access"})


def read_stream(data: bytes, key: bytes) -> HarnessReport:
    """Check the chain of ``data`` under ``key`` and fold its reports per test."""
    try:
        return _fold(_verified(data, key))
    except _BrokenStream as exc:
        return HarnessReport(error=str(exc))


class _BrokenStream(Exception):
    """The stream is malformed, altered or out of order at a line."""


def _verified(data: bytes, key: bytes) -> Iterator[dict[str, Any]]:
    # One line at a time: a large suite's stream (60,000 tests: ~100 MB) is never held a
    # second time decoded, nor as a list of lines or of records.
    last = ""
    mac = hmac.new(key, digestmod=hashlib.sha256)
    for number, raw in enumerate(io.BytesIO(data), 1):
        line = raw.decode("utf-8", errors="replace").rstrip("\n")
        try:
            entry = json.loads(line)
            record, signature = entry["record"], entry["mac"]
            body = json.dumps(record, sort_keys=True, default=str)
        except (ValueError, KeyError, TypeError):
            raise _BrokenStream(f"the results stream is malformed at line {number}") from None
        expected = mac.copy()
        expected.update((last + body).encode())
        if not isinstance(signature, str) or not hmac.compare_digest(
            expected.hexdigest(), signature
        ):
            raise _BrokenStream(
                f"the results stream was altered: line {number} does not carry the "
                "harness's signature"
            )
        if record.get("seq") != number - 1:
            raise _BrokenStream(f"the results stream is out of order at line {number}")
        last = signature
        yield record


def _fold(records: Iterable[dict[str, Any]]) -> HarnessReport:
    report = HarnessReport()
    phases: dict[str, list[dict[str, Any]]] = {}
    order: list[str] = []
    occurrences: dict[str, int] = {}
    for record in records:
        kind = record.get("kind")
        if kind == "start":
            report.rootdir, report.inifile = record.get("rootdir"), record.get("inifile")
        elif kind == "collected":
            report.collected = _collected(record.get("items", []))
        elif kind == "collect_error":
            report.collection_errors.append(_collect_error(record))
        elif kind == "report":
            test_id = stable_id(str(record.get("nodeid", "")))
            if record.get("when") == "setup":
                # A node id pytest ran twice is two tests: the second gets its own id.
                occurrences[test_id] = occurrences.get(test_id, 0) + 1
            n = occurrences.get(test_id, 1)
            key = test_id if n == 1 else f"{test_id} (#{n})"
            if key not in phases:
                phases[key] = []
                order.append(key)
            phases[key].append(record)
        elif kind == "alert":
            report.alerts.append(
                HarnessAlert(
                    what=str(record.get("what", "")),
                    detail=str(record.get("detail") or record.get("module") or ""),
                    file=str(record.get("file", "")),
                )
            )
        elif kind == "lines":
            _add_lines(report, stable_id(str(record.get("nodeid", ""))), record.get("files"))
        elif kind == "finish":
            report.finished = True
            report.exitstatus = int(record.get("exitstatus", -1))
    report.tests = [_test(test_id, phases[test_id]) for test_id in order]
    return report


def _add_lines(report: HarnessReport, test_id: str, files: object) -> None:
    """Merge one ``lines`` record (file -> executed line numbers) into the test's."""
    if not isinstance(files, dict):
        return
    mine = report.lines.setdefault(test_id, {})
    for path, numbers in files.items():
        if isinstance(numbers, list):
            merged = set(mine.get(str(path), [])) | {n for n in numbers if isinstance(n, int)}
            mine[str(path)] = sorted(merged)


def stable_id(nodeid: str) -> str:
    """A node id as every pytest since 4 spells it: pytest 3 put a ``()`` instance segment
    between a class and its methods (``Cls::()::test``), which would make a test absent
    from a run of another era."""
    return nodeid.replace("::()::", "::")


def _collected(items: list[Any]) -> list[CollectedTest]:
    out: list[CollectedTest] = []
    seen: dict[str, int] = {}
    for item in items:
        test_id, function, position = stable_id(str(item[0])), str(item[1]), int(item[2])
        seen[test_id] = seen.get(test_id, 0) + 1
        if seen[test_id] > 1:
            # the same naming as the reports: never two collected tests under one id
            test_id = f"{test_id} (#{seen[test_id]})"
        out.append(CollectedTest(id=test_id, function=function, position=position))
    return out


def _collect_error(record: dict[str, Any]) -> TestResult:
    text = str(record.get("longrepr", ""))
    crash = record.get("crash") or {}
    lines = text.strip().splitlines()
    message = str(crash.get("message", "")) or (lines[-1] if lines else "")
    return TestResult(
        id=str(record.get("nodeid") or "<session>"),
        outcome="error",
        message=trim(message, MESSAGE_CHARS),
        text=trim_tail(text, TEXT_CHARS),
        exception_type=exception_type(message, text),
        phase="collect",
    )


def _test(test_id: str, records: list[dict[str, Any]]) -> TestResult:
    results = [_phase(test_id, r) for r in records]
    result = results[0]
    for other in results[1:]:
        result = worse(result, other)
    return result.model_copy(update={"duration_s": sum(r.duration_s for r in results)})


def _phase(test_id: str, record: dict[str, Any]) -> TestResult:
    when, outcome, xfail = record.get("when"), record.get("outcome"), record.get("wasxfail")
    verdict: Outcome
    if outcome == "failed":
        verdict = "failed" if when == "call" else "error"
    elif outcome == "skipped":
        verdict = "xfailed" if xfail else "skipped"
    else:
        verdict = "xpassed" if xfail and when == "call" else "passed"
    text = str(record.get("longrepr", ""))
    crash = record.get("crash") or {}
    message = str(crash.get("message", "")) if crash else (text if verdict != "failed" else "")
    location = record.get("location") or ["", None]
    line = location[1] if isinstance(location[1], int) else None
    broken = verdict in ("failed", "error")
    raised = record.get("exc")
    return TestResult(
        id=test_id,
        outcome=verdict,
        message=trim(message, MESSAGE_CHARS) if verdict != "passed" else "",
        text=trim_tail(text, TEXT_CHARS) if verdict in ("failed", "error") else "",
        # the plugin names what the phase raised; the text is the fallback for old records
        exception_type=(str(raised) if raised else exception_type(message, text))
        if broken
        else None,
        phase=when if broken and when in ("setup", "call", "teardown") else None,
        assertion=bool(record["assertion"])
        if broken and isinstance(record.get("assertion"), bool)
        else None,
        duration_s=float(record.get("duration", 0.0) or 0.0),
        line=failure_line(str(location[0]), str(line) if line is not None else None, text),
    )


def grade_harness(
    report: HarnessReport | None,
    exit_code: int | None,
    *,
    timed_out: bool = False,
    oom_killed: bool = False,
) -> SuiteRun:
    """Grade one run from the plugin's stream (None: none written), cross-checked."""
    junit = None
    if report is not None:
        junit = JUnitReport(
            error=report.error, tests=report.tests, collection_errors=report.collection_errors
        )
    run = grade(junit, exit_code, timed_out=timed_out, oom_killed=oom_killed)
    if report is None:
        return run.model_copy(
            update={
                "invalid_reason": run.invalid_reason
                if timed_out or oom_killed
                else f"the harness recorded nothing (exit code {exit_code}): pytest did not "
                "start, or its plugin was not loaded",
            }
        )
    update: dict[str, Any] = {
        "rootdir": report.rootdir,
        "inifile": report.inifile,
        "alerts": report.alerts,
        "positions": {c.id: f"{c.function}#{c.position}" for c in report.collected},
        "lines": report.lines,
    }
    mismatch = None if timed_out or oom_killed else _mismatch(report, exit_code)
    if report.error is not None or mismatch is not None:
        # A stream that fails its own checks was forged, cut short or reached: that says
        # more than any count in it ("no tests were collected" after a forged exit).
        reason = report.error or mismatch
        update |= {"valid": False, "invalid_reason": reason, "tampered": True}
    return run.model_copy(update=update)


def _mismatch(report: HarnessReport, exit_code: int | None) -> str | None:
    """Why the stream disagrees with the process, or None when it agrees."""
    tampering = [a for a in report.alerts if a.what in TAMPERING]
    if tampering:
        first = tampering[0]
        return f"the code under test tried to reach the harness's results ({first.detail})"
    if not report.finished:
        return (
            f"the run ended (exit code {exit_code}) before pytest finished its session: "
            "the harness's record has no end"
        )
    if report.exitstatus != exit_code:
        return (
            f"pytest reported exit status {report.exitstatus} but the process exited "
            f"{exit_code}: the run is inconsistent"
        )
    collected = {c.id for c in report.collected}
    strays = [t.id for t in report.tests if t.id not in collected]
    if strays:
        return f"results for tests pytest never collected: {', '.join(strays[:3])}"
    if exit_code == 0:
        ran = {t.id for t in report.tests}
        missing = [c for c in sorted(collected) if c not in ran]
        if missing:
            return f"exit code 0 but collected tests never ran: {', '.join(missing[:3])}"
    return None
