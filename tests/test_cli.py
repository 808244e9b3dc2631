from __future__ import annotations

import pytest

from runner.cli.main import runner_main


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
    err = capsys.readouterr().err
    for heading in ("engine", "images", "limits", "state"):
        assert heading in err
    assert "network none" in err


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
