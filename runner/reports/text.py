"""Renderers of a Verdict: a compact text table for people, JSON for programs.

Everything a verdict holds may come from the candidate's run or the user's command line
(test ids, messages, repro commands), so it reaches rich only as ``Text`` objects, never
as a string rich would read as markup or emoji codes, and with terminal control
characters shown instead of sent.
"""

from __future__ import annotations

import re

from rich.console import Console, Group
from rich.table import Table
from rich.text import Text

from runner.models import Verdict

_STYLE = {"verified": "bold green", "rejected": "bold red", "error": "bold yellow"}
_SHOWN = 8
# C0/C1 controls (except newline and tab) and the bidirectional overrides: a terminal
# would act on them (colours, cursor moves, reordered text), so they are shown escaped.
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def printable(value: str, one_line: bool = False) -> str:
    """The value with terminal controls (and newlines, if one_line) escaped; tabs as spaces."""

    def show(match: re.Match[str]) -> str:
        code = ord(match.group())
        return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"

    # A tab is layout, and rich measures it as one cell wide: a space keeps columns true.
    value = _CONTROL.sub(show, value).replace("\t", " ")
    return value.replace("\n", "\\n") if one_line else value


def plain(value: str, style: str = "", one_line: bool = False) -> Text:
    """Untrusted text as a rich ``Text``: no markup, no emoji codes, controls escaped."""
    return Text(printable(value, one_line), style=style)


def render_json(verdict: Verdict) -> str:
    """The verdict as the published JSON document."""
    return verdict.model_dump_json(indent=2) + "\n"


def _ids(ids: list[str]) -> str:
    more = f" … (+{len(ids) - _SHOWN})" if len(ids) > _SHOWN else ""
    return ", ".join(ids[:_SHOWN]) + more


def _repro_rows(verdict: Verdict) -> list[tuple[str, str]]:
    rows: list[tuple[str, str]] = []
    for run in verdict.repro:
        rows.append(("repro", run.command))
        for side, result in (("before", run.baseline), ("after", run.candidate)):
            exc = result.last_exception
            status = "timed out" if result.timed_out else f"exit {result.exit_code}"
            if exc is not None:
                first = exc.message.splitlines()[0] if exc.message else ""
                status += f", {exc.type}: {first}"
            rows.append((f"  {side}", status))
        if run.problem:
            rows.append(("  problem", run.problem))
    return rows


def fact_rows(verdict: Verdict) -> list[tuple[str, str]]:
    """The key/value facts under the checks: tests, deciding ids, lint, repro, timings."""
    t = verdict.tests
    rows: list[tuple[str, str]] = []
    if t.baseline.total or t.candidate.total:
        rows.append(
            (
                "tests",
                f"baseline {t.baseline.passed} passed / {t.baseline.failed + t.baseline.error} "
                f"failed; candidate {t.candidate.passed} passed / "
                f"{t.candidate.failed + t.candidate.error} failed",
            )
        )
    for name in ("fail_to_pass", "pass_to_fail", "still_failing", "flaky", "not_rerun"):
        ids = getattr(t, name)
        if ids:
            rows.append((name, _ids(ids)))
    if verdict.patch_coverage is not None:
        rows.append(("patch coverage", verdict.patch_coverage.line().split(": ", 1)[1]))
    if t.suite_repeat is not None:
        rows.append(("suite repeat", t.suite_repeat.line().split(": ", 1)[1]))
    for finding in verdict.lint.new:
        tag = "lint (blocking)" if finding.blocking else "lint"
        rows.append((tag, f"{finding.path}:{finding.line}: {finding.code} {finding.message}"))
    rows += _repro_rows(verdict)
    if verdict.timings:
        phases = {k: v for k, v in verdict.timings.items() if k != "baseline_cached"}
        cached = " (baseline from cache)" if verdict.timings.get("baseline_cached") else ""
        rows.append(("timings", ", ".join(f"{k} {v:.1f}s" for k, v in phases.items()) + cached))
    return rows


def render_text(verdict: Verdict, console: Console) -> None:
    """A compact table: status line, checks, the tests that decided, lint, timings."""
    title = Text(f"{verdict.status.upper()}", style=_STYLE[verdict.status])
    console.print(Text.assemble(title, "  ", plain(verdict.summary.split(": ", 1)[-1])))
    if verdict.checks:
        table = Table(show_header=True, header_style="bold", box=None, pad_edge=False)
        table.add_column("check")
        table.add_column("result")
        table.add_column("detail", overflow="fold")
        for check in verdict.checks:
            mark = "pass" if check.passed else ("FAIL" if check.required else "fail (advisory)")
            style = "green" if check.passed else ("red" if check.required else "yellow")
            # only the last column may wrap onto more lines: the others stay one line each
            name = plain(check.name, one_line=True)
            table.add_row(name, Text(mark, style=style), plain(check.detail))
        console.print(table)
    rows = fact_rows(verdict)
    if rows:
        facts = Table(show_header=False, box=None, pad_edge=False)
        facts.add_column(style="bold")
        facts.add_column(overflow="fold")
        for key, value in rows:
            facts.add_row(plain(key), plain(value))
        console.print(Group(facts))
