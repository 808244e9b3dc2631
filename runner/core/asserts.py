"""Structural comparison of a test file's asserts before and after the candidate.

Pure: two texts in, findings out. Asserts are compared as syntax trees, per test
function, never by count: a disjunction added (``assert a == 5`` to ``assert a == 5 or
a == -1``), a comparison loosened (``==`` to ``in``, ``>=``, ``is not None``), an
expected literal changed that the source change does not also introduce, and an
assert removed from a test that stays.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterable, Iterator

__all__ = ["assert_findings", "test_checks_outcome", "test_written"]

_MAX_SOURCE_CHARS = 2_000_000
# What a comparison may become without checking less: same operator, or none weaker.
_EXACT = (ast.Eq, ast.Is)
_LOOSE_NAMES = {
    ast.NotEq: "!=",
    ast.In: "in",
    ast.NotIn: "not in",
    ast.Gt: ">",
    ast.GtE: ">=",
    ast.Lt: "<",
    ast.LtE: "<=",
    ast.IsNot: "is not",
}


def assert_findings(
    path: str, before: str, after: str, source_added: Iterable[str] = ()
) -> list[str]:
    """Ways the asserts of tests kept in ``path`` got weaker; empty when none did.

    ``source_added`` are the lines the candidate adds to non-test files: an expected
    literal that changes to a value the source change introduces is a deliberate change.
    """
    old, new = _tests(before), _tests(after)
    if old is None or new is None:
        return []
    added_source = "\n".join(source_added)
    findings: list[str] = []
    for name, old_asserts in old.items():
        if name not in new:
            continue  # a removed or renamed test is weakening's own finding
        findings += _compare(path, name, old_asserts, new[name], added_source)
    return findings


def _tests(text: str) -> dict[str, list[ast.Assert]] | None:
    if len(text) > _MAX_SOURCE_CHARS:
        return None
    try:
        tree = ast.parse(text)
    except (SyntaxError, ValueError):
        return None
    out: dict[str, list[ast.Assert]] = {}
    for name, node in _functions(tree, ""):
        if name.rsplit(".", 1)[-1].startswith("test"):
            out[name] = [n for n in ast.walk(node) if isinstance(n, ast.Assert)]
    return out


def _functions(node: ast.AST, prefix: str) -> Iterator[tuple[str, ast.AST]]:
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
            yield f"{prefix}{child.name}", child
        elif isinstance(child, ast.ClassDef):
            yield from _functions(child, f"{prefix}{child.name}.")


def _compare(
    path: str, test: str, before: list[ast.Assert], after: list[ast.Assert], added_source: str
) -> list[str]:
    # asserts that stayed word for word match first; what is left pairs up by subject
    remaining = [ast.dump(a.test) for a in after]
    left_before = []
    for node in before:
        key = ast.dump(node.test)
        if key in remaining:
            remaining.remove(key)
        else:
            left_before.append(node)
    left_after = [a for a in after if ast.dump(a.test) in remaining]
    findings = []
    for old in left_before:
        new = _partner(old, left_after)
        where = f"{path}::{test}"
        if new is None:
            findings.append(f"{where}: removes `assert {ast.unparse(old.test)}`")
            continue
        left_after.remove(new)
        if why := _weakening(old.test, new.test, added_source):
            findings.append(
                f"{where}: `assert {ast.unparse(old.test)}` becomes "
                f"`assert {ast.unparse(new.test)}` ({why})"
            )
    return findings


def _partner(old: ast.Assert, candidates: list[ast.Assert]) -> ast.Assert | None:
    """The rewritten form of ``old``: one that contains it, or shares its subject."""
    subject = _subject(old.test)
    for new in candidates:
        if _contains(new.test, old.test) or (subject and _subject(new.test) == subject):
            return new
    return None


def _subject(test: ast.expr) -> str | None:
    """What an assert checks: a comparison's left side, else the expression itself."""
    if isinstance(test, ast.BoolOp):
        return None
    if isinstance(test, ast.Compare):
        return ast.dump(test.left)
    if isinstance(test, ast.UnaryOp) and isinstance(test.op, ast.Not):
        return ast.dump(test.operand)
    return ast.dump(test)


def _contains(outer: ast.expr, inner: ast.expr) -> bool:
    key = ast.dump(inner)
    return any(ast.dump(node) == key for node in ast.walk(outer) if node is not outer)


def _weakening(old: ast.expr, new: ast.expr, added_source: str) -> str | None:
    old_key = ast.dump(old)
    if (
        isinstance(new, ast.BoolOp)
        and isinstance(new.op, ast.Or)
        and any(_contains(value, old) or ast.dump(value) == old_key for value in new.values)
    ):
        return "adds a disjunction: either side now passes"
    if not isinstance(old, ast.Compare) or len(old.ops) != 1:
        return None
    if not isinstance(new, ast.Compare):
        return "replaces the comparison with a truth test"
    if len(new.ops) != 1 or ast.dump(new.left) != ast.dump(old.left):
        return None
    old_op, new_op = old.ops[0], new.ops[0]
    if isinstance(old_op, _EXACT) and not isinstance(new_op, _EXACT):
        name = _LOOSE_NAMES.get(type(new_op), type(new_op).__name__)
        return f"loosens an exact comparison to `{name}`"
    expected_old, expected_new = old.comparators[0], new.comparators[0]
    if type(old_op) is type(new_op) and _literal(expected_old) and _literal(expected_new):
        new_text = ast.unparse(expected_new)
        introduced = re.search(rf"(?<![\w.]){re.escape(new_text)}(?![\w.])", added_source)
        if ast.dump(expected_old) != ast.dump(expected_new) and not introduced:
            return (
                f"changes the expected value from {ast.unparse(expected_old)} to {new_text}, "
                "which the source change does not introduce"
            )
    return None


def _literal(node: ast.expr) -> bool:
    try:
        ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return False
    return True


# What checks an outcome besides ``assert``: pytest's raises/warns/fail, unittest's
# self.assert*/self.fail*, and mock's assert_called*/assert_awaited*/assert_has_calls.
_CHECKING_CALLS = re.compile(
    r"^(?:raises|warns|deprecated_call|fail|assert_\w+|assert[A-Z]\w*|fail\w*)$"
)


def test_checks_outcome(text: str, qualname: str) -> bool | None:
    """Whether test ``qualname`` (``Class.test_x``) asserts anything; None when not found.

    An ``assert``, ``pytest.raises``/``warns``/``fail``, a unittest ``self.assert*`` or a
    mock ``assert_*`` call counts, in the test or in a helper of its module it calls.
    """
    if len(text) > _MAX_SOURCE_CHARS:
        return None
    try:
        tree = ast.parse(text)
    except (SyntaxError, ValueError):
        return None
    functions = dict(_functions(tree, ""))
    top = {name: node for name, node in functions.items() if "." not in name}
    # self.helper(...) / cls.helper(...): a method of a class of this module
    methods = {name.rsplit(".", 1)[1]: node for name, node in functions.items() if "." in name}
    node = functions.get(qualname)
    if node is None:
        return None
    seen: set[str] = set()
    todo = [node]
    while todo:
        current = todo.pop()
        for child in ast.walk(current):
            if isinstance(child, ast.Assert):
                return True
            if not isinstance(child, ast.Call):
                continue
            name = _call_name(child.func)
            if name is not None and _CHECKING_CALLS.match(name):
                return True
            # one module's helpers (check_result(x), self._check(x)) assert for the tests
            # that call them
            helper = top.get(name or "") if isinstance(child.func, ast.Name) else None
            if _on_self(child.func):
                helper = methods.get(name or "")
            if helper is not None and name is not None and name not in seen:
                seen.add(name)
                todo.append(helper)
    return False


test_checks_outcome.__test__ = False  # type: ignore[attr-defined]  # not a pytest test


def _on_self(func: ast.expr) -> bool:
    return (
        isinstance(func, ast.Attribute)
        and isinstance(func.value, ast.Name)
        and func.value.id in ("self", "cls")
    )


def _call_name(func: ast.expr) -> str | None:
    if isinstance(func, ast.Name):
        return func.id
    if isinstance(func, ast.Attribute):
        return func.attr
    return None


def test_written(before: str | None, after: str, qualname: str) -> bool:
    """Whether the candidate added test ``qualname`` or changed its body."""
    old = _function_dump(before, qualname) if before is not None else None
    return old is None or old != _function_dump(after, qualname)


test_written.__test__ = False  # type: ignore[attr-defined]  # not a pytest test


def _function_dump(text: str, qualname: str) -> str | None:
    if len(text) > _MAX_SOURCE_CHARS:
        return None
    try:
        tree = ast.parse(text)
    except (SyntaxError, ValueError):
        return None
    node = dict(_functions(tree, "")).get(qualname)
    return ast.dump(node) if node is not None else None
