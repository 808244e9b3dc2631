"""Small host-side file helpers shared by the caches and the readers of sandbox output."""

from __future__ import annotations

import contextlib
import fcntl
import os
import stat
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive advisory lock on ``path`` (created if missing) across processes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def read_regular(path: Path, max_bytes: int) -> bytes | None:
    """Up to ``max_bytes + 1`` bytes of a regular file, never following a symlink.

    For files a sandbox could have written or replaced: a link, a FIFO or a missing file
    reads as None. The caller sees a file over the cap by its length.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return None
    with os.fdopen(fd, "rb") as handle:
        if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
            return None
        return handle.read(max_bytes + 1)


def read_inside(root: Path, path: Path, max_bytes: int) -> bytes | None:
    """Like read_regular, for a file of a tree the host reads (a checkout, a policy folder).

    A link is followed only while it stays under ``root``: one that leaves it, a FIFO,
    a device or a missing file reads as None, so a host file's content never comes back.
    """
    try:
        real = path.resolve()
        inside = real.is_relative_to(root.resolve())
    except (OSError, RuntimeError):  # RuntimeError: a link loop
        return None
    return read_regular(real, max_bytes) if inside else None
