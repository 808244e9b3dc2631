"""Patch intake: normalisation, parsing, safety refusals, limits and the test split."""

from __future__ import annotations

import difflib

import pytest
from unidiff import PatchSet

from runner.core.patch import (
    DEFAULT_TEST_GLOBS,
    is_test_path,
    normalise,
    parse_patch,
    patch_stats,
    split_test_part,
    weakening_findings,
)
from runner.errors import PatchError
from runner.models import SourceChange

MODIFY = """\
diff --git a/app/x.py b/app/x.py
index 1111111..2222222 100644
--- a/app/x.py
+++ b/app/x.py
@@ -1,4 +1,4 @@
 a
-b
+B
 c
 d
"""

NEW_TEST = """\
diff --git a/tests/unit/test_x.py b/tests/unit/test_x.py
new file mode 100644
index 0000000..3333333
--- /dev/null
+++ b/tests/unit/test_x.py
@@ -0,0 +1,2 @@
+def test_a():
+    assert 1 == 1
"""

DEEP_CONFTEST = """\
diff --git a/pkg/sub/conftest.py b/pkg/sub/conftest.py
index 1111111..2222222 100644
--- a/pkg/sub/conftest.py
+++ b/pkg/sub/conftest.py
@@ -1 +1,2 @@
 import os
+import sys
"""


def file_diff(path: str, old: str | None = None, body: str = "@@ -1 +1 @@\n-a\n+b\n") -> str:
    old = old or path
    return f"diff --git a/{old} b/{path}\n--- a/{old}\n+++ b/{path}\n{body}"


def diff_text(*, added: list[str] = (), removed: list[str] = (), path: str = "m.py") -> str:
    """A one-hunk diff of ``path`` with the given removed and added lines."""
    body = "".join(f"-{line}\n" for line in removed) + "".join(f"+{line}\n" for line in added)
    header = f"@@ -1,{len(removed) + 1} +1,{len(added) + 1} @@\n ctx\n"
    return file_diff(path, body=header + body)


def test_modified_file_records_line_numbers() -> None:
    change = parse_patch(MODIFY).files[0]
    assert (change.path, change.status, change.added_lines, change.removed_lines) == (
        "app/x.py",
        "modified",
        [2],
        [2],
    )


def test_crlf_is_normalised_to_lf() -> None:
    parsed = parse_patch(MODIFY.replace("\n", "\r\n"))
    assert "\r" not in parsed.text
    assert parsed.files[0].added_text == ["B"]


def test_missing_final_newline_is_added() -> None:
    parsed = parse_patch(MODIFY.rstrip("\n"))
    assert parsed.text.endswith(" d\n")
    assert parsed.files[0].added == 1


def test_leading_prose_is_dropped() -> None:
    parsed = parse_patch("Here is the fix --- it works:\n\n" + MODIFY)
    assert parsed.text.startswith("diff --git ")


def test_format_patch_signature_is_dropped() -> None:
    text = normalise(MODIFY + "-- \n2.39.2\n\n")
    assert text == MODIFY


def test_removed_dash_space_line_is_not_a_signature() -> None:
    diff = file_diff("m.md", body="@@ -1,2 +1 @@\n keep\n-- \n")
    assert parse_patch(diff).files[0].removed_text == ["- "]


def test_new_file_is_added_without_old_path() -> None:
    change = parse_patch(NEW_TEST).files[0]
    assert (change.status, change.old_path, change.new_mode) == ("added", None, "100644")


def test_deleted_file_status() -> None:
    diff = (
        "diff --git a/gone.txt b/gone.txt\ndeleted file mode 100644\n"
        "--- a/gone.txt\n+++ /dev/null\n@@ -1 +0,0 @@\n-bye\n"
    )
    assert parse_patch(diff).files[0].status == "deleted"


def test_pure_rename_has_both_paths() -> None:
    diff = (
        "diff --git a/old.py b/new.py\nsimilarity index 100%\n"
        "rename from old.py\nrename to new.py\n"
    )
    change = parse_patch(diff).files[0]
    assert (change.status, change.path, change.old_path) == ("renamed", "new.py", "old.py")


def test_symlink_mode_is_recorded() -> None:
    diff = (
        "diff --git a/link b/link\nnew file mode 120000\n--- /dev/null\n+++ b/link\n"
        "@@ -0,0 +1 @@\n+target.txt\n\\ No newline at end of file\n"
    )
    assert parse_patch(diff).files[0].is_symlink


def test_mode_change_without_hunks_is_accepted() -> None:
    diff = "diff --git a/run.sh b/run.sh\nold mode 100644\nnew mode 100755\n"
    change = parse_patch(diff).files[0]
    assert change.mode_changed and change.new_mode == "100755"


@pytest.mark.parametrize("text", ["", "   \n", "just some words\nno diff here\n"])
def test_not_a_diff_is_refused(text: str) -> None:
    with pytest.raises(PatchError) as info:
        parse_patch(text)
    assert info.value.check == "applies"


def test_truncated_hunk_is_refused() -> None:
    with pytest.raises(PatchError, match="not a valid unified diff"):
        parse_patch(MODIFY.replace(" d\n", ""))


@pytest.mark.parametrize(
    "diff",
    [
        "--- /etc/passwd\n+++ /etc/passwd\n@@ -1 +1 @@\n-a\n+b\n",
        file_diff("../outside.py"),
        file_diff("pkg/../../outside.py"),
        file_diff(".git/hooks/pre-commit"),
        file_diff("sub/.git/config"),
        file_diff("ok.py", old="../x.py"),
        'diff --git "a/bad\\001name" "b/bad\\001name"\n--- "a/bad\\001name"\n'
        '+++ "b/bad\\001name"\n@@ -1 +1 @@\n-a\n+b\n',
        "diff --git a/a.py b/a.py\nsimilarity index 90%\nrename from a.py\nrename to ../../a.py\n",
    ],
    ids=[
        "absolute",
        "dotdot",
        "inner-dotdot",
        "git-dir",
        "nested-git-dir",
        "rename-source",
        "control-char",
        "rename-to-header",
    ],
)
def test_unsafe_paths_are_refused(diff: str) -> None:
    with pytest.raises(PatchError):
        parse_patch(diff)


BINARY = (
    "diff --git a/img.png b/img.png\nindex 1111111..2222222 100644\n"
    "GIT binary patch\nliteral 1\nIcmZ?l000310RR91\n\n"
)


def test_binary_is_refused_by_default() -> None:
    with pytest.raises(PatchError, match="binary"):
        parse_patch(BINARY)


def test_binary_is_accepted_when_allowed() -> None:
    assert parse_patch(BINARY, allow_binary=True).files[0].is_binary


def test_too_many_bytes_is_a_scope_refusal() -> None:
    with pytest.raises(PatchError) as info:
        parse_patch(MODIFY, max_bytes=10)
    assert info.value.check == "scope"


def test_too_many_files_is_a_scope_refusal() -> None:
    with pytest.raises(PatchError, match="2 files") as info:
        parse_patch(MODIFY + NEW_TEST, max_files=1)
    assert info.value.check == "scope"


def test_too_many_lines_is_a_scope_refusal() -> None:
    with pytest.raises(PatchError, match="changes 4 lines") as info:
        parse_patch(MODIFY + NEW_TEST, max_lines=3)
    assert info.value.check == "scope"


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("tests/test_app.py", True),
        ("tests/helpers/data.json", True),
        ("src/pkg/tests/util.py", True),
        ("pkg/test_mod.py", True),
        ("pkg/mod_test.py", True),
        ("a/b/c/conftest.py", True),
        ("app/testing.py", False),
        ("app/contest.py", False),
        ("setup.py", False),
    ],
)
def test_is_test_path_default_globs(path: str, expected: bool) -> None:
    assert is_test_path(path) is expected


def test_is_test_path_custom_globs() -> None:
    assert is_test_path("spec/x.py", ["spec/**"]) and not is_test_path("tests/x.py", ["spec/**"])


def test_split_separates_test_and_source_parts() -> None:
    text = MODIFY + NEW_TEST + DEEP_CONFTEST
    test_part, source_part = split_test_part(parse_patch(text), text)
    assert source_part == MODIFY
    assert test_part == NEW_TEST + DEEP_CONFTEST


def test_split_parts_are_valid_diffs() -> None:
    text = NEW_TEST + MODIFY
    test_part, source_part = split_test_part(parse_patch(text), text)
    assert [f.path for f in PatchSet(test_part)] == ["tests/unit/test_x.py"]
    assert [f.path for f in PatchSet(source_part)] == ["app/x.py"]


def test_split_without_tests_gives_empty_test_part() -> None:
    assert split_test_part(parse_patch(MODIFY), MODIFY) == ("", MODIFY)


def test_split_keeps_plain_diffs_faithful() -> None:
    plain = "--- a/tests/test_q.py\n+++ b/tests/test_q.py\n@@ -1 +1 @@\n-x\n+y\n"
    text = plain + "--- a/q.py\n+++ b/q.py\n@@ -1 +1 @@\n-x\n+y\n"
    test_part, source_part = split_test_part(parse_patch(text), text)
    assert test_part == plain and source_part.startswith("--- a/q.py")


# --------------------------------------------------------------------------- weakening


def findings_for(diff: str, test_patch: str | None = None) -> list[str]:
    parsed_test = parse_patch(test_patch) if test_patch else None
    return weakening_findings(parse_patch(diff), parsed_test)


def test_adding_a_new_test_is_not_weakening() -> None:
    assert findings_for(NEW_TEST) == []


def test_editing_a_test_body_keeping_asserts_is_fine() -> None:
    diff = diff_text(
        removed=["    assert f(1) == 2"],
        added=["    x = 1", "    assert f(x) == 3"],
        path="tests/test_f.py",
    )
    assert findings_for(diff) == []


def test_removing_an_assert_is_weakening() -> None:
    diff = diff_text(removed=["    assert f(1) == 2"], added=["    f(1)"], path="tests/test_f.py")
    assert findings_for(diff) == ["removed 1 assert(s) in tests/test_f.py"]


def test_replacing_an_assert_with_assert_true_is_weakening() -> None:
    diff = diff_text(
        removed=["    assert f(1) == 2"], added=["    assert True"], path="tests/t_test.py"
    )
    assert findings_for(diff) == ["removed 1 assert(s) in tests/t_test.py"]


def test_removing_pytest_raises_is_weakening() -> None:
    diff = diff_text(removed=["    with pytest.raises(ValueError):"], path="tests/test_f.py")
    assert "removed 1 assert(s)" in findings_for(diff)[0]


def test_removing_a_test_function_is_weakening() -> None:
    diff = diff_text(removed=["def test_old():", "    pass"], path="tests/test_f.py")
    assert findings_for(diff) == ["removes or renames test test_old in tests/test_f.py"]


def test_renaming_a_test_function_is_weakening() -> None:
    diff = diff_text(
        removed=["def test_old():"], added=["def helper_old():"], path="tests/test_f.py"
    )
    assert "removes or renames test test_old" in findings_for(diff)[0]


def test_moving_a_test_within_the_file_is_fine() -> None:
    diff = diff_text(
        removed=["def test_old(x):"], added=["def test_old(x, y):"], path="tests/test_f.py"
    )
    assert findings_for(diff) == []


def test_deleting_a_test_file_is_weakening() -> None:
    diff = (
        "diff --git a/tests/test_f.py b/tests/test_f.py\ndeleted file mode 100644\n"
        "--- a/tests/test_f.py\n+++ /dev/null\n@@ -1 +0,0 @@\n-x = 1\n"
    )
    assert findings_for(diff) == ["deletes test file tests/test_f.py"]


def test_renaming_a_test_file_is_weakening() -> None:
    diff = (
        "diff --git a/tests/test_a.py b/tests/b.txt\n"
        "rename from tests/test_a.py\nrename to tests/b.txt\n"
    )
    assert findings_for(diff) == ["renames test file tests/test_a.py to tests/b.txt"]


@pytest.mark.parametrize(
    "line",
    [
        "@pytest.mark.skip(reason='later')",
        "@pytest.mark.skipif(True, reason='x')",
        "@pytest.mark.xfail",
        "    pytest.skip('no')",
        "@unittest.skip('no')",
    ],
)
def test_adding_skip_markers_is_weakening(line: str) -> None:
    assert "adds skip/xfail" in findings_for(diff_text(added=[line], path="tests/test_f.py"))[0]


def test_noqa_is_lint_evidence_not_weakening() -> None:
    # comments that silence flake8 are judged by the lint check, by the codes they hide
    assert not findings_for(diff_text(added=["import os  # NOQA: F401"], path="app/m.py"))


def test_touching_the_job_test_patch_files_is_weakening() -> None:
    findings = findings_for(NEW_TEST.replace("assert 1 == 1", "assert 2 == 2"), NEW_TEST)
    assert findings == ["touches tests/unit/test_x.py from the job's test patch"]


@pytest.mark.parametrize(
    "path",
    [
        "conftest.py",
        "pkg/conftest.py",
        "pytest.ini",
        "tox.ini",
        "setup.cfg",
        "sitecustomize.py",
        "usercustomize.py",
        "site-packages/evil.pth",
    ],
)
def test_harness_files_are_weakening(path: str) -> None:
    assert any(
        "harness" in f or "start-up" in f
        for f in findings_for(diff_text(added=["x = 1"], path=path))
    )


def test_pyproject_pytest_section_is_weakening() -> None:
    diff = file_diff(
        "pyproject.toml",
        body="@@ -10 +10 @@ [tool.pytest.ini_options]\n"
        '-addopts = "-ra"\n+addopts = "-ra -k not_slow"\n',
    )
    assert findings_for(diff) == ["pyproject.toml: changes pytest configuration"]


def test_pyproject_other_sections_are_fine() -> None:
    diff = file_diff(
        "pyproject.toml", body='@@ -3,1 +3,1 @@ [project]\n-version = "1"\n+version = "2"\n'
    )
    assert findings_for(diff) == []


def test_plugin_entry_point_is_weakening() -> None:
    diff = diff_text(added=['pytest11 = ["evil = pkg.evil"]'], path="setup.py")
    assert findings_for(diff) == ["setup.py: adds a pytest plugin, hook or entry point"]


def test_source_importing_pytest_internals_is_weakening() -> None:
    diff = diff_text(added=["from _pytest.runner import CallInfo"], path="app/m.py")
    assert findings_for(diff) == ["app/m.py: source code imports pytest or its internals"]


def test_source_import_outside_pytest_is_fine() -> None:
    assert findings_for(diff_text(added=["import pytz"], path="app/m.py")) == []


def test_patch_stats_splits_test_and_source_files() -> None:
    stats = patch_stats(parse_patch(MODIFY + NEW_TEST), "clean")
    assert (stats.files, stats.added, stats.removed) == (2, 3, 1)
    assert (stats.test_files, stats.source_files) == (["tests/unit/test_x.py"], ["app/x.py"])


# --------------------------------------------------------------------------- asserts, structurally

TEST_MODULE = """\
from calc import mean, parse


def test_mean():
    assert mean([1, 2, 3, 4]) == 2.5


def test_parse():
    result = parse("5")
    assert result == 5
    assert isinstance(result, int)
"""

SOURCE_BEFORE = "def parse(text):\n    return int(text)\n"


def weakened(after: str, source_after: str = SOURCE_BEFORE, before: str = TEST_MODULE) -> list[str]:
    """weakening_findings on a real unified diff of a test file (and the source), texts given."""
    texts = {"tests/test_calc.py": (before, after), "calc/ops.py": (SOURCE_BEFORE, source_after)}
    diff = ""
    for path, (old, new) in texts.items():
        if old != new:
            lines = difflib.unified_diff(
                old.splitlines(keepends=True),
                new.splitlines(keepends=True),
                f"a/{path}",
                f"b/{path}",
            )
            diff += f"diff --git a/{path} b/{path}\n" + "".join(lines)
    sources = [SourceChange(path=p, before=old, after=new) for p, (old, new) in texts.items()]
    return weakening_findings(parse_patch(diff), None, DEFAULT_TEST_GLOBS, sources)


def test_added_disjunction_is_weakening_though_the_assert_count_stays() -> None:
    after = TEST_MODULE.replace(
        "    assert result == 5\n", "    assert result == 5 or result == -1\n"
    )
    (finding,) = weakened(after)
    assert "tests/test_calc.py::test_parse" in finding and "adds a disjunction" in finding


@pytest.mark.parametrize(
    ("new", "loosened"),
    [
        ("assert result >= 5", ">="),
        ("assert result in (5, -1)", "in"),
        ("assert result is not None", "is not"),
        ("assert result != 4", "!="),
    ],
)
def test_loosened_comparison_is_weakening(new: str, loosened: str) -> None:
    (finding,) = weakened(TEST_MODULE.replace("    assert result == 5\n", f"    {new}\n"))
    assert f"loosens an exact comparison to `{loosened}`" in finding


def test_comparison_turned_truth_test_is_weakening() -> None:
    (finding,) = weakened(TEST_MODULE.replace("    assert result == 5\n", "    assert result\n"))
    assert "replaces the comparison with a truth test" in finding


def test_expected_literal_changed_without_the_source_is_weakening() -> None:
    (finding,) = weakened(TEST_MODULE.replace("== 2.5", "== 2.0"))
    assert "changes the expected value from 2.5 to 2.0" in finding


def test_expected_literal_the_source_change_introduces_is_fine() -> None:
    source = SOURCE_BEFORE.replace("return int(text)", "return int(text) if text else 0")
    after = TEST_MODULE.replace('parse("5")', 'parse("")').replace("== 5\n", "== 0\n")
    assert weakened(after, source_after=source) == []


def test_removed_assert_in_a_kept_test_is_weakening() -> None:
    (finding,) = weakened(TEST_MODULE.replace("    assert isinstance(result, int)\n", ""))
    assert "removes `assert isinstance(result, int)`" in finding


def test_rewritten_but_equally_strict_asserts_are_fine() -> None:
    after = TEST_MODULE.replace(
        "    assert result == 5\n", "    expected = 5\n    assert result == expected\n"
    ).replace("assert mean([1, 2, 3, 4]) == 2.5", "assert mean([1, 2, 3, 4]) == pytest.approx(2.5)")
    assert weakened(after) == []


def test_stronger_asserts_are_fine() -> None:
    after = TEST_MODULE.replace(
        "    assert result == 5\n", "    assert result == 5\n    assert parse(' 5 ') == 5\n"
    )
    assert weakened(after) == []


# ------------------------------------------- skip markers: existing tests versus new ones

NEW_SKIPPED_TEST = """

@pytest.mark.skipif(sys.platform == "win32", reason="no flock on windows")
def test_flock():
    pytest.importorskip("fcntl")
    assert parse("7") == 7
"""


def test_skip_marker_on_a_test_the_change_adds_is_not_weakening() -> None:
    assert weakened(TEST_MODULE + NEW_SKIPPED_TEST) == []


def test_skip_marker_added_to_an_existing_test_is_weakening() -> None:
    after = TEST_MODULE.replace("def test_parse():", "@pytest.mark.skip\ndef test_parse():")
    (finding,) = weakened(after)
    assert "adds skip/xfail" in finding and "pytest.mark.skip" in finding


def test_skip_call_inside_an_existing_test_is_weakening() -> None:
    after = TEST_MODULE.replace(
        '    result = parse("5")\n', '    pytest.skip("later")\n    result = parse("5")\n'
    )
    assert any("adds skip/xfail" in f for f in weakened(after))


def test_module_level_skip_in_an_existing_file_is_weakening() -> None:
    after = TEST_MODULE + '\npytestmark = pytest.mark.skip(reason="later")\n'
    (finding,) = weakened(after)
    assert "adds skip/xfail" in finding


def test_skip_marker_on_an_existing_class_but_not_on_its_new_method() -> None:
    before = (
        TEST_MODULE
        + "\n\nclass TestParse:\n    def test_one(self):\n        assert parse('1') == 1\n"
    )
    new_method = (
        "\n    @pytest.mark.xfail\n    def test_two(self):\n        assert parse('2') == 2\n"
    )
    assert weakened(before + new_method, before=before) == []
    on_class = before.replace("class TestParse:", "@pytest.mark.xfail\nclass TestParse:")
    (finding,) = weakened(on_class, before=before)
    assert "pytest.mark.xfail" in finding
