"""runner.toml sections for the runner itself.

Engine, images, tools, per-repository overrides, paths, security and workspace bounds.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from runner.models import Model


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
    python: str | None = Field(
        default=None,
        pattern=r"^3\.\d+$",
        description="One Python for every job (offline: 3.9, 3.11 or 3.13); None chooses per "
        "commit from the tree's evidence.",
    )
    debian_suite: str | None = Field(
        default=None,
        description="Suite of the offline recipe; None takes the suite whose python3 is the "
        "chosen Python (bullseye 3.9, bookworm 3.11, trixie 3.13).",
    )
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
    python: str | None = Field(
        default=None,
        pattern=r"^3\.\d+$",
        description="Python for this repository's jobs; None chooses per commit.",
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


class WorkspaceSettings(Model):
    """What one repository may cost the host: checkout size and git's waits on the network."""

    checkout_max_bytes: int = Field(
        default=2 * 2**30,
        ge=1,
        description="Total file bytes of a checkout; a larger tree is refused before it is "
        "written.",
    )
    checkout_max_files: int = Field(
        default=200_000,
        ge=1,
        description="Files (and symlinks) in a checkout; a git bomb is refused before its "
        "inodes exist.",
    )
    git_connect_timeout_s: float = Field(
        default=60, gt=0, description="ssh's connect timeout for a git remote."
    )
    git_low_speed_time_s: float = Field(
        default=60,
        gt=0,
        description="A git transfer below git_low_speed_bytes per second for this long is "
        "dropped (a remote that accepts and then hangs, HTTPS or ssh).",
    )
    git_low_speed_bytes: int = Field(
        default=1000, ge=1, description="Bytes per second under which a transfer is slow."
    )


RecordMap = Literal["auto", "always", "never"]


class AffectedSettings(Model):
    """Affected tests first: when a baseline records the per-test map they are chosen from."""

    record_map: RecordMap = Field(
        default="auto",
        description="auto: only where a later candidate on the same commit is likely (the "
        "fix loop, the service and its workers), not a one-shot verify-patch or the GitHub "
        "Action; always; never. The map slows the commit's first baseline run.",
    )
