"""Suppression analysis: a candidate that hides the reported error instead of fixing it.

Pure: the before/after text of the changed source files and the reported exception
types in, findings out. A finding is a handler the candidate added that catches the
reported type or a broader one (bare ``except``, ``Exception``, ``BaseException``,
``contextlib.suppress(...)``) without re-raising, or a ``raise`` of the reported type
the candidate deleted from a function on the error's traceback.

Without an error report the types come from the fail-to-pass tests' failures, and those
tests are the only statement of the bug: a narrow handler for a type whose handling a
test the candidate wrote asserts (``int("1e999")`` falls back to the default; an
unhashable value is refused) is the specified behaviour, not a hidden error. Broad
handlers stay findings whatever the tests say.
"""

from __future__ import annotations

import ast
import builtins
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from runner.core.errormatch import repo_relative
from runner.core.tracebacks import iter_exceptions, parse_last_exception
from runner.models import Evidence, SourceChange, TestResult

__all__ = ["BROAD_TYPES", "Suppression", "reported_error", "reported_types", "suppressions"]

# Catching one of these catches (almost) any error a fix could be hiding.
BROAD_TYPES = frozenset({"Exception", "BaseException"})
_BARE = "<bare>"
# Cap on parsed source: a generated file of megabytes is not where a fix hides an error.
_MAX_SOURCE_CHARS = 2_000_000


@dataclass(frozen=True)
class Suppression:
    """One way the candidate hides the error, with where it happens."""

    path: str
    line: int
    function: str
    what: str
    # the tests state this handling (see ``specified``): reported, not a finding
    specified: bool = False

    def describe(self) -> str:
        """``path:line in function: what`` for a check's detail."""
        return f"{self.path}:{self.line} in {self.function}: {self.what}"


@dataclass(frozen=True)
class _Handler:
    caught: tuple[str, ...]
    reraises: bool
    line: int
    kind: str  # "except" or "suppress"


def suppressions(
    sources: Iterable[SourceChange],
    error_types: Iterable[str],
    traceback_functions: Iterable[tuple[str, str]] = (),
    specified: Iterable[str] = (),
) -> list[Suppression]:
    """Handlers added to hide one of ``error_types``, and raises of them deleted.

    ``traceback_functions`` are (repo path, function name) pairs of the error's frames;
    a deleted ``raise`` counts only in those functions (elsewhere it may be the fix).
    ``specified`` are types whose handling the tests assert: a handler that catches
    none of the wanted types but those (and nothing broad) comes back ``specified``.
    """
    wanted = {name for t in error_types if t for name in _and_bases(_short(t))}
    if not wanted:
        return []
    allowed = {_short(t) for t in specified if t} - BROAD_TYPES
    on_traceback = set(traceback_functions)
    found: list[Suppression] = []
    for change in sources:
        if change.after is None:
            continue
        after = _functions(change.after)
        before = _functions(change.before) if change.before is not None else {}
        if after is None:
            continue  # the candidate's file does not parse: lint reports that
        before = before or {}
        for name, node in after.items():
            old = before.get(name)
            found += _added_handlers(change.path, name, node, old, wanted, allowed)
            if old is not None and (change.path, name.rsplit(".", 1)[-1]) in on_traceback:
                found += _deleted_raises(change.path, name, old, node, wanted)
    return sorted(found, key=lambda s: (s.path, s.line))


def _and_bases(name: str) -> set[str]:
    """A built-in exception's name with its bases' (KeyError: LookupError too)."""
    cls = getattr(builtins, name, None)
    if isinstance(cls, type) and issubclass(cls, BaseException):
        return {c.__name__ for c in cls.__mro__ if issubclass(c, BaseException)}
    return {name}


def _short(type_name: str) -> str:
    return type_name.strip().rsplit(".", 1)[-1]


def _functions(text: str | None) -> dict[str, ast.AST] | None:
    """Every function and the module body, by qualified name; None when it does not parse."""
    if text is None or len(text) > _MAX_SOURCE_CHARS:
        return None
    try:
        tree = ast.parse(text)
    except (SyntaxError, ValueError):
        return None
    out: dict[str, ast.AST] = {"<module>": tree}

    def visit(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                name = f"{prefix}{child.name}"
                if not isinstance(child, ast.ClassDef):
                    out[name] = child
                visit(child, name + ".")
            else:
                visit(child, prefix)

    visit(tree, "")
    return out


def _own_nodes(node: ast.AST) -> Iterator[ast.AST]:
    """Nodes of this function's own body, not of functions or classes nested in it."""
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef | ast.Lambda):
            continue
        yield child
        yield from _own_nodes(child)


def _handlers(node: ast.AST) -> list[_Handler]:
    out = []
    for child in _own_nodes(node):
        if isinstance(child, ast.ExceptHandler):
            caught = _caught(child.type)
            reraises = any(isinstance(n, ast.Raise) for n in ast.walk(child))
            out.append(_Handler(caught, reraises, child.lineno, "except"))
        elif isinstance(child, ast.With | ast.AsyncWith):
            for item in child.items:
                call = item.context_expr
                if isinstance(call, ast.Call) and _name(call.func) == "suppress":
                    caught = tuple(sorted(t for arg in call.args for t in _caught(arg)))
                    out.append(_Handler(caught, False, child.lineno, "suppress"))
    return out


def _caught(expr: ast.expr | None) -> tuple[str, ...]:
    if expr is None:
        return (_BARE,)
    if isinstance(expr, ast.Tuple):
        return tuple(sorted(n for elt in expr.elts if (n := _name(elt))))
    name = _name(expr)
    return (name,) if name else ()


def _name(expr: ast.expr) -> str:
    if isinstance(expr, ast.Name):
        return expr.id
    if isinstance(expr, ast.Attribute):
        return expr.attr
    return ""


def _hidden(handler: _Handler, wanted: set[str]) -> set[str]:
    """The wanted (or broad) types a handler catches without re-raising."""
    if handler.reraises:
        return set()
    return {t for t in handler.caught if t == _BARE or t in BROAD_TYPES or t in wanted}


def _hides(handler: _Handler, wanted: set[str]) -> bool:
    return bool(_hidden(handler, wanted))


def _added_handlers(
    path: str,
    name: str,
    node: ast.AST,
    old: ast.AST | None,
    wanted: set[str],
    allowed: set[str],
) -> list[Suppression]:
    # Compare by what a handler catches, not by line: the candidate's edits move lines.
    before = Counter((h.kind, h.caught) for h in _handlers(old) if _hides(h, wanted)) if old else {}
    seen: Counter[tuple[str, tuple[str, ...]]] = Counter()
    found = []
    for handler in _handlers(node):
        hidden = _hidden(handler, wanted)
        if not hidden:
            continue
        key = (handler.kind, handler.caught)
        seen[key] += 1
        if seen[key] > before.get(key, 0):
            caught = ", ".join(t if t != _BARE else "everything (bare except)" for t in key[1])
            form = "contextlib.suppress" if handler.kind == "suppress" else "except"
            what = f"adds {form} catching {caught} without re-raising"
            found.append(Suppression(path, handler.line, name, what, not hidden - allowed))
    return found


def _raises(node: ast.AST, wanted: set[str]) -> list[tuple[str, int]]:
    out = []
    for child in _own_nodes(node):
        if isinstance(child, ast.Raise) and child.exc is not None:
            exc = child.exc.func if isinstance(child.exc, ast.Call) else child.exc
            if (name := _name(exc)) in wanted:
                out.append((name, child.lineno))
    return out


def _deleted_raises(
    path: str, name: str, old: ast.AST, new: ast.AST, wanted: set[str]
) -> list[Suppression]:
    before = _raises(old, wanted)
    after = Counter(t for t, _ in _raises(new, wanted))
    found = []
    for exc_type, line in before:
        if after[exc_type] > 0:
            after[exc_type] -= 1
            continue
        found.append(
            Suppression(path, line, name, f"deletes the raise of {exc_type} (baseline line {line})")
        )
    return found


def _assertion(result: TestResult) -> bool:
    if result.assertion is not None:
        return result.assertion
    return _short(result.exception_type or "") == "AssertionError"


def reported_types(evidence: Evidence) -> list[str]:
    """The exception types the error report names: --expect-error and the repro commands."""
    expected = [evidence.expect_error, *(run.expect_error for run in evidence.repro)]
    types = [e.partition(":")[0].strip() for e in expected if e]
    for run in evidence.repro:
        if run.problem is None and run.baseline.last_exception is not None:
            types.append(run.baseline.last_exception.type)
    return sorted({t.rsplit(".", 1)[-1] for t in types if t})


def reported_error(evidence: Evidence) -> tuple[list[str], set[tuple[str, str]]]:
    """The reported exception types, and the (path, function) frames of its traceback.

    From --expect-error and the repro commands' baseline runs; without them, from the
    exception types of the baseline's fail-to-pass failures (an assertion failure is a
    wrong value the test caught, not an error the code raised: it names no type).
    """
    types = reported_types(evidence)
    files = {s.path for s in evidence.sources}
    frames: set[tuple[str, str]] = set()
    for run in evidence.repro:
        info = parse_last_exception(f"{run.baseline.output_head}\n{run.baseline.output_tail}")
        for exc in iter_exceptions(info) if info else ():
            for frame in exc.frames:
                if (path := repo_relative(frame.path, files)) is not None:
                    frames.add((path, frame.function))
    if not types and evidence.baseline and evidence.comparison:
        for test_id in evidence.comparison.fail_to_pass:
            result = evidence.baseline.tests.get(test_id)
            if result is not None and result.exception_type and not _assertion(result):
                types.append(result.exception_type)
    return sorted({t.rsplit(".", 1)[-1] for t in types if t}), frames
