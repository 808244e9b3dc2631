"""verify-patch end to end: real engine, real git repositories, real candidate diffs.

One tiny pure-Python project (``calc``, whose ``mean([])`` divides by zero) is made a
git repository once per module; every candidate is a real ``git diff`` taken in a
scratch clone. All tests share one state directory, so the mirror, the wheel cache,
the environment image and the baseline cache are built once and reused. Every
verdict is validated against the published JSON Schema.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import docker
import jsonschema
import pytest
from conftest import TEST_INSTANCE, make_settings

from runner.config import Settings
from runner.environments.images import BaseImage
from runner.models import Check, FixJob, Verdict
from runner.verify.pipeline import Runtime, verify

pytestmark = pytest.mark.docker

REPO_ROOT = Path(__file__).resolve().parent.parent
SCHEMA = json.loads((REPO_ROOT / "docs" / "verdict.schema.json").read_text(encoding="utf-8"))
VERIFY_PATCH = Path(sys.executable).parent / "verify-patch"
# Recent, so the as-of-commit resolution would find current tools if nothing were pinned.
COMMIT_DATE = "2026-11-01T12:00:00+00:00"
REGRESSION = "tests/test_calc.py::test_mean_of_empty_is_zero"

# --------------------------------------------------------------------------- the project

OPS = '''\
"""Arithmetic helpers."""


def add(a, b):
    """Sum of a and b."""
    return a + b


def subtract(a, b):
    """Difference a - b."""
    return a - b


def mean(values):
    """Arithmetic mean of values; 0.0 for an empty sequence."""
    total = sum(values)
    return total / len(values)
'''

TESTS = """\
from calc import add, mean, subtract


def test_add():
    assert add(2, 3) == 5


def test_subtract():
    assert subtract(5, 3) == 2


def test_mean(numbers):
    assert mean(numbers) == 2.5
"""

PROJECT = {
    "calc/__init__.py": '"""A tiny calculator."""\n\nfrom calc.ops import add, mean, subtract\n\n'
    '__all__ = ["add", "mean", "subtract"]\n',
    "calc/ops.py": OPS,
    "tests/conftest.py": "import pytest\n\n\n@pytest.fixture\ndef numbers():\n"
    "    return [1, 2, 3, 4]\n",
    "tests/test_calc.py": TESTS,
    "requirements-test.txt": "pytest==8.3.5\nflake8==7.1.2\n",
    ".flake8": "[flake8]\nmax-line-length = 100\n",  # a project that lints with flake8
}

# The right fix, its regression test, and pieces hostile candidates are built from.
FIXED_OPS = OPS.replace(
    "    total = sum(values)\n", "    if not values:\n        return 0.0\n    total = sum(values)\n"
)
REGRESSION_TEST = "\n\ndef test_mean_of_empty_is_zero():\n    assert mean([]) == 0.0\n"
TESTS_WITH_REGRESSION = TESTS + REGRESSION_TEST
RIGHT_FIX = {"calc/ops.py": FIXED_OPS, "tests/test_calc.py": TESTS_WITH_REGRESSION}
KNOWN_FAILURE = "tests/test_known.py::test_float_sum_is_exact"


@dataclass(frozen=True)
class Symlink:
    """A symlink to put in a candidate's tree."""

    target: str


Content = str | bytes | Symlink | None  # None deletes the file

GIT_ENV = {
    "GIT_AUTHOR_NAME": "Test",
    "GIT_AUTHOR_EMAIL": "test@example.invalid",
    "GIT_AUTHOR_DATE": COMMIT_DATE,
    "GIT_COMMITTER_NAME": "Test",
    "GIT_COMMITTER_EMAIL": "test@example.invalid",
    "GIT_COMMITTER_DATE": COMMIT_DATE,
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_CONFIG_GLOBAL": os.devnull,
}


def git(cwd: Path, *args: str) -> str:
    """The test's own git, with a fixed identity and date and no user configuration."""
    proc = subprocess.run(
        ["git", "-c", "safe.directory=*", "-c", "init.defaultBranch=main", *args],
        cwd=cwd,
        env={**os.environ, **GIT_ENV},
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, f"git {' '.join(args)}: {proc.stderr}"
    return proc.stdout


def write(tree: Path, files: dict[str, Content]) -> None:
    for name, content in files.items():
        path = tree / name
        if path.is_symlink() or path.is_file():
            path.unlink()
        if content is None:
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, Symlink):
            path.symlink_to(content.target)
        elif isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")


def commit(repo: Path, files: dict[str, Content], message: str) -> str:
    write(repo, files)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", message)
    return git(repo, "rev-parse", "HEAD").strip()


@dataclass
class Project:
    """The project's repository and a scratch clone that turns edits into real diffs."""

    repo: Path
    scratch: Path

    @classmethod
    def create(cls, root: Path, name: str, files: dict[str, Content], message: str) -> Project:
        """A new repository under ``root`` with one commit of ``files``, and its scratch clone."""
        repo = root / name
        repo.mkdir()
        git(repo, "init", "-q")
        commit(repo, files, message)
        scratch = root / "scratch"
        git(root, "clone", "-q", str(repo), str(scratch))
        return cls(repo=repo, scratch=scratch)

    def diff(
        self, files: dict[str, Content], base: str = "main", over: dict[str, Content] | None = None
    ) -> str:
        """``git diff`` of ``files`` written over ``base``, as a candidate would send it.

        ``over`` is first committed in the scratch clone only: a diff taken against a
        tree the project never had (its preimage blobs are unknown to the runner).
        """
        git(self.scratch, "checkout", "-q", "-f", "--detach", f"origin/{base}")
        git(self.scratch, "clean", "-q", "-fdx")
        if over:
            commit(self.scratch, over, "a tree only the candidate's author had")
        write(self.scratch, files)
        git(self.scratch, "add", "-A")
        text = git(self.scratch, "diff", "--cached", "--binary")
        git(self.scratch, "reset", "-q", "--hard")
        assert text, "the edit changed nothing"
        return text


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Project:
    """main: the buggy project; known-failure: main plus a test that already fails;
    fixed: main with the right fix and its regression test committed."""
    root = tmp_path_factory.mktemp("project")
    repo = root / "calc"
    repo.mkdir()
    git(repo, "init", "-q")
    commit(repo, PROJECT, "calc with a bug in mean()")
    git(repo, "checkout", "-q", "-b", "known-failure")
    known = "from calc import add\n\n\ndef test_float_sum_is_exact():\n"
    known += "    assert add(0.1, 0.2) == 0.3\n"
    commit(repo, {"tests/test_known.py": known}, "a test that has always failed")
    git(repo, "checkout", "-q", "main")
    git(repo, "branch", "-q", "fixed")
    git(repo, "checkout", "-q", "fixed")
    commit(repo, RIGHT_FIX, "fix mean() of an empty list")
    git(repo, "checkout", "-q", "main")
    scratch = root / "scratch"
    git(root, "clone", "-q", str(repo), str(scratch))
    return Project(repo=repo, scratch=scratch)


# --------------------------------------------------------------------------- the runner


# The session's owner label plus a suffix: conftest's autouse check still finds (and
# fails on) any container this module's runner or CLI leaves behind.
INSTANCE = f"{TEST_INSTANCE}-pipeline"


@pytest.fixture(scope="module")
def module_settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """As conftest's ``settings``, but one state directory for the whole module."""
    return make_settings(tmp_path_factory.mktemp("state"), INSTANCE)


@pytest.fixture(scope="module")
def runtime(
    module_settings: Settings, base_image: BaseImage, docker_client: docker.DockerClient
) -> Runtime:
    return Runtime.start(module_settings)


def _policy_file(root: Path, name: str, **changes: object) -> str:
    """policies/default.toml with some keys changed ("limits.test_timeout_s" = section.key)."""
    data = tomllib.loads((REPO_ROOT / "policies" / "default.toml").read_text(encoding="utf-8"))
    for dotted, value in changes.items():
        *sections, key = dotted.split(".")
        node = data
        for section in sections:
            node = node[section]
        node[key] = value
    data["name"] = name
    path = root / f"{name}.toml"
    path.write_text(_toml(data), encoding="utf-8")
    return str(path)


def _toml(data: dict[str, object]) -> str:
    tables = {k: v for k, v in data.items() if isinstance(v, dict)}
    lines = [f"{k} = {json.dumps(v)}" for k, v in data.items() if k not in tables]
    for name, table in tables.items():
        lines.append(f"\n[{name}]")
        lines += [f"{k} = {json.dumps(v)}" for k, v in table.items()]
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def hostile_policy(tmp_path_factory: pytest.TempPathFactory) -> str:
    """Default rules with tight limits, so containment cases end in seconds."""
    return _policy_file(
        tmp_path_factory.mktemp("policies"),
        "hostile",
        **{
            "limits.test_timeout_s": 60,
            "limits.memory_mb": 512,
            "limits.pids": 64,
            # the demo suite runs in a second or two: its learned deadline is the floor's
            "limits.deadline_floor_s": 5,
        },
    )


Verify = Callable[..., Verdict]


@pytest.fixture
def run(runtime: Runtime, project: Project) -> Verify:
    """Verify a candidate against the project; the verdict is checked against the schema."""

    def go(patch: str, **job: object) -> Verdict:
        job.setdefault("repo", str(project.repo))
        verdict = verify(FixJob(patch=patch, **job), runtime)  # type: ignore[arg-type]
        return validated(verdict, runtime)

    return go


def validated(verdict: Verdict, runtime: Runtime) -> Verdict:
    jsonschema.validate(json.loads(verdict.model_dump_json()), SCHEMA)
    written = runtime.jobs_dir / verdict.job_id / "verdict.json"
    jsonschema.validate(json.loads(written.read_text(encoding="utf-8")), SCHEMA)
    return verdict


def checks(verdict: Verdict) -> dict[str, Check]:
    return {c.name: c for c in verdict.checks}


def failed(verdict: Verdict) -> set[str]:
    """Names of the required checks the candidate failed."""
    return {c.name for c in verdict.checks if c.required and not c.passed}


def assert_verified(verdict: Verdict, fixed: list[str]) -> None:
    assert verdict.status == "verified", verdict.summary
    assert verdict.tests.fail_to_pass == fixed
    assert verdict.tests.pass_to_fail == []


# --------------------------------------------------------------------------- verified


def test_right_fix_with_its_regression_test_is_verified(run: Verify, project: Project) -> None:
    verdict = run(project.diff(RIGHT_FIX))
    assert_verified(verdict, [REGRESSION])
    assert verdict.patch.applied_with == "clean"
    assert verdict.patch.test_files == ["tests/test_calc.py"]
    assert verdict.patch.source_files == ["calc/ops.py"]
    assert all(c.passed for c in verdict.checks)
    assert verdict.tests.baseline.failed == 1 and verdict.tests.candidate.passed == 4
    assert verdict.images.environment.tools.get("pytest") == "8.3.5"


@pytest.mark.parametrize(
    "mangle",
    [lambda d: d.replace("\n", "\r\n"), lambda d: d.rstrip("\n")],
    ids=["crlf", "no-final-newline"],
)
def test_model_written_line_endings_still_apply(
    run: Verify, project: Project, mangle: Callable[[str], str]
) -> None:
    verdict = run(mangle(project.diff(RIGHT_FIX)))
    assert_verified(verdict, [REGRESSION])
    assert verdict.patch.applied_with == "clean"


def test_separate_test_patch_with_a_source_only_fix_is_verified(
    run: Verify, project: Project
) -> None:
    verdict = run(
        project.diff({"calc/ops.py": FIXED_OPS}),
        test_patch=project.diff({"tests/test_calc.py": TESTS_WITH_REGRESSION}),
    )
    assert_verified(verdict, [REGRESSION])
    assert verdict.patch.source_files == ["calc/ops.py"] and verdict.patch.test_files == []


def test_test_patch_with_a_no_op_source_candidate_is_rejected(
    run: Verify, project: Project
) -> None:
    no_op = OPS.replace('"""Arithmetic helpers."""', '"""Arithmetic helpers (reviewed)."""')
    verdict = run(
        project.diff({"calc/ops.py": no_op}),
        test_patch=project.diff({"tests/test_calc.py": TESTS_WITH_REGRESSION}),
    )
    assert verdict.status == "rejected"
    assert failed(verdict) == {"reproduced"}
    assert verdict.tests.fail_to_pass == []
    assert verdict.tests.still_failing == [REGRESSION]


def test_pre_existing_failure_stays_still_failing_and_does_not_block(
    run: Verify, project: Project
) -> None:
    verdict = run(project.diff(RIGHT_FIX, base="known-failure"), base="known-failure")
    assert_verified(verdict, [REGRESSION])
    assert verdict.tests.still_failing == [KNOWN_FAILURE]


def test_second_candidate_on_the_same_base_reuses_the_baseline(
    run: Verify, project: Project, runtime: Runtime
) -> None:
    # A test part no other test uses, so the first run really computes the baseline.
    test_part = TESTS + "\n\ndef test_mean_of_nothing():\n    assert mean(()) == 0.0\n"
    first = run(project.diff({"calc/ops.py": FIXED_OPS, "tests/test_calc.py": test_part}))
    other_fix = OPS.replace(
        "    return total / len(values)\n", "    return total / (len(values) or 1)\n"
    )
    second = run(project.diff({"calc/ops.py": other_fix, "tests/test_calc.py": test_part}))
    for verdict in (first, second):
        assert_verified(verdict, ["tests/test_calc.py::test_mean_of_nothing"])
    assert "baseline_cached" not in first.timings
    assert "baseline" in {log.phase for log in first.logs}
    assert second.timings["baseline_cached"] == 1.0
    assert second.timings["baseline"] == 0.0
    assert "baseline" not in {log.phase for log in second.logs}
    assert not (runtime.jobs_dir / second.job_id / "logs" / "baseline.log").exists()
    assert (runtime.jobs_dir / second.job_id / "logs" / "candidate.log").is_file()
    assert second.tests.baseline == first.tests.baseline


def _phases(verdict: Verdict) -> set[str]:
    return {log.phase for log in verdict.logs}


def test_later_candidate_reuses_baseline_reruns_and_lint_and_reruns_its_fix_early(
    run: Verify, project: Project
) -> None:
    # A test part of its own, so the first job computes baseline, re-runs and lint.
    test_part = (
        TESTS + "\n\ndef test_mean_of_one():\n    assert mean([]) == 0.0 and mean([2]) == 2\n"
    )
    first = run(project.diff({"calc/ops.py": FIXED_OPS, "tests/test_calc.py": test_part}))
    other_fix = OPS.replace(
        "    return total / len(values)\n", "    return total / (len(values) or 1)\n"
    )
    second = run(project.diff({"calc/ops.py": other_fix, "tests/test_calc.py": test_part}))
    for verdict in (first, second):
        assert_verified(verdict, ["tests/test_calc.py::test_mean_of_one"])
        assert verdict.tests.flaky == []
    assert {"baseline", "baseline-rerun", "candidate-rerun"} <= _phases(first)
    # The baseline, its re-runs and its flake8 findings come from the cache; the fix's
    # re-runs ran beside the suite, so no phase follows the comparison.
    assert _phases(second) == {"candidate", "lint", "candidate-rerun-early"}
    assert "reruns" not in second.timings
    assert second.lint == first.lint


FLAKY_FIX_TEST = """

def test_mean_of_nothing_flaky():
    import pathlib

    counter = pathlib.Path("/tmp/fixrunner-flaky-count")
    runs = int(counter.read_text()) + 1 if counter.exists() else 1
    counter.write_text(str(runs))
    assert mean([]) == 0.0
    assert runs % 2 == 1, "passes on the first run in a container, fails on the second"
"""


def test_flaky_fix_is_caught_by_early_reruns_too(run: Verify, project: Project) -> None:
    files = {"calc/ops.py": FIXED_OPS, "tests/test_calc.py": TESTS + FLAKY_FIX_TEST}
    flaky = ["tests/test_calc.py::test_mean_of_nothing_flaky"]
    first = run(project.diff(files))
    second = run(project.diff({**files, "calc/ops.py": FIXED_OPS + "\n# reviewed\n"}))
    assert "candidate-rerun-early" not in _phases(first)
    assert "candidate-rerun-early" in _phases(second)
    for verdict in (first, second):
        assert verdict.status == "rejected", verdict.summary
        assert verdict.tests.flaky == flaky
        assert verdict.tests.fail_to_pass == []


# --------------------------------------------------------------------------- refused at intake


def _refused(verdict: Verdict, *words: str) -> None:
    assert verdict.status == "rejected", verdict.summary
    assert verdict.patch.applied_with == "not_applied"
    applies = checks(verdict)["applies"]
    assert not applies.passed and applies.required
    for word in words:
        assert word in applies.detail, applies.detail
    assert verdict.logs == []  # nothing ran


def test_malformed_diff_is_rejected(run: Verify) -> None:
    _refused(run("Here is my fix: change mean() to return 0.0.\nThanks!\n"), "not a unified diff")


def test_corrupt_hunk_is_rejected(run: Verify) -> None:
    corrupt = "--- a/calc/ops.py\n+++ b/calc/ops.py\n@@ -16,3 +16,4 @@\n     total = sum(values)\n"
    _refused(run(corrupt), "not a valid unified diff", "Hunk is shorter than expected")


def test_path_traversal_is_rejected(run: Verify) -> None:
    diff = (
        "diff --git a/../x b/../x\nnew file mode 100644\n--- /dev/null\n+++ b/../x\n"
        "@@ -0,0 +1 @@\n+escaped\n"
    )
    _refused(run(diff), "../x", "'..'")


def test_git_hooks_path_is_rejected(run: Verify, tmp_path: Path) -> None:
    pwned = tmp_path / "pwned"
    diff = (
        "diff --git a/.git/hooks/post-checkout b/.git/hooks/post-checkout\n"
        "new file mode 100755\n--- /dev/null\n+++ b/.git/hooks/post-checkout\n"
        f"@@ -0,0 +1,2 @@\n+#!/bin/sh\n+touch {pwned}\n"
    )
    _refused(run(diff), ".git/")
    assert not pwned.exists()


def test_binary_hunk_is_rejected(run: Verify, project: Project) -> None:
    diff = project.diff({"calc/table.bin": bytes(range(256)) * 4})
    assert "GIT binary patch" in diff
    _refused(run(diff), "calc/table.bin", "binary")


# --------------------------------------------------------------------------- rejected after runs


def test_patch_that_does_not_apply_is_rejected_with_gits_reason(
    run: Verify, project: Project
) -> None:
    drifted = OPS.replace("return total / len(values)", "return total / float(len(values))")
    fix_there = drifted.replace(
        "    total = sum(values)\n",
        "    if not values:\n        return 0.0\n    total = sum(values)\n",
    )
    verdict = run(project.diff({"calc/ops.py": fix_there}, over={"calc/ops.py": drifted}))
    assert verdict.status == "rejected"
    assert verdict.patch.applied_with == "not_applied"
    detail = checks(verdict)["applies"].detail
    assert "does not apply" in detail
    assert "patch failed: calc/ops.py" in detail  # git's own words
    assert failed(verdict) == {"applies"}


def test_fix_without_a_failing_test_is_not_reproduced(run: Verify, project: Project) -> None:
    verdict = run(project.diff({"calc/ops.py": FIXED_OPS}))
    assert verdict.status == "rejected"
    assert failed(verdict) == {"reproduced"}
    assert checks(verdict)["reproduced"].detail == "no test went from failing to passing"
    assert verdict.tests.fail_to_pass == [] and verdict.tests.pass_to_fail == []


def test_fail_to_pass_id_that_passed_on_the_baseline_is_named(
    run: Verify, project: Project
) -> None:
    passing = "tests/test_calc.py::test_add"
    verdict = run(project.diff(RIGHT_FIX), fail_to_pass=[REGRESSION, passing])
    assert verdict.status == "rejected"
    assert failed(verdict) == {"reproduced"}
    detail = checks(verdict)["reproduced"].detail
    assert "did not reproduce" in detail
    assert f"{passing} (passed on the baseline" in detail
    assert REGRESSION not in detail
    assert verdict.tests.fail_to_pass == [REGRESSION]


def test_regression_is_rejected_naming_the_broken_test(run: Verify, project: Project) -> None:
    broken = FIXED_OPS.replace("return a - b", "return b - a")
    verdict = run(project.diff({**RIGHT_FIX, "calc/ops.py": broken}))
    assert verdict.status == "rejected"
    assert failed(verdict) == {"no_regressions"}
    assert verdict.tests.pass_to_fail == ["tests/test_calc.py::test_subtract"]
    assert verdict.tests.fail_to_pass == [REGRESSION]
    assert "tests/test_calc.py::test_subtract" in checks(verdict)["no_regressions"].detail


def test_new_unused_import_fails_lint(run: Verify, project: Project, runtime: Runtime) -> None:
    with_import = FIXED_OPS.replace(
        '"""Arithmetic helpers."""\n', '"""Arithmetic helpers."""\nimport os\n'
    )
    verdict = run(project.diff({**RIGHT_FIX, "calc/ops.py": with_import}))
    assert verdict.status == "rejected"
    assert failed(verdict) == {"lint"}
    blocking = [f for f in verdict.lint.new if f.blocking]
    assert [(f.path, f.line, f.code) for f in blocking] == [("calc/ops.py", 2, "F401")]
    assert "calc/ops.py:2 F401" in checks(verdict)["lint"].detail
    # flake8 writes its findings to a file in the results folder, not to stdout
    lint_log = runtime.jobs_dir / verdict.job_id / "logs" / "lint.log"
    assert "F401" not in lint_log.read_text(encoding="utf-8")


# A project that declares no lint rules, and one that declares ruff's (issue 17, class 9).
UNCONFIGURED = {k: v for k, v in PROJECT.items() if k != ".flake8"}
WITH_IMPORT = FIXED_OPS.replace(
    '"""Arithmetic helpers."""\n', '"""Arithmetic helpers."""\nimport os\n'
)
WITH_UNDEFINED = FIXED_OPS + "\n\ndef unused():\n    return missing_name\n"


@pytest.fixture(scope="module")
def lint_projects(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Project]:
    root = tmp_path_factory.mktemp("lint-rules")
    ruff = {**UNCONFIGURED, "ruff.toml": '[lint]\nselect = ["E", "F", "I"]\n'}
    (root / "none").mkdir()
    (root / "ruff").mkdir()
    return {
        "none": Project.create(root / "none", "calc", UNCONFIGURED, "no lint config"),
        "ruff": Project.create(root / "ruff", "calc", ruff, "ruff's rules"),
    }


def _lint_run(runtime: Runtime, project: Project, files: dict[str, Content]) -> Verdict:
    job = FixJob(patch=project.diff({**RIGHT_FIX, **files}), repo=str(project.repo))
    return validated(verify(job, runtime), runtime)


def test_without_lint_config_only_real_errors_block(
    runtime: Runtime, lint_projects: dict[str, Project]
) -> None:
    project = lint_projects["none"]
    verdict = _lint_run(runtime, project, {"calc/ops.py": WITH_IMPORT})
    assert verdict.status == "verified", verdict.summary
    assert [(f.code, f.blocking) for f in verdict.lint.new] == [("F401", False)]
    verdict = _lint_run(runtime, project, {"calc/ops.py": WITH_UNDEFINED})
    assert verdict.status == "rejected"
    assert failed(verdict) == {"lint"}
    assert [(f.code, f.blocking) for f in verdict.lint.new if f.blocking] == [("F821", True)]


def test_a_ruff_config_is_the_projects_lint_rules(
    runtime: Runtime, lint_projects: dict[str, Project]
) -> None:
    verdict = _lint_run(runtime, lint_projects["ruff"], {"calc/ops.py": WITH_IMPORT})
    assert verdict.status == "rejected"
    assert failed(verdict) == {"lint"}
    assert [(f.code, f.blocking) for f in verdict.lint.new] == [("F401", True)]


@pytest.mark.parametrize(
    ("path", "content"),
    [
        ("requirements-test.txt", PROJECT["requirements-test.txt"] + "requests==2.32.3\n"),
        (".github/workflows/x.yml", "on: push\njobs: {}\n"),
    ],
    ids=["dependency-file", "ci-config"],
)
def test_forbidden_path_fails_scope(run: Verify, project: Project, path: str, content: str) -> None:
    verdict = run(project.diff({**RIGHT_FIX, path: content}))
    assert verdict.status == "rejected"
    assert failed(verdict) == {"scope"}
    assert f"forbidden paths: {path}" in checks(verdict)["scope"].detail


WEAKENED = {
    "removes-an-assert": (
        {
            "tests/test_calc.py": TESTS_WITH_REGRESSION.replace(
                "    assert subtract(5, 3) == 2\n", "    subtract(5, 3)\n"
            )
        },
        "tests/test_calc.py::test_subtract: removes `assert subtract(5, 3) == 2`",
    ),
    "adds-a-skip-marker": (
        {
            "tests/test_calc.py": "import pytest\n\n"
            + TESTS_WITH_REGRESSION.replace(
                "def test_add():", "@pytest.mark.skip(reason='slow')\ndef test_add():"
            )
        },
        "tests/test_calc.py: adds skip/xfail",
    ),
    "edits-conftest": (
        {"tests/conftest.py": PROJECT["tests/conftest.py"].replace("[1, 2, 3, 4]", "[2, 3]")},
        "tests/conftest.py: changes the values fixture numbers provides",
    ),
}


@pytest.mark.parametrize("case", sorted(WEAKENED))
def test_weakened_tests_are_rejected(run: Verify, project: Project, case: str) -> None:
    extra, finding = WEAKENED[case]
    verdict = run(project.diff({**RIGHT_FIX, **extra}))
    assert verdict.status == "rejected"
    assert failed(verdict) == {"tests_not_weakened"}
    assert finding in checks(verdict)["tests_not_weakened"].detail


def test_already_applied_patch_is_reported_as_such(run: Verify, project: Project) -> None:
    # The fix is already in the base: the patch applies (as "already_applied"), but
    # nothing fails before it, so there is nothing it can be shown to fix.
    verdict = run(project.diff(RIGHT_FIX), base="fixed")
    assert verdict.status == "rejected"
    assert verdict.patch.applied_with == "already_applied"
    applies = checks(verdict)["applies"]
    assert applies.passed and "already_applied" in applies.detail
    assert failed(verdict) == {"reproduced"}
    assert verdict.tests.fail_to_pass == [] and verdict.tests.pass_to_fail == []


# --------------------------------------------------------------------------- hostile candidates


def assert_runner_survives(run: Verify, project: Project) -> None:
    """After a hostile job the same runtime still verifies the right fix."""
    assert_verified(run(project.diff(RIGHT_FIX)), [REGRESSION])


def hostile_mean(body: str) -> str:
    """ops.py whose mean() starts with ``body`` (indented four spaces)."""
    return OPS.replace(
        '    """Arithmetic mean of values; 0.0 for an empty sequence."""\n',
        '    """Arithmetic mean of values; 0.0 for an empty sequence."""\n' + body,
    )


def candidate_log(verdict: Verdict) -> str:
    log = next(log for log in verdict.logs if log.phase == "candidate")
    return log.head + log.tail


FORK_BOMB = """\
    import os
    import time

    while True:  # every child forks on, forever, and waits when the kernel refuses
        if os.fork() == 0:
            while True:
                try:
                    os.fork()
                except OSError:
                    time.sleep(1)
"""


def test_fork_bomb_is_stopped_at_the_process_limit(
    run: Verify, project: Project, hostile_policy: str
) -> None:
    candidate = {
        "calc/ops.py": hostile_mean(FORK_BOMB),
        "tests/test_calc.py": TESTS_WITH_REGRESSION,
    }
    verdict = run(project.diff(candidate), policy=hostile_policy)
    assert verdict.status == "rejected"
    assert "no_regressions" in failed(verdict)
    detail = checks(verdict)["no_regressions"].detail
    assert "hit the process limit (limits.pids = 64)" in detail
    assert verdict.deadlines is not None and verdict.deadlines.stopped == "process_limit"
    assert_runner_survives(run, project)


def test_memory_hog_is_oom_killed(run: Verify, project: Project, hostile_policy: str) -> None:
    hog = "    bytearray(2 * 2**30)  # four times the policy's memory limit\n"
    candidate = {"calc/ops.py": hostile_mean(hog), "tests/test_calc.py": TESTS_WITH_REGRESSION}
    verdict = run(project.diff(candidate), policy=hostile_policy)
    assert verdict.status == "rejected"
    assert "killed by the memory limit" in checks(verdict)["no_regressions"].detail
    assert_runner_survives(run, project)


def test_endless_loop_at_import_is_stopped_at_the_deadline_learned_from_the_baseline(
    run: Verify, project: Project, hostile_policy: str
) -> None:
    looping = FIXED_OPS + "\n\nwhile True:  # never finishes importing\n    pass\n"
    candidate = {"calc/ops.py": looping, "tests/test_calc.py": TESTS_WITH_REGRESSION}
    verdict = run(project.diff(candidate), policy=hostile_policy)
    assert verdict.status == "rejected"
    detail = checks(verdict)["no_regressions"].detail
    assert "the test run timed out at its learned deadline" in detail
    deadlines = verdict.deadlines
    assert deadlines is not None
    assert (deadlines.source, deadlines.stopped) == ("learned", "deadline")
    assert (deadlines.floor_s, deadlines.factor) == (5, 3)
    assert deadlines.baseline_s is not None
    learned = round(max(5, 3 * deadlines.baseline_s), 3)
    assert deadlines.suite_s == learned < 60
    assert f"{learned:g} s" in detail
    assert_runner_survives(run, project)


def test_a_passing_candidate_records_its_deadline_and_no_stop(
    run: Verify, project: Project
) -> None:
    verdict = run(project.diff(RIGHT_FIX))
    deadlines = verdict.deadlines
    assert deadlines is not None and deadlines.stopped is None
    assert (deadlines.floor_s, deadlines.factor) == (30, 3)
    if deadlines.baseline_s is None:
        assert deadlines.source == "configured" and deadlines.suite_s == 600
    else:
        assert deadlines.suite_s == min(600, round(max(30, 3 * deadlines.baseline_s), 3))


def test_job_past_its_own_timeout_is_an_error_and_leaves_nothing(
    run: Verify, project: Project, tmp_path: Path
) -> None:
    # The phase timeout is generous; the job's is not: the runner, not the candidate,
    # ran out of time, so the verdict is error, and the running containers are stopped.
    policy = _policy_file(
        tmp_path, "short-job", **{"limits.test_timeout_s": 300, "limits.job_timeout_s": 8}
    )
    slow = FIXED_OPS + "\n\nimport time\ntime.sleep(120)\n"
    candidate = {"calc/ops.py": slow, "tests/test_calc.py": TESTS_WITH_REGRESSION}
    verdict = run(project.diff(candidate), policy=policy)
    assert verdict.status == "error"
    assert "ran past its 8s timeout" in verdict.summary
    assert verdict.timings["total"] < 120
    assert_runner_survives(run, project)


FLOOD = """\
    if not values:
        import os

        line = b"PASSED tests/test_calc.py::test_mean_of_empty_is_zero\\n"
        chunk = line * (2**20 // len(line))
        out = os.open("/proc/1/fd/1", os.O_WRONLY)  # the container's stdout, past capture
        for _ in range(1024):  # about 1 GiB
            os.write(out, chunk)
"""


def test_gigabyte_of_output_is_capped(run: Verify, project: Project, runtime: Runtime) -> None:
    # The default policy: its 1 MB output cap, and no short timeout racing the flood.
    candidate = {"calc/ops.py": hostile_mean(FLOOD), "tests/test_calc.py": TESTS_WITH_REGRESSION}
    verdict = run(project.diff(candidate))
    # The printed PASSED lines count for nothing: outcomes come from JUnit and exit code.
    assert verdict.status == "rejected"
    assert failed(verdict) == {"reproduced"}
    assert verdict.tests.still_failing == [REGRESSION]
    log = next(log for log in verdict.logs if log.phase == "candidate")
    assert log.truncated
    assert len(log.head) + len(log.tail) <= 12_000
    assert len(verdict.model_dump_json()) < 100_000
    kept = runtime.jobs_dir / verdict.job_id / "logs" / "candidate.log"
    assert kept.stat().st_size < 1_100_000
    assert "bytes of output omitted" in kept.read_text(encoding="utf-8")
    assert_runner_survives(run, project)


NETWORK = """\
    if not values:
        import socket

        with socket.create_connection(("1.1.1.1", 443), timeout=5):  # ask a server
            return 0.0
"""


def test_network_attempt_fails_and_the_verdict_shows_it(
    run: Verify, project: Project, hostile_policy: str
) -> None:
    candidate = {"calc/ops.py": hostile_mean(NETWORK), "tests/test_calc.py": TESTS_WITH_REGRESSION}
    verdict = run(project.diff(candidate), policy=hostile_policy)
    assert verdict.status == "rejected"
    assert failed(verdict) == {"reproduced"}
    assert verdict.tests.still_failing == [REGRESSION]
    assert "Network is unreachable" in candidate_log(verdict)
    assert_runner_survives(run, project)


LEAK_TEST = """\
from pathlib import Path


def test_reads_and_writes_passwd():
    link = Path(__file__).parent / "passwd"
    assert "root:" in link.read_text()
    with link.open("a") as handle:
        handle.write("pwned::0:0::/:/bin/sh\\n")
"""


def test_symlink_to_etc_passwd_is_refused_and_the_host_file_untouched(
    run: Verify, project: Project
) -> None:
    before = hashlib.sha256(Path("/etc/passwd").read_bytes()).hexdigest()
    candidate = {
        **RIGHT_FIX,
        "tests/passwd": Symlink("/etc/passwd"),
        "tests/test_leak.py": LEAK_TEST,
    }
    diff = project.diff(candidate)
    assert "new file mode 120000" in diff
    verdict = run(diff)
    assert verdict.status == "rejected"
    assert failed(verdict) == {"applies"}
    assert "symlink to '/etc/passwd'" in checks(verdict)["applies"].detail
    assert hashlib.sha256(Path("/etc/passwd").read_bytes()).hexdigest() == before
    assert "pwned" not in Path("/etc/passwd").read_text()
    assert_runner_survives(run, project)


WIPE = """\
import shutil
from pathlib import Path

for _path in Path("/work").iterdir():  # the whole workspace, .git included
    if _path.is_dir() and not _path.is_symlink():
        shutil.rmtree(_path, ignore_errors=True)
    else:
        _path.unlink()
"""


def test_candidate_that_deletes_the_workspace_harms_only_its_own_copy(
    run: Verify, project: Project, hostile_policy: str, runtime: Runtime
) -> None:
    init = PROJECT["calc/__init__.py"] + WIPE
    candidate = {"calc/__init__.py": init, "tests/test_calc.py": TESTS_WITH_REGRESSION}
    verdict = run(project.diff(candidate), policy=hostile_policy)
    assert verdict.status == "rejected"
    assert "reproduced" in failed(verdict)
    assert git(project.repo, "status", "--porcelain") == ""
    assert (project.repo / "calc" / "ops.py").read_text(encoding="utf-8") == OPS
    assert not (runtime.jobs_dir / verdict.job_id / "trees").exists()
    assert_runner_survives(run, project)


# A forger: writes a JUnit file saying every test passed, where pytest was told to
# write it, then ends the process before pytest can overwrite it.
FORGE = """\
import os as _os
import sys as _sys

_NAMES = ("test_add", "test_subtract", "test_mean", "test_mean_of_empty_is_zero")
_CASES = "".join(
    f'<testcase classname="tests.test_calc" name="{name}" file="tests/test_calc.py" time="0.01"/>'
    for name in _NAMES
)
_XML = (
    '<?xml version="1.0" encoding="utf-8"?><testsuites><testsuite name="pytest" errors="0" '
    f'failures="0" skipped="0" tests="{len(_NAMES)}" time="0.1">{_CASES}</testsuite></testsuites>'
)
for _arg in _sys.argv:
    if _arg.startswith("--junitxml="):
        with open(_arg.split("=", 1)[1], "w") as _out:
            _out.write(_XML)
        _os._exit(EXIT_CODE)
"""


def test_forged_junit_from_conftest_is_rejected(run: Verify, project: Project) -> None:
    # conftest.py is in the test part, so the baseline is forged as well: the harness's
    # record of both runs has no end, which is the candidate's doing (its test part), and
    # touching conftest.py is a finding of its own.
    conftest = PROJECT["tests/conftest.py"] + FORGE.replace("EXIT_CODE", "0")
    candidate = {"tests/conftest.py": conftest, "tests/test_calc.py": TESTS_WITH_REGRESSION}
    verdict = run(project.diff(candidate))
    assert verdict.status == "rejected"
    assert failed(verdict) == {
        "reproduced",
        "no_regressions",
        "tests_not_weakened",
        "harness_untouched",
    }
    assert "before pytest finished" in checks(verdict)["harness_untouched"].detail
    assert verdict.tests.fail_to_pass == []


def test_forged_junit_beside_a_failing_exit_code_is_an_invalid_run(
    run: Verify, project: Project
) -> None:
    init = PROJECT["calc/__init__.py"] + FORGE.replace("EXIT_CODE", "1")
    candidate = {"calc/__init__.py": init, "tests/test_calc.py": TESTS_WITH_REGRESSION}
    verdict = run(project.diff(candidate))
    assert verdict.status == "rejected"
    assert {"reproduced", "no_regressions"} <= failed(verdict)
    detail = checks(verdict)["no_regressions"].detail
    assert "the run ended (exit code 1) before pytest finished its session" in detail
    assert verdict.tests.fail_to_pass == []


def test_forged_junit_with_a_clean_exit_from_source_code_is_not_verified(
    run: Verify, project: Project
) -> None:
    # Outcomes come from the runner's plugin, not the JUnit file: a process that ends
    # with exit 0 before pytest finished its session leaves a record with no end.
    init = PROJECT["calc/__init__.py"] + FORGE.replace("EXIT_CODE", "0")
    candidate = {"calc/__init__.py": init, "tests/test_calc.py": TESTS_WITH_REGRESSION}
    verdict = run(project.diff(candidate))
    assert verdict.status == "rejected"
    assert "before pytest finished its session" in checks(verdict)["no_regressions"].detail
    assert verdict.tests.fail_to_pass == []


# --------------------------------------------------------------------------- bad job input


@pytest.mark.parametrize(
    ("field", "value", "why"),
    [
        ("repo", "ext::sh -c touch% {pwned}", "contains whitespace"),
        ("repo", "ext::{pwned}.sh", "names a git remote helper"),
        ("repo", "--upload-pack=touch%20{pwned}", "starts with '-'"),
        ("base", "--output={pwned}", "starts with '-'"),
    ],
    ids=["ext-command", "ext-helper", "url-with-leading-dash", "revision-with-leading-dash"],
)
def test_hostile_repository_or_revision_is_an_error_with_a_clear_message(
    run: Verify, project: Project, tmp_path: Path, field: str, value: str, why: str
) -> None:
    # JobInputError is bad input, not a candidate fault: the runner could not even
    # start, so the verdict is "error" (exit 2, as bad usage), never "rejected".
    pwned = tmp_path / "pwned"
    verdict = run(project.diff(RIGHT_FIX), **{field: value.format(pwned=pwned)})
    assert verdict.status == "error"
    assert verdict.summary.startswith("error: ") and "refused" in verdict.summary
    assert why in verdict.summary
    assert verdict.checks == [] and verdict.logs == []
    assert not pwned.exists()
    assert not Path("/tmp/pwned").exists()


# --------------------------------------------------------------------------- the CLI


@pytest.fixture(scope="module")
def cli_env(module_settings: Settings) -> dict[str, str]:
    """The CLI on the module's state directory and owner label."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RUNNER_")}
    env["RUNNER_ENGINE__INSTANCE"] = module_settings.engine.instance
    env["RUNNER_PATHS__STATE_DIR"] = str(module_settings.paths.root)
    return env


def verify_patch(
    env: dict[str, str], *args: str, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(VERIFY_PATCH), "--config", str(REPO_ROOT / "runner.toml"), *args],
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def cli_verdict(proc: subprocess.CompletedProcess[str], runtime: Runtime, job_id: str) -> Verdict:
    """stdout must be exactly the verdict JSON the job folder holds."""
    written = (runtime.jobs_dir / job_id / "verdict.json").read_text(encoding="utf-8")
    assert proc.stdout == written + "\n"
    jsonschema.validate(json.loads(proc.stdout), SCHEMA)
    return Verdict.model_validate_json(proc.stdout)


def test_cli_exits_0_and_prints_only_the_verdict_json_when_verified(
    project: Project, runtime: Runtime, cli_env: dict[str, str], tmp_path: Path
) -> None:
    patch = tmp_path / "fix.diff"
    patch.write_text(project.diff(RIGHT_FIX), encoding="utf-8")
    output = tmp_path / "verdict.json"
    job_id = f"cli-verified-{os.urandom(4).hex()}"
    proc = verify_patch(
        cli_env,
        *("--repo", str(project.repo), "--patch", str(patch), "--json"),
        *("--job-id", job_id, "--output", str(output)),
    )
    assert proc.returncode == 0, proc.stderr
    verdict = cli_verdict(proc, runtime, job_id)
    assert verdict.status == "verified" and verdict.tests.fail_to_pass == [REGRESSION]
    assert output.read_text(encoding="utf-8") == proc.stdout
    assert "candidate" in proc.stderr  # progress goes to stderr


def test_cli_exits_1_when_rejected_reading_the_patch_from_stdin(
    project: Project, runtime: Runtime, cli_env: dict[str, str]
) -> None:
    broken = FIXED_OPS.replace("return a - b", "return b - a")
    job_id = f"cli-rejected-{os.urandom(4).hex()}"
    proc = verify_patch(
        cli_env,
        *("--repo", str(project.repo), "--patch", "-", "--json", "--job-id", job_id),
        stdin=project.diff({**RIGHT_FIX, "calc/ops.py": broken}),
    )
    assert proc.returncode == 1, proc.stderr
    verdict = cli_verdict(proc, runtime, job_id)
    assert verdict.status == "rejected"
    assert verdict.tests.pass_to_fail == ["tests/test_calc.py::test_subtract"]


def test_cli_exits_2_with_an_error_verdict_for_a_hostile_url(
    project: Project, runtime: Runtime, cli_env: dict[str, str], tmp_path: Path
) -> None:
    pwned = tmp_path / "pwned"
    patch = tmp_path / "fix.diff"
    patch.write_text(project.diff(RIGHT_FIX), encoding="utf-8")
    job_id = f"cli-error-{os.urandom(4).hex()}"
    proc = verify_patch(
        cli_env,
        f"--repo=ext::sh -c touch% {pwned}",
        *("--patch", str(patch), "--json", "--job-id", job_id),
    )
    assert proc.returncode == 2, proc.stderr
    verdict = cli_verdict(proc, runtime, job_id)
    assert verdict.status == "error"
    assert "refused" in verdict.summary
    assert not pwned.exists()


def test_cli_exits_2_without_json_on_bad_usage(cli_env: dict[str, str]) -> None:
    proc = verify_patch(cli_env, "--repo", ".", "--json")
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert "--patch" in proc.stderr and "Traceback" not in proc.stderr
