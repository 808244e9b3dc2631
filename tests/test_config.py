from __future__ import annotations

from pathlib import Path

import pytest

from runner.config import load_settings
from runner.errors import ConfigError

REPO_ROOT = Path(__file__).resolve().parent.parent


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "runner.toml"
    path.write_text(text)
    return path


def test_shipped_runner_toml_loads_with_defaults() -> None:
    settings = load_settings(REPO_ROOT / "runner.toml", environ={})
    assert settings.images.recipe == "offline"
    assert settings.sandbox.memory_mb == 1024


def test_unknown_key_is_an_error_naming_it(tmp_path: Path) -> None:
    path = write(tmp_path, "[sandbox]\nmemroy_mb = 10\n")
    with pytest.raises(ConfigError, match=r"unknown key 'sandbox\.memroy_mb'"):
        load_settings(path, environ={})


def test_unknown_section_is_an_error_naming_it(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unknown key 'sandbx'"):
        load_settings(write(tmp_path, "[sandbx]\ncpus = 1\n"), environ={})


def test_wrongly_typed_value_is_an_error_with_the_value(tmp_path: Path) -> None:
    path = write(tmp_path, '[sandbox]\nmemory_mb = "lots"\n')
    with pytest.raises(ConfigError, match=r"sandbox\.memory_mb: .*integer.*'lots'"):
        load_settings(path, environ={})


def test_out_of_range_value_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"sandbox\.pids"):
        load_settings(write(tmp_path, "[sandbox]\npids = 1\n"), environ={})


def test_invalid_toml_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings(write(tmp_path, "[sandbox\n"), environ={})


def test_environment_overrides_a_key_with_its_type(tmp_path: Path) -> None:
    path = write(tmp_path, "[sandbox]\nmemory_mb = 512\n")
    settings = load_settings(path, environ={"RUNNER_SANDBOX__MEMORY_MB": "2048"})
    assert settings.sandbox.memory_mb == 2048


def test_environment_override_of_unknown_key_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"unknown key 'sandbox\.nope'"):
        load_settings(write(tmp_path, ""), environ={"RUNNER_SANDBOX__NOPE": "1"})


def test_environment_string_value_stays_a_string(tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path, ""), environ={"RUNNER_ENGINE__INSTANCE": "ci-7"})
    assert settings.engine.instance == "ci-7"


def test_missing_explicit_config_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(tmp_path / "absent.toml", environ={})
