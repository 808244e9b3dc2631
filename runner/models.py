"""Every type that crosses a module boundary: the public contract.

Pydantic v2, ``extra="forbid"`` everywhere, a short description on each field.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator


class Model(BaseModel):
    """Base for every boundary model: unknown fields are errors."""

    model_config = ConfigDict(extra="forbid")


# --------------------------------------------------------------------------- sandbox


class Limits(Model):
    """Resource limits for one sandboxed run, passed to the engine by name."""

    cpus: Annotated[float, Field(gt=0, le=64, description="CPU quota in cores.")] = 1.0
    memory_mb: Annotated[int, Field(ge=32, description="Memory limit; swap equals it.")] = 1024
    pids: Annotated[int, Field(ge=16, description="Max processes and threads.")] = 256
    timeout_s: Annotated[
        float, Field(gt=0, description="Wall clock before the container is killed.")
    ] = 300
    output_bytes: Annotated[
        int, Field(ge=1024, description="Captured output cap (head and tail kept).")
    ] = 1_000_000
    tmpfs_mb: Annotated[int, Field(ge=1, description="Size of the writable /tmp tmpfs.")] = 256
    tmpfs_inodes: Annotated[int, Field(ge=64, description="Inode cap of the /tmp tmpfs.")] = 65536


class Mount(Model):
    """A host directory bound into the container."""

    source: Path = Field(description="Host path (a per-job copy, never the user's checkout).")
    target: str = Field(description="Absolute path inside the container.")
    read_only: bool = Field(default=True, description="Mount read-only.")


class RunSpec(Model):
    """One command to run in one fresh hardened container."""

    image: str = Field(description="Image id or tag.")
    command: list[str] = Field(min_length=1, description="argv; never run through a shell.")
    workdir: str = Field(default="/work", description="Working directory inside the container.")
    mounts: list[Mount] = Field(default_factory=list, description="Bind mounts.")
    env: dict[str, str] = Field(
        default_factory=dict, description="Extra environment (allow-listed defaults are added)."
    )
    limits: Limits = Field(default_factory=Limits, description="Resource limits.")
    job_id: str = Field(default="-", description="Job the run belongs to (a container label).")
    phase: str = Field(default="run", description="Phase name, for labels and logs.")


class RunResult(Model):
    """What happened to one sandboxed run. The candidate's faults are data, not exceptions."""

    exit_code: int | None = Field(description="Exit status; None when it never exited on its own.")
    timed_out: bool = Field(description="Killed at the wall-clock timeout.")
    oom_killed: bool = Field(description="Killed by the memory limit.")
    duration_s: float = Field(description="Seconds from start to exit.")
    output: str = Field(description="stdout and stderr interleaved, capped (head + marker + tail).")
    output_bytes: int = Field(description="Total bytes the command wrote.")
    output_truncated: bool = Field(description="True when the middle of the output was dropped.")
    container_id: str = Field(description="Short id of the (now removed) container.")

    @property
    def ok(self) -> bool:
        """True when the command exited 0 on its own."""
        return self.exit_code == 0 and not self.timed_out and not self.oom_killed


# --------------------------------------------------------------------------- patch

FileStatus = Literal["added", "modified", "deleted", "renamed"]


class FileChange(Model):
    """One file touched by a unified diff, as git will apply it."""

    path: str = Field(description="Path in the new tree (the old path for a deletion).")
    old_path: str | None = Field(default=None, description="Path in the old tree; None when added.")
    status: FileStatus = Field(description="What the diff does to the file.")
    is_binary: bool = Field(default=False, description="A binary diff (no text hunks).")
    added: int = Field(default=0, description="Lines added.")
    removed: int = Field(default=0, description="Lines removed.")
    added_lines: list[int] = Field(
        default_factory=list, description="Line numbers of added lines in the new file."
    )
    removed_lines: list[int] = Field(
        default_factory=list, description="Line numbers of removed lines in the old file."
    )
    added_text: list[str] = Field(
        default_factory=list, description="Added lines' text, without the '+' or newline."
    )
    removed_text: list[str] = Field(
        default_factory=list, description="Removed lines' text, without the '-' or newline."
    )
    hunk_headers: list[str] = Field(
        default_factory=list, description="Each hunk's section header (text after '@@ … @@')."
    )
    old_mode: str | None = Field(default=None, description="Git file mode before, e.g. 100644.")
    new_mode: str | None = Field(default=None, description="Git file mode after; 120000 = symlink.")

    @property
    def is_symlink(self) -> bool:
        """True when either side of the change is a symlink (mode 120000)."""
        return SYMLINK_MODE in (self.old_mode, self.new_mode)

    @property
    def mode_changed(self) -> bool:
        """True when the file's git mode differs between the two sides."""
        both = self.old_mode is not None and self.new_mode is not None
        return both and self.old_mode != self.new_mode


SYMLINK_MODE = "120000"


class ParsedPatch(Model):
    """A unified diff after normalisation, parsing and the safety checks."""

    text: str = Field(description="The normalised diff text (LF, final newline, no prose).")
    files: list[FileChange] = Field(description="Files in diff order.")

    @property
    def added(self) -> int:
        """Total added lines."""
        return sum(f.added for f in self.files)

    @property
    def removed(self) -> int:
        """Total removed lines."""
        return sum(f.removed for f in self.files)

    def paths(self) -> set[str]:
        """Every path the patch touches, old and new."""
        out = {f.path for f in self.files}
        out.update(f.old_path for f in self.files if f.old_path)
        return out


# --------------------------------------------------------------------------- tests and lint

Outcome = Literal["passed", "failed", "error", "skipped", "xfailed", "xpassed"]


class TestResult(Model):
    """One test's outcome from a JUnit file."""

    __test__ = False  # not a pytest test class despite the name

    id: str = Field(description="pytest node id, e.g. tests/test_x.py::TestC::test_y[p].")
    outcome: Outcome = Field(description="What happened to the test.")
    message: str = Field(default="", description="Failure/skip message, trimmed.")
    text: str = Field(default="", description="Failure text (traceback), trimmed.")
    exception_type: str | None = Field(default=None, description="Exception named by the failure.")
    duration_s: float = Field(default=0.0, description="Seconds pytest reported.")
    line: int | None = Field(
        default=None,
        description="1-based line to point at in the test's file: the deepest failing frame "
        "there, else the test's definition; None when unknown.",
    )


class JUnitReport(Model):
    """A parsed JUnit XML file; ``error`` is set instead of raising when it is unreadable."""

    error: str | None = Field(default=None, description="Why the file could not be read.")
    tests: list[TestResult] = Field(default_factory=list, description="Test cases, file order.")
    collection_errors: list[TestResult] = Field(
        default_factory=list, description="Modules that failed to collect (id = file path)."
    )


class RunCounts(Model):
    """Outcome counts of one suite run (xfailed counts as skipped, xpassed as passed)."""

    passed: int = 0
    failed: int = 0
    error: int = 0
    skipped: int = 0
    total: int = 0


class SuiteRun(Model):
    """One graded pytest run: per-test outcomes plus whether the run can be trusted."""

    valid: bool = Field(description="False when the run gives no trustworthy evidence.")
    invalid_reason: str | None = Field(default=None, description="Why the run is invalid.")
    exit_code: int | None = Field(default=None, description="pytest's exit status.")
    timed_out: bool = Field(default=False, description="Killed at the phase timeout.")
    oom_killed: bool = Field(default=False, description="Killed by the memory limit.")
    results_found: bool = Field(default=True, description="A JUnit file was produced and read.")
    tests: dict[str, TestResult] = Field(default_factory=dict, description="Outcomes by test id.")
    collection_errors: list[TestResult] = Field(
        default_factory=list, description="Modules that failed to collect."
    )
    counts: RunCounts = Field(default_factory=RunCounts, description="Outcome counts.")


class Comparison(Model):
    """Baseline vs candidate, test by test (sorted id lists)."""

    fail_to_pass: list[str] = Field(default_factory=list, description="Fixed by the candidate.")
    pass_to_fail: list[str] = Field(default_factory=list, description="Broken by the candidate.")
    still_failing: list[str] = Field(
        default_factory=list, description="Not passing before or after (pre-existing)."
    )
    fail_to_skip: list[str] = Field(
        default_factory=list,
        description="Failing before, skipped after: never a fix (reported, not a regression).",
    )
    pass_to_pass: list[str] = Field(default_factory=list, description="Passing before and after.")
    added: list[str] = Field(default_factory=list, description="Only in the candidate run.")
    removed: list[str] = Field(
        default_factory=list, description="Only in the baseline run (counted as failed)."
    )
    new_collection_errors: list[str] = Field(
        default_factory=list, description="Modules that fail to collect only with the candidate."
    )
    changed: list[str] = Field(
        default_factory=list, description="Ids whose outcome changed: the ones to re-run."
    )
    flaky: list[str] = Field(default_factory=list, description="Flipped across re-runs.")


class LintFinding(Model):
    """One flake8 finding."""

    path: str
    line: int
    col: int
    code: str
    message: str
    blocking: bool = Field(default=False, description="Matches the policy's blocking codes.")


class LintSummary(Model):
    """Diff-aware lint: findings the candidate introduced and those it removed."""

    new: list[LintFinding] = Field(default_factory=list)
    fixed: list[LintFinding] = Field(default_factory=list)


# --------------------------------------------------------------------------- verdict

# 1.1: repro (with its `problem` field) and `host`, added after 1.0; additive only.
SCHEMA_VERSION = "1.1"
Status = Literal["verified", "rejected", "error"]
AppliedWith = Literal["clean", "3way", "already_applied", "not_applied"]


class Check(Model):
    """One named rule of the policy and whether the candidate met it."""

    name: str
    passed: bool
    detail: str = ""
    required: bool = Field(default=True, description="Whether the policy requires it.")


class TestSummary(Model):
    """Per-test evidence of the verdict."""

    __test__ = False  # not a pytest test class despite the name

    baseline: RunCounts = Field(default_factory=RunCounts)
    candidate: RunCounts = Field(default_factory=RunCounts)
    fail_to_pass: list[str] = Field(default_factory=list)
    pass_to_fail: list[str] = Field(default_factory=list)
    still_failing: list[str] = Field(default_factory=list)
    flaky: list[str] = Field(default_factory=list)
    added: list[str] = Field(default_factory=list)
    removed: list[str] = Field(default_factory=list)
    pass_to_pass: int = Field(default=0, description="How many tests passed before and after.")


class PatchStats(Model):
    """What the candidate patch touched and how it applied."""

    files: int = 0
    added: int = 0
    removed: int = 0
    applied_with: AppliedWith = "not_applied"
    test_files: list[str] = Field(default_factory=list, description="Paths in the test part.")
    source_files: list[str] = Field(default_factory=list, description="All other paths.")


class LastException(Model):
    """The last exception of a Python traceback."""

    type: str
    message: str = ""


class ReproResult(Model):
    """One repro command on one tree."""

    exit_code: int | None = None
    timed_out: bool = False
    last_exception: LastException | None = None
    output_head: str = ""
    output_tail: str = ""


class ReproRun(Model):
    """One repro command on the baseline and on the candidate."""

    command: str
    expect_error: str | None = Field(default=None, description="--expect-error, when given.")
    baseline: ReproResult
    candidate: ReproResult
    baseline_matched: bool = Field(
        default=False,
        description="The baseline's last exception matches expect_error (unused without it).",
    )
    error_in_candidate_output: bool = Field(
        default=False,
        description="The expected error (or the baseline's exception) appears in the candidate's "
        "output.",
    )
    problem: str | None = Field(
        default=None,
        description="Why the command could not be judged (not in the repository, not found).",
    )


class PhaseLog(Model):
    """Head and tail of one phase's output."""

    phase: str
    head: str = ""
    tail: str = ""
    truncated: bool = False


class EnvironmentInfo(Model):
    """How the environment image's dependencies were resolved."""

    resolution: str = ""
    python: str = ""
    tools: dict[str, str] = Field(default_factory=dict)
    packages: dict[str, str] = Field(default_factory=dict)


class ImagesInfo(Model):
    """Images the runs used."""

    base: str = ""
    environment_image: str = ""
    environment: EnvironmentInfo = Field(default_factory=EnvironmentInfo)


class Resources(Model):
    """Limits applied to the runs, and peaks where known."""

    limits: Limits = Field(default_factory=Limits)
    peak_memory_mb: float | None = None
    peak_pids: int | None = None


class Verdict(Model):
    """The runner's answer for one job: the published, versioned contract."""

    schema_version: str = SCHEMA_VERSION
    job_id: str
    status: Status
    summary: str
    checks: list[Check] = Field(default_factory=list)
    tests: TestSummary = Field(default_factory=TestSummary)
    lint: LintSummary = Field(default_factory=LintSummary)
    patch: PatchStats = Field(default_factory=PatchStats)
    repro: list[ReproRun] = Field(default_factory=list)
    timings: dict[str, float] = Field(default_factory=dict, description="Seconds per phase.")
    resources: Resources = Field(default_factory=Resources)
    images: ImagesInfo = Field(default_factory=ImagesInfo)
    logs: list[PhaseLog] = Field(default_factory=list)
    runner_version: str = ""
    host: str | None = Field(
        default=None,
        description="The worker host that ran the job (Celery executor); None when run in-process.",
    )


def verdict_json_schema() -> dict[str, Any]:
    """The JSON Schema of Verdict, as published in docs/verdict.schema.json."""
    schema = Verdict.model_json_schema(mode="serialization")
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = f"https://fixrunner.invalid/verdict/{SCHEMA_VERSION}/schema.json"
    return schema


def verdict_json_schema_text() -> str:
    """The exact text of docs/verdict.schema.json (regenerate the file from this)."""
    return json.dumps(verdict_json_schema(), indent=2, sort_keys=True) + "\n"


# --------------------------------------------------------------------------- job

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


def one_line(value: str) -> str:
    """A job field that is one line without control characters or edge whitespace."""
    if _CONTROL.search(value) or "\n" in value or value != value.strip():
        raise ValueError("must be one line without control characters or edge whitespace")
    return value


def revision(value: str) -> str:
    """A base revision: one line, no whitespace (git checks the rest)."""
    if any(c.isspace() for c in one_line(value)):
        raise ValueError("a revision has no whitespace")
    return value


class FixJob(Model):
    """One request to verify a candidate patch."""

    repo: str = Field(min_length=1, max_length=4096, description="Local path or git URL.")
    base: str = Field(default="HEAD", min_length=1, max_length=256, description="Base revision.")
    patch: str = Field(min_length=1, description="The candidate's unified diff.")
    test_patch: str | None = Field(default=None, description="Regression tests showing the bug.")
    fail_to_pass: list[str] = Field(
        default_factory=list, description="Test ids that must fail before and pass after."
    )
    policy: str = Field(default="default", min_length=1, description="Policy name or file.")
    repro: list[str] = Field(default_factory=list, description="Repro commands (argv strings).")
    expect_error: str | None = Field(default=None, description="Expected last exception.")
    job_id: str | None = Field(
        default=None, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$", description="Caller's id."
    )

    @field_validator("repo", "policy")
    @classmethod
    def _one_line(cls, value: str) -> str:
        return one_line(value)

    @field_validator("base")
    @classmethod
    def _revision(cls, value: str) -> str:
        return revision(value)

    @field_validator("patch", "test_patch")
    @classmethod
    def _no_nul(cls, value: str | None) -> str | None:
        if value is not None and "\x00" in value:
            raise ValueError("a patch is text; it has no NUL bytes")
        return value

    @field_validator("fail_to_pass", "repro")
    @classmethod
    def _lines(cls, value: list[str]) -> list[str]:
        for item in value:
            if not item.strip() or _CONTROL.search(item) or "\n" in item:
                raise ValueError(f"{item!r}: must be a non-empty single line")
        return value

    @field_validator("expect_error")
    @classmethod
    def _expect(cls, value: str | None) -> str | None:
        if value is not None and not value.strip():
            raise ValueError("expect_error must not be blank")
        return value


# --------------------------------------------------------------------------- evidence


class Evidence(Model):
    """Everything policy.judge() decides from: plain data gathered by the pipeline."""

    infrastructure_error: str | None = Field(
        default=None, description="Set when the runner itself failed: the verdict is error."
    )
    applied_with: AppliedWith = Field(default="not_applied", description="How the patch applied.")
    patch_error: str | None = Field(default=None, description="Why intake or apply refused it.")
    patch_error_check: str = Field(default="applies", description="Check the refusal belongs to.")
    patch: ParsedPatch | None = Field(default=None, description="The parsed candidate patch.")
    test_patch: ParsedPatch | None = Field(default=None, description="The job's test patch.")
    fail_to_pass_ids: list[str] = Field(default_factory=list, description="--fail-to-pass ids.")
    baseline: SuiteRun | None = Field(default=None, description="Graded baseline run.")
    candidate: SuiteRun | None = Field(default=None, description="Graded candidate run.")
    comparison: Comparison | None = Field(default=None, description="After re-runs.")
    lint: LintSummary | None = Field(default=None, description="None when lint did not run.")
    repro: list[ReproRun] = Field(default_factory=list, description="Repro commands' results.")
