"""A conftest.py change judged by what it does, not by its name (issue 17, class 10).

Pure: the file's text before and after in, findings out. Renaming or adding fixtures
and helpers is fine. Weakening is what changes how tests are run or judged: a pytest
hook added or changed (reporting, collection, outcomes), a plugin loaded, an assert
removed, a fixture whose body became a no-op, tests dropped from collection, a fixture
that runs for every test unasked (autouse) or replaces one of pytest's own.
"""

from __future__ import annotations

import ast

__all__ = ["conftest_findings"]

_MAX_SOURCE_CHARS = 2_000_000
# Module-level names that change what is collected or loaded.
_COLLECTION_NAMES = ("pytest_plugins", "collect_ignore", "collect_ignore_glob")
# pytest's own fixtures: a conftest fixture of the same name replaces them for every test.
_BUILTIN_FIXTURES = frozenset(
    {
        "cache",
        "capfd",
        "capfdbinary",
        "caplog",
        "capsys",
        "capsysbinary",
        "doctest_namespace",
        "monkeypatch",
        "pytestconfig",
        "record_property",
        "record_testsuite_property",
        "record_xml_attribute",
        "recwarn",
        "request",
        "tmp_path",
        "tmp_path_factory",
        "tmpdir",
        "tmpdir_factory",
    }
)


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
        elif name in old_fixtures and _literals(old_fixtures[name]) != _literals(body):
            # The data existing tests are given changed under them (a refactor keeps its
            # literals): their expectations moved without the tests saying so.
            findings.append(f"{path}: changes the values fixture {name} provides")
        if old_fixtures.get(name) != body and name in _BUILTIN_FIXTURES:
            findings.append(f"{path}: fixture {name} replaces pytest's own")
    old_code, new_code = _module_code(old), _module_code(new)
    added_code = sorted(line for text, line in new_code.items() if text not in old_code)
    if added_code:
        findings.append(f"{path}: adds code that runs when pytest loads it (line {added_code[0]})")
    old_autouse, new_autouse = _autouse(old), _autouse(new)
    changed_autouse = sorted(n for n, text in new_autouse.items() if old_autouse.get(n) != text)
    if changed_autouse:
        findings.append(f"{path}: adds or changes autouse fixture(s) {', '.join(changed_autouse)}")
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
                out[_fixture_name(func, deco)] = func.body
    return out


def _fixture_name(func: ast.FunctionDef | ast.AsyncFunctionDef, deco: ast.expr) -> str:
    # @pytest.fixture(name="x") registers the fixture as x, whatever the function is called.
    for keyword in deco.keywords if isinstance(deco, ast.Call) else []:
        if keyword.arg == "name" and isinstance(keyword.value, ast.Constant):
            return str(keyword.value.value)
    return func.name


def _autouse(tree: ast.Module) -> dict[str, str]:
    """Fixtures marked autouse (by any value but a literal False), by name, as text."""
    out = {}
    for func in _functions(tree):
        for deco in func.decorator_list:
            if not isinstance(deco, ast.Call) or ast.unparse(deco.func).split(".")[-1] != "fixture":
                continue
            for keyword in deco.keywords:
                value = keyword.value
                if keyword.arg == "autouse" and not (
                    isinstance(value, ast.Constant) and value.value is False
                ):
                    out[func.name] = ast.dump(func)
    return out


# Top-level statements that only define things; anything else runs as pytest loads the file.
_DEFINING = (
    ast.Import,
    ast.ImportFrom,
    ast.FunctionDef,
    ast.AsyncFunctionDef,
    ast.ClassDef,
    ast.Assign,
    ast.AnnAssign,
)


def _module_code(tree: ast.Module) -> dict[str, int]:
    """Top-level statements that do something at import (a loop, a call, an if), as text."""
    found: dict[str, int] = {}
    for node in tree.body:
        docstring = isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)
        if not isinstance(node, _DEFINING) and not docstring:
            found.setdefault(ast.dump(node), node.lineno)
    return found


def _literals(body: list[ast.stmt]) -> list[str]:
    """The body's constants in order, asserts left out (removed asserts count apart)."""
    found: list[str] = []
    pending: list[ast.AST] = list(reversed(body))
    while pending:
        node = pending.pop()
        if isinstance(node, ast.Assert):
            continue
        if isinstance(node, ast.Constant):
            found.append(repr(node.value))
        pending.extend(reversed(list(ast.iter_child_nodes(node))))
    return found


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
