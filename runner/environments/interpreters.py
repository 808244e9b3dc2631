"""Which Python a commit's environment gets: the tree's evidence weighed, without I/O.

The rule, in order, over the Pythons a base image can carry:

1. runner.toml's Python (for the repository, else for every job) wins outright.
2. ``requires-python`` (pyproject's [project], Poetry's ``python`` dependency, setup.cfg,
   a literal ``python_requires`` in setup.py) keeps the Pythons it admits.
3. A requirement only satisfied by releases known not to start on newer Pythons
   (``pytest==5.4.1``: pytest < 6.2.5 cannot start on 3.10+) keeps the Pythons they start on.
4. The versions the project says it runs on (trove classifiers, tox envlist, CI matrices,
   nox sessions, .python-version): none newer than the newest of those (the oldest
   available when every one is newer), none older than the oldest of them if any is left.
5. The commit date: no Python released after the commit.

Steps 2 and 3 are hard: they yield only when no Python satisfies them. Steps 4 and 5
only narrow what is left. Of the rest, the preferred Python (the default base's, already
built and cached, which recent projects run on) wins when it is left, else the newest;
the older ones are fallbacks for a resolution that finds no wheels for the chosen one.
"""

from __future__ import annotations

import configparser
import re
import tomllib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

import yaml
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import InvalidVersion, Version
from pydantic import Field

from runner.environments.requirements import marker_ok, parse_requirement
from runner.models import Model

# First release of each minor version: a commit older than it was never run on it.
PYTHON_RELEASED = {
    "3.9": date(2020, 10, 5),
    "3.10": date(2021, 10, 4),
    "3.11": date(2022, 10, 24),
    "3.12": date(2023, 10, 2),
    "3.13": date(2024, 10, 7),
    "3.14": date(2025, 10, 7),
}
# The files whose text the chooser reads (the caller reads them, capped, from the tree).
EVIDENCE_FILES = (
    "pyproject.toml",
    "setup.cfg",
    "setup.py",
    "tox.ini",
    "noxfile.py",
    ".python-version",
    ".travis.yml",
)
WORKFLOWS_DIR = ".github/workflows"
# Keys of CI files whose values name Python versions.
_CI_KEYS = {"python", "python-version", "python_version", "python-versions", "python_versions"}
# "3.8", "3.10.4", "3.9-dev", "py38", "py3.8", "cpython-3.8": one Python 3 minor version.
_VERSION = re.compile(r"^(?:py|cpython-?|python)?(3)\.?(\d{1,2})(?:\.\d+)?(?:-dev)?$")


@dataclass(frozen=True)
class Broken:
    """Releases of a package that cannot start on a Python from ``python`` on."""

    name: str
    fixed: str
    python: str
    why: str


# General facts about widely pinned test tools, never about one project.
KNOWN_BROKEN = (
    Broken(
        "pytest",
        "6.2.5",
        "3.10",
        "its assertion rewriting crashes at start-up on Python 3.10's ast",
    ),
)


class PythonChoice(Model):
    """The Python a commit's environment is resolved for and built on, and why."""

    python: str = Field(description="major.minor chosen.")
    reason: str = Field(description="What in the tree (or runner.toml) decided it.")
    fallbacks: list[str] = Field(
        default_factory=list,
        description="Older Pythons the evidence also allows, newest first, for a resolution "
        "that finds no wheels for the chosen one.",
    )


def choose_python(
    available: Sequence[str],
    files: Mapping[str, str],
    requirements: Sequence[str] = (),
    requirements_from: str = "",
    commit_date: date | None = None,
    fixed: tuple[str, str] | None = None,
    preferred: str | None = None,
) -> PythonChoice:
    """Pick a Python for a commit from its files' texts, its requirements and its date.

    ``files`` maps repository-relative paths (EVIDENCE_FILES, .github/workflows/*.yml) to
    their text; ``fixed`` is runner.toml's (python, where) when it sets one; ``preferred``
    wins among what the evidence leaves (None: the newest).
    """
    if fixed is not None:
        return PythonChoice(python=fixed[0], reason=f"set in runner.toml ({fixed[1]})")
    pool = sorted(set(available), key=_key)
    if not pool:
        raise ValueError("no Python to choose from")

    def pick(candidates: list[str]) -> str:
        return preferred if preferred in candidates else candidates[-1]

    reasons: list[str] = []
    steps: list[Callable[[list[str], list[str]], list[str]]] = [
        lambda pool, said: _require(pool, requires_python(files), said),
        lambda pool, said: _avoid_broken(pool, requirements, requirements_from, said),
        lambda pool, said: _declared(pool, declared_versions(files), said),
        lambda pool, said: _released_by(pool, commit_date, said),
    ]
    hard = pool
    for index, step in enumerate(steps):
        said: list[str] = []
        narrowed = step(pool, said)
        # Only what changed the outcome is the reason: a cut below the pick is not.
        if pick(narrowed) != pick(pool):
            reasons += said
        pool = narrowed
        if index == 1:
            hard = pool
    python = pick(pool)
    fallbacks = [p for p in reversed(hard) if _key(p) < _key(python)]
    if not reasons:
        what = "the default" if python == preferred else "the newest available"
        reasons.append(f"{what}; nothing in the tree rules it out")
    return PythonChoice(python=python, reason="; ".join(reasons), fallbacks=fallbacks)


def broken_pins(requirements: Iterable[str], python: str, where: str = "") -> list[str]:
    """Why requirements (exact pins or ranges) cannot start on ``python``; [] when they can."""
    found = []
    for line in requirements:
        req = parse_requirement(line)
        if req is None or not marker_ok(str(req.marker) if req.marker else None, python):
            continue
        for broken in KNOWN_BROKEN:
            if req.name.lower() != broken.name or _key(python) < _key(broken.python):
                continue
            if _only_below(req.specifier, broken.fixed):
                place = f" in {where}" if where else ""
                found.append(
                    f"{line.split(';')[0].strip()}{place} cannot start on Python "
                    f"{broken.python}+ ({broken.name} < {broken.fixed}: {broken.why})"
                )
    return found


def requires_python(files: Mapping[str, str]) -> list[tuple[SpecifierSet, str]]:
    """Every requires-python the tree declares, with where it says so."""
    found: list[tuple[SpecifierSet, str]] = []
    pyproject = _toml(files.get("pyproject.toml"))
    project = pyproject.get("project", {})
    if isinstance(project, dict) and isinstance(project.get("requires-python"), str):
        found += _spec(project["requires-python"], "requires-python in pyproject.toml")
    poetry = pyproject.get("tool", {}).get("poetry", {}) if isinstance(pyproject, dict) else {}
    deps = poetry.get("dependencies", {}) if isinstance(poetry, dict) else {}
    if isinstance(deps, dict) and isinstance(deps.get("python"), str):
        found += _spec(_poetry_spec(deps["python"]), "python in [tool.poetry.dependencies]")
    cfg = _ini(files.get("setup.cfg"))
    if cfg is not None and cfg.has_option("options", "python_requires"):
        found += _spec(cfg.get("options", "python_requires"), "python_requires in setup.cfg")
    match = re.search(r"python_requires\s*=\s*(['\"])([^'\"]+)\1", files.get("setup.py", ""))
    if match:
        found += _spec(match.group(2), "python_requires in setup.py")
    return found


def declared_versions(files: Mapping[str, str]) -> dict[str, list[str]]:
    """Python 3 versions the project says it runs on, each with the files that say so."""
    found: dict[str, list[str]] = {}

    def add(versions: Iterable[str], where: str) -> None:
        for version in versions:
            match = _VERSION.match(version)
            if match:
                places = found.setdefault(f"{match.group(1)}.{int(match.group(2))}", [])
                if where not in places:
                    places.append(where)

    for name in ("pyproject.toml", "setup.cfg", "setup.py"):
        text = files.get(name, "")
        add(re.findall(r"Programming Language :: Python :: (3\.\d+)\b", text), "classifiers")
    add(_tox_envs(files), "tox envlist")
    nox = files.get("noxfile.py", "")
    for group in re.findall(r"python\s*=\s*\[([^\]]*)\]", nox):
        add(re.findall(r"['\"]([\d.]+)['\"]", group), "noxfile.py")
    add(files.get(".python-version", "").split(), ".python-version")
    for path, text in sorted(files.items()):
        if path == ".travis.yml" or path.startswith(f"{WORKFLOWS_DIR}/"):
            add(_ci_versions(text), "CI matrix")
    return found


def _require(
    pool: list[str], specs: list[tuple[SpecifierSet, str]], reasons: list[str]
) -> list[str]:
    for spec, where in specs:
        kept = [p for p in pool if _admits(spec, p)]
        if not kept:
            # No base satisfies it: the nearest one is the best try.
            above = spec.contains("3.99", prereleases=True)
            kept = [pool[-1] if above else pool[0]]
            reasons.append(f"{where} ({spec}) admits no available Python; nearest is {kept[0]}")
        elif kept != pool:
            reasons.append(f"{where} is {spec}")
        pool = kept
    return pool


def _avoid_broken(
    pool: list[str], requirements: Sequence[str], where: str, reasons: list[str]
) -> list[str]:
    kept = [p for p in pool if not broken_pins(requirements, p)]
    if kept == pool:
        return pool
    newest_lost = pool[-1]
    why = broken_pins(requirements, newest_lost, where)
    if not kept:
        reasons.append(f"{why[0]}; no available Python is old enough, {pool[0]} is nearest")
        return [pool[0]]
    reasons.append(why[0])
    return kept


def _declared(pool: list[str], declared: dict[str, list[str]], reasons: list[str]) -> list[str]:
    if not declared:
        return pool
    newest, oldest = max(declared, key=_key), min(declared, key=_key)
    kept = [p for p in pool if _key(p) <= _key(newest)]
    if not kept:
        reasons.append(
            f"the project names Python {newest} at most ({', '.join(declared[newest])}); "
            f"the oldest available is {pool[0]}"
        )
        return [pool[0]]
    if kept != pool:
        reasons.append(f"the project names Python {newest} at most ({', '.join(declared[newest])})")
    newer = [p for p in kept if _key(p) >= _key(oldest)]
    if newer and newer != kept:
        reasons.append(
            f"the project names Python {oldest} at least ({', '.join(declared[oldest])})"
        )
        kept = newer
    return kept


def _released_by(pool: list[str], when: date | None, reasons: list[str]) -> list[str]:
    if when is None:
        return pool
    kept = [p for p in pool if PYTHON_RELEASED.get(p, date.min) <= when]
    if kept == pool or len(pool) == 1:
        return pool
    later = pool[len(kept)]
    reasons.append(
        f"the commit ({when.isoformat()}) predates Python {later} "
        f"({PYTHON_RELEASED[later].isoformat()})"
    )
    return kept or [pool[0]]


def _admits(spec: SpecifierSet, python: str) -> bool:
    # ">=3.9.1" still means 3.9 to a human; so does "<3.9.7".
    return any(spec.contains(f"{python}.{patch}", prereleases=True) for patch in (0, 99))


def _only_below(spec: SpecifierSet, fixed: str) -> bool:
    """Whether every release the specifier admits is older than ``fixed``."""
    limit = Version(fixed)
    for clause in spec:
        op, text = clause.operator, clause.version
        try:
            if op in ("==", "===") and not text.endswith(".*"):
                if Version(text) < limit:
                    return True
            elif op in ("==", "~=") or op == "<":
                # ==6.2.* admits up to 6.3 (exclusive), ~=5.4 up to 6, <6 up to 6
                upper = _bump(text) if op != "<" else Version(text)
                if upper <= limit:
                    return True
            elif op == "<=" and Version(text) < limit:
                return True
        except InvalidVersion:
            continue
    return False


def _bump(text: str) -> Version:
    # The exclusive upper end of "==X.Y.*" (X.(Y+1)) and of "~=X.Y.Z" (X.(Y+1)).
    release = list(Version(text.removesuffix(".*")).release)
    if not text.endswith(".*") and len(release) > 1:
        release = release[:-1]
    release[-1] += 1
    return Version(".".join(map(str, release)))


def _spec(text: str, where: str) -> list[tuple[SpecifierSet, str]]:
    try:
        spec = SpecifierSet(text.strip().rstrip(","))
    except InvalidSpecifier:
        return []
    return [(spec, where)] if str(spec) else []


def _poetry_spec(text: str) -> str:
    # Poetry's ^3.8 is >=3.8,<4 and ~3.8 is >=3.8,<3.9; "||" has no PEP 440 spelling.
    if "||" in text or "|" in text:
        return ""
    parts = []
    for part in text.split(","):
        part = part.strip()
        caret = re.fullmatch(r"\^(\d+)(?:\.(\d+))?(?:\.\d+)?", part)
        tilde = re.fullmatch(r"~(\d+)\.(\d+)(?:\.\d+)?", part)
        if caret:
            parts += [f">={part[1:]}", f"<{int(caret.group(1)) + 1}"]
        elif tilde:
            parts += [f">={part[1:]}", f"<{tilde.group(1)}.{int(tilde.group(2)) + 1}"]
        elif part and part != "*":
            parts.append(part)
    return ",".join(parts)


def _tox_envs(files: Mapping[str, str]) -> list[str]:
    text = ""
    cfg = _ini(files.get("tox.ini"))
    if cfg is not None and cfg.has_option("tox", "envlist"):
        text = cfg.get("tox", "envlist")
    legacy = _toml(files.get("pyproject.toml")).get("tool", {}).get("tox", {})
    if not text and isinstance(legacy, dict) and isinstance(legacy.get("legacy_tox_ini"), str):
        inner = _ini(legacy["legacy_tox_ini"])
        if inner is not None and inner.has_option("tox", "envlist"):
            text = inner.get("tox", "envlist")
    envs: list[str] = []
    for token in re.split(r"[\s,]+(?![^{]*})", text):
        for env in _expand_braces(token):
            envs += [f for f in env.split("-") if re.fullmatch(r"py3\d{1,2}|py3\.\d{1,2}", f)]
    return envs


def _expand_braces(token: str) -> list[str]:
    match = re.search(r"\{([^{}]*)\}", token)
    if not match:
        return [token] if token else []
    head, tail = token[: match.start()], token[match.end() :]
    out: list[str] = []
    for choice in match.group(1).split(","):
        out += _expand_braces(head + choice.strip() + tail)
    return out


def _ci_versions(text: str) -> list[str]:
    try:
        # BaseLoader keeps every scalar a string: an unquoted 3.10 stays "3.10", not 3.1.
        data = yaml.load(text, Loader=yaml.BaseLoader)
    except yaml.YAMLError:
        return []
    found: list[str] = []
    stack: list[Any] = [data]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            for key, value in node.items():
                if str(key).lower() in _CI_KEYS:
                    values = value if isinstance(value, list) else [value]
                    found += [v for v in values if isinstance(v, str)]
                stack.append(value)
        elif isinstance(node, list):
            stack.extend(node)
    return found


def _toml(text: str | None) -> dict[str, Any]:
    try:
        return tomllib.loads(text) if text else {}
    except tomllib.TOMLDecodeError:
        return {}


def _ini(text: str | None) -> configparser.ConfigParser | None:
    if not text:
        return None
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    try:
        parser.read_string(text)
    except configparser.Error:
        return None
    return parser


def _key(python: str) -> tuple[int, ...]:
    try:
        return Version(python).release
    except InvalidVersion:
        return (0,)
