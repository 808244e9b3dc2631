"""A job's log as one text stream: progress lines and each phase's log as it appears.

Phase logs are written whole when a phase ends; one is sent once its size has held
still for a poll (or the job is over), so a half-written file is never sent.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path

import anyio

from runner.service.workers import PROGRESS_LOG

POLL_S = 0.5


def _read_from(path: Path, offset: int) -> bytes:
    try:
        with path.open("rb") as handle:
            handle.seek(offset)
            return handle.read()
    except FileNotFoundError:
        return b""


def _phase_block(path: Path) -> bytes:
    body = path.read_bytes()
    if body and not body.endswith(b"\n"):
        body += b"\n"
    name = path.stem
    return f"--- {name} ---\n".encode() + body + f"--- end of {name} ---\n".encode()


async def follow_logs(
    folder: Path, finished: Callable[[], bool], follow: bool, poll_s: float = POLL_S
) -> AsyncIterator[bytes]:
    """Yield the job's log; with ``follow``, keep going until ``finished()`` is true."""
    offset = 0
    sent: set[str] = set()
    sizes: dict[str, int] = {}
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
        logs = folder / "logs"
        for path in _by_mtime(logs):
            if path.name in sent:
                continue
            size = path.stat().st_size
            if over or sizes.get(path.name) == size:
                sent.add(path.name)
                yield _phase_block(path)
            else:
                sizes[path.name] = size
        if over:
            return
        await anyio.sleep(poll_s)


def _by_mtime(logs: Path) -> list[Path]:
    if not logs.is_dir():
        return []
    found = []
    for path in logs.glob("*.log"):
        try:
            found.append((path.stat().st_mtime_ns, path.name, path))
        except FileNotFoundError:
            continue
    return [path for _, _, path in sorted(found)]
