"""What every command shares: the stderr console, a parser that exits 2 with one line,
settings and logging set up once, and the wrapper that turns errors into exit codes."""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runner.errors import ImageBuildError, RunnerError, UsageError

if TYPE_CHECKING:
    from rich.console import Console

    from runner.config import Settings

# The CLI's start-up imports neither rich, pydantic, structlog nor the Docker SDK: each
# is imported where a command first needs it, so `--help` and `--version` answer at once.


class Terminated(KeyboardInterrupt):
    """SIGTERM (a CI runner's cancel, `timeout`): the job stops and cleans up as on Ctrl-C."""


def terminate_as_interrupt() -> None:
    """Make SIGTERM raise Terminated in the main thread (a no-op in any other thread)."""
    import signal
    import threading

    def _raise(signum: int, frame: object) -> None:
        raise Terminated

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _raise)


class _Stderr:
    """The stderr console, made on first use (rich costs a tenth of a second to import)."""

    _console: Console | None = None

    @property
    def console(self) -> Console:
        """The rich Console behind it."""
        if self._console is None:
            from rich.console import Console

            self._console = Console(stderr=True, highlight=False, soft_wrap=True)
        return self._console

    def print(self, *objects: Any, **kwargs: Any) -> None:
        """Console.print on stderr."""
        self.console.print(*objects, **kwargs)


stderr = _Stderr()
# Where an unexpected error's traceback goes: the running job's folder once a command
# knows it, else the state directory once settings are read, else the temp directory.
_where: dict[str, Path] = {}


def set_job_folder(folder: Path) -> None:
    """The job folder an unexpected error of this command should name."""
    _where["job"] = folder


class Parser(argparse.ArgumentParser):
    """argparse that exits 2 with one line, as the contract says for bad usage."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(f"{self.prog}: {message}")


def command_settings(args: argparse.Namespace) -> Settings:
    """The settings of a one-shot command, with logging configured for a person."""
    from runner.common.logs import configure_logging
    from runner.config import load_settings

    settings = load_settings(args.config)
    _where["state"] = settings.paths.root
    # A person at a one-shot command reads its output, not the event log: only warnings
    # and errors unless --verbose. Long-running commands (serve, worker) log at the
    # configured level.
    configure_logging(settings.log_level if getattr(args, "verbose", False) else "warning")
    return settings


def check_writable(path: Path, flag: str, *, folder: bool = False) -> None:
    """Refuse, before any work, an output the user named that cannot be written."""
    if folder and path.exists() and not path.is_dir():
        raise UsageError(f"{flag} {path}: exists and is not a folder")
    if not folder and path.is_dir():
        raise UsageError(f"{flag} {path}: is a folder, not a file")
    target = path if folder else path.parent
    existing = target
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise UsageError(f"{flag} {path}: {existing} is not a folder")
    if not os.access(existing, os.W_OK | os.X_OK) or (
        path.exists() and not os.access(path, os.W_OK)
    ):
        raise UsageError(f"{flag} {path}: not writable")


def _log_unexpected(exc: BaseException) -> Path:
    """Write the traceback where the user can read it; return that file."""
    import tempfile

    stamp = f"{datetime.now(UTC):%Y%m%dT%H%M%S}"
    places: list[tuple[Path, str]] = []
    if "job" in _where:
        places.append((_where["job"], "cli-error.log"))
    if "state" in _where:
        places.append((_where["state"] / "logs", f"cli-error-{stamp}-{os.getpid()}.log"))
    places.append((Path(tempfile.gettempdir()), f"fixrunner-error-{stamp}-{os.getpid()}.log"))
    text = "".join(traceback.format_exception(exc))
    for folder, name in places:
        try:
            folder.mkdir(parents=True, exist_ok=True)
            with (folder / name).open("a", encoding="utf-8") as handle:
                handle.write(text)
            return folder / name
        except OSError:
            continue
    return Path("-")


def escape(text: str) -> str:
    """Text shown as itself in rich markup."""
    from rich.markup import escape as rich_escape

    return rich_escape(text)


def _verbose(argv: Sequence[str] | None) -> bool:
    args = sys.argv[1:] if argv is None else argv
    return any(a in ("-v", "--verbose") for a in args)


def run_command(main: Callable[[Sequence[str] | None], int], argv: Sequence[str] | None) -> int:
    """Run a command's main: exit 0/1/2 as the contract says, whatever goes wrong.

    A RunnerError is one line and its exit code; anything unexpected is one line naming
    the log that holds the traceback (printed too with ``-v``), and exit 2.
    """
    _where.clear()
    try:
        return main(argv)
    except ImageBuildError as exc:
        stderr.print(f"[red]error:[/red] {escape(str(exc))}")
        if exc.log:
            stderr.print("[dim]--- last lines of the build log ---[/dim]")
            stderr.print(exc.log, markup=False)
        return exc.exit_code
    except RunnerError as exc:
        stderr.print(f"[red]error:[/red] {escape(str(exc))}")
        return exc.exit_code
    except Terminated:
        stderr.print("terminated")
        return 143
    except KeyboardInterrupt:
        stderr.print("interrupted")
        return 130
    except Exception as exc:  # the contract: never a traceback, always exit 2
        log_file = _log_unexpected(exc)
        if _verbose(argv):
            stderr.print("".join(traceback.format_exception(exc)), markup=False)
        job = f"job folder {_where['job']}; " if "job" in _where else ""
        stderr.print(
            f"[red]error:[/red] unexpected {escape(type(exc).__name__)}: "
            f"{escape(str(exc).splitlines()[0] if str(exc) else '')} ({escape(job)}"
            f"traceback in {escape(str(log_file))}; please report it)"
        )
        return 2
