"""The learned deadline's rule, and the policy keys it reads."""

from __future__ import annotations

from pathlib import Path

import pytest

from runner.core.deadlines import deadline_for, stop_reason
from runner.core.policy import LimitsPolicy, load_policy
from runner.errors import ConfigError
from runner.models import RunResult, SuiteRun
from runner.verify.deadlines import CandidateDeadline, with_stop_reason

POLICIES = Path(__file__).resolve().parent.parent / "policies"


def test_a_fast_baseline_gives_the_floor() -> None:
    deadlines = deadline_for(LimitsPolicy(), 0.8)
    assert (deadlines.suite_s, deadlines.source) == (30, "learned")
    assert (deadlines.baseline_s, deadlines.floor_s, deadlines.factor) == (0.8, 30, 3)


def test_a_slower_baseline_gives_factor_times_its_time() -> None:
    deadlines = deadline_for(LimitsPolicy(), 40)
    assert (deadlines.suite_s, deadlines.source) == (120, "learned")
    assert "3 x the baseline suite's 40 s" in deadlines.reason


def test_the_learned_deadline_never_exceeds_the_configured_timeout() -> None:
    deadlines = deadline_for(LimitsPolicy(test_timeout_s=100), 50)
    assert (deadlines.suite_s, deadlines.source) == (100, "configured")
    assert "below the learned 150 s" in deadlines.reason


def test_without_a_baseline_time_the_configured_timeout_applies() -> None:
    deadlines = deadline_for(LimitsPolicy(deadline_floor_s=10, deadline_factor=2), None)
    assert (deadlines.suite_s, deadlines.source, deadlines.baseline_s) == (600, "configured", None)
    assert "not known" in deadlines.reason


def test_stop_reasons_name_the_limit_that_stopped_the_run() -> None:
    assert "hit the process limit (limits.pids = 64)" in stop_reason("process_limit", 30, 64, "")
    assert "learned deadline (30 s" in stop_reason("deadline", 30, 64, "learned")
    assert stop_reason("deadline", 600, 64, "configured") == "the test run timed out (600 s)"


def test_the_shipped_policies_carry_the_keys() -> None:
    for name in ("default", "strict", "lenient"):
        limits = load_policy(name, POLICIES).limits
        assert (limits.deadline_floor_s, limits.deadline_factor) == (30, 3)


def test_a_factor_below_one_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "p.toml"
    path.write_text("[limits]\ndeadline_factor = 0.5\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="deadline_factor"):
        load_policy(str(path), tmp_path)


def _result(**fields: object) -> RunResult:
    base: dict[str, object] = {
        "exit_code": 0,
        "timed_out": False,
        "oom_killed": False,
        "duration_s": 1.0,
        "output": "",
        "output_bytes": 0,
        "output_truncated": False,
        "container_id": "c",
    }
    return RunResult.model_validate({**base, **fields})


def test_a_job_deadline_learns_only_from_a_valid_baseline() -> None:
    deadline = CandidateDeadline(LimitsPolicy(deadline_floor_s=5))
    assert deadline.seconds() == 600
    deadline.learn(SuiteRun(valid=False, duration_s=1.0))
    assert deadline.seconds() == 600
    deadline.learn(SuiteRun(valid=True, duration_s=4.0))
    assert deadline.seconds() == 12
    assert deadline.verdict().source == "learned" and deadline.verdict().stopped is None


def test_a_stopped_candidate_run_says_why_and_the_verdict_records_it() -> None:
    deadline = CandidateDeadline(LimitsPolicy(pids=64))
    deadline.learn(SuiteRun(valid=True, duration_s=2.0))
    stopped = _result(exit_code=None, timed_out=True, timeout_s=30.0)
    run = with_stop_reason(SuiteRun(valid=False, timed_out=True), stopped, deadline, True)
    assert run.invalid_reason is not None and "learned deadline (30 s" in run.invalid_reason
    deadline.record(stopped)
    assert deadline.verdict().stopped == "deadline"
    bomb = _result(exit_code=None, pids_limited=True, timeout_s=30.0)
    run = with_stop_reason(SuiteRun(valid=True), bomb, deadline, True)
    assert not run.valid and run.pids_limited
    assert "hit the process limit (limits.pids = 64)" in (run.invalid_reason or "")
    deadline.record(bomb)
    assert deadline.verdict().stopped == "process_limit"


def test_a_run_that_ended_on_its_own_is_left_as_graded() -> None:
    deadline = CandidateDeadline(LimitsPolicy())
    run = SuiteRun(valid=True)
    assert with_stop_reason(run, _result(), deadline, True) is run
