"""What a repository needs installed, and that set resolved to exact pins on the host.

Detection reads a checkout (files only; `uv export --frozen` is the one offline
subprocess) into an InstallPlan, in the order of issue 10: override, lock file,
pinned requirement file, unpinned declarations. Resolution turns the plan into a
fully pinned set with `uv pip compile`, as of the base commit's date by default.
"""

from __future__ import annotations

import ast
import configparser
import functools
import hashlib
import json
import os
import re
import subprocess
import sys
import tempfile
import tomllib
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, Literal

import structlog
from packaging.markers import InvalidMarker, Marker, UndefinedComparison, UndefinedEnvironmentName
from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.utils import canonicalize_name
from pydantic import Field

from runner.config import Settings
from runner.errors import ResolutionError
from runner.models import EnvironmentInfo, Model

log = structlog.get_logger(__name__)

PlanKind = Literal["override", "locked", "pinned", "declared"]
# Groups and extras that carry test dependencies, in order of preference.
TEST_GROUPS = ("test", "tests", "testing", "dev")
TOOLS = ("pytest", "flake8")
# Bumped when the resolver's inputs or output format change, so caches start afresh.
RESOLVER_FORMAT = "1"
# The platform of the base images: Debian bookworm, glibc 2.36, x86_64.
PYTHON_PLATFORM = "x86_64-manylinux_2_36"
UV_TIMEOUT_S = 300
MESSAGE_LIMIT = 4000
# PEP 517's default for a project without [build-system].
LEGACY_BUILD_REQUIRES = ["setuptools>=40.8.0", "wheel"]


class InstallPlan(Model):
    """How a checkout's environment is to be resolved, before any network is used."""

    kind: PlanKind = Field(description="Which source won: override, locked, pinned, declared.")
    label: str = Field(description="The file (or runner.toml) the plan comes from.")
    files: list[str] = Field(default_factory=list, description="Repository files read.")
    requirements: list[str] = Field(default_factory=list, description="Requirement lines.")
    constraints: list[str] = Field(default_factory=list, description="Constraint lines (-c).")
    install_project: bool = Field(default=False, description="Install the project editable.")
    project_extras: list[str] = Field(
        default_factory=list, description="Extras named with the project ('.[test]')."
    )
    build_requires: list[str] = Field(
        default_factory=list, description="The project's build backend requirements."
    )
    pth_paths: list[str] = Field(
        default_factory=list, description="In-container dirs put on sys.path by a .pth file."
    )
    notes: list[str] = Field(default_factory=list, description="What detection skipped and why.")


class ResolvedEnvironment(Model):
    """A fully pinned environment: what the env image installs and the verdict reports."""

    source: str = Field(description="e.g. 'locked: uv.lock', 'as-of: 2024-11-10'.")
    kind: PlanKind = Field(description="Which detection source won.")
    as_of: str | None = Field(default=None, description="exclude-newer date; None for latest.")
    python: str = Field(description="Python major.minor resolved for.")
    pins: list[str] = Field(description="Sorted 'name==version' lines (or 'name @ url').")
    pytest: str | None = Field(default=None, description="Resolved pytest version.")
    flake8: str | None = Field(default=None, description="Resolved flake8 version.")
    tool_sources: dict[str, str] = Field(
        default_factory=dict, description="Per tool: repository, runner.toml or resolver."
    )
    install_project: bool = Field(default=False, description="Project installed editable.")
    pth_paths: list[str] = Field(default_factory=list, description="Dirs on sys.path via .pth.")
    files: list[str] = Field(default_factory=list, description="Repository files read.")
    notes: list[str] = Field(default_factory=list, description="Caveats worth reporting.")

    @property
    def packages(self) -> dict[str, str]:
        """Resolved versions by canonical name (URL pins map to '')."""
        return dict(_pin_name_version(pin) for pin in self.pins)

    def environment_info(self, python: str | None = None) -> EnvironmentInfo:
        """The verdict's images.environment block."""
        tools = {name: version for name in TOOLS if (version := getattr(self, name))}
        return EnvironmentInfo(
            resolution=self.source,
            python=python or self.python,
            tools=tools,
            packages=self.packages,
        )


# --------------------------------------------------------------------------- detection


def detect(checkout: Path, settings: Settings, repo_key: str = "") -> InstallPlan:
    """Read the checkout's dependency declarations into an InstallPlan (issue 10's order)."""
    root = checkout.resolve()
    pyproject = _read_toml(root / "pyproject.toml")
    plan = (
        _from_override(root, settings, repo_key)
        or _from_lock(root, pyproject)
        or _from_pinned_files(root)
        or _from_declarations(root, pyproject)
    )
    override = _override_for(settings, repo_key)
    project = _project_info(root, pyproject)
    requirements, install = list(plan.requirements), plan.install_project
    if plan.kind != "locked":
        requirements, self_extras, named = _split_self(requirements, pyproject)
        install = install or named
        extras = tuple(_dedupe(plan.project_extras + self_extras))
        requirements += _project_requirements(pyproject, extras) if extras else []
    if plan.kind in ("pinned", "declared") and project.installable:
        # Pinned test files (flask's requirements/tests.txt) omit the project's own
        # dependencies, which the project's install brings in.
        install = True
        requirements += project.dependencies
    install = install and project.installable
    updates: dict[str, Any] = {
        "requirements": _dedupe(requirements),
        "install_project": install,
        "build_requires": project.build_requires if install else [],
    }
    pth = ["/work"]
    if (root / "src").is_dir():
        pth.append("/work/src")
    if override is not None:
        pth += [f"/work/{p.strip('/')}" for p in override.python_path if _inside(root, root / p)]
    updates["pth_paths"] = _dedupe(pth)
    updates["files"] = _dedupe(plan.files + project.files)
    updates["notes"] = plan.notes + project.notes
    return plan.model_copy(update=updates)


def _split_self(
    requirements: list[str], pyproject: dict[str, Any]
) -> tuple[list[str], list[str], bool]:
    # "proj[test]" in a group or requirements file means the project itself with an
    # extra: resolving it from the index would fetch someone's release, not this tree.
    name = canonicalize_name(str(pyproject.get("project", {}).get("name", "")))
    kept: list[str] = []
    extras: list[str] = []
    named = False
    for line in requirements:
        req = _requirement(line)
        if name and req is not None and canonicalize_name(req.name) == name:
            extras += sorted(req.extras)
            named = True
            continue
        kept.append(line)
    return kept, extras, named


def _override_for(settings: Settings, repo_key: str) -> Any:
    if not repo_key:
        return None
    for key in (repo_key, repo_key.rstrip("/"), repo_key.removesuffix(".git")):
        if key in settings.repos:
            return settings.repos[key]
    return None


def _from_override(root: Path, settings: Settings, repo_key: str) -> InstallPlan | None:
    override = _override_for(settings, repo_key)
    if override is None or not override.install:
        return None
    parsed = _parse_requirement_lines(override.install, root, root, set())
    return InstallPlan(
        kind="override",
        label="runner.toml",
        files=parsed.files,
        requirements=parsed.requirements,
        constraints=parsed.constraints,
        install_project=parsed.install_project,
        project_extras=parsed.project_extras,
        notes=parsed.notes,
    )


def _from_lock(root: Path, pyproject: dict[str, Any]) -> InstallPlan | None:
    if (root / "uv.lock").is_file():
        return _uv_lock(root, pyproject)
    if (root / "poetry.lock").is_file():
        return _poetry_lock(root, pyproject)
    if (root / "pdm.lock").is_file():
        return _pdm_lock(root)
    if (root / "Pipfile.lock").is_file():
        return _pipfile_lock(root)
    return None


def _uv_lock(root: Path, pyproject: dict[str, Any]) -> InstallPlan:
    groups = set(pyproject.get("dependency-groups", {}))
    if pyproject.get("tool", {}).get("uv", {}).get("dev-dependencies"):
        groups.add("dev")
    extras = set(pyproject.get("project", {}).get("optional-dependencies", {}))
    argv = [
        uv_binary(),
        "export",
        "--frozen",
        "--no-hashes",
        "--no-emit-project",
        "--no-header",
        "--no-annotate",
        "--format",
        "requirements-txt",
        "--no-config",
        # Only the test groups named below: [tool.uv] default-groups (docs, typing,
        # pre-commit...) would otherwise come along and be resolved and built too.
        "--no-default-groups",
        "--project",
        str(root),
    ]
    argv += [arg for g in TEST_GROUPS if g in groups for arg in ("--group", g)]
    argv += [arg for e in TEST_GROUPS if e in extras for arg in ("--extra", e)]
    out = _run_uv(argv, cwd=root, what="uv export of uv.lock")
    requirements, notes = [], []
    for line in out.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("-e ") or line.startswith("./") or line.startswith("file:"):
            notes.append(f"uv.lock: local package {line!r} not installed")
            continue
        requirements.append(line)
    return InstallPlan(
        kind="locked",
        label="uv.lock",
        files=["uv.lock", "pyproject.toml"],
        requirements=requirements,
        install_project=_uv_is_package(pyproject),
        notes=notes,
    )


def _uv_is_package(pyproject: dict[str, Any]) -> bool:
    package = pyproject.get("tool", {}).get("uv", {}).get("package")
    if package is not None:
        return bool(package)
    return "build-system" in pyproject


def _poetry_lock(root: Path, pyproject: dict[str, Any]) -> InstallPlan:
    lock = _read_toml(root / "poetry.lock")
    packages: dict[str, list[dict[str, Any]]] = {}
    for pkg in lock.get("package", []):
        packages.setdefault(canonicalize_name(pkg["name"]), []).append(pkg)
    roots = _poetry_roots(pyproject)
    notes: list[str] = []
    if not roots:
        # Without the pyproject's declarations, take the groups the lock itself names.
        wanted = {"main", *TEST_GROUPS}
        roots = {
            name: []
            for name, pkgs in packages.items()
            for pkg in pkgs
            if wanted & set(pkg.get("groups") or [pkg.get("category", "main")])
        }
    chosen: dict[str, str] = {}
    queue: list[tuple[str, list[str]]] = list(roots.items())
    while queue:
        name, extras = queue.pop()
        pkg = _pick_locked(packages.get(name, []))
        if pkg is None:
            notes.append(f"poetry.lock: {name} is not locked for this Python")
            continue
        source = pkg.get("source", {}).get("type")
        if source in ("git", "directory", "file", "url"):
            notes.append(f"poetry.lock: {name} comes from a {source} source, not installed")
            continue
        if name in chosen:
            continue
        chosen[name] = pkg["version"]
        deps = dict(pkg.get("dependencies", {}))
        for extra in extras:
            for spec in pkg.get("extras", {}).get(extra, []):
                dep = canonicalize_name(re.split(r"[\s(\[;<>=!~]", spec.strip(), maxsplit=1)[0])
                deps.setdefault(dep, {"version": "*"})
        for dep, spec in deps.items():
            for item in spec if isinstance(spec, list) else [spec]:
                entry = item if isinstance(item, dict) else {"version": item}
                if entry.get("optional") and canonicalize_name(dep) not in _extra_deps(pkg, extras):
                    continue
                if _marker_ok(entry.get("markers")) and _python_ok(entry.get("python")):
                    queue.append((canonicalize_name(dep), list(entry.get("extras", []))))
                    break
    requirements = [f"{name}=={version}" for name, version in sorted(chosen.items())]
    mode = pyproject.get("tool", {}).get("poetry", {}).get("package-mode", True)
    return InstallPlan(
        kind="locked",
        label="poetry.lock",
        files=["poetry.lock", "pyproject.toml"],
        requirements=requirements,
        install_project=bool(mode),
        notes=notes,
    )


def _extra_deps(pkg: dict[str, Any], extras: list[str]) -> set[str]:
    out: set[str] = set()
    for extra in extras:
        for spec in pkg.get("extras", {}).get(extra, []):
            out.add(canonicalize_name(re.split(r"[\s(\[;<>=!~]", spec.strip(), maxsplit=1)[0]))
    return out


def _poetry_roots(pyproject: dict[str, Any]) -> dict[str, list[str]]:
    poetry = pyproject.get("tool", {}).get("poetry", {})
    tables = [poetry.get("dependencies", {}), poetry.get("dev-dependencies", {})]
    tables += [
        body.get("dependencies", {})
        for group, body in poetry.get("group", {}).items()
        if group in TEST_GROUPS
    ]
    roots: dict[str, list[str]] = {}
    for table in tables:
        for name, spec in table.items():
            if name.lower() == "python":
                continue
            specs = spec if isinstance(spec, list) else [spec]
            for item in specs:
                entry = item if isinstance(item, dict) else {}
                if entry.get("optional") or not _marker_ok(entry.get("markers")):
                    continue
                if not _python_ok(entry.get("python")):
                    continue
                roots[canonicalize_name(name)] = list(entry.get("extras", []))
    # Poetry 2 projects declare runtime dependencies in [project].
    for line in _project_requirements(pyproject, extras=()):
        req = _requirement(line)
        if req is not None and _marker_ok(str(req.marker) if req.marker else None):
            roots[canonicalize_name(req.name)] = sorted(req.extras)
    return roots


def _pick_locked(candidates: list[dict[str, Any]]) -> dict[str, Any] | None:
    for pkg in candidates:
        if _marker_ok(pkg.get("markers") if isinstance(pkg.get("markers"), str) else None):
            return pkg
    return None


def _pdm_lock(root: Path) -> InstallPlan:
    lock = _read_toml(root / "pdm.lock")
    wanted = {"default", *TEST_GROUPS}
    requirements, notes = [], []
    for pkg in lock.get("package", []):
        groups = set(pkg.get("groups", ["default"]))
        if not groups & wanted or not _marker_ok(pkg.get("marker")):
            continue
        if "version" not in pkg:
            notes.append(f"pdm.lock: {pkg.get('name')} has no version (a local or VCS source)")
            continue
        requirements.append(f"{canonicalize_name(pkg['name'])}=={pkg['version']}")
    return InstallPlan(
        kind="locked",
        label="pdm.lock",
        files=["pdm.lock", "pyproject.toml"],
        requirements=_dedupe(requirements),
        install_project=True,
        notes=notes,
    )


def _pipfile_lock(root: Path) -> InstallPlan:
    try:
        lock = json.loads((root / "Pipfile.lock").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ResolutionError(f"Pipfile.lock is not readable JSON: {exc}") from exc
    requirements, notes, install_project = [], [], False
    for section in ("default", "develop"):
        for name, entry in (lock.get(section) or {}).items():
            if not isinstance(entry, dict) or not _marker_ok(entry.get("markers")):
                continue
            if entry.get("path") == "." or entry.get("editable"):
                install_project = install_project or entry.get("path") == "."
                continue
            version = entry.get("version", "")
            if not version.startswith("=="):
                notes.append(f"Pipfile.lock: {name} has no version pin, not installed")
                continue
            requirements.append(f"{canonicalize_name(name)}{version}")
    return InstallPlan(
        kind="locked",
        label="Pipfile.lock",
        files=["Pipfile.lock"],
        requirements=_dedupe(requirements),
        install_project=install_project,
        notes=notes,
    )


def _from_pinned_files(root: Path) -> InstallPlan | None:
    candidates = [
        *sorted(root.glob("requirements/test*.txt"), key=_plain_first),
        *sorted(root.glob("requirements-test*.txt"), key=_plain_first),
        root / "test-requirements.txt",
        root / "requirements/dev.txt",
        root / "requirements-dev.txt",
    ]
    for path in candidates:
        if path.is_file() and _inside(root, path):
            parsed = _parse_requirement_file(path, root, set())
            return _pinned_plan(parsed, path.relative_to(root).as_posix())
    tox = root / "tox.ini"
    if tox.is_file():
        lines = _tox_deps(tox)
        if lines:
            parsed = _parse_requirement_lines(lines, root, root, set())
            return _pinned_plan(parsed, "tox.ini", extra_files=("tox.ini",))
    return None


def _plain_first(path: Path) -> tuple[bool, str]:
    # tests.txt before tests-min.txt or tests-dev.txt: the plain name is the suite's set.
    return ("-" in path.stem.removeprefix("requirements-"), path.name)


def _pinned_plan(parsed: _Parsed, label: str, extra_files: tuple[str, ...] = ()) -> InstallPlan:
    files = _dedupe([*extra_files, *parsed.files])
    if extra_files and parsed.files:
        label = f"{parsed.files[0]} (via {label})"
    return InstallPlan(
        kind="pinned",
        label=label,
        files=files,
        requirements=parsed.requirements,
        constraints=parsed.constraints,
        install_project=parsed.install_project,
        project_extras=parsed.project_extras,
        notes=parsed.notes,
    )


def _tox_deps(tox: Path) -> list[str]:
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    try:
        parser.read_string(tox.read_text(encoding="utf-8", errors="replace"))
    except configparser.Error:
        return []
    if not parser.has_option("testenv", "deps"):
        return []
    lines = []
    for raw in parser.get("testenv", "deps").splitlines():
        line = raw.strip().replace("{toxinidir}/", "").replace("{toxinidir}", ".")
        # Factor-conditional lines and substitutions depend on the tox env: skip them.
        if not line or "{" in line or re.match(r"^[\w,!-]+:\s", line):
            continue
        lines.append(line)
    return lines


def _from_declarations(root: Path, pyproject: dict[str, Any]) -> InstallPlan:
    requirements: list[str] = []
    files: list[str] = []
    groups = pyproject.get("dependency-groups", {})
    for group in TEST_GROUPS:
        if group in groups:
            requirements += _expand_group(groups, group, set())
            files.append("pyproject.toml")
    extras = pyproject.get("project", {}).get("optional-dependencies", {})
    for extra in TEST_GROUPS:
        if extra in extras:
            requirements += [str(x) for x in extras[extra]]
            files.append("pyproject.toml")
    parsed = _Parsed()
    plain = root / "requirements.txt"
    if plain.is_file():
        parsed = _parse_requirement_file(plain, root, set())
    return InstallPlan(
        kind="declared",
        label="pyproject.toml" if "pyproject.toml" in files else "declarations",
        files=_dedupe(files + parsed.files),
        requirements=_dedupe(requirements + parsed.requirements),
        constraints=parsed.constraints,
        install_project=parsed.install_project,
        project_extras=parsed.project_extras,
        notes=parsed.notes,
    )


def _expand_group(groups: dict[str, Any], name: str, seen: set[str]) -> list[str]:
    if name in seen:
        raise ResolutionError(f"[dependency-groups] {name} includes itself")
    seen = seen | {name}
    out: list[str] = []
    for item in groups.get(name, []):
        if isinstance(item, dict) and "include-group" in item:
            out += _expand_group(groups, str(item["include-group"]), seen)
        elif isinstance(item, str):
            out.append(item)
    return out


# --------------------------------------------------------------------------- the project


class _Project(Model):
    installable: bool = False
    dependencies: list[str] = Field(default_factory=list)
    build_requires: list[str] = Field(default_factory=list)
    files: list[str] = Field(default_factory=list)
    notes: list[str] = Field(default_factory=list)


def _project_info(root: Path, pyproject: dict[str, Any]) -> _Project:
    # Read statically: running the repository's setup.py on the host would execute
    # its code outside the sandbox.
    files, notes, deps = [], [], []
    has_build = "build-system" in pyproject
    has_project = "project" in pyproject
    # A setup.cfg that only configures tools (flake8, pytest) does not make a project.
    has_setup = (root / "setup.py").is_file() or _setup_cfg_names_project(root / "setup.cfg")
    installable = has_build or has_setup or has_project
    if pyproject:
        files.append("pyproject.toml")
    if has_project:
        deps += _project_requirements(pyproject, extras=TEST_GROUPS)
        dynamic = pyproject["project"].get("dynamic", [])
        if "dependencies" not in dynamic:
            has_setup = False
    if has_setup:
        cfg_deps, cfg_files = _setup_requirements(root)
        deps += cfg_deps
        files += cfg_files
        if not cfg_deps and (root / "setup.py").is_file():
            notes.append("setup.py: install_requires is not a literal; dependencies not read")
    system = pyproject.get("build-system", {})
    build = system.get("requires")
    build_requires = [str(x) for x in build] if build else list(LEGACY_BUILD_REQUIRES)
    # Without build isolation nothing installs what the backend asks for at build
    # time (get_requires_for_build_editable): setuptools < 70.1 needs wheel, and
    # older hatchling needs editables.
    backend = str(system.get("build-backend", "setuptools"))
    names = {_req_name(r) for r in build_requires}
    if backend.startswith("setuptools") and "wheel" not in names:
        build_requires.append("wheel")
    if backend.startswith("hatchling") and "editables" not in names:
        build_requires.append("editables")
    return _Project(
        installable=installable,
        dependencies=_dedupe(deps),
        build_requires=build_requires,
        files=files,
        notes=notes,
    )


def _project_requirements(pyproject: dict[str, Any], extras: tuple[str, ...]) -> list[str]:
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
            req = _requirement(line)
            # "pkg[speed]" inside pkg's own extra means another extra of this project,
            # which the project's install provides, not a release from the index.
            if name and req is not None and canonicalize_name(req.name) == name:
                queue += sorted(req.extras)
            else:
                out.append(line)
    return out


def _setup_cfg_names_project(path: Path) -> bool:
    if not path.is_file():
        return False
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    try:
        parser.read_string(path.read_text(encoding="utf-8", errors="replace"))
    except configparser.Error:
        return False
    return parser.has_option("metadata", "name")


def _setup_requirements(root: Path) -> tuple[list[str], list[str]]:
    deps: list[str] = []
    files: list[str] = []
    cfg = root / "setup.cfg"
    if cfg.is_file():
        parser = configparser.ConfigParser(interpolation=None, strict=False)
        try:
            parser.read_string(cfg.read_text(encoding="utf-8", errors="replace"))
        except configparser.Error:
            parser = configparser.ConfigParser()
        files.append("setup.cfg")
        if parser.has_option("options", "install_requires"):
            deps += _split_lines(parser.get("options", "install_requires"))
        for extra in TEST_GROUPS:
            if parser.has_option("options.extras_require", extra):
                deps += _split_lines(parser.get("options.extras_require", extra))
    setup = root / "setup.py"
    if setup.is_file():
        files.append("setup.py")
        deps += _setup_py_literals(setup)
    return deps, files


def _setup_py_literals(path: Path) -> list[str]:
    try:
        tree = ast.parse(path.read_text(encoding="utf-8", errors="replace"))
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
                for extra in TEST_GROUPS:
                    out += [str(x) for x in value.get(extra, [])]
    return out


# --------------------------------------------------------------------------- requirement files


class _Parsed(Model):
    project_extras: list[str] = Field(default_factory=list)
    requirements: list[str] = Field(default_factory=list)
    constraints: list[str] = Field(default_factory=list)
    files: list[str] = Field(default_factory=list)
    install_project: bool = False
    notes: list[str] = Field(default_factory=list)


def _parse_requirement_file(path: Path, root: Path, seen: set[Path]) -> _Parsed:
    resolved = path.resolve()
    if resolved in seen:
        return _Parsed()
    seen.add(resolved)
    text = resolved.read_text(encoding="utf-8", errors="replace")
    # Continuation lines (pip-compile's `\` before --hash) join into one.
    lines = text.replace("\\\n", " ").splitlines()
    parsed = _parse_requirement_lines(lines, root, resolved.parent, seen)
    parsed.files.insert(0, resolved.relative_to(root).as_posix())
    return parsed


def _parse_requirement_lines(lines: list[str], root: Path, base: Path, seen: set[Path]) -> _Parsed:
    out = _Parsed()
    for raw in lines:
        line = re.sub(r"(^|\s)#.*$", "", raw).strip()
        if not line:
            continue
        include = re.match(r"^(--requirement|--constraint|-r|-c)[\s=]*(\S+)", line)
        if include:
            target = (base / include.group(2)).resolve()
            if not _inside(root, target) or not target.is_file():
                out.notes.append(f"{include.group(2)}: outside the checkout or missing, skipped")
                continue
            sub = _parse_requirement_file(target, root, seen)
            if include.group(1) in ("-c", "--constraint"):
                out.constraints += sub.requirements + sub.constraints
            else:
                out.requirements += sub.requirements
                out.constraints += sub.constraints
                out.install_project = out.install_project or sub.install_project
                out.project_extras += sub.project_extras
            out.files += sub.files
            out.notes += sub.notes
            continue
        editable = re.match(r"^(-e|--editable)[\s=]+(\S+)", line)
        target_text = editable.group(2) if editable else line
        local = re.match(r"^(?:\.|file:\.?)/?(?:\[([^\]]*)\])?/?$", target_text)
        if local:
            out.install_project = True
            out.project_extras += [
                e.strip() for e in (local.group(1) or "").split(",") if e.strip()
            ]
            continue
        if editable or line.startswith("-"):
            # Index options are ignored on purpose: the host's pip configuration decides.
            if editable:
                out.notes.append(f"{line!r}: editable requirement skipped")
            continue
        requirement = line.split(" --hash")[0].strip()
        if _requirement(requirement) is None:
            out.notes.append(f"{requirement!r}: not a requirement, skipped")
            continue
        out.requirements.append(requirement)
    out.requirements = _dedupe(out.requirements)
    return out


# --------------------------------------------------------------------------- resolution


def resolve(
    plan: InstallPlan,
    settings: Settings,
    python: str,
    commit_date: datetime | None,
) -> ResolvedEnvironment:
    """Resolve the plan (plus missing test tools) to exact pins with `uv pip compile`."""
    as_of = _as_of(settings, commit_date)
    requirements = list(plan.requirements)
    tool_sources: dict[str, str] = {}
    declared = {_req_name(r) for r in requirements}
    force_runner_tools = settings.tools.resolution == "latest"
    for tool in TOOLS:
        configured = getattr(settings.tools, tool).strip()
        if tool in declared and not force_runner_tools:
            tool_sources[tool] = "repository"
            continue
        requirements = [r for r in requirements if _req_name(r) != tool]
        requirements.append(_tool_requirement(tool, configured))
        tool_sources[tool] = "runner.toml" if configured else ("latest" if not as_of else "as-of")
    notes = list(plan.notes)
    cache = _cache_path(settings, plan, requirements, python, as_of)
    if cache is not None and cache.is_file():
        try:
            return ResolvedEnvironment.model_validate_json(cache.read_text(encoding="utf-8"))
        except ValueError:
            cache.unlink(missing_ok=True)
    install_project = plan.install_project
    pins: list[str] | None = None
    if install_project and plan.build_requires:
        try:
            pins = compile_requirements(
                requirements + plan.build_requires, plan.constraints, python, as_of
            )
        except ResolutionError as exc:
            # The suite can still import the tree through the .pth file.
            install_project = False
            notes.append(f"build requirements did not resolve, project not installed: {exc}")
    if pins is None:
        pins = compile_requirements(requirements, plan.constraints, python, as_of)
    versions = dict(_pin_name_version(pin) for pin in pins)
    source = f"{plan.kind}: {plan.label}"
    if plan.kind == "declared":
        source = f"as-of: {as_of}" if as_of else "latest"
    env = ResolvedEnvironment(
        source=source,
        kind=plan.kind,
        as_of=as_of,
        python=python,
        pins=pins,
        pytest=versions.get("pytest"),
        flake8=versions.get("flake8"),
        tool_sources=tool_sources,
        install_project=install_project,
        pth_paths=plan.pth_paths,
        files=plan.files,
        notes=notes,
    )
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(env.model_dump_json(indent=1), encoding="utf-8")
        tmp.replace(cache)
    log.info("dependencies.resolved", source=source, pins=len(pins), pytest=env.pytest)
    return env


def compile_requirements(
    requirements: list[str], constraints: list[str], python: str, as_of: str | None
) -> list[str]:
    """`uv pip compile` for the image's Python and platform; the resolver's error on failure."""
    with tempfile.TemporaryDirectory(prefix="fixrunner-resolve-") as tmp:
        req_file = Path(tmp) / "requirements.in"
        req_file.write_text("\n".join(requirements) + "\n", encoding="utf-8")
        argv = [
            uv_binary(),
            "pip",
            "compile",
            str(req_file),
            "--no-config",
            "--quiet",
            "--no-header",
            "--no-annotate",
            "--python-version",
            python,
            "--python-platform",
            PYTHON_PLATFORM,
            *host_index_args(),
        ]
        if constraints:
            con_file = Path(tmp) / "constraints.txt"
            con_file.write_text("\n".join(constraints) + "\n", encoding="utf-8")
            argv += ["--constraint", str(con_file)]
        if as_of:
            argv += ["--exclude-newer", as_of]
        out = _run_uv(argv, cwd=Path(tmp), what="dependency resolution")
    pins = [
        line.strip()
        for line in out.splitlines()
        if line.strip() and not line.lstrip().startswith(("#", "-"))
    ]
    return sorted(_dedupe(pins), key=lambda p: _pin_name_version(p)[0])


def host_index_args() -> list[str]:
    """The host's pip configuration (files and PIP_* variables) as uv index arguments."""
    config = _pip_config()
    argv: list[str] = []
    if config.get("no-index", "").lower() in ("1", "true", "yes", "on"):
        argv.append("--no-index")
    if config.get("index-url"):
        argv += ["--index-url", config["index-url"]]
    for url in config.get("extra-index-url", "").split():
        argv += ["--extra-index-url", url]
    for link in config.get("find-links", "").split():
        argv += ["--find-links", link]
    # pip considers every index and takes the best version; uv's default stops at the
    # first index that has the name, which hides older releases that only PyPI has.
    argv += ["--index-strategy", "unsafe-best-match"]
    return argv


@functools.lru_cache(maxsize=1)
def _pip_config() -> dict[str, str]:
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "pip", "config", "list"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return {}
    ranked: dict[str, tuple[int, str]] = {}
    rank = {"global": 0, "install": 1, "download": 1, "wheel": 1, ":env:": 2}
    for line in proc.stdout.splitlines():
        match = re.match(r"^(:env:|[\w-]+)\.([\w-]+)='(.*)'$", line.strip())
        if not match:
            continue
        section, key, value = match.groups()
        level = rank.get(section, 0)
        if key not in ranked or ranked[key][0] <= level:
            ranked[key] = (level, value)
    return {key: value for key, (_, value) in ranked.items()}


def uv_binary() -> str:
    """Path of the uv binary shipped with the runner's own environment."""
    try:
        import uv

        return uv.find_uv_bin()
    except (ImportError, FileNotFoundError):
        return str(Path(sys.executable).with_name("uv"))


def _run_uv(argv: list[str], cwd: Path, what: str) -> str:
    # uv's own variables (UV_EXCLUDE_NEWER, UV_INDEX_URL…) would change the answer
    # behind the runner's back; its cache location is harmless.
    env = {k: v for k, v in os.environ.items() if not k.startswith("UV_") or k == "UV_CACHE_DIR"}
    env["UV_NO_PROGRESS"] = "1"
    cert = os.environ.get("PIP_CERT") or _pip_config().get("cert")
    if cert and "SSL_CERT_FILE" not in env:
        env["SSL_CERT_FILE"] = cert
    try:
        proc = subprocess.run(
            argv,
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=UV_TIMEOUT_S,
            env=env,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise ResolutionError(f"{what} timed out after {UV_TIMEOUT_S} s") from exc
    except OSError as exc:
        raise ResolutionError(f"{what}: uv could not run: {exc}") from exc
    if proc.returncode != 0:
        message = _trim(proc.stderr.strip() or proc.stdout.strip())
        raise ResolutionError(f"{what} failed: {message}", log=message)
    return proc.stdout


# --------------------------------------------------------------------------- helpers


def _as_of(settings: Settings, commit_date: datetime | None) -> str | None:
    if settings.tools.resolution == "latest":
        return None
    when = commit_date or datetime.now(UTC)
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.astimezone(UTC).date().isoformat()


def _tool_requirement(tool: str, configured: str) -> str:
    if not configured:
        return tool
    if configured[0].isdigit():
        return f"{tool}=={configured}"
    if configured.lower().startswith(tool):
        return configured
    return f"{tool}{configured}"


def _cache_path(
    settings: Settings, plan: InstallPlan, requirements: list[str], python: str, as_of: str | None
) -> Path | None:
    # Only a dated resolution is reproducible; "latest" must ask the index each time.
    if as_of is None or as_of >= date.today().isoformat():
        return None
    digest = hashlib.sha256(
        json.dumps(
            [
                RESOLVER_FORMAT,
                plan.model_dump(mode="json"),
                requirements,
                python,
                as_of,
                host_index_args(),
            ],
            sort_keys=True,
        ).encode()
    ).hexdigest()
    return settings.paths.root / "resolutions" / f"{digest[:32]}.json"


def _marker_env(python: str = "3.11") -> dict[str, str]:
    return {
        "python_version": python,
        "python_full_version": f"{python}.0",
        "implementation_name": "cpython",
        "implementation_version": f"{python}.0",
        "platform_python_implementation": "CPython",
        "sys_platform": "linux",
        "platform_system": "Linux",
        "platform_machine": "x86_64",
        "os_name": "posix",
        "platform_release": "",
        "platform_version": "",
        "extra": "",
    }


def _marker_ok(marker: str | None, python: str = "3.11") -> bool:
    """Whether a PEP 508 marker holds in the image (Linux x86_64, CPython)."""
    if not marker:
        return True
    try:
        return Marker(marker).evaluate(_marker_env(python))
    except (InvalidMarker, UndefinedComparison, UndefinedEnvironmentName):
        return True


def _python_ok(spec: str | None, python: str = "3.11") -> bool:
    """Whether a Poetry ``python = "…"`` constraint admits the image's Python."""
    if not spec or spec.strip() == "*":
        return True
    # Poetry's ^ and ~ and || have no PEP 440 spelling; keep such a dependency.
    if any(token in spec for token in ("^", "||", "|")) or re.search(r"~(?!=)", spec):
        return True
    try:
        return SpecifierSet(spec).contains(f"{python}.0")
    except InvalidSpecifier:
        return True


def _requirement(line: str) -> Requirement | None:
    try:
        return Requirement(line)
    except InvalidRequirement:
        return None


def _req_name(line: str) -> str:
    req = _requirement(line)
    return canonicalize_name(req.name) if req else ""


def _pin_name_version(pin: str) -> tuple[str, str]:
    req = _requirement(pin)
    if req is None:
        return pin, ""
    version = next((s.version for s in req.specifier if s.operator == "=="), "")
    return canonicalize_name(req.name), version


def _split_lines(text: str) -> list[str]:
    return [x.strip() for x in text.splitlines() if x.strip() and not x.strip().startswith("#")]


def _read_toml(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ResolutionError(f"{path.name} is not valid TOML: {exc}") from exc


def _inside(root: Path, path: Path) -> bool:
    try:
        return path.resolve().is_relative_to(root.resolve())
    except OSError:
        return False


def _dedupe(items: list[str]) -> list[str]:
    return list(dict.fromkeys(items))


def _trim(text: str, limit: int = MESSAGE_LIMIT) -> str:
    return text if len(text) <= limit else text[: limit // 2] + "\n…\n" + text[-limit // 2 :]
