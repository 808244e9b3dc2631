"""The candidate's deadline, learned from the baseline's suite time: a pure rule.

A candidate whose suite takes many times longer than the same suite without the fix is
hanging, not slow; it gets ``max(floor, factor x baseline)`` seconds instead of the whole
configured ``test_timeout_s``, never more than that.
"""

from __future__ import annotations

from typing import Literal

from runner.core.policy import LimitsPolicy
from runner.models import Deadlines

__all__ = ["deadline_for", "stop_reason"]


def deadline_for(limits: LimitsPolicy, baseline_s: float | None) -> Deadlines:
    """The deadline for the candidate's runs, given the baseline's seconds (None: unknown)."""
    configured = limits.test_timeout_s
    floor, factor = limits.deadline_floor_s, limits.deadline_factor
    if baseline_s is None:
        return Deadlines(
            suite_s=configured,
            source="configured",
            floor_s=floor,
            factor=factor,
            reason=f"limits.test_timeout_s ({configured:g} s): the baseline's suite time was "
            "not known while the candidate ran",
        )
    learned = round(max(floor, factor * baseline_s), 3)
    if learned >= configured:
        return Deadlines(
            suite_s=configured,
            source="configured",
            baseline_s=baseline_s,
            floor_s=floor,
            factor=factor,
            reason=f"limits.test_timeout_s ({configured:g} s), below the learned {learned:g} s "
            f"({factor:g} x the baseline's {baseline_s:g} s, at least {floor:g} s)",
        )
    return Deadlines(
        suite_s=learned,
        source="learned",
        baseline_s=baseline_s,
        floor_s=floor,
        factor=factor,
        reason=f"{factor:g} x the baseline suite's {baseline_s:g} s, at least "
        f"limits.deadline_floor_s ({floor:g} s), below limits.test_timeout_s ({configured:g} s)",
    )


def stop_reason(
    stopped: Literal["deadline", "process_limit"], deadline_s: float, pids: int, source: str
) -> str:
    """Why a run the runner stopped is not evidence, in the words a verdict uses."""
    if stopped == "process_limit":
        return (
            f"the test run hit the process limit (limits.pids = {pids}): a fork was refused "
            "and the run was stopped at once"
        )
    if source == "learned":
        return (
            f"the test run timed out at its learned deadline ({deadline_s:g} s, from the "
            "baseline's suite time)"
        )
    return f"the test run timed out ({deadline_s:g} s)"
