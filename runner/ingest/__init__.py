"""Errors as an error tracker's SDK sends them: envelopes, events, grouping.

Pure code on plain data: the service's Sentry-compatible endpoints parse with it, and the
fix loop gets an :class:`~runner.fix.errorreport.ErrorReport` out of it.
"""

from __future__ import annotations

from runner.ingest.envelope import EnvelopeError, parse_auth, parse_envelope, parse_store_body
from runner.ingest.events import SentryEvent, to_error_report
from runner.ingest.grouping import fingerprint, group_title

__all__ = [
    "EnvelopeError",
    "SentryEvent",
    "fingerprint",
    "group_title",
    "parse_auth",
    "parse_envelope",
    "parse_store_body",
    "to_error_report",
]
