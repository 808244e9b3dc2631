"""Which events are the same error: a fingerprint per event, and a group's title.

Sentry's own rule, simplified: the event's ``fingerprint`` when it sets one (``{{ default }}``
stands for the computed one), else the exception types of the chain and the in-app frames
(module or file, and function). Line numbers stay out: an unrelated edit above the
failing line must not split a group.
"""

from __future__ import annotations

import hashlib

from runner.ingest.events import SentryEvent

__all__ = ["fingerprint", "group_title"]

_DEFAULT = "{{ default }}"


def _default_parts(event: SentryEvent) -> list[str]:
    parts: list[str] = []
    for exc in event.exceptions:
        parts.append(exc.full_type)
        frames = exc.frames
        in_app = [f for f in frames if f.in_app]
        # An event whose SDK marked no frame in-app still groups by where it happened.
        for frame in in_app or frames[-1:]:
            where = frame.module or frame.filename or frame.abs_path or "?"
            parts.append(f"{where}:{frame.function or '?'}")
    if not parts:
        parts.append("no-exception")
    return parts


def fingerprint(project: str, event: SentryEvent) -> str:
    """A stable 16-hex-digit id of the event's group within ``project``."""
    own = event.fingerprint
    if own:
        parts = [p for item in own for p in (_default_parts(event) if item == _DEFAULT else [item])]
    else:
        parts = _default_parts(event)
    digest = hashlib.sha256("\n".join([project, *parts]).encode("utf-8")).hexdigest()
    return digest[:16]


def group_title(event: SentryEvent) -> str:
    """``Type: first line of the message`` of the event's last exception (200 characters)."""
    if not event.exceptions:
        return "event without an exception"
    last = event.exceptions[-1]
    first = (last.value or "").strip().splitlines()[0].strip() if (last.value or "").strip() else ""
    title = f"{last.full_type}: {first}" if first else last.full_type
    return title[:200]
