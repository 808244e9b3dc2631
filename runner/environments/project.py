"""The project itself, read statically: installable or not, its dependencies, its build."""

from __future__ import annotations

import ast
import configparser
from pathlib import Path
from typing import Any

from packaging.utils import canonicalize_name
from pydantic import Field

from runner.environments.declarations import poetry_requirement
from runner.environments.plans import TEST_GROUPS
from runner.environments.requirements import (
    dedupe,
    parse_requirement,
    present,
    read_manifest,
    req_name,
    split_lines,
)
from runner.models import Model

# PEP 517's default for a project without [build-system].
LEGACY_BUILD_REQUIRES = ["setuptools>=40.8.0", "wheel"]


class _Project(Model):
    installable: bool = False
    dependencies: list[str] = Field(default_factory=list)
    build_requires: list[str] = Field(default_factory=list)
    files: list[str] = Field(default_factory=list)
    notes: list[str] = Field(default_factory=list)
    # setup.py computes its requirements: only the build backend can say what they are.
    dynamic_metadata: bool = False


def project_info(root: Path, pyproject: dict[str, Any]) -> _Project:
    # Read statically: running the repository's setup.py on the host would execute
    # its code outside the sandbox.
    files, notes, deps = [], [], []
    has_build = "build-system" in pyproject
    has_project = "project" in pyproject
    # A setup.cfg that only configures tools (flake8, pytest) does not make a project.
    has_setup = present(root / "setup.py") or _setup_cfg_names_project(root, root / "setup.cfg")
    installable = has_build or has_setup or has_project
    if pyproject:
        files.append("pyproject.toml")
    if has_project:
        deps += project_requirements(pyproject, extras=TEST_GROUPS)
        dynamic = pyproject["project"].get("dynamic", [])
        if "dependencies" not in dynamic:
            has_setup = False
    poetry = pyproject.get("tool", {}).get("poetry", {})
    if not has_project and isinstance(poetry.get("dependencies"), dict):
        # Poetry 1 projects declare their runtime dependencies in [tool.poetry].
        for name, spec in poetry["dependencies"].items():
            if name.lower() != "python":
                deps += poetry_requirement(name, spec)
    dynamic = False
    if has_setup:
        cfg_deps, cfg_files = _setup_requirements(root)
        deps += cfg_deps
        files += cfg_files
        setup = read_manifest(root, root / "setup.py")
        if setup is not None and _setup_py_computed(setup):
            dynamic = True
            notes.append(
                "setup.py: install_requires or extras_require is not a literal; "
                "read from the build backend's metadata instead"
            )
    system = pyproject.get("build-system", {})
    build = system.get("requires")
    build_requires = [str(x) for x in build] if build else list(LEGACY_BUILD_REQUIRES)
    # Without build isolation nothing installs what the backend asks for at build
    # time (get_requires_for_build_editable): setuptools < 70.1 needs wheel, and
    # older hatchling needs editables.
    backend = str(system.get("build-backend", "setuptools"))
    names = {req_name(r) for r in build_requires}
    if backend.startswith("setuptools") and "wheel" not in names:
        build_requires.append("wheel")
    if backend.startswith("hatchling") and "editables" not in names:
        build_requires.append("editables")
    return _Project(
        installable=installable,
        dependencies=dedupe(deps),
        build_requires=build_requires,
        files=files,
        notes=notes,
        dynamic_metadata=dynamic,
    )


def project_requirements(pyproject: dict[str, Any], extras: tuple[str, ...]) -> list[str]:
    project = pyproject.get("project", {})
    optional = project.get("optional-dependencies", {})
    name = canonicalize_name(str(project.get("name", "")))
    out = [str(x) for x in project.get("dependencies", [])]
    queue, seen = list(extras), set()
    while queue:
        extra = queue.pop(0)
        if extra in seen:
            continue
        seen.add(extra)
        for line in map(str, optional.get(extra, [])):
            req = parse_requirement(line)
            # "pkg[speed]" inside pkg's own extra means another extra of this project,
            # which the project's install provides, not a release from the index.
            if name and req is not None and canonicalize_name(req.name) == name:
                queue += sorted(req.extras)
            else:
                out.append(line)
    return out


def _setup_cfg_names_project(root: Path, path: Path) -> bool:
    text = read_manifest(root, path)
    if text is None:
        return False
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    try:
        parser.read_string(text)
    except configparser.Error:
        return False
    return parser.has_option("metadata", "name")


def _setup_requirements(root: Path) -> tuple[list[str], list[str]]:
    deps: list[str] = []
    files: list[str] = []
    cfg = root / "setup.cfg"
    cfg_text = read_manifest(root, cfg)
    if cfg_text is not None:
        parser = configparser.ConfigParser(interpolation=None, strict=False)
        try:
            parser.read_string(cfg_text)
        except configparser.Error:
            parser = configparser.ConfigParser()
        files.append("setup.cfg")
        if parser.has_option("options", "install_requires"):
            deps += split_lines(parser.get("options", "install_requires"))
        for extra in TEST_GROUPS:
            if parser.has_option("options.extras_require", extra):
                deps += split_lines(parser.get("options.extras_require", extra))
    setup = read_manifest(root, root / "setup.py")
    if setup is not None:
        files.append("setup.py")
        deps += _setup_py_literals(setup)
    return deps, files


def setup_cfg_extras(root: Path, extras: tuple[str, ...]) -> list[str]:
    """The requirements of the named extras in setup.cfg and in setup.py's literal call."""
    out: list[str] = []
    cfg_text = read_manifest(root, root / "setup.cfg")
    if cfg_text is not None:
        parser = configparser.ConfigParser(interpolation=None, strict=False)
        try:
            parser.read_string(cfg_text)
        except configparser.Error:
            parser = configparser.ConfigParser()
        for extra in extras:
            if parser.has_option("options.extras_require", extra):
                out += split_lines(parser.get("options.extras_require", extra))
    setup = read_manifest(root, root / "setup.py")
    if setup is not None:
        out += _setup_py_literals(setup, extras)
    return out


def _setup_py_computed(source: str) -> bool:
    # A setup() keyword that names requirements but is not a literal (attrs builds
    # EXTRAS_REQUIRE with code): parsing cannot know its value.
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return True
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and ast.unparse(node.func).split(".")[-1] == "setup":
            for kw in node.keywords:
                if kw.arg is None:
                    return True
                if kw.arg in ("install_requires", "extras_require", "tests_require"):
                    try:
                        ast.literal_eval(kw.value)
                    except (ValueError, TypeError):
                        return True
    return False


def _setup_py_literals(source: str, extras: tuple[str, ...] = TEST_GROUPS) -> list[str]:
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return []
    out: list[str] = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        for kw in node.keywords:
            try:
                value = ast.literal_eval(kw.value)
            except ValueError:
                continue
            if kw.arg in ("install_requires", "tests_require") and isinstance(value, list):
                out += [str(x) for x in value]
            elif kw.arg == "extras_require" and isinstance(value, dict):
                for extra in extras:
                    out += [str(x) for x in value.get(extra, [])]
    return out


def project_name(root: Path, pyproject: dict[str, Any]) -> str:
    """The distribution name, read statically ('' when the project computes it)."""
    name = pyproject.get("project", {}).get("name") or pyproject.get("tool", {}).get(
        "poetry", {}
    ).get("name")
    if name:
        return str(name)
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    try:
        parser.read_string(read_manifest(root, root / "setup.cfg") or "")
    except configparser.Error:
        parser = configparser.ConfigParser()
    if parser.has_option("metadata", "name"):
        return parser.get("metadata", "name")
    try:
        tree = ast.parse(read_manifest(root, root / "setup.py") or "")
    except SyntaxError:
        return ""
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            for kw in node.keywords:
                if kw.arg == "name" and isinstance(kw.value, ast.Constant):
                    return str(kw.value.value)
    return ""
