"""An InstallPlan resolved to exact pins on the host with `uv pip compile`.

As of the base commit's date by default; dated resolutions are cached by content.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import structlog

from runner.config import Settings
from runner.environments.hosttools import host_index_args, run_uv, uv_binary
from runner.environments.plans import TOOLS, InstallPlan, ResolvedEnvironment
from runner.environments.requirements import dedupe, direct_reference, pin_name_version, req_name
from runner.errors import ResolutionError

log = structlog.get_logger(__name__)

# Bumped when the resolver's inputs or output format change, so caches start afresh.
RESOLVER_FORMAT = "3"
# The platform of the default base image: Debian bookworm, glibc 2.36, x86_64. Another
# base passes its own glibc level (bullseye 2_31, trixie 2_40).
DEFAULT_MANYLINUX = "2_36"
# What uv says when the only way on is to build a source distribution.
NO_BUILD_HINT = "building from source is disabled"


def resolve(
    plan: InstallPlan,
    settings: Settings,
    python: str,
    commit_date: datetime | None,
    manylinux: str = DEFAULT_MANYLINUX,
) -> ResolvedEnvironment:
    """Resolve the plan (plus missing test tools) to exact pins with `uv pip compile`.

    ``python`` and ``manylinux`` (a glibc level such as '2_31') are the base image's.
    """
    as_of = _as_of(settings, commit_date)
    requirements = list(plan.requirements)
    tool_sources: dict[str, str] = {}
    declared = {req_name(r) for r in requirements}
    force_runner_tools = settings.tools.resolution == "latest"
    for tool in TOOLS:
        configured = getattr(settings.tools, tool).strip()
        if tool in declared and not force_runner_tools:
            tool_sources[tool] = "repository"
            continue
        requirements = [r for r in requirements if req_name(r) != tool]
        requirements.append(_tool_requirement(tool, configured))
        tool_sources[tool] = "runner.toml" if configured else ("latest" if not as_of else "as-of")
    _refuse_direct_references([*requirements, *plan.constraints, *plan.build_requires])
    notes = list(plan.notes)
    cache = _cache_path(settings, plan, requirements, python, as_of, manylinux)
    if cache is not None and cache.is_file():
        try:
            return ResolvedEnvironment.model_validate_json(cache.read_text(encoding="utf-8"))
        except ValueError:
            cache.unlink(missing_ok=True)
    install_project = plan.install_project
    pins: list[str] | None = None
    if install_project and plan.build_requires:
        try:
            pins, moved = compile_pins(
                requirements + plan.build_requires, plan.constraints, python, as_of, manylinux
            )
            notes += moved
        except ResolutionError as exc:
            # The suite can still import the tree through the .pth file.
            install_project = False
            notes.append(f"build requirements did not resolve, project not installed: {exc}")
    if pins is None:
        pins, moved = compile_pins(requirements, plan.constraints, python, as_of, manylinux)
        notes += moved
    versions = dict(pin_name_version(pin) for pin in pins)
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
        project_name=plan.project_name,
        files=plan.files,
        notes=notes,
        origins=plan.origins,
    )
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(env.model_dump_json(indent=1), encoding="utf-8")
        tmp.replace(cache)
    log.info("dependencies.resolved", source=source, pins=len(pins), pytest=env.pytest)
    return env


# uv names the package that stopped a wheels-only resolution: "all versions of x have no
# usable wheels", "x>=1,<2 has no usable wheels".
_NO_WHEELS = re.compile(
    r"(?:all versions of )?([A-Za-z0-9][A-Za-z0-9._-]*)[^\s]* (?:have|has) no usable wheels"
)
_DEPENDANTS = re.compile(r"([A-Za-z0-9][A-Za-z0-9._-]*)[^\s]* depends on ")
# How far past the commit date a package without a wheel for the chosen Python may move.
_LATER_DAYS = (180, 365, 730, 1460)


def compile_pins(
    requirements: list[str],
    constraints: list[str],
    python: str,
    as_of: str | None,
    manylinux: str = DEFAULT_MANYLINUX,
) -> tuple[list[str], list[str]]:
    """Pins as of the commit; a package with no wheel for this Python then moves to its
    first later release that has one. Returns the pins and a note per moved package."""
    later: dict[str, str] = {}
    why: dict[str, str] = {}
    while True:
        try:
            pins = compile_requirements(
                requirements, constraints, python, as_of, manylinux, later=later
            )
        except ResolutionError as exc:
            found = _NO_WHEELS.search(str(exc)) if as_of else None
            if found is None or as_of is None or len(later) > 10:
                raise
            # The package without a wheel, and those that pin it (a later release of a
            # dependant may have dropped it): each moves one cutoff further.
            wheelless = found.group(1).lower()
            names = {wheelless, *(n.lower() for n in _DEPENDANTS.findall(str(exc)))}
            moved = False
            for name in sorted(names):
                step = _next_cutoff(as_of, later.get(name))
                if step is not None:
                    later[name] = step
                    why.setdefault(
                        name,
                        f"no wheel for Python {python} as of {as_of}"
                        if name == wheelless
                        else f"it pins {wheelless}, which has no wheel for Python {python}",
                    )
                    moved = True
            if not moved:
                raise
            continue
        notes = [
            f"{name}: {why[name]}; a release up to {cutoff} is used (the runner builds "
            "no source distribution)"
            for name, cutoff in later.items()
        ]
        return pins, notes


def _next_cutoff(as_of: str, current: str | None) -> str | None:
    """The next later upload cutoff to try for one package, None when none is left."""
    start = date.fromisoformat(as_of)
    today = datetime.now(UTC).date() + timedelta(days=1)
    steps = [min(start + timedelta(days=d), today).isoformat() for d in _LATER_DAYS]
    steps.append(today.isoformat())
    for step in steps:
        if current is None or step > current:
            return step
    return None


def compile_requirements(
    requirements: list[str],
    constraints: list[str],
    python: str,
    as_of: str | None,
    manylinux: str = DEFAULT_MANYLINUX,
    *,
    later: dict[str, str] | None = None,
) -> list[str]:
    """`uv pip compile` for the image's Python and platform; the resolver's error on failure.

    ``later`` moves single packages' upload cutoff past ``as_of`` (name -> date)."""
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
            f"x86_64-manylinux_{manylinux}",
            # Wheels and metadata only: resolving an sdist would run its setup.py here,
            # on the host, with the runner's rights.
            "--no-build",
            *host_index_args(),
        ]
        if constraints:
            con_file = Path(tmp) / "constraints.txt"
            con_file.write_text("\n".join(constraints) + "\n", encoding="utf-8")
            argv += ["--constraint", str(con_file)]
        if as_of:
            argv += ["--exclude-newer", as_of]
            for name, cutoff in (later or {}).items():
                argv += ["--exclude-newer-package", f"{name}={cutoff}"]
        try:
            out = run_uv(argv, cwd=Path(tmp), what="dependency resolution")
        except ResolutionError as exc:
            if NO_BUILD_HINT in str(exc):
                raise ResolutionError(
                    f"{exc}\n(the runner installs wheels only: a package published only as a "
                    "source distribution would run its build code on the host)",
                    log=exc.log,
                ) from exc
            raise
    pins = [
        line.strip()
        for line in out.splitlines()
        if line.strip() and not line.lstrip().startswith(("#", "-"))
    ]
    return sorted(dedupe(pins), key=lambda p: pin_name_version(p)[0])


def _refuse_direct_references(requirements: list[str]) -> None:
    refused = [line for line in requirements if direct_reference(line)]
    if refused:
        names = ", ".join(repr(line) for line in refused[:5])
        raise ResolutionError(
            f"dependency {names} is a direct reference (URL, VCS or local path); the runner "
            "installs only released wheels from the host's package index and never builds "
            "sources on the host: pin a released version instead"
        )


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
    settings: Settings,
    plan: InstallPlan,
    requirements: list[str],
    python: str,
    as_of: str | None,
    manylinux: str,
) -> Path | None:
    # Only a dated resolution is reproducible; "latest" must ask the index each time.
    if as_of is None or as_of >= date.today().isoformat():
        return None
    # The default platform keeps the keys it had before there was more than one base.
    platform = [] if manylinux == DEFAULT_MANYLINUX else [f"manylinux={manylinux}"]
    digest = hashlib.sha256(
        json.dumps(
            [
                RESOLVER_FORMAT,
                plan.model_dump(mode="json"),
                requirements,
                python,
                as_of,
                host_index_args(),
                *platform,
            ],
            sort_keys=True,
        ).encode()
    ).hexdigest()
    return settings.paths.root / "resolutions" / f"{digest[:32]}.json"
