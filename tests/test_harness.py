"""The harness out of the candidate's reach: the plugin's record, its checks, real attacks.

The pure part reads streams and patches; the Docker part runs each attack as a real
candidate diff against the small ``calc`` project of test_pipeline on the real engine.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

import docker
import pytest
from conftest import TEST_INSTANCE, make_settings
from test_pipeline import (
    PROJECT,
    REGRESSION,
    RIGHT_FIX,
    Project,
    Verify,
    checks,
    failed,
    validated,
)

from runner.config import Settings
from runner.core.harness import harness_findings
from runner.core.harnessresults import grade_harness, read_stream
from runner.core.patch import parse_patch
from runner.environments.images import BaseImage
from runner.models import FixJob, Verdict
from runner.verify.pipeline import Runtime, verify

KEY = b"k" * 64

# --------------------------------------------------------------------------- the stream


def stream(*records: dict[str, Any], key: bytes = KEY) -> bytes:
    """Records signed the way the plugin signs them."""
    lines, last = [], ""
    mac = hmac.new(key, digestmod=hashlib.sha256)
    for seq, record in enumerate(records):
        record = {"seq": seq, **record}
        signed = mac.copy()
        signed.update((last + json.dumps(record, sort_keys=True)).encode())
        last = signed.hexdigest()
        lines.append(json.dumps({"record": record, "mac": last}))
    return ("\n".join(lines) + "\n").encode()


def report(
    nodeid: str, when: str = "call", outcome: str = "passed", **extra: Any
) -> dict[str, Any]:
    return {
        "kind": "report",
        "nodeid": nodeid,
        "when": when,
        "outcome": outcome,
        "location": [nodeid.split("::")[0], 3],
        **extra,
    }


def collected(*ids: str) -> dict[str, Any]:
    """A ``collected`` record: each id with its function and position, as the plugin counts."""
    items, seen = [], {}
    for i in ids:
        function = i.split("[")[0]
        seen[function] = seen.get(function, -1) + 1
        items.append([i, function, seen[function], 3])
    return {"kind": "collected", "items": items}


START = {"kind": "start", "rootdir": "/work", "inifile": None}
A, B = "tests/test_a.py::TestA::test_one", "tests/test_b.py::TestB::test_one"


def test_a_complete_stream_grades_each_test_by_its_own_node_id() -> None:
    data = stream(
        START,
        collected(A, B),
        report(A, "setup"),
        report(A),
        report(A, "teardown"),
        report(B, "setup"),
        report(B, outcome="failed", crash={"message": "ZeroDivisionError: division by zero"}),
        report(B, "teardown"),
        {"kind": "finish", "exitstatus": 1},
    )
    run = grade_harness(read_stream(data, KEY), 1)
    assert run.valid, run.invalid_reason
    assert run.tests[A].outcome == "passed"
    assert run.tests[B].outcome == "failed"
    assert run.tests[B].exception_type == "ZeroDivisionError"
    assert run.rootdir == "/work" and run.positions[B] == "tests/test_b.py::TestB::test_one#0"


def test_the_same_node_id_run_twice_is_two_tests_never_one() -> None:
    data = stream(
        START,
        collected(A, A),
        report(A, "setup"),
        report(A),
        report(A, "setup"),
        report(A, outcome="failed"),
        {"kind": "finish", "exitstatus": 1},
    )
    run = grade_harness(read_stream(data, KEY), 1)
    assert run.valid, run.invalid_reason
    assert {t: r.outcome for t, r in run.tests.items()} == {A: "passed", f"{A} (#2)": "failed"}


def test_a_line_written_by_anyone_else_breaks_the_chain() -> None:
    good = stream(START, collected(A), report(A), {"kind": "finish", "exitstatus": 0})
    forged = stream(START, collected(A), report(A), {"kind": "finish", "exitstatus": 0}, key=b"x")
    for data in (forged, good.replace(b'"passed"', b'"failed"')):
        run = grade_harness(read_stream(data, KEY), 0)
        assert not run.valid and run.tampered
        assert "does not carry the harness's signature" in (run.invalid_reason or "")


@pytest.mark.parametrize(
    ("records", "exit_code", "why"),
    [
        ([START, collected(A), report(A)], 0, "before pytest finished its session"),
        ([START, collected(A), report(A), {"kind": "finish", "exitstatus": 1}], 0, "exit status"),
        (
            [START, collected(A), report(B), {"kind": "finish", "exitstatus": 0}],
            0,
            "never collected",
        ),
        ([START, collected(A, B), report(A), {"kind": "finish", "exitstatus": 0}], 0, "never ran"),
        (
            [START, {"kind": "alert", "what": "results-access", "detail": "/fixrunner/x"}],
            0,
            "tried to reach the harness's results",
        ),
    ],
    ids=["no-end", "exit-mismatch", "stray-id", "missing-id", "results-access"],
)
def test_a_stream_that_disagrees_with_the_process_is_an_invalid_run(
    records: list[dict[str, Any]], exit_code: int, why: str
) -> None:
    run = grade_harness(read_stream(stream(*records), KEY), exit_code)
    assert not run.valid and run.tampered
    assert why in (run.invalid_reason or "")


def test_no_stream_at_all_is_an_invalid_run_that_says_so() -> None:
    run = grade_harness(None, 4)
    assert not run.valid and not run.tampered
    assert "the harness recorded nothing" in (run.invalid_reason or "")


# --------------------------------------------------------------------------- the patch check


def diff(path: str, *added: str, new: bool = True) -> str:
    header = "--- /dev/null\n" if new else f"--- a/{path}\n"
    mode = "new file mode 100644\n" if new else ""
    start = "0,0" if new else "1,0"
    body = "".join(f"+{line}\n" for line in added)
    return (
        f"diff --git a/{path} b/{path}\n{mode}{header}+++ b/{path}\n"
        f"@@ -{start} +1,{len(added)} @@\n{body}"
    )


def findings(text: str) -> list[str]:
    return harness_findings(parse_patch(text).files)


@pytest.mark.parametrize(
    "path",
    ["pytest.py", "_pytest/__init__.py", "src/pluggy.py", "py/__init__.py", "tests/pytest.py"],
)
def test_a_module_named_like_the_harness_is_a_finding(path: str) -> None:
    assert any("named like the harness" in f for f in findings(diff(path, "x = 1")))


def test_the_projects_own_harness_named_package_is_no_shadow() -> None:
    # pluggy's (or pytest's) own repository: changing src/pluggy/_hooks.py adds no name
    assert findings(diff("src/pluggy/_hooks.py", "x = 1", new=False)) == []
    assert any("named like the harness" in f for f in findings(diff("src/pluggy/_new.py", "x")))


@pytest.mark.parametrize("path", ["calc/pytest_helpers.py", "docs/py/conf.py", "calc/py.py"])
def test_a_module_that_cannot_shadow_the_harness_is_not(path: str) -> None:
    assert findings(diff(path, "x = 1")) == []


@pytest.mark.parametrize(
    ("path", "lines"),
    [
        ("pyproject.toml", ["[tool.mypy]", 'plugins = ["pydantic.mypy"]']),
        ("setup.cfg", ["[coverage:run]", "plugins = covdefaults"]),
        ("tox.ini", ["[tox]", "minversion = 4.0"]),
    ],
)
def test_other_tools_settings_in_shared_config_files_are_not_findings(
    path: str, lines: list[str]
) -> None:
    assert findings(diff(path, *lines)) == []


@pytest.mark.parametrize(
    ("path", "lines"),
    [
        (".pytest.ini", ["[pytest]", "addopts = -p calc.evil"]),
        ("pytest.toml", ["[pytest]", 'filterwarnings = ["ignore"]']),
        ("tests/pytest.ini", ["[pytest]"]),
        ("setup.cfg", ["[tool:pytest]", "python_functions = nothing_*"]),
        ("pyproject.toml", ["[tool.pytest.ini_options]", 'addopts = "-k not_slow"']),
        ("tests/conftest.py", ['pytest_plugins = ["calc.evil"]']),
        ("tox.ini", ["[pytest]", "markers = slow"]),
    ],
)
def test_pytest_configuration_that_loads_plugins_or_filters_is_a_finding(
    path: str, lines: list[str]
) -> None:
    assert findings(diff(path, *lines)) != []


@pytest.mark.parametrize(
    "line",
    [
        'importlib.import_module("_py" + "test.reports")',
        "reports = __import__('_pytest.reports')",
        'mod = sys.modules["_pytest.runner"]',
        "getattr(pytest, 'exit')(0)",
    ],
)
def test_dynamic_reach_into_the_harness_from_source_code_is_a_finding(line: str) -> None:
    assert any("dynamically" in f for f in findings(diff("calc/ops.py", line)))


def test_ordinary_dynamic_imports_and_test_code_are_not_findings() -> None:
    assert findings(diff("calc/plugins.py", 'importlib.import_module(f"calc.backends.{n}")')) == []
    assert findings(diff("tests/test_x.py", 'importlib.import_module("_pytest.reports")')) == []


# --------------------------------------------------------------------------- real attacks

INSTANCE = f"{TEST_INSTANCE}-harness"


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Project:
    root = tmp_path_factory.mktemp("project")
    return Project.create(root, "calc", PROJECT, "calc with a bug in mean()")


@pytest.fixture(scope="module")
def runtime(
    tmp_path_factory: pytest.TempPathFactory,
    base_image: BaseImage,
    docker_client: docker.DockerClient,
) -> Runtime:
    settings: Settings = make_settings(tmp_path_factory.mktemp("state"), INSTANCE)
    return Runtime.start(settings)


@pytest.fixture
def run(runtime: Runtime, project: Project) -> Verify:
    def go(patch: str, **job: object) -> Verdict:
        job.setdefault("repo", str(project.repo))
        return validated(verify(FixJob(patch=patch, **job), runtime), runtime)  # type: ignore[arg-type]

    return go


WRITES_THE_RESULTS = """
import glob as _glob

for _path in _glob.glob("/fixrunner/stream-*.jsonl"):
    with open(_path, "a") as _out:
        _out.write("{}\\n")
"""
REACHES_PYTEST = """
import importlib as _importlib

_importlib.import_module("_py" + "test.reports")
"""
ATTACKS = {
    "shadowing-pytest": ({"pytest.py": "raise SystemExit(0)\n"}, "named like the harness"),
    "plugin-from-config": (
        {".pytest.ini": "[pytest]\naddopts = -p calc.ops\n"},
        "sets pytest's addopts",
    ),
    "dynamic-reach": ({"calc/ops.py": RIGHT_FIX["calc/ops.py"] + REACHES_PYTEST}, "dynamically"),
    "loads-ctypes": (
        {"calc/ops.py": RIGHT_FIX["calc/ops.py"] + "\nimport ctypes\n\nLIBC = ctypes.CDLL(None)\n"},
        "the tree's code loaded ctypes in calc/ops.py",
    ),
    "writes-the-results": (
        {"calc/__init__.py": PROJECT["calc/__init__.py"] + WRITES_THE_RESULTS},
        "",
    ),
}


@pytest.mark.docker
@pytest.mark.parametrize("attack", sorted(ATTACKS))
def test_a_fix_that_reaches_for_the_harness_is_rejected(
    run: Verify, project: Project, attack: str
) -> None:
    extra, finding = ATTACKS[attack]
    verdict = run(project.diff({**RIGHT_FIX, **extra}))
    assert verdict.status == "rejected", verdict.summary
    if attack == "writes-the-results":
        # refused by the plugin's audit hook, and the run that tried it is no evidence
        assert "tried to reach the harness's results" in checks(verdict)["no_regressions"].detail
        assert verdict.tests.fail_to_pass == []
    else:
        assert "harness_untouched" in failed(verdict)
        assert finding in checks(verdict)["harness_untouched"].detail
    if attack == "shadowing-pytest":
        # pytest runs with -P: the tree's pytest.py was never imported, the suite ran
        assert verdict.tests.candidate.passed == 4 and failed(verdict) == {"harness_untouched"}


@pytest.mark.docker
def test_the_right_fix_leaves_the_harness_untouched_and_is_verified(
    run: Verify, project: Project
) -> None:
    # The fix may import a library that loads ctypes itself: only the tree's own
    # imports count.
    ops = (
        RIGHT_FIX["calc/ops.py"]
        + "\nfrom multiprocessing import sharedctypes\n\nRAW = sharedctypes.RawValue\n"
    )
    verdict = run(project.diff({**RIGHT_FIX, "calc/ops.py": ops}))
    assert verdict.status == "verified", verdict.summary
    assert verdict.tests.fail_to_pass == [REGRESSION]
    assert checks(verdict)["harness_untouched"].passed
