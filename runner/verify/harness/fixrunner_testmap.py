"""Which of the tree's functions and files each test executes: the baseline's per-test map.

Loaded by ``fixrunner_harness`` only when the runner passes ``--fixrunner-testmap`` (the
baseline run), so the candidate's runs never carry it. Per test (set-up, call and
tear-down) it collects every code object started under the work tree (recorded as its
file and line span): with ``sys.monitoring`` where the Python has it (3.12+; each code
object reports once per test, then is disabled until the next test; with no free tool
id no test is mapped), else with the C profiler behind cProfile (``_lsprof``, no
sub-call bookkeeping, builtins ignored), enabled only during each test's runtest
protocol and read once at its end: no Python call per event, and collection and the
session's start and end run unhooked (the map's extra CPU fell by 40-46 % against a
session-long Python trace function; docs/benchmarks.md). Threads a test starts get a
Python trace function that sees call events and traces no frame further. At the end of
the session it adds each tree module's direct dependencies (the tree modules its import
statements name, so a change to a constant counts for the code reading it) and hands
one ``testmap`` record to the harness's signed stream.

It only observes: nothing it does changes what a test sees, apart from a profile function
(and a trace function for new threads) being set on Pythons without ``sys.monitoring``
(a test that replaces the profile function, as a profiler would, is left out of the map,
so the runner selects it whatever changes; the hook is set again for the next test).
"""

from __future__ import annotations

import _lsprof
import ast
import dis
import importlib.util
import os
import sys
import threading
import types
import typing
from collections.abc import Callable, Iterator

import pytest

_TOOL_NAME = "fixrunner-testmap"
# Tool ids 3 and 4 have no assigned user: coverage (1), debuggers (0) and profilers (2)
# keep theirs, so a suite measuring itself still can.
_FREE_TOOL_IDS = (4, 3)


class TestMap:
    """The files each test executed, relative to the work tree."""

    __test__ = False  # not a pytest test class

    def __init__(self, work: str, write: Callable[..., None]) -> None:
        self._prefix = work.rstrip(os.sep) + os.sep
        self._work = work
        self._write = write
        # by id(): a code object hashes its whole contents on every lookup
        self._current: dict[int, types.CodeType] = {}
        self._outside: set[int] = set()
        self._keep: list[types.CodeType] = []  # outside codes stay alive: ids stay theirs
        self._tests: dict[str, tuple[list[types.CodeType], str]] = {}
        self._tool: int | None = None
        self._profiler: typing.Any = None  # _lsprof.Profiler before 3.12
        self._monitor = "lsprof"
        # typed loosely: the checker's Python (3.11) has no sys.monitoring
        self._monitoring: typing.Any = getattr(sys, "monitoring", None)
        self._start()

    # ------------------------------------------------------------------ collection
    def _start(self) -> None:
        monitoring = self._monitoring
        if monitoring is not None:
            for tool in _FREE_TOOL_IDS:
                if monitoring.get_tool(tool) is None:
                    monitoring.use_tool_id(tool, _TOOL_NAME)
                    monitoring.register_callback(tool, monitoring.events.PY_START, self._on_start)
                    monitoring.set_events(tool, monitoring.events.PY_START)
                    self._tool = tool
                    self._monitor = "sys.monitoring"
                    return
            # every free tool id taken (the suite monitors itself): no test is mapped, so
            # the runner selects every test whatever changes
            self._monitor = "none"
            return
        # cProfile's C core: no Python call per event; no caller/callee pairs, no builtins
        self._profiler = _lsprof.Profiler(subcalls=False, builtins=False)
        # a thread a test starts: a trace function on call events only (returning None
        # leaves each frame untraced)
        threading.settrace(self._on_call)

    def _see(self, code: types.CodeType) -> None:
        key = id(code)
        if key in self._current or key in self._outside:
            return
        if code.co_filename.startswith(self._prefix):
            self._current[key] = code
        else:
            self._outside.add(key)
            self._keep.append(code)

    def _on_start(self, code: types.CodeType, offset: int) -> object:
        self._see(code)
        # once per code object per test: restart_events() re-arms it for the next test
        return self._monitoring.DISABLE

    def _on_call(self, frame: types.FrameType, event: str, arg: object) -> None:
        self._see(frame.f_code)

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_protocol(self, item: pytest.Item) -> Iterator[None]:
        """Collect what set-up, call and tear-down of ``item`` execute."""
        self._current = {}
        profiler = self._profiler
        if self._tool is not None:
            self._monitoring.restart_events()
        elif profiler is not None:
            profiler.clear()
            profiler.enable()
        yield
        if self._tool is None and profiler is None:
            return  # nothing watched this test: left out of the map
        if profiler is not None:
            replaced = sys.getprofile() is not profiler
            profiler.disable()
            if not replaced:
                for entry in profiler.getstats():
                    if isinstance(entry.code, types.CodeType):  # else a builtin's name
                        self._see(entry.code)
            profiler.clear()
            threading.settrace(self._on_call)
            if replaced:
                # replaced by the test (a profiler): what it ran is unknown
                return
        path = str(getattr(item, "path", "") or "")
        self._tests[item.nodeid] = (list(self._current.values()), path)

    # --------------------------------------------------------------------- record
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        """Stop collecting and write one ``testmap`` record (before the harness's ``finish``)."""
        self._stop()
        try:
            self._record()
        except Exception as exc:  # the map is an extra: never the run's end
            self._write("testmap_failed", error=f"{type(exc).__name__}: {exc}"[:500])

    def _record(self) -> None:
        files: dict[str, int] = {}
        units: dict[int, int] = {}
        spans: list[list[int]] = []

        def index(path: str) -> int:
            rel = os.path.relpath(path, self._work)
            return files.setdefault(rel, len(files))

        def unit(code: types.CodeType) -> int:
            found = units.get(id(code))
            if found is None:
                found = units[id(code)] = len(spans)
                spans.append([index(code.co_filename), *_span(code)])
            return found

        tests: dict[str, list[int]] = {}
        functions: dict[str, list[int]] = {}
        for nodeid, (codes, path) in self._tests.items():
            functions[nodeid] = sorted({unit(c) for c in codes})
            own = {index(path)} if path.startswith(self._prefix) else set()
            tests[nodeid] = sorted({spans[u][0] for u in functions[nodeid]} | own)
        deps = {index(f): sorted(index(d) for d in used) for f, used in _module_deps(self._prefix)}
        self._write(
            "testmap",
            files=sorted(files, key=files.__getitem__),
            tests=tests,
            deps={str(k): v for k, v in deps.items() if v},
            units=spans,
            functions=functions,
            monitor=self._monitor,
        )

    def _stop(self) -> None:
        if self._tool is not None:
            self._monitoring.set_events(self._tool, 0)
            self._monitoring.free_tool_id(self._tool)
            self._tool = None
        elif self._profiler is not None:
            self._profiler.disable()
            self._profiler = None
            threading.settrace(None)


def _span(code: types.CodeType) -> tuple[int, int]:
    """The first and last source line of a code object (decorators included)."""
    # dis.findlinestarts works on every Python the bases carry (co_lines is 3.10+).
    lines = [line for _, line in dis.findlinestarts(code) if line is not None]
    return code.co_firstlineno, max(lines, default=code.co_firstlineno)


def _module_deps(prefix: str) -> Iterator[tuple[str, set[str]]]:
    """Each tree module's file with the tree modules' files it imports (one hop)."""
    by_name = {
        name: path
        for name, module in list(sys.modules.items())
        if (path := _file_of(module)) is not None and path.startswith(prefix)
    }
    for name, own in by_name.items():
        if not own.endswith(".py"):
            continue
        package = name if own.endswith("__init__.py") else name.rpartition(".")[0]
        used = {by_name[n] for n in _imported(own, package) if n in by_name}
        used.discard(own)
        yield own, used


def _imported(path: str, package: str) -> set[str]:
    """Absolute names of what a module's import statements name (module or attribute)."""
    try:
        with open(path, "rb") as handle:
            tree = ast.parse(handle.read(), path)
    except (OSError, SyntaxError, ValueError):
        return set()
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                names.update(".".join(parts[: i + 1]) for i in range(len(parts)))
        elif isinstance(node, ast.ImportFrom):
            try:
                base = importlib.util.resolve_name("." * node.level + (node.module or ""), package)
            except (ImportError, ValueError):
                continue
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)
    return names


def _file_of(module: object) -> str | None:
    try:
        path = getattr(module, "__file__", None)
    except Exception:  # a lazy module's __getattr__ may raise anything
        return None
    return path if isinstance(path, str) else None
