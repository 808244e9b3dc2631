"""Which added skip/xfail markers can hide a test that exists today.

Pure: a test file's texts before and after a change and the numbers of its added lines
in; the lines whose marker can skip an existing test out. A marker on a test the change
adds (its decorator, a ``pytest.importorskip`` in its body) or anywhere in a test file
the change adds skips nothing that ran before: that is how new tests declare their
platform or optional dependency, not a weakening.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Sequence

__all__ = ["markers_on_existing_tests"]


def markers_on_existing_tests(
    before: str | None, after: str, added: Iterable[tuple[int, str]]
) -> list[str] | None:
    """Added marker lines outside tests the change adds; None when a text does not parse.

    ``added`` are the (line number in ``after``, text) pairs of the added marker lines;
    ``before`` is None for a file the change adds.
    """
    added = list(added)
    if before is None:
        return []
    try:
        old_names = {name for name, _, _ in _scopes(ast.parse(before))}
        scopes = _scopes(ast.parse(after))
    except (SyntaxError, ValueError):
        return None
    out = []
    for number, text in added:
        owners = [name for name, start, end in scopes if start <= number <= end]
        if not any(name not in old_names for name in owners):
            out.append(text)
    return out


def _scopes(tree: ast.Module) -> list[tuple[str, int, int]]:
    """(qualified name, first line with decorators, last line) of each def and class."""
    found: list[tuple[str, int, int]] = []

    def visit(body: Sequence[ast.stmt], prefix: str) -> None:
        for node in body:
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                name = f"{prefix}{node.name}"
                start = min([node.lineno, *(d.lineno for d in node.decorator_list)])
                found.append((name, start, node.end_lineno or node.lineno))
                visit(node.body, f"{name}.")

    visit(tree.body, "")
    return found
