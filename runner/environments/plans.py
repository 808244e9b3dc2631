"""The two records of dependency handling: the plan read from a checkout, and its pins."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from runner.environments.requirements import pin_name_version
from runner.models import EnvironmentInfo, Model

PlanKind = Literal["override", "locked", "pinned", "declared"]
# Groups and extras that carry test dependencies, in order of preference.
TEST_GROUPS = ("test", "tests", "testing", "dev")
TOOLS = ("pytest", "flake8")


class InstallPlan(Model):
    """How a checkout's environment is to be resolved, before any network is used."""

    kind: PlanKind = Field(description="Which source won: override, locked, pinned, declared.")
    label: str = Field(description="The file (or runner.toml) the plan comes from.")
    files: list[str] = Field(default_factory=list, description="Repository files read.")
    requirements: list[str] = Field(default_factory=list, description="Requirement lines.")
    constraints: list[str] = Field(default_factory=list, description="Constraint lines (-c).")
    install_project: bool = Field(default=False, description="Install the project editable.")
    project_extras: list[str] = Field(
        default_factory=list, description="Extras named with the project ('.[test]')."
    )
    build_requires: list[str] = Field(
        default_factory=list, description="The project's build backend requirements."
    )
    pth_paths: list[str] = Field(
        default_factory=list, description="In-container dirs put on sys.path by a .pth file."
    )
    project_name: str = Field(
        default="",
        description="The project's distribution name: static files, else the build backend's "
        "metadata; empty when unknown.",
    )
    notes: list[str] = Field(default_factory=list, description="What detection skipped and why.")
    origins: dict[str, str] = Field(
        default_factory=dict, description="Per requirement line: the file or section it came from."
    )
    metadata_extras: list[str] | None = Field(
        default=None,
        description="Set when setup.py computes its requirements: the extras to read from "
        "the build backend's metadata (PEP 517, in a sandbox).",
    )


class ResolvedEnvironment(Model):
    """A fully pinned environment: what the env image installs and the verdict reports."""

    source: str = Field(description="e.g. 'locked: uv.lock', 'as-of: 2024-11-10'.")
    kind: PlanKind = Field(description="Which detection source won.")
    as_of: str | None = Field(default=None, description="exclude-newer date; None for latest.")
    python: str = Field(description="Python major.minor resolved for.")
    python_reason: str = Field(
        default="", description="Why this Python: the tree's evidence or runner.toml."
    )
    pins: list[str] = Field(description="Sorted 'name==version' lines (or 'name @ url').")
    pytest: str | None = Field(default=None, description="Resolved pytest version.")
    flake8: str | None = Field(default=None, description="Resolved flake8 version.")
    tool_sources: dict[str, str] = Field(
        default_factory=dict, description="Per tool: repository, runner.toml or resolver."
    )
    install_project: bool = Field(default=False, description="Project installed editable.")
    pth_paths: list[str] = Field(default_factory=list, description="Dirs on sys.path via .pth.")
    project_name: str = Field(default="", description="The project's distribution name.")
    files: list[str] = Field(default_factory=list, description="Repository files read.")
    notes: list[str] = Field(default_factory=list, description="Caveats worth reporting.")
    origins: dict[str, str] = Field(
        default_factory=dict, description="Per requirement line: where detection found it."
    )

    @property
    def packages(self) -> dict[str, str]:
        """Resolved versions by canonical name (URL pins map to '')."""
        return dict(pin_name_version(pin) for pin in self.pins)

    def environment_info(self, python: str | None = None) -> EnvironmentInfo:
        """The verdict's images.environment block."""
        tools = {name: version for name in TOOLS if (version := getattr(self, name))}
        return EnvironmentInfo(
            resolution=self.source,
            python=python or self.python,
            python_reason=self.python_reason,
            tools=tools,
            packages=self.packages,
        )
