"""Evidence, not ceremony: which fail-to-pass tests show the bug on the baseline.

Pure: the graded baseline, the comparison and the changed tests' texts in, a standing
per test out. A test counts when it fails on the baseline in its call phase with an
assertion or the reported exception; a failure at collection or set-up (a missing
fixture, an import error) shows that the test could not run, not that the code is wrong.
A test the candidate wrote that checks nothing (no ``assert``, ``pytest.raises`` or mock
assertion) counts only for a reported crash it fails with. A test the job names with
``--fail-to-pass`` and the candidate leaves alone is the user's evidence: it also counts
when it fails at set-up (a bug whose fix belongs in the tests, such as a missing fixture).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from runner.core.asserts import test_checks_outcome, test_written
from runner.models import Evidence, SourceChange, TestResult

__all__ = ["Standing", "specified_errors", "standings"]

# A call-phase failure with one of these shows a missing name, not a wrong result.
IMPORT_ERRORS = frozenset({"ImportError", "ModuleNotFoundError"})


@dataclass(frozen=True)
class Standing:
    """Whether one fail-to-pass test is evidence of the bug, and why (for a person)."""

    test_id: str
    counts: bool
    why: str
    vouched: bool = False  # counted on the job's word (--fail-to-pass), not its own failure


def standings(evidence: Evidence, reported: Iterable[str]) -> list[Standing]:
    """One standing per fail-to-pass test, in the comparison's order."""
    if evidence.baseline is None or evidence.comparison is None:
        return []
    crash = {t.rsplit(".", 1)[-1] for t in reported if t}
    texts = {s.path: s for s in evidence.sources}
    named = set(evidence.fail_to_pass_ids)
    out = []
    for test_id in evidence.comparison.fail_to_pass:
        result = evidence.baseline.tests.get(test_id)
        written = _written(test_id, texts)
        if result is None:
            # absent from the baseline's results: its module failed to collect there
            module = test_id.split("::", 1)[0]
            broken = [c for c in evidence.baseline.collection_errors if c.id == module]
            got = _what_failed(broken[0]) if broken else ""
            at = f"at collection ({got})" if got else "at collection"
            out.append(
                Standing(test_id, False, f"{test_id} fails on the baseline {at}: not evidence")
            )
            continue
        out.append(_standing(test_id, result, crash, test_id in named and not written, texts))
    return out


def specified_errors(evidence: Evidence) -> set[str]:
    """Exception types whose handling the fail-to-pass tests the job brings assert.

    A type counts when every fail-to-pass test that fails with it on the baseline (in its
    call phase) is one the candidate or the job's test patch adds and that checks an
    outcome: the tests then say what the code must do when that error condition arises.
    """
    if evidence.baseline is None or evidence.comparison is None:
        return set()
    texts = {s.path: s for s in [*evidence.test_sources, *evidence.sources]}
    verdicts: dict[str, bool] = {}
    for test_id in evidence.comparison.fail_to_pass:
        result = evidence.baseline.tests.get(test_id)
        if result is None or not result.exception_type or result.phase not in (None, "call"):
            continue
        raised = result.exception_type.rsplit(".", 1)[-1]
        checked = _checks_outcome(test_id, texts) is True
        verdicts[raised] = verdicts.get(raised, True) and checked
    return {raised for raised, checked in verdicts.items() if checked}


def _standing(
    test_id: str,
    result: TestResult,
    crash: set[str],
    vouched: bool,
    texts: dict[str, SourceChange],
) -> Standing:
    own = _own_standing(test_id, result, crash, texts)
    phase = result.phase or ("call" if result.outcome == "failed" else "setup")
    if own.counts or not vouched or phase not in ("setup", "call"):
        return own
    got = _what_failed(result) or result.exception_type or "no message"
    return Standing(
        test_id, True, f"{test_id} named with --fail-to-pass ({phase}: {got})", vouched=True
    )


def _own_standing(
    test_id: str, result: TestResult, crash: set[str], texts: dict[str, SourceChange]
) -> Standing:
    """The standing a test earns by its own failure, whoever named it."""
    phase = result.phase or ("call" if result.outcome == "failed" else "setup")
    raised = (result.exception_type or "").rsplit(".", 1)[-1]
    got = _what_failed(result) or raised or "no message"
    if phase != "call":
        return Standing(
            test_id, False, f"{test_id} fails on the baseline at {phase} ({got}): not evidence"
        )
    checks = _checks_outcome(test_id, texts)
    if checks is False:
        if raised in crash:
            return Standing(test_id, True, f"{test_id} crashes with the reported {raised}")
        why = (
            f"fails with {raised or 'an unnamed error'}, not the reported "
            f"{', '.join(sorted(crash))}"
            if crash
            else "no error report (--expect-error, --repro) names a crash"
        )
        return Standing(
            test_id,
            False,
            f"{test_id} asserts nothing (no assert, pytest.raises or mock assertion) and "
            f"{why}: not evidence",
        )
    if not raised and result.assertion is None:
        # a record from before the plugin named exceptions: a call failure as it was read
        return Standing(test_id, True, f"{test_id} fails on the baseline")
    assertion = result.assertion if result.assertion is not None else raised == "AssertionError"
    if assertion:
        return Standing(test_id, True, f"{test_id} fails an assertion on the baseline")
    if crash:
        if raised in crash:
            return Standing(test_id, True, f"{test_id} fails with the reported {raised}")
        return Standing(
            test_id,
            False,
            f"{test_id} fails on the baseline with {got}, neither an assertion nor the "
            f"reported {', '.join(sorted(crash))}: not evidence",
        )
    if raised in IMPORT_ERRORS:
        return Standing(
            test_id,
            False,
            f"{test_id} fails on the baseline with an import error ({got}): not evidence",
        )
    return Standing(test_id, True, f"{test_id} fails with {raised or 'an error'} on the baseline")


def _what_failed(result: TestResult) -> str:
    """pytest's first ``E`` line (``fixture 'db' not found``), else the message's first."""
    for line in result.text.splitlines():
        if line.startswith("E ") and line[1:].strip():
            return line[1:].strip()[:160]
    lines = result.message.strip().splitlines()
    return lines[0][:160] if lines else ""


def _split(test_id: str) -> tuple[str, str]:
    """A node id's file and the test's qualified name (``Class.test_x``), parameters dropped."""
    path, _, rest = test_id.split(" (#", 1)[0].partition("::")
    return path, rest.split("[", 1)[0].replace("::", ".")


def _written(test_id: str, texts: dict[str, SourceChange]) -> bool:
    path, qualname = _split(test_id)
    change = texts.get(path)
    if change is None or change.after is None:
        return False
    return test_written(change.before, change.after, qualname)


def _checks_outcome(test_id: str, texts: dict[str, SourceChange]) -> bool | None:
    """Whether a test the candidate wrote checks anything; None for tests it did not write."""
    path, qualname = _split(test_id)
    change = texts.get(path)
    if change is None or change.after is None:
        return None
    if not test_written(change.before, change.after, qualname):
        return None
    return test_checks_outcome(change.after, qualname)
