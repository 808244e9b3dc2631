"""Test dependencies declared in tool configurations: nox, tox, hatch, poetry and pdm.

Read statically (noxfile.py is parsed with `ast`, never run): each source yields
requirement lines and project extras under a label that says where they came from.
"""

from __future__ import annotations

import ast
import configparser
import re
from pathlib import Path
from typing import Any

from pydantic import Field

from runner.environments.plans import TEST_GROUPS
from runner.environments.requirements import (
    ParsedRequirements,
    inside,
    marker_ok,
    parse_requirement_lines,
    present,
    python_ok,
    read_manifest,
    read_toml,
)
from runner.models import Model

# Session, environment and group names that run the test suite.
TEST_NAMES = ("test", "tests", "testing", "pytest", "unit", "unittests", "default")


class Declaration(Model):
    """What one tool configuration says the tests need."""

    label: str = Field(description="Where it came from, e.g. 'noxfile.py session tests'.")
    parsed: ParsedRequirements = Field(default_factory=ParsedRequirements)


def declarations(root: Path, pyproject: dict[str, Any]) -> list[Declaration]:
    """Every tool configuration's test dependencies in the checkout, each with its label."""
    found = [
        *_nox(root),
        *_tox_extras(root),
        *_hatch(root, pyproject),
        *_poetry(pyproject),
        *_pdm(pyproject),
    ]
    return [d for d in found if d.parsed.requirements or d.parsed.project_extras]


def test_name(name: str) -> bool:
    """Whether a session, environment or group name is one that runs the tests."""
    lowered = name.lower()
    return lowered in TEST_NAMES or lowered in TEST_GROUPS or lowered.startswith("test")


def requirement_files_below(root: Path) -> list[Path]:
    """Test requirement files below the root or unpinned (tests/requirements.txt, *.in)."""
    candidates = [
        *sorted(root.glob("tests/requirements*.txt")),
        *sorted(root.glob("test/requirements*.txt")),
        *sorted(root.glob("requirements/test*.in")),
        *sorted(root.glob("requirements-test*.in")),
    ]
    return [p for p in candidates if p.is_file() and inside(root, p)]


def _nox(root: Path) -> list[Declaration]:
    source = read_manifest(root, root / "noxfile.py")
    if source is None:
        return []
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return [Declaration(label="noxfile.py", parsed=_note("noxfile.py: not valid Python"))]
    constants = _module_constants(tree)
    out = []
    for node in tree.body:
        if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        name = _nox_session_name(node)
        if name is None or not test_name(name):
            continue
        lines: list[str] = []
        for call in ast.walk(node):
            if isinstance(call, ast.Call) and _is_install(call):
                lines += _install_args(call, constants)
        parsed = parse_requirement_lines(_nox_lines(lines), root, root, set())
        out.append(Declaration(label=f"noxfile.py session {name}", parsed=parsed))
    return out


def _nox_session_name(node: ast.FunctionDef | ast.AsyncFunctionDef) -> str | None:
    for deco in node.decorator_list:
        target = deco.func if isinstance(deco, ast.Call) else deco
        dotted = ast.unparse(target)
        if dotted not in ("nox.session", "session"):
            continue
        if isinstance(deco, ast.Call):
            for kw in deco.keywords:
                if kw.arg == "name" and isinstance(kw.value, ast.Constant):
                    return str(kw.value.value)
        return node.name
    return None


def _is_install(call: ast.Call) -> bool:
    func = call.func
    return isinstance(func, ast.Attribute) and func.attr == "install"


def _module_constants(tree: ast.Module) -> dict[str, list[str]]:
    # Module-level lists of strings (TEST_DEPS = ["pytest", ...]) that sessions install.
    out: dict[str, list[str]] = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            target = node.targets[0]
            if isinstance(target, ast.Name):
                value = _strings(node.value, {})
                if value is not None:
                    out[target.id] = value
    return out


def _strings(node: ast.expr, constants: dict[str, list[str]]) -> list[str] | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return [node.value]
    if isinstance(node, ast.Name) and node.id in constants:
        return constants[node.id]
    if isinstance(node, ast.Starred):
        return _strings(node.value, constants)
    if isinstance(node, ast.List | ast.Tuple):
        out: list[str] = []
        for item in node.elts:
            value = _strings(item, constants)
            if value is None:
                return None
            out += value
        return out
    return None


def _install_args(call: ast.Call, constants: dict[str, list[str]]) -> list[str]:
    out: list[str] = []
    for arg in call.args:
        value = _strings(arg, constants)
        if value is not None:
            out += value
    return out


def _nox_lines(args: list[str]) -> list[str]:
    # session.install("-r", "x.txt", "-e", ".[test]") is argv, not lines: pair options.
    lines: list[str] = []
    pending = ""
    for arg in args:
        if pending:
            lines.append(f"{pending} {arg}")
            pending = ""
        elif arg in ("-r", "--requirement", "-c", "--constraint", "-e", "--editable"):
            pending = arg
        elif not arg.startswith("-"):
            lines.append(arg)
    return lines


def _tox_extras(root: Path) -> list[Declaration]:
    text = read_manifest(root, root / "tox.ini")
    if text is None:
        return []
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    try:
        parser.read_string(text)
    except configparser.Error:
        return []
    if not parser.has_option("testenv", "extras"):
        return []
    extras = [
        line.strip()
        for line in re.split(r"[\n,]", parser.get("testenv", "extras"))
        if line.strip() and "{" not in line and ":" not in line
    ]
    parsed = ParsedRequirements(project_extras=extras, install_project=True, files=["tox.ini"])
    return [Declaration(label="tox.ini [testenv] extras", parsed=parsed)]


def _hatch(root: Path, pyproject: dict[str, Any]) -> list[Declaration]:
    envs = pyproject.get("tool", {}).get("hatch", {}).get("envs", {})
    where = "pyproject.toml [tool.hatch.envs"
    if present(root / "hatch.toml"):
        envs = {**envs, **read_toml(root, root / "hatch.toml").get("envs", {})}
        where = "hatch.toml [envs"
    out = []
    for name, body in envs.items():
        if not isinstance(body, dict) or not test_name(name):
            continue
        lines = [str(x) for x in body.get("dependencies", []) + body.get("extra-dependencies", [])]
        parsed = parse_requirement_lines(lines, root, root, set())
        parsed.project_extras += [str(x) for x in body.get("features", [])]
        parsed.install_project = not body.get("skip-install", False)
        out.append(Declaration(label=f"{where}.{name}]", parsed=parsed))
    return out


def _poetry(pyproject: dict[str, Any]) -> list[Declaration]:
    poetry = pyproject.get("tool", {}).get("poetry", {})
    tables: list[tuple[str, dict[str, Any]]] = []
    if poetry.get("dev-dependencies"):
        tables.append(("[tool.poetry.dev-dependencies]", poetry["dev-dependencies"]))
    for group, body in poetry.get("group", {}).items():
        if test_name(group) and isinstance(body, dict):
            tables.append((f"[tool.poetry.group.{group}]", body.get("dependencies", {})))
    out = []
    for label, table in tables:
        lines = [
            line
            for name, spec in table.items()
            if name.lower() != "python"
            for line in poetry_requirement(name, spec)
        ]
        parsed = parse_requirement_lines(lines, Path("/"), Path("/"), set())
        out.append(Declaration(label=f"pyproject.toml {label}", parsed=parsed))
    return out


def poetry_requirement(name: str, spec: Any) -> list[str]:
    """One Poetry dependency entry as PEP 508 lines (caret and tilde turned into ranges)."""
    entries = spec if isinstance(spec, list) else [spec]
    for entry in entries:
        item = entry if isinstance(entry, dict) else {"version": entry}
        if item.get("optional") or not marker_ok(item.get("markers")):
            continue
        if not python_ok(item.get("python")):
            continue
        if any(key in item for key in ("git", "path", "url")):
            return []
        extras = item.get("extras") or []
        head = f"{name}[{','.join(extras)}]" if extras else name
        return [head + poetry_version(str(item.get("version", "*")))]
    return []


def poetry_version(spec: str) -> str:
    """A Poetry version constraint in PEP 440 ('^1.2' → '>=1.2,<2.0')."""
    parts = []
    for raw in spec.split(","):
        text = raw.strip()
        if not text or text == "*":
            continue
        if text.startswith("^"):
            parts.append(_caret(text[1:].strip()))
        elif text.startswith("~") and not text.startswith("~="):
            parts.append(_tilde(text[1:].strip()))
        elif text[0].isdigit():
            parts.append(f"=={text}")
        else:
            parts.append(text)
    return ",".join(p for p in parts if p)


def _numbers(version: str) -> list[int]:
    return [int(x) for x in re.findall(r"\d+", version.split("-")[0])[:3]] or [0]


def _caret(version: str) -> str:
    numbers = _numbers(version)
    # ^1.2.3 → <2.0.0; ^0.2.3 → <0.3.0; ^0.0.3 → <0.0.4: the first non-zero part bumps.
    index = next((i for i, n in enumerate(numbers) if n), len(numbers) - 1)
    upper = [*numbers[:index], numbers[index] + 1]
    return f">={version},<{'.'.join(map(str, upper))}"


def _tilde(version: str) -> str:
    numbers = _numbers(version)
    upper = [numbers[0] + 1] if len(numbers) == 1 else [numbers[0], numbers[1] + 1]
    return f">={version},<{'.'.join(map(str, upper))}"


def _pdm(pyproject: dict[str, Any]) -> list[Declaration]:
    groups = pyproject.get("tool", {}).get("pdm", {}).get("dev-dependencies", {})
    out = []
    for group, lines in groups.items():
        if not test_name(group) or not isinstance(lines, list):
            continue
        kept = [str(x) for x in lines if "${PROJECT_ROOT}" not in str(x)]
        parsed = parse_requirement_lines(kept, Path("/"), Path("/"), set())
        label = f"pyproject.toml [tool.pdm.dev-dependencies] {group}"
        out.append(Declaration(label=label, parsed=parsed))
    return out


def _note(text: str) -> ParsedRequirements:
    return ParsedRequirements(notes=[text])
