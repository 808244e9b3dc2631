"""structlog set-up, done once at an entry point (CLI or service), never at import."""

from __future__ import annotations

import logging
import sys
from typing import TextIO

import structlog

_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}


class _CurrentStderr:
    """Writes to whatever ``sys.stderr`` is at the time of writing.

    Binding the stream object itself would keep writing to a stream that was replaced
    and closed since (pytest's capture, a service that redirects stderr).
    """

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()

    def isatty(self) -> bool:
        return sys.stderr.isatty()


def configure_logging(level: str = "info", stream: TextIO | None = None) -> None:
    """JSON lines when the stream is not a TTY, a readable console renderer when it is."""
    out: TextIO = stream or _CurrentStderr()  # type: ignore[assignment]
    renderer: structlog.typing.Processor
    if out.isatty():
        renderer = structlog.dev.ConsoleRenderer(colors=True)
    else:
        renderer = structlog.processors.JSONRenderer()
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.dict_tracebacks,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(_LEVELS[level]),
        logger_factory=structlog.PrintLoggerFactory(file=out),
        cache_logger_on_first_use=False,
    )


def bind_job(job_id: str) -> None:
    """Bind a job id to every log line of the current context (thread or task)."""
    structlog.contextvars.bind_contextvars(job_id=job_id)


def unbind_job() -> None:
    """Drop the job id bound by :func:`bind_job`."""
    structlog.contextvars.unbind_contextvars("job_id")
