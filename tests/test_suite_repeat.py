"""Regressions that fail only in the whole suite, decided by one more run of the suite.

Pure tests of the decision (``apply_suite_repeat``) and of what ``no_regressions`` says;
the pipeline's repeat, end to end with the real engine, is at the end of the file.
"""

from __future__ import annotations

import pytest
from test_pipeline import Content, Project, checks, failed, validated
from test_policy import check, evidence, suite

from runner.core.suite import apply_reruns, apply_suite_repeat, compare, repeat_reason
from runner.models import Comparison, FixJob, SuiteRun, Verdict
from runner.reports.github import render_summary
from runner.reports.text import fact_rows
from runner.verify.pipeline import Progress, Runtime, new_job_id, verify

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


def test_the_reports_line_says_what_each_repeat_showed() -> None:
    confirmed = apply_suite_repeat(suspected(), AFTER, BEFORE).suite_repeat
    assert confirmed is not None
    assert confirmed.line() == (
        "suite repeat: the whole suite ran again for 1 test(s) failing only in it; "
        "1 confirmed order-dependent: test_ok"
    )
    both_fail = suite(test_bug="failed", test_ok="failed", test_other="passed")
    flaky = apply_suite_repeat(suspected(), AFTER, both_fail, baseline_cached=True).suite_repeat
    assert flaky is not None and flaky.line().endswith(
        "; 1 flipped or failed in the baseline's repeat too (flaky); "
        "the baseline's repeat came from the cache"
    )
    unanswered = apply_suite_repeat(suspected(), AFTER, None).suite_repeat
    assert unanswered is not None
    assert unanswered.line().endswith("; 1 without an answer from a repeat, kept as regressions")


# --------------------------------------------------------------------------- end to end

CALC = "def add(a, b):\n    return a - b\n"
REGISTRY = '''\
def register(name, names=None):
    """The names registered so far in ``names`` (a new list unless given)."""
    names = [] if names is None else names
    names.append(name)
    return names
'''
CACHE = '''\
import pathlib

WARM_UP = False


def ready():
    """Whether the cache is usable: with WARM_UP, only once its marker exists."""
    marker = pathlib.Path(__file__).resolve().parent.parent / ".warm"
    return not WARM_UP or marker.exists()
'''
PROJECT: dict[str, Content] = {
    "app/__init__.py": "",
    "app/calc.py": CALC,
    "app/registry.py": REGISTRY,
    "app/cache.py": CACHE,
    "tests/test_cache.py": "from app.cache import ready\n\n\ndef test_ready():\n"
    "    assert ready()\n",
    # test_first runs before test_second in the suite (pytest's file order)
    "tests/test_first.py": "from app.registry import register\n\n\ndef test_register():\n"
    "    assert register('a') == ['a']\n",
    "tests/test_second.py": "from app.registry import register\n\n\ndef test_fresh():\n"
    "    assert register('b') == ['b']\n",
    "requirements-test.txt": "pytest==8.3.5\nflake8==7.1.2\n",
    ".flake8": "[flake8]\nmax-line-length = 100\n",
}
FIX: dict[str, Content] = {
    "app/calc.py": "def add(a, b):\n    return a + b\n",
    "tests/test_calc.py": "from app.calc import add\n\n\ndef test_add():\n"
    "    assert add(2, 3) == 5\n",
}
# a mutable default: every call without ``names`` shares one list across the suite
LEAKY = REGISTRY.replace("names=None", "names=[]").replace(
    "    names = [] if names is None else names\n", ""
)


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Project:
    root = tmp_path_factory.mktemp("repeat")
    return Project.create(root, "repeat", PROJECT, "add() subtracts")


@pytest.fixture(scope="module")
def runtime(module_runtime: Runtime) -> Runtime:
    return module_runtime


def verify_with(runtime: Runtime, project: Project, patch: str, progress: Progress) -> Verdict:
    job = FixJob(patch=patch, repo=str(project.repo), job_id=new_job_id())
    return validated(verify(job, runtime, progress), runtime)


@pytest.mark.docker
def test_a_leak_the_candidate_adds_fails_again_in_the_repeat_and_is_rejected(
    runtime: Runtime, project: Project
) -> None:
    # test_second fails after test_first in the suite and passes alone in its module: the
    # whole suite runs once more in each tree, fails it again, and the baseline's passes.
    lines: list[tuple[str, str]] = []
    patch = project.diff({**FIX, "app/registry.py": LEAKY})
    verdict = verify_with(runtime, project, patch, lambda p, m: lines.append((p, m)))
    assert verdict.status == "rejected", verdict.summary
    assert failed(verdict) == {"no_regressions"}, verdict.summary
    broken = "tests/test_second.py::test_fresh"
    assert verdict.tests.pass_to_fail == [broken] and verdict.tests.flaky == []
    repeat = verdict.tests.suite_repeat
    assert repeat is not None and repeat.tests == [broken] and repeat.confirmed == [broken]
    assert not repeat.baseline_cached
    detail = checks(verdict)["no_regressions"].detail
    assert f"{broken} failed in the suite and passed when re-run in their module" in detail
    assert "failed again when the whole suite ran once more" in detail
    assert "order-dependent" in detail
    message = "re-running the whole suite in both trees: 1 test(s) failed only in the suite"
    assert ("repeat", message) in lines
    said = f"1 confirmed order-dependent: {broken}"
    assert any(k == "suite repeat" and said in v for k, v in fact_rows(verdict))
    assert said.replace("_", "\\_") in render_summary(verdict)  # Markdown-escaped


@pytest.mark.docker
def test_a_test_that_fails_only_in_the_first_suite_run_is_flaky_and_verified(
    runtime: Runtime, project: Project
) -> None:
    # With the candidate, test_ready needs a marker that appears only after the first
    # suite run (the host writes it into the candidate's tree once the runs are compared):
    # an outside world that changes between runs, like a timing race, but deterministic.
    def progress(phase: str, message: str) -> None:
        lines.append((phase, message))
        if phase == "compare":
            tree = runtime.jobs_dir / job_id / "trees" / "candidate"
            (tree / ".warm").write_text("", encoding="utf-8")

    lines: list[tuple[str, str]] = []
    job_id = new_job_id()
    patch = project.diff({**FIX, "app/cache.py": CACHE.replace("= False", "= True")})
    job = FixJob(patch=patch, repo=str(project.repo), job_id=job_id)
    verdict = validated(verify(job, runtime, progress), runtime)
    assert verdict.status == "verified", verdict.summary
    warm = "tests/test_cache.py::test_ready"
    assert verdict.tests.fail_to_pass == ["tests/test_calc.py::test_add"]
    assert verdict.tests.flaky == [warm] and verdict.tests.pass_to_fail == []
    repeat = verdict.tests.suite_repeat
    assert repeat is not None and repeat.tests == [warm] and repeat.confirmed == []
    assert "passed in the candidate's repeat of the suite" in repeat.reasons[warm]
    assert (
        "filed flaky after a repeat of the whole suite" in checks(verdict)["no_regressions"].detail
    )
    assert any(p == "repeat" and "1 test(s) failed only in the suite" in m for p, m in lines)
    said = "the whole suite ran again for 1 test(s) failing only in it; 1 flipped"
    assert any(
        k == "suite repeat" and v.startswith(said.split(": ", 1)[-1]) for k, v in fact_rows(verdict)
    )
    assert said.replace("_", "\\_") in render_summary(verdict)  # Markdown-escaped
