"""Requirement lines and files: PEP 508 parsing, markers for the image, -r/-c includes."""

from __future__ import annotations

import os
import re
import tomllib
from pathlib import Path
from typing import Any

from packaging.markers import InvalidMarker, Marker, UndefinedComparison, UndefinedEnvironmentName
from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.utils import canonicalize_name
from pydantic import Field

from runner.common.files import read_inside
from runner.errors import ResolutionError
from runner.models import Model

MESSAGE_LIMIT = 4000
# Lock files of large projects run to a few MiB; nothing a checkout declares needs more.
MANIFEST_MAX_BYTES = 16 * 2**20
# Requirement lines that are not "name + version" but a place to build from.
DIRECT_PREFIXES = ("git+", "hg+", "svn+", "bzr+", "./", "../", "/", "file:", "http:", "https:")


class ParsedRequirements(Model):
    project_extras: list[str] = Field(default_factory=list)
    requirements: list[str] = Field(default_factory=list)
    constraints: list[str] = Field(default_factory=list)
    files: list[str] = Field(default_factory=list)
    install_project: bool = False
    notes: list[str] = Field(default_factory=list)


def parse_requirement_file(path: Path, root: Path, seen: set[Path]) -> ParsedRequirements:
    resolved = path.resolve()
    if resolved in seen:
        return ParsedRequirements()
    seen.add(resolved)
    text = read_manifest(root, resolved) or ""
    # Continuation lines (pip-compile's `\` before --hash) join into one.
    lines = text.replace("\\\n", " ").splitlines()
    parsed = parse_requirement_lines(lines, root, resolved.parent, seen)
    parsed.files.insert(0, resolved.relative_to(root).as_posix())
    return parsed


def parse_requirement_lines(
    lines: list[str], root: Path, base: Path, seen: set[Path]
) -> ParsedRequirements:
    out = ParsedRequirements()
    for raw in lines:
        line = re.sub(r"(^|\s)#.*$", "", raw).strip()
        if not line:
            continue
        include = re.match(r"^(--requirement|--constraint|-r|-c)[\s=]*(\S+)", line)
        if include:
            target = (base / include.group(2)).resolve()
            if not inside(root, target) or not target.is_file():
                out.notes.append(f"{include.group(2)}: outside the checkout or missing, skipped")
                continue
            sub = parse_requirement_file(target, root, seen)
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
        text = line.split(" --hash")[0].strip()
        if direct_reference(text):
            # Kept so that resolution refuses it by name: skipping it would only turn
            # into a confusing test failure later.
            out.requirements.append(text)
            continue
        if parse_requirement(text) is None:
            out.notes.append(f"{text!r}: not a requirement, skipped")
            continue
        out.requirements.append(text)
    out.requirements = dedupe(out.requirements)
    return out


def marker_env(python: str = "3.11") -> dict[str, str]:
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


def marker_ok(marker: str | None, python: str = "3.11") -> bool:
    """Whether a PEP 508 marker holds in the image (Linux x86_64, CPython)."""
    if not marker:
        return True
    try:
        return Marker(marker).evaluate(marker_env(python))
    except (InvalidMarker, UndefinedComparison, UndefinedEnvironmentName):
        return True


def python_ok(spec: str | None, python: str = "3.11") -> bool:
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


def parse_requirement(line: str) -> Requirement | None:
    try:
        return Requirement(line)
    except InvalidRequirement:
        return None


def direct_reference(line: str) -> bool:
    """Whether a requirement names a URL, a VCS or a local path instead of an index release."""
    req = parse_requirement(line)
    if req is not None:
        return req.url is not None
    return line.startswith(DIRECT_PREFIXES) or "://" in line


def req_name(line: str) -> str:
    req = parse_requirement(line)
    return canonicalize_name(req.name) if req else ""


def pin_name_version(pin: str) -> tuple[str, str]:
    req = parse_requirement(pin)
    if req is None:
        return pin, ""
    version = next((s.version for s in req.specifier if s.operator == "=="), "")
    return canonicalize_name(req.name), version


def split_lines(text: str) -> list[str]:
    return [x.strip() for x in text.splitlines() if x.strip() and not x.strip().startswith("#")]


def present(path: Path) -> bool:
    """Whether the checkout has anything at ``path``: a file, a link (even dangling), a FIFO."""
    return os.path.lexists(path)


def read_manifest(root: Path, path: Path) -> str | None:
    """A checkout file's text, None when absent; refused when it is a link out of the checkout,
    not a regular file (a FIFO would hang the runner) or over the cap."""
    if not present(path):
        return None
    data = read_inside(root, path, MANIFEST_MAX_BYTES)
    name = path.relative_to(root).as_posix() if path.is_relative_to(root) else path.name
    if data is None:
        raise ResolutionError(
            f"{name} is a link out of the checkout or not a regular file: the runner reads "
            "only regular files inside the checkout"
        )
    if len(data) > MANIFEST_MAX_BYTES:
        raise ResolutionError(f"{name} is larger than {MANIFEST_MAX_BYTES // 2**20} MiB, not read")
    return data.decode("utf-8", errors="replace")


def read_toml(root: Path, path: Path) -> dict[str, Any]:
    text = read_manifest(root, path)
    if text is None:
        return {}
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ResolutionError(f"{path.name} is not valid TOML: {exc}") from exc


def inside(root: Path, path: Path) -> bool:
    try:
        return path.resolve().is_relative_to(root.resolve())
    except OSError:
        return False


def dedupe(items: list[str]) -> list[str]:
    return list(dict.fromkeys(items))


def trim(text: str, limit: int = MESSAGE_LIMIT) -> str:
    return text if len(text) <= limit else text[: limit // 2] + "\n…\n" + text[-limit // 2 :]
