"""flake8 findings: parsing, blocking codes, and the diff between two trees."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from runner.models import (
    LintFinding,
    LintSummary,
    ParsedPatch,
)

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
