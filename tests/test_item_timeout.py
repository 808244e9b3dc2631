"""A fix for a hang: the test that shows it times out on the baseline, and the run goes on.

The harness fails a test phase that runs past ``limits.test_item_timeout_s`` (SIGALRM in
the sandbox's pytest) instead of letting it hold the whole run to ``test_timeout_s``.
End to end with the real engine, on a small repository whose bug is an endless loop.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_pipeline import Project, _policy_file, checks, validated

from runner.core.policy import LimitsPolicy
from runner.models import FixJob
from runner.verify.pipeline import Runtime, verify

ATTEMPTS = '''\
def attempts(op, tries):
    """Call op() until it returns True or ``tries`` calls were made; how many were made."""
    made = 0
    while True:
        made += 1
        if op() or made == tries:
            return made
'''
FILES = {
    "retry/__init__.py": "",
    "retry/attempts.py": ATTEMPTS,
    "tests/test_attempts.py": "from retry.attempts import attempts\n\n\n"
    "def test_three_tries():\n    assert attempts(lambda: False, 3) == 3\n",
    "requirements-test.txt": "pytest==8.3.5\nflake8==7.1.2\n",
}
# tries=0 never equals a count that starts at 1: the baseline loops for ever
FIX = {
    "retry/attempts.py": ATTEMPTS.replace("made == tries", "made >= tries"),
    "tests/test_zero.py": "from retry.attempts import attempts\n\n\n"
    "def test_zero_tries_makes_one_call():\n    assert attempts(lambda: False, 0) == 1\n",
}
ZERO = "tests/test_zero.py::test_zero_tries_makes_one_call"


def test_the_default_per_test_limit() -> None:
    assert LimitsPolicy().test_item_timeout_s == 120


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Project:
    return Project.create(tmp_path_factory.mktemp("retry"), "retry", FILES, "attempts()")


@pytest.fixture(scope="module")
def runtime(module_runtime: Runtime) -> Runtime:
    return module_runtime


@pytest.mark.docker
def test_a_fix_for_an_endless_loop_is_verified_by_the_test_timing_out_on_the_baseline(
    runtime: Runtime, project: Project, tmp_path: Path
) -> None:
    policy = _policy_file(tmp_path, "hang", **{"limits.test_item_timeout_s": 3})
    job = FixJob(patch=project.diff(FIX), repo=str(project.repo), policy=policy)
    verdict = validated(verify(job, runtime), runtime)
    assert verdict.status == "verified", verdict.summary
    assert verdict.tests.fail_to_pass == [ZERO]
    assert checks(verdict)["reproduced"].passed
    baseline = json.loads((runtime.jobs_dir / verdict.job_id / "baseline.json").read_text())
    assert baseline["valid"] and not baseline["timed_out"]  # the run went on
    stuck = baseline["tests"][ZERO]
    assert stuck["outcome"] == "failed"
    assert (
        "ran past 3 s (fixrunner's per-test limit, limits.test_item_timeout_s)"
        in (stuck["message"])
    )
    assert baseline["tests"]["tests/test_attempts.py::test_three_tries"]["outcome"] == "passed"
