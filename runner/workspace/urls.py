"""Repository URLs and revisions: what a job may name, checked before git sees it."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import unquote, urlsplit, urlunsplit

from runner.errors import JobInputError

_MAX_URL = 2048
_MAX_REV = 200
SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*)://")
# git reads "host:path" as scp-like ssh when the colon comes before any slash.
_SCP = re.compile(r"(?:(?P<user>[^@/:]+)@)?(?P<host>\[[^\]/]+\]|[^@/:\[\]]+):(?P<path>.*)")
_REV_CHARS = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._/~^+-]*")
# Option names that have no business inside a URL, whatever the transport.
_OPTION_WORDS = ("--upload-pack", "--receive-pack", "--exec", "--config", "-oproxycommand")


def _reject(what: str, value: str, why: str) -> JobInputError:
    value = redact(value)  # a refused URL may still carry a token
    shown = value if len(value) <= 80 else value[:80] + "…"
    return JobInputError(f"{what} {shown!r} refused: {why}")


RepoKind = Literal["https", "ssh", "scp", "local"]


@dataclass(frozen=True)
class RepoUrl:
    """A repository location that passed validation: what git clones and which host it names.

    The one grammar for the CLI, the pipeline and the service alike, so a URL the
    service allow-lists is read the same way git will read it.
    """

    source: str  # the URL, or the absolute path of a local repository
    kind: RepoKind
    host: str  # lower-case host name or address, "" for a local repository

    @classmethod
    def parse(cls, url: str, allow_local: bool) -> RepoUrl:
        """Validate ``url``; raise JobInputError with the reason when git must not see it."""
        return _parse(url, allow_local)


def validate_repo_url(url: str, allow_local: bool) -> str:
    """Return the URL (or absolute local path) to clone, or raise JobInputError saying why not."""
    return _parse(url, allow_local).source


def _parse(url: str, allow_local: bool) -> RepoUrl:
    if not url:
        raise JobInputError("repository URL is empty")
    if len(url) > _MAX_URL:
        raise _reject("repository URL", url, f"longer than {_MAX_URL} characters")
    if any(ch.isspace() or ord(ch) < 32 or ord(ch) == 127 for ch in url):
        raise _reject("repository URL", url, "contains whitespace or control characters")
    if url.startswith("-"):
        raise _reject("repository URL", url, "starts with '-' and would be read as a git option")
    for word in _OPTION_WORDS:
        if word in url.lower():
            raise _reject("repository URL", url, f"contains the option {word!r}")
    if "::" in url:
        raise _reject(
            "repository URL", url, "names a git remote helper ('<name>::'), which runs commands"
        )
    if match := SCHEME.match(url):
        return _validate_scheme_url(url, match.group(1).lower(), allow_local)
    if "://" in url:
        raise _reject("repository URL", url, "malformed scheme")
    scp = _SCP.fullmatch(url)
    if scp and "/" not in url.split(":", 1)[0]:
        for part in (scp["user"] or "", scp["host"], scp["path"]):
            if part.startswith("-"):
                raise _reject(
                    "repository URL", url, "a part starts with '-' (ssh option injection)"
                )
        if not scp["path"]:
            raise _reject("repository URL", url, "no repository path after ':'")
        return RepoUrl(url, "scp", scp["host"].strip("[]").lower())
    if not allow_local:
        raise _reject(
            "repository URL", url, "local paths are not allowed here (use https:// or ssh://)"
        )
    return RepoUrl(_local_repo(Path(url), url), "local", "")


def _validate_scheme_url(url: str, scheme: str, allow_local: bool) -> RepoUrl:
    parts = urlsplit(url)
    if scheme == "file":
        if not allow_local:
            raise _reject(
                "repository URL", url, "file:// is not allowed here (use https:// or ssh://)"
            )
        if parts.netloc not in ("", "localhost"):
            raise _reject("repository URL", url, "file:// URLs must not name a host")
        return RepoUrl(_local_repo(Path(unquote(parts.path)), url), "local", "")
    if scheme not in ("https", "ssh"):
        raise _reject(
            "repository URL", url, f"the {scheme}:// transport is not allowed (https or ssh)"
        )
    try:
        host = parts.hostname
        port = parts.port
    except ValueError as exc:
        raise _reject("repository URL", url, f"malformed: {exc}") from exc
    if not host:
        raise _reject("repository URL", url, "no host")
    if host.startswith("-") or (parts.username or "").startswith("-"):
        raise _reject("repository URL", url, "host or user starts with '-' (ssh option injection)")
    del port  # parsed only to reject malformed ports
    return RepoUrl(url, "https" if scheme == "https" else "ssh", host.lower())


def _local_repo(path: Path, original: str) -> str:
    resolved = path.expanduser().resolve()
    if not resolved.is_dir():
        raise _reject("repository path", original, "no such directory")
    return str(resolved)


def validate_revision(rev: str) -> str:
    """Return ``rev`` when it names a single commit-ish safely, else raise JobInputError."""
    if not rev:
        raise JobInputError("revision is empty")
    if len(rev) > _MAX_REV:
        raise _reject("revision", rev, f"longer than {_MAX_REV} characters")
    if rev.startswith("-"):
        raise _reject("revision", rev, "starts with '-' and would be read as a git option")
    if any(ch.isspace() or ord(ch) < 32 or ord(ch) == 127 for ch in rev):
        raise _reject("revision", rev, "contains whitespace or control characters")
    if ".." in rev:
        raise _reject("revision", rev, "is a range; name a single commit")
    if "@{" in rev:
        raise _reject("revision", rev, "reflog syntax '@{' is not allowed")
    if ":" in rev:
        raise _reject(
            "revision", rev, "':' (a path or refspec) is not allowed; name a single commit"
        )
    if not _REV_CHARS.fullmatch(rev):
        raise _reject("revision", rev, "only letters, digits and . _ / - ~ ^ + are allowed")
    return rev


def redact(url: str) -> str:
    """The URL without credentials, for logs, source.txt and the mirror's own config."""
    parts = urlsplit(url)
    if parts.scheme and "@" in parts.netloc:
        host = parts.netloc.rsplit("@", 1)[1]
        user = parts.username if parts.password is None else "***"
        return urlunsplit(parts._replace(netloc=f"{user}@{host}"))
    return url
