"""A line tracer for patch coverage: which lines of the changed files each test executed.

Loaded by the runner's plugin (``fixrunner_harness``) when the runner names the changed
files in ``FIXRUNNER_TRACE`` (the candidate's re-runs of its changed tests). Only frames
of those files get a local tracer, so the rest of the suite runs at nearly full speed.
Standard library only (``sys.settrace``, ``threading.settrace``): it runs in the sandbox,
where the runner installs nothing. What it reports is informational, never a pass: code
under test could stop it, but only to lose coverage.
"""

from __future__ import annotations

import os
import sys
import threading
from types import FrameType
from typing import Any

_Trace = Any  # the tracer protocol's callable; typeshed spells it loosely


class LineTracer:
    """Collects executed line numbers of a fixed set of files, per interval.

    Steady state allocates no object the garbage collector tracks: each file's local
    tracer and line set are made once and kept, and ``take`` empties the sets in place.
    A test that counts ``gc.get_objects()`` (a leak test) then sees the same numbers
    traced as untraced.
    """

    def __init__(self, work: str, files: list[str]) -> None:
        self._work = work
        self._wanted = {os.path.normpath(f) for f in files}
        self._names: dict[str, str | None] = {}
        self._lines: dict[str, set[int]] = {}
        self._locals: dict[str, _Trace] = {}

    def _file(self, filename: str) -> str | None:
        """The changed file ``filename`` is, relative to the tree, or None (cached)."""
        try:
            return self._names[filename]
        except KeyError:
            pass
        rel = None
        if not filename.startswith("<"):
            path = os.path.realpath(os.path.join(self._work, filename))
            if path.startswith(self._work + os.sep):
                candidate = os.path.relpath(path, self._work)
                rel = candidate if candidate in self._wanted else None
        self._names[filename] = rel
        return rel

    def _global(self, frame: FrameType, event: str, arg: object) -> _Trace:
        rel = self._file(frame.f_code.co_filename)
        if rel is None:
            return None
        try:
            local = self._locals[rel]
        except KeyError:
            local = self._locals[rel] = self._local_tracer(rel)
        self._lines[rel].add(frame.f_lineno)
        return local

    def _local_tracer(self, rel: str) -> _Trace:
        hits = self._lines[rel] = set()

        def local(frame: FrameType, event: str, arg: object) -> _Trace:
            if event == "line":
                hits.add(frame.f_lineno)
            return local

        return local

    def start(self) -> None:
        """Trace this thread from here on, and every thread started later."""
        threading.settrace(self._global)
        sys.settrace(self._global)

    def stop(self) -> None:
        """Stop tracing (threads already running keep their tracer until they end)."""
        sys.settrace(None)
        threading.settrace(None)

    def take(self) -> dict[str, list[int]]:
        """The lines executed since the last call, by file; the record starts afresh."""
        taken = {path: sorted(numbers) for path, numbers in sorted(self._lines.items()) if numbers}
        for numbers in self._lines.values():
            numbers.clear()
        return taken
