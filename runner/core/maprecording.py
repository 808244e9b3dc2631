"""When a baseline records the per-test map: the setting, who verifies, and the caches.

The map (which tests execute which functions) lets a later candidate on the same commit
run its affected tests first. Recording it slows the commit's first baseline (a hook on
every call), so it pays off only where a second candidate on the commit is likely: the
fix loop's later attempts and the service's later jobs, not a one-shot ``verify-patch``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from runner.config.sections import RecordMap
from runner.models import MapRecording

__all__ = ["BaselinePlan", "Caller", "MapPlan", "map_outcome", "plan_baseline", "plan_map"]

Caller = Literal["one-shot", "fix-loop", "service"]

_LIKELY_AGAIN: dict[Caller, str] = {
    "fix-loop": "the fix loop verifies further attempts on this commit",
    "service": "the service verifies later candidates on this commit",
}


@dataclass(frozen=True)
class MapPlan:
    """Whether this job wants the commit's map recorded, and why (for the verdict)."""

    wanted: bool
    reason: str


@dataclass(frozen=True)
class BaselinePlan:
    """Whether the baseline suite runs in this job, and whether it records the map."""

    run: bool
    with_map: bool
    map_cached: bool
    baseline_cached: bool


def plan_map(setting: RecordMap, caller: Caller, asked: bool) -> MapPlan:
    """Decide from ``[affected] record_map``, the caller, and an explicit ``--record-map``."""
    if asked:
        return MapPlan(True, "asked for with --record-map")
    if setting == "always":
        return MapPlan(True, "affected.record_map = always")
    if setting == "never":
        return MapPlan(False, "affected.record_map = never")
    if caller in _LIKELY_AGAIN:
        return MapPlan(True, f"{_LIKELY_AGAIN[caller]} (affected.record_map = auto)")
    return MapPlan(
        False,
        "a one-shot verification does not reuse it (affected.record_map = auto; "
        "--record-map asks for it)",
    )


def plan_baseline(plan: MapPlan, baseline_cached: bool, map_cached: bool) -> BaselinePlan:
    """Run the baseline when it is not cached, or when the map is wanted and missing.

    A baseline cached without the map is reused while the map is not wanted; once it is,
    that baseline runs again, this time recording the map.
    """
    with_map = plan.wanted and not map_cached
    return BaselinePlan(
        run=with_map or not baseline_cached,
        with_map=with_map,
        map_cached=map_cached,
        baseline_cached=baseline_cached,
    )


def map_outcome(plan: MapPlan, baseline: BaselinePlan, recorded: bool, valid: bool) -> MapRecording:
    """What the verdict says about the map: recorded by this job, or why not."""
    if baseline.map_cached:
        return MapRecording(
            recorded=False,
            reason="not needed: an earlier baseline on this commit already ran with it",
        )
    if not plan.wanted:
        return MapRecording(recorded=False, reason=f"not recorded: {plan.reason}")
    if recorded:
        # a cached baseline without the map ran again to record it
        again = "; the cached baseline had none: it ran again" if baseline.baseline_cached else ""
        return MapRecording(recorded=True, reason=f"recorded: {plan.reason}{again}")
    why = (
        "the baseline run was not valid"
        if not valid
        else "the harness gave no map (cached as none: later jobs select every test)"
    )
    return MapRecording(recorded=False, reason=f"wanted ({plan.reason}) but not recorded: {why}")
