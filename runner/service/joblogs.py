"""A job's log as one text stream: progress lines and each phase's log as it appears.

Phase logs are written whole when a phase ends; one is sent once its size has held
still for a poll (or the job is over), so a half-written file is never sent. A fix
job's phase logs live in its attempts' job folders (<id>-a1/logs, …): ``log_dirs``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path

import anyio

from runner.service.jobs import PROGRESS_LOG

POLL_S = 0.5


def _read_from(path: Path, offset: int) -> bytes:
    try:
        with path.open("rb") as handle:
            handle.seek(offset)
            return handle.read()
    except FileNotFoundError:
        return b""


def _phase_block(path: Path, label: str) -> bytes:
    body = path.read_bytes()
    if body and not body.endswith(b"\n"):
        body += b"\n"
    name = f"{label} {path.stem}" if label else path.stem
    return f"--- {name} ---\n".encode() + body + f"--- end of {name} ---\n".encode()


async def follow_logs(
    folder: Path,
    finished: Callable[[], bool],
    follow: bool,
    poll_s: float = POLL_S,
    log_dirs: Callable[[], list[Path]] | None = None,
) -> AsyncIterator[bytes]:
    """Yield the job's log; with ``follow``, keep going until ``finished()`` is true.

    Phase logs come from ``folder``/logs, or from every folder ``log_dirs()`` names
    (then each block is labelled with its job folder's name).
    """
    offset = 0
    sent: set[Path] = set()
    sizes: dict[Path, int] = {}
    while True:
        # Read the state first: whatever was written before the job ended is then read below.
        over = finished() or not follow
        chunk = _read_from(folder / PROGRESS_LOG, offset)
        if not over and b"\n" in chunk:
            chunk = chunk[: chunk.rindex(b"\n") + 1]  # whole lines only while it grows
        elif not over:
            chunk = b""
        if chunk:
            offset += len(chunk)
            yield chunk
        dirs = log_dirs() if log_dirs is not None else [folder / "logs"]
        for path in _by_mtime(dirs):
            if path in sent:
                continue
            try:
                size = path.stat().st_size
            except FileNotFoundError:
                continue
            if over or sizes.get(path) == size:
                sent.add(path)
                yield _phase_block(path, path.parent.parent.name if log_dirs else "")
            else:
                sizes[path] = size
        if over:
            return
        await anyio.sleep(poll_s)


def _by_mtime(dirs: list[Path]) -> list[Path]:
    found = []
    for logs in dirs:
        if not logs.is_dir():
            continue
        for path in logs.glob("*.log"):
            try:
                found.append((path.stat().st_mtime_ns, str(path), path))
            except FileNotFoundError:
                continue
    return [path for _, _, path in sorted(found)]
