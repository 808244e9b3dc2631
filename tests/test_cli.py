from __future__ import annotations

import pytest

from runner.cli import runner_main


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
