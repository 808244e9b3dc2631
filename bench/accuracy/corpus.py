"""The accuracy corpus: its cases, the bare truth, and the grading of verdicts (pure code).

Nothing here touches Docker, git or the network, so tests/test_accuracy_corpus.py can
check the whole instrument's judgement on plain data.
"""

from __future__ import annotations

import json
import statistics
import tomllib
from collections.abc import Iterable
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

CORPUS = Path(__file__).resolve().parent / "corpus.toml"
WAYS = ("fix", "noop", "combined")
Way = Literal["fix", "noop", "combined"]


HEADER = """\
# The accuracy corpus: upstream bug-fix commits of public Python projects (bench/accuracy).
# Per case: the repository, the fix commit and its parent (base), the paths of the source
# part and of the test part, the import root and Python of the bare check, the
# fail-to-pass ids the bare check found (`run.py --stage bare --record` writes them here),
# and why the case was chosen. No code of these projects is kept in this repository:
# the driver fetches each commit at run time. `excluded` names why a case is not graded.
"""


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Case(Model):
    """One upstream bug-fix commit, split into its source part and its test part."""

    id: str = Field(description="Unique name: project and short commit.")
    repo: str = Field(description="Upstream repository URL.")
    fix: str = Field(description="The upstream fix commit (40 hex).")
    base: str = Field(description="Its first parent: the tree the fix applies to.")
    date: str = Field(description="Commit date, for the era of its tooling.")
    subject: str = Field(description="The commit's subject line.")
    source: list[str] = Field(description="Paths of the source part.")
    tests: list[str] = Field(description="Paths of the test part.")
    python_path: str = Field(default=".", description="Import root of the bare run.")
    bare_deps: list[str] = Field(default_factory=list, description="Extra wheels, bare run.")
    fail_to_pass: list[str] = Field(default_factory=list, description="Ids found bare.")
    python: str = Field(default="3.11", description="Python of the bare run.")
    why: str = Field(description="What this case adds to the corpus's variety.")
    excluded: str = Field(default="", description="Why the bare check dropped it, if it did.")
    miss_classes: dict[str, str] = Field(
        default_factory=dict, description="Per way (fix, noop, combined): the cause of a miss."
    )

    @property
    def owner_name(self) -> str:
        """`owner/name` of the upstream repository."""
        return "/".join(self.repo.rstrip("/").split("/")[-2:])


def load_corpus(path: Path = CORPUS) -> list[Case]:
    """Read the corpus file; ids must be unique and each case needs both parts."""
    data = tomllib.loads(path.read_text())
    cases = [Case.model_validate(raw) for raw in data.get("case", [])]
    seen: set[str] = set()
    for case in cases:
        if case.id in seen:
            raise ValueError(f"corpus: case id {case.id!r} appears twice")
        if not case.source or not case.tests:
            raise ValueError(f"corpus: case {case.id} needs a source part and a test part")
        seen.add(case.id)
    return cases


def _toml_value(value: object) -> str:
    # A JSON string is a valid TOML basic string when non-ASCII is left as UTF-8.
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {_toml_value(v)}" for k, v in value.items()) + " }"
    raise TypeError(f"no TOML form for {type(value).__name__}")


def dump_corpus(cases: list[Case], header: str = "") -> str:
    """The corpus file's text: one [[case]] table per case, defaults left out."""
    chunks = [header] if header else []
    for case in cases:
        fields = case.model_dump(exclude_defaults=True)
        fields.setdefault("python_path", case.python_path)
        lines = ["[[case]]", *(f"{k} = {_toml_value(v)}" for k, v in fields.items())]
        chunks.append("\n".join(lines) + "\n")
    return "\n".join(chunks)


# --- the bare truth -------------------------------------------------------------------

VERSION_FILE = '__version__ = version = "0.0.0"\n__version_tuple__ = version_tuple = (0, 0, 0)\n'


def generated_version_files(pyproject_text: str) -> list[str]:
    """Paths a VCS version plugin (hatch-vcs, setuptools-scm) writes at install time.

    The bare check does not install the project, so it writes these files itself
    (VERSION_FILE) from what pyproject.toml declares; read as data, nothing executed.
    """
    try:
        data = tomllib.loads(pyproject_text)
    except tomllib.TOMLDecodeError:
        return []
    tool = data.get("tool", {})
    hatch_vcs = tool.get("hatch", {}).get("build", {}).get("hooks", {}).get("vcs", {})
    scm = tool.get("setuptools_scm", {})
    found = [hatch_vcs.get("version-file"), scm.get("version_file"), scm.get("write_to")]
    return sorted({p for p in found if isinstance(p, str) and p and ".." not in p.split("/")})


Outcome = Literal["passed", "failed", "skipped"]


def outcomes(lines: Iterable[str]) -> tuple[dict[str, Outcome], set[str]]:
    """Per-test outcome from the recorder's JSON lines, and the files that failed to collect.

    A test fails when any of its phases failed; it passes only when its call passed.
    """
    result: dict[str, Outcome] = {}
    broken: set[str] = set()
    for line in lines:
        if not line.strip():
            continue
        rec = json.loads(line)
        nodeid, when, outcome = rec["nodeid"], rec["when"], rec["outcome"]
        if when == "collect":
            if outcome == "failed":
                broken.add(nodeid.split("::")[0])
            continue
        if outcome == "failed":
            result[nodeid] = "failed"
        elif result.get(nodeid) == "failed":
            continue
        elif when == "call" and outcome == "passed":
            result[nodeid] = "passed"
        elif outcome == "skipped":
            result[nodeid] = "skipped"
        else:
            result.setdefault(nodeid, "skipped")
    return result, broken


def fail_to_pass(
    before: dict[str, Outcome], broken_before: set[str], after: dict[str, Outcome]
) -> list[str]:
    """Tests that pass with the source part and failed (or could not be collected) without."""
    found = []
    for nodeid, outcome in after.items():
        if outcome != "passed":
            continue
        was = before.get(nodeid)
        if was == "failed" or (was is None and nodeid.split("::")[0] in broken_before):
            found.append(nodeid)
    return sorted(found)


NOOP_LINE = "# accuracy corpus: a candidate that changes nothing"


def noop_patch(path: str, text: str) -> str:
    """A diff that appends one comment line to `path` (whose content is `text`)."""
    lines = text.splitlines()
    context = lines[-3:]
    start = len(lines) - len(context) + 1
    if text.endswith("\n") or not lines:
        body = [f" {line}" for line in context]
    else:  # the last line gains its newline: it is removed and added back
        last = context[-1]
        body = [f" {line}" for line in context[:-1]]
        body += [f"-{last}", "\\ No newline at end of file", f"+{last}"]
    hunk = f"@@ -{start},{len(context)} +{start},{len(context) + 1} @@"
    head = [f"diff --git a/{path} b/{path}", f"--- a/{path}", f"+++ b/{path}", hunk]
    return "\n".join([*head, *body, f"+{NOOP_LINE}"]) + "\n"


# --- grading the runner's verdicts ----------------------------------------------------


class WayResult(Model):
    """One verify-patch run of one case, as the driver saw it."""

    way: Way
    status: str = Field(description="verified | rejected | error, or crash.")
    summary: str = ""
    fail_to_pass: list[str] = Field(default_factory=list)
    failed_checks: list[str] = Field(default_factory=list)
    seconds: float = 0.0
    env_seconds: float = 0.0
    python: str = ""
    resolution: str = ""
    image: str = ""
    tools: dict[str, str] = Field(default_factory=dict, description="Tool versions used.")
    job_id: str = ""


class Grade(Model):
    """Whether one verdict was right, and if not, the class of the miss."""

    right: bool
    reason: str = ""


def grade(case: Case, result: WayResult) -> Grade:
    """Judge one verdict against the bare truth.

    fix: verified with exactly the bare fail-to-pass ids; noop: rejected by `reproduced`;
    combined:
    verified, or rejected only because the tests were weakened (upstream edited asserts).
    """
    if result.way == "fix":
        if result.status != "verified":
            return Grade(right=False, reason=f"fix not verified ({result.status})")
        if sorted(result.fail_to_pass) != sorted(case.fail_to_pass):
            return Grade(right=False, reason="verified with other fail-to-pass ids")
        return Grade(right=True)
    if result.way == "noop":
        # rejected for another reason (lint, a broken run) would be right by luck: the
        # no-op must be turned away because the bug still shows
        if result.status == "rejected" and "reproduced" in result.failed_checks:
            return Grade(right=True)
        if result.status == "rejected":
            return Grade(right=False, reason="no-op rejected, but not by `reproduced`")
        return Grade(right=False, reason=f"no-op {result.status}")
    if result.status == "verified":
        return Grade(right=True)
    if result.status == "rejected" and result.failed_checks == ["tests_not_weakened"]:
        return Grade(right=True, reason="rejected for test weakening")
    return Grade(right=False, reason=f"combined diff {result.status}")


def _version(text: str) -> tuple[int, ...]:
    parts = []
    for piece in text.split(".")[:3]:
        digits = "".join(ch for ch in piece if ch.isdigit())
        parts.append(int(digits) if digits else 0)
    return tuple(parts)


def miss_class(case: Case, result: WayResult) -> str:
    """The cause of a miss: set by hand in the corpus, or read from the verdict's versions.

    pytest before 6.2.5 cannot start on Python 3.10+ (the issue's class 7, one Python for
    every era): the verdict's own tool and Python versions show it, no log text needed.
    """
    if result.way in case.miss_classes:
        return case.miss_classes[result.way]
    pytest_version = result.tools.get("pytest", "")
    if (
        result.status == "error"
        and pytest_version
        and _version(pytest_version) < (6, 2, 5)
        and _version(result.python) >= (3, 10)
    ):
        return "7, one Python for every era (pytest < 6.2.5 cannot start on Python 3.10+)"
    return "unclassified"


class Totals(Model):
    """The corpus's figures."""

    cases: int
    verdicts: int
    right: int
    false_verified: int
    median_cold_build_s: float | None

    @property
    def right_percent(self) -> float:
        """Right verdicts as a percentage of all verdicts."""
        return round(100.0 * self.right / self.verdicts, 1) if self.verdicts else 0.0


def totals(graded: dict[str, list[tuple[WayResult, Grade]]], cold: dict[str, float]) -> Totals:
    """Sum the graded verdicts; a no-op verified is the one false `verified`."""
    pairs = [pair for rows in graded.values() for pair in rows]
    false_verified = sum(1 for r, _ in pairs if r.way == "noop" and r.status == "verified")
    builds = [s for s in cold.values() if s > 0]
    return Totals(
        cases=len(graded),
        verdicts=len(pairs),
        right=sum(1 for _, g in pairs if g.right),
        false_verified=false_verified,
        median_cold_build_s=round(statistics.median(builds), 1) if builds else None,
    )
