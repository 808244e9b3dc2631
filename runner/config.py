"""runner.toml plus ``RUNNER_*`` overrides, validated once into one settings model.

Nothing here runs at import time. Unknown keys are errors that name the key, so a
typo in the config never silently falls back to a default.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, ValidationError

from runner.errors import ConfigError
from runner.models import Limits, Model

ENV_PREFIX = "RUNNER_"
DEFAULT_CONFIG_NAME = "runner.toml"


class EngineSettings(Model):
    """How to reach the Docker engine and how containers are labelled."""

    docker_host: str | None = Field(
        default=None, description="Engine address; None means DOCKER_HOST or the local socket."
    )
    instance: str = Field(
        default="default",
        description="This runner instance's name, the owner label on its containers.",
    )
    runtime: str | None = Field(
        default=None, description="OCI runtime for sandboxes (e.g. runsc for gVisor)."
    )
    sandbox_user: str = Field(default="10001:10001", description="uid:gid inside sandboxes.")
    start_timeout_s: float = Field(default=30, gt=0, description="Engine call timeout.")


class ImageSettings(Model):
    """Which recipe builds the sandbox base image."""

    recipe: Literal["offline", "registry"] = Field(
        default="offline",
        description="offline: debootstrap + docker import; registry: FROM python.",
    )
    python: str = Field(
        default="3.11", pattern=r"^3\.\d+$", description="Python for the registry recipe."
    )
    debian_suite: str = Field(default="bookworm", description="Suite for the offline recipe.")
    debian_mirror: str | None = Field(
        default=None, description="Mirror for debootstrap; None reads the host's apt sources."
    )
    repository: str = Field(default="fixrunner", description="Image name prefix.")


class ToolSettings(Model):
    """Test tools used when a repository does not pin its own."""

    pytest: str = Field(default="", description="pytest requirement; '' resolves as of commit.")
    flake8: str = Field(default="", description="flake8 requirement; '' resolves as of commit.")
    resolution: Literal["as-of-commit", "latest"] = Field(
        default="as-of-commit",
        description="Unpinned dependencies resolve as of the base commit's date, or newest.",
    )
    installer: Literal["uv", "pip"] = Field(
        default="uv", description="Installer used offline inside the image build."
    )


class RepoOverride(Model):
    """Per-repository install steps and test command, keyed by URL or path in runner.toml."""

    install: list[str] = Field(
        default_factory=list, description="Requirement lines installed instead of detection."
    )
    test_command: list[str] | None = Field(default=None, description="argv replacing pytest.")
    python_path: list[str] = Field(
        default_factory=list, description="Repository-relative dirs put on sys.path."
    )


class PathSettings(Model):
    """Where caches and job folders live."""

    state_dir: Path = Field(
        default=Path("~/.cache/fixrunner"), description="Mirrors, wheels, job folders."
    )

    @property
    def root(self) -> Path:
        """The expanded state directory."""
        return self.state_dir.expanduser()


class SecuritySettings(Model):
    """What a job may point the runner at."""

    allow_local_repos: bool = Field(
        default=True, description="Local paths and file:// URLs (the service turns this off)."
    )


class Settings(Model):
    """The whole runner configuration."""

    engine: EngineSettings = Field(default_factory=EngineSettings)
    images: ImageSettings = Field(default_factory=ImageSettings)
    tools: ToolSettings = Field(default_factory=ToolSettings)
    sandbox: Limits = Field(default_factory=Limits, description="Default sandbox limits.")
    paths: PathSettings = Field(default_factory=PathSettings)
    security: SecuritySettings = Field(default_factory=SecuritySettings)
    repos: dict[str, RepoOverride] = Field(
        default_factory=dict, description="Per-repository overrides."
    )
    log_level: Annotated[
        Literal["debug", "info", "warning", "error"], Field(description="Log level.")
    ] = "info"

    source: Path | None = Field(default=None, exclude=True, description="File it came from.")


def find_config(explicit: Path | None = None) -> Path | None:
    """Return the config file to read: explicit, RUNNER_CONFIG, ./runner.toml, or none."""
    if explicit is not None:
        if not explicit.is_file():
            raise ConfigError(f"config file {explicit} does not exist")
        return explicit
    env = os.environ.get("RUNNER_CONFIG")
    if env:
        path = Path(env)
        if not path.is_file():
            raise ConfigError(f"RUNNER_CONFIG points at {path}, which does not exist")
        return path
    local = Path.cwd() / DEFAULT_CONFIG_NAME
    return local if local.is_file() else None


def load_settings(path: Path | None = None, environ: dict[str, str] | None = None) -> Settings:
    """Read runner.toml (if any), apply ``RUNNER_SECTION__KEY`` overrides, validate."""
    config_path = find_config(path)
    data: dict[str, Any] = {}
    if config_path is not None:
        try:
            data = tomllib.loads(config_path.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{config_path}: not valid TOML: {exc}") from exc
    _apply_env_overrides(data, os.environ if environ is None else environ)
    try:
        settings = Settings.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(describe_validation_error(exc, config_path)) from exc
    return settings.model_copy(update={"source": config_path})


def _apply_env_overrides(data: dict[str, Any], environ: Any) -> None:
    # RUNNER_SANDBOX__MEMORY_MB=512 sets [sandbox] memory_mb; values are parsed as TOML
    # scalars so numbers and booleans keep their types, and plain words stay strings.
    for key, raw in environ.items():
        if not key.startswith(ENV_PREFIX) or key == "RUNNER_CONFIG" or "__" not in key:
            continue
        parts = key[len(ENV_PREFIX) :].lower().split("__")
        target = data
        for part in parts[:-1]:
            node = target.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"{key}: [{part}] is not a section")
            target = node
        target[parts[-1]] = _parse_scalar(raw)


def _parse_scalar(raw: str) -> Any:
    try:
        return tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        return raw


def describe_validation_error(exc: ValidationError, source: Path | None) -> str:
    """One readable line per problem: where, what, and what was given."""
    where = str(source) if source else "configuration"
    lines = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"])
        if err["type"] == "extra_forbidden":
            lines.append(f"{where}: unknown key '{loc}'")
        else:
            lines.append(f"{where}: {loc}: {err['msg']} (got {err.get('input')!r})")
    return "\n".join(lines)
