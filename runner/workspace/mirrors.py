"""The mirror cache: one bare mirror per repository, cloned once and fetched as needed."""

from __future__ import annotations

import contextlib
import hashlib
import re
import tempfile
import threading
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import structlog

from runner.common.files import file_lock
from runner.errors import JobInputError
from runner.workspace.git import (
    FULL_SHA,
    GIT_TIMEOUT_S,
    GitResult,
    NetworkLimits,
    require_ok,
    run_git,
)
from runner.workspace.trees import remove_tree
from runner.workspace.urls import SCHEME, redact, validate_repo_url, validate_revision

log = structlog.get_logger(__name__)

_HEX_ID = re.compile(r"[0-9a-f]{7,64}")


def _cache_key(url: str) -> str:
    """sha256 of the normalised URL. Credentials stay in the key so tokens never share a mirror."""
    norm = url.rstrip("/")
    norm = norm.removesuffix(".git") if not Path(norm).is_dir() else norm
    if match := SCHEME.match(norm):
        parts = urlsplit(norm)
        norm = urlunsplit(
            parts._replace(scheme=match.group(1).lower(), netloc=parts.netloc.lower())
        )
    return hashlib.sha256(norm.encode()).hexdigest()


class MirrorCache:
    """One bare mirror per repository under ``root``; jobs only read them.

    For a local repository only committed history counts: uncommitted changes in the
    user's checkout are never seen. Commit ids resolve against the mirror and fetch
    only when missing; symbolic names (branches, tags, HEAD) always fetch first,
    because they move.
    """

    def __init__(
        self,
        root: Path,
        allow_local: bool,
        timeout_s: float = GIT_TIMEOUT_S,
        network: NetworkLimits | None = None,
    ) -> None:
        self.root = root
        self.allow_local = allow_local
        self.timeout_s = timeout_s
        self.network = network or NetworkLimits()
        self.clone_count = 0
        self.fetch_count = 0
        root.mkdir(parents=True, exist_ok=True)

    def path_for(self, url: str) -> Path:
        """Where the mirror of ``url`` lives (whether or not it exists yet)."""
        return self.root / _cache_key(validate_repo_url(url, self.allow_local))

    def ensure(self, url: str, rev: str) -> Path:
        """Return the mirror of ``url``, cloned or fetched so that ``rev`` resolves."""
        return self.resolve(url, rev)[0]

    def resolve(
        self, url: str, rev: str, cancel: threading.Event | None = None
    ) -> tuple[Path, str]:
        """Return the mirror of ``url`` and the full commit id ``rev`` names in it.

        Setting ``cancel`` kills a clone or fetch under way (WorkspaceError).
        """
        source = validate_repo_url(url, self.allow_local)
        rev = validate_revision(rev)
        key = _cache_key(source)
        mirror = self.root / key
        with self._locked(key):
            cloned = False
            if not (mirror / "HEAD").is_file():
                self._clone(source, mirror, cancel)
                cloned = True
            # The mirror's HEAD is fixed at clone time; ask the source for its HEAD now.
            target = self._remote_head(source, mirror, cancel) if rev == "HEAD" else rev
            is_id = bool(_HEX_ID.fullmatch(target))
            sha = _resolve_commit(mirror, target)
            if not cloned and (sha is None or not is_id):
                self._fetch(source, mirror, cancel=cancel)
                sha = _resolve_commit(mirror, target)
            if sha is None and FULL_SHA.fullmatch(target):
                # A commit no ref points at (a PR head, a detached HEAD): ask for it by id.
                self._fetch(source, mirror, target, cancel)
                sha = _resolve_commit(mirror, target)
        if sha is None:
            raise JobInputError(f"revision {rev!r} is not a commit in {redact(source)}")
        log.info("mirror_resolved", url=redact(source), rev=rev, commit=sha, mirror=str(mirror))
        return mirror, sha

    def _locked(self, key: str) -> contextlib.AbstractContextManager[None]:
        return file_lock(self.root / f"{key}.lock")

    def _remote(
        self,
        source: str,
        args: Sequence[str],
        git_dir: Path,
        cancel: threading.Event | None,
        clone: bool = False,
    ) -> GitResult:
        """A git call that talks to the source repository."""
        local = Path(source).is_absolute()
        return run_git(
            args,
            cwd=self.root,
            git_dir=git_dir,
            clone=clone,
            allow_file=local,
            trust=[Path(source)] if local else [],
            timeout=self.timeout_s,
            network=self.network,
            cancel=cancel,
        )

    def _clone(self, source: str, mirror: Path, cancel: threading.Event | None) -> None:
        tmp = Path(tempfile.mkdtemp(prefix=f".{mirror.name}.", dir=self.root))
        try:
            args = ["clone", "--mirror", "--no-local", "--quiet", "--", source, str(tmp)]
            require_ok(
                self._remote(source, args, tmp, cancel, clone=True), f"clone of {redact(source)}"
            )
            # Fetches name the source explicitly, so credentials never rest in the config.
            result = run_git(["config", "remote.origin.url", redact(source)], cwd=tmp, git_dir=tmp)
            require_ok(result, "git config")
            (tmp / "source.txt").write_text(redact(source) + "\n")
            tmp.rename(mirror)  # atomic: a crashed clone never leaves a half mirror
        finally:
            remove_tree(tmp)
        self.clone_count += 1
        log.info("mirror_cloned", url=redact(source), mirror=str(mirror))

    def _fetch(
        self,
        source: str,
        mirror: Path,
        commit: str | None = None,
        cancel: threading.Event | None = None,
    ) -> None:
        if commit is None:
            args = ["fetch", "--quiet", "--no-write-fetch-head", "--prune", "--", source]
            args.append("+refs/*:refs/*")
        else:
            args = ["fetch", "--quiet", "--no-write-fetch-head", "--", source, commit]
        result = self._remote(source, args, mirror, cancel)
        if result.status != 0 and commit is not None:
            log.info("mirror_fetch_by_id_failed", url=redact(source), commit=commit)
            return  # the caller reports the missing revision
        require_ok(result, f"fetch of {redact(source)}")
        self.fetch_count += 1
        log.info("mirror_fetched", url=redact(source), mirror=str(mirror), commit=commit)

    def _remote_head(self, source: str, mirror: Path, cancel: threading.Event | None) -> str:
        args = ["ls-remote", "--", source, "HEAD"]
        out = require_ok(
            self._remote(source, args, mirror, cancel), f"ls-remote of {redact(source)}"
        )
        sha = out.split("\t", 1)[0].strip()
        if not FULL_SHA.fullmatch(sha):
            raise JobInputError(f"{redact(source)} has no HEAD commit")
        return sha


def _resolve_commit(repo: Path, rev: str) -> str | None:
    """Full commit id of ``rev`` in the bare repository ``repo``, or None."""
    result = run_git(
        ["rev-parse", "--verify", "--quiet", "--end-of-options", f"{rev}^{{commit}}"],
        cwd=repo,
        git_dir=repo,
    )
    sha = result.stdout.strip()
    return sha if result.status == 0 and FULL_SHA.fullmatch(sha) else None


def commit_before(mirror: Path, commit: str, when: datetime) -> str | None:
    """The newest first-parent ancestor of ``commit`` committed at or before ``when``, or None."""
    stamp = int(when.timestamp())
    result = run_git(
        ["rev-list", "-1", "--first-parent", f"--before={stamp}", "--end-of-options", commit],
        cwd=mirror,
        git_dir=mirror,
    )
    sha = result.stdout.strip()
    return sha if result.status == 0 and FULL_SHA.fullmatch(sha) else None
