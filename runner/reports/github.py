"""The ``github`` renderer: step outputs, a Markdown job summary and workflow annotations.

GitHub reads three channels: ``$GITHUB_OUTPUT`` (``name=value`` lines, or a heredoc with a
delimiter for multi-line values), ``$GITHUB_STEP_SUMMARY`` (Markdown, appended) and
workflow commands (``::error file=…::msg``) on stdout. Test ids, messages and logs come
from the candidate's run, so every value is escaped for the channel it goes to.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterable, Mapping
from pathlib import Path

from pydantic import Field

from runner.core.suite import parse_junit
from runner.models import Model, TestResult, Verdict
from runner.reports.text import printable

JUNIT_MAX_BYTES = 50 * 2**20
LOG_TAIL_LINES = 60
LOG_TAIL_CHARS = 6000
_SHOWN = 50
_FREE_TEXT = frozenset({"summary"})
_BADGE = {"verified": "✅ **VERIFIED**", "rejected": "❌ **REJECTED**", "error": "⚠️ **ERROR**"}


class Annotation(Model):
    """One workflow-command annotation (``::error``, ``::warning`` or ``::notice``)."""

    level: str = Field(description="error, warning or notice.")
    message: str = Field(description="The annotation's text (may span lines).")
    title: str | None = Field(default=None, description="Shown above the message.")
    file: str | None = Field(default=None, description="Repository-relative path.")
    line: int | None = Field(default=None, description="1-based line in file.")
    col: int | None = Field(default=None, description="1-based column in line.")

    def command(self) -> str:
        """The workflow command line, escaped as GitHub's runner unescapes it."""
        props = {"file": self.file, "line": self.line, "col": self.col, "title": self.title}
        return workflow_command(self.level, self.message, props)


# ---------------------------------------------------------------------------- escaping


def escape_data(value: str) -> str:
    """Escape a workflow command's message: ``%``, CR and LF."""
    return value.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def escape_property(value: str) -> str:
    """Escape a workflow command's property value: as data, plus ``:`` and ``,``."""
    return escape_data(value).replace(":", "%3A").replace(",", "%2C")


def workflow_command(name: str, message: str, props: Mapping[str, object] | None = None) -> str:
    """``::name k=v,k=v::message`` with every part escaped; None-valued props are left out."""
    shown = {k: v for k, v in (props or {}).items() if v is not None and v != ""}
    params = ",".join(f"{k}={escape_property(str(v))}" for k, v in shown.items())
    return f"::{name}{' ' + params if params else ''}::{escape_data(message)}"


def output_entry(name: str, value: str, *, heredoc: bool = False) -> str:
    """One ``$GITHUB_OUTPUT`` entry: ``name=value``, or a heredoc (multi-line or asked for)."""
    if not heredoc and "\n" not in value and "\r" not in value:
        return f"{name}={value}\n"
    # A random delimiter that the value does not contain: the value cannot end the
    # heredoc early and inject further outputs.
    while True:
        delimiter = f"ghadelimiter_{secrets.token_hex(16)}"
        if delimiter not in value:
            break
    return f"{name}<<{delimiter}\n{value}\n{delimiter}\n"


# ---------------------------------------------------------------------------- evidence


def candidate_tests(job_folder: Path | None) -> dict[str, TestResult]:
    """The candidate run's tests from the job folder's JUnit copy (empty when there is none)."""
    if job_folder is None:
        return {}
    path = job_folder / "junit" / "candidate.xml"
    try:
        with path.open("rb") as handle:
            data = handle.read(JUNIT_MAX_BYTES + 1)
    except OSError:
        return {}
    if len(data) > JUNIT_MAX_BYTES:
        return {}
    return {t.id: t for t in parse_junit(data).tests}


def workflow_annotations(verdict: Verdict, tests: Mapping[str, TestResult]) -> list[Annotation]:
    """Annotations for new lint findings, regressions, flaky tests and the verdict itself."""
    out: list[Annotation] = []
    for f in verdict.lint.new:
        out.append(
            Annotation(
                level="error" if f.blocking else "warning",
                title=f"flake8 {f.code}" + ("" if f.blocking else " (advisory)"),
                message=f"{f.code} {f.message} (new with this patch)",
                file=_repo_path(f.path),
                line=f.line,
                col=f.col or None,
            )
        )
    for test_id in verdict.tests.pass_to_fail:
        result = tests.get(test_id)
        why = f": {result.message}" if result is not None and result.message else ""
        out.append(
            Annotation(
                level="error",
                title=f"Regression: {test_id}",
                message=f"{test_id} passed without the patch and fails with it{why}",
                file=_test_file(test_id),
                line=result.line if result is not None else None,
            )
        )
    for test_id in verdict.tests.flaky:
        result = tests.get(test_id)
        out.append(
            Annotation(
                level="warning",
                title=f"Flaky test: {test_id}",
                message=f"{test_id} changed outcome across re-runs; it was not counted",
                file=_test_file(test_id),
                line=result.line if result is not None else None,
            )
        )
    level = {"verified": "notice", "rejected": "error", "error": "error"}[verdict.status]
    out.append(
        Annotation(level=level, title=f"fixrunner: {verdict.status}", message=verdict.summary)
    )
    return out


def _test_file(test_id: str) -> str | None:
    path = test_id.split("::", 1)[0]
    return _repo_path(path) if path.endswith(".py") else None


def _repo_path(path: str) -> str:
    # flake8 may print "./app/x.py"; GitHub wants the path from the repository root.
    return path[2:] if path.startswith("./") else path


# ---------------------------------------------------------------------------- summary


def _code(text: str, table: bool = False) -> str:
    """A Markdown code span: one line, fenced past its backticks; pipes escaped in a table."""
    text = " ".join(printable(text).split())
    if table:
        # GFM splits table cells before code spans; "\\|" is its escape for a pipe there
        text = text.replace("|", "\\|")
    if not text:
        return ""
    run = max((len(m) for m in re.findall(r"`+", text)), default=0)
    fence = "`" * (run + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}"


# Characters with an inline meaning in GitHub's Markdown (emphasis, links, code, tables,
# strikethrough, escapes); a backslash makes each literal.
_INLINE = re.compile(r"([\\`*_\[\]|~!])")
# What would open a block at the start of a line: heading, list item, quote, setext rule.
_BLOCK_START = re.compile(r"^(?:[#+=-]|\d+(?=[.)]))")


def _cell(text: str) -> str:
    """Plain text for Markdown: one line, no markup, no HTML, no table breaks."""
    text = " ".join(printable(text).split())
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    text = _INLINE.sub(r"\\\1", text)
    if match := _BLOCK_START.match(text):
        # "1." and "1)" stay a number: the escape goes on their delimiter
        at = match.end() if match.group()[0].isdigit() else 0
        text = f"{text[:at]}\\{text[at:]}"
    return text


def _id_list(title: str, ids: list[str]) -> list[str]:
    if not ids:
        return []
    lines = [f"**{title}** ({len(ids)})", ""]
    lines += [f"- {_code(i)}" for i in ids[:_SHOWN]]
    if len(ids) > _SHOWN:
        lines.append(f"- … and {len(ids) - _SHOWN} more (see the verdict JSON)")
    return [*lines, ""]


def _fenced(text: str) -> list[str]:
    run = max((len(m) for m in re.findall(r"`{3,}", text)), default=2)
    fence = "`" * (run + 1)
    return [f"{fence}text", text, fence]


_LIBRARY_FRAME = re.compile(r'^(\s*)File "[^"]*[/\\](?:site|dist)-packages[/\\]')


def drop_library_frames(text: str) -> str:
    """Traceback frames inside installed packages folded to one line: the code is the story."""
    out: list[str] = []
    lines = text.split("\n")
    i = 0
    while i < len(lines):
        match = _LIBRARY_FRAME.match(lines[i])
        if match is None:
            out.append(lines[i])
            i += 1
            continue
        indent, dropped = match.group(1), 0
        while i < len(lines) and (match := _LIBRARY_FRAME.match(lines[i])) is not None:
            dropped += 1
            i += 1
            # the frame's source line and its ^^^ markers are indented deeper than "File"
            while (
                i < len(lines)
                and lines[i].startswith(indent + " ")
                and not lines[i].lstrip().startswith('File "')
            ):
                i += 1
        out.append(f"{indent}… {dropped} frame(s) in installed packages")
    return "\n".join(out)


def _tail(text: str) -> str:
    lines = drop_library_frames(text.rstrip("\n")).splitlines()[-LOG_TAIL_LINES:]
    return printable("\n".join(lines)[-LOG_TAIL_CHARS:])


def render_summary(verdict: Verdict) -> str:
    """The Markdown job summary: badge, checks, tests, lint, repro, timings, log tails."""
    out = [f"## {_BADGE[verdict.status]} fixrunner", "", _cell(verdict.summary), ""]
    if verdict.checks:
        out += ["| check | result | detail |", "| --- | --- | --- |"]
        for check in verdict.checks:
            mark = "✅ pass" if check.passed else ("❌ fail" if check.required else "⚠️ advisory")
            out.append(f"| {_cell(check.name)} | {mark} | {_cell(check.detail)} |")
        out.append("")
    t = verdict.tests
    if t.baseline.total or t.candidate.total:
        out += [
            "| tests | passed | failed | error | skipped | total |",
            "| --- | --- | --- | --- | --- | --- |",
        ]
        for name, c in (("baseline", t.baseline), ("candidate", t.candidate)):
            out.append(
                f"| {name} | {c.passed} | {c.failed} | {c.error} | {c.skipped} | {c.total} |"
            )
        out.append("")
    out += _id_list("Fixed (fail → pass)", t.fail_to_pass)
    out += _id_list("Regressions (pass → fail)", t.pass_to_fail)
    out += _id_list("Still failing", t.still_failing)
    out += _id_list("Flaky (not counted)", t.flaky)
    out += _id_list("Not re-run (first outcome kept)", t.not_rerun)
    if t.suite_repeat is not None:
        out += [_cell(t.suite_repeat.line()), ""]
    if verdict.patch_coverage is not None:
        out += [_cell(verdict.patch_coverage.line()), ""]
    if verdict.lint.new:
        out += [
            f"**New lint findings** ({len(verdict.lint.new)})",
            "",
            "| file | line | code | message | blocking |",
            "| --- | --- | --- | --- | --- |",
        ]
        for f in verdict.lint.new[:_SHOWN]:
            out.append(
                f"| {_code(_repo_path(f.path), table=True)} | {f.line} | {_cell(f.code)} | "
                f"{_cell(f.message)} | {'yes' if f.blocking else 'no'} |"
            )
        out.append("")
    if verdict.repro:
        out += ["| repro command | baseline exit | candidate exit |", "| --- | --- | --- |"]
        for run in verdict.repro:
            command = _code(run.command, table=True)
            out.append(f"| {command} | {run.baseline.exit_code} | {run.candidate.exit_code} |")
        out.append("")
    out += _timings(verdict.timings)
    for entry in verdict.logs:
        text = _tail(entry.tail or entry.head)
        if not text:
            continue
        out += [
            "<details>",
            f"<summary>log tail: {_cell(entry.phase)}</summary>",
            "",
            *_fenced(text),
            "",
            "</details>",
            "",
        ]
    return "\n".join(out) + "\n"


def _timings(timings: Mapping[str, float]) -> list[str]:
    shown = {k: v for k, v in timings.items() if k != "baseline_cached"}
    if not shown:
        return []
    cached = " (baseline from cache)" if timings.get("baseline_cached") else ""
    return [
        f"**Timings**{cached}: " + ", ".join(f"{_cell(k)} {v:.1f}s" for k, v in shown.items()),
        "",
    ]


# ---------------------------------------------------------------------------- writing


def write_outputs(path: Path, values: Iterable[tuple[str, str]]) -> None:
    """Append step outputs to ``$GITHUB_OUTPUT``; free text always goes in a heredoc."""
    with path.open("a", encoding="utf-8") as handle:
        for name, value in values:
            handle.write(output_entry(name, value, heredoc=name in _FREE_TEXT))


def quote_untrusted(text: str) -> str:
    """Wrap text so the runner reads no workflow command in it (``::stop-commands::``)."""
    token = secrets.token_hex(16)
    return f"::stop-commands::{token}\n{text.rstrip(chr(10))}\n::{token}::\n"


def render_github(
    verdict: Verdict,
    verdict_json: Path,
    *,
    output_file: Path | None,
    summary_file: Path | None,
    job_folder: Path | None,
) -> list[str]:
    """Write the step outputs and the job summary; return the annotation lines to print."""
    if output_file is not None:
        write_outputs(
            output_file,
            [
                ("verdict", verdict.status),
                ("summary", verdict.summary),
                ("verdict-json", str(verdict_json)),
            ],
        )
    if summary_file is not None:
        with summary_file.open("a", encoding="utf-8") as handle:
            handle.write(render_summary(verdict))
    return [a.command() for a in workflow_annotations(verdict, candidate_tests(job_folder))]
