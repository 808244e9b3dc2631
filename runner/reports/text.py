"""Renderers of a Verdict: a compact text table for people, JSON for programs."""

from __future__ import annotations

from rich.console import Console, Group
from rich.table import Table
from rich.text import Text

from runner.models import Verdict

_STYLE = {"verified": "bold green", "rejected": "bold red", "error": "bold yellow"}
_SHOWN = 8


def render_json(verdict: Verdict) -> str:
    """The verdict as the published JSON document."""
    return verdict.model_dump_json(indent=2) + "\n"


def _ids(ids: list[str]) -> str:
    more = f" … (+{len(ids) - _SHOWN})" if len(ids) > _SHOWN else ""
    return ", ".join(ids[:_SHOWN]) + more


def render_text(verdict: Verdict, console: Console) -> None:
    """A compact table: status line, checks, the tests that decided, lint, timings."""
    title = Text(f"{verdict.status.upper()}", style=_STYLE[verdict.status])
    console.print(Text.assemble(title, "  ", verdict.summary.split(": ", 1)[-1]))
    if verdict.checks:
        table = Table(show_header=True, header_style="bold", box=None, pad_edge=False)
        table.add_column("check")
        table.add_column("result")
        table.add_column("detail", overflow="fold")
        for check in verdict.checks:
            mark = "pass" if check.passed else ("FAIL" if check.required else "fail (advisory)")
            style = "green" if check.passed else ("red" if check.required else "yellow")
            table.add_row(check.name, Text(mark, style=style), check.detail)
        console.print(table)
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
    for finding in verdict.lint.new:
        tag = "lint (blocking)" if finding.blocking else "lint"
        rows.append((tag, f"{finding.path}:{finding.line}: {finding.code} {finding.message}"))
    for run in verdict.repro:
        rows.append(("repro", f"{run.command}"))
        for side, result in (("before", run.baseline), ("after", run.candidate)):
            exc = result.last_exception
            status = "timed out" if result.timed_out else f"exit {result.exit_code}"
            if exc is not None:
                first = exc.message.splitlines()[0] if exc.message else ""
                status += f", {exc.type}: {first}"
            rows.append((f"  {side}", status))
    if verdict.timings:
        phases = {k: v for k, v in verdict.timings.items() if k != "baseline_cached"}
        cached = " (baseline from cache)" if verdict.timings.get("baseline_cached") else ""
        rows.append(("timings", ", ".join(f"{k} {v:.1f}s" for k, v in phases.items()) + cached))
    if rows:
        facts = Table(show_header=False, box=None, pad_edge=False)
        facts.add_column(style="bold")
        facts.add_column(overflow="fold")
        for key, value in rows:
            facts.add_row(key, value)
        console.print(Group(facts))
