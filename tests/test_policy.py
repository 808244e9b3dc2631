"""Policy files and every rule of judge(), on plain evidence."""

from __future__ import annotations

from pathlib import Path

import pytest

from runner.core.judge import error_matches, judge
from runner.core.patch import parse_patch
from runner.core.policy import Policy, load_policy
from runner.core.suite import apply_reruns, compare, grade
from runner.errors import ConfigError
from runner.models import (
    Evidence,
    JUnitReport,
    LastException,
    LintFinding,
    LintSummary,
    ReproResult,
    ReproRun,
    SuiteRun,
    TestResult,
)

POLICIES = Path(__file__).resolve().parent.parent / "policies"

SOURCE_FIX = (
    "diff --git a/app/m.py b/app/m.py\n--- a/app/m.py\n+++ b/app/m.py\n"
    "@@ -1,2 +1,2 @@\n import os\n-x = 1\n+x = 2\n"
)


def policy(name: str = "default") -> Policy:
    return load_policy(name, POLICIES)


def suite(**tests: str) -> SuiteRun:
    results = [TestResult(id=k, outcome=v) for k, v in tests.items()]  # type: ignore[arg-type]
    failing = any(v in ("failed", "error") for v in tests.values())
    return grade(JUnitReport(tests=results), 1 if failing else 0)


def evidence(
    before: SuiteRun | None = None,
    after: SuiteRun | None = None,
    patch: str = SOURCE_FIX,
    **extra: object,
) -> Evidence:
    """Evidence of a good fix unless overridden: test_bug goes from failed to passed."""
    before = before or suite(test_bug="failed", test_ok="passed")
    after = after or suite(test_bug="passed", test_ok="passed")
    fields: dict[str, object] = {
        "applied_with": "clean",
        "patch": parse_patch(patch),
        "baseline": before,
        "candidate": after,
        "comparison": compare(before, after),
        "lint": LintSummary(),
    }
    fields.update(extra)
    return Evidence.model_validate(fields)


def check(result_evidence: Evidence, name: str, policy_name: str = "default") -> tuple[bool, str]:
    found = {c.name: c for c in judge(result_evidence, policy(policy_name)).checks}[name]
    return found.passed, found.detail


def repro_run(
    *,
    base_exit: int | None = 1,
    cand_exit: int | None = 0,
    matched: bool = True,
    in_output: bool = False,
    expect: str | None = "RuntimeError: Working outside",
    cand_timeout: bool = False,
) -> ReproRun:
    return ReproRun(
        command="python scripts/seed_db.py",
        expect_error=expect,
        baseline=ReproResult(
            exit_code=base_exit,
            last_exception=LastException(type="RuntimeError", message="Working outside of x"),
        ),
        candidate=ReproResult(exit_code=cand_exit, timed_out=cand_timeout),
        baseline_matched=matched,
        error_in_candidate_output=in_output,
    )


# --------------------------------------------------------------------------- loading


@pytest.mark.parametrize("name", ["default", "strict", "lenient"])
def test_each_policy_file_loads(name: str) -> None:
    assert policy(name).name == name


def test_policy_loads_from_a_file_path(tmp_path: Path) -> None:
    path = tmp_path / "mine.toml"
    path.write_text('reruns = 0\nrequired_checks = ["applies"]\n')
    loaded = load_policy(str(path), POLICIES)
    assert (loaded.name, loaded.reruns) == ("mine", 0)


def test_unknown_key_names_key_and_file(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text("[limits]\nmemroy_mb = 10\n")
    with pytest.raises(ConfigError, match=r"bad\.toml.*unknown key 'limits\.memroy_mb'"):
        load_policy(str(path), POLICIES)


def test_unknown_policy_name_lists_known_ones() -> None:
    with pytest.raises(ConfigError, match="known: default, lenient, strict"):
        load_policy("nosuch", POLICIES)


def test_invalid_toml_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "broken.toml"
    path.write_text("reruns = = 2\n")
    with pytest.raises(ConfigError, match=r"broken\.toml"):
        load_policy(str(path), POLICIES)


def test_required_checks_must_include_applies() -> None:
    with pytest.raises(ValueError, match="applies"):
        Policy(name="x", required_checks=["lint"])


def test_required_checks_reject_unknown_names() -> None:
    with pytest.raises(ValueError, match="unknown check"):
        Policy(name="x", required_checks=["applies", "vibes"])


def test_phase_limits_carry_their_own_timeout() -> None:
    limits = policy().limits
    assert limits.for_phase("lint").timeout_s == limits.lint_timeout_s
    assert limits.for_phase("test").memory_mb == limits.memory_mb


# --------------------------------------------------------------------------- status


def test_good_fix_is_verified() -> None:
    result = judge(evidence(), policy())
    assert result.status == "verified", result.summary
    assert all(c.passed for c in result.checks)


def test_infrastructure_error_is_error() -> None:
    result = judge(evidence(infrastructure_error="engine down"), policy())
    assert (result.status, result.summary) == ("error", "error: engine down")


def test_baseline_timeout_is_error_not_rejected() -> None:
    timed_out = grade(None, None, timed_out=True)
    assert judge(evidence(before=timed_out), policy()).status == "error"


def test_baseline_where_every_test_errored_is_error_not_rejected() -> None:
    broken = suite(test_bug="error", test_ok="error")
    result = judge(evidence(before=broken), policy())
    assert result.status == "error"
    assert "errored on the baseline" in result.summary


def _uncollectable(*modules: str) -> SuiteRun:
    errors = [
        TestResult(
            id=m, outcome="error", message="ModuleNotFoundError: No module named 'pkg._version'"
        )
        for m in modules
    ]
    # --continue-on-collection-errors: pytest exits 1 when modules failed to import
    return grade(JUnitReport(tests=[], collection_errors=errors), 1)


def test_no_test_collected_in_either_tree_is_error_not_rejected() -> None:
    broken = _uncollectable("tests/test_a.py", "tests/test_b.py")
    result = judge(evidence(before=broken, after=_uncollectable("tests/test_a.py")), policy())
    assert result.status == "error"
    assert "no test could be collected in either tree" in result.summary
    assert "tests/test_a.py: ModuleNotFoundError" in result.summary


def test_a_module_that_imports_only_after_the_fix_is_still_judged() -> None:
    # the usual case: the new test imports the new function, so it collects only after
    before = _uncollectable("test_bug")
    after = suite(test_bug="passed")
    assert judge(evidence(before=before, after=after), policy()).status != "error"


def test_baseline_with_only_failures_is_still_judged() -> None:
    only_bug = suite(test_bug="failed")
    result = judge(evidence(before=only_bug, after=suite(test_bug="passed")), policy())
    assert result.status == "verified"


def test_candidate_timeout_is_rejected() -> None:
    result = judge(evidence(after=grade(None, None, timed_out=True)), policy())
    assert result.status == "rejected" and "timed out" in result.summary


def test_rejected_summary_names_each_failed_check() -> None:
    result = judge(evidence(after=suite(test_bug="failed", test_ok="failed")), policy())
    assert result.summary.startswith("rejected: reproduced (")
    assert "no_regressions (1 passing test(s) broke: test_ok)" in result.summary


# --------------------------------------------------------------------------- applies


def test_applies_passes_when_applied() -> None:
    assert check(evidence(), "applies") == (True, "applied (clean)")


def test_patch_that_did_not_apply_is_rejected_with_the_reason() -> None:
    result = judge(
        Evidence(applied_with="not_applied", patch_error="error: patch failed: app/m.py:1"),
        policy(),
    )
    assert result.status == "rejected"
    assert result.summary == "rejected: applies (error: patch failed: app/m.py:1)"


def test_scope_refusal_at_intake_fails_scope_and_applies_even_when_lenient() -> None:
    ev = Evidence(patch_error="the patch touches 900 files", patch_error_check="scope")
    result = judge(ev, policy("lenient"))
    assert result.status == "rejected"
    assert [(c.name, c.passed) for c in result.checks] == [("applies", False), ("scope", False)]


# --------------------------------------------------------------------------- reproduced


def test_reproduced_fails_without_fail_to_pass() -> None:
    ev = evidence(after=suite(test_bug="failed", test_ok="passed"))
    assert check(ev, "reproduced") == (False, "no test went from failing to passing")


def test_reproduced_names_explicit_ids_that_did_not_flip() -> None:
    ev = evidence(fail_to_pass_ids=["test_bug", "test_ok"])
    passed, detail = check(ev, "reproduced")
    assert not passed
    assert detail == (
        "the reproduction did not reproduce: test_ok (passed on the baseline, so it did not fail "
        "there)"
    )


def test_reproduced_names_explicit_ids_still_failing_on_candidate() -> None:
    ev = evidence(after=suite(test_bug="failed", test_ok="passed"), fail_to_pass_ids=["test_bug"])
    assert check(ev, "reproduced")[1].endswith("test_bug (failed on the candidate)")


def test_reproduced_names_explicit_ids_that_do_not_exist() -> None:
    ev = evidence(fail_to_pass_ids=["tests/test_x.py::nope"])
    assert "nope (not found in either run)" in check(ev, "reproduced")[1]


def test_reproduced_passes_with_explicit_ids_that_flipped() -> None:
    assert check(evidence(fail_to_pass_ids=["test_bug"]), "reproduced")[0]


def test_reproduced_skipped_target_is_not_a_fix() -> None:
    ev = evidence(after=suite(test_bug="skipped", test_ok="passed"))
    assert judge(ev, policy()).status == "rejected"


def test_lenient_does_not_require_reproduction() -> None:
    ev = evidence(after=suite(test_bug="failed", test_ok="passed"))
    result = judge(ev, policy("lenient"))
    assert result.status == "verified" and "not required, failed: reproduced" in result.summary


# --------------------------------------------------------------------------- repro commands


def test_repro_check_only_present_with_commands() -> None:
    names = [c.name for c in judge(evidence(), policy()).checks]
    assert "reproduced_by_command" not in names


def test_repro_passes_when_baseline_fails_as_expected_and_candidate_exits_0() -> None:
    assert check(evidence(repro=[repro_run()]), "reproduced_by_command")[0]


def test_repro_baseline_not_failing_is_not_reproduced() -> None:
    passed, detail = check(evidence(repro=[repro_run(base_exit=0)]), "reproduced_by_command")
    assert not passed and "not reproduced (baseline exited 0" in detail


def test_repro_baseline_with_other_error_names_what_it_did() -> None:
    passed, detail = check(evidence(repro=[repro_run(matched=False)]), "reproduced_by_command")
    assert not passed and "raised RuntimeError: Working outside of x" in detail


def test_repro_without_expect_error_accepts_any_failure() -> None:
    ev = evidence(repro=[repro_run(matched=False, expect=None)])
    assert check(ev, "reproduced_by_command")[0]


def test_repro_candidate_still_failing() -> None:
    assert not check(evidence(repro=[repro_run(cand_exit=1)]), "reproduced_by_command")[0]


def test_repro_candidate_timeout_fails() -> None:
    ev = evidence(repro=[repro_run(cand_exit=None, cand_timeout=True)])
    assert "timed out" in check(ev, "reproduced_by_command")[1]


def test_repro_candidate_hiding_the_error_fails() -> None:
    passed, detail = check(evidence(repro=[repro_run(in_output=True)]), "reproduced_by_command")
    assert not passed and "still appears" in detail


def test_default_either_repro_command_suffices_without_test_fix() -> None:
    ev = evidence(after=suite(test_bug="failed", test_ok="passed"), repro=[repro_run()])
    assert judge(ev, policy()).status == "verified"


def test_default_either_fails_when_both_fail() -> None:
    ev = evidence(after=suite(test_bug="failed", test_ok="passed"), repro=[repro_run(base_exit=0)])
    summary = judge(ev, policy()).summary
    assert "reproduced (" in summary and "reproduced_by_command (" in summary


def test_default_repro_command_decides_over_a_flipped_test() -> None:
    # the tests flip, but the production error's own command still fails: not a fix
    ev = evidence(repro=[repro_run(cand_exit=1)])
    result = judge(ev, policy())
    assert result.status == "rejected"
    assert "reproduced_by_command (" in result.summary and "still fails" in result.summary


def test_default_missing_repro_command_is_rejected_even_when_tests_flip() -> None:
    missing = repro_run().model_copy(
        update={"problem": "names scripts/nope.py, which is not in the repository"}
    )
    result = judge(evidence(repro=[missing]), policy())
    assert result.status == "rejected" and "scripts/nope.py" in result.summary


def test_verified_summary_reports_each_side_of_the_command() -> None:
    summary = judge(evidence(repro=[repro_run()]), policy()).summary
    assert "'python scripts/seed_db.py' fixed: baseline exited 1, raised RuntimeError" in summary
    assert "candidate exited 0" in summary


def test_lenient_never_calls_a_failing_command_fixed() -> None:
    result = judge(evidence(repro=[repro_run(cand_exit=1)]), policy("lenient"))
    assert result.status == "verified"
    assert (
        "not fixed: baseline exited 1" in result.summary and "candidate exited 1" in result.summary
    )
    assert "now exits 0" not in result.summary


def test_strict_needs_both_when_both_given() -> None:
    ev = evidence(after=suite(test_bug="failed", test_ok="passed"), repro=[repro_run()])
    assert judge(ev, policy("strict")).status == "rejected"


def test_strict_passes_with_both() -> None:
    assert judge(evidence(repro=[repro_run()]), policy("strict")).status == "verified"


@pytest.mark.parametrize(
    ("expect", "exc_type", "message", "matches"),
    [
        ("RuntimeError", "RuntimeError", "anything", True),
        ("RuntimeError: Working outside", "RuntimeError", "Working outside of app", True),
        ("werkzeug.exceptions.NotFound", "NotFound", "", True),
        ("RuntimeError: other", "RuntimeError", "Working outside", False),
        ("ValueError", "RuntimeError", "", False),
    ],
)
def test_error_matches(expect: str, exc_type: str, message: str, matches: bool) -> None:
    assert error_matches(expect, exc_type, message) is matches


# --------------------------------------------------------------------------- no_regressions


def test_no_regressions_fails_on_pass_to_fail() -> None:
    ev = evidence(after=suite(test_bug="passed", test_ok="failed"))
    assert check(ev, "no_regressions") == (False, "1 passing test(s) broke: test_ok")


def test_no_regressions_names_an_order_dependent_regression() -> None:
    before, after = (
        suite(test_bug="failed", test_ok="passed"),
        suite(test_bug="passed", test_ok="failed"),
    )
    comparison = apply_reruns(
        compare(before, after), [before] * 2, [suite(test_bug="passed", test_ok="passed")] * 2
    )
    passed, detail = check(
        evidence(before=before, after=after, comparison=comparison), "no_regressions"
    )
    assert not passed and "test_ok failed in the suite and passed when re-run" in detail
    assert "order-dependent" in detail


def test_no_regressions_fails_on_new_collection_error() -> None:
    broken = TestResult(id="tests/test_new.py", outcome="error")
    after = grade(
        JUnitReport(
            tests=[
                TestResult(id="test_bug", outcome="passed"),
                TestResult(id="test_ok", outcome="passed"),
            ],
            collection_errors=[broken],
        ),
        1,
    )
    passed, detail = check(evidence(after=after), "no_regressions")
    assert not passed and "tests/test_new.py" in detail


def test_no_regressions_ignores_still_failing() -> None:
    before = suite(test_bug="failed", test_old="failed", test_ok="passed")
    after = suite(test_bug="passed", test_old="failed", test_ok="passed")
    assert check(evidence(before=before, after=after), "no_regressions")[0]


def test_no_regressions_fails_on_invalid_candidate_run() -> None:
    ev = evidence(after=grade(None, 1))
    assert "candidate run invalid" in check(ev, "no_regressions")[1]


# --------------------------------------------------------------------------- lint


def blocking_finding(blocking: bool) -> LintSummary:
    return LintSummary(
        new=[
            LintFinding(path="app/m.py", line=2, col=1, code="F401", message="m", blocking=blocking)
        ]
    )


def test_lint_fails_on_new_blocking_finding() -> None:
    assert check(evidence(lint=blocking_finding(True)), "lint") == (
        False,
        "1 new blocking finding(s): app/m.py:2 F401",
    )


def test_lint_passes_with_only_style_findings() -> None:
    assert check(evidence(lint=blocking_finding(False)), "lint")[0]


def test_lint_missing_results_fail() -> None:
    assert not check(evidence(lint=None), "lint")[0]


# --------------------------------------------------------------------------- scope


def test_scope_passes_small_patch() -> None:
    assert check(evidence(), "scope") == (True, "1 file(s), 2 line(s)")


@pytest.mark.parametrize(
    "path", [".github/workflows/ci.yml", "requirements-dev.txt", "poetry.lock", "sub/uv.lock"]
)
def test_scope_fails_on_forbidden_path(path: str) -> None:
    diff = SOURCE_FIX.replace("app/m.py", path)
    passed, detail = check(evidence(patch=diff), "scope")
    assert not passed and f"forbidden paths: {path}" in detail


def test_scope_allows_pyproject() -> None:
    assert check(evidence(patch=SOURCE_FIX.replace("app/m.py", "pyproject.toml")), "scope")[0]


def test_scope_fails_over_changed_lines() -> None:
    small = policy().model_copy(
        update={"patch": policy().patch.model_copy(update={"max_changed_lines": 1})}
    )
    found = {c.name: c for c in judge(evidence(), small).checks}["scope"]
    assert not found.passed and "2 changed lines > 1" in found.detail


def test_scope_fails_over_file_count() -> None:
    two = SOURCE_FIX + SOURCE_FIX.replace("app/m.py", "app/n.py")
    strictish = policy().model_copy(
        update={"patch": policy().patch.model_copy(update={"max_files": 1})}
    )
    found = {c.name: c for c in judge(evidence(patch=two), strictish).checks}["scope"]
    assert not found.passed and "2 files > 1" in found.detail


# --------------------------------------------------------------------------- tests_not_weakened

WEAKENING = (
    "diff --git a/tests/test_app.py b/tests/test_app.py\n--- a/tests/test_app.py\n"
    "+++ b/tests/test_app.py\n@@ -1,3 +1,2 @@\n def test_bug():\n-    assert run() == 1\n"
    "-    assert ok()\n+    run()\n"
)


def test_tests_not_weakened_passes_for_source_fix() -> None:
    assert check(evidence(), "tests_not_weakened")[0]


def test_tests_not_weakened_fails_and_summary_names_it() -> None:
    result = judge(evidence(patch=WEAKENING), policy())
    assert result.status == "rejected"
    assert "tests_not_weakened (removed 2 assert(s) in tests/test_app.py)" in result.summary


def test_tests_not_weakened_fails_when_touching_test_patch_files() -> None:
    ev = evidence(patch=WEAKENING, test_patch=parse_patch(WEAKENING))
    assert "from the job's test patch" in check(ev, "tests_not_weakened")[1]


def test_lenient_ignores_weakening_but_reports_it() -> None:
    result = judge(evidence(patch=WEAKENING), policy("lenient"))
    weakened = {c.name: c for c in result.checks}["tests_not_weakened"]
    assert result.status == "verified" and not weakened.passed and not weakened.required
