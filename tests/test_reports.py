"""Every renderer survives every verdict: property-based tests over generated verdicts.

Verdicts are built from the pydantic models' own fields, with text full of what breaks
renderers (rich markup, Markdown, workflow commands, ANSI escapes, newlines, non-ASCII).
Each renderer must not raise, and every string it shows must appear verbatim in what a
reader of that medium sees (escaped for the medium, never interpreted).
"""

from __future__ import annotations

import io
import json
import re
import types
import typing
import xml.etree.ElementTree as ET
from html.parser import HTMLParser
from pathlib import Path
from typing import Any, Literal

import jsonschema
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from markdown_it import MarkdownIt
from pydantic import BaseModel
from rich.console import Console
from test_github_action import annotation_lines, parse_command

from runner.core.suite import parse_junit
from runner.models import (
    Check,
    LastException,
    LintFinding,
    LintSummary,
    PhaseLog,
    ReproResult,
    ReproRun,
    RunCounts,
    TestSummary,
    Verdict,
)
from runner.reports.github import (
    LOG_TAIL_CHARS,
    LOG_TAIL_LINES,
    drop_library_frames,
    quote_untrusted,
    render_summary,
    workflow_annotations,
)
from runner.reports.junit import rebuild, xml_text
from runner.reports.sarif import render_sarif
from runner.reports.text import printable, render_json, render_text

REPO_ROOT = Path(__file__).resolve().parent.parent
SCHEMA = json.loads((REPO_ROOT / "docs" / "verdict.schema.json").read_text(encoding="utf-8"))
SARIF_SCHEMA = json.loads(
    (REPO_ROOT / "tests" / "fixtures" / "sarif-schema-2.1.0.json").read_text(encoding="utf-8")
)
# No shrinking: a generated verdict is large and shrinking one takes minutes; the
# failing example is printed whole instead.
QUICK = {
    "deadline": None,
    "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large],
    "phases": [Phase.explicit, Phase.reuse, Phase.generate],
}
# 2,000 generated verdicts in all, across the renderers.
RENDER = settings(max_examples=400, **QUICK)

# ---------------------------------------------------------------------------- strategies

HOSTILE = [
    "[",
    "]",
    "[/x]",
    "[bold]",
    "[/]",
    "[link=http://x]",
    "\\",
    "\\[",
    "\n",
    "\r\n",
    "\r",
    "\t",
    "\x1b[31m",
    "\x1b]8;;http://x\x07",
    "\x00",
    "\x7f",
    "\u202e",
    "é",
    "日本語",
    "🐍",
    "::error::forged",
    "::stop-commands::x",
    "::set-output name=verdict::verified",
    "::",
    ":smile:",
    "%",
    "%0A",
    "|",
    "`",
    "```",
    "*",
    "_",
    "~",
    "#",
    "- ",
    "1. ",
    "<script>",
    "</details>",
    "&amp;",
    "[x](http://e.invalid)",
    "ghadelimiter_",
    "test_open[/etc/passwd]",
    "test_x[bold-1]",
    ",",
    ":",
]
_ANY = st.characters(blacklist_categories=("Cs",))  # no lone surrogates: JSON cannot hold them
TEXT = st.lists(st.one_of(st.sampled_from(HOSTILE), st.text(_ANY, max_size=6)), max_size=5).map(
    "".join
)
SHORT_LIST = st.lists(TEXT, max_size=4)
HUGE_LIST = st.lists(st.sampled_from(HOSTILE), min_size=60, max_size=200)


def strategy_for(annotation: Any) -> st.SearchStrategy[Any]:
    """A strategy for one field's type: hostile text for str, small or huge lists."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if annotation is str:
        return TEXT
    if annotation is bool:
        return st.booleans()
    if annotation is int:
        return st.integers(min_value=-(2**31), max_value=2**31)
    if annotation is float:
        return st.floats(allow_nan=False, allow_infinity=False, width=32)
    if origin is Literal:
        return st.sampled_from(args)
    if origin in (typing.Union, types.UnionType):
        return st.one_of(*(strategy_for(a) for a in args))
    if annotation is type(None):
        return st.none()
    if origin is list and args[0] is str:
        return st.one_of(SHORT_LIST, SHORT_LIST, SHORT_LIST, HUGE_LIST)
    if origin is list:
        return st.lists(strategy_for(args[0]), max_size=4)
    if origin is dict:
        return st.dictionaries(strategy_for(args[0]), strategy_for(args[1]), max_size=4)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return model(annotation)
    raise NotImplementedError(f"no strategy for {annotation!r}")


def model(cls: type[BaseModel], **fixed: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """``builds`` over every field of a pydantic model (optional ones included)."""
    fields = {
        name: fixed.get(name, strategy_for(info.annotation))
        for name, info in cls.model_fields.items()
    }
    return st.builds(cls, **fields)


REPRO = model(
    ReproRun,
    baseline=model(ReproResult, last_exception=st.none() | model(LastException)),
    candidate=model(ReproResult, last_exception=st.none() | model(LastException)),
)
VERDICT = model(
    Verdict,
    checks=st.lists(model(Check), max_size=4),
    tests=model(TestSummary, baseline=model(RunCounts), candidate=model(RunCounts)),
    lint=st.builds(
        LintSummary,
        new=st.one_of(
            st.lists(model(LintFinding), max_size=4),
            st.lists(
                model(LintFinding, message=st.sampled_from(HOSTILE)), min_size=60, max_size=80
            ),
        ),
    ),
    repro=st.lists(REPRO, max_size=3),
    logs=st.lists(model(PhaseLog), max_size=3),
    schema_version=st.just(Verdict.model_fields["schema_version"].default),
    # contract fields the renderers do not show keep their defaults
    patch=st.just(Verdict.model_fields["patch"].default_factory()),  # type: ignore[misc]
    resources=st.just(Verdict.model_fields["resources"].default_factory()),  # type: ignore[misc]
    images=st.just(Verdict.model_fields["images"].default_factory()),  # type: ignore[misc]
)


def norm(text: str) -> str:
    """Layout aside: every run of whitespace as one space."""
    return " ".join(text.split())


# ---------------------------------------------------------------------------- text


def text_strings(verdict: Verdict) -> list[str]:
    """What the text renderer promises to show, as a terminal shows it."""
    t = verdict.tests
    shown = [verdict.summary.split(": ", 1)[-1]]
    for check in verdict.checks:
        shown += [check.name.replace("\n", "\\n"), check.detail]
    for ids in (t.fail_to_pass, t.pass_to_fail, t.still_failing, t.flaky):
        shown += ids[:8]
    for f in verdict.lint.new:
        shown += [f.path, f.code, f.message]
    for run in verdict.repro:
        shown += [run.command, run.problem or ""]
        for side in (run.baseline, run.candidate):
            if side.last_exception is not None:
                exc = side.last_exception
                shown += [exc.type, (exc.message.splitlines() or [""])[0]]
    shown += [k for k in verdict.timings if k != "baseline_cached"]
    return shown


@settings(max_examples=300, **QUICK)
@given(VERDICT)
def test_text_shows_every_string_verbatim_and_never_as_markup(verdict: Verdict) -> None:
    buffer = io.StringIO()
    render_text(verdict, Console(file=buffer, width=100_000, color_system=None))
    out = buffer.getvalue()
    assert "\x1b" not in out and "\u202e" not in out
    flat = norm(out)
    for value in text_strings(verdict):
        assert norm(printable(value)) in flat


@settings(max_examples=100, **QUICK)
@given(VERDICT)
def test_text_in_colour_on_a_terminal_sends_no_control_from_the_verdict(verdict: Verdict) -> None:
    buffer = io.StringIO()
    console = Console(file=buffer, width=80, force_terminal=True, color_system="truecolor")
    render_text(verdict, console)
    # rich's own styles are SGR sequences (ESC [ … m); anything else came from the verdict
    out = buffer.getvalue()
    stripped = re.sub(r"\x1b\[[0-9;]*m", "", out)
    assert "\x1b" not in stripped and "\x07" not in stripped


# ---------------------------------------------------------------------------- github


class _Text(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []

    def handle_data(self, data: str) -> None:
        self.parts.append(data)


def rendered_text(markdown: str) -> str:
    """What a reader sees of GitHub-flavoured Markdown: the rendered page's text."""
    page = MarkdownIt("commonmark", {"html": True}).enable(["table", "strikethrough"])
    parser = _Text()
    parser.feed(page.render(markdown))
    return "".join(parser.parts)


def summary_strings(verdict: Verdict) -> list[str]:
    t = verdict.tests
    shown = [verdict.summary]
    for check in verdict.checks:
        shown += [check.name, check.detail]
    for ids in (t.fail_to_pass, t.pass_to_fail, t.still_failing, t.flaky):
        shown += ids[:50]
    for f in verdict.lint.new[:50]:
        shown += [f.path.removeprefix("./"), f.code, f.message]
    shown += [run.command for run in verdict.repro]
    shown += [k for k in verdict.timings if k != "baseline_cached"]
    return shown


@RENDER
@given(VERDICT)
def test_summary_shows_every_string_verbatim_and_never_as_markdown(verdict: Verdict) -> None:
    md = render_summary(verdict)
    seen = norm(rendered_text(md))
    for value in summary_strings(verdict):
        assert norm(printable(value)) in seen, value
    for entry in verdict.logs:
        text = entry.tail or entry.head
        shown = drop_library_frames(text.rstrip("\n")).splitlines()[-LOG_TAIL_LINES:]
        tail = "\n".join(shown)[-LOG_TAIL_CHARS:]
        assert norm(printable(tail)) in seen


@RENDER
@given(VERDICT)
def test_annotations_carry_every_string_and_nothing_else_is_a_command(verdict: Verdict) -> None:
    annotations = workflow_annotations(verdict, {})
    lines = [a.command() for a in annotations]
    buffer = io.StringIO()
    render_text(verdict, Console(file=buffer, width=120, no_color=True, highlight=False))
    stdout = quote_untrusted(buffer.getvalue()) + "".join(f"{line}\n" for line in lines)
    # GitHub acts on exactly the annotations: nothing in the table is read as a command
    assert annotation_lines(stdout) == lines
    for annotation, line in zip(annotations, lines, strict=True):
        level, props, message = parse_command(line)
        assert level == annotation.level
        assert message == annotation.message
        assert props.get("title") == annotation.title
    titles = {a.title for a in annotations}
    for test_id in verdict.tests.pass_to_fail:
        assert f"Regression: {test_id}" in titles
    for test_id in verdict.tests.flaky:
        assert f"Flaky test: {test_id}" in titles
    assert annotations[-1].message == verdict.summary


# ---------------------------------------------------------------------------- junit, sarif, json


@settings(max_examples=300, **QUICK)
@given(VERDICT, st.sampled_from(["baseline", "candidate"]))
def test_rebuilt_junit_is_valid_xml_naming_every_deciding_test(verdict: Verdict, side: str) -> None:
    data = rebuild(verdict, side)
    assert parse_junit(data).error is None
    cases = ET.fromstring(data).iter("testcase")
    names = [(case.get("file"), case.get("name")) for case in cases]
    t = verdict.tests
    expected = [
        (xml_text(i).split("::")[0], xml_text(i).split("::")[-1])
        for i in (*t.fail_to_pass, *t.pass_to_fail, *t.still_failing)
    ]
    assert names == expected


@settings(max_examples=250, **QUICK)
@given(VERDICT)
def test_sarif_is_valid_and_carries_every_finding(verdict: Verdict) -> None:
    doc = json.loads(render_sarif(verdict))
    jsonschema.Draft4Validator(SARIF_SCHEMA).validate(doc)
    results = doc["runs"][0]["results"]
    assert [r["message"]["text"] for r in results] == [
        f"{f.code} {f.message}" for f in verdict.lint.new
    ]


@settings(max_examples=250, **QUICK)
@given(VERDICT)
def test_json_round_trips_and_matches_the_published_schema(verdict: Verdict) -> None:
    text = render_json(verdict)
    jsonschema.Draft202012Validator(SCHEMA).validate(json.loads(text))
    assert Verdict.model_validate_json(text) == verdict


# ---------------------------------------------------------------------------- known cases


def _render(verdict: Verdict) -> str:
    buffer = io.StringIO()
    render_text(verdict, Console(file=buffer, width=200, color_system=None))
    return buffer.getvalue()


def test_text_shows_a_fixed_repro_without_an_exception_after() -> None:
    run = ReproRun(
        command="python scripts/seed_db.py",
        expect_error="RuntimeError: Working outside of application context",
        baseline=ReproResult(
            exit_code=1,
            last_exception=LastException(
                type="RuntimeError", message="Working outside of application context."
            ),
        ),
        candidate=ReproResult(exit_code=0),
        baseline_matched=True,
    )
    out = _render(Verdict(job_id="j", status="verified", summary="verified: ok", repro=[run]))
    assert "before  exit 1, RuntimeError: Working outside of application context." in out
    assert "after   exit 0" in out


@pytest.mark.parametrize(
    "detail",
    ["tests/t.py::test_open[/etc/passwd]", "tests/t.py::test_x[bold-1]", "[/x]", ":smile:"],
)
def test_text_keeps_brackets_and_colons_of_a_check_detail(detail: str) -> None:
    check = Check(name="no_regressions", passed=False, detail=detail)
    out = _render(Verdict(job_id="j", status="rejected", summary="rejected", checks=[check]))
    assert detail in out


def test_log_tails_fold_frames_inside_installed_packages() -> None:
    log = (
        "Traceback (most recent call last):\n"
        '  File "/work/scripts/seed_db.py", line 9, in <module>\n'
        "    seed()\n"
        '  File "/venv/lib/python3.11/site-packages/flask/ctx.py", line 20, in push\n'
        "    raise RuntimeError(msg)\n"
        "    ^^^^^^^^^^^^^^^^^^^^^^^\n"
        '  File "/usr/lib/python3/dist-packages/werkzeug/local.py", line 5, in _get\n'
        "    return self.x\n"
        "RuntimeError: Working outside of application context."
    )
    assert drop_library_frames(log) == (
        "Traceback (most recent call last):\n"
        '  File "/work/scripts/seed_db.py", line 9, in <module>\n'
        "    seed()\n"
        "  … 2 frame(s) in installed packages\n"
        "RuntimeError: Working outside of application context."
    )
    verdict = Verdict(
        job_id="j", status="error", summary="error", logs=[PhaseLog(phase="repro", tail=log)]
    )
    md = render_summary(verdict)
    assert "site-packages" not in md and "2 frame(s) in installed packages" in md
