"""Test-weakening analysis: ways a candidate weakens the tests or their harness.

Pure: a ParsedPatch in, findings (one line each) out.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from runner.core.asserts import assert_findings
from runner.core.conftest_changes import conftest_findings
from runner.core.paths import DEFAULT_TEST_GLOBS, glob_match, is_test_path
from runner.core.skipmarkers import markers_on_existing_tests
from runner.models import FileChange, ParsedPatch, SourceChange

__all__ = ["weakening_findings"]

_TEST_DEF = re.compile(r"^\s*(?:async\s+)?def\s+(test\w*)\s*\(")
_TEST_CLASS = re.compile(r"^\s*class\s+(Test\w*)\s*[(:]")
_ASSERTION = re.compile(
    r"^\s*assert\b|\bself\.assert\w*\s*\(|\bself\.fail\w*\s*\(|\bpytest\.(?:raises|warns|fail)\s*\("
)
_TRIVIAL_ASSERT = re.compile(
    r"^\s*assert\s*\(?\s*(?:True|1|not\s+(?:False|0|None))\s*\)?\s*(?:#.*)?$"
)
_SKIP_MARKERS = re.compile(
    r"pytest\.mark\.(?:skip|skipif|xfail)\b|pytest\.(?:skip|xfail|importorskip)\s*\("
    r"|unittest\.(?:skip|skipIf|skipUnless|expectedFailure)\b"
    r"|@(?:skip|skipIf|skipUnless|expectedFailure)\b|\bSkipTest\b"
)
_PYTEST_INTERNALS = re.compile(r"^\s*(?:from|import)\s+(?:_pytest|pytest)\b|\b_pytest\.")
_PLUGIN_HOOKS = re.compile(r"\bpytest11\b|\bpytest_plugins\b|^\s*def\s+pytest_\w+\s*\(")
_HARNESS_NAMES = ("conftest.py", "pytest.ini", "tox.ini", "setup.cfg", ".flake8")
_HARNESS_GLOBS = ("sitecustomize.py", "usercustomize.py", "*.pth")
_PYPROJECT_PYTEST = re.compile(
    r"tool\.pytest|\[pytest\]|\b(?:addopts|testpaths|python_files|python_classes|"
    r"python_functions|norecursedirs|confcutdir|pytest11)\b"
)


def weakening_findings(
    patch: ParsedPatch,
    test_patch: ParsedPatch | None = None,
    test_globs: Iterable[str] = DEFAULT_TEST_GLOBS,
    sources: Iterable[SourceChange] = (),
) -> list[str]:
    """Ways the candidate weakens the tests or their harness; empty when it does not.

    Config files: pytest.ini, tox.ini, setup.cfg and .flake8 count as harness on any
    change (three lines of context cannot show which section a hunk is in);
    pyproject.toml only when a hunk's header or lines mention pytest settings.
    """
    globs = tuple(test_globs)
    protected = test_patch.paths() if test_patch else set()
    sources = list(sources)
    texts = {s.path: s for s in sources if s.before is not None and s.after is not None}
    after_texts = {s.path: s for s in sources if s.after is not None}
    source_added = [
        line
        for f in patch.files
        if not any(is_test_path(p, globs) for p in (f.path, f.old_path or f.path))
        for line in f.added_text
    ]
    findings: list[str] = []
    for change in patch.files:
        paths = {change.path, *([change.old_path] if change.old_path else [])}
        if touched := sorted(paths & protected):
            findings.append(f"touches {', '.join(touched)} from the job's test patch")
        findings += _harness(change, after_texts.get(change.path))
        is_test = any(is_test_path(p, globs) for p in paths)
        findings += _markers(change, after_texts.get(change.path) if is_test else None)
        if is_test:
            findings += _test_file(change, texts.get(change.path), source_added)
        elif change.path.endswith(".py") and any(
            _PYTEST_INTERNALS.search(line) for line in change.added_text
        ):
            findings.append(f"{change.path}: source code imports pytest or its internals")
    return findings


def _harness(change: FileChange, source: SourceChange | None = None) -> list[str]:
    name = change.path.rsplit("/", 1)[-1]
    old_name = (change.old_path or "").rsplit("/", 1)[-1]
    if name == "conftest.py" and change.status in ("modified", "added") and source is not None:
        # Both texts at hand: judged by what the change does (renamed or added fixtures
        # are fine; hooks, plugins, removed asserts, no-op fixtures are not).
        before = source.before if source.before is not None else ""
        if change.status == "added" or source.before is not None:
            found = conftest_findings(change.path, before, source.after or "")
            if found is not None:
                return found
    if name in _HARNESS_NAMES or old_name in _HARNESS_NAMES:
        return [f"{change.path}: changes the test harness ({name or old_name})"]
    if glob_match(change.path, _HARNESS_GLOBS) or glob_match(change.old_path or "", _HARNESS_GLOBS):
        return [f"{change.path}: changes interpreter start-up ({name})"]
    if name == "pyproject.toml":
        lines = [*change.hunk_headers, *change.added_text, *change.removed_text]
        if any(_PYPROJECT_PYTEST.search(line) for line in lines):
            return [f"{change.path}: changes pytest configuration"]
    if any(_PLUGIN_HOOKS.search(line) for line in change.added_text):
        return [f"{change.path}: adds a pytest plugin, hook or entry point"]
    return []


def _markers(change: FileChange, texts: SourceChange | None = None) -> list[str]:
    added = [
        (number, line)
        for number, line in zip(change.added_lines, change.added_text, strict=True)
        if _SKIP_MARKERS.search(line)
    ]
    if not added:
        return []
    hits = [line.strip() for _, line in added]
    name = change.path.rsplit("/", 1)[-1]
    known = texts is not None and (texts.before is not None or change.status == "added")
    if known and texts is not None and texts.after is not None and name != "conftest.py":
        # a marker on a test the change adds skips nothing that ran before
        before = texts.before if change.status != "added" else None
        kept = markers_on_existing_tests(before, texts.after, added)
        if kept is not None:
            hits = [line.strip() for line in kept]
    if not hits:
        return []
    return [f"{change.path}: adds skip/xfail ({len(hits)}: {hits[0][:60]!r})"]


def _test_file(
    change: FileChange, texts: SourceChange | None, source_added: list[str]
) -> list[str]:
    if change.status == "deleted":
        return [f"deletes test file {change.path}"]
    if change.status == "renamed":
        return [f"renames test file {change.old_path} to {change.path}"]
    out = []
    for pattern, kind in ((_TEST_DEF, "test"), (_TEST_CLASS, "test class")):
        before = {m.group(1) for line in change.removed_text if (m := pattern.match(line))}
        after = {m.group(1) for line in change.added_text if (m := pattern.match(line))}
        if gone := sorted(before - after):
            out.append(f"removes or renames {kind} {', '.join(gone)} in {change.path}")
    if texts is not None and texts.before is not None and texts.after is not None:
        # both texts at hand: compare the asserts of each kept test as syntax trees
        return out + assert_findings(change.path, texts.before, texts.after, source_added)
    removed = sum(1 for line in change.removed_text if _ASSERTION.search(line))
    added = _replacing_asserts(change)
    if removed > added:
        out.append(f"removed {removed - added} assert(s) in {change.path}")
    return out


def _replacing_asserts(change: FileChange) -> int:
    """Added asserts that can stand in for removed ones: not trivial, not in a new test.

    An assert in a test the candidate adds checks something new; it must not hide an
    assert removed from an existing test. A new test is an added ``def test…`` whose
    name was not removed, up to the first added line that is not contiguous with it or
    is indented no deeper than its ``def``.
    """
    removed_defs = {m.group(1) for line in change.removed_text if (m := _TEST_DEF.match(line))}
    count, new_test_indent, previous = 0, None, None
    for number, line in zip(change.added_lines, change.added_text, strict=True):
        contiguous = previous is not None and number == previous + 1
        previous = number
        indent = len(line) - len(line.lstrip())
        if new_test_indent is not None and (
            not contiguous or (line.strip() and indent <= new_test_indent)
        ):
            new_test_indent = None
        if (m := _TEST_DEF.match(line)) and m.group(1) not in removed_defs:
            new_test_indent = indent
            continue
        if new_test_indent is not None:
            continue
        if _ASSERTION.search(line) and not _TRIVIAL_ASSERT.match(line):
            count += 1
    return count
