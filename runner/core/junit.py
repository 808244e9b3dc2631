"""JUnit XML from pytest: per-test outcomes with node ids rebuilt from its attributes.


Ids are pytest node ids rebuilt from JUnit attributes. With ``junit_family=xunit1``
pytest writes a ``file`` attribute and the id is exact; run pytest with
``PYTEST_JUNIT_ARGS``. Without it the module path comes from the dotted classname, cut
before the first component that starts with a capital letter (a class), which is right
for the usual lower-case modules and CapWords classes. The same rule serves both runs,
so comparison by id stays consistent either way.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

from runner.models import (
    JUnitReport,
    Outcome,
    TestResult,
)

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


_NOT_PASSING: frozenset[Outcome] = frozenset({"failed", "error"})


_TYPE_AT_END = re.compile(r"^\S.*:\d+: ([A-Za-z_][\w.]*)$")
_TYPE_IN_MESSAGE = re.compile(r"^([A-Za-z_][\w.]*(?:Error|Exception|Exit|Interrupt|Warning))\b")


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
            tests[result.id] = worse(tests[result.id], result)
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
        message=trim(message, MESSAGE_CHARS),
        text=trim_tail(text, TEXT_CHARS),
        exception_type=exception_type(message, text) if outcome in _NOT_PASSING else None,
        duration_s=duration,
        line=failure_line(file or test_id.split("::")[0], case.get("line"), text),
    )
    return result, is_collection and outcome in ("error", "failed")


def failure_line(path: str, line: str | None, text: str) -> int | None:
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


def exception_type(message: str, text: str) -> str | None:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    if lines and (m := _TYPE_AT_END.match(lines[-1])):
        return m.group(1)
    m = _TYPE_IN_MESSAGE.match(message.strip().strip('"'))
    return m.group(1) if m else None


def worse(a: TestResult, b: TestResult) -> TestResult:
    rank = {"failed": 0, "error": 1, "skipped": 2, "xfailed": 3, "xpassed": 4, "passed": 5}
    return a if rank[a.outcome] <= rank[b.outcome] else b


def trim(text: str, limit: int) -> str:
    text = text.strip()
    return text if len(text) <= limit else text[: limit - 1] + "…"


def trim_tail(text: str, limit: int) -> str:
    # the end of a traceback names the error; keep it
    text = text.strip()
    return text if len(text) <= limit else "…" + text[-(limit - 1) :]
