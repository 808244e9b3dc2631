"""The verdict: the published, versioned answer for one job."""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import Field

from runner.models.base import Model
from runner.models.results import LintSummary, RunCounts, SuiteRepeat
from runner.models.run import Limits

# 1.1: repro (with its `problem` field) and `host`, added after 1.0; additive only.
# 1.2: the error_not_suppressed and harness_untouched checks, NOQA lint findings,
#      structural tests_not_weakened; resources.limits.workspace_mb and workspace_inodes
#      (the writable tree's quota); tests.not_rerun (changed tests no re-run could find);
#      patch_coverage (changed source lines the fail-to-pass tests executed).
SCHEMA_VERSION = "1.2"
Status = Literal["verified", "rejected", "error"]
AppliedWith = Literal["clean", "3way", "already_applied", "not_applied"]


class Check(Model):
    """One named rule of the policy and whether the candidate met it."""

    name: str = Field(
        description="The rule: applies, reproduced (a fail-to-pass test that fails on the "
        "baseline in its call phase with an assertion or the reported exception; schema 1.2), "
        "reproduced_by_command (with repro commands), no_regressions, lint, scope, "
        "tests_not_weakened (asserts compared structurally), error_not_suppressed (no added "
        "handler hides the reported error; schema 1.2), harness_untouched, patch_coverage "
        "(with the policy's min_patch_coverage; schema 1.2), environment (the environment "
        "the patch declares cannot be prepared while the base commit's can). Other names "
        "may be added."
    )
    passed: bool
    detail: str = Field(default="", description="Why it passed or failed, for a person.")
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
    not_rerun: list[str] = Field(
        default_factory=list,
        description="Changed tests no re-run could find (under the same rootdir and config): "
        "their first outcome stands; never counted as flaky.",
    )
    added: list[str] = Field(default_factory=list)
    removed: list[str] = Field(default_factory=list)
    pass_to_pass: int = Field(default=0, description="How many tests passed before and after.")
    suite_repeat: SuiteRepeat | None = Field(
        default=None,
        description="Regressions that failed only in the whole suite (passing in their "
        "module) were decided by running the suite once more in each tree: which, and what "
        "the repeats showed (additive, 1.2); None when none was needed.",
    )


class FileCoverage(Model):
    """Patch coverage of one changed source file."""

    path: str = Field(description="The file, relative to the repository root.")
    changed_lines: list[int] = Field(
        default_factory=list,
        description="Executable lines the candidate added or changed (new file's numbers).",
    )
    executed_lines: list[int] = Field(
        default_factory=list, description="Those of them a fail-to-pass test executed."
    )
    unexecuted_hunks: list[str] = Field(
        default_factory=list,
        description="Runs of changed lines ('40-44') none of which a fail-to-pass test executed.",
    )


class PatchCoverage(Model):
    """Which changed source lines the fail-to-pass tests executed (schema 1.2).

    Measured by a line tracer in the candidate's re-runs of its changed tests, restricted
    to the changed non-test files. Informational unless the policy sets
    ``min_patch_coverage``.
    """

    measured: bool = Field(description="False when no traced re-run ran the tests.")
    detail: str = Field(default="", description="Why it was not measured, when it was not.")
    tests: list[str] = Field(
        default_factory=list, description="The fail-to-pass tests whose lines count."
    )
    changed: int = Field(default=0, description="Executable changed source lines.")
    executed: int = Field(default=0, description="How many of them the tests executed.")
    files: list[FileCoverage] = Field(default_factory=list, description="Per changed file.")

    def line(self) -> str:
        """One line for a person: ``patch coverage: 7/9 changed lines executed …``."""
        if not self.measured:
            return f"patch coverage: not measured ({self.detail})"
        text = f"patch coverage: {self.executed}/{self.changed} changed lines executed by "
        text += "fail-to-pass tests"
        hunks = [f"{f.path}:{h}" for f in self.files for h in f.unexecuted_hunks]
        if hunks:
            shown = ", ".join(hunks[:5]) + (f" and {len(hunks) - 5} more" if len(hunks) > 5 else "")
            text += f"; hunk{'s' if len(hunks) > 1 else ''} {shown} not executed"
        return text


class MapRecording(Model):
    """Whether this job's baseline recorded the commit's per-test map, and why (additive)."""

    recorded: bool = Field(
        description="This job's baseline ran with the per-test map and cached it for the "
        "commit (that run is slower: a hook on every call)."
    )
    reason: str = Field(
        description="Why it was or was not recorded (the [affected] record_map setting, the "
        "caller, --record-map, a map already cached), for a person."
    )


class EarlyAnswer(Model):
    """The affected tests run first in the candidate tree, and what they said (additive)."""

    selection: Literal["affected", "all"] = Field(
        description="'affected': the tests the per-test map ties to the changed files, the "
        "fail-to-pass ids and the changed test files ran first; 'all': no early run, "
        "the full suite was the first answer (see reason)."
    )
    reason: str = Field(description="Why these tests were selected, for a person.")
    selected: int = Field(default=0, description="How many tests ran early.")
    ids: list[str] = Field(
        default_factory=list, description="The tests that ran early (first 200)."
    )
    passed: int = Field(default=0, description="Selected tests that passed (or were skipped).")
    failed: list[str] = Field(
        default_factory=list,
        description="Selected tests that failed in the candidate and did not fail on the "
        "baseline, or fail-to-pass ids that still fail (first 50). Without --fail-to-pass, "
        "the job's own tests that failed on the baseline count here while none of them "
        "passes (the bug still shows).",
    )
    fail_to_pass: str = Field(
        default="",
        description="Fail-to-pass ids passing early, 'n/m' (without --fail-to-pass: the job's "
        "own tests that failed on the baseline).",
    )
    seconds: float | None = Field(
        default=None, description="Seconds from the job's start to the early answer."
    )
    answer: str = Field(
        default="",
        description="The early answer as the progress stream showed it (phase 'early'), "
        "e.g. 'fail-to-pass 2/2 pass, 41 affected tests pass; full suite running'.",
    )
    stopped: bool = Field(
        default=False,
        description="The job ended at the early answer: a failure among the affected tests "
        "under the policy's fail_fast; the full suite did not decide.",
    )
    agrees: bool | None = Field(
        default=None,
        description="Whether the early answer (pass or fail) matched the final status; None "
        "when nothing ran early or the verdict is an error.",
    )
    testmap: MapRecording | None = Field(
        default=None,
        description="Whether this job recorded the per-test map that later candidates on "
        "the commit select from (additive); None when the job ended before its runs finished.",
    )


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
    python_reason: str = Field(
        default="", description="Why this Python was chosen for the commit (or runner.toml's)."
    )
    tools: dict[str, str] = Field(default_factory=dict)
    packages: dict[str, str] = Field(default_factory=dict)
    notes: list[str] = Field(
        default_factory=list,
        description="Caveats of detection, resolution and the image build (a fallback taken, "
        "a declaration skipped), in the order they arose.",
    )


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


class Deadlines(Model):
    """The deadline the candidate's suite, re-runs and lint ran under, and why."""

    suite_s: float = Field(description="Seconds the candidate's runs were allowed.")
    source: Literal["learned", "configured"] = Field(
        description="'learned': factor x the baseline's suite time (at least the floor); "
        "'configured': the policy's test_timeout_s (no baseline time, or it was lower)."
    )
    baseline_s: float | None = Field(
        default=None, description="The baseline suite's seconds it was learned from."
    )
    floor_s: float = Field(description="Policy limits.deadline_floor_s.")
    factor: float = Field(description="Policy limits.deadline_factor.")
    reason: str = Field(description="The rule that chose suite_s, in words.")
    stopped: Literal["deadline", "process_limit"] | None = Field(
        default=None,
        description="Why a candidate run was stopped early: at this deadline, or at once "
        "because a fork was refused at the process limit (limits.pids); None when none was.",
    )


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
    patch_coverage: PatchCoverage | None = Field(
        default=None,
        description="Changed source lines the fail-to-pass tests executed (schema 1.2); None "
        "when the candidate changes no source line or no test was fixed.",
    )
    deadlines: Deadlines | None = Field(
        default=None,
        description="The candidate's deadline and where it came from; None when nothing ran.",
    )
    early: EarlyAnswer | None = Field(
        default=None,
        description="The affected-tests-first answer; None when no suite ran (additive, 1.2).",
    )

    @classmethod
    def error(cls, job_id: str, reason: str, runner_version: str = "") -> Verdict:
        """An ``error`` verdict: the runner could not decide, for this reason."""
        return cls(
            job_id=job_id, status="error", summary=f"error: {reason}", runner_version=runner_version
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
