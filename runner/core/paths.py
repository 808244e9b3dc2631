"""Path rules: gitignore-like globs, and which paths belong to the tests.

Pure: a path and globs in, a yes or no out.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

__all__ = ["DEFAULT_TEST_GLOBS", "glob_match", "is_test_path"]

DEFAULT_TEST_GLOBS: tuple[str, ...] = (
    "tests/**",
    "**/tests/**",
    "test_*.py",
    "*_test.py",
    "conftest.py",
)


@dataclass(frozen=True)
class _Glob:
    regex: re.Pattern[str]
    anchored: bool


def _compile_glob(glob: str) -> _Glob:
    # gitignore-like: a glob without "/" matches a basename at any depth, a leading "/"
    # anchors it at the root; "**" spans directories, "*" and "?" stay within one component
    anchored = "/" in glob.rstrip("/")
    glob = glob.removeprefix("/")
    out, i = [], 0
    while i < len(glob):
        if glob.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif glob.startswith("**", i):
            out.append(".*")
            i += 2
        elif glob[i] == "*":
            out.append("[^/]*")
            i += 1
        elif glob[i] == "?":
            out.append("[^/]")
            i += 1
        else:
            out.append(re.escape(glob[i]))
            i += 1
    return _Glob(re.compile("".join(out) + r"\Z"), anchored)


def glob_match(path: str, globs: Iterable[str]) -> bool:
    """True when ``path`` matches any glob (``**`` spans dirs; slash-less globs match names)."""
    path = path.lstrip("/")
    name = path.rsplit("/", 1)[-1]
    for glob in globs:
        compiled = _compile_glob(glob)
        if compiled.regex.match(path if compiled.anchored else name):
            return True
    return False


def is_test_path(path: str, globs: Iterable[str] = DEFAULT_TEST_GLOBS) -> bool:
    """True when ``path`` belongs to the test part (tests/**, test_*.py, conftest.py…)."""
    return glob_match(path, globs)
