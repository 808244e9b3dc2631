"""Reproduce the production error itself: a command run on both trees, judged from output.

Pure: splitting a command with shell rules (never run through a shell), checking that
the files it names are in the repository, and turning two sandbox results into a
``ReproRun``. The pipeline runs the commands.
"""

from __future__ import annotations

import shlex
from pathlib import Path, PurePosixPath

from runner.core.errormatch import contains_error, matches_expected, parse_expected
from runner.core.tracebacks import parse_last_exception
from runner.errors import JobInputError
from runner.models import LastException, ReproResult, ReproRun, RunResult

HEAD_CHARS = 2000
TAIL_CHARS = 4000
# Exit statuses of `timeout` and shells when the program itself could not be run.
NOT_FOUND_EXITS = {126: "is not executable", 127: "was not found"}


class ReproInputError(JobInputError):
    """A repro command or expected error that cannot be used as given (bad input)."""


def split_command(command: str) -> list[str]:
    """argv from a command line, split with shell rules; never run through a shell."""
    try:
        argv = shlex.split(command)
    except ValueError as exc:
        raise ReproInputError(f"repro command {command!r} cannot be split: {exc}") from exc
    if not argv:
        raise ReproInputError("a repro command is empty")
    return argv


def check_expected(expect_error: str | None) -> None:
    """Refuse an --expect-error that is not ``Type`` or ``Type: message``."""
    if expect_error is not None:
        try:
            parse_expected(expect_error)
        except ValueError as exc:
            raise ReproInputError(str(exc)) from exc


def missing_files(argv: list[str], tree: Path) -> list[str]:
    """Arguments that name a repository file (a relative path ending .py or with a '/')
    which does not exist in ``tree``."""
    missing = []
    for arg in argv:
        if arg.startswith("-") or "=" in arg or "://" in arg:
            continue
        path = PurePosixPath(arg)
        if path.is_absolute() or ".." in path.parts:
            continue
        if (arg.endswith(".py") or "/" in arg) and not (tree / path).exists():
            missing.append(arg)
    return missing


def _result(run: RunResult) -> ReproResult:
    info = parse_last_exception(run.output)
    text = run.output
    return ReproResult(
        exit_code=run.exit_code,
        timed_out=run.timed_out,
        last_exception=LastException(type=info.type, message=info.message) if info else None,
        output_head=text[:HEAD_CHARS],
        output_tail=text[-TAIL_CHARS:] if len(text) > HEAD_CHARS else "",
    )


def evaluate(
    command: str, expect_error: str | None, baseline: RunResult, candidate: RunResult
) -> ReproRun:
    """One command's evidence: did the baseline fail as expected, and is the error gone?"""
    base_info = parse_last_exception(baseline.output)
    matched = matches_expected(base_info, expect_error) if expect_error else False
    # Without --expect-error, the baseline's own last exception is what must disappear.
    expected = expect_error or (f"{base_info.short_type}" if base_info else None)
    if expect_error is None and base_info is not None and base_info.message.strip():
        first = base_info.message.strip().splitlines()[0]
        expected = f"{base_info.short_type}: {first}"
    in_candidate = bool(expected) and contains_error(candidate.output, expected or "")
    return ReproRun(
        command=command,
        expect_error=expect_error,
        baseline=_result(baseline),
        candidate=_result(candidate),
        baseline_matched=matched,
        error_in_candidate_output=in_candidate,
    )


def not_runnable(result: RunResult) -> str | None:
    """Why a command could not be started at all (not found, not executable), if so."""
    if result.exit_code in NOT_FOUND_EXITS and not result.timed_out:
        return NOT_FOUND_EXITS[result.exit_code]
    return None
