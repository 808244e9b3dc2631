"""Lock files (uv.lock, poetry.lock, pdm.lock, Pipfile.lock) read into an InstallPlan."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from packaging.utils import canonicalize_name

from runner.environments.hosttools import run_uv, uv_binary
from runner.environments.plans import TEST_GROUPS, InstallPlan
from runner.environments.project import project_requirements
from runner.environments.requirements import (
    dedupe,
    marker_ok,
    parse_requirement,
    present,
    python_ok,
    read_manifest,
    read_toml,
)
from runner.errors import ResolutionError


def from_lock(root: Path, pyproject: dict[str, Any]) -> InstallPlan | None:
    if present(root / "uv.lock"):
        return _uv_lock(root, pyproject)
    if present(root / "poetry.lock"):
        return _poetry_lock(root, pyproject)
    if present(root / "pdm.lock"):
        return _pdm_lock(root)
    if present(root / "Pipfile.lock"):
        return _pipfile_lock(root)
    return None


def _uv_lock(root: Path, pyproject: dict[str, Any]) -> InstallPlan:
    # uv reads the lock itself: refuse a link out of the checkout or a FIFO before it does.
    read_manifest(root, root / "uv.lock")
    groups = set(pyproject.get("dependency-groups", {}))
    if pyproject.get("tool", {}).get("uv", {}).get("dev-dependencies"):
        groups.add("dev")
    extras = set(pyproject.get("project", {}).get("optional-dependencies", {}))
    argv = [
        uv_binary(),
        "export",
        "--frozen",
        # Reading a lock needs neither: say so, so a uv that wanted to would fail instead.
        "--offline",
        "--no-build",
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
    out = run_uv(argv, cwd=root, what="uv export of uv.lock")
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
    lock = read_toml(root, root / "poetry.lock")
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
                if marker_ok(entry.get("markers")) and python_ok(entry.get("python")):
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
                if entry.get("optional") or not marker_ok(entry.get("markers")):
                    continue
                if not python_ok(entry.get("python")):
                    continue
                roots[canonicalize_name(name)] = list(entry.get("extras", []))
    # Poetry 2 projects declare runtime dependencies in [project].
    for line in project_requirements(pyproject, extras=()):
        req = parse_requirement(line)
        if req is not None and marker_ok(str(req.marker) if req.marker else None):
            roots[canonicalize_name(req.name)] = sorted(req.extras)
    return roots


def _pick_locked(candidates: list[dict[str, Any]]) -> dict[str, Any] | None:
    for pkg in candidates:
        if marker_ok(pkg.get("markers") if isinstance(pkg.get("markers"), str) else None):
            return pkg
    return None


def _pdm_lock(root: Path) -> InstallPlan:
    lock = read_toml(root, root / "pdm.lock")
    wanted = {"default", *TEST_GROUPS}
    requirements, notes = [], []
    for pkg in lock.get("package", []):
        groups = set(pkg.get("groups", ["default"]))
        if not groups & wanted or not marker_ok(pkg.get("marker")):
            continue
        if "version" not in pkg:
            notes.append(f"pdm.lock: {pkg.get('name')} has no version (a local or VCS source)")
            continue
        requirements.append(f"{canonicalize_name(pkg['name'])}=={pkg['version']}")
    return InstallPlan(
        kind="locked",
        label="pdm.lock",
        files=["pdm.lock", "pyproject.toml"],
        requirements=dedupe(requirements),
        install_project=True,
        notes=notes,
    )


def _pipfile_lock(root: Path) -> InstallPlan:
    try:
        lock = json.loads(read_manifest(root, root / "Pipfile.lock") or "{}")
    except ValueError as exc:
        raise ResolutionError(f"Pipfile.lock is not readable JSON: {exc}") from exc
    requirements, notes, install_project = [], [], False
    for section in ("default", "develop"):
        for name, entry in (lock.get(section) or {}).items():
            if not isinstance(entry, dict) or not marker_ok(entry.get("markers")):
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
        requirements=dedupe(requirements),
        install_project=install_project,
        notes=notes,
    )
