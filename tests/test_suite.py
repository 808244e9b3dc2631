"""JUnit parsing, run grading, comparison with re-runs, and diff-aware lint."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from runner.core.comparison import FIX_MODULE_RERUN_MAX
from runner.core.lint import adds_noqa, noqa_findings
from runner.core.patch import parse_patch
from runner.core.suite import (
    FLAKE8_FORMAT,
    PYTEST_JUNIT_ARGS,
    apply_reruns,
    compare,
    grade,
    is_blocking,
    lint_diff,
    parse_flake8,
    parse_junit,
    rerun_selection,
    test_summary,
)
from runner.models import JUnitReport, LintFinding, Outcome, SuiteRun, TestResult

# Shaped like pytest 9's output with -o junit_family=xunit1 (file attributes present).
XUNIT1 = b"""<?xml version="1.0" encoding="utf-8"?><testsuites name="pytest tests">
<testsuite name="pytest" errors="2" failures="2" skipped="2" tests="11">
<testcase classname="" name="tests.sub.test_broken" file="tests/sub/test_broken.py" time="0.000">
<error message="collection failure">ImportError while importing test module
E   ModuleNotFoundError: No module named 'nonexistent_mod'</error></testcase>
<testcase classname="tests.test_a" name="test_ok" file="tests/test_a.py" line="1" time="0.010" />
<testcase classname="tests.test_a" name="test_fail" file="tests/test_a.py" line="2" time="0.0">
<failure message="ValueError: boom">&gt;   raise ValueError("boom")
E   ValueError: boom

tests/test_a.py:3: ValueError</failure></testcase>
<testcase classname="tests.test_a" name="test_p[1]" file="tests/test_a.py" line="3" time="0">
<failure message="assert 1 != 1">E   assert 1 != 1

tests/test_a.py:5: AssertionError</failure></testcase>
<testcase classname="tests.test_a" name="test_p[1.5]" file="tests/test_a.py" line="3" />
<testcase classname="tests.test_a" name="test_p[a/b]" file="tests/test_a.py" line="3" />
<testcase classname="tests.test_a.TestC" name="test_y" file="tests/test_a.py" line="6" />
<testcase classname="tests.test_a.TestC.TestInner" name="test_z" file="tests/test_a.py" />
<testcase classname="tests.test_a" name="test_skip" file="tests/test_a.py" line="9">
<skipped type="pytest.skip" message="nope">tests/test_a.py:10: nope</skipped></testcase>
<testcase classname="tests.test_a" name="test_xf" file="tests/test_a.py" line="11">
<skipped type="pytest.xfail" message="known" /></testcase>
<testcase classname="tests.test_a" name="test_err" file="tests/test_a.py" line="19">
<error message="failed on setup with &quot;RuntimeError: setup&quot;">E   RuntimeError: setup

tests/test_a.py:19: RuntimeError</error></testcase>
</testsuite></testsuites>"""

# The same shapes as pytest's default xunit2 output: no file attribute.
XUNIT2 = XUNIT1.replace(b' file="tests/test_a.py"', b"").replace(
    b' file="tests/sub/test_broken.py"', b""
)


def outcomes(report: JUnitReport) -> dict[str, Outcome]:
    return {t.id: t.outcome for t in report.tests}


def run(**tests: str) -> SuiteRun:
    """A valid run from id=outcome pairs (ids use '__' for '::')."""
    results = {
        k.replace("__", "::"): TestResult(id=k.replace("__", "::"), outcome=v)  # type: ignore[arg-type]
        for k, v in tests.items()
    }
    report = JUnitReport(tests=list(results.values()))
    failing = any(v in ("failed", "error") for v in tests.values())
    return grade(report, 1 if failing else 0)


# --------------------------------------------------------------------------- junit


@pytest.mark.parametrize("xml", [XUNIT1, XUNIT2], ids=["xunit1", "xunit2"])
def test_junit_ids_match_pytest_node_ids(xml: bytes) -> None:
    ids = set(outcomes(parse_junit(xml)))
    assert {
        "tests/test_a.py::test_ok",
        "tests/test_a.py::test_p[1.5]",
        "tests/test_a.py::test_p[a/b]",
        "tests/test_a.py::TestC::test_y",
        "tests/test_a.py::TestC::TestInner::test_z",
    } <= ids


def test_junit_outcomes() -> None:
    got = outcomes(parse_junit(XUNIT1))
    assert [
        got[f"tests/test_a.py::{n}"] for n in ("test_ok", "test_fail", "test_skip", "test_xf")
    ] == ["passed", "failed", "skipped", "xfailed"]


def test_junit_setup_error_is_error() -> None:
    assert outcomes(parse_junit(XUNIT1))["tests/test_a.py::test_err"] == "error"


def test_junit_xpass_marker_is_xpassed() -> None:
    xml = (
        b'<testsuite><testcase classname="t.test_m" name="test_q">'
        b'<skipped message="xfail-marked test passes unexpectedly"/></testcase></testsuite>'
    )
    assert outcomes(parse_junit(xml)) == {"t/test_m.py::test_q": "xpassed"}


def test_junit_keeps_failure_message_and_exception_type() -> None:
    tests = {t.id: t for t in parse_junit(XUNIT1).tests}
    fail = tests["tests/test_a.py::test_fail"]
    assert (fail.message, fail.exception_type) == ("ValueError: boom", "ValueError")
    assert tests["tests/test_a.py::test_p[1]"].exception_type == "AssertionError"
    assert tests["tests/test_a.py::test_err"].exception_type == "RuntimeError"


def test_junit_trims_long_failure_text_keeping_the_end() -> None:
    xml = (
        b'<testsuite><testcase classname="t.test_m" name="test_q"><failure message="x">'
        + b"a" * 10000
        + b"\nt.py:1: KeyError</failure></testcase></testsuite>"
    )
    test = parse_junit(xml).tests[0]
    assert len(test.text) <= 4000 and test.text.endswith("KeyError")


@pytest.mark.parametrize("xml", [XUNIT1, XUNIT2], ids=["xunit1", "xunit2"])
def test_junit_collection_errors_are_reported_apart(xml: bytes) -> None:
    report = parse_junit(xml)
    assert [c.id for c in report.collection_errors] == ["tests/sub/test_broken.py"]
    assert all("broken" not in t.id for t in report.tests)


@pytest.mark.parametrize("data", [b"<testsuite><testcase", b"", b"\xff\xfe not xml"])
def test_malformed_junit_is_a_typed_error(data: bytes) -> None:
    assert parse_junit(data).error


def test_junit_with_entity_declarations_is_refused() -> None:
    bomb = b'<!DOCTYPE x [<!ENTITY a "aaaa"><!ENTITY b "&a;&a;&a;">]><testsuite name="&b;"/>'
    assert "DTD" in (parse_junit(bomb).error or "")


def test_junit_with_wrong_root_is_an_error() -> None:
    assert "root element" in (parse_junit(b"<html><body/></html>").error or "")


# --------------------------------------------------------------------------- grading


def test_grade_counts_outcomes() -> None:
    counts = grade(parse_junit(XUNIT1), 1).counts
    assert counts.model_dump() == {"passed": 5, "failed": 2, "error": 1, "skipped": 2, "total": 10}


def test_grade_failing_run_with_exit_1_is_valid() -> None:
    assert grade(parse_junit(XUNIT1), 1).valid


def test_grade_missing_results_file_is_invalid() -> None:
    graded = grade(None, 137)
    assert not graded.valid and not graded.results_found
    assert "no results file" in (graded.invalid_reason or "")


def test_grade_malformed_file_is_invalid() -> None:
    graded = grade(parse_junit(b"<oops"), 1)
    assert not graded.valid and "malformed" in (graded.invalid_reason or "")


def test_grade_no_tests_is_invalid() -> None:
    assert grade(JUnitReport(), 5).invalid_reason == "no tests were collected"


def test_grade_empty_report_with_exit_0_is_invalid() -> None:
    assert not grade(JUnitReport(), 0).valid


def test_grade_all_passed_with_nonzero_exit_is_spoofed() -> None:
    graded = grade(JUnitReport(tests=[TestResult(id="t.py::test_a", outcome="passed")]), 1)
    assert not graded.valid and "inconsistent" in (graded.invalid_reason or "")


def test_grade_failures_with_exit_0_is_inconsistent() -> None:
    assert not grade(parse_junit(XUNIT1), 0).valid


@pytest.mark.parametrize("code", [2, 3, 4])
def test_grade_interrupted_internal_and_usage_exits_are_invalid(code: int) -> None:
    assert not grade(parse_junit(XUNIT1), code).valid


def test_grade_timeout_is_invalid() -> None:
    assert grade(parse_junit(XUNIT1), None, timed_out=True).invalid_reason == (
        "the test run timed out"
    )


def test_grade_oom_is_invalid() -> None:
    assert not grade(parse_junit(XUNIT1), 137, oom_killed=True).valid


# --------------------------------------------------------------------------- comparison


def test_compare_classifies_transitions() -> None:
    before = run(a="failed", b="passed", c="failed", d="passed")
    after = run(a="passed", b="failed", c="failed", d="passed")
    comp = compare(before, after)
    assert (comp.fail_to_pass, comp.pass_to_fail, comp.still_failing, comp.pass_to_pass) == (
        ["a"],
        ["b"],
        ["c"],
        ["d"],
    )


def test_compare_missing_candidate_test_counts_as_failed() -> None:
    comp = compare(run(a="passed", b="failed"), run(c="passed"))
    assert comp.pass_to_fail == ["a"] and comp.still_failing == ["b"]
    assert comp.removed == ["a", "b"]


def test_compare_failing_then_skipped_is_not_a_fix() -> None:
    comp = compare(run(a="failed"), run(a="skipped"))
    assert comp.fail_to_pass == [] and comp.fail_to_skip == ["a"]


def test_compare_passing_then_skipped_is_a_regression() -> None:
    assert compare(run(a="passed"), run(a="skipped")).pass_to_fail == ["a"]


def test_compare_xfail_counts_as_passing() -> None:
    assert compare(run(a="xfailed"), run(a="xfailed")).pass_to_pass == ["a"]


def test_compare_skipped_baseline_proves_no_fix() -> None:
    comp = compare(run(a="skipped"), run(a="passed"))
    assert comp.fail_to_pass == [] and comp.changed == []


def test_compare_new_passing_test_is_only_added() -> None:
    comp = compare(run(a="passed"), run(a="passed", n="passed"))
    assert comp.added == ["n"] and comp.fail_to_pass == []


def test_compare_test_in_uncollectable_module_is_a_fix() -> None:
    broken = TestResult(id="tests/test_n.py", outcome="error")
    before = grade(
        JUnitReport(tests=[TestResult(id="t.py::a", outcome="passed")], collection_errors=[broken]),
        1,
    )
    comp = compare(before, run(**{"t.py__a": "passed", "tests/test_n.py__test_new": "passed"}))
    assert comp.fail_to_pass == ["tests/test_n.py::test_new"]


def test_compare_reports_new_collection_errors() -> None:
    broken = TestResult(id="tests/test_n.py", outcome="error")
    after = grade(
        JUnitReport(tests=[TestResult(id="a", outcome="passed")], collection_errors=[broken]), 1
    )
    assert compare(run(a="passed"), after).new_collection_errors == ["tests/test_n.py"]


def test_compare_lists_module_broken_in_both_trees_as_still_failing() -> None:
    # click at 6a1c0d07 under pytest 9: tests/test_basic.py fails to collect in both
    # trees (filterwarnings = error); its 88 tests must not vanish from the verdict.
    broken = TestResult(id="tests/test_basic.py", outcome="error")

    def with_broken(outcome: str) -> SuiteRun:
        return grade(
            JUnitReport(tests=[TestResult(id="a", outcome=outcome)], collection_errors=[broken]),
            1,
        )

    comp = compare(with_broken("failed"), with_broken("passed"))
    assert comp.still_failing == ["tests/test_basic.py"]
    assert comp.fail_to_pass == ["a"] and comp.new_collection_errors == []


def test_compare_lists_changed_tests_for_reruns() -> None:
    comp = compare(run(a="failed", b="passed", c="passed"), run(a="passed", b="error", c="passed"))
    assert comp.changed == ["a", "b"]


def test_reruns_move_flipping_fix_to_flaky() -> None:
    comp = compare(run(a="failed", b="failed"), run(a="passed", b="passed"))
    result = apply_reruns(comp, [run(a="failed", b="failed")], [run(a="failed", b="passed")])
    assert result.flaky == ["a"] and result.fail_to_pass == ["b"]


def test_reruns_move_flipping_regression_to_flaky() -> None:
    comp = compare(run(a="passed"), run(a="failed"))
    result = apply_reruns(comp, [run(a="failed")], [run(a="failed")])
    assert result.flaky == ["a"] and result.pass_to_fail == []


def test_regression_flipping_across_its_module_re_runs_is_flaky() -> None:
    comp = compare(run(a="passed"), run(a="failed"))
    result = apply_reruns(comp, [run(a="passed")] * 2, [run(a="failed"), run(a="passed")])
    assert result.flaky == ["a"] and result.pass_to_fail == []


def test_regression_passing_in_every_re_run_is_order_dependent_not_flaky() -> None:
    # failed in the whole suite, passes in its module: another module's leftover state
    comp = compare(run(a="passed", b="passed"), run(a="passed", b="failed"))
    result = apply_reruns(comp, [run(b="passed")] * 2, [run(b="passed")] * 2)
    assert result.pass_to_fail == ["b"] and result.order_dependent == ["b"]
    assert result.flaky == []


def test_a_regression_that_failed_on_a_deadline_and_passes_in_its_module_is_flaky() -> None:
    # Hypothesis's per-example deadline under a loaded machine: the clock, not the order.
    comp = compare(run(b="passed"), run(b="failed"))
    failing = run(b="failed")
    failing.tests["b"] = failing.tests["b"].model_copy(
        update={"exception_type": "hypothesis.errors.Flaky", "message": "DeadlineExceeded: 594ms"}
    )
    result = apply_reruns(comp, [run(b="passed")] * 2, [run(b="passed")] * 2, candidate=failing)
    assert result.flaky == ["b"] and result.order_dependent == [] and result.pass_to_fail == []
    # the same failure on a value stays an order-dependent regression
    result = apply_reruns(
        comp, [run(b="passed")] * 2, [run(b="passed")] * 2, candidate=run(b="failed")
    )
    assert result.order_dependent == ["b"] and result.pass_to_fail == ["b"]


def test_order_dependent_failure_the_baseline_shows_too_is_flaky() -> None:
    comp = compare(run(b="passed"), run(b="failed"))
    result = apply_reruns(comp, [run(b="passed"), run(b="failed")], [run(b="passed")] * 2)
    assert result.flaky == ["b"] and result.pass_to_fail == [] and result.order_dependent == []


def test_rerun_selection_runs_changed_tests_in_their_whole_module() -> None:
    before = run(**{"tests/test_a.py::t1": "failed", "tests/test_b.py::t2": "passed"})
    after = run(**{"tests/test_a.py::t1": "passed", "tests/test_b.py::t2": "failed"})
    assert rerun_selection(compare(before, after)) == ["tests/test_a.py", "tests/test_b.py"]


def test_rerun_selection_runs_a_fix_in_a_large_module_by_its_id() -> None:
    others = {f"tests/test_a.py::t{n}": "passed" for n in range(2, FIX_MODULE_RERUN_MAX + 2)}
    before = run(**{"tests/test_a.py::t1": "failed", **others})
    after = run(**{"tests/test_a.py::t1": "passed", **others})
    assert rerun_selection(compare(before, after)) == ["tests/test_a.py::t1"]


def test_reruns_that_agree_change_nothing() -> None:
    comp = compare(run(a="failed", b="passed"), run(a="passed", b="failed"))
    assert (
        apply_reruns(comp, [run(a="failed", b="passed")] * 2, [run(a="passed", b="failed")]) == comp
    )


def test_a_rerun_that_cannot_find_a_test_says_not_rerun_never_flaky() -> None:
    # pytest named the test differently on the re-run (another rootdir): no evidence
    # either way, so the first runs' answer stands.
    comp = compare(run(a="failed", b="passed"), run(a="passed", b="failed"))
    result = apply_reruns(comp, [run(x="failed")], [run(y="passed")])
    assert result.flaky == [] and result.not_rerun == ["a", "b"]
    assert result.fail_to_pass == ["a"] and result.pass_to_fail == ["b"]


def test_an_invalid_rerun_still_makes_a_fix_flaky() -> None:
    comp = compare(run(a="failed"), run(a="passed"))
    broken = grade(None, 1)
    result = apply_reruns(comp, [run(a="failed")], [broken])
    assert result.flaky == ["a"] and result.not_rerun == []


def positioned(outcomes: dict[str, Outcome], positions: dict[str, str]) -> SuiteRun:
    return run(**outcomes).model_copy(update={"positions": positions})


def test_unstable_parametrize_ids_pair_by_function_and_position() -> None:
    before = positioned(
        {"t.py::f[0-111]": "failed", "t.py::f[1-111]": "passed"},
        {"t.py::f[0-111]": "t.py::f#0", "t.py::f[1-111]": "t.py::f#1"},
    )
    after = positioned(
        {"t.py::f[0-222]": "passed", "t.py::f[1-222]": "passed"},
        {"t.py::f[0-222]": "t.py::f#0", "t.py::f[1-222]": "t.py::f#1"},
    )
    comp = compare(before, after)
    assert comp.fail_to_pass == ["t.py::f[0-111]"]
    assert comp.added == comp.removed == comp.pass_to_fail == []
    rerun = positioned({"t.py::f[0-333]": "passed"}, {"t.py::f[0-333]": "t.py::f#0"})
    result = apply_reruns(comp, [before], [rerun], before, after)
    assert result.fail_to_pass == ["t.py::f[0-111]"] and result.flaky == []


def test_stable_ids_are_never_paired_away() -> None:
    # Only an id missing on both sides pairs: a test the candidate really removed stays removed.
    before = positioned({"t.py::f[a]": "passed"}, {"t.py::f[a]": "t.py::f#0"})
    after = positioned(
        {"t.py::f[a]": "passed", "t.py::f[b]": "passed"},
        {"t.py::f[a]": "t.py::f#0", "t.py::f[b]": "t.py::f#1"},
    )
    assert compare(before, after).added == ["t.py::f[b]"]


# --------------------------------------------------------------------------- lint

PATCH = parse_patch(
    "diff --git a/app/m.py b/app/m.py\n--- a/app/m.py\n+++ b/app/m.py\n"
    "@@ -1,3 +1,3 @@\n import os\n-x = undefined_name\n+import sys\n y = 2\n"
)


def finding(line: int, code: str, path: str = "app/m.py") -> LintFinding:
    return LintFinding(path=path, line=line, col=1, code=code, message="m")


def test_flake8_format_constant_has_five_fields() -> None:
    assert FLAKE8_FORMAT.count("%(") == 5


def test_parse_flake8_lines() -> None:
    out = (
        "./app/m.py:2:1:F401:'sys' imported but unused\n"
        "app/m.py:3:80:E501:line too long (90 > 79)\n"
    )
    assert parse_flake8(out) == [
        LintFinding(
            path="app/m.py",
            line=2,
            col=1,
            code="F401",
            message="'sys' imported but unused",
            blocking=True,
        ),
        LintFinding(
            path="app/m.py",
            line=3,
            col=80,
            code="E501",
            message="line too long (90 > 79)",
            blocking=False,
        ),
    ]


def test_parse_flake8_keeps_colons_in_messages_and_skips_noise() -> None:
    out = "noise line\na.py:1:1:E999:SyntaxError: invalid syntax\n"
    assert [(f.code, f.message) for f in parse_flake8(out)] == [
        ("E999", "SyntaxError: invalid syntax")
    ]


@pytest.mark.parametrize(
    ("code", "blocking"), [("E999", True), ("F821", True), ("E501", False), ("W291", False)]
)
def test_default_blocking_codes(code: str, blocking: bool) -> None:
    assert is_blocking(code) is blocking


def test_lint_diff_new_only_on_added_lines() -> None:
    summary = lint_diff([], [finding(1, "F401"), finding(2, "F401")], PATCH)
    assert [(f.line, f.blocking) for f in summary.new] == [(2, True)]


def test_lint_diff_fixed_when_line_removed() -> None:
    summary = lint_diff([finding(2, "F821")], [], PATCH)
    assert [f.code for f in summary.fixed] == ["F821"]


def test_lint_diff_untouched_finding_is_neither_new_nor_fixed() -> None:
    summary = lint_diff([finding(1, "F401")], [finding(1, "F401")], PATCH)
    assert summary.new == [] and summary.fixed == []


def test_lint_diff_style_finding_is_not_blocking() -> None:
    assert lint_diff([], [finding(2, "E501")], PATCH).new[0].blocking is False


def test_lint_diff_custom_blocking_select() -> None:
    assert lint_diff([], [finding(2, "E501")], PATCH, ["E", "F"]).new[0].blocking is True


def test_summary_counts_fail_to_skip_as_still_failing() -> None:
    before, after = (
        run(a="failed", b="failed", c="passed"),
        run(a="skipped", b="passed", c="passed"),
    )
    summary = test_summary(before, after, compare(before, after))
    assert (summary.still_failing, summary.fail_to_pass, summary.pass_to_pass) == (["a"], ["b"], 1)
    assert summary.candidate.skipped == 1


def test_junit_args_keep_config_cache_for_plugins(tmp_path: Path) -> None:
    # werkzeug's dev-server fixture (pytest-xprocess) calls config.cache.makedir: with
    # -p no:cacheprovider its 25 live-server tests errored at setup in every job.
    project = tmp_path / "proj"
    project.mkdir()
    (project / "pytest.ini").write_text("[pytest]\naddopts = --ff\n", encoding="utf-8")
    (project / "test_cache.py").write_text(
        textwrap.dedent(
            """
            import os

            def test_cache_dir(request):
                path = str(request.config.cache.makedir("xprocess"))
                assert os.path.isdir(path) and "proj" not in path
            """
        ),
        encoding="utf-8",
    )
    junit = tmp_path / "junit.xml"
    assert "no:cacheprovider" not in PYTEST_JUNIT_ARGS
    assert "cache_dir=/tmp/.pytest_cache" in PYTEST_JUNIT_ARGS  # the sandbox's own /tmp
    # the host's /tmp is shared: the same arguments, with the cache in tmp_path
    args = [a.replace("/tmp/", f"{tmp_path}/") for a in PYTEST_JUNIT_ARGS]
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", *args, f"--junitxml={junit}", "-q"],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert grade(parse_junit(junit.read_bytes()), proc.returncode).counts.passed == 1
    assert not (project / ".pytest_cache").exists()


# --------------------------------------------------------------------------- noqa


def flake8_noqa_findings(tmp_path: Path, before: str, after: str) -> list[LintFinding]:
    """Real flake8 on a real git diff, with and without noqa, fed to noqa_findings."""
    repo = tmp_path / "repo"
    (repo / "app").mkdir(parents=True)
    env = {"GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": "/dev/null", "HOME": str(tmp_path)}

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", *args], cwd=repo, env=env, check=True, capture_output=True, text=True
        ).stdout

    git("init", "-q")
    (repo / "app" / "m.py").write_text(before)
    git("add", ".")
    git("-c", "user.name=t", "-c", "user.email=t@t.invalid", "commit", "-qm", "base")
    (repo / "app" / "m.py").write_text(after)
    patch = parse_patch(git("diff"))
    flake8 = [sys.executable, "-m", "flake8", "--format", FLAKE8_FORMAT, "--exit-zero", "app/m.py"]

    def lint(*extra: str) -> list[LintFinding]:
        out = subprocess.run([*flake8, *extra], cwd=repo, capture_output=True, text=True).stdout
        return parse_flake8(out)

    return noqa_findings(patch, lint(), lint("--disable-noqa"))


BASE_MODULE = "import os\n\n\ndef f():\n    return os.sep\n"


@pytest.mark.parametrize("comment", ["# noqa", "# NOQA", "# noqa:F401", "# NoQa: F401,E501"])
def test_noqa_in_any_case_hiding_a_blocking_code_blocks(tmp_path: Path, comment: str) -> None:
    after = BASE_MODULE.replace("import os\n", f"import os\nimport sys  {comment}\n")
    found = flake8_noqa_findings(tmp_path, BASE_MODULE, after)
    assert [(f.line, f.code, f.blocking) for f in found] == [(2, "NOQA", True)]
    assert "hides F401" in found[0].message


def test_file_level_flake8_noqa_hiding_an_unused_import_blocks(tmp_path: Path) -> None:
    after = "# flake8: noqa\n" + BASE_MODULE.replace("import os\n", "import os\nimport sys\n")
    found = flake8_noqa_findings(tmp_path, BASE_MODULE, after)
    assert [(f.line, f.code, f.blocking) for f in found] == [(1, "NOQA", True)]
    assert "'# flake8: noqa', which hides F401" in found[0].message


def test_noqa_hiding_only_style_is_a_finding_but_not_blocking(tmp_path: Path) -> None:
    long_line = "    return os.sep + '" + "x" * 100 + "'  # noqa: E501\n"
    after = BASE_MODULE.replace("    return os.sep\n", long_line)
    found = flake8_noqa_findings(tmp_path, BASE_MODULE, after)
    assert [(f.code, f.blocking) for f in found] == [("NOQA", False)]
    assert "hides E501" in found[0].message


def test_noqa_the_baseline_already_had_is_not_the_candidates(tmp_path: Path) -> None:
    before = BASE_MODULE.replace("import os\n", "import os\nimport sys  # noqa: F401\n")
    after = before.replace("import sys  # noqa: F401\n", "import re  # noqa: F401\n")
    assert flake8_noqa_findings(tmp_path, before, after) == []


def _one_line_diff(added: str) -> str:
    return (
        "diff --git a/pkg/m.py b/pkg/m.py\n--- a/pkg/m.py\n+++ b/pkg/m.py\n"
        f"@@ -1 +1 @@\n-x = 1\n+{added}\n"
    )


@pytest.mark.parametrize(
    ("added", "expected"),
    [
        ("import os  # NOQA", True),
        ("import os  # noqa: F401", True),
        ("# flake8: noqa", True),
        ("x = 2  # the noqa-free truth", False),
        ("x = 2", False),
    ],
)
def test_adds_noqa_tells_when_the_unsuppressed_lint_run_is_needed(
    added: str, expected: bool
) -> None:
    assert adds_noqa(parse_patch(_one_line_diff(added))) is expected


def test_ruff_config_becomes_flake8_options() -> None:
    from runner.core.lint import ruff_flake8_options

    pyproject = {"tool": {"ruff": {"line-length": 88, "lint": {"select": ["E", "F", "I", "UP"]}}}}
    assert ruff_flake8_options(pyproject, pyproject=True) == [
        "--select=E,F",
        "--max-line-length=88",
    ]
    # ruff's defaults when it selects nothing; flake8-only codes of its ignore list kept
    assert ruff_flake8_options({"lint": {"ignore": ["E501", "B008"]}}, pyproject=False) == [
        "--select=E4,E7,E9,F",
        "--extend-ignore=E501",
    ]
    assert ruff_flake8_options({"tool": {"black": {}}}, pyproject=True) is None
    assert ruff_flake8_options({"select": ["ALL"]}, pyproject=False) == ["--select=E,W,F,C90"]
