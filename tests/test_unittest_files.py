"""Suites kept in files only unittest discovery finds (``test.py``, ``tests.py``).

pytest's default ``python_files`` is ``test_*.py *_test.py``; unittest discovers
``test*.py``. A project whose TestCases live in ``test.py`` collected nothing, and every
candidate, right or not, ended ``error``. The decision is pure (names, config texts and
sources in); the end-to-end cases run a real repository through the real engine.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from test_pipeline import (
    FIXED_OPS,
    OPS,
    PROJECT,
    Project,
    Verify,
    validated,
)

from runner.core.paths import is_test_path
from runner.core.testfiles import (
    UnittestFiles,
    configures_python_files,
    defines_tests,
    only_unittest_finds,
)
from runner.models import FixJob, SuiteRun, Verdict
from runner.verify.pipeline import Runtime, verify
from runner.verify.testfiles import collect_args, find_unittest_files

UNITTEST_SUITE = """\
import unittest

from calc import add, mean


class CalcTest(unittest.TestCase):
    def test_add(self):
        self.assertEqual(add(2, 3), 5)

    def test_mean(self):
        self.assertEqual(mean([1, 2, 3, 4]), 2.5)
"""
# Test code may import pytest's internals (here a module pytest loads only on demand):
# from test.py that is no reach of the tree's code into the harness (the plugin's alert).
REGRESSION_METHOD = """
    def test_mean_of_empty_is_zero(self):
        self.assertEqual(mean([]), 0.0)
        self.assertTrue(callable(pytester_assertions.assert_outcomes))
"""
SUITE_WITH_REGRESSION = (
    UNITTEST_SUITE.replace(
        "import unittest\n", "import unittest\n\nfrom _pytest import pytester_assertions\n"
    )
    + REGRESSION_METHOD
)
REGRESSION = "test.py::CalcTest::test_mean_of_empty_is_zero"
# werkzeug's test.py is its test client, jinja's tests.py its template tests: source.
CLIENT = "class Client:\n    def open(self, path):\n        return path\n"
TEMPLATE_TESTS = "def test_odd(value):\n    return value % 2 == 1\n"


# --------------------------------------------------------------------------- the decision


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("test.py", True),
        ("tests.py", True),
        ("testing.py", True),
        ("test_calc.py", False),  # pytest's default already collects these
        ("calc_test.py", False),
        ("Test.py", False),  # unittest's fnmatch is case-sensitive on POSIX
        ("test-calc.py", False),  # not an importable module name
        ("conftest.py", False),
        ("test.txt", False),
    ],
)
def test_only_names_unittest_finds_and_pytest_skips_are_candidates(
    name: str, expected: bool
) -> None:
    assert only_unittest_finds(name) is expected


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        (UNITTEST_SUITE, True),
        (
            "from unittest import TestCase\n\nclass Calc(TestCase):\n    def test_x(self): pass\n",
            True,
        ),
        # a TestCase subclass of a base defined in the same file
        (
            "import unittest\nclass Base(unittest.IsolatedAsyncioTestCase):\n    pass\n"
            "class Calc(Base):\n    async def test_x(self): pass\n",
            True,
        ),
        ("class TestCalc:\n    def test_x(self):\n        assert True\n", True),
        ("def test_calc():\n    assert True\n", True),
        ("import pytest\n\ndef test_calc(tmp_path):\n    assert tmp_path\n", True),
        (CLIENT, False),
        (TEMPLATE_TESTS, False),
        # a TestCase base without tests of its own defines no test
        ("import unittest\n\nclass Base(unittest.TestCase):\n    def helper(self): pass\n", False),
        ("def broken(:\n", False),
    ],
    ids=[
        "testcase",
        "imported-testcase",
        "base-in-file",
        "pytest-class",
        "plain-function",
        "pytest-fixture-function",
        "werkzeug-client",
        "jinja-template-tests",
        "base-only",
        "syntax-error",
    ],
)
def test_a_file_defines_tests_by_its_syntax_tree(source: str, expected: bool) -> None:
    assert defines_tests(source) is expected


@pytest.mark.parametrize(
    ("name", "text", "expected"),
    [
        ("pytest.ini", "[pytest]\npython_files = check_*.py\n", True),
        ("pytest.ini", "[pytest]\naddopts = -q\n", False),
        ("tox.ini", "[pytest]\npython_files = *.py\n", True),
        ("tox.ini", "[testenv]\npython_files = x\n", False),
        ("setup.cfg", "[tool:pytest]\npython_files = t.py\n", True),
        ("setup.cfg", "[flake8]\nmax-line-length = 99\n", False),
        ("pyproject.toml", '[tool.pytest.ini_options]\npython_files = ["t.py"]\n', True),
        ("pyproject.toml", '[tool.pytest.ini_options]\ntestpaths = ["."]\n', False),
        ("pyproject.toml", '[tool.black]\npython_files = "x"\n', False),
    ],
)
def test_a_project_that_sets_python_files_is_recognised(
    name: str, text: str, expected: bool
) -> None:
    assert configures_python_files({name: text}) is expected


def test_decision_adds_test_files_anchored_and_keeps_a_projects_own_setting() -> None:
    found = [
        ("test.py", UNITTEST_SUITE),
        ("pkg/tests.py", "def test_x():\n    pass\n"),
        ("src/lib/test.py", CLIENT),
        ("src/lib/tests.py", TEMPLATE_TESTS),
        ("tests/test_calc.py", UNITTEST_SUITE),  # pytest's own pattern: nothing to add
    ]
    decision = UnittestFiles.decide([{}, {"setup.cfg": "[flake8]\n"}], found)
    assert decision.files == ("pkg/tests.py", "test.py")
    assert decision.python_files("/work") == [
        "test_*.py",
        "*_test.py",
        "/work/pkg/tests.py",
        "/work/test.py",
    ]
    globs = ["tests/**", *decision.test_globs()]
    # the root's test.py is a test; a source module of the same name below it is not
    assert is_test_path("test.py", globs) and is_test_path("pkg/tests.py", globs)
    assert not is_test_path("src/lib/test.py", globs)
    assert "test.py" in decision.note() and "python_files" in decision.note()
    # either tree configuring python_files keeps the project's own setting
    configured = UnittestFiles.decide([{}, {"pytest.ini": "[pytest]\npython_files=t.py\n"}], found)
    assert configured.configured and configured.files == () and configured.note() == ""


def test_tree_scan_reads_both_trees_and_skips_hidden_and_virtualenv_folders(
    tmp_path: Path,
) -> None:
    baseline, candidate = tmp_path / "baseline", tmp_path / "candidate"
    for tree in (baseline, candidate):
        (tree / ".hidden").mkdir(parents=True)
        (tree / ".hidden" / "test.py").write_text(UNITTEST_SUITE)
        (tree / "env").mkdir()
        (tree / "env" / "pyvenv.cfg").write_text("home = /usr/bin\n")
        (tree / "env" / "tests.py").write_text(UNITTEST_SUITE)
        (tree / "test.py").write_text(CLIENT)
    # only the candidate's version of test.py defines tests: the file counts
    (candidate / "test.py").write_text(UNITTEST_SUITE)
    decision = find_unittest_files([baseline, candidate])
    assert decision.files == ("test.py",)
    command = ["python", "-P", "-m", "pytest"]
    assert collect_args(decision, command, "/work") == [
        "-o",
        "python_files=test_*.py *_test.py /work/test.py",
    ]
    # a test command that sets python_files itself keeps it
    assert collect_args(decision, [*command, "-o", "python_files=x.py"], "/work") == []
    assert collect_args(UnittestFiles(), command, "/work") == []


# --------------------------------------------------------------------------- end to end

UNITTEST_PROJECT = {
    **{k: v for k, v in PROJECT.items() if not k.startswith("tests/")},
    "test.py": UNITTEST_SUITE,
}


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Project:
    """The calc project with its whole suite in a root test.py of unittest TestCases."""
    root = tmp_path_factory.mktemp("project")
    return Project.create(root, "calc", UNITTEST_PROJECT, "calc, tested with unittest")


@pytest.fixture(scope="module")
def runtime(module_runtime: Runtime) -> Runtime:
    return module_runtime


@pytest.fixture
def run(runtime: Runtime, project: Project) -> Verify:
    def go(patch: str, **job: object) -> Verdict:
        job.setdefault("repo", str(project.repo))
        verdict = verify(FixJob(patch=patch, **job), runtime)  # type: ignore[arg-type]
        return validated(verdict, runtime)

    return go


@pytest.mark.docker
def test_right_fix_to_a_test_py_suite_is_verified_with_its_test_named(
    run: Verify, project: Project, runtime: Runtime
) -> None:
    verdict = run(project.diff({"calc/ops.py": FIXED_OPS, "test.py": SUITE_WITH_REGRESSION}))
    assert verdict.status == "verified", verdict.summary
    assert verdict.tests.fail_to_pass == [REGRESSION]
    assert verdict.tests.baseline.total == verdict.tests.candidate.total == 3
    # test.py is the candidate's test part: judged as a test change, run in the baseline
    assert verdict.patch.test_files == ["test.py"]
    assert verdict.patch.source_files == ["calc/ops.py"]
    notes = verdict.images.environment.notes
    assert any("only unittest discovery finds" in n and "test.py" in n for n in notes), notes
    job = runtime.jobs_dir / verdict.job_id
    for side in ("baseline", "candidate"):
        assert SuiteRun.model_validate_json((job / f"{side}.json").read_text()).alerts == []


@pytest.mark.docker
def test_no_op_against_a_test_py_suite_is_rejected(run: Verify, project: Project) -> None:
    no_op = OPS.replace('"""Arithmetic helpers."""', '"""Arithmetic helpers (reviewed)."""')
    verdict = run(
        project.diff({"calc/ops.py": no_op}),
        test_patch=project.diff({"test.py": SUITE_WITH_REGRESSION}),
    )
    assert verdict.status == "rejected", verdict.summary
    assert verdict.tests.fail_to_pass == []
    assert verdict.tests.still_failing == [REGRESSION]
