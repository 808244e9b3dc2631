"""What every command shares: the stderr console, a parser that exits 2 with one line,
settings and logging set up once, and the wrapper that turns errors into exit codes."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence

from rich.console import Console

from runner.common.logs import configure_logging
from runner.config import Settings, load_settings
from runner.errors import ImageBuildError, RunnerError, UsageError

stderr = Console(stderr=True, highlight=False, soft_wrap=True)


class Parser(argparse.ArgumentParser):
    """argparse that exits 2 with one line, as the contract says for bad usage."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(f"{self.prog}: {message}")


def command_settings(args: argparse.Namespace) -> Settings:
    """The settings of a one-shot command, with logging configured for a person."""
    settings = load_settings(args.config)
    # A person at a one-shot command reads its output, not the event log: only warnings
    # and errors unless --verbose. Long-running commands (serve, worker) log at the
    # configured level.
    configure_logging(settings.log_level if getattr(args, "verbose", False) else "warning")
    return settings


def run_command(main: Callable[[Sequence[str] | None], int], argv: Sequence[str] | None) -> int:
    """Run a command's main; a RunnerError becomes one line on stderr and its exit code."""
    try:
        return main(argv)
    except ImageBuildError as exc:
        stderr.print(f"[red]error:[/red] {exc}")
        if exc.log:
            stderr.print("[dim]--- last lines of the build log ---[/dim]")
            stderr.print(exc.log, markup=False)
        return exc.exit_code
    except RunnerError as exc:
        stderr.print(f"[red]error:[/red] {exc}", markup=True)
        return exc.exit_code
    except KeyboardInterrupt:
        stderr.print("interrupted")
        return 130
