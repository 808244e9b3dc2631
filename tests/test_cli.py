from __future__ import annotations

import pytest

from runner.cli.common import run_command
from runner.cli.main import runner_main
from runner.cli.verify import verify_patch_main


def test_unknown_subcommand_exits_2_with_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert runner_main(["frobnicate"]) == 2
    err = capsys.readouterr().err
    assert "invalid choice" in err
    assert "Traceback" not in err


def test_bad_config_exits_2_naming_the_key(tmp_path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "runner.toml"
    bad.write_text("[engine]\nhost = 'x'\n")
    assert runner_main(["--config", str(bad), "doctor"]) == 2
    assert "unknown key 'engine.host'" in capsys.readouterr().err


def test_unreachable_engine_exits_2_with_what_to_do(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RUNNER_ENGINE__DOCKER_HOST", "unix:///nonexistent.sock")
    assert runner_main(["gc"]) == 2
    err = capsys.readouterr().err
    assert "does not answer" in err and "make setup" in err


@pytest.mark.docker
def test_doctor_reports_engine_images_and_limits(
    capsys: pytest.CaptureFixture[str], base_image
) -> None:
    assert runner_main(["doctor"]) == 0
    out = capsys.readouterr().out  # the report is the output: stdout
    for heading in ("engine", "images", "limits", "state"):
        assert heading in out
    assert "network none" in out


def _git_repo(path, files: dict[str, str]) -> None:
    import os
    import subprocess

    path.mkdir()
    for name, text in files.items():
        (path / name).write_text(text)
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@example.invalid",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@example.invalid",
        "GIT_AUTHOR_DATE": "2026-11-01T12:00:00+00:00",
        "GIT_COMMITTER_DATE": "2026-11-01T12:00:00+00:00",
    }
    for argv in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-qm", "base"]):
        subprocess.run(["git", "-C", str(path), *argv], check=True, env=env)


def test_env_show_prints_the_resolution_without_building(
    tmp_path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = tmp_path / "repo"
    _git_repo(repo, {"requirements-test.txt": "pytest==8.3.5\nflake8==7.1.2\n", "m.py": "x = 1\n"})
    monkeypatch.setenv("RUNNER_PATHS__STATE_DIR", str(tmp_path / "state"))
    assert runner_main(["env", "show", "--repo", str(repo)]) == 0
    out = capsys.readouterr().out
    assert "resolution  pinned: requirements-test.txt" in out
    assert "pytest      8.3.5 (repository)" in out
    assert "flake8==7.1.2" in out


# ---------------------------------------------------------------- the exit-code contract


def one_line_error(capsys: pytest.CaptureFixture[str]) -> str:
    """The command's stderr, which must be exactly one line and no traceback."""
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert err.endswith("\n") and err.count("\n") == 1, err
    assert err.startswith("error: ")
    return err


@pytest.fixture
def job(tmp_path, monkeypatch: pytest.MonkeyPatch):
    """A repository, a patch for it and a private state dir; yields (repo, patch, state)."""
    repo = tmp_path / "repo"
    _git_repo(repo, {"m.py": "x = 1\n"})
    patch = tmp_path / "fix.diff"
    patch.write_text("--- a/m.py\n+++ b/m.py\n@@ -1 +1 @@\n-x = 1\n+x = 2\n")
    state = tmp_path / "state"
    monkeypatch.setenv("RUNNER_PATHS__STATE_DIR", str(state))
    return repo, patch, state


def test_verify_patch_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        verify_patch_main(["--version"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out.startswith("fixrunner ")


@pytest.mark.parametrize(
    ("extra", "says"),
    [
        (["--bogus"], "unrecognized arguments: --bogus"),
        (["--policy", "nosuch"], "no policy 'nosuch'"),
        (["--expect-error", "[/x]", "--repro", "true"], "'[/x]'"),
        (["--expect-error", "RuntimeError"], "needs at least one --repro"),
    ],
)
def test_verify_patch_bad_usage_is_one_line_and_exit_2(
    job, capsys: pytest.CaptureFixture[str], extra: list[str], says: str
) -> None:
    repo, patch, state = job
    assert verify_patch_main(["--repo", str(repo), "--patch", str(patch), *extra]) == 2
    assert says in one_line_error(capsys)
    assert not (state / "jobs").exists()  # nothing started, nothing left behind


def test_verify_patch_missing_patch_file_is_one_line(job, capsys) -> None:
    repo, patch, _ = job
    assert verify_patch_main(["--repo", str(repo), "--patch", str(patch) + ".nope"]) == 2
    assert "cannot read the patch" in one_line_error(capsys)


@pytest.mark.parametrize(
    ("flag", "target", "says"),
    [
        ("--output", "afile/verdict.json", "is not a folder"),
        ("--output", "adir", "is a folder, not a file"),
        ("--sarif", "afile/deeper/x.sarif", "is not a folder"),
        ("--junit", "afile", "exists and is not a folder"),
    ],
)
def test_unwritable_outputs_are_refused_before_any_work(
    job, tmp_path, capsys: pytest.CaptureFixture[str], flag: str, target: str, says: str
) -> None:
    repo, patch, state = job
    (tmp_path / "afile").write_text("a file, not a folder\n")
    (tmp_path / "adir").mkdir()
    argv = ["--repo", str(repo), "--patch", str(patch), flag, str(tmp_path / target)]
    assert verify_patch_main(argv) == 2
    err = one_line_error(capsys)
    assert flag in err and says in err
    assert not (state / "jobs").exists()


@pytest.mark.parametrize("variable", ["DOCKER_HOST", "RUNNER_ENGINE__DOCKER_HOST"])
def test_verify_patch_on_a_dead_engine_is_one_line(
    job, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, variable: str
) -> None:
    repo, patch, _ = job
    monkeypatch.setenv(variable, "unix:///nonexistent/docker.sock")
    assert verify_patch_main(["--repo", str(repo), "--patch", str(patch)]) == 2
    assert "does not answer" in one_line_error(capsys)


def test_workers_without_a_broker_is_one_line_without_its_password(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path
) -> None:
    import socket

    with socket.socket() as closed:  # a loopback port nobody listens on
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    monkeypatch.setenv("RUNNER_PATHS__STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("RUNNER_CELERY__BROKER_URL", f"amqp://guest:s3cret@127.0.0.1:{port}//")
    assert runner_main(["workers", "--timeout", "0.5"]) == 2
    err = one_line_error(capsys)
    assert f"127.0.0.1:{port}" in err and "does not answer" in err
    assert "s3cret" not in err


def test_serve_on_a_busy_port_is_one_line(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path
) -> None:
    import socket

    monkeypatch.setenv("RUNNER_PATHS__STATE_DIR", str(tmp_path / "state"))
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert runner_main(["serve", "--host", "127.0.0.1", "--port", str(port)]) == 2
    assert f"cannot listen on 127.0.0.1:{port}" in one_line_error(capsys)


def test_serve_with_a_missing_tokens_file_is_one_line(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path
) -> None:
    monkeypatch.setenv("RUNNER_PATHS__STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("RUNNER_SERVICE__TOKENS_FILE", str(tmp_path / "tokens.json"))
    assert runner_main(["serve", "--port", "0"]) == 2
    assert "tokens file" in one_line_error(capsys)


def _crash(argv):  # a command with a bug in it
    raise KeyError("[bold]no such thing[/bold]")


def test_an_unexpected_error_is_one_line_naming_its_log_and_exit_2(
    capsys: pytest.CaptureFixture[str], tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", None)  # re-read TMPDIR
    assert run_command(_crash, []) == 2
    err = one_line_error(capsys)
    assert "unexpected KeyError" in err and "[bold]no such thing[/bold]" in err
    logs = list(tmp_path.glob("fixrunner-error-*.log"))
    assert len(logs) == 1 and str(logs[0]) in err
    assert "Traceback" in logs[0].read_text() and "_crash" in logs[0].read_text()


def test_an_unexpected_error_shows_its_traceback_with_verbose(
    capsys: pytest.CaptureFixture[str], tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    assert run_command(_crash, ["-v"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" in err and "_crash" in err
    assert err.splitlines()[-1].startswith("error: unexpected KeyError")


def test_logs_prints_each_phase_log_of_a_job(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path
) -> None:
    logs = tmp_path / "state" / "jobs" / "job-1" / "logs"
    logs.mkdir(parents=True)
    (logs / "candidate.log").write_text("1 failed [bold]\n")
    (logs / "lint.log").write_text("app/x.py:1:1: F401")
    monkeypatch.setenv("RUNNER_PATHS__STATE_DIR", str(tmp_path / "state"))
    assert runner_main(["logs", "job-1"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("==> candidate (")
    assert "1 failed [bold]\n==> lint (" in out and out.endswith("F401\n")
    assert runner_main(["logs", "job-1", "--phase", "lint"]) == 0
    assert "candidate" not in capsys.readouterr().out


@pytest.mark.parametrize(("job", "says"), [("nope", "no job nope"), ("../etc", "not a job id")])
def test_logs_of_an_unknown_job_is_one_line(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path, job, says
) -> None:
    monkeypatch.setenv("RUNNER_PATHS__STATE_DIR", str(tmp_path / "state"))
    assert runner_main(["logs", job]) == 2
    assert says in one_line_error(capsys)


def test_progress_off_a_terminal_is_one_plain_line_per_phase() -> None:
    import io

    from rich.console import Console

    from runner.cli.progress import PhaseProgress

    buffer = io.StringIO()
    with PhaseProgress(Console(file=buffer, width=200)) as progress:
        progress("env", "building wheels for [bold]x[/bold]")
        progress("candidate", "running the tests\x1b[2J")
    assert buffer.getvalue() == (
        "> env       building wheels for [bold]x[/bold]\n> candidate running the tests\\x1b[2J\n"
    )


def test_progress_on_a_terminal_shows_the_lines_and_a_live_step() -> None:
    import io

    from rich.console import Console

    from runner.cli.progress import PhaseProgress

    buffer = io.StringIO()
    console = Console(file=buffer, width=100, force_terminal=True, color_system=None)
    with PhaseProgress(console) as progress:
        progress("env", "building wheels for [/x]")
    out = buffer.getvalue()
    assert "env       building wheels for [/x]" in out
    assert "env: building wheels for [/x]" in out  # the live line, with its elapsed time


def test_fix_refuses_an_unwritable_output_dir_before_any_work(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path
) -> None:
    report = tmp_path / "error.txt"
    report.write_text("RuntimeError: Working outside of application context.\n")
    (tmp_path / "afile").write_text("")
    monkeypatch.setenv("RUNNER_PATHS__STATE_DIR", str(tmp_path / "state"))
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)  # the check comes first
    argv = ["fix", "--repo", str(tmp_path), "--error", str(report)]
    assert runner_main([*argv, "--output-dir", str(tmp_path / "afile")]) == 2
    err = one_line_error(capsys)
    assert "--output-dir" in err and "exists and is not a folder" in err
    assert not (tmp_path / "state" / "jobs").exists()


@pytest.mark.docker
def test_output_into_a_new_folder_is_written_and_the_end_names_the_job(
    job, tmp_path, capsys: pytest.CaptureFixture[str], docker_client
) -> None:
    import json

    repo, _, state = job
    not_a_diff = tmp_path / "notes.txt"
    not_a_diff.write_text("this is not a diff\n")
    out = tmp_path / "new" / "deeper" / "verdict.json"
    argv = ["--repo", str(repo), "--patch", str(not_a_diff), "--output", str(out)]
    assert verify_patch_main([*argv, "--job-id", "job-new-folder"]) == 1  # rejected at intake
    assert json.loads(out.read_text())["status"] == "rejected"
    stdout = capsys.readouterr().out
    assert stdout.startswith("REJECTED")
    assert f"job job-new-folder: {state / 'jobs' / 'job-new-folder'}" in stdout


HEAVY = ("docker", "pydantic", "rich", "structlog", "requests", "fastapi", "celery")


@pytest.mark.parametrize(
    ("entry", "args"),
    [
        ("runner_main", ["--version"]),
        ("runner_main", ["--help"]),
        ("verify_patch_main", ["--help"]),
        ("verify_patch_main", ["--version"]),
    ],
)
def test_help_and_version_load_no_heavy_library(entry: str, args: list[str]) -> None:
    # The CLI's start-up is part of every verification: --help and --version answer
    # without importing the Docker SDK, pydantic, rich or structlog.
    import subprocess
    import sys

    code = (
        "import sys\n"
        f"from runner.cli.main import {entry}\n"
        "try:\n"
        f"    {entry}({args!r})\n"
        "except SystemExit:\n"
        "    pass\n"
        f"print(sorted({{m.split('.')[0] for m in sys.modules}} & set({HEAVY!r})))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert "fixrunner" in proc.stdout or "usage" in proc.stdout
    assert proc.stdout.strip().splitlines()[-1] == "[]"
