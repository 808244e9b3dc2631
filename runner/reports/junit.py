"""``--junit DIR``: JUnit XML of the baseline and candidate runs, for CI test reporters.

The job folder keeps each run's own JUnit file; it is copied when it is there and reads
as JUnit. Otherwise (a baseline reused from the cache, a run that never happened) a file
is rebuilt from the verdict: only the tests the verdict names, marked as such.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path

from runner.core.suite import parse_junit
from runner.models import Verdict

JUNIT_MAX_BYTES = 50 * 2**20
SIDES = ("baseline", "candidate")
# Characters XML 1.0 cannot hold at all, even escaped (most C0 controls, surrogates,
# U+FFFE/U+FFFF): a test id or message with one would make the whole file unreadable.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def xml_text(value: str) -> str:
    """The value with characters XML cannot carry written as ``\\xNN`` / ``\\uNNNN``."""

    def show(match: re.Match[str]) -> str:
        code = ord(match.group())
        return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"

    return _NOT_XML.sub(show, value)


def write_junit(verdict: Verdict, job_folder: Path | None, out_dir: Path) -> list[Path]:
    """Write ``baseline.xml`` and ``candidate.xml`` into out_dir; return their paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for side in SIDES:
        target = out_dir / f"{side}.xml"
        kept = _kept(job_folder / "junit" / f"{side}.xml") if job_folder else None
        target.write_bytes(kept if kept is not None else rebuild(verdict, side))
        written.append(target)
    return written


def _kept(path: Path) -> bytes | None:
    try:
        with path.open("rb") as handle:
            data = handle.read(JUNIT_MAX_BYTES + 1)
    except OSError:
        return None
    if len(data) > JUNIT_MAX_BYTES or parse_junit(data).error is not None:
        return None
    return data


def _case(suite: ET.Element, test_id: str, failed: bool, message: str) -> None:
    parts = xml_text(test_id).split("::")
    path, name = parts[0], parts[-1]
    module = path.removesuffix(".py").replace("/", ".")
    classname = ".".join([module, *parts[1:-1]])
    case = ET.SubElement(suite, "testcase", classname=classname, name=name, file=path)
    if failed:
        ET.SubElement(case, "failure", message=message)


def rebuild(verdict: Verdict, side: str) -> bytes:
    """A JUnit file of one side with the tests the verdict names (its counts as properties)."""
    t = verdict.tests
    before = side == "baseline"
    rows: list[tuple[str, bool, str]] = []
    for test_id in t.fail_to_pass:
        rows.append((test_id, before, "fails without the patch"))
    for test_id in t.pass_to_fail:
        rows.append((test_id, not before, "fails with the patch"))
    for test_id in t.still_failing:
        rows.append((test_id, True, "fails with and without the patch"))
    counts = t.baseline if before else t.candidate
    root = ET.Element("testsuites", name="fixrunner")
    suite = ET.SubElement(
        root,
        "testsuite",
        name=f"fixrunner {side}",
        tests=str(len(rows)),
        failures=str(sum(1 for _, failed, _ in rows if failed)),
        errors="0",
        skipped="0",
    )
    props = ET.SubElement(suite, "properties")
    note = "rebuilt from the verdict: only the tests that decided it are listed"
    for key, value in (
        ("fixrunner.source", note),
        ("fixrunner.job_id", verdict.job_id),
        *((f"fixrunner.counts.{k}", str(v)) for k, v in counts.model_dump().items()),
    ):
        ET.SubElement(props, "property", name=key, value=xml_text(value))
    for test_id, failed, message in rows:
        _case(suite, test_id, failed, message)
    data: bytes = ET.tostring(root, encoding="utf-8", xml_declaration=True)
    return data
