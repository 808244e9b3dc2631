"""Patch coverage: the pure computation and the sandbox's line tracer (run here on our own code)."""

from __future__ import annotations

import contextlib
import gc
import importlib.util
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from runner.core.comparison import compare
from runner.core.grading import grade
from runner.core.patch import parse_patch
from runner.core.patchcoverage import executable_lines, patch_coverage
from runner.models import Evidence, JUnitReport, SourceChange, TestResult
from runner.verify.harness import HARNESS_SOURCE

T = "tests/test_x.py::test_y"
BEFORE = "def f(x):\n    return x\n\n\ndef g(x):\n    return x\n"
AFTER = 'def f(x):\n    """Doc."""\n    return x + 1\n\n\ndef g(x):\n    # why\n    return x - 1\n'
PATCH = """\
diff --git a/app/m.py b/app/m.py
--- a/app/m.py
+++ b/app/m.py
@@ -1,6 +1,8 @@
 def f(x):
-    return x
+    \"\"\"Doc.\"\"\"
+    return x + 1
|
|
 def g(x):
-    return x
+    # why
+    return x - 1
""".replace("\n|", "\n ")  # blank context lines (a space) without trailing whitespace


def evidence(executed: dict[str, dict[str, list[int]]] | None) -> Evidence:
    before = grade(JUnitReport(tests=[TestResult(id=T, outcome="failed")]), 1)
    after = grade(JUnitReport(tests=[TestResult(id=T, outcome="passed")]), 0)
    return Evidence(
        patch=parse_patch(PATCH),
        baseline=before,
        candidate=after,
        comparison=compare(before, after),
        sources=[SourceChange(path="app/m.py", before=BEFORE, after=AFTER)],
        executed=executed,
    )


def test_only_executable_changed_lines_count_and_an_unexecuted_hunk_is_flagged() -> None:
    coverage = patch_coverage(evidence({T: {"app/m.py": [1, 3]}}), ["tests/**"])
    assert coverage is not None and coverage.measured
    (only,) = coverage.files
    # the docstring and the comment hold no code; line 3 ran, line 8 (g) did not
    assert (only.changed_lines, only.executed_lines, only.unexecuted_hunks) == (
        [3, 8],
        [3],
        ["7-8"],
    )
    assert coverage.line() == (
        "patch coverage: 1/2 changed lines executed by fail-to-pass tests; "
        "hunk app/m.py:7-8 not executed"
    )


def test_lines_run_outside_any_test_count_for_the_tests() -> None:
    coverage = patch_coverage(evidence({T: {}, "": {"app/m.py": [8]}}), ["tests/**"])
    assert coverage is not None and coverage.executed == 1


def test_without_a_traced_rerun_it_says_so() -> None:
    coverage = patch_coverage(evidence(None), ["tests/**"])
    assert coverage is not None and not coverage.measured
    assert coverage.line().startswith("patch coverage: not measured (no traced re-run")


def test_a_change_to_tests_only_has_no_patch_coverage() -> None:
    ev = evidence({T: {}})
    assert patch_coverage(ev, ["app/**"]) is None


def test_executable_lines_compile_and_run_nothing() -> None:
    lines = executable_lines("import sys\nsys.exit(1)\n\ndef f():\n    '''d'''\n    return 1\n")
    assert lines is not None and {1, 2, 4, 6} <= lines and 5 not in lines
    assert executable_lines("def (:\n") is None


@pytest.fixture
def tracing() -> Any:
    """The harness's tracer module, loaded from its file as the sandbox loads it."""
    spec = importlib.util.spec_from_file_location(
        "trace_under_test", HARNESS_SOURCE / "fixrunner_trace.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@contextlib.contextmanager
def importable(folder: Path, *names: str) -> Iterator[None]:
    """``folder``'s modules importable for the block; ``names`` forgotten after it."""
    sys.path.insert(0, str(folder))
    try:
        yield
    finally:
        sys.path.remove(str(folder))
        for name in names:
            sys.modules.pop(name, None)


def test_the_tracer_records_only_the_named_files_per_interval(tmp_path: Path, tracing: Any) -> None:
    (tmp_path / "traced.py").write_text("def f(x):\n    if x:\n        return 1\n    return 2\n")
    (tmp_path / "other.py").write_text("def g():\n    return 3\n")
    with importable(tmp_path, "traced", "other"):
        import other  # type: ignore[import-not-found]
        import traced  # type: ignore[import-not-found]

        tracer = tracing.LineTracer(str(tmp_path), ["traced.py"])
        tracer.start()
        try:
            traced.f(True)
            other.g()
            first = tracer.take()
            traced.f(False)
        finally:
            tracer.stop()
        assert first == {"traced.py": [1, 2, 3]}
        assert tracer.take() == {"traced.py": [1, 2, 4]}


def test_the_tracer_allocates_nothing_a_leak_test_would_count(tmp_path: Path, tracing: Any) -> None:
    # A leak test (sortedcontainers' test_ref_counts) compares len(gc.get_objects())
    # before and after: the traced re-run must see the same count as an untraced one.
    (tmp_path / "leaky.py").write_text("def f(x):\n    y = x + 1\n    return y\n")
    with importable(tmp_path, "leaky"):
        import leaky  # type: ignore[import-not-found]

        tracer = tracing.LineTracer(str(tmp_path), ["leaky.py"])
        interval = sys.getswitchinterval()
        # The whole suite's other threads (a runtime's watchers, a service) allocate too:
        # no switch to them while counting, and a few tries, since a real leak (one
        # object per traced call) grows the count by 50 on every try.
        sys.setswitchinterval(5.0)
        tracer.start()
        try:
            leaky.f(1)  # the file's first call makes its tracer and line set, once
            tracer.take()
            grown = []
            for _ in range(3):
                gc.collect()
                before = len(gc.get_objects())
                for n in range(50):
                    leaky.f(n)
                grown.append(len(gc.get_objects()) - before)
                if grown[-1] == 0:
                    break
            taken = tracer.take()
        finally:
            tracer.stop()
            sys.setswitchinterval(interval)
        assert 0 in grown, grown
        assert taken == {"leaky.py": [1, 2, 3]}
