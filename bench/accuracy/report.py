"""docs/accuracy.md from the corpus and the driver's results (pure: data in, text out)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from corpus import WAYS, Case, Grade, WayResult, grade, miss_class, totals

MARK = {True: "right", False: "**wrong**"}


def graded_rows(
    cases: list[Case], results: dict[str, dict[str, Any]]
) -> tuple[dict[str, list[tuple[WayResult, Grade]]], dict[str, float]]:
    """Grade every case with all three verdicts; cold build seconds per graded case."""
    graded: dict[str, list[tuple[WayResult, Grade]]] = {}
    cold: dict[str, float] = {}
    for case in cases:
        result = results.get(case.id, {})
        ids = result.get("bare", {}).get("fail_to_pass", [])
        ways = result.get("ways", {})
        if not ids or any(w not in ways for w in WAYS):
            continue
        truth = case.model_copy(update={"fail_to_pass": ids})
        rows = [WayResult.model_validate(ways[w]) for w in WAYS]
        graded[case.id] = [(r, grade(truth, r)) for r in rows]
        cold[case.id] = float(result.get("cold_build_s", 0.0))
    return graded, cold


def render(cases: list[Case], results: dict[str, dict[str, Any]], note: str = "") -> str:
    """The whole document: totals, the per-case table, the misses with their class."""
    graded, cold = graded_rows(cases, results)
    t = totals(graded, cold)
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    out = [
        "# Accuracy on repositories nobody tuned for",
        "",
        "Written by `make accuracy` (bench/accuracy/run.py) from bench/accuracy/corpus.toml;",
        f"last written {when}. How the corpus is made and checked: *Method* below.",
        "",
        "## Totals",
        "",
        f"- cases graded: {t.cases} (of {len(cases)} in the corpus)",
        f"- verdicts: {t.verdicts}, right: {t.right} ({t.right_percent} %)",
        f"- false `verified` (a no-op verified): {t.false_verified}",
        f"- median cold environment build: {t.median_cold_build_s} s",
        "",
    ]
    if note:
        out += [note, ""]
    out += [
        "## Cases",
        "",
        "| case | date | tooling (runner's resolution) | Python | cold build s"
        " | fix + tests | no-op + tests | combined | seconds (3 runs) |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for case in cases:
        if case.id not in graded:
            continue
        rows = graded[case.id]
        first = rows[0][0]
        cells = [f"{r.status} ({MARK[g.right]})" for r, g in rows]
        secs = " / ".join(f"{r.seconds:.0f}" for r, _ in rows)
        build = cold.get(case.id, 0.0)
        tooling = ", ".join(
            [first.resolution, *(f"{k} {v}" for k, v in sorted(first.tools.items()))]
        )
        build_cell = f"{build:.0f}" if build > 0 else "cached"
        out.append(
            f"| [{case.id}]({case.repo}/commit/{case.fix}) | {case.date} | {tooling}"
            f" | {first.python} | {build_cell} | {' | '.join(cells)} | {secs} |"
        )
    out += ["", "## Misses and their class", ""]
    by_class: dict[str, int] = {}
    lines: list[str] = []
    for case in cases:
        groups: dict[tuple[str, str], list[str]] = {}
        for result, g in graded.get(case.id, []):
            if not g.right:
                key = (miss_class(case, result), one_line(result.summary))
                groups.setdefault(key, []).append(f"{result.way} ({g.reason})")
        for (klass, summary), ways in groups.items():
            label = klass.split(":", 1)[0]  # the class; the details stay on the case's line
            by_class[label] = by_class.get(label, 0) + len(ways)
            lines.append(f"- **{case.id}** · {', '.join(ways)} — class: {klass}.")
            if summary:
                lines.append(f"  Runner: `{summary}`")
    out += [f"- {count} verdict(s): {klass}" for klass, count in sorted(by_class.items())]
    out += ["", *lines]
    out += ["", "## Not graded", ""]
    for case in cases:
        if case.id in graded:
            continue
        result = results.get(case.id, {})
        if case.excluded:
            why = case.excluded
        elif "bare" not in result:
            why = "not run yet"
        elif not result["bare"].get("fail_to_pass"):
            python = result["bare"].get("python", case.python)
            first = result["bare"].get("first", {})
            why = f"bare check on Python {python} found no fail-to-pass test (case dropped)"
            if first.get("fail_to_pass"):
                why += (
                    f"; on Python {first.get('python', '3.11')} it found"
                    f" {len(first['fail_to_pass'])}, but the runner chose {python}"
                )
        elif isinstance(result.get("timeout_note"), dict):
            note = result["timeout_note"]
            why = (
                f"not graded: the {note.get('way', '?')} way ended `{note.get('summary', '')}`"
                f" after {note.get('seconds', '?')} s; the suite does not fit the default"
                " policy's test limit on this shared machine, and the remaining ways were"
                " not run"
            )
        else:
            why = "verify-patch runs not finished"
        out.append(f"- {case.id}: {why}")
    return "\n".join(out) + "\n"


def one_line(text: str, limit: int = 300) -> str:
    """A summary on one line, without backticks, capped."""
    flat = " ".join(text.replace("`", "'").split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def write_report(cases: list[Case], results: dict[str, dict[str, Any]], path: Path) -> None:
    """Write docs/accuracy.md, keeping the hand-written method section after the marker."""
    tail = ""
    if path.exists() and METHOD_MARK in path.read_text():
        tail = path.read_text().split(METHOD_MARK, 1)[1]
    path.write_text(render(cases, results) + "\n" + METHOD_MARK + tail)


METHOD_MARK = "<!-- hand-written below: kept by make accuracy -->\n"
