"""Affected tests first: which tests a patch can reach, and what they answered early.

The baseline run records, per test, the tree's functions (file and line span) and files
it executed (the harness's ``testmap`` record). A candidate's changed lines then select
the tests that ran the functions holding them (a module-level change: the tests that
executed the file), plus the fail-to-pass ids and the changed test files; anything the
map cannot see
(configuration, conftest.py, files that are not Python, a file no test executed) selects
the whole suite. The early answer is advisory unless the policy says ``fail_fast``: the
full suite still decides ``verified``.
"""

from __future__ import annotations

import json
import posixpath
import re
from typing import Any

from pydantic import Field

from runner.core.paths import is_test_path
from runner.models import EarlyAnswer, FileChange, Model, ParsedPatch, SuiteRun

__all__ = [
    "Selection",
    "TestMap",
    "early_answer",
    "read_testmap",
    "select_tests",
]

# Files that steer how every test runs: a change to one selects the whole suite.
CONFIG_FILES = frozenset({"conftest.py", "setup.py", "noxfile.py", "__main__.py"})
# Past this share of the suite an early run is the suite run twice: run it once.
MOST_OF_THE_SUITE = 0.8
FAILED_SHOWN = 50
IDS_SHOWN = 200
FAIL_TO_PASS_GUESSES = 20
_BAD = ("failed", "error")
_HUNK = re.compile(r"@@ -(\d+)")


class TestMap(Model):
    """Per test id, the tree files (relative to the work tree) it executed or imports."""

    __test__ = False  # not a pytest test class

    files: list[str] = Field(default_factory=list)
    tests: dict[str, list[int]] = Field(default_factory=dict)
    deps: dict[str, list[int]] = Field(default_factory=dict)
    units: list[list[int]] = Field(
        default_factory=list, description="Functions executed: [file index, first, last line]."
    )
    functions: dict[str, list[int]] = Field(
        default_factory=dict, description="Per test id, the units (functions) it executed."
    )
    monitor: str = ""

    def by_lines(self, path: str, lines: set[int]) -> set[str] | None:
        """Tests that executed a function holding one of ``lines`` of ``path``; None when a
        line lies outside every executed function (module level: the file decides)."""
        if not lines or path not in self.files:
            return None
        index = self.files.index(path)
        spans = [(u, s[1], s[2]) for u, s in enumerate(self.units) if len(s) == 3 and s[0] == index]
        hit: set[int] = set()
        for line in lines:
            inside = {u for u, first, last in spans if first <= line <= last}
            if not inside:
                return None
            hit |= inside
        return {t for t, units in self.functions.items() if hit.intersection(units)}

    def reached(self) -> dict[str, set[str]]:
        """Each test's files, widened by one hop of the modules those files import."""
        out: dict[str, set[str]] = {}
        for test_id, indices in self.tests.items():
            found = set(indices)
            for i in indices:
                found.update(self.deps.get(str(i), ()))
            out[test_id] = {self.files[i] for i in found if 0 <= i < len(self.files)}
        return out


class Selection(Model):
    """What to run first: ``everything`` or the ids and test files named."""

    everything: bool
    reason: str
    ids: list[str] = Field(default_factory=list)
    files: list[str] = Field(default_factory=list, description="Changed test files, whole.")


def read_testmap(stream: bytes) -> TestMap | None:
    """The ``testmap`` record of a harness stream already checked by the grader."""
    found: dict[str, Any] | None = None
    for line in stream.decode("utf-8", errors="replace").splitlines():
        if '"kind": "testmap"' not in line:
            continue
        try:
            record = json.loads(line)["record"]
        except (ValueError, KeyError, TypeError):
            return None
        if isinstance(record, dict) and record.get("kind") == "testmap":
            found = record
    if found is None:
        return None
    try:
        keys = ("files", "tests", "deps", "units", "functions")
        return TestMap.model_validate({k: found[k] for k in keys if k in found})
    except ValueError:
        return None


def select_tests(
    patch: ParsedPatch,
    testmap: TestMap | None,
    baseline: SuiteRun,
    fail_to_pass: list[str],
    test_globs: list[str],
) -> Selection:
    """The affected tests of ``changes`` from the baseline's map, or everything, and why."""
    if testmap is None:
        return Selection(everything=True, reason="no per-test map for this baseline yet")
    if not testmap.tests:
        return Selection(everything=True, reason="this commit's per-test map maps no test")
    reached = testmap.reached()
    known = set().union(*reached.values()) if reached else set()
    touched = touched_lines(patch.text)
    changes = patch.files
    sources: set[str] = set()
    test_files: list[str] = []
    changed_tests: set[str] = set()
    for change in changes:
        for path in {change.path, change.old_path} - {None}:
            assert path is not None
            why = _needs_everything(path, change, known, test_globs)
            if why:
                return Selection(everything=True, reason=why)
            if is_test_path(path, test_globs):
                changed_tests.add(path)
                if change.status != "deleted" and path == change.path:
                    test_files.append(path)
            sources.add(path)
    ids: set[str] = set()
    for path in sources:
        # a change inside functions selects the tests that ran them; else the whole file's
        narrow = testmap.by_lines(path, touched.get(path, set()))
        ids |= narrow if narrow is not None else {t for t, f in reached.items() if path in f}
    ids.update(t for t in fail_to_pass if t in baseline.tests or t in reached)
    # the baseline's failing tests are the likely fail-to-pass ones; many is a broken suite
    failing = [t for t, r in baseline.tests.items() if r.outcome in _BAD]
    if len(failing) <= FAIL_TO_PASS_GUESSES:
        ids.update(failing)
    # a test the map lacks (run twice, or collected only on the baseline) is not ruled out
    ids.update(t for t in baseline.tests if t not in reached and "::" in t and " (#" not in t)
    # a changed test file runs whole (by path); a deleted one's ids no longer exist
    ids = {t for t in ids if t.split("::", 1)[0] not in changed_tests}
    total = len(baseline.tests) or len(reached)
    in_files = {*reached, *baseline.tests}
    count = len(ids) + sum(1 for t in in_files if t.split("::", 1)[0] in test_files)
    if total and count >= MOST_OF_THE_SUITE * total and count > 1:
        return Selection(
            everything=True, reason=f"the change reaches most of the suite ({count} of {total})"
        )
    named = ", ".join(sorted(sources)[:3]) + (" …" if len(sources) > 3 else "")
    whole, ids = _whole_files(ids, reached)
    return Selection(
        everything=False,
        reason=f"tests that executed {named}, the fail-to-pass ids and the changed test files",
        ids=sorted(ids),
        files=sorted({*test_files, *whole}),
    )


def touched_lines(diff: str) -> dict[str, set[int]]:
    """Per old path, the old tree's lines a diff removes, or inserts beside.

    An insertion counts the line before it; an unindented one (module level) also gets
    line 0, which no function holds, so the file decides.
    """
    out: dict[str, set[int]] = {}
    lines: set[int] = set()
    old = 0
    for text in diff.splitlines():
        if text.startswith("--- "):
            name = text[4:].split("\t", 1)[0]
            lines = out.setdefault(name[2:] if name.startswith("a/") else name, set())
        elif text.startswith("+++ "):
            continue
        elif text.startswith("@@"):
            match = _HUNK.match(text)
            old = int(match.group(1)) if match else 0
        elif text.startswith("-"):
            lines.add(old)
            old += 1
        elif text.startswith("+"):
            if not text[1:].strip():
                continue  # a blank line changes nothing
            lines.add(old - 1)
            if not text[1:2].isspace():
                lines.add(0)
        elif text.startswith(" "):
            old += 1
    return out


def _whole_files(ids: set[str], reached: dict[str, set[str]]) -> tuple[set[str], set[str]]:
    """Files every one of whose mapped tests is selected (named by path), and the rest."""
    by_file: dict[str, set[str]] = {}
    for test_id in reached:
        by_file.setdefault(test_id.split("::", 1)[0], set()).add(test_id)
    whole = {f for f, tests in by_file.items() if len(tests) > 1 and tests <= ids}
    return whole, {t for t in ids if t.split("::", 1)[0] not in whole}


def _needs_everything(path: str, change: FileChange, known: set[str], globs: list[str]) -> str:
    name = posixpath.basename(path)
    if name in CONFIG_FILES:
        return f"the diff touches {path}, which every test may depend on"
    if not name.endswith(".py"):
        return f"the diff touches {path}, which the per-test map cannot see (not Python)"
    if path not in known and change.status != "added" and not is_test_path(path, globs):
        return f"the diff touches {path}, which no test executed on the baseline"
    return ""


def _passed_before(baseline: SuiteRun, test_id: str) -> bool:
    """New on the candidate, or not failing on the baseline: a failure now is the patch's."""
    before = baseline.tests.get(test_id)
    return before is None or before.outcome not in _BAD


def early_answer(
    selection: Selection,
    baseline: SuiteRun | None,
    early: SuiteRun | None,
    fail_to_pass: list[str],
    seconds: float | None,
    *,
    named: bool = True,
) -> EarlyAnswer:
    """The early section from the selection and the early run (None: nothing ran).

    ``fail_to_pass`` is the job's (``named``), or else the tests of its own test files that
    failed on the baseline: those count as early failures only while none of them passes
    (the bug still shows); a partial fix is the full comparison's to judge.
    """
    if selection.everything or early is None or baseline is None:
        what = "none" if selection.everything else "no affected tests"
        return EarlyAnswer(
            selection="all" if selection.everything else "affected",
            reason=selection.reason,
            seconds=seconds,
            answer=f"{what} ({selection.reason}); full suite running",
        )
    failed = [
        t
        for t, r in early.tests.items()
        if r.outcome in _BAD and (t in fail_to_pass or _passed_before(baseline, t))
    ]
    failed += [e.id for e in early.collection_errors if e.id not in failed]
    if not early.valid and not failed:
        failed = [f"<early run: {early.invalid_reason}>"]
    f2p_ran = [t for t in fail_to_pass if t in early.tests]
    f2p_ok = [t for t in f2p_ran if early.tests[t].outcome not in _BAD]
    if not named and f2p_ok:
        failed = [t for t in failed if t not in fail_to_pass]
    passed = sum(1 for r in early.tests.values() if r.outcome not in _BAD)
    others = sum(
        1 for t, r in early.tests.items() if r.outcome not in _BAD and t not in fail_to_pass
    )
    as_before = sum(1 for r in early.tests.values() if r.outcome in _BAD) - len(failed)
    label = "fail-to-pass" if named else "the job's tests that failed on the baseline"
    head = f"{label} {len(f2p_ok)}/{len(fail_to_pass)} pass, " if fail_to_pass else ""
    if failed:
        tail = f"{len(failed)} of {len(early.tests)} affected tests fail ({failed[0]})"
    else:
        tail = f"{others} affected tests pass"
        tail += f", {as_before} fail as on the baseline" if as_before > 0 else ""
    return EarlyAnswer(
        selection="affected",
        reason=selection.reason,
        selected=len(early.tests),
        ids=sorted(early.tests)[:IDS_SHOWN],
        passed=passed,
        failed=failed[:FAILED_SHOWN],
        fail_to_pass=f"{len(f2p_ok)}/{len(fail_to_pass)}" if fail_to_pass else "",
        seconds=seconds,
        answer=f"{head}{tail}",
    )
