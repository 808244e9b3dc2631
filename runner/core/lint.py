"""Lint evidence: flake8 output parsing and the diff-aware comparison of two trees.

Pure functions on plain data; the pipeline runs flake8 in the sandbox.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

from runner.models import LintFinding, LintSummary, ParsedPatch

__all__ = [
    "DEFAULT_BLOCKING",
    "FLAKE8_FORMAT",
    "NOQA_CODE",
    "adds_noqa",
    "is_blocking",
    "lint_diff",
    "noqa_findings",
    "parse_flake8",
    "ruff_flake8_options",
]

FLAKE8_FORMAT = "%(path)s:%(row)d:%(col)d:%(code)s:%(text)s"
DEFAULT_BLOCKING: tuple[str, ...] = ("E9", "F")


def parse_flake8(
    output: str, blocking_select: Iterable[str] = DEFAULT_BLOCKING
) -> list[LintFinding]:
    """Parse flake8 output written with FLAKE8_FORMAT; lines that do not parse are ignored."""
    select = tuple(blocking_select)
    findings = []
    for line in output.splitlines():
        parts = line.split(":", 4)
        if len(parts) != 5 or not parts[1].isdigit() or not parts[2].isdigit():
            continue
        path, row, col, code, text = parts
        path = path.removeprefix("./")
        findings.append(
            LintFinding(
                path=path,
                line=int(row),
                col=int(col),
                code=code.strip(),
                message=text.strip(),
                blocking=is_blocking(code.strip(), select),
            )
        )
    return findings


def is_blocking(code: str, blocking_select: Iterable[str] = DEFAULT_BLOCKING) -> bool:
    """True when ``code`` starts with one of the blocking prefixes (E9, F by default)."""
    return any(code.startswith(prefix) for prefix in blocking_select)


def lint_diff(
    baseline: Sequence[LintFinding],
    candidate: Sequence[LintFinding],
    patch: ParsedPatch,
    blocking_select: Iterable[str] = DEFAULT_BLOCKING,
) -> LintSummary:
    """New = candidate findings on lines the candidate added; fixed = baseline findings gone.

    A baseline finding is fixed when the candidate removed its line, or when no finding
    with the same code remains in the (renamed) file. ``blocking`` is recomputed.
    """
    select = tuple(blocking_select)
    added = {f.path: set(f.added_lines) for f in patch.files if f.status != "deleted"}
    removed = {(f.old_path or f.path): set(f.removed_lines) for f in patch.files}
    renamed = {f.old_path: f.path for f in patch.files if f.old_path and f.old_path != f.path}
    deleted = {f.path for f in patch.files if f.status == "deleted"}
    new = [
        f.model_copy(update={"blocking": is_blocking(f.code, select)})
        for f in candidate
        if f.line in added.get(f.path, set())
    ]
    remaining = {(f.path, f.code) for f in candidate}
    fixed = []
    for f in baseline:
        now_path = renamed.get(f.path, f.path)
        gone = (
            f.path in deleted
            or f.line in removed.get(f.path, set())
            or (now_path, f.code) not in remaining
        )
        if gone:
            fixed.append(f.model_copy(update={"blocking": is_blocking(f.code, select)}))
    return LintSummary(new=_sorted(new), fixed=_sorted(fixed))


def _sorted(findings: list[LintFinding]) -> list[LintFinding]:
    return sorted(findings, key=lambda f: (f.path, f.line, f.col, f.code))


# A noqa comment in any case, with or without codes; and the file-level form.
_NOQA = re.compile(r"#\s*noqa\b(?::\s*(?P<codes>[A-Z]+[0-9]+(?:[,\s]+[A-Z]+[0-9]+)*))?", re.I)
_FILE_NOQA = re.compile(r"#\s*flake8[:=]\s*noqa\b", re.I)
NOQA_CODE = "NOQA"


def noqa_findings(
    patch: ParsedPatch,
    candidate: Sequence[LintFinding],
    unsuppressed: Sequence[LintFinding],
    blocking_select: Iterable[str] = DEFAULT_BLOCKING,
) -> list[LintFinding]:
    """A finding for each noqa comment the candidate added, naming the codes it hides.

    ``candidate`` is flake8's output on the candidate, ``unsuppressed`` the same with
    ``--disable-noqa``; what only the latter reports is what the noqa comments hide. A
    comment that hides a blocking code blocks; one already on a removed line of the same
    file is the baseline's, not the candidate's.
    """
    select = tuple(blocking_select)
    shown = {(f.path, f.line, f.code) for f in candidate}
    hidden: dict[str, list[LintFinding]] = {}
    for f in unsuppressed:
        if (f.path, f.line, f.code) not in shown:
            hidden.setdefault(f.path, []).append(f)
    out = []
    for change in patch.files:
        if change.status == "deleted" or not change.path.endswith(".py"):
            continue
        before = {_comment(line) for line in change.removed_text}
        file_hidden = hidden.get(change.path, [])
        explained: set[int] = set()
        file_level: list[int] = []
        for number, line in zip(change.added_lines, change.added_text, strict=True):
            comment = _comment(line)
            if not comment or comment in before:
                continue
            if _FILE_NOQA.search(comment):
                file_level.append(number)
                continue
            if _NOQA.search(comment):
                here = [f for f in file_hidden if f.line == number]
                explained.add(number)
                out.append(_noqa_finding(change.path, number, "'# noqa'", here, select))
        for number in file_level:
            rest = [f for f in file_hidden if f.line not in explained]
            out.append(_noqa_finding(change.path, number, "'# flake8: noqa'", rest, select))
    return _sorted(out)


def adds_noqa(patch: ParsedPatch) -> bool:
    """True when an added line of a changed Python file carries a noqa comment."""
    return any(
        _comment(line)
        for change in patch.files
        if change.status != "deleted" and change.path.endswith(".py")
        for line in change.added_text
    )


def _comment(line: str) -> str:
    """The noqa part of a line, lower-cased and without spaces; '' when it has none."""
    match = _FILE_NOQA.search(line) or _NOQA.search(line)
    return "".join(match.group(0).lower().split()) if match else ""


def _noqa_finding(
    path: str, line: int, form: str, hidden: list[LintFinding], select: tuple[str, ...]
) -> LintFinding:
    codes = sorted({f.code for f in hidden})
    what = f"hides {', '.join(codes)}" if codes else "hides nothing flake8 reports here"
    return LintFinding(
        path=path,
        line=line,
        col=1,
        code=NOQA_CODE,
        message=f"adds {form}, which {what}",
        blocking=any(is_blocking(code, select) for code in codes),
    )


# flake8's own codes among ruff's: the rest (I, UP, B, ...) are plugins flake8 lacks here.
_FLAKE8_PREFIXES = ("E", "W", "F", "C90")
# What ruff checks when its config selects nothing.
_RUFF_DEFAULT_SELECT = ("E4", "E7", "E9", "F")


def ruff_flake8_options(config: dict[str, object], pyproject: bool) -> list[str] | None:
    """flake8 options with a ruff configuration's select/ignore and line length.

    ``config`` is the parsed TOML (pyproject.toml, or ruff.toml when not ``pyproject``);
    None when it holds no ruff configuration.
    """
    table: object = config
    if pyproject:
        tool = config.get("tool")
        table = tool.get("ruff") if isinstance(tool, dict) else None
    if not isinstance(table, dict):
        return None
    lint = table.get("lint")
    merged = {**table, **(lint if isinstance(lint, dict) else {})}
    select = [*_codes(merged.get("select")), *_codes(merged.get("extend-select"))]
    ignore = [*_codes(merged.get("ignore")), *_codes(merged.get("extend-ignore"))]
    if "ALL" in select:
        select = list(_FLAKE8_PREFIXES)
    chosen = [c for c in select if c.startswith(_FLAKE8_PREFIXES)]
    if not chosen:
        chosen = list(_RUFF_DEFAULT_SELECT)
    options = [f"--select={','.join(chosen)}"]
    kept_ignore = [c for c in ignore if c.startswith(_FLAKE8_PREFIXES)]
    if kept_ignore:
        options.append(f"--extend-ignore={','.join(kept_ignore)}")
    length = table.get("line-length")
    if isinstance(length, int) and not isinstance(length, bool) and 40 <= length <= 1000:
        options.append(f"--max-line-length={length}")
    return options


def _codes(value: object) -> list[str]:
    if not isinstance(value, list):
        return []
    return [
        v.strip().upper()
        for v in value
        if isinstance(v, str) and re.fullmatch(r"[A-Za-z]+[0-9]*", v.strip())
    ]
