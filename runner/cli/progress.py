"""Progress a person can follow: one line per phase, and on a terminal a live status.

Off a terminal (CI logs, pipes) each phase is one plain line. On a terminal the same
lines are printed and, below them, a spinner names the current step and its elapsed
time, so a cold environment build or a long suite visibly moves.
"""

from __future__ import annotations

from types import TracebackType

from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TaskID, TextColumn, TimeElapsedColumn
from rich.text import Text

from runner.reports.text import printable


class PhaseProgress:
    """A ``progress(phase, message)`` callback; use as a context manager around the job."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self._live: Progress | None = None
        self._task: TaskID | None = None
        if console.is_terminal:
            self._live = Progress(
                SpinnerColumn(),
                TextColumn("{task.description}", markup=False),
                TimeElapsedColumn(),
                console=console,
                transient=True,
            )

    def __enter__(self) -> PhaseProgress:
        if self._live is not None:
            self._live.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._live is not None:
            self._live.stop()

    def __call__(self, phase: str, message: str) -> None:
        line = Text.assemble((">", "dim"), f" {phase:<9} ", printable(message, one_line=True))
        self.console.print(line)
        if self._live is not None:
            # a new task per phase: its elapsed time is the phase's own
            if self._task is not None:
                self._live.update(self._task, visible=False)
            description = f"{printable(phase, one_line=True)}: {printable(message, True)}"
            self._task = self._live.add_task(description, total=None)
