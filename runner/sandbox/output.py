"""A byte stream kept as head + tail with a visible marker where it was cut.

Pure and bounded: feeding it a gigabyte holds at most ``cap`` bytes in memory.
"""

from __future__ import annotations

from collections import deque

MARKER = "\n[... fixrunner: {omitted} bytes of output omitted ...]\n"


class CappedOutput:
    """Keeps the first and last ``cap // 2`` bytes of everything fed to it."""

    def __init__(self, cap: int) -> None:
        self._head_cap = cap // 2
        self._tail_cap = cap - self._head_cap
        self._head = bytearray()
        self._tail: deque[bytes] = deque()
        self._tail_len = 0
        self.total = 0

    def feed(self, chunk: bytes) -> None:
        """Add a chunk; the middle beyond the cap is dropped as it arrives."""
        self.total += len(chunk)
        room = self._head_cap - len(self._head)
        if room > 0:
            self._head += chunk[:room]
            chunk = chunk[room:]
        if not chunk:
            return
        if len(chunk) >= self._tail_cap:
            self._tail.clear()
            self._tail.append(bytes(chunk[-self._tail_cap :]))
            self._tail_len = self._tail_cap
            return
        self._tail.append(bytes(chunk))
        self._tail_len += len(chunk)
        while self._tail_len - len(self._tail[0]) >= self._tail_cap:
            self._tail_len -= len(self._tail.popleft())

    @property
    def truncated(self) -> bool:
        """True when bytes were dropped from the middle."""
        return self.total > len(self._head) + min(self._tail_len, self._tail_cap)

    def text(self) -> str:
        """Head, marker (when cut) and tail, decoded leniently as UTF-8."""
        tail = b"".join(self._tail)
        if len(tail) > self._tail_cap:
            tail = tail[-self._tail_cap :]
        kept = len(self._head) + len(tail)
        head = bytes(self._head).decode("utf-8", "replace")
        tail_text = tail.decode("utf-8", "replace")
        if self.total > kept:
            return head + MARKER.format(omitted=self.total - kept) + tail_text
        return head + tail_text
