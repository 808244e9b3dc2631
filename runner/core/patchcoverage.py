"""Patch coverage: which changed source lines the fail-to-pass tests executed.

Pure: the parsed patch, the changed files' texts and the traced re-runs' line records
in, a :class:`PatchCoverage` out. Only lines that can execute count (found by compiling
the candidate's text, which runs nothing); a run of changed lines none of which a
fail-to-pass test executed is flagged as an unexecuted hunk. Lines run outside any test
(imports at collection) count for every test of the re-run.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from types import CodeType

from runner.core.paths import is_test_path
from runner.models import Evidence, FileCoverage, PatchCoverage, SourceChange

__all__ = ["executable_lines", "patch_coverage"]

_MAX_SOURCE_CHARS = 2_000_000


def patch_coverage(evidence: Evidence, test_globs: Iterable[str]) -> PatchCoverage | None:
    """Patch coverage of the candidate's source change; None when there is nothing to cover."""
    patch, comparison = evidence.patch, evidence.comparison
    if patch is None or comparison is None or not comparison.fail_to_pass:
        return None
    globs = tuple(test_globs)
    texts = {s.path: s for s in evidence.sources}
    changed: dict[str, list[int]] = {}
    added: dict[str, list[int]] = {}
    for change in patch.files:
        if change.status == "deleted" or not change.added_lines or is_test_path(change.path, globs):
            continue
        if not change.path.endswith(".py"):
            continue
        lines = _changed_executable(change.added_lines, texts.get(change.path))
        if lines:
            changed[change.path] = lines
            added[change.path] = sorted(change.added_lines)
    if not changed:
        return None
    tests = sorted(comparison.fail_to_pass)
    if evidence.executed is None:
        return PatchCoverage(
            measured=False,
            detail="no traced re-run of the fail-to-pass tests (policy reruns = 0, or the "
            "re-runs did not run)",
            tests=tests,
            changed=sum(len(v) for v in changed.values()),
        )
    ran = [evidence.executed.get(t) for t in tests]
    if all(r is None for r in ran):
        return PatchCoverage(
            measured=False,
            detail="the traced re-runs recorded none of the fail-to-pass tests",
            tests=tests,
            changed=sum(len(v) for v in changed.values()),
        )
    records = [r for r in ran if r is not None]
    records.append(evidence.executed.get("", {}))
    files = [_file(path, lines, added[path], records) for path, lines in changed.items()]
    return PatchCoverage(
        measured=True,
        tests=tests,
        changed=sum(len(f.changed_lines) for f in files),
        executed=sum(len(f.executed_lines) for f in files),
        files=files,
    )


def _file(
    path: str, lines: list[int], added: list[int], records: list[dict[str, list[int]]]
) -> FileCoverage:
    hit = {n for record in records for n in record.get(path, [])}
    executed = [n for n in lines if n in hit]
    code = set(lines)
    # a hunk as the diff shows it (its comments too), flagged when none of its code ran
    hunks = [h for h in _runs(added) if code.intersection(h) and not hit.intersection(h)]
    return FileCoverage(
        path=path,
        changed_lines=lines,
        executed_lines=executed,
        unexecuted_hunks=[f"{h[0]}-{h[-1]}" if len(h) > 1 else str(h[0]) for h in hunks],
    )


def _runs(lines: list[int]) -> Iterator[list[int]]:
    """Consecutive line numbers grouped: a hunk's changed lines, as the diff shows them."""
    run: list[int] = []
    for n in lines:
        if run and n != run[-1] + 1:
            yield run
            run = []
        run.append(n)
    if run:
        yield run


def _changed_executable(added: list[int], change: SourceChange | None) -> list[int]:
    text = change.after if change is not None else None
    if text is None:
        return sorted(added)
    runnable = executable_lines(text)
    if runnable is None:
        # the candidate's text does not compile here: every added line that holds code
        source = text.splitlines()
        return [
            n
            for n in sorted(added)
            if 0 < n <= len(source) and source[n - 1].strip()[:1] not in ("", "#")
        ]
    return [n for n in sorted(added) if n in runnable]


def executable_lines(text: str) -> set[int] | None:
    """Lines of ``text`` that hold code (compiled, never run); None when it does not compile."""
    if len(text) > _MAX_SOURCE_CHARS:
        return None
    try:
        code = compile(text, "<candidate>", "exec", dont_inherit=True)
    except (SyntaxError, ValueError):
        return None
    lines: set[int] = set()
    todo = [code]
    while todo:
        current = todo.pop()
        lines.update(line for _, _, line in current.co_lines() if line is not None)
        todo.extend(c for c in current.co_consts if isinstance(c, CodeType))
    return lines
