"""The Claude fix loop: the real SDK against a loopback Messages API, the real engine.

The bundled Flask example (made by its make-repo.sh) is the repository; the scripted
replies are its candidate diffs split into a source patch and a test patch. One state
directory serves the whole module, so the environment image and the baseline runs are
built once. A distinctive fake API key must never show up in any output.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest
import structlog
from anthropic_fake import FakeAnthropic, api_error, text_reply, tool_use, validate
from conftest import TEST_INSTANCE, make_settings
from pydantic import SecretStr

from runner.cli.main import runner_main
from runner.config import Settings
from runner.core.patch import parse_patch, split_test_part
from runner.core.suite import parse_junit
from runner.environments.images import BaseImage
from runner.fix.errorreport import ErrorReport
from runner.fix.loop import FixResult, reproduces, run_fix
from runner.fix.prompts import feedback
from runner.models import RunCounts, SuiteRun, TestResult, TestSummary, Verdict
from runner.verify.pipeline import Runtime

REPO_ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = REPO_ROOT / "examples" / "flask-app-context"
REPORT_FILE = EXAMPLE / "error-report.json"
KEY = "sk-ant-test-FAKE-KEY-7f3a9c2e1d-never-print-me"
REGRESSION = "tests/test_seed.py::test_main_seeds_inside_app_context"


def split(name: str) -> tuple[str, str]:
    """A candidate diff of the example as (source patch, test patch)."""
    text = (EXAMPLE / "candidates" / f"{name}.diff").read_text(encoding="utf-8")
    test, source = split_test_part(parse_patch(text))
    return source, test


GOOD = split("good")
BREAKS_OTHER = split("breaks-other")
# A test that fails on the base with an AssertionError, not the reported RuntimeError.
WRONG_TEST = """\
diff --git a/tests/test_seed_source.py b/tests/test_seed_source.py
new file mode 100644
--- /dev/null
+++ b/tests/test_seed_source.py
@@ -0,0 +1,7 @@
+import inspect
+
+from app import seed
+
+
+def test_main_pushes_an_app_context():
+    assert "app_context" in inspect.getsource(seed.main)
"""
NOT_APPLYING = """\
diff --git a/app/seed.py b/app/seed.py
--- a/app/seed.py
+++ b/app/seed.py
@@ -45,3 +45,3 @@ def main(argv: list[str] | None = None) -> int:
     config = {"SQLALCHEMY_DATABASE_URI": args.database_url} if args.database_url else None
-    create_app(config)
-    count = seed_database(verbose=True)
+    with create_app(config).app_context():
+        count = seed_database(verbose=True)
"""


def report() -> ErrorReport:
    return ErrorReport.from_text(REPORT_FILE.read_text(encoding="utf-8"))


# --------------------------------------------------------------------------- pure parts


def test_fix_demo_replies_are_the_example_candidates_split() -> None:
    demo = EXAMPLE / "fix-demo"
    for name, attempt in (("breaks-other", "attempt-1"), ("good", "attempt-2")):
        source, test = split(name)
        assert (demo / f"{attempt}.fix.diff").read_text(encoding="utf-8") == source
        assert (demo / f"{attempt}.test.diff").read_text(encoding="utf-8") == test


def test_the_fake_server_refuses_an_unanswered_tool_use() -> None:
    body = {
        "model": "m",
        "max_tokens": 10,
        "tools": [
            {
                "name": "submit_fix",
                "input_schema": {
                    "type": "object",
                    "properties": {"patch": {}, "test_patch": {}, "explanation": {}},
                    "required": ["patch"],
                },
            }
        ],
        "tool_choice": {"type": "tool", "name": "submit_fix"},
        "messages": [
            {"role": "user", "content": "fix it"},
            {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "input": {}}]},
            {"role": "user", "content": [{"type": "text", "text": "no"}]},
        ],
    }
    assert validate(body) is not None and "tool_result" in (validate(body) or "")
    body["messages"][2]["content"] = [{"type": "tool_result", "tool_use_id": "t1", "content": "x"}]
    assert validate(body) is None
    body["tool_choice"] = {"type": "auto"}
    assert "tool_choice" in (validate(body) or "")


def _verdict(fail_to_pass: list[str]) -> Verdict:
    return Verdict(
        job_id="j",
        status="verified",
        summary="verified",
        tests=TestSummary(fail_to_pass=fail_to_pass),
    )


def _baseline(**tests: TestResult) -> SuiteRun:
    return SuiteRun(valid=True, tests={t.id: t for t in tests.values()}, counts=RunCounts())


def test_a_regression_test_must_fail_on_the_base_with_the_reported_type() -> None:
    runtime_error = TestResult(
        id="t::a",
        outcome="failed",
        message="RuntimeError: Working outside",
        exception_type="RuntimeError",
    )
    assertion = TestResult(id="t::b", outcome="failed", exception_type="AssertionError")
    chained = TestResult(
        id="t::c", outcome="failed", text="E   ValueError: x\nE   RuntimeError: Working outside"
    )
    base = _baseline(a=runtime_error, b=assertion, c=chained)
    assert reproduces(_verdict(["t::a"]), base, "RuntimeError") is None
    assert reproduces(_verdict(["t::c"]), base, "RuntimeError") is None
    why = reproduces(_verdict(["t::b"]), base, "RuntimeError")
    assert why is not None and "does not reproduce the reported error" in why
    assert "AssertionError" in why
    assert "no test fails before" in (reproduces(_verdict([]), base, "RuntimeError") or "")


THREADED = """\
import threading


def work():
    raise RuntimeError("Working outside of application context.")


def run_in_thread(target):
    errors = []

    def wrapper():
        try:
            target()
        except Exception as exc:
            errors.append(exc)

    thread = threading.Thread(target=wrapper)
    thread.start()
    thread.join()
    return errors


def test_worker_raises_nothing():
    assert run_in_thread(work) == []


def test_worker_unrelated_assert():
    assert run_in_thread(lambda: None) == [1]
"""


def test_an_error_in_a_thread_reproduces_through_an_assertion_about_it(tmp_path: Path) -> None:
    # Real pytest on a real test module: the thread's RuntimeError reaches the test only
    # as the value of an assertion, and that still reproduces the reported error.
    (tmp_path / "test_threaded.py").write_text(THREADED)
    junit = tmp_path / "junit.xml"
    subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-o",
         "junit_family=xunit1", f"--junitxml={junit}", "test_threaded.py"],
        cwd=tmp_path, capture_output=True, check=False,
    )  # fmt: skip
    report = parse_junit(junit.read_bytes())
    base = SuiteRun(valid=True, tests={r.id: r for r in report.tests}, counts=RunCounts())
    assert (
        reproduces(_verdict(["test_threaded.py::test_worker_raises_nothing"]), base, "RuntimeError")
        is None
    )
    why = reproduces(
        _verdict(["test_threaded.py::test_worker_unrelated_assert"]), base, "RuntimeError"
    )
    assert why is not None and "does not reproduce the reported error" in why


def test_feedback_shows_the_repository_frames_and_errors_of_a_failing_test() -> None:
    text = (
        "tests/test_seed.py:31: in test_seed_database_is_idempotent\n    seed_database()\n"
        "/opt/venv/lib/python3.11/site-packages/sqlalchemy/orm/session.py:4427: in _flush\n"
        "    flush_context.execute()\n"
        "E   sqlalchemy.exc.IntegrityError: UNIQUE constraint failed: users.email"
    )
    test = TestResult(id="tests/test_seed.py::test_x", outcome="failed", text=text)
    verdict = _verdict([]).model_copy(
        update={"status": "rejected", "tests": TestSummary(pass_to_fail=[test.id])}
    )
    out = feedback(["no_regressions: 1 broke"], verdict, {test.id: test})
    assert "tests/test_seed.py:31: in test_seed_database_is_idempotent" in out
    assert "E   sqlalchemy.exc.IntegrityError: UNIQUE constraint failed" in out
    assert "site-packages" not in out
    assert "- no_regressions: 1 broke" in out


def test_a_missing_api_key_is_one_line_and_exit_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    config = tmp_path / "runner.toml"
    config.write_text(f'[paths]\nstate_dir = "{tmp_path / "state"}"\n', encoding="utf-8")
    code = runner_main(
        ["--config", str(config), "fix", "--repo", str(tmp_path), "--error", str(REPORT_FILE)]
    )
    err = capsys.readouterr().err
    assert code == 2
    assert err.strip().count("\n") == 0
    assert "ANTHROPIC_API_KEY" in err


# --------------------------------------------------------------------------- the loop


@pytest.fixture(scope="module")
def flask_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    repo = tmp_path_factory.mktemp("flask") / "repo"
    subprocess.run(
        ["bash", str(EXAMPLE / "make-repo.sh"), str(repo)], check=True, capture_output=True
    )
    return repo


@pytest.fixture(scope="module")
def module_settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """One state directory for the module: mirror, env image and baselines are reused."""
    return make_settings(tmp_path_factory.mktemp("state"))


@pytest.fixture(scope="module")
def runtime(
    module_settings: Settings, base_image: BaseImage, docker_client: docker.DockerClient
) -> Runtime:
    return Runtime.start(module_settings)


def fixer_settings(settings: Settings, fake: FakeAnthropic, **changes: object) -> Settings:
    fixer = settings.fixer.model_copy(
        update={
            "base_url": fake.base_url,
            "api_key": SecretStr(KEY),
            "max_retries": 2,
            "timeout_s": 60,
            **changes,
        }
    )
    return settings.model_copy(update={"fixer": fixer})


@pytest.fixture
def logs(caplog: pytest.LogCaptureFixture) -> Iterator[list[dict[str, object]]]:
    """structlog events and the SDK's own debug logging, both checked for the key."""
    caplog.set_level(logging.DEBUG)
    with structlog.testing.capture_logs() as events:
        yield events
    assert KEY not in caplog.text
    assert KEY not in json.dumps(events, default=str)


def fix(
    runtime: Runtime, repo: Path, settings: Settings, fake: FakeAnthropic, **options: object
) -> FixResult:
    result = run_fix(report(), str(repo), "HEAD", runtime, settings, environ={}, **options)  # type: ignore[arg-type]
    assert fake.problems == [], fake.problems  # every request was one the real API accepts
    assert KEY not in result.model_dump_json()
    return result


def tree_text(*roots: Path) -> str:
    """Every file under the folders, as text, to search for the key."""
    out = []
    for root in roots:
        for path in root.rglob("*"):
            if path.is_file() and not path.is_symlink():
                out.append(path.read_text(encoding="utf-8", errors="replace"))
    return "\n".join(out)


@pytest.mark.docker
def test_wrong_fix_is_rejected_then_the_feedback_leads_to_a_verified_fix(
    runtime: Runtime,
    flask_repo: Path,
    module_settings: Settings,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    script = [
        tool_use(
            *BREAKS_OTHER,
            "push an app context; insert every seed user",
            usage={"input_tokens": 4000, "output_tokens": 800},
        ),
        tool_use(
            *GOOD,
            "main() seeds outside an app context; push one",
            usage={"input_tokens": 6000, "output_tokens": 700},
        ),
    ]
    out = tmp_path / "out"
    with FakeAnthropic(script, api_key=KEY, model="claude-sonnet-5") as fake:
        state = module_settings.paths.root
        config = tmp_path / "runner.toml"
        config.write_text(
            f'[engine]\ninstance = "{TEST_INSTANCE}"\n[paths]\nstate_dir = "{state}"\n'
            f'[fixer]\nbase_url = "{fake.base_url}"\nmax_retries = 1\n',
            encoding="utf-8",
        )
        monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)
        argv = [
            "--config",
            str(config),
            "fix",
            "--repo",
            str(flask_repo),
            "--error",
            str(REPORT_FILE),
        ]
        code = runner_main([*argv, "--json", "--output-dir", str(out)])
    captured = capsys.readouterr()
    assert fake.problems == []
    result = FixResult.model_validate_json(captured.out)
    assert [a.status for a in result.attempts] == ["rejected", "verified"], [
        (a.status, a.reasons) for a in result.attempts
    ]
    assert code == 0
    first = result.attempts[0]
    assert any(r.startswith("no_regressions") for r in first.reasons)
    # the attempts are candidates on one commit: the first one's baseline records the
    # per-test map (a one-shot verify-patch would not), the second selects from it
    notes = [a.verdict.early.testmap for a in result.attempts if a.verdict and a.verdict.early]
    assert notes[0] is not None and notes[0].recorded and "fix loop" in notes[0].reason
    assert notes[1] is not None and notes[1].reason.startswith("not needed"), notes[1]
    assert any(r.startswith("lint") and "F401" in r for r in first.reasons)
    assert result.repro is not None and result.repro.command == "python scripts/seed_db.py"

    # Request 2 continues the same conversation: the tool_use answered by a tool_result
    # that carries the failing test's output and the new lint finding.
    assert len(fake.requests) == 2
    second = fake.requests[1]["messages"]
    assert [m["role"] for m in second] == ["user", "assistant", "user"]
    assert second[2]["content"][0]["tool_use_id"] == second[1]["content"][0]["id"]
    sent = fake.user_texts(1)
    assert "tests/test_seed.py::test_seed_database_is_idempotent" in sent
    assert "IntegrityError" in sent and "UNIQUE constraint failed: users.email" in sent
    assert "F401 'os' imported but unused" in sent
    first_prompt = fake.user_texts(0)
    assert "RuntimeError: Working outside of application context" in first_prompt
    assert "def seed_database() -> int:" in first_prompt

    assert result.patch == GOOD[0] and result.test_patch == GOOD[1]
    assert (result.input_tokens, result.output_tokens) == (10_000, 1_500)
    assert result.cost_usd == pytest.approx(10_000 * 2 / 1e6 + 1_500 * 10 / 1e6)
    assert (out / "fix.diff").read_text(encoding="utf-8") == GOOD[0]
    assert (out / "test.diff").read_text(encoding="utf-8") == GOOD[1]
    pr = (out / "PR.md").read_text(encoding="utf-8")
    assert REGRESSION in pr and "Fail-to-pass" in pr
    assert "12 passed, 1 failed before; 13 passed, 0 failed after" in pr
    assert "Seeded 3 users" in pr and "exit 1" in pr  # the script before and after
    assert "attempt 1: rejected" in pr
    assert json.loads((out / "result.json").read_text(encoding="utf-8"))["status"] == "verified"

    jobs = [state / "jobs" / a.verdict.job_id for a in result.attempts if a.verdict]
    everything = tree_text(out, state / "fixes" / result.fix_id, *jobs)
    assert KEY not in everything and KEY not in captured.out + captured.err


@pytest.mark.docker
def test_an_overloaded_reply_is_retried_by_the_sdk(
    runtime: Runtime, flask_repo: Path, module_settings: Settings, logs: list[dict[str, object]]
) -> None:
    script = [api_error(529, "overloaded_error", "Overloaded"), tool_use(*GOOD, "app context")]
    with FakeAnthropic(script, api_key=KEY) as fake:
        result = fix(runtime, flask_repo, fixer_settings(module_settings, fake), fake)
    assert result.status == "verified", result.summary
    assert fake.calls == 2 and len(fake.requests) == 1
    assert [a.status for a in result.attempts] == ["verified"]


@pytest.mark.docker
def test_exhausted_retries_end_the_job_as_error_with_the_apis_message(
    runtime: Runtime, flask_repo: Path, module_settings: Settings, logs: list[dict[str, object]]
) -> None:
    fast = {"retry-after-ms": "20"}
    script = [api_error(529, "overloaded_error", "Overloaded", fast)] * 3
    with FakeAnthropic(script, api_key=KEY) as fake:
        result = fix(runtime, flask_repo, fixer_settings(module_settings, fake), fake)
    assert result.status == "error"
    assert "529" in result.summary and "Overloaded" in result.summary
    assert fake.calls == 3  # the first try and max_retries = 2


@pytest.mark.docker
def test_a_reply_without_the_tool_call_is_a_rejected_attempt(
    runtime: Runtime, flask_repo: Path, module_settings: Settings, logs: list[dict[str, object]]
) -> None:
    script = [text_reply("The fix is to push an app context."), text_reply("Still prose.")]
    with FakeAnthropic(script, api_key=KEY) as fake:
        result = fix(
            runtime, flask_repo, fixer_settings(module_settings, fake, max_attempts=2), fake
        )
    assert result.status == "not_verified"
    assert [a.status for a in result.attempts] == ["rejected", "rejected"]
    assert "did not call submit_fix" in result.attempts[0].reasons[0]
    assert all(a.verdict is None for a in result.attempts)
    assert "Call submit_fix" in fake.user_texts(1)


@pytest.mark.docker
def test_a_patch_that_is_not_a_diff_is_rejected_without_a_sandbox_run(
    runtime: Runtime, flask_repo: Path, module_settings: Settings, logs: list[dict[str, object]]
) -> None:
    script = [tool_use("Wrap seed_database() in app.app_context().", GOOD[1], "prose")]
    with FakeAnthropic(script, api_key=KEY) as fake:
        result = fix(
            runtime, flask_repo, fixer_settings(module_settings, fake, max_attempts=1), fake
        )
    (attempt,) = result.attempts
    assert attempt.status == "rejected" and attempt.verdict is None
    assert "the patch is not a usable unified diff" in attempt.reasons[0]


@pytest.mark.docker
def test_a_patch_that_does_not_apply_is_rejected_with_gits_reason_as_feedback(
    runtime: Runtime, flask_repo: Path, module_settings: Settings, logs: list[dict[str, object]]
) -> None:
    script = [tool_use(NOT_APPLYING, GOOD[1], "context"), text_reply("giving up")]
    with FakeAnthropic(script, api_key=KEY) as fake:
        result = fix(
            runtime, flask_repo, fixer_settings(module_settings, fake, max_attempts=2), fake
        )
    first = result.attempts[0]
    assert first.status == "rejected" and first.verdict is not None
    assert first.reasons[0].startswith("applies")
    assert "applies" in fake.user_texts(1) and "app/seed.py" in fake.user_texts(1)


@pytest.mark.docker
def test_a_regression_test_that_fails_another_way_is_rejected(
    runtime: Runtime, flask_repo: Path, module_settings: Settings, logs: list[dict[str, object]]
) -> None:
    script = [tool_use(GOOD[0], WRONG_TEST, "checks the source")]
    with FakeAnthropic(script, api_key=KEY) as fake:
        result = fix(
            runtime, flask_repo, fixer_settings(module_settings, fake, max_attempts=1), fake
        )
    (attempt,) = result.attempts
    assert attempt.verdict is not None and attempt.verdict.status == "verified"
    assert attempt.status == "rejected"
    assert "test does not reproduce the reported error" in attempt.reasons[0]
    assert "AssertionError" in attempt.reasons[0]


@pytest.mark.docker
def test_the_token_budget_stops_the_loop(
    runtime: Runtime, flask_repo: Path, module_settings: Settings, logs: list[dict[str, object]]
) -> None:
    script = [text_reply("thinking…", usage={"input_tokens": 30_000, "output_tokens": 500})]
    with FakeAnthropic(script, api_key=KEY) as fake:
        settings = fixer_settings(module_settings, fake, token_budget=32_000)
        result = fix(runtime, flask_repo, settings, fake)
    assert result.status == "not_verified"
    assert "token budget exhausted before attempt 2" in result.summary
    assert len(result.attempts) == 1 and fake.calls == 1
