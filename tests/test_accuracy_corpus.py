"""The accuracy instrument's pure parts: corpus file, bare truth, grading, report."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench" / "accuracy"))

from corpus import (
    Case,
    WayResult,
    dump_corpus,
    fail_to_pass,
    generated_version_files,
    grade,
    load_corpus,
    miss_class,
    noop_patch,
    outcomes,
    totals,
)
from report import render

SHA = re.compile(r"^[0-9a-f]{40}$")


def make_case(**changes: object) -> Case:
    fields: dict[str, object] = {
        "id": "demo-0001",
        "repo": "https://github.com/example/demo",
        "fix": "a" * 40,
        "base": "b" * 40,
        "date": "2024-01-02",
        "subject": "Fix the thing",
        "source": ["src/demo/core.py"],
        "tests": ["tests/test_core.py"],
        "why": "a test",
        "fail_to_pass": ["tests/test_core.py::test_a"],
    }
    fields.update(changes)
    return Case.model_validate(fields)


def record(nodeid: str, when: str, outcome: str) -> str:
    return json.dumps({"nodeid": nodeid, "when": when, "outcome": outcome})


def test_the_corpus_has_forty_cases_from_twenty_five_projects_each_with_both_parts() -> None:
    cases = load_corpus()
    graded = [c for c in cases if not c.excluded]
    assert len(graded) >= 40
    assert len({c.owner_name for c in graded}) >= 25
    for case in cases:
        assert SHA.match(case.fix) and SHA.match(case.base), case.id
        assert not set(case.source) & set(case.tests), case.id
        assert case.why.strip(), case.id
        assert case.python in {"3.9", "3.11", "3.13"}, case.id
        # A graded case has its bare truth; a dropped one says why and has none.
        assert bool(case.fail_to_pass) != bool(case.excluded), case.id


def test_a_corpus_with_a_duplicate_id_is_refused(tmp_path: Path) -> None:
    case = make_case()
    path = tmp_path / "corpus.toml"
    path.write_text(dump_corpus([case, case]))
    with pytest.raises(ValueError, match="appears twice"):
        load_corpus(path)


def test_the_corpus_file_round_trips_odd_ids(tmp_path: Path) -> None:
    odd = ['t.py::test_x[Ana \\xcdndia-"q"]', "t.py::test_y[ünï\tcode]"]
    case = make_case(fail_to_pass=odd, miss_classes={"fix": "rootdir"})
    path = tmp_path / "corpus.toml"
    path.write_text(dump_corpus([case], "# header\n"))
    assert load_corpus(path) == [case]
    assert tomllib.loads(path.read_text())["case"][0]["fail_to_pass"] == odd


def test_outcomes_take_the_worst_phase_and_note_collection_errors() -> None:
    lines = [
        record("t.py::a", "setup", "passed"),
        record("t.py::a", "call", "passed"),
        record("t.py::a", "teardown", "failed"),
        record("t.py::b", "setup", "failed"),
        record("t.py::c", "setup", "passed"),
        record("t.py::c", "call", "passed"),
        record("t.py::c", "teardown", "passed"),
        record("t.py::d", "setup", "skipped"),
        record("u.py", "collect", "failed"),
        "",
    ]
    got, broken = outcomes(lines)
    assert got == {
        "t.py::a": "failed",
        "t.py::b": "failed",
        "t.py::c": "passed",
        "t.py::d": "skipped",
    }
    assert broken == {"u.py"}


def test_fail_to_pass_counts_failures_and_uncollectable_modules_only() -> None:
    before = {"t.py::a": "failed", "t.py::b": "passed", "t.py::c": "skipped", "t.py::d": "failed"}
    after = {
        "t.py::a": "passed",
        "t.py::b": "passed",
        "t.py::c": "passed",
        "t.py::d": "failed",
        "u.py::e": "passed",
        "v.py::f": "passed",
    }
    assert fail_to_pass(before, {"u.py"}, after) == ["t.py::a", "u.py::e"]  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "text", ["a = 1\nb = 2\n\n\ndef f():\n    return 3\n", "x = 1", "x = 1\ny = 2"]
)
def test_the_noop_patch_applies_and_only_adds_a_comment(tmp_path: Path, text: str) -> None:
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "mod.py").write_text(text)
    patch = tmp_path / "noop.diff"
    patch.write_text(noop_patch("pkg/mod.py", text))
    subprocess.run(["git", "-C", str(tmp_path), "apply", str(patch)], check=True)
    after = (tmp_path / "pkg" / "mod.py").read_text()
    assert after.rstrip("\n").splitlines()[:-1] == text.rstrip("\n").splitlines()
    assert after.splitlines()[-1].startswith("# ")


def way(
    name: str, status: str, ids: list[str] | None = None, failed: list[str] | None = None
) -> WayResult:
    return WayResult.model_validate(
        {"way": name, "status": status, "fail_to_pass": ids or [], "failed_checks": failed or []}
    )


def test_a_fix_is_right_only_when_verified_with_exactly_the_bare_ids() -> None:
    case = make_case(fail_to_pass=["t.py::a", "t.py::b"])
    assert grade(case, way("fix", "verified", ["t.py::b", "t.py::a"])).right
    assert not grade(case, way("fix", "verified", ["t.py::a"])).right
    assert not grade(case, way("fix", "rejected")).right
    assert not grade(case, way("fix", "error")).right


def test_a_noop_is_right_only_when_rejected_because_the_bug_still_shows() -> None:
    case = make_case()
    assert grade(case, way("noop", "rejected", failed=["reproduced"])).right
    assert grade(case, way("noop", "rejected", failed=["reproduced", "lint"])).right
    assert not grade(case, way("noop", "rejected", failed=["lint"])).right
    assert not grade(case, way("noop", "rejected")).right
    assert not grade(case, way("noop", "verified")).right
    assert not grade(case, way("noop", "error")).right


def test_the_combined_diff_may_be_rejected_only_for_weakened_tests() -> None:
    case = make_case()
    assert grade(case, way("combined", "verified")).right
    assert grade(case, way("combined", "rejected", failed=["tests_not_weakened"])).right
    assert not grade(case, way("combined", "rejected", failed=["no_regressions"])).right
    assert not grade(case, way("combined", "rejected", failed=["tests_not_weakened", "lint"])).right


def test_totals_count_false_verified_and_the_median_cold_build() -> None:
    case = make_case()
    rows = {
        "one": [(r, grade(case, r)) for r in (way("fix", "rejected"), way("noop", "verified"))],
        "two": [(r, grade(case, r)) for r in (way("noop", "rejected", failed=["reproduced"]),)],
    }
    t = totals(rows, {"one": 10.0, "two": 30.0, "three": 0.0})
    assert (t.cases, t.verdicts, t.right, t.false_verified) == (2, 3, 1, 1)
    assert t.median_cold_build_s == 20.0
    assert t.right_percent == 33.3


def test_the_report_names_every_miss_with_its_class() -> None:
    case = make_case(miss_classes={"fix": "unstable parametrize ids"})
    results = {
        case.id: {
            "bare": {"fail_to_pass": case.fail_to_pass},
            "cold_build_s": 42.0,
            "ways": {
                "fix": way("fix", "rejected").model_dump() | {"summary": "rejected: `flaky`"},
                "noop": way("noop", "rejected", failed=["reproduced"]).model_dump(),
                "combined": way("combined", "verified").model_dump(),
            },
        }
    }
    text = render([case, make_case(id="other-0002")], results)
    assert "verdicts: 3, right: 2 (66.7 %)" in text
    assert "- 1 verdict(s): unstable parametrize ids" in text
    assert (
        "**demo-0001** · fix (fix not verified (rejected)) — class: unstable parametrize ids."
        in text
    )
    assert "other-0002: not run yet" in text
    assert "median cold environment build: 42.0 s" in text


def test_an_old_pytest_on_a_new_python_is_classed_from_the_verdicts_versions() -> None:
    case = make_case(miss_classes={"noop": "hand-made class"})
    old = WayResult.model_validate(
        {"way": "fix", "status": "error", "python": "3.11.2", "tools": {"pytest": "6.2.4"}}
    )
    assert miss_class(case, old).startswith("7, one Python for every era (pytest < 6.2.5")
    fine = old.model_copy(update={"tools": {"pytest": "6.2.5"}})
    assert miss_class(case, fine) == "unclassified"
    rejected = old.model_copy(update={"status": "rejected"})
    assert miss_class(case, rejected) == "unclassified"
    assert miss_class(case, old.model_copy(update={"way": "noop"})) == "hand-made class"


def test_version_files_of_hatch_vcs_and_setuptools_scm_are_found() -> None:
    text = """
[tool.hatch.build.hooks.vcs]
version-file = "src/humanize/_version.py"
[tool.setuptools_scm]
write_to = "src/pluggy/_version.py"
version_file = "../outside.py"
"""
    assert generated_version_files(text) == ["src/humanize/_version.py", "src/pluggy/_version.py"]
    assert generated_version_files("not toml [") == []
    assert generated_version_files("[project]\nname = 'x'\n") == []


def test_a_dropped_case_quotes_the_collection_error_or_says_the_tests_passed() -> None:
    from run import drop_reason

    log = (
        "ERROR test_six.py - AttributeError: module 'py' has no attribute 'test'\n"
        "!!!!!!!!!!!!!!!!!!!! Interrupted: 1 error during collection !!!!!!!!!!!!!!!!!!!!\n"
        "2 warnings, 1 error in 11.23s\n"
    )
    assert "AttributeError: module 'py' has no attribute 'test'" in drop_reason(log)
    assert drop_reason("....\n4 passed in 1.59s\n") == (
        "bare: the test part passes without the source part"
    )
