"""Sentry's wire formats: the auth header, envelopes and store bodies, as plain data.

An envelope is a JSON header line, then items: each a JSON item header and a payload of
``length`` bytes (or up to the next newline). Only ``event`` items are errors; the SDK's
other items (sessions, client reports, transactions) are read and dropped, as Sentry
accepts them. Bodies arrive gzip- or deflate-compressed; inflating is capped.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from runner.errors import JobInputError
from runner.ingest.events import SentryEvent

__all__ = [
    "MAX_EVENTS",
    "EnvelopeError",
    "decompress",
    "parse_auth",
    "parse_envelope",
    "parse_store_body",
]

MAX_EVENTS = 20  # events per envelope; the SDK sends one


class EnvelopeError(JobInputError):
    """A body Sentry would refuse; ``status`` is the HTTP answer (400 or 413)."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def parse_auth(header: str | None, query: Mapping[str, str]) -> str | None:
    """The DSN public key from ``X-Sentry-Auth: Sentry sentry_key=…`` or ``?sentry_key=``."""
    if header:
        text = header.strip()
        if text.lower().startswith("sentry "):
            text = text[len("sentry ") :]
        for part in text.split(","):
            name, _, value = part.strip().partition("=")
            if name.strip() == "sentry_key" and value.strip():
                return value.strip()
    key = query.get("sentry_key")
    return key or None


def decompress(body: bytes, encoding: str | None, limit: int) -> bytes:
    """The body inflated (gzip, deflate or none); 413 past ``limit`` bytes, 400 if corrupt."""
    name = (encoding or "identity").strip().lower()
    if name in ("", "identity"):
        data = body
    elif name in ("gzip", "deflate"):
        wbits = 16 + zlib.MAX_WBITS if name == "gzip" else zlib.MAX_WBITS
        inflater = zlib.decompressobj(wbits)
        try:
            data = inflater.decompress(body, limit + 1)
        except zlib.error as exc:
            raise EnvelopeError(f"the {name} body is corrupt: {exc}") from None
    else:
        raise EnvelopeError(f"unsupported Content-Encoding {name!r}: send gzip or deflate")
    if len(data) > limit:
        raise EnvelopeError(f"the body is larger than {limit} bytes once inflated", 413)
    return data


def _json(raw: bytes, what: str) -> dict[str, Any]:
    try:
        value = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise EnvelopeError(f"the {what} is not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise EnvelopeError(f"the {what} is not a JSON object")
    return value


def _event(payload: dict[str, Any]) -> SentryEvent:
    try:
        return SentryEvent.model_validate(payload)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise EnvelopeError(f"the event is invalid at {where}: {first['msg']}") from None


def parse_store_body(data: bytes) -> SentryEvent:
    """The event of a store request (one JSON object)."""
    return _event(_json(data, "event"))


def parse_envelope(data: bytes) -> list[SentryEvent]:
    """The error events of an envelope (possibly none); EnvelopeError when it is malformed."""
    end = data.find(b"\n")
    header_line = data if end < 0 else data[:end]
    if not header_line.strip():
        raise EnvelopeError("empty envelope")
    _json(header_line, "envelope header")
    pos = len(data) if end < 0 else end + 1
    events: list[SentryEvent] = []
    while pos < len(data):
        end = data.find(b"\n", pos)
        line = data[pos:] if end < 0 else data[pos:end]
        pos = len(data) if end < 0 else end + 1
        if not line.strip():
            continue  # a trailing newline
        item = _json(line, "item header")
        length = item.get("length")
        if length is not None:
            if not isinstance(length, int) or length < 0 or pos + length > len(data):
                raise EnvelopeError("an item's length runs past the end of the envelope")
            payload = data[pos : pos + length]
            pos += length
            if data[pos : pos + 1] == b"\n":
                pos += 1
        else:
            end = data.find(b"\n", pos)
            payload = data[pos:] if end < 0 else data[pos:end]
            pos = len(data) if end < 0 else end + 1
        if item.get("type") == "event":
            if len(events) >= MAX_EVENTS:
                raise EnvelopeError(f"more than {MAX_EVENTS} events in one envelope", 413)
            events.append(_event(_json(payload, "event")))
    return events
