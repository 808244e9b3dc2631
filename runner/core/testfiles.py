"""Test files only unittest discovery finds: which ones exist, and whether pytest should too.

pytest collects ``test_*.py`` and ``*_test.py`` unless a project sets ``python_files``;
unittest discovery loads ``test*.py``, so a suite kept in ``test.py`` or ``tests.py``
(run with ``python -m unittest``) is invisible to a default pytest run. Pure: names and
texts in, a decision out; sources are parsed with :mod:`ast`, never imported.
"""

from __future__ import annotations

import ast
import configparser
import fnmatch
import re
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

__all__ = [
    "PYTEST_CONFIG_FILES",
    "PYTEST_DEFAULT_FILES",
    "UnittestFiles",
    "configures_python_files",
    "defines_tests",
    "only_unittest_finds",
]

PYTEST_DEFAULT_FILES: tuple[str, ...] = ("test_*.py", "*_test.py")
# unittest's default discovery pattern, and the names it accepts as modules at all
_UNITTEST_PATTERN = "test*.py"
_MODULE_NAME = re.compile(r"[_a-z]\w*\.py\Z", re.IGNORECASE)
# Every file pytest reads its ini options from, with the section that holds them.
PYTEST_CONFIG_FILES: dict[str, tuple[str, ...]] = {
    "pytest.ini": ("pytest", "tool:pytest"),
    ".pytest.ini": ("pytest", "tool:pytest"),
    "pytest.toml": ("pytest",),
    ".pytest.toml": ("pytest",),
    "pyproject.toml": ("tool.pytest.ini_options", "tool.pytest"),
    "tox.ini": ("pytest",),
    "setup.cfg": ("tool:pytest",),
}
# Characters pytest's fnmatch or ini splitting, or the policy's globs, would read as syntax.
_GLOB_MAGIC = re.compile(r"[*?\[\]\s'\"\\]")
_NOTE_NAMES = 8


def only_unittest_finds(name: str) -> bool:
    """True for a file name unittest's ``test*.py`` loads and pytest's default skips."""
    return (
        fnmatch.fnmatchcase(name, _UNITTEST_PATTERN)
        and _MODULE_NAME.match(name) is not None
        and not any(fnmatch.fnmatchcase(name, p) for p in PYTEST_DEFAULT_FILES)
    )


def defines_tests(source: str | bytes) -> bool:
    """True when a module defines tests: TestCase-like classes with ``test*`` methods, or
    ``test*`` functions that take no argument or live in a module that imports pytest.

    A source module named like a test file (werkzeug's ``test.py`` client, jinja's
    ``tests.py`` of template tests taking a value) defines neither, so it stays source.
    """
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        return False
    framework = _imports_pytest(tree)
    test_like: set[str] = set()
    for node in tree.body:
        if _is_test_function(node) and (framework or not _parameters(node)):
            return True
        if isinstance(node, ast.ClassDef):
            bases = [_last_name(b) for b in node.bases]
            if node.name.startswith("Test") or any(b in test_like or "Test" in b for b in bases):
                test_like.add(node.name)
                if _has_test_method(node):
                    return True
    return False


def configures_python_files(configs: Mapping[str, str]) -> bool:
    """True when any of pytest's config files (name → text) sets ``python_files``."""
    for name, text in configs.items():
        sections = PYTEST_CONFIG_FILES.get(name)
        if sections is None:
            continue
        if name.endswith(".toml"):
            if _toml_sets(text, sections):
                return True
        elif _ini_sets(text, sections):
            return True
    return False


@dataclass(frozen=True)
class UnittestFiles:
    """The run's one decision on test files beyond pytest's default ``python_files``."""

    files: tuple[str, ...] = ()
    """Paths (relative to the tree, '/'-separated) of the test files to collect too."""
    configured: bool = False
    """The project sets ``python_files`` itself: its setting stands, nothing is added."""

    @classmethod
    def decide(
        cls, configs: Iterable[Mapping[str, str]], found: Iterable[tuple[str, str | bytes]]
    ) -> UnittestFiles:
        """Decide from each tree's pytest config files (name → text) and the candidate
        files' (path, source) pairs: a path found in two trees counts if either defines tests.
        """
        if any(configures_python_files(c) for c in configs):
            return cls(configured=True)
        files = {
            path
            for path, text in found
            if only_unittest_finds(path.rsplit("/", 1)[-1])
            and not _GLOB_MAGIC.search(path)
            and defines_tests(text)
        }
        return cls(files=tuple(sorted(files)))

    def test_globs(self) -> list[str]:
        """The policy's test globs for these files, anchored at the tree's root."""
        return [f"/{path}" for path in self.files]

    def python_files(self, root: str) -> list[str]:
        """pytest's ``python_files`` patterns: the defaults, then each file's absolute path."""
        return [*PYTEST_DEFAULT_FILES, *(f"{root.rstrip('/')}/{path}" for path in self.files)]

    def note(self) -> str:
        """The environment note that says what was added, or '' when nothing was."""
        if not self.files:
            return ""
        shown = ", ".join(self.files[:_NOTE_NAMES])
        more = len(self.files) - _NOTE_NAMES
        shown += f" and {more} more" if more > 0 else ""
        return (
            "test files only unittest discovery finds (test*.py) collected too, as the "
            f"project sets no python_files: {shown}"
        )


def _imports_pytest(tree: ast.Module) -> bool:
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:
            continue
        if any(n.split(".")[0] == "pytest" for n in names):
            return True
    return False


def _is_test_function(node: ast.stmt) -> bool:
    return isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name.startswith("test")


def _parameters(node: ast.stmt) -> list[ast.arg]:
    if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
        return []
    args = node.args
    return [*args.posonlyargs, *args.args, *args.kwonlyargs]


def _last_name(node: ast.expr) -> str:
    # unittest.TestCase, TestCase, django.test.TestCase, Base[T]: the class's own name
    if isinstance(node, ast.Subscript):
        node = node.value
    if isinstance(node, ast.Attribute):
        return node.attr
    if isinstance(node, ast.Name):
        return node.id
    return ""


def _has_test_method(node: ast.ClassDef) -> bool:
    return any(_is_test_function(item) for item in node.body)


def _ini_sets(text: str, sections: Iterable[str]) -> bool:
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    try:
        parser.read_string(text)
    except configparser.Error:
        # pytest cannot read it either; assume the project meant to set it
        return "python_files" in text
    return any(parser.has_option(s, "python_files") for s in sections if parser.has_section(s))


def _toml_sets(text: str, sections: Iterable[str]) -> bool:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError:
        return "python_files" in text
    for dotted in sections:
        node: object = data
        for key in dotted.split("."):
            node = node.get(key) if isinstance(node, dict) else None
        if isinstance(node, dict) and "python_files" in node:
            return True
    return False
