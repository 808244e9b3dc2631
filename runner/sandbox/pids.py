"""The container's pids cgroup: has a fork been refused at its limit?

The kernel counts every fork the pids limit refused in the cgroup's ``pids.events``
("max N"). A climbing counter means the code under test is filling the process table;
the watchdog stops such a container at once instead of waiting for its deadline.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["PidsEvents"]

CGROUP_ROOT = Path("/sys/fs/cgroup")


def _candidates(root: Path, container_id: str) -> list[Path]:
    """Where engines put a container's pids.events: cgroup v1 and v2, cgroupfs and systemd."""
    return [
        root / "pids" / "docker" / container_id / "pids.events",
        root / "pids" / "system.slice" / f"docker-{container_id}.scope" / "pids.events",
        root / "docker" / container_id / "pids.events",
        root / "system.slice" / f"docker-{container_id}.scope" / "pids.events",
    ]


def _read_max(path: Path) -> int | None:
    try:
        text = path.read_text(encoding="ascii")
    except (OSError, UnicodeDecodeError):
        return None
    for line in text.splitlines():
        key, _, value = line.partition(" ")
        if key == "max" and value.strip().isdigit():
            return int(value)
    return None


class PidsEvents:
    """One container's refused-fork counter, read from the host's cgroup tree."""

    def __init__(self, container_id: str, root: Path = CGROUP_ROOT) -> None:
        self.path = next((p for p in _candidates(root, container_id) if p.is_file()), None)
        self._start = _read_max(self.path) if self.path is not None else None

    @property
    def visible(self) -> bool:
        """True when the counter could be found (a remote engine's cgroups are not)."""
        return self._start is not None

    def climbed(self) -> bool:
        """True once a fork was refused at the limit since this object was made."""
        if self.path is None or self._start is None:
            return False
        now = _read_max(self.path)
        return now is not None and now > self._start
