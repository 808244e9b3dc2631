"""The pure judge that turns evidence into a decision under a policy.

``judge(evidence, policy)`` never touches the world: the pipeline gathers Evidence,
this module names every rule as a Check and picks verified, rejected or error.
"""

from __future__ import annotations

from runner.core.harness import harness_check
from runner.core.patchcoverage import patch_coverage
from runner.core.paths import glob_match, is_test_path
from runner.core.policy import REPRO_CHECKS, Policy
from runner.core.reproduction import specified_errors, standings
from runner.core.suppression import reported_error, reported_types, suppressions
from runner.core.weakening import weakening_findings
from runner.models import (
    Check,
    Evidence,
    Model,
    ReproResult,
    ReproRun,
    Status,
    SuiteRun,
)

__all__ = ["Judgement", "error_matches", "judge"]


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
        cand = evidence.candidate
        if not base.tests and base.collection_errors and cand is not None and not cand.tests:
            # No test module imported in either tree: nothing ran, so nothing was shown to
            # fail or pass (a missing generated file, a dependency absent from the image).
            first = base.collection_errors[0]
            why = first.message.strip().splitlines()[0][:200] if first.message.strip() else ""
            return _error(
                f"no test could be collected in either tree ({len(base.collection_errors)} "
                f"module(s) failed to import, first {first.id}{': ' + why if why else ''}): "
                "the environment cannot run this suite"
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
    if policy.min_patch_coverage > 0 or "patch_coverage" in policy.required_checks:
        checks.append(_patch_coverage(evidence, policy))
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
    if policy.min_patch_coverage > 0:
        required.add("patch_coverage")
    if policy.evidence == "both":
        required.update(REPRO_CHECKS)
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
    # evidence, not ceremony: the test must have shown the bug on the baseline
    ranks = standings(evidence, reported_types(evidence))
    counted = [s.test_id for s in ranks if s.counts]
    ceremony = [s for s in ranks if not s.counts]
    named = set(evidence.fail_to_pass_ids)
    refused = [s for s in ceremony if s.test_id in named]
    if not counted or refused:
        whys = [s.why for s in (refused or ceremony)]
        return Check(
            name="reproduced",
            passed=False,
            detail=f"no fail-to-pass test shows the bug: {_ids(whys, 3)}"
            if not counted
            else f"a named fail-to-pass test shows no bug: {_ids(whys, 3)}",
        )
    detail = f"fail_to_pass: {_ids(sorted(counted))}"
    vouched = [s.why for s in ranks if s.vouched]
    if vouched:
        detail += f" ({_ids(vouched, 3)})"
    if ceremony:
        detail += f" (not counted: {_ids([s.why for s in ceremony], 3)})"
    return Check(name="reproduced", passed=True, detail=detail)


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
    repeat = comp.suite_repeat
    confirmed = [t for t in comp.order_dependent if repeat is not None and t in repeat.confirmed]
    unconfirmed = [t for t in comp.order_dependent if t not in confirmed]
    if confirmed:
        problems.append(
            f"{_ids(confirmed)} failed in the suite and passed when re-run in their module, "
            "failed again when the whole suite ran once more and passed in the baseline's "
            "repeat: state another test leaves behind (order-dependent)"
        )
    if unconfirmed:
        unanswered = "; the repeat of the whole suite gave no answer" if repeat else ""
        problems.append(
            f"{_ids(unconfirmed)} failed in the suite and passed when re-run in their "
            f"module{unanswered}: state another test leaves behind (order-dependent), not "
            "flaky on the baseline"
        )
    if comp.new_collection_errors:
        problems.append(f"new collection errors in {_ids(comp.new_collection_errors)}")
    if problems:
        return Check(name="no_regressions", passed=False, detail="; ".join(problems))
    detail = f"{len(comp.pass_to_pass)} test(s) still pass"
    if comp.suite_repeat is not None:
        flipped = [t for t in comp.suite_repeat.tests if t in comp.flaky]
        detail += (
            f"; {_ids(flipped)} failed only in the suite and were filed flaky after a "
            "repeat of the whole suite in each tree"
        )
    return Check(name="no_regressions", passed=True, detail=detail)


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
    # without an error report the tests are the statement of the bug (see core.suppression)
    specified = specified_errors(evidence) if not reported_types(evidence) else set()
    every = suppressions(sources, types, frames, specified)
    found = [s for s in every if not s.specified]
    shown = ", ".join(types)
    if found:
        where = "; ".join(s.describe() for s in found[:5])
        return Check(
            name="error_not_suppressed",
            passed=False,
            detail=f"the candidate hides {shown} instead of fixing it: {where}",
        )
    handled = [s for s in every if s.specified]
    if handled:
        where = "; ".join(s.describe().replace(" without re-raising", "") for s in handled[:5])
        return Check(
            name="error_not_suppressed",
            passed=True,
            detail=f"handles {shown} as the candidate's fail-to-pass tests assert: {where}",
        )
    return Check(
        name="error_not_suppressed",
        passed=True,
        detail=f"no handler hides {shown} in {len(sources)} changed source file(s)",
    )


def _patch_coverage(evidence: Evidence, policy: Policy) -> Check:
    coverage = patch_coverage(evidence, policy.test_globs)
    floor = policy.min_patch_coverage
    if coverage is None:
        return Check(name="patch_coverage", passed=True, detail="no changed source line to cover")
    if not coverage.measured:
        return Check(name="patch_coverage", passed=False, detail=coverage.line())
    share = 100.0 * coverage.executed / coverage.changed if coverage.changed else 100.0
    passed = share >= floor
    relation = ">=" if passed else "<"
    return Check(
        name="patch_coverage",
        passed=passed,
        detail=f"{coverage.line()} ({share:.0f}% {relation} {floor:g}%)",
    )
