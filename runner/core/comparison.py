"""Comparing two graded runs test by test, and moving flips across re-runs into flaky."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence

from runner.models import (
    Comparison,
    Outcome,
    RunCounts,
    SuiteRepeat,
    SuiteRun,
    TestSummary,
)

_PASSING: frozenset[Outcome] = frozenset({"passed", "xpassed", "xfailed"})
_SKIPPED: frozenset[Outcome] = frozenset({"skipped"})


# Failures that measure time, not behaviour: Hypothesis's per-example deadline (and the
# Flaky it raises when a re-tried example then meets it).
_TIMING_ERRORS = frozenset(
    {"DeadlineExceeded", "hypothesis.errors.DeadlineExceeded", "hypothesis.errors.Flaky"}
)


def _timing_failure(run: SuiteRun | None, test_id: str) -> bool:
    """Whether ``test_id`` failed in ``run`` because a deadline passed."""
    result = run.tests.get(test_id) if run is not None else None
    if result is None:
        return False
    kind = (result.exception_type or "").rsplit(".", 1)[-1]
    return (
        result.exception_type in _TIMING_ERRORS
        or kind == "DeadlineExceeded"
        or (kind == "Flaky" and "DeadlineExceeded" in result.message)
    )


def _state(run: SuiteRun, test_id: str) -> str:
    """passing | skipped | failing | absent (never collected, and no collection error)."""
    result = run.tests.get(test_id)
    if result is None:
        module = test_id.split("::", 1)[0]
        # a test whose module failed to collect did run, and failed
        broken = any(c.id == module for c in run.collection_errors)
        return "failing" if broken else "absent"
    if result.outcome in _PASSING:
        return "passing"
    if result.outcome in _SKIPPED:
        return "skipped"
    return "failing"


def compare(baseline: SuiteRun, candidate: SuiteRun) -> Comparison:
    """Compare two runs test by test.

    A baseline test missing from the candidate counts as failed there (and is listed in
    ``removed``). Skipped is never a pass: failing→skipped goes to ``fail_to_skip`` (not
    a fix, not a regression), passing→skipped is ``pass_to_fail``. A test absent from
    the baseline counts as failing there only when its module failed to collect (the
    usual "new test imports the new function" case); otherwise it is only ``added``.
    A test skipped on the baseline proves nothing: skipped→passing is in no list,
    skipped→failing is ``still_failing``, and so is a module that fails to collect in
    both runs (by its module id). An invalid candidate run fixes nothing: its
    would-be ``fail_to_pass`` tests are ``still_failing``. Ids are paired first (see
    :func:`pair_unstable`), so an unstable parametrize id is one test, not two.
    """
    candidate = pair_unstable(baseline, candidate)
    lists = (k for k in Comparison.model_fields if k not in ("flaky", "suite_repeat"))
    out: dict[str, list[str]] = {k: [] for k in lists}
    for test_id in sorted(set(baseline.tests) | set(candidate.tests)):
        before, after = _state(baseline, test_id), _state(candidate, test_id)
        if test_id not in baseline.tests:
            out["added"].append(test_id)
        if test_id not in candidate.tests:
            out["removed"].append(test_id)
            after = "failing" if before != "absent" else after
        key = _transition(before, after)
        if key:
            out[key].append(test_id)
        if key in _CHANGES:
            out["changed"].append(test_id)
    out["new_collection_errors"] = sorted(
        {c.id for c in candidate.collection_errors} - {c.id for c in baseline.collection_errors}
    )
    # A module that fails to collect in both trees is a pre-existing failure: name it,
    # or its tests vanish from the verdict (ran in neither tree, listed nowhere).
    kept = {c.id for c in baseline.collection_errors} & {c.id for c in candidate.collection_errors}
    out["still_failing"] = sorted({*out["still_failing"], *kept})
    if not candidate.valid:
        # An untrustworthy run (forged report, killed, timed out) proves no test passes:
        # what it claims as fixed stays failing.
        fixed = set(out["fail_to_pass"])
        out["still_failing"] = sorted({*out["still_failing"], *fixed})
        out["changed"] = [t for t in out["changed"] if t not in fixed]
        out["fail_to_pass"] = []
    return Comparison.model_validate(out)


_CHANGES = ("fail_to_pass", "pass_to_fail", "fail_to_skip")


def _transition(before: str, after: str) -> str | None:
    if before == "passing":
        return "pass_to_pass" if after == "passing" else "pass_to_fail"
    if before == "skipped":
        return "still_failing" if after == "failing" else None
    if before == "absent":
        return "still_failing" if after == "failing" else None
    if after == "passing":
        return "fail_to_pass"
    if after == "skipped":
        return "fail_to_skip"
    return "still_failing"


# A fix's module larger than this is re-run by the fix's ids: its re-runs would cost a
# large share of the suite for a condition (isolation) few tests depend on.
FIX_MODULE_RERUN_MAX = 1000


def fix_rerun_unit(test_id: str, module_sizes: Mapping[str, int]) -> str:
    """What re-runs a fix's test: its module when that holds at most FIX_MODULE_RERUN_MAX
    tests (``module_sizes``: tests per module), else the test's own id."""
    module = test_id.split("::", 1)[0]
    return module if 0 < module_sizes.get(module, 0) <= FIX_MODULE_RERUN_MAX else test_id


def rerun_selection(comparison: Comparison) -> list[str]:
    """What to re-run: each changed test's whole module (its order and neighbours).

    A test broken by state another test leaves behind passes when run alone; in its
    module, in the suite's order, it fails again. A fix's test is re-run in its module
    too, when the module is not large: a test that counts objects or reads what its
    neighbours set up behaves differently alone than where it failed and passed.
    """
    every = {*comparison.pass_to_pass, *comparison.changed, *comparison.still_failing}
    sizes = Counter(t.split("::", 1)[0] for t in every)
    fixes = set(comparison.fail_to_pass)
    units = {
        fix_rerun_unit(t, sizes) if t in fixes else t.split("::", 1)[0] for t in comparison.changed
    }
    modules = {u for u in units if "::" not in u}
    # a test whose module is re-run whole needs no run of its own
    return sorted(modules | {u for u in units if u.split("::", 1)[0] not in modules})


def apply_reruns(
    comparison: Comparison,
    baseline_reruns: Sequence[SuiteRun],
    candidate_reruns: Sequence[SuiteRun],
    baseline: SuiteRun | None = None,
    candidate: SuiteRun | None = None,
) -> Comparison:
    """Move changed tests whose outcome flips under the same conditions into ``flaky``.

    A baseline re-run that disagrees with the first run on whether a changed test passed
    makes it flaky. On the candidate, a regression that passes in every re-run (of its
    whole module, see ``rerun_selection``) failed only in the suite's context: it stays a
    regression, ``order_dependent``; any other disagreement makes the test flaky.
    A re-run that cannot find a test (by id, or by function and position when
    ``baseline`` and ``candidate`` give the first runs' positions) says nothing about it:
    a test no re-run found is listed in ``not_rerun`` and kept as first seen.
    """
    flaky = set(comparison.flaky)
    not_rerun = set(comparison.not_rerun)
    order_dependent: set[str] = set()
    positions = {
        **(candidate.positions if candidate else {}),
        **(baseline.positions if baseline else {}),
    }
    for test_id in comparison.changed:
        passed_before = test_id in comparison.pass_to_fail
        passed_after = test_id in comparison.fail_to_pass
        key = positions.get(test_id)

        def seen(
            runs: Sequence[SuiteRun], test_id: str = test_id, key: str | None = key
        ) -> list[bool]:
            # An invalid re-run (crashed, timed out, its record broken) shows no pass: as
            # before, it flips a test that passed. A valid one without the id says nothing.
            states = [
                _state(r, resolve_id(r, test_id, key)) if r.valid else "failing" for r in runs
            ]
            return [s == "passing" for s in states if s != "absent"]

        before, after = seen(baseline_reruns), seen(candidate_reruns)
        if not before and not after:
            if baseline_reruns or candidate_reruns:
                not_rerun.add(test_id)
            continue
        if any(state != passed_before for state in before):
            flaky.add(test_id)
        elif passed_before and after and all(after) and _timing_failure(candidate, test_id):
            # It failed on the clock (a per-example deadline), not on a value: the
            # machine's load, not the order, made it fail; it passed again in its module.
            flaky.add(test_id)
        elif passed_before and after and all(after):
            order_dependent.add(test_id)
        elif any(state != passed_after for state in after):
            flaky.add(test_id)
    data = comparison.model_dump()
    for name in _CHANGES:
        data[name] = [t for t in data[name] if t not in flaky]
    data["flaky"] = sorted(flaky)
    data["not_rerun"] = sorted(not_rerun - flaky)
    data["order_dependent"] = sorted(order_dependent)
    return Comparison(**data)


def repeat_reason(comparison: Comparison) -> str:
    """Why the whole suite runs again, for the progress line; empty when it need not."""
    count = len(comparison.order_dependent)
    return f"{count} test(s) failed only in the suite" if count else ""


def apply_suite_repeat(
    comparison: Comparison,
    candidate_repeat: SuiteRun,
    baseline_repeat: SuiteRun | None,
    *,
    baseline_cached: bool = False,
    positions: dict[str, str] | None = None,
) -> Comparison:
    """Decide the ``order_dependent`` regressions by a repeat of the whole suite in each tree.

    Their module re-runs are not the conditions they failed under; the suite is. One that
    passes in the candidate's repeat flipped under the same conditions: flaky. One that
    fails there again and also fails in the baseline's repeat is not the candidate's doing:
    flaky. One that fails again and passes in the baseline's repeat is a confirmed
    order-dependent regression. A repeat that is invalid or lacks the test shows nothing:
    the regression stands. ``positions`` (id -> function#position) finds unstable ids.
    """
    suspects = comparison.order_dependent
    if not suspects:
        return comparison
    flaky, reasons, confirmed = set(comparison.flaky), {}, []
    for test_id in suspects:
        key = (positions or {}).get(test_id)
        after = _repeat_state(candidate_repeat, test_id, key)
        before = _repeat_state(baseline_repeat, test_id, key)
        is_flaky, reason = _decide_repeat(after, before, candidate_repeat.invalid_reason)
        if is_flaky:
            flaky.add(test_id)
        elif after == "failing" and before in ("passing", "skipped"):
            confirmed.append(test_id)
        reasons[test_id] = reason
    data = comparison.model_dump()
    for name in _CHANGES:
        data[name] = [t for t in data[name] if t not in flaky]
    data["flaky"] = sorted(flaky)
    data["order_dependent"] = [t for t in suspects if t not in flaky]
    data["suite_repeat"] = SuiteRepeat(
        tests=list(suspects), confirmed=confirmed, baseline_cached=baseline_cached, reasons=reasons
    )
    return Comparison(**data)


_KEPT = ": kept as an order-dependent regression"


def _decide_repeat(after: str, before: str, invalid_reason: str | None) -> tuple[bool, str]:
    """Whether a suspect is flaky, and why, from its state in each tree's repeat."""
    if after == "invalid":
        why = f" ({invalid_reason})" if invalid_reason else ""
        return False, f"the candidate's repeat of the suite was invalid{why}" + _KEPT
    if after == "absent":
        return False, "not found in the candidate's repeat of the suite" + _KEPT
    if after == "passing":
        return True, (
            "passed in the candidate's repeat of the suite: it flipped under the conditions "
            "it failed under (flaky)"
        )
    again = "failed again in the candidate's repeat of the suite"
    if before == "failing":
        return True, f"{again} and in the baseline's too: not the candidate's doing (flaky)"
    if before in ("invalid", "absent"):
        return False, f"{again}; the baseline's repeat gave no answer" + _KEPT
    return False, f"{again} and passed in the baseline's: an order-dependent regression"


def _repeat_state(run: SuiteRun | None, test_id: str, key: str | None) -> str:
    """passing | skipped | failing | absent in a repeat, or invalid (no run, or no record)."""
    if run is None or not run.valid:
        return "invalid"
    return _state(run, resolve_id(run, test_id, key))


def resolve_id(run: SuiteRun, test_id: str, key: str | None) -> str:
    """``test_id`` as ``run`` named it: itself, or the id at the same function and position."""
    if test_id in run.tests or key is None:
        return test_id
    for other, other_key in run.positions.items():
        if other_key == key and other in run.tests:
            return other
    return test_id


def pair_unstable(baseline: SuiteRun, candidate: SuiteRun) -> SuiteRun:
    """``candidate`` with ids that differ only in an unstable parametrize part renamed.

    A parametrize id built from ``datetime.now()`` or an object's address differs between
    runs; a candidate id missing from the baseline takes the baseline's id at the same
    function and position when that id is itself missing from the candidate.
    """
    by_key = {k: t for t, k in baseline.positions.items() if t not in candidate.tests}
    renames = {}
    for test_id in candidate.tests:
        key = candidate.positions.get(test_id)
        if test_id in baseline.tests or key is None or key not in by_key:
            continue
        renames[test_id] = by_key[key]
    if not renames:
        return candidate
    tests = {
        renames.get(t, t): r.model_copy(update={"id": renames.get(t, t)})
        for t, r in candidate.tests.items()
    }
    positions = {renames.get(t, t): k for t, k in candidate.positions.items()}
    return candidate.model_copy(update={"tests": tests, "positions": positions})


def test_summary(
    baseline: SuiteRun | None, candidate: SuiteRun | None, comparison: Comparison | None
) -> TestSummary:
    """The verdict's ``tests`` section from the graded runs and the (re-run) comparison."""
    comp = comparison or Comparison()
    return TestSummary(
        baseline=baseline.counts if baseline else RunCounts(),
        candidate=candidate.counts if candidate else RunCounts(),
        fail_to_pass=comp.fail_to_pass,
        pass_to_fail=comp.pass_to_fail,
        # failing→skipped is neither fixed nor broken: it stays with the unfixed tests
        still_failing=sorted({*comp.still_failing, *comp.fail_to_skip}),
        flaky=comp.flaky,
        not_rerun=comp.not_rerun,
        added=comp.added,
        removed=comp.removed,
        pass_to_pass=len(comp.pass_to_pass),
        suite_repeat=comp.suite_repeat,
    )


test_summary.__test__ = False  # type: ignore[attr-defined]  # not a pytest test
