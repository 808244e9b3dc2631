"""A conftest.py change judged by what it does, not by its name (issue 17, class 10).

Pure: the file's text before and after in, findings out. Renaming or adding fixtures
and helpers is fine. Weakening is what changes how tests are run or judged: a pytest
hook added or changed (reporting, collection, outcomes), a plugin loaded, an assert
removed, a fixture whose body became a no-op, tests dropped from collection.
"""

from __future__ import annotations

import ast

__all__ = ["conftest_findings"]

_MAX_SOURCE_CHARS = 2_000_000
# Module-level names that change what is collected or loaded.
_COLLECTION_NAMES = ("pytest_plugins", "collect_ignore", "collect_ignore_glob")


def conftest_findings(path: str, before: str, after: str) -> list[str] | None:
    """What the change to ``path`` weakens; [] when nothing; None when a side does not parse
    (the caller then treats the whole change as a harness change)."""
    old, new = _parse(before), _parse(after)
    if old is None or new is None:
        return None
    findings = []
    old_hooks, new_hooks = _hooks(old), _hooks(new)
    changed = sorted(n for n, text in new_hooks.items() if old_hooks.get(n) != text)
    if changed:
        findings.append(f"{path}: adds or changes pytest hook(s) {', '.join(changed)}")
    for name in _COLLECTION_NAMES:
        if _assigned(old, name) != _assigned(new, name):
            findings.append(f"{path}: changes {name}")
    removed = _asserts(old) - _asserts(new)
    if removed > 0:
        findings.append(f"{path}: removes {removed} assert(s)")
    old_fixtures, new_fixtures = _fixtures(old), _fixtures(new)
    for name, body in sorted(new_fixtures.items()):
        # A fixture kept by name whose body now does nothing: what it set up is gone.
        if _no_op(body) and name in old_fixtures and not _no_op(old_fixtures[name]):
            findings.append(f"{path}: fixture {name} now does nothing")
    return findings


def _parse(text: str) -> ast.Module | None:
    if len(text) > _MAX_SOURCE_CHARS:
        return None
    try:
        return ast.parse(text)
    except (SyntaxError, ValueError):
        return None


def _functions(tree: ast.Module) -> list[ast.FunctionDef | ast.AsyncFunctionDef]:
    return [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)]


def _hooks(tree: ast.Module) -> dict[str, str]:
    return {f.name: ast.dump(f) for f in _functions(tree) if f.name.startswith("pytest_")}


def _assigned(tree: ast.Module, name: str) -> str | None:
    for node in tree.body:
        targets = node.targets if isinstance(node, ast.Assign) else []
        if isinstance(node, ast.AugAssign | ast.AnnAssign):
            targets = [node.target]
        if any(isinstance(t, ast.Name) and t.id == name for t in targets):
            return ast.dump(node)
    return None


def _asserts(tree: ast.Module) -> int:
    return sum(1 for n in ast.walk(tree) if isinstance(n, ast.Assert))


def _fixtures(tree: ast.Module) -> dict[str, list[ast.stmt]]:
    out = {}
    for func in _functions(tree):
        for deco in func.decorator_list:
            target = deco.func if isinstance(deco, ast.Call) else deco
            if ast.unparse(target).split(".")[-1] == "fixture":
                out[func.name] = func.body
    return out


def _no_op(body: list[ast.stmt]) -> bool:
    statements = [
        s
        for s in body
        if not (isinstance(s, ast.Expr) and isinstance(s.value, ast.Constant))  # docstring
    ]
    for statement in statements:
        if isinstance(statement, ast.Pass):
            continue
        if isinstance(statement, ast.Return) and _empty(statement.value):
            continue
        if (
            isinstance(statement, ast.Expr)
            and isinstance(statement.value, ast.Yield)
            and _empty(statement.value.value)
        ):
            continue
        return False
    return True


def _empty(value: ast.expr | None) -> bool:
    return value is None or (isinstance(value, ast.Constant) and value.value is None)
