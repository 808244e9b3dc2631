"""What a repository needs installed: a checkout's declarations read into an InstallPlan.

Detection reads files only (`uv export --frozen` is the one offline subprocess), in
the order of issue 10: override, lock file, pinned requirement file, unpinned
declarations.
"""

from __future__ import annotations

import configparser
import re
from pathlib import Path
from typing import Any

from packaging.utils import canonicalize_name

from runner.config import Settings
from runner.environments.declarations import declarations, requirement_files_below
from runner.environments.locks import from_lock
from runner.environments.plans import TEST_GROUPS, InstallPlan
from runner.environments.project import (
    project_info,
    project_name,
    project_requirements,
    setup_cfg_extras,
)
from runner.environments.requirements import (
    ParsedRequirements,
    dedupe,
    inside,
    parse_requirement,
    parse_requirement_file,
    parse_requirement_lines,
    present,
    read_manifest,
    read_toml,
)
from runner.errors import ResolutionError


def detect(checkout: Path, settings: Settings, repo_key: str = "") -> InstallPlan:
    """Read the checkout's dependency declarations into an InstallPlan (issue 10's order)."""
    root = checkout.resolve()
    pyproject = read_toml(root, root / "pyproject.toml")
    plan = (
        _from_override(root, settings, repo_key)
        or from_lock(root, pyproject)
        or _from_pinned_files(root)
        or _from_declarations(root, pyproject)
    )
    origins = dict.fromkeys(plan.requirements, plan.label)
    if plan.kind in ("pinned", "declared"):
        plan = _with_declarations(root, pyproject, plan, origins)
    override = _override_for(settings, repo_key)
    project = project_info(root, pyproject)
    requirements, install = list(plan.requirements), plan.install_project
    extras: tuple[str, ...] = ()
    if plan.kind != "locked":
        requirements, self_extras, named = _split_self(requirements, pyproject)
        install = install or named
        extras = tuple(dedupe(plan.project_extras + self_extras))
        if extras:
            lines = project_requirements(pyproject, extras) + setup_cfg_extras(root, extras)
            _add(requirements, origins, lines, f"project extras {', '.join(extras)}")
    if plan.kind in ("pinned", "declared") and project.installable:
        # Pinned test files (flask's requirements/tests.txt) omit the project's own
        # dependencies, which the project's install brings in.
        install = True
        where = ", ".join(project.files) or "the project"
        _add(requirements, origins, project.dependencies, f"project dependencies ({where})")
    install = install and project.installable
    requirements = dedupe(requirements)
    updates: dict[str, Any] = {
        "requirements": requirements,
        "install_project": install,
        "build_requires": project.build_requires if install else [],
        "origins": {line: origins.get(line, plan.label) for line in requirements},
    }
    if project.dynamic_metadata and install and plan.kind != "locked":
        # The extras the tooling names, else the test ones ("dev" usually adds docs and
        # pre-commit, which the suite does not need).
        updates["metadata_extras"] = list(extras) or [g for g in TEST_GROUPS if g != "dev"]
    pth = ["/work"]
    if (root / "src").is_dir():
        pth.append("/work/src")
    if override is not None:
        pth += [f"/work/{p.strip('/')}" for p in override.python_path if inside(root, root / p)]
    updates["pth_paths"] = dedupe(pth)
    updates["project_name"] = project_name(root, pyproject)
    updates["files"] = dedupe(plan.files + project.files)
    updates["notes"] = plan.notes + project.notes
    return plan.model_copy(update=updates)


def _add(requirements: list[str], origins: dict[str, str], lines: list[str], label: str) -> None:
    for line in lines:
        origins.setdefault(line, label)
        requirements.append(line)


def _with_declarations(
    root: Path, pyproject: dict[str, Any], plan: InstallPlan, origins: dict[str, str]
) -> InstallPlan:
    # nox sessions, tox extras, hatch environments, poetry and pdm groups name what the
    # tests need beside the winning file. A pinned test file is the suite's whole set:
    # only the project extras it leaves out are added to it.
    requirements, constraints = list(plan.requirements), list(plan.constraints)
    extras, files, notes = list(plan.project_extras), list(plan.files), list(plan.notes)
    install = plan.install_project
    labels = []
    for found in declarations(root, pyproject):
        parsed = found.parsed
        if plan.kind == "pinned" and not parsed.project_extras:
            continue
        if plan.kind == "declared":
            _add(requirements, origins, parsed.requirements, found.label)
            constraints += parsed.constraints
        extras += parsed.project_extras
        install = install or parsed.install_project
        files += [found.label.split(" ")[0], *parsed.files]
        notes += parsed.notes
        labels.append(found.label)
    label = plan.label
    if plan.kind == "declared" and labels and plan.label == "declarations":
        label = labels[0]
    return plan.model_copy(
        update={
            "label": label,
            "requirements": dedupe(requirements),
            "constraints": dedupe(constraints),
            "project_extras": dedupe(extras),
            "install_project": install,
            "files": dedupe(files),
            "notes": notes,
        }
    )


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
        req = parse_requirement(line)
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
    parsed = parse_requirement_lines(override.install, root, root, set())
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


def _from_pinned_files(root: Path) -> InstallPlan | None:
    candidates = [
        *sorted(root.glob("requirements/test*.txt"), key=_plain_first),
        *sorted(root.glob("requirements-test*.txt"), key=_plain_first),
        root / "test-requirements.txt",
        *requirement_files_below(root),
        root / "requirements/dev.txt",
        root / "requirements-dev.txt",
        root / "requirements/dev.in",
        root / "requirements-dev.in",
    ]
    for path in candidates:
        if path.is_file() and inside(root, path):
            parsed = parse_requirement_file(path, root, set())
            return _pinned_plan(parsed, path.relative_to(root).as_posix())
    tox = root / "tox.ini"
    if present(tox):
        lines = _tox_deps(root, tox)
        if lines:
            parsed = parse_requirement_lines(lines, root, root, set())
            return _pinned_plan(parsed, "tox.ini", extra_files=("tox.ini",))
    return None


def _plain_first(path: Path) -> tuple[bool, str]:
    # tests.txt before tests-min.txt or tests-dev.txt: the plain name is the suite's set.
    return ("-" in path.stem.removeprefix("requirements-"), path.name)


def _pinned_plan(
    parsed: ParsedRequirements, label: str, extra_files: tuple[str, ...] = ()
) -> InstallPlan:
    files = dedupe([*extra_files, *parsed.files])
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


def _tox_deps(root: Path, tox: Path) -> list[str]:
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    try:
        parser.read_string(read_manifest(root, tox) or "")
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
    parsed = ParsedRequirements()
    plain = root / "requirements.txt"
    if present(plain):
        parsed = parse_requirement_file(plain, root, set())
    return InstallPlan(
        kind="declared",
        label="pyproject.toml" if "pyproject.toml" in files else "declarations",
        files=dedupe(files + parsed.files),
        requirements=dedupe(requirements + parsed.requirements),
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
