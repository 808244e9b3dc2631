"""Test and lint results: per-test outcomes, graded suite runs, comparisons, findings."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from runner.models.base import Model

Outcome = Literal["passed", "failed", "error", "skipped", "xfailed", "xpassed"]
Phase = Literal["collect", "setup", "call", "teardown"]


class TestResult(Model):
    """One test's outcome from a JUnit file."""

    __test__ = False  # not a pytest test class despite the name

    id: str = Field(description="pytest node id, e.g. tests/test_x.py::TestC::test_y[p].")
    outcome: Outcome = Field(description="What happened to the test.")
    message: str = Field(default="", description="Failure/skip message, trimmed.")
    text: str = Field(default="", description="Failure text (traceback), trimmed.")
    exception_type: str | None = Field(default=None, description="Exception named by the failure.")
    phase: Phase | None = Field(
        default=None,
        description="Where a failure happened (the runner's plugin): collect, setup, call or "
        "teardown; None when it passed or the record does not say.",
    )
    assertion: bool | None = Field(
        default=None,
        description="The failure raised an AssertionError (or a subclass); None when unknown.",
    )
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


class HarnessAlert(Model):
    """Something the runner's pytest plugin saw the code under test do to the harness."""

    what: str = Field(
        description="results-access (refused), ctypes, harness-reach or introspection."
    )
    detail: str = Field(default="", description="The event, module or path involved.")
    file: str = Field(default="", description="The tree's file that did it, when known.")


class CollectedTest(Model):
    """One collected test as pytest named it, with the stable part of its id."""

    id: str = Field(description="pytest's node id.")
    function: str = Field(description="The id before any parametrize part ('[...]').")
    position: int = Field(description="Index among the collected ids of the same function.")


class HarnessReport(Model):
    """What the runner's pytest plugin recorded for one run, checked and folded per test."""

    error: str | None = Field(default=None, description="Why the stream cannot be trusted.")
    finished: bool = Field(default=False, description="pytest reached the end of its session.")
    exitstatus: int | None = Field(default=None, description="The exit status pytest reported.")
    rootdir: str | None = Field(default=None, description="pytest's rootdir in the sandbox.")
    inifile: str | None = Field(default=None, description="The config file pytest chose.")
    collected: list[CollectedTest] = Field(default_factory=list, description="In order.")
    tests: list[TestResult] = Field(default_factory=list, description="Per-test outcomes.")
    collection_errors: list[TestResult] = Field(
        default_factory=list, description="Modules that failed to collect (id = node id)."
    )
    alerts: list[HarnessAlert] = Field(default_factory=list, description="What the plugin saw.")
    lines: dict[str, dict[str, list[int]]] = Field(
        default_factory=dict,
        description="Test id -> changed file -> lines it executed (traced runs only).",
    )


class SuiteRun(Model):
    """One graded pytest run: per-test outcomes plus whether the run can be trusted."""

    valid: bool = Field(description="False when the run gives no trustworthy evidence.")
    invalid_reason: str | None = Field(default=None, description="Why the run is invalid.")
    exit_code: int | None = Field(default=None, description="pytest's exit status.")
    timed_out: bool = Field(default=False, description="Killed at the phase timeout.")
    oom_killed: bool = Field(default=False, description="Killed by the memory limit.")
    pids_limited: bool = Field(
        default=False, description="Stopped at once: a fork was refused at the process limit."
    )
    duration_s: float | None = Field(
        default=None, description="Seconds its container ran, start to exit (None: unknown)."
    )
    results_found: bool = Field(default=True, description="A JUnit file was produced and read.")
    tests: dict[str, TestResult] = Field(default_factory=dict, description="Outcomes by test id.")
    collection_errors: list[TestResult] = Field(
        default_factory=list, description="Modules that failed to collect."
    )
    counts: RunCounts = Field(default_factory=RunCounts, description="Outcome counts.")
    tampered: bool = Field(
        default=False,
        description="Invalid because the harness's record was forged, cut short or reached.",
    )
    rootdir: str | None = Field(default=None, description="pytest's rootdir, from the plugin.")
    inifile: str | None = Field(default=None, description="pytest's config file, from the plugin.")
    positions: dict[str, str] = Field(
        default_factory=dict,
        description="Test id -> 'function#position' (the stable part of a parametrized id).",
    )
    alerts: list[HarnessAlert] = Field(
        default_factory=list, description="What the plugin saw the code do to the harness."
    )
    lines: dict[str, dict[str, list[int]]] = Field(
        default_factory=dict,
        description="Test id -> changed file -> lines it executed (traced runs only).",
    )


class SuiteRepeat(Model):
    """The whole suite run once more in each tree, for regressions seen only in the suite."""

    tests: list[str] = Field(
        default_factory=list,
        description="Regressions that failed in the suite and passed in every re-run of their "
        "module: why the suite ran again (the conditions they failed under).",
    )
    confirmed: list[str] = Field(
        default_factory=list,
        description="Failed again in the candidate's repeat and passed in the baseline's: "
        "order-dependent regressions of the candidate.",
    )
    baseline_cached: bool = Field(
        default=False, description="The baseline's repeat came from the cache, not a new run."
    )
    reasons: dict[str, str] = Field(
        default_factory=dict,
        description="Test id -> what the two repeats showed and how the test was filed.",
    )

    def line(self) -> str:
        """One line for a person: ``suite repeat: the whole suite ran again for …``."""
        n = len(self.tests)
        text = f"suite repeat: the whole suite ran again for {n} test(s) failing only in it"
        if self.confirmed:
            shown = ", ".join(self.confirmed[:5])
            more = f" and {len(self.confirmed) - 5} more" if len(self.confirmed) > 5 else ""
            text += f"; {len(self.confirmed)} confirmed order-dependent: {shown}{more}"
        flaky = [t for t in self.tests if self.reasons.get(t, "").endswith("(flaky)")]
        if flaky:
            text += f"; {len(flaky)} flipped or failed in the baseline's repeat too (flaky)"
        kept = n - len(self.confirmed) - len(flaky)
        if kept:
            text += f"; {kept} without an answer from a repeat, kept as regressions"
        if self.baseline_cached:
            text += "; the baseline's repeat came from the cache"
        return text


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
    order_dependent: list[str] = Field(
        default_factory=list,
        description="Regressions that failed in the suite but passed in every re-run of their "
        "module: state left by another test; still in pass_to_fail.",
    )
    not_rerun: list[str] = Field(
        default_factory=list,
        description="Changed ids a re-run could not find: kept as first seen, never flaky.",
    )
    suite_repeat: SuiteRepeat | None = Field(
        default=None,
        description="The repeat of the whole suite that decided the order-dependent "
        "candidates; None when none was needed.",
    )


class LintFinding(Model):
    """One flake8 finding."""

    path: str
    line: int
    col: int
    code: str = Field(
        description="flake8's code, or NOQA (schema 1.2): a noqa comment the candidate added; "
        "the message names the codes it hides."
    )
    message: str
    blocking: bool = Field(
        default=False,
        description="Matches the policy's blocking codes (NOQA: hides one that does).",
    )


class LintSummary(Model):
    """Diff-aware lint: findings the candidate introduced and those it removed."""

    new: list[LintFinding] = Field(default_factory=list)
    fixed: list[LintFinding] = Field(default_factory=list)
