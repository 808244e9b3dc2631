"""Regressions that fail only in the whole suite, decided by one more run of the suite.

Pure tests of the decision (``apply_suite_repeat``) and of what ``no_regressions`` says;
the pipeline's repeat, end to end with the real engine, is at the end of the file.
"""

from __future__ import annotations

from test_policy import check, evidence, suite

from runner.core.suite import apply_reruns, apply_suite_repeat, compare, repeat_reason
from runner.models import Comparison, SuiteRun

BEFORE = suite(test_bug="failed", test_ok="passed", test_other="passed")
AFTER = suite(test_bug="passed", test_ok="failed", test_other="passed")


def suspected() -> Comparison:
    """test_ok failed in the candidate's suite and passed in both trees' module re-runs."""
    module = suite(test_bug="passed", test_ok="passed")
    comparison = apply_reruns(compare(BEFORE, AFTER), [BEFORE] * 2, [module] * 2)
    assert comparison.order_dependent == ["test_ok"] and comparison.flaky == []
    return comparison


def test_the_suite_repeats_only_for_regressions_seen_only_in_the_suite() -> None:
    assert repeat_reason(suspected()) == "1 test(s) failed only in the suite"
    plain = apply_reruns(compare(BEFORE, AFTER), [BEFORE] * 2, [AFTER] * 2)
    assert plain.order_dependent == [] and repeat_reason(plain) == ""
    # nothing to decide: the comparison comes back as it was, with no repeat recorded
    assert apply_suite_repeat(plain, AFTER, BEFORE) == plain


def test_passing_in_the_candidates_repeat_is_flaky() -> None:
    result = apply_suite_repeat(suspected(), suite(test_bug="passed", test_ok="passed"), BEFORE)
    assert result.flaky == ["test_ok"]
    assert result.order_dependent == [] and result.pass_to_fail == []
    assert result.fail_to_pass == ["test_bug"]
    assert result.suite_repeat is not None
    assert result.suite_repeat.tests == ["test_ok"] and result.suite_repeat.confirmed == []
    assert "passed in the candidate's repeat" in result.suite_repeat.reasons["test_ok"]


def test_failing_again_where_the_baselines_repeat_passes_is_order_dependent() -> None:
    result = apply_suite_repeat(suspected(), AFTER, BEFORE)
    assert result.order_dependent == ["test_ok"] and result.pass_to_fail == ["test_ok"]
    assert result.flaky == []
    assert result.suite_repeat is not None and result.suite_repeat.confirmed == ["test_ok"]
    assert "passed in the baseline's" in result.suite_repeat.reasons["test_ok"]


def test_failing_again_where_the_baselines_repeat_fails_too_is_flaky() -> None:
    baseline_repeat = suite(test_bug="failed", test_ok="failed", test_other="passed")
    result = apply_suite_repeat(suspected(), AFTER, baseline_repeat, baseline_cached=True)
    assert result.flaky == ["test_ok"] and result.order_dependent == []
    assert result.pass_to_fail == []
    assert result.suite_repeat is not None and result.suite_repeat.baseline_cached
    assert "not the candidate's doing" in result.suite_repeat.reasons["test_ok"]


def test_a_repeat_that_shows_nothing_keeps_the_regression() -> None:
    broken = AFTER.model_copy(update={"valid": False, "invalid_reason": "timed out after 40s"})
    for candidate_repeat, baseline_repeat, said in (
        (broken, BEFORE, "was invalid (timed out after 40s)"),
        (suite(test_bug="passed"), BEFORE, "not found in the candidate's repeat"),
        (AFTER, None, "the baseline's repeat gave no answer"),
        (AFTER, BEFORE.model_copy(update={"valid": False}), "baseline's repeat gave no answer"),
    ):
        result = apply_suite_repeat(suspected(), candidate_repeat, baseline_repeat)
        assert result.order_dependent == ["test_ok"] and result.pass_to_fail == ["test_ok"]
        assert result.flaky == []
        assert result.suite_repeat is not None and result.suite_repeat.confirmed == []
        assert said in result.suite_repeat.reasons["test_ok"]


def test_an_unstable_id_is_found_in_the_repeat_by_its_position() -> None:
    def named(run: SuiteRun, old: str, new: str) -> SuiteRun:
        tests = {
            (new if t == old else t): r.model_copy(update={"id": new if t == old else t})
            for t, r in run.tests.items()
        }
        positions = {t: f"{t}#0" for t in run.tests}
        positions[new] = positions.pop(old)
        return run.model_copy(update={"tests": tests, "positions": positions})

    repeat = named(suite(test_bug="passed", test_ok="passed"), "test_ok", "test_ok[0x2]")
    positions = {"test_ok": "test_ok#0"}
    result = apply_suite_repeat(suspected(), repeat, BEFORE, positions=positions)
    assert result.flaky == ["test_ok"]


def test_no_regressions_says_what_the_repeat_showed() -> None:
    confirmed = apply_suite_repeat(suspected(), AFTER, BEFORE)
    passed, detail = check(evidence(BEFORE, AFTER, comparison=confirmed), "no_regressions")
    assert not passed
    assert "test_ok failed in the suite and passed when re-run in their module" in detail
    assert "failed again when the whole suite ran once more" in detail
    assert "order-dependent" in detail

    unanswered = apply_suite_repeat(suspected(), AFTER, None)
    passed, detail = check(evidence(BEFORE, AFTER, comparison=unanswered), "no_regressions")
    assert not passed and "the repeat of the whole suite gave no answer" in detail

    flipped = apply_suite_repeat(suspected(), suite(test_bug="passed", test_ok="passed"), BEFORE)
    passed, detail = check(evidence(BEFORE, AFTER, comparison=flipped), "no_regressions")
    assert passed and "test_ok failed only in the suite and were filed flaky" in detail
