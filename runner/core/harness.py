"""The ``harness_untouched`` check: the candidate leaves pytest and the runner's plugin alone.

A candidate may not add modules named like the harness where they could shadow it, nor
pytest configuration that loads plugins, adds options or filters what runs, nor reach
harness modules by a dynamic import from non-test code. The runner's plugin reports what
the code did at run time (alerts); only what the candidate run shows and the baseline
does not counts against the candidate.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import PurePosixPath

from runner.core.paths import DEFAULT_TEST_GLOBS, is_test_path
from runner.models import Check, Evidence, FileChange, HarnessAlert, SuiteRun

__all__ = ["HARNESS_NAMES", "PLUGIN", "harness_check", "harness_findings"]

PLUGIN = "fixrunner_harness"
# Top-level names that would shadow the harness if the tree put them on sys.path first.
HARNESS_NAMES = ("pytest", "_pytest", "pluggy", "py", PLUGIN, "fixrunner_trace")
# Folders whose top level can land on sys.path: the root, src/ and the test folders
# (pytest's default import mode inserts a test file's first folder without __init__.py).
_PATH_ROOTS = ("", "src", "tests", "test", "testing")
_CONFIG_FILES = ("pytest.ini", ".pytest.ini", "pytest.toml", ".pytest.toml")
_SECTIONED_CONFIG = ("tox.ini", "setup.cfg", "pyproject.toml")
# Keys that load code, add options or choose what runs: the harness's to set, not the fix's.
_CONFIG_KEYS = re.compile(
    r"^\s*(addopts|plugins|required_plugins|pytest_plugins|filterwarnings|testpaths|"
    r"norecursedirs|python_files|python_classes|python_functions|usefixtures|"
    r"collect_ignore(_glob)?|xfail_strict|console_output_style|minversion|"
    r"junit_\w+|cache_dir|confcutdir|pythonpath|consider_namespace_packages)\s*[=:]",
    re.IGNORECASE,
)
# In files shared with other tools, only keys no other tool uses: mypy and coverage have
# "plugins", mypy "cache_dir", tox "minversion".
_SHARED_FILE_KEYS = re.compile(
    r"^\s*(addopts|required_plugins|filterwarnings|testpaths|norecursedirs|python_files|"
    r"python_classes|python_functions|usefixtures|collect_ignore(_glob)?|xfail_strict|"
    r"junit_\w+|confcutdir|consider_namespace_packages)\s*[=:]",
    re.IGNORECASE,
)
_PYTEST_SECTION = re.compile(r"^\s*\[(pytest|tool:pytest|tool\.pytest(\.ini_options)?)\]")
_PLUGINS_IN_CODE = re.compile(r"^\s*pytest_plugins\s*[=+:]")
_DYNAMIC = re.compile(
    r"import_module\s*\(|__import__\s*\(|sys\.modules\b|find_spec\s*\(|"
    r"spec_from_file_location\s*\(|SourceFileLoader\s*\(|\bexec\s*\(|\beval\s*\(|"
    r"getattr\s*\(\s*(pytest|_pytest|pluggy)\b"
)
_STRING = re.compile(r"""[rbuf]*("([^"\\]|\\.)*"|'([^'\\]|\\.)*')""", re.IGNORECASE)
_HARNESS_WORD = re.compile(
    r"(?<![A-Za-z0-9])(_?pytest|pluggy|fixrunner_harness|fixrunner_trace|py)(?![A-Za-z0-9])"
)
# Alerts that count when the candidate run shows them and the baseline does not.
_RUNTIME = {
    "harness-reach": "non-test code imported a harness module",
    "ctypes": "the tree's code loaded ctypes",
    "introspection": "the tree's code walked the interpreter's objects",
}


def harness_findings(
    files: Iterable[FileChange], test_globs: Iterable[str] = DEFAULT_TEST_GLOBS
) -> list[str]:
    """What in a patch reaches for the harness, one finding per file and reason."""
    globs = tuple(test_globs)
    findings = []
    for change in files:
        if change.status == "deleted":
            continue
        path = PurePosixPath(change.path)
        # A file the baseline already had at this path adds no name: the project may be
        # pluggy or pytest itself (src/pluggy/_hooks.py), and its own package is no shadow.
        shadow = _shadowed_name(path) if change.status != "modified" else None
        if shadow is not None:
            findings.append(f"{change.path}: adds a module named like the harness ({shadow!r})")
        if path.name in _CONFIG_FILES or path.name in _SECTIONED_CONFIG:
            findings += _config_findings(change, own_file=path.name in _CONFIG_FILES)
        if path.suffix == ".py":
            findings += _code_findings(change, is_test_path(change.path, globs))
    return findings


def _config_findings(change: FileChange, *, own_file: bool) -> list[str]:
    pattern = _CONFIG_KEYS if own_file else _SHARED_FILE_KEYS
    keys = sorted({m.group(1) for t in change.added_text if (m := pattern.match(t))})
    if keys:
        return [
            f"{change.path}: sets pytest's {', '.join(keys)} (plugins, options and filters "
            "belong to the harness)"
        ]
    if own_file and change.status == "added":
        return [f"{change.path}: adds a pytest configuration file"]
    if any(_PYTEST_SECTION.match(t) for t in change.added_text):
        return [f"{change.path}: adds a pytest configuration section"]
    return []


def _shadowed_name(path: PurePosixPath) -> str | None:
    parts = path.parts
    for depth, root in enumerate(_PATH_ROOTS):
        prefix = () if depth == 0 else (root,)
        if parts[: len(prefix)] != prefix or len(parts) <= len(prefix):
            continue
        top = parts[len(prefix)]
        name = top.removesuffix(".py") if len(parts) == len(prefix) + 1 else top
        if name in HARNESS_NAMES and (top.endswith(".py") or len(parts) > len(prefix) + 1):
            return name
    return None


def _code_findings(change: FileChange, is_test: bool) -> list[str]:
    findings = []
    for number, text in zip(change.added_lines, change.added_text, strict=False):
        if _PLUGINS_IN_CODE.match(text):
            findings.append(f"{change.path}:{number}: loads pytest plugins (pytest_plugins)")
        elif not is_test and _DYNAMIC.search(text) and _names_harness(text):
            findings.append(
                f"{change.path}:{number}: reaches a harness module dynamically from non-test code"
            )
    return findings


def _names_harness(line: str) -> bool:
    # "_py" + "test.reports" spells a harness module only once joined: join the literals.
    joined = "".join(m.group(0).lstrip("rbufRBUF")[1:-1] for m in _STRING.finditer(line))
    bare = _STRING.sub("", line)
    return bool(_HARNESS_WORD.search(joined) or re.search(r"\b(_?pytest|pluggy)\b", bare))


def _new_alerts(baseline: SuiteRun | None, candidate: SuiteRun | None) -> list[HarnessAlert]:
    if candidate is None:
        return []
    before = {(a.what, a.detail, a.file) for a in baseline.alerts} if baseline else set()
    return [a for a in candidate.alerts if (a.what, a.detail, a.file) not in before]


def harness_check(evidence: Evidence, test_globs: Iterable[str] = DEFAULT_TEST_GLOBS) -> Check:
    """``harness_untouched``: no shadowing, no plugin config, no reach into the harness."""
    files = list(evidence.patch.files) if evidence.patch else []
    findings = harness_findings(files, test_globs)
    for alert in _new_alerts(evidence.baseline, evidence.candidate):
        why = _RUNTIME.get(alert.what, alert.what)
        where = f" in {alert.file}" if alert.file else ""
        findings.append(f"at run time {why}{where} ({alert.detail})")
    base = evidence.baseline
    if base is not None and base.tampered:
        findings.append(
            f"the baseline run, with the candidate's test part, broke the harness's record: "
            f"{base.invalid_reason}"
        )
    detail = "; ".join(findings) if findings else "pytest, its configuration and plugin untouched"
    return Check(name="harness_untouched", passed=not findings, detail=detail, required=True)
