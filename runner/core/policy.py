"""Policies (policies/*.toml) and the pure judge that turns evidence into a decision.

``judge(evidence, policy)`` never touches the world: the pipeline gathers Evidence,
this module names every rule as a Check and picks verified, rejected or error.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Literal

from pydantic import Field, ValidationError, field_validator

from runner.common.files import read_regular
from runner.core.harness import harness_check
from runner.core.paths import DEFAULT_TEST_GLOBS, glob_match, is_test_path
from runner.core.suppression import reported_error, suppressions
from runner.core.weakening import weakening_findings
from runner.errors import ConfigError
from runner.models import (
    Check,
    Evidence,
    Limits,
    Model,
    ReproResult,
    ReproRun,
    Status,
    SuiteRun,
)

__all__ = [
    "CHECK_NAMES",
    "Judgement",
    "LimitsPolicy",
    "LintPolicy",
    "PatchPolicy",
    "Policy",
    "error_matches",
    "judge",
    "load_policy",
]

# A policy is a few dozen lines; anything larger is not one.
POLICY_MAX_BYTES = 256 * 1024
CHECK_NAMES = (
    "applies",
    "reproduced",
    "reproduced_by_command",
    "no_regressions",
    "lint",
    "scope",
    "tests_not_weakened",
    "error_not_suppressed",
    "harness_untouched",
)
_REPRO_CHECKS = ("reproduced", "reproduced_by_command")
Phase = Literal["test", "lint", "repro"]


class LimitsPolicy(Model):
    """Resource limits for every sandboxed phase, and the job's wall clock."""

    cpus: float = Field(default=2.0, gt=0, le=64)
    memory_mb: int = Field(default=2048, ge=64)
    pids: int = Field(default=512, ge=16)
    test_timeout_s: float = Field(default=600, gt=0)
    lint_timeout_s: float = Field(default=120, gt=0)
    repro_timeout_s: float = Field(default=120, gt=0)
    job_timeout_s: float = Field(default=1800, gt=0)
    output_bytes: int = Field(default=1_000_000, ge=1024)
    workspace_mb: int = Field(default=1024, ge=16)
    workspace_inodes: int = Field(default=262_144, ge=1024)

    def for_phase(self, phase: Phase) -> Limits:
        """The sandbox Limits for one phase (its own timeout)."""
        timeout = {"test": self.test_timeout_s, "lint": self.lint_timeout_s}.get(
            phase, self.repro_timeout_s
        )
        return Limits(
            cpus=self.cpus,
            memory_mb=self.memory_mb,
            pids=self.pids,
            timeout_s=timeout,
            output_bytes=self.output_bytes,
            workspace_mb=self.workspace_mb,
            workspace_inodes=self.workspace_inodes,
        )


class PatchPolicy(Model):
    """Hard caps checked at intake (before anything runs) and again by ``scope``."""

    max_bytes: int = Field(default=1_000_000, ge=1)
    max_files: int = Field(default=50, ge=1)
    max_changed_lines: int = Field(default=2000, ge=1)
    allow_binary: bool = False
    allow_3way: bool = True


class LintPolicy(Model):
    """flake8: which codes block, and the config used when the repo has none."""

    blocking_select: list[str] = Field(default_factory=lambda: ["E9", "F"])
    default_select: list[str] = Field(default_factory=lambda: ["E", "F", "W", "C90"])
    default_extend_ignore: list[str] = Field(default_factory=lambda: ["E203", "W503"])
    default_max_line_length: int = Field(default=100, ge=40)


class Policy(Model):
    """One policy file. Unknown keys are errors."""

    name: str
    description: str = ""
    reruns: int = Field(default=2, ge=0, le=10, description="Re-runs of changed tests.")
    limits: LimitsPolicy = Field(default_factory=LimitsPolicy)
    patch: PatchPolicy = Field(default_factory=PatchPolicy)
    lint: LintPolicy = Field(default_factory=LintPolicy)
    test_globs: list[str] = Field(default_factory=lambda: list(DEFAULT_TEST_GLOBS))
    forbidden_paths: list[str] = Field(default_factory=list)
    required_checks: list[str] = Field(
        default_factory=lambda: [
            "applies",
            "no_regressions",
            "lint",
            "scope",
            "tests_not_weakened",
            "error_not_suppressed",
        ]
    )
    evidence: Literal["either", "both", "none"] = Field(
        default="either",
        description="Reproduction: 'either' needs reproduced_by_command when repro commands "
        "are given (the command decides) and reproduced otherwise; 'both' needs both when "
        "repro commands are given; 'none' needs neither.",
    )

    @field_validator("required_checks")
    @classmethod
    def _known_checks(cls, value: list[str]) -> list[str]:
        for name in value:
            if name in _REPRO_CHECKS:
                raise ValueError(f"{name!r} is governed by 'evidence', not 'required_checks'")
            if name not in CHECK_NAMES:
                raise ValueError(f"unknown check {name!r}; known: {', '.join(CHECK_NAMES)}")
        if "applies" not in value:
            raise ValueError("'applies' is always required")
        return value


def load_policy(name_or_path: str, policies_dir: Path) -> Policy:
    """Load a policy by name (policies_dir/NAME.toml) or by file path."""
    candidate = Path(name_or_path)
    if candidate.suffix == ".toml" or "/" in name_or_path:
        path = candidate
    elif name_or_path.replace("-", "").replace("_", "").isalnum():
        path = policies_dir / f"{name_or_path}.toml"
    else:
        raise ConfigError(f"{name_or_path!r} is neither a policy name nor a .toml file")
    if not os.path.lexists(path):
        known = sorted(p.stem for p in policies_dir.glob("*.toml")) if policies_dir.is_dir() else []
        raise ConfigError(f"no policy {name_or_path!r} (known: {', '.join(known)})")
    # Never through a link, never a FIFO or device, never more than the cap.
    raw = read_regular(path, POLICY_MAX_BYTES)
    if raw is None:
        raise ConfigError(f"{path}: not a regular file (a policy is never read through a link)")
    if len(raw) > POLICY_MAX_BYTES:
        raise ConfigError(f"{path}: larger than {POLICY_MAX_BYTES // 1024} KiB, not a policy")
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{path}: {exc}") from exc
    data.setdefault("name", path.stem)
    try:
        return Policy.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(f"{path}: {_explain(exc)}") from exc


def _explain(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"])
        if err["type"] == "extra_forbidden":
            parts.append(f"unknown key {where!r}")
        else:
            parts.append(f"{where}: {err['msg']}")
    return "; ".join(parts)


# --------------------------------------------------------------------------- judging


class Judgement(Model):
    """What judge() decides: the status, a one-line summary and every check."""

    status: Status
    summary: str
    checks: list[Check]


def judge(evidence: Evidence, policy: Policy) -> Judgement:
    """Decide verified / rejected / error from the evidence, naming every reason."""
    if evidence.infrastructure_error:
        return _error(evidence.infrastructure_error)
    base = evidence.baseline
    if evidence.patch_error is None and evidence.applied_with != "not_applied":
        if base is None:
            return _error("the baseline test run is missing")
        if not base.valid and not (base.tampered and _touches_tests(evidence, policy)):
            # A baseline broken by the candidate's own test part is its fault: the
            # harness_untouched check rejects it below.
            return _error(f"the baseline run is unusable: {base.invalid_reason}")
        if base.tests and all(t.outcome == "error" for t in base.tests.values()):
            # Not one test got past its set-up on the unpatched tree: the environment
            # cannot run this suite, so no outcome says anything about the candidate.
            return _error(
                f"all {len(base.tests)} test(s) errored on the baseline before running: the "
                "environment cannot run this suite (check images.environment in the verdict)"
            )
    checks = _checks(evidence, policy)
    failed = [c for c in checks if c.required and not c.passed]
    if failed:
        reasons = ", ".join(f"{c.name} ({c.detail})" for c in failed)
        return Judgement(status="rejected", summary=f"rejected: {reasons}", checks=checks)
    advisory = [c.name for c in checks if not c.passed]
    tail = f" (not required, failed: {', '.join(advisory)})" if advisory else ""
    return Judgement(status="verified", summary=_verified_summary(evidence) + tail, checks=checks)


def _error(reason: str) -> Judgement:
    return Judgement(status="error", summary=f"error: {reason}", checks=[])


def _verified_summary(evidence: Evidence) -> str:
    fixed = evidence.comparison.fail_to_pass if evidence.comparison else []
    ran = len(evidence.candidate.tests) if evidence.candidate else 0
    summary = f"verified: {len(fixed)} test(s) fixed, no regressions in {ran} test(s)"
    for run in evidence.repro:
        # say what each side did; "fixed" only when the command ran and exits 0 after
        fixed_by = run.problem is None and _command_fixed(run)
        verb = "fixed" if fixed_by else "not fixed"
        summary += f"; {run.command!r} {verb}: {_sides(run)}"
    return summary


def _command_fixed(run: ReproRun) -> bool:
    cand = run.candidate
    return not cand.timed_out and cand.exit_code == 0 and not run.error_in_candidate_output


def _sides(run: ReproRun) -> str:
    if run.problem:
        return run.problem
    return f"baseline {_describe(run.baseline)}, candidate {_describe(run.candidate)}"


def _checks(evidence: Evidence, policy: Policy) -> list[Check]:
    if evidence.patch_error is not None or evidence.applied_with == "not_applied":
        return _not_applied(evidence, policy)
    checks = [Check(name="applies", passed=True, detail=f"applied ({evidence.applied_with})")]
    checks.append(_reproduced(evidence))
    if evidence.repro:
        checks.append(_reproduced_by_command(evidence))
    checks += [
        _no_regressions(evidence),
        _lint(evidence),
        _scope(evidence, policy),
        _tests_not_weakened(evidence, policy),
        _error_not_suppressed(evidence, policy),
    ]
    marked = _mark_required(checks, policy, has_repro=bool(evidence.repro))
    # the harness is never the candidate's to change, whatever the policy
    return [*marked, harness_check(evidence, policy.test_globs)]


def _touches_tests(evidence: Evidence, policy: Policy) -> bool:
    files = evidence.patch.files if evidence.patch else []
    return any(is_test_path(f.path, policy.test_globs) for f in files)


def _not_applied(evidence: Evidence, policy: Policy) -> list[Check]:
    reason = evidence.patch_error or "the patch did not apply"
    checks = []
    if evidence.patch_error_check != "applies":
        checks.append(Check(name=evidence.patch_error_check, passed=False, detail=reason))
        reason = f"refused by the {evidence.patch_error_check} check"
    checks.insert(0, Check(name="applies", passed=False, detail=reason))
    marked = _mark_required(checks, policy, has_repro=False)
    # an unapplied patch is never verified, whatever the policy requires
    marked[0] = marked[0].model_copy(update={"required": True})
    return marked


def _mark_required(checks: list[Check], policy: Policy, *, has_repro: bool) -> list[Check]:
    by_name = {c.name: c for c in checks}
    required = set(policy.required_checks)
    if policy.evidence == "both":
        required.update(_REPRO_CHECKS)
    elif policy.evidence == "either":
        # A repro command, when given, decides: it is the production error itself, so a
        # test that flips cannot stand in for a command that still fails.
        required.add("reproduced_by_command" if has_repro else "reproduced")
        if has_repro and not by_name["reproduced_by_command"].passed:
            required.add("reproduced")
    return [c.model_copy(update={"required": c.name in required}) for c in checks]


def _ids(ids: list[str], limit: int = 5) -> str:
    shown = ", ".join(ids[:limit])
    return shown + (f" and {len(ids) - limit} more" if len(ids) > limit else "")


def _reproduced(evidence: Evidence) -> Check:
    cand, comp = evidence.candidate, evidence.comparison
    if cand is None or comp is None:
        return Check(name="reproduced", passed=False, detail="no candidate test results")
    if not cand.valid:
        return Check(
            name="reproduced", passed=False, detail=f"candidate run invalid: {cand.invalid_reason}"
        )
    fixed = set(comp.fail_to_pass)
    missing = [t for t in evidence.fail_to_pass_ids if t not in fixed]
    if missing:
        whys = [f"{t} ({_why_not_fixed(t, evidence.baseline, cand)})" for t in missing]
        return Check(
            name="reproduced",
            passed=False,
            detail=f"the reproduction did not reproduce: {_ids(whys)}",
        )
    if not fixed:
        return Check(name="reproduced", passed=False, detail="no test went from failing to passing")
    return Check(name="reproduced", passed=True, detail=f"fail_to_pass: {_ids(sorted(fixed))}")


def _why_not_fixed(test_id: str, base: SuiteRun | None, cand: SuiteRun) -> str:
    before = base.tests.get(test_id) if base else None
    after = cand.tests.get(test_id)
    if before is None and after is None:
        return "not found in either run"
    if before is not None and before.outcome not in ("failed", "error"):
        return f"{before.outcome} on the baseline, so it did not fail there"
    if after is None:
        return "missing from the candidate run"
    return f"{after.outcome} on the candidate"


def error_matches(expect: str, exc_type: str, exc_message: str = "") -> bool:
    """Whether an exception matches ``--expect-error``: ``Type`` or ``Type: message prefix``.

    A dotted module path on either type is ignored (``werkzeug.X`` matches ``X``).
    """
    want_type, _, want_message = expect.partition(":")
    short = want_type.strip().rsplit(".", 1)[-1]
    if short != exc_type.strip().rsplit(".", 1)[-1]:
        return False
    return exc_message.strip().startswith(want_message.strip())


def _reproduced_by_command(evidence: Evidence) -> Check:
    problems = []
    for run in evidence.repro:
        base, cand = run.baseline, run.candidate
        did = _describe(base)
        if run.problem:
            problems.append(f"{run.command!r}: {run.problem}")
        elif base.timed_out or base.exit_code in (None, 0):
            problems.append(f"{run.command!r}: the error was not reproduced (baseline {did})")
        elif run.expect_error and not run.baseline_matched:
            problems.append(
                f"{run.command!r}: the error was not reproduced: expected "
                f"{run.expect_error!r}, baseline {did}"
            )
        elif cand.timed_out:
            problems.append(f"{run.command!r}: timed out on the candidate ({_sides(run)})")
        elif cand.exit_code != 0:
            problems.append(f"{run.command!r}: still fails on the candidate ({_sides(run)})")
        elif run.error_in_candidate_output:
            problems.append(f"{run.command!r}: exits 0 but the error still appears in its output")
    if problems:
        return Check(name="reproduced_by_command", passed=False, detail="; ".join(problems))
    sides = "; ".join(f"{run.command!r}: {_sides(run)}" for run in evidence.repro)
    return Check(
        name="reproduced_by_command",
        passed=True,
        detail=f"{len(evidence.repro)} command(s) failed before and succeed after ({sides})",
    )


def _describe(result: ReproResult) -> str:
    if result.timed_out:
        return "timed out"
    exc = result.last_exception
    raised = f", raised {exc.type}: {exc.message}" if exc else ""
    return f"exited {result.exit_code}{raised}"


def _no_regressions(evidence: Evidence) -> Check:
    cand, comp = evidence.candidate, evidence.comparison
    if cand is None or comp is None:
        return Check(name="no_regressions", passed=False, detail="no candidate test results")
    if not cand.valid:
        return Check(
            name="no_regressions",
            passed=False,
            detail=f"candidate run invalid: {cand.invalid_reason}",
        )
    problems = []
    if comp.pass_to_fail:
        problems.append(
            f"{len(comp.pass_to_fail)} passing test(s) broke: {_ids(comp.pass_to_fail)}"
        )
    if comp.order_dependent:
        problems.append(
            f"{_ids(comp.order_dependent)} failed in the suite and passed when re-run in "
            "their module: state another test leaves behind (order-dependent), not flaky "
            "on the baseline"
        )
    if comp.new_collection_errors:
        problems.append(f"new collection errors in {_ids(comp.new_collection_errors)}")
    if problems:
        return Check(name="no_regressions", passed=False, detail="; ".join(problems))
    return Check(
        name="no_regressions", passed=True, detail=f"{len(comp.pass_to_pass)} test(s) still pass"
    )


def _lint(evidence: Evidence) -> Check:
    if evidence.lint is None:
        return Check(name="lint", passed=False, detail="lint results are missing")
    blocking = [f for f in evidence.lint.new if f.blocking]
    if blocking:
        shown = ", ".join(f"{f.path}:{f.line} {f.code}" for f in blocking[:5])
        return Check(
            name="lint", passed=False, detail=f"{len(blocking)} new blocking finding(s): {shown}"
        )
    style = len(evidence.lint.new)
    return Check(name="lint", passed=True, detail=f"no new blocking findings ({style} style)")


def _scope(evidence: Evidence, policy: Policy) -> Check:
    patch = evidence.patch
    if patch is None:
        return Check(name="scope", passed=False, detail="no parsed patch")
    problems = []
    if len(patch.files) > policy.patch.max_files:
        problems.append(f"{len(patch.files)} files > {policy.patch.max_files}")
    lines = patch.added + patch.removed
    if lines > policy.patch.max_changed_lines:
        problems.append(f"{lines} changed lines > {policy.patch.max_changed_lines}")
    forbidden = sorted(p for p in patch.paths() if glob_match(p, policy.forbidden_paths))
    if forbidden:
        problems.append(f"forbidden paths: {', '.join(forbidden)}")
    if problems:
        return Check(name="scope", passed=False, detail="; ".join(problems))
    return Check(name="scope", passed=True, detail=f"{len(patch.files)} file(s), {lines} line(s)")


def _tests_not_weakened(evidence: Evidence, policy: Policy) -> Check:
    if evidence.patch is None:
        return Check(name="tests_not_weakened", passed=False, detail="no parsed patch")
    findings = weakening_findings(
        evidence.patch, evidence.test_patch, policy.test_globs, evidence.sources
    )
    if findings:
        return Check(name="tests_not_weakened", passed=False, detail="; ".join(findings))
    return Check(name="tests_not_weakened", passed=True, detail="tests and harness untouched")


def _error_not_suppressed(evidence: Evidence, policy: Policy) -> Check:
    types, frames = reported_error(evidence)
    if not types:
        return Check(
            name="error_not_suppressed", passed=True, detail="no reported error to look for"
        )
    # tests catch errors on purpose (pytest.raises, cleanup): only source code counts
    sources = [s for s in evidence.sources if not is_test_path(s.path, policy.test_globs)]
    found = suppressions(sources, types, frames)
    shown = ", ".join(types)
    if found:
        where = "; ".join(s.describe() for s in found[:5])
        return Check(
            name="error_not_suppressed",
            passed=False,
            detail=f"the candidate hides {shown} instead of fixing it: {where}",
        )
    return Check(
        name="error_not_suppressed",
        passed=True,
        detail=f"no handler hides {shown} in {len(sources)} changed source file(s)",
    )
