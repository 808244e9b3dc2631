"""What the service refuses before a job is queued: the refusals and the input checks.

Each refusal carries its HTTP status; app.py maps them to responses.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from runner.config import ServiceSettings, Settings
from runner.errors import JobInputError, RunnerError
from runner.service.models import POLICY_NAME
from runner.service.records import Submission
from runner.verify.runtime import POLICIES_DIR
from runner.workspace.urls import validate_repo_url

_SCP = re.compile(r"^(?:[^@/:]+@)?([^/:]+):(?!//)")
_DEFAULT_PORTS = {"http": 80, "https": 443, "ssh": 22, "git": 9418}


class ServiceRefusal(RunnerError):
    """A request the service will not take; ``status`` is its HTTP status."""

    status = 400
    code: str | None = None  # sent as X-Runner-Refusal, for clients to tell refusals apart

    def __init__(self, message: str, field_name: str | None = None) -> None:
        super().__init__(message)
        self.field_name = field_name


class NotFound(ServiceRefusal):
    status = 404


class Conflict(ServiceRefusal):
    status = 409


class TooLarge(ServiceRefusal):
    status = 413


class NotAllowed(ServiceRefusal):
    status = 422


class QueueFull(ServiceRefusal):
    status = 429

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class NotAccepting(ServiceRefusal):
    status = 503


class FixerNotConfigured(ServiceRefusal):
    """503: no Anthropic API key in the service's settings or environment."""

    status = 503
    code = "fixer_not_configured"


class FixesNotSupported(ServiceRefusal):
    """501: fix jobs run on the local executor only."""

    status = 501
    code = "fixes_not_supported"


def fixer_key_configured(settings: Settings, environ: Mapping[str, str] | None = None) -> bool:
    """True when the fix loop has an API key: [fixer] api_key or ANTHROPIC_API_KEY."""
    env = os.environ if environ is None else environ
    key = settings.fixer.api_key
    return bool(key.get_secret_value() if key else env.get("ANTHROPIC_API_KEY"))


def repo_refusal(url: str, service: ServiceSettings) -> str | None:
    """Why the service refuses this repository URL, or None when it may be used."""
    try:
        validate_repo_url(url, service.allow_local_repos)
    except JobInputError as exc:
        return str(exc)
    if "://" in url and urlsplit(url).scheme.lower() == "file":
        return None  # validate_repo_url allowed it: allow_local_repos is on
    if "://" not in url and not _SCP.match(url):
        return None  # a local path, allowed by validate_repo_url
    where = _location(url)
    if where is None:
        return "the repository URL has an invalid port"
    for entry in service.repo_allowlist:
        if "/" not in entry:
            if entry.lower().rstrip(".") == where.host:
                return None
        elif (prefix := _location(entry)) is not None and where.within(prefix):
            return None
    if not service.repo_allowlist:
        return "no remote repository is allowed: [service] repo_allowlist is empty"
    return f"repository host {where.host!r} is not in [service] repo_allowlist"


@dataclass(frozen=True)
class _Location:
    """A repository URL as the allowlist compares it: normalised, path as segments."""

    scheme: str
    host: str
    port: int | None  # None: the scheme's default
    segments: tuple[str, ...]

    def within(self, prefix: _Location) -> bool:
        head = self.segments[: len(prefix.segments)]
        return (self.scheme, self.host, self.port, head) == (
            prefix.scheme,
            prefix.host,
            prefix.port,
            prefix.segments,
        )


def _location(url: str) -> _Location | None:
    """The URL normalised (case of scheme and host, default port, dot segments, ``//``,
    percent-escapes, a trailing ``.git``); None when its port is not a number."""
    if "://" in url:
        parts = urlsplit(url)
        scheme, path = parts.scheme.lower(), parts.path
        try:
            port = parts.port
        except ValueError:
            return None
        host = parts.hostname or ""
    elif match := _SCP.match(url):
        scheme, host, port, path = "ssh", match.group(1), None, url[match.end() :]
    else:
        scheme, host, port, path = "", "", None, url
    if port == _DEFAULT_PORTS.get(scheme):
        port = None
    segments: list[str] = []
    # Decoded first: a server may read %2e%2e as "..", so the comparison must too.
    for segment in re.split(r"[/\\]", unquote(path)):
        if segment in ("", "."):
            continue
        if segment == "..":
            if segments:
                segments.pop()
            continue
        segments.append(segment)
    if segments and segments[-1].endswith(".git"):
        segments[-1] = segments[-1][: -len(".git")]
    return _Location(scheme, host.lower().rstrip("."), port, tuple(s for s in segments if s))


def request_hash(submission: Submission) -> str:
    """A digest of the submission, to tell a retried request from a different one."""
    return hashlib.sha256(submission.model_dump_json().encode()).hexdigest()


def policy_refusal(name: str, service: ServiceSettings) -> str | None:
    """Why the service refuses this policy name, or None: [service] policies, else the bundled."""
    # Checked at submission, not in the model: rows stored before this rule still load.
    if not POLICY_NAME.fullmatch(name):
        # A path would make the service open a file of the caller's choosing.
        return "the service takes a policy by name (e.g. 'default'), not a path"
    allowed = service.policies or sorted(p.stem for p in POLICIES_DIR.glob("*.toml"))
    if name in allowed:
        return None
    return f"policy {name!r} is not offered by this service (choose one of: {', '.join(allowed)})"
