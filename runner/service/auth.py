"""Bearer tokens: stored as SHA-256 hashes, compared in constant time.

Tokens come from ``[[service.tokens]]`` in runner.toml and from the tokens file that
`runner token create` writes (JSON, mode 0600, re-read when it changes, so a revoke
takes effect without a restart). A token is printed once and never stored.
:class:`BearerFirst` checks the token before anything reads the request body.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import threading
from datetime import UTC, datetime
from pathlib import Path

import anyio.to_thread
from pydantic import Field, ValidationError
from starlette.types import ASGIApp, Receive, Scope, Send

from runner.config import ServiceToken, Settings
from runner.errors import ConfigError, UsageError
from runner.models import Model

TOKEN_PREFIX = "frt_"


class TokenRecord(ServiceToken):
    """A tokens-file entry: a configured token plus when it was made or revoked."""

    created_at: datetime = Field(description="When `runner token create` made it.")
    revoked_at: datetime | None = Field(default=None, description="Set by `runner token revoke`.")


class TokensFile(Model):
    """The tokens file's whole content."""

    tokens: list[TokenRecord] = Field(default_factory=list)


def tokens_path(settings: Settings) -> Path:
    """The tokens file: [service] tokens_file, or <state_dir>/tokens.json."""
    configured = settings.service.tokens_file
    return configured.expanduser() if configured else settings.paths.root / "tokens.json"


def new_token() -> str:
    """A fresh random bearer token."""
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    """The SHA-256 hex digest stored in place of a token."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def read_tokens_file(path: Path) -> TokensFile:
    """The tokens file, or an empty one when it does not exist."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return TokensFile()
    try:
        return TokensFile.model_validate_json(text)
    except ValidationError as exc:
        raise ConfigError(f"{path}: not a valid tokens file: {exc.errors()[0]['msg']}") from exc


def _write_tokens_file(path: Path, content: TokensFile) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}")
    # 0600 from the first byte: the file holds callback secrets.
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(content.model_dump_json(indent=2) + "\n")
    tmp.replace(path)


def create_token(
    path: Path, name: str, secret_env: str | None = None, configured: list[str] | None = None
) -> tuple[str, TokenRecord]:
    """Make a token (and a callback secret unless one comes from ``secret_env``); store the hash."""
    content = read_tokens_file(path)
    taken = {t.name for t in content.tokens if t.revoked_at is None} | set(configured or [])
    if name in taken:
        raise UsageError(f"a token named {name!r} already exists; revoke it first")
    token = new_token()
    record = TokenRecord(
        name=name,
        sha256=hash_token(token),
        callback_secret=None if secret_env else secrets.token_urlsafe(32),
        callback_secret_env=secret_env,
        created_at=datetime.now(UTC),
    )
    content.tokens.append(record)
    _write_tokens_file(path, content)
    return token, record


def revoke_token(path: Path, name: str) -> bool:
    """Mark the named token revoked; False if the file has no live token of that name."""
    content = read_tokens_file(path)
    found = False
    for record in content.tokens:
        if record.name == name and record.revoked_at is None:
            record.revoked_at = datetime.now(UTC)
            found = True
    if found:
        _write_tokens_file(path, content)
    return found


class TokenBook:
    """The live set of tokens: runner.toml's plus the tokens file's, reloaded on change."""

    def __init__(self, settings: Settings) -> None:
        self._configured = list(settings.service.tokens)
        self._path = tokens_path(settings)
        self._lock = threading.Lock()
        self._stamp: tuple[int, int] | None = None
        self._file: list[TokenRecord] = []

    def _entries(self) -> list[ServiceToken]:
        with self._lock:
            try:
                st = self._path.stat()
                stamp = (st.st_mtime_ns, st.st_size)
            except FileNotFoundError:
                stamp = None
            if stamp != self._stamp:
                self._file = read_tokens_file(self._path).tokens if stamp else []
                self._stamp = stamp
            return [*self._configured, *self._file]

    def authenticate(self, presented: str) -> str | None:
        """The name of the live token matching ``presented``, or None."""
        digest = hash_token(presented).encode()
        match: str | None = None
        # Compare against every entry (no early exit) in constant time per entry.
        for entry in self._entries():
            equal = hmac.compare_digest(digest, entry.sha256.encode())
            revoked = isinstance(entry, TokenRecord) and entry.revoked_at is not None
            if equal and not revoked and match is None:
                match = entry.name
        return match

    def callback_secret(self, name: str) -> str | None:
        """The secret signing callbacks of jobs submitted with token ``name``."""
        for entry in reversed(self._entries()):
            if entry.name != name:
                continue
            if entry.callback_secret_env:
                return os.environ.get(entry.callback_secret_env) or None
            return entry.callback_secret
        return None

    def names(self) -> list[str]:
        """Names of the configured and file tokens (live or not)."""
        return [e.name for e in self._entries()]


def token_summary(settings: Settings) -> list[dict[str, str]]:
    """Rows for `runner token list`: name, where it lives, state; never a secret."""
    rows = [
        {"name": t.name, "source": "runner.toml", "state": "live"} for t in settings.service.tokens
    ]
    for record in read_tokens_file(tokens_path(settings)).tokens:
        state = f"revoked {record.revoked_at:%Y-%m-%d %H:%M}" if record.revoked_at else "live"
        rows.append({"name": record.name, "source": "tokens file", "state": state})
    return rows


# Everything under these needs a token; the health checks and OpenAPI stay open.
_GUARDED = ("/v1/", "/metrics")


class BearerFirst:
    """401 before the body is read: a request without a valid token is never parsed."""

    def __init__(self, app: ASGIApp, tokens: TokenBook) -> None:
        self.app = app
        self.tokens = tokens

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = str(scope.get("path", ""))
        if scope["type"] != "http" or not path.startswith(_GUARDED):
            await self.app(scope, receive, send)
            return
        header = dict(scope.get("headers", [])).get(b"authorization", b"").decode("latin-1")
        scheme, _, presented = header.partition(" ")
        if scheme.lower() != "bearer" or not presented.strip():
            await _unauthorized(send, "missing bearer token")
            return
        name = await anyio.to_thread.run_sync(self.tokens.authenticate, presented.strip())
        if name is None:
            await _unauthorized(send, "unknown or revoked token")
            return
        await self.app(scope, receive, send)


async def _unauthorized(send: Send, detail: str) -> None:
    body = json.dumps({"detail": detail}).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"www-authenticate", b"Bearer"),
    ]
    await send({"type": "http.response.start", "status": 401, "headers": headers})
    await send({"type": "http.response.body", "body": body})
