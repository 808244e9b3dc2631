"""runner.toml plus ``RUNNER_*`` overrides, validated once into one settings model.

Nothing here runs at import time. Unknown keys are errors that name the key, so a
typo in the config never silently falls back to a default.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, ValidationError, model_validator

from runner.config.sections import (
    AffectedSettings,
    EngineSettings,
    ImageSettings,
    PathSettings,
    RepoOverride,
    SecuritySettings,
    ToolSettings,
    WorkspaceSettings,
)
from runner.config.services import (
    CelerySettings,
    FixerSettings,
    GitHubSettings,
    Price,
    ProjectSettings,
    ServiceSettings,
    ServiceToken,
)
from runner.errors import ConfigError
from runner.models import Limits, Model

__all__ = [
    "DEFAULT_CONFIG_NAME",
    "ENV_PREFIX",
    "AffectedSettings",
    "CelerySettings",
    "EngineSettings",
    "FixerSettings",
    "GitHubSettings",
    "ImageSettings",
    "PathSettings",
    "Price",
    "ProjectSettings",
    "RepoOverride",
    "SecuritySettings",
    "ServiceSettings",
    "ServiceToken",
    "Settings",
    "ToolSettings",
    "WorkspaceSettings",
    "describe_validation_error",
    "find_config",
    "load_settings",
    "service_settings",
]

ENV_PREFIX = "RUNNER_"
DEFAULT_CONFIG_NAME = "runner.toml"


class Settings(Model):
    """The whole runner configuration."""

    engine: EngineSettings = Field(default_factory=EngineSettings)
    images: ImageSettings = Field(default_factory=ImageSettings)
    tools: ToolSettings = Field(default_factory=ToolSettings)
    sandbox: Limits = Field(default_factory=Limits, description="Default sandbox limits.")
    paths: PathSettings = Field(default_factory=PathSettings)
    security: SecuritySettings = Field(default_factory=SecuritySettings)
    workspace: WorkspaceSettings = Field(default_factory=WorkspaceSettings)
    affected: AffectedSettings = Field(default_factory=AffectedSettings)
    service: ServiceSettings = Field(default_factory=ServiceSettings)
    celery: CelerySettings = Field(default_factory=CelerySettings)
    fixer: FixerSettings = Field(default_factory=FixerSettings)
    repos: dict[str, RepoOverride] = Field(
        default_factory=dict, description="Per-repository overrides."
    )
    projects: dict[str, ProjectSettings] = Field(
        default_factory=dict, description="Error-tracking projects by DSN project id."
    )
    github: GitHubSettings = Field(default_factory=GitHubSettings)
    log_level: Annotated[
        Literal["debug", "info", "warning", "error"], Field(description="Log level.")
    ] = "info"

    source: Path | None = Field(default=None, exclude=True, description="File it came from.")

    @model_validator(mode="after")
    def _celery_limit_above_job(self) -> Settings:
        # Baseline and candidate run side by side, then re-runs: a job takes at least two
        # sandbox timeouts; a hard limit below that would cut a legitimate job short.
        if self.celery.task_time_limit_s <= 2 * self.sandbox.timeout_s:
            raise ValueError(
                f"celery.task_time_limit_s ({self.celery.task_time_limit_s:g}) must be above "
                f"twice sandbox.timeout_s ({self.sandbox.timeout_s:g})"
            )
        return self


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


def service_settings(settings: Settings) -> Settings:
    """Settings as the service runs them: local repositories only if [service] allows."""
    security = settings.security.model_copy(
        update={"allow_local_repos": settings.service.allow_local_repos}
    )
    return settings.model_copy(update={"security": security})
