"""One sandboxed run: its limits, its mounts, what it ran and what came back."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import Field

from runner.models.base import Model


class Limits(Model):
    """Resource limits for one sandboxed run, passed to the engine by name."""

    cpus: Annotated[float, Field(gt=0, le=64, description="CPU quota in cores.")] = 1.0
    memory_mb: Annotated[int, Field(ge=32, description="Memory limit; swap equals it.")] = 1024
    pids: Annotated[int, Field(ge=16, description="Max processes and threads.")] = 256
    timeout_s: Annotated[
        float, Field(gt=0, description="Wall clock before the container is killed.")
    ] = 300
    output_bytes: Annotated[
        int, Field(ge=1024, description="Captured output cap (head and tail kept).")
    ] = 1_000_000
    tmpfs_mb: Annotated[int, Field(ge=1, description="Size of the writable /tmp tmpfs.")] = 256
    tmpfs_inodes: Annotated[int, Field(ge=64, description="Inode cap of the /tmp tmpfs.")] = 65536
    workspace_mb: Annotated[
        int,
        Field(
            ge=16,
            description="Size of the tmpfs a quota mount's writable copy lives on (it counts "
            "towards memory_mb too).",
        ),
    ] = 1024
    workspace_inodes: Annotated[
        int, Field(ge=1024, description="Inode cap of a quota mount's tmpfs.")
    ] = 262_144


class Mount(Model):
    """A host directory bound into the container."""

    source: Path = Field(description="Host path (a per-job copy, never the user's checkout).")
    target: str = Field(description="Absolute path inside the container.")
    read_only: bool = Field(default=True, description="Mount read-only.")
    quota: bool = Field(
        default=False,
        description="The container writes to a copy of ``source`` on a tmpfs capped by "
        "Limits.workspace_mb and workspace_inodes; ``source`` itself is mounted read-only "
        "and never written, so a write flood never reaches the host's disk.",
    )


class RunSpec(Model):
    """One command to run in one fresh hardened container."""

    image: str = Field(description="Image id or tag.")
    command: list[str] = Field(min_length=1, description="argv; never run through a shell.")
    workdir: str = Field(default="/work", description="Working directory inside the container.")
    mounts: list[Mount] = Field(default_factory=list, description="Bind mounts.")
    env: dict[str, str] = Field(
        default_factory=dict, description="Extra environment (allow-listed defaults are added)."
    )
    limits: Limits = Field(default_factory=Limits, description="Resource limits.")
    job_id: str = Field(default="-", description="Job the run belongs to (a container label).")
    phase: str = Field(default="run", description="Phase name, for labels and logs.")


class RunResult(Model):
    """What happened to one sandboxed run. The candidate's faults are data, not exceptions."""

    exit_code: int | None = Field(description="Exit status; None when it never exited on its own.")
    timed_out: bool = Field(description="Killed at the wall-clock timeout.")
    oom_killed: bool = Field(description="Killed by the memory limit.")
    pids_limited: bool = Field(
        default=False,
        description="Stopped at once because a fork was refused at the process limit.",
    )
    timeout_s: float | None = Field(
        default=None, description="The wall-clock deadline that applied when it ended."
    )
    duration_s: float = Field(description="Seconds from start to exit.")
    output: str = Field(description="stdout and stderr interleaved, capped (head + marker + tail).")
    output_bytes: int = Field(description="Total bytes the command wrote.")
    output_truncated: bool = Field(description="True when the middle of the output was dropped.")
    container_id: str = Field(description="Short id of the (now removed) container.")

    @property
    def ok(self) -> bool:
        """True when the command exited 0 on its own."""
        return (
            self.exit_code == 0
            and not self.timed_out
            and not self.oom_killed
            and not self.pids_limited
        )
