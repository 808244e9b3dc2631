"""error_not_suppressed: handlers that hide the reported error, and deleted raises."""

from __future__ import annotations

import pytest
from test_policy import POLICIES, evidence, repro_run, suite

from runner.core.judge import Judgement, judge
from runner.core.policy import load_policy
from runner.core.suppression import suppressions
from runner.models import Check, SourceChange, SuiteRun

BEFORE = '''\
import logging

log = logging.getLogger(__name__)


def seed(app):
    """Seed the database."""
    if app is None:
        raise RuntimeError("Working outside of application context")
    return app.db.add(1)


class Loader:
    def load(self, path):
        with open(path) as handle:
            return handle.read()
'''


def change(after: str, before: str | None = BEFORE, path: str = "app/seed.py") -> SourceChange:
    return SourceChange(path=path, before=before, after=after)


def swallowing(handler: str) -> str:
    return BEFORE.replace(
        "    if app is None:\n",
        f"    try:\n        app.db\n    {handler}\n        log.warning('no app')\n"
        "        return None\n    if app is None:\n",
    )


@pytest.mark.parametrize(
    "handler",
    [
        "except RuntimeError:",
        "except (ValueError, RuntimeError) as exc:",
        "except Exception:",
        "except BaseException:",
        "except:",
    ],
)
def test_added_handler_catching_the_type_or_broader_is_found(handler: str) -> None:
    found = suppressions([change(swallowing(handler))], ["RuntimeError"])
    assert [(s.path, s.function) for s in found] == [("app/seed.py", "seed")]
    assert found[0].line == 10
    assert "without re-raising" in found[0].what


def test_handler_for_a_builtin_base_class_is_found() -> None:
    found = suppressions([change(swallowing("except LookupError:"))], ["KeyError"])
    assert [s.function for s in found] == ["seed"]


def test_handler_for_another_type_is_not_a_suppression() -> None:
    assert suppressions([change(swallowing("except KeyError:"))], ["RuntimeError"]) == []


def test_handler_that_re_raises_is_not_a_suppression() -> None:
    after = BEFORE.replace(
        "    return app.db.add(1)\n",
        "    try:\n        return app.db.add(1)\n    except Exception:\n"
        "        log.exception('seed failed')\n        raise\n",
    )
    assert suppressions([change(after)], ["RuntimeError"]) == []


def test_contextlib_suppress_is_found() -> None:
    after = BEFORE.replace(
        "    return app.db.add(1)\n",
        "    with contextlib.suppress(RuntimeError):\n        return app.db.add(1)\n",
    )
    found = suppressions([change("import contextlib\n" + after)], ["werkzeug.RuntimeError"])
    assert len(found) == 1 and "contextlib.suppress catching RuntimeError" in found[0].what


def test_handler_already_on_the_baseline_is_not_blamed_on_the_candidate() -> None:
    base = swallowing("except Exception:")
    after = base.replace("log.warning('no app')", "log.warning('still no app')")
    assert suppressions([change(after, before=base)], ["RuntimeError"]) == []


def test_handler_in_a_new_file_is_found_and_method_named() -> None:
    after = BEFORE.replace(
        "            return handle.read()\n",
        "            try:\n                return handle.read()\n"
        "            except Exception:\n                return ''\n",
    )
    found = suppressions([change(after)], ["OSError"])
    assert [s.function for s in found] == ["Loader.load"]


def test_deleted_raise_counts_on_the_traceback_only() -> None:
    after = BEFORE.replace(
        '        raise RuntimeError("Working outside of application context")\n',
        "        return None\n",
    )
    assert suppressions([change(after)], ["RuntimeError"]) == []
    found = suppressions([change(after)], ["RuntimeError"], [("app/seed.py", "seed")])
    assert len(found) == 1 and "deletes the raise of RuntimeError" in found[0].what


def test_file_that_does_not_parse_is_left_to_lint() -> None:
    assert suppressions([change("def broken(:\n")], ["RuntimeError"]) == []


# --------------------------------------------------------------------------- the check


def check(
    ev_sources: list[SourceChange], policy_name: str = "default", **extra: object
) -> tuple[Judgement, Check]:
    result = judge(evidence(sources=ev_sources, **extra), load_policy(policy_name, POLICIES))
    return result, {c.name: c for c in result.checks}["error_not_suppressed"]


def test_check_uses_the_expected_error_and_names_file_and_line() -> None:
    result, found = check(
        [change(swallowing("except RuntimeError:"))], expect_error="RuntimeError: Working"
    )
    assert result.status == "rejected" and not found.passed and found.required
    assert "error_not_suppressed (" in result.summary
    assert "app/seed.py:10 in seed" in found.detail


def test_check_falls_back_to_the_fail_to_pass_failures_types() -> None:
    before = suite(test_bug="failed", test_ok="passed")
    before.tests["test_bug"] = before.tests["test_bug"].model_copy(
        update={"exception_type": "RuntimeError"}
    )
    _, found = check([change(swallowing("except RuntimeError:"))], before=before)
    assert not found.passed and "RuntimeError" in found.detail


def test_check_uses_the_repro_commands_exception() -> None:
    _, found = check([change(swallowing("except RuntimeError:"))], repro=[repro_run(expect=None)])
    assert not found.passed


def test_check_passes_a_fix_that_handles_the_condition() -> None:
    after = BEFORE.replace(
        "    if app is None:\n", "    app = app or current_app()\n    if app is None:\n"
    )
    result, found = check([change(after)], expect_error="RuntimeError")
    assert found.passed and result.status == "verified"


def test_lenient_reports_but_does_not_require_it() -> None:
    result, found = check(
        [change(swallowing("except:"))], policy_name="lenient", expect_error="RuntimeError"
    )
    assert not found.passed and not found.required and result.status == "verified"


# ------------------------------------------------ no error report: the tests state the bug

TEST_ID = "tests/test_seed.py::test_bug"


def failing_with(exception_type: str, assertion: bool = False) -> SuiteRun:
    before = suite(**{TEST_ID: "failed", "tests/test_seed.py::test_ok": "passed"})
    before.tests[TEST_ID] = before.tests[TEST_ID].model_copy(
        update={"exception_type": exception_type, "phase": "call", "assertion": assertion}
    )
    return before


def written_test(body: str) -> SourceChange:
    text = f"from app.seed import seed\n\n\ndef test_bug():\n    {body}\n"
    return SourceChange(path="tests/test_seed.py", before=None, after=text)


def inferred(
    handler: str,
    body: str,
    exception_type: str = "RuntimeError",
    assertion: bool = False,
    expect_error: str | None = None,
) -> tuple[Judgement, Check]:
    after = suite(**{TEST_ID: "passed", "tests/test_seed.py::test_ok": "passed"})
    return check(
        [change(swallowing(handler)), written_test(body)],
        before=failing_with(exception_type, assertion),
        after=after,
        expect_error=expect_error,
    )


def test_narrow_handler_the_candidates_test_asserts_is_the_specified_behaviour() -> None:
    result, found = inferred("except RuntimeError:", "assert seed(None) is None")
    assert found.passed, found.detail
    assert "handles RuntimeError as the candidate's fail-to-pass tests assert" in found.detail
    assert "app/seed.py:10 in seed" in found.detail
    assert result.status == "verified"


def test_narrow_handler_the_jobs_test_patch_asserts_is_the_specified_behaviour() -> None:
    after = suite(**{TEST_ID: "passed", "tests/test_seed.py::test_ok": "passed"})
    _, found = check(
        [change(swallowing("except RuntimeError:"))],
        before=failing_with("RuntimeError"),
        after=after,
        test_sources=[written_test("assert seed(None) is None")],
    )
    assert found.passed and "handles RuntimeError" in found.detail


def test_narrow_handler_with_a_test_that_asserts_nothing_is_still_hidden() -> None:
    _, found = inferred("except RuntimeError:", "seed(None)")
    assert not found.passed and "app/seed.py:10 in seed" in found.detail


@pytest.mark.parametrize("handler", ["except Exception:", "except:", "except BaseException:"])
def test_broad_handler_is_hidden_whatever_the_tests_assert(handler: str) -> None:
    _, found = inferred(handler, "assert seed(None) is None")
    assert not found.passed and "RuntimeError" in found.detail


def test_with_an_error_report_a_narrow_handler_is_still_hidden() -> None:
    _, found = inferred(
        "except RuntimeError:", "assert seed(None) is None", expect_error="RuntimeError"
    )
    assert not found.passed and "app/seed.py:10 in seed" in found.detail


def test_a_failed_assertion_names_no_error_to_look_for() -> None:
    _, found = inferred(
        "except RuntimeError:", "assert seed(None) == 1", "AssertionError", assertion=True
    )
    assert found.passed and found.detail == "no reported error to look for"
