"""The production error a fix starts from: an ErrorReport, and what the loop derives from it.

Pure. A report holds the traceback exactly as Python printed it; the exception type and
message default to the traceback's last exception. Request headers that carry secrets
are dropped on input, so they never reach a prompt, a log or a result.
"""

from __future__ import annotations

import re
import shlex
from pathlib import PurePosixPath

from pydantic import Field, field_validator, model_validator

from runner.core.errormatch import repo_frames
from runner.core.tracebacks import ExceptionInfo, RepoFrame, parse_last_exception
from runner.models import Model

__all__ = [
    "ErrorReport",
    "ReportEnvironment",
    "Repro",
    "RequestContext",
    "derive_repro",
    "report_frames",
]

# Header names (lower case) whose values are credentials or session state.
_SECRET_HEADERS = re.compile(
    r"^(?:authorization|proxy-authorization|cookie|set-cookie|x-api-key|api-key)$"
    r"|auth|token|secret|password|session|api[-_]?key|csrf",
    re.IGNORECASE,
)
_SCRIPT_DIRS = ("scripts", "bin", "tools")


class RequestContext(Model):
    """The HTTP request being served when the error happened (no secrets)."""

    method: str | None = Field(default=None, description="HTTP method.")
    path: str | None = Field(default=None, description="Path and query, without credentials.")
    headers: dict[str, str] = Field(
        default_factory=dict,
        description="Request headers; Authorization, Cookie, X-Api-Key and the like are dropped.",
    )

    @field_validator("headers")
    @classmethod
    def _drop_secrets(cls, value: dict[str, str]) -> dict[str, str]:
        return {k: v for k, v in value.items() if not _SECRET_HEADERS.search(k)}


class ReportEnvironment(Model):
    """Where the error happened: interpreter and installed packages."""

    python: str | None = Field(default=None, description="Python version, e.g. 3.11.9.")
    packages: dict[str, str] = Field(default_factory=dict, description="Package versions.")


class ErrorReport(Model):
    """One production error, as an error tracker would send it."""

    exception_type: str = Field(
        default="", description="Exception type; default: the traceback's last exception."
    )
    message: str = Field(default="", description="Exception message; default: the traceback's.")
    traceback: str = Field(min_length=1, description="The traceback exactly as Python printed it.")
    argv: list[str] | None = Field(
        default=None, description="The process's command line (sys.argv), when known."
    )
    request: RequestContext | None = Field(default=None, description="The request, if any.")
    environment: ReportEnvironment | None = Field(default=None, description="Runtime versions.")

    @model_validator(mode="after")
    def _from_traceback(self) -> ErrorReport:
        info = parse_last_exception(self.traceback)
        if info is None:
            raise ValueError("traceback: no Python traceback found in the text")
        if not self.exception_type:
            self.exception_type = info.type
            self.message = self.message or info.message
        return self

    @classmethod
    def from_text(cls, text: str) -> ErrorReport:
        """A report from a JSON document, or from a bare traceback as Python printed it."""
        if text.lstrip().startswith("{"):
            return cls.model_validate_json(text)
        return cls(traceback=text)

    @property
    def exception(self) -> ExceptionInfo:
        """The parsed last exception of the traceback, with its chain."""
        info = parse_last_exception(self.traceback)
        assert info is not None  # checked by the validator
        return info

    @property
    def short_type(self) -> str:
        """The exception type without its module path."""
        return self.exception_type.rsplit(".", 1)[-1]

    @property
    def summary(self) -> str:
        """``Type: first line of the message``."""
        first = self.message.strip().splitlines()[0].strip() if self.message.strip() else ""
        return f"{self.exception_type}: {first}" if first else self.exception_type


class Repro(Model):
    """A repro command and expected error derived from a report."""

    command: str = Field(description="Command run from the repository root.")
    expect_error: str = Field(description="'Type: first message line' the baseline must show.")


def report_frames(report: ErrorReport, repo_files: set[str] | frozenset[str]) -> list[RepoFrame]:
    """Repository frames of the last exception, outermost first; earlier chain members after."""
    info = report.exception
    frames = repo_frames(info, repo_files)
    for earlier in reversed(info.chain):
        frames += [f for f in repo_frames(earlier, repo_files) if f not in frames]
    return frames


def derive_repro(report: ErrorReport, repo_files: set[str] | frozenset[str]) -> Repro | None:
    """``python <script>`` when the outermost repository frame is a script run as ``__main__``."""
    frames = repo_frames(report.exception, repo_files)
    if not frames:
        return None
    outer = frames[0]
    path = PurePosixPath(outer.repo_path)
    # Run as a script: its module frame is the outermost of all. When a server or a
    # test runner imported it, their own frames come first.
    if outer.frame != report.exception.frames[0]:
        return None
    if outer.frame.function != "<module>" or path.suffix != ".py":
        return None
    args = _script_args(report.argv, path)
    if path.name == "manage.py":
        # `python manage.py` alone prints help and exits 0: without its arguments the
        # command cannot show the error, and every attempt would be rejected for it.
        if not args:
            return None
    elif not (len(path.parts) == 1 or any(part in _SCRIPT_DIRS for part in path.parts[:-1])):
        return None
    first_line = report.message.strip().splitlines()[0].strip() if report.message.strip() else ""
    expect = f"{report.short_type}: {first_line}" if first_line else report.short_type
    return Repro(command=shlex.join(["python", str(path), *args]), expect_error=expect)


def _script_args(argv: list[str] | None, path: PurePosixPath) -> list[str]:
    """The arguments after the script in argv, when argv[0] is that script."""
    if not argv or PurePosixPath(argv[0].replace("\\", "/")).name != path.name:
        return []
    return argv[1:]
