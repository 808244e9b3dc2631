"""A Sentry event (the part a fix needs) and its mapping to the fix loop's ErrorReport.

The SDK sends the exception chain oldest first, frames outermost first; the report gets
the traceback back as Python would have printed it, so the loop reads it like any other.
Request headers that carry credentials are dropped by :class:`RequestContext` itself.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator

from runner.fix.errorreport import ErrorReport, ReportEnvironment, RequestContext

__all__ = ["SentryEvent", "SentryException", "SentryFrame", "to_error_report"]

_CAUSE = "The above exception was the direct cause of the following exception:"
_CONTEXT = "During handling of the above exception, another exception occurred:"
_BUILTIN_MODULES = ("builtins", "__builtin__", "exceptions")
_MAX_FRAMES = 200


class _Lenient(BaseModel):
    # An SDK sends many more keys than a fix needs, and newer SDKs add keys: ignore them.
    model_config = ConfigDict(extra="ignore")


class SentryFrame(_Lenient):
    """One stack frame as the SDK reports it."""

    filename: str | None = None
    abs_path: str | None = None
    function: str | None = None
    module: str | None = None
    lineno: int | None = None
    context_line: str | None = None
    in_app: bool | None = None

    @property
    def path(self) -> str:
        """The file as the traceback names it: absolute when the SDK knows it."""
        return self.abs_path or self.filename or "<unknown>"


class _Stacktrace(_Lenient):
    frames: list[SentryFrame] = Field(default_factory=list)


class _Mechanism(_Lenient):
    type: str | None = None
    source: str | None = None


class SentryException(_Lenient):
    """One member of the exception chain."""

    type: str = "Exception"
    value: str | None = None
    module: str | None = None
    stacktrace: _Stacktrace | None = None
    mechanism: _Mechanism | None = None

    @property
    def full_type(self) -> str:
        """``module.Type`` unless the module is the builtins."""
        if self.module and self.module not in _BUILTIN_MODULES:
            return f"{self.module}.{self.type}"
        return self.type

    @property
    def frames(self) -> list[SentryFrame]:
        """Frames outermost first (capped)."""
        return self.stacktrace.frames[-_MAX_FRAMES:] if self.stacktrace else []


class _ExceptionList(_Lenient):
    values: list[SentryException] = Field(default_factory=list)


class _Request(_Lenient):
    method: str | None = None
    url: str | None = None
    headers: dict[str, str] | list[list[str]] = Field(default_factory=dict)

    def header_map(self) -> dict[str, str]:
        if isinstance(self.headers, dict):
            return {str(k): str(v) for k, v in self.headers.items()}
        return {str(p[0]): str(p[1]) for p in self.headers if len(p) == 2}


class SentryEvent(_Lenient):
    """The fields of an error event that a fix and its grouping need."""

    event_id: str | None = None
    timestamp: datetime | None = None
    platform: str | None = None
    release: str | None = None
    environment: str | None = None
    fingerprint: list[str] | None = None
    exception: _ExceptionList | None = None
    request: _Request | None = None
    contexts: dict[str, Any] = Field(default_factory=dict)
    modules: dict[str, str] = Field(default_factory=dict)
    extra: dict[str, Any] = Field(default_factory=dict)

    @field_validator("timestamp", mode="before")
    @classmethod
    def _epoch(cls, value: Any) -> Any:
        # The SDK's envelopes carry ISO text; the store endpoint's older clients, epoch seconds.
        if isinstance(value, int | float):
            return datetime.fromtimestamp(value, UTC)
        return value

    @property
    def exceptions(self) -> list[SentryException]:
        """The chain, oldest first (the last one is what the program died of)."""
        return self.exception.values if self.exception else []

    @property
    def argv(self) -> list[str] | None:
        """sys.argv, which the SDK's Argv integration puts in ``extra``."""
        value = self.extra.get("sys.argv")
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            return list(value)
        return None


def _render(exc: SentryException) -> list[str]:
    lines = ["Traceback (most recent call last):"]
    for frame in exc.frames:
        where = f'  File "{frame.path}", line {frame.lineno or 0}, in {frame.function or "?"}'
        lines.append(where)
        if frame.context_line and frame.context_line.strip():
            lines.append(f"    {frame.context_line.strip()}")
    value = (exc.value or "").rstrip("\n")
    lines.append(f"{exc.full_type}: {value}" if value else exc.full_type)
    return lines


def render_traceback(event: SentryEvent) -> str:
    """The event's exception chain as Python prints it; '' when it has no exception."""
    chain = event.exceptions
    parts: list[str] = []
    for index, exc in enumerate(chain):
        if index:
            # The SDK marks the earlier member with how it links to the next one.
            earlier = chain[index - 1].mechanism
            linked = earlier.source if earlier else None
            parts += ["", _CONTEXT if linked == "__context__" else _CAUSE, ""]
        parts += _render(exc)
    return "\n".join(parts) + "\n" if parts else ""


def to_error_report(event: SentryEvent) -> ErrorReport | None:
    """The fix loop's report of an event; None when the event carries no exception."""
    text = render_traceback(event)
    if not text or not event.exceptions:
        return None
    last = event.exceptions[-1]
    request = None
    if event.request is not None and (event.request.method or event.request.url):
        # The path only: the query string may hold tokens, the host is the deployment's.
        path = urlsplit(event.request.url).path if event.request.url else None
        request = RequestContext(
            method=event.request.method, path=path, headers=event.request.header_map()
        )
    runtime = event.contexts.get("runtime")
    python = runtime.get("version") if isinstance(runtime, dict) else None
    environment = None
    if python or event.modules:
        environment = ReportEnvironment(
            python=str(python) if python else None, packages=dict(event.modules)
        )
    return ErrorReport(
        exception_type=last.full_type,
        message=last.value or "",
        traceback=text,
        argv=event.argv,
        request=request,
        environment=environment,
    )
