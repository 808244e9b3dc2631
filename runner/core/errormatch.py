"""Matching exceptions: an expected error against parsed ones, and frames to repository files.

Pure functions on the parser's output (runner.core.tracebacks).
"""

from __future__ import annotations

import itertools
import re

from runner.core.tracebacks import _TYPE, _norm, _short, iter_exceptions, parse_all_exceptions
from runner.models.tracebacks import ExceptionInfo, ExpectedError, Frame, RepoFrame

__all__ = [
    "contains_error",
    "matches_expected",
    "parse_expected",
    "repo_frames",
    "repo_relative",
]

# Path components that mark a frame as outside the repository (installed or stdlib code).
_NON_REPO_DIRS = frozenset({"site-packages", "dist-packages"})
_STDLIB_DIR = re.compile(r"^python\d+(?:\.\d+)?t?$", re.IGNORECASE)


def parse_expected(expected: str) -> ExpectedError:
    """Parse ``Type`` or ``Type: message prefix``; ValueError when the type is not a name."""
    type_part, sep, message = expected.strip().partition(":")
    type_part = type_part.strip()
    if not re.fullmatch(_TYPE, type_part):
        raise ValueError(
            f"expected error must look like 'Type' or 'Type: message', got {expected!r}"
        )
    return ExpectedError(
        type=type_part, short_type=_short(type_part), message=_norm(message) if sep else None
    )


def matches_expected(info: ExceptionInfo | None, expected: str | ExpectedError) -> bool:
    """Whether `info` is the expected error: same short type, message starting with the prefix."""
    if info is None:
        return False
    exp = parse_expected(expected) if isinstance(expected, str) else expected
    if info.short_type != exp.short_type:
        return False
    return exp.message is None or _norm(info.message).startswith(exp.message)


def contains_error(output: str, expected: str | ExpectedError) -> bool:
    """Whether the expected error shows anywhere in `output`: in any traceback, or as text.

    Catches a run that printed the error (``traceback.print_exc()``, a log line, a repr
    such as ``RuntimeError('…')``) and still exited 0.
    """
    exp = parse_expected(expected) if isinstance(expected, str) else expected
    for top in parse_all_exceptions(output):
        if any(matches_expected(info, exp) for info in iter_exceptions(top)):
            return True
    type_re = rf"(?<![\w]){re.escape(exp.short_type)}"
    if exp.message is None:
        pattern = rf"{type_re}(?=:|\(|\s*$)"
    else:
        words = [re.escape(word) for word in exp.message.split()]
        msg_re = r"\s+".join(words)
        pattern = rf"{type_re}(?::\s*{msg_re}|\(\s*['\"]{msg_re})"
    return re.search(pattern, output, re.MULTILINE) is not None


def repo_relative(frame_path: str, repo_files: set[str] | frozenset[str]) -> str | None:
    """Map a frame's path to a repository file by the longest path suffix it shares with one.

    Deployment prefixes (/app/, /srv/name/, /home/u/proj/, C:\\…) fall away; installed and
    standard-library code (site-packages, dist-packages, lib/pythonX.Y, <frozen …>) gives None.
    """
    path = frame_path.strip().replace("\\", "/")
    if not path or path.startswith("<"):
        return None
    path = re.sub(r"^[A-Za-z]:", "", path)
    parts = [part for part in path.split("/") if part not in ("", ".")]
    lowered = [part.lower() for part in parts]
    if any(part in _NON_REPO_DIRS for part in lowered):
        return None
    for a, b in itertools.pairwise(lowered):
        if a in ("lib", "lib64") and _STDLIB_DIR.match(b):
            return None
    for size in range(len(parts), 0, -1):
        candidate = "/".join(parts[-size:])
        if candidate in repo_files:
            return candidate
    return None


def repo_frames(info: ExceptionInfo, repo_files: set[str] | frozenset[str]) -> list[RepoFrame]:
    """The frames of `info` (and of its syntax location) that map to repository files."""
    result: list[RepoFrame] = []
    for frame in info.frames:
        repo_path = repo_relative(frame.path, repo_files)
        if repo_path is not None:
            result.append(RepoFrame(frame=frame, repo_path=repo_path))
    if info.syntax is not None:
        repo_path = repo_relative(info.syntax.path, repo_files)
        if repo_path is not None:
            frame = Frame(
                path=info.syntax.path,
                line=info.syntax.line,
                function="<syntax error>",
                source=info.syntax.text,
            )
            result.append(RepoFrame(frame=frame, repo_path=repo_path))
    return result
