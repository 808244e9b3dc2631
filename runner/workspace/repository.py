"""Git mirror cache, per-job checkouts, patch path safety and ``git apply``.

Every git call goes through :func:`_git`, which builds the hardened environment in one
place: hooks pointed at an empty read-only directory, no system or user config, no
prompts, no transport helpers, and ``safe.directory`` only for the paths of that call.
Nothing from a job reaches git's argv before a ``--`` or ``--end-of-options``.
"""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import os
import re
import shutil
import stat
import tempfile
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Literal, NamedTuple
from urllib.parse import unquote, urlsplit, urlunsplit

import git
import structlog

from runner.common.files import file_lock
from runner.common.hostenv import blocked
from runner.errors import JobInputError, PatchError, WorkspaceError

log = structlog.get_logger(__name__)

ApplyMode = Literal["clean", "3way", "already_applied"]

GIT_TIMEOUT_S = 900.0
_MAX_URL = 2048
_MAX_REV = 200
_ERROR_CHARS = 2000
_FULL_SHA = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")
_HEX_ID = re.compile(r"[0-9a-f]{7,64}")
_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*)://")
# git reads "host:path" as scp-like ssh when the colon comes before any slash.
_SCP = re.compile(r"(?:(?P<user>[^@/:]+)@)?(?P<host>\[[^\]/]+\]|[^@/:\[\]]+):(?P<path>.*)")
_REV_CHARS = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._/~^+-]*")
# Option names that have no business inside a URL, whatever the transport.
_OPTION_WORDS = ("--upload-pack", "--receive-pack", "--exec", "--config", "-oproxycommand")
# Repository-location variables git reads from the environment. GitPython always
# inherits os.environ, so each call sets these explicitly (see _git).
_LOCATION_VARS = (
    "GIT_DIR",
    "GIT_WORK_TREE",
    "GIT_INDEX_FILE",
    "GIT_OBJECT_DIRECTORY",
    "GIT_COMMON_DIR",
)

_private_dir: Path | None = None
_private_lock = threading.Lock()


class _Result(NamedTuple):
    status: int
    stdout: str
    stderr: str


# --------------------------------------------------------------------------- git calls


def _private() -> Path:
    """A per-process directory owned by the runner: HOME for git and an empty hooks dir."""
    global _private_dir
    with _private_lock:
        if _private_dir is not None:
            return _private_dir
        base = Path(tempfile.mkdtemp(prefix="fixrunner-git-"))
        (base / "home" / ".config").mkdir(parents=True)
        hooks = base / "hooks"
        hooks.mkdir()
        hooks.chmod(0o500)  # read-only, so nothing can ever be added to it
        atexit.register(remove_tree, base)
        _private_dir = base
        return base


def _config(allow_file: bool) -> dict[str, str]:
    private = _private()
    return {
        "core.hooksPath": str(private / "hooks"),
        "core.fsmonitor": "false",
        "core.askPass": "",
        "credential.helper": "",
        "protocol.allow": "never",
        "protocol.https.allow": "always",
        "protocol.ssh.allow": "always",
        "protocol.file.allow": "always" if allow_file else "never",
        "protocol.ext.allow": "never",
        "submodule.recurse": "false",
        "fetch.recurseSubmodules": "false",
        # Per-job checkouts borrow the mirror's objects, so the mirror must never prune.
        "gc.auto": "0",
        "maintenance.auto": "false",
        "advice.detachedHead": "false",
        "init.defaultBranch": "main",
    }


def _config_line(key: str, value: str) -> str:
    """One key as git config file text: ``a.b.c`` becomes ``[a "b"] c = value``."""
    section, _, name = key.rpartition(".")
    head, _, sub = section.partition(".")
    header = f"[{head} {_quote(sub)}]" if sub else f"[{head}]"
    return f"{header}\n\t{name} = {_quote(value)}"


def _quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _safe_entries(paths: Sequence[Path]) -> list[str]:
    """Every spelling of a repository path git may compare against ``safe.directory``."""
    entries: list[str] = []
    for path in paths:
        for p in (path, path.resolve()):
            for candidate in (p, p / ".git"):
                if str(candidate) not in entries:
                    entries.append(str(candidate))
    return entries


def _git(
    args: Sequence[str],
    *,
    cwd: Path,
    git_dir: Path | None = None,
    work_tree: Path | None = None,
    index: Path | None = None,
    clone: bool = False,
    allow_file: bool = False,
    trust: Sequence[Path] = (),
    istream: IO[bytes] | None = None,
    timeout: float | None = GIT_TIMEOUT_S,
) -> _Result:
    """Run one git command with the runner's hardened options; never raises on exit status."""
    config = _config(allow_file)
    env: dict[str, str] = {
        "HOME": str(_private() / "home"),
        "XDG_CONFIG_HOME": str(_private() / "home" / ".config"),
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_SYSTEM": os.devnull,
        "GIT_CONFIG_PARAMETERS": "",
        "GIT_TERMINAL_PROMPT": "0",
        # An empty askpass makes git fall through to the (disabled) terminal prompt,
        # so a private URL fails at once instead of waiting for a password.
        "GIT_ASKPASS": "",
        "SSH_ASKPASS": "",
        "GIT_SSH_COMMAND": "ssh -o BatchMode=yes",
        "GIT_ALLOW_PROTOCOL": "https:ssh" + (":file" if allow_file else ""),
        "GIT_NO_REPLACE_OBJECTS": "1",
        "GIT_ALTERNATE_OBJECT_DIRECTORIES": "",
        "GIT_NAMESPACE": "",
        "GIT_CONFIG_COUNT": str(len(config)),
    }
    for n, (key, value) in enumerate(config.items()):
        env[f"GIT_CONFIG_KEY_{n}"] = key
        env[f"GIT_CONFIG_VALUE_{n}"] = value
    if git_dir is not None:
        env["GIT_DIR"] = str(git_dir)
        if not clone:  # clone reads its source through these, so it gets only GIT_DIR
            env["GIT_COMMON_DIR"] = str(git_dir)
            env["GIT_OBJECT_DIRECTORY"] = str(git_dir / "objects")
        env["GIT_INDEX_FILE"] = str(index or git_dir / "index")
    if work_tree is not None:
        env["GIT_WORK_TREE"] = str(work_tree)
    inherited = [k for k in _LOCATION_VARS if k in os.environ and k not in env]
    if inherited:
        raise WorkspaceError(f"unset {', '.join(inherited)} before running the runner")
    # GitPython merges os.environ under these; blanking the rest keeps secrets out of git
    # (the ssh agent's socket stays: private repositories over ssh need it).
    env = {**dict.fromkeys(blocked(keep=("SSH_AUTH_SOCK",)), ""), **env}

    # safe.directory is honoured only in protected (global) config, and a local clone's
    # upload-pack child sees none of the command-line config, so each call gets its own
    # global file naming exactly the repositories it touches. Never "*".
    fd, global_path = tempfile.mkstemp(prefix="gitconfig-", dir=_private())
    try:
        lines = ["[safe]", *(f"\tdirectory = {_quote(p)}" for p in _safe_entries(trust))]
        lines += [_config_line(k, v) for k, v in config.items()]
        os.write(fd, ("\n".join(lines) + "\n").encode())
        os.close(fd)
        env["GIT_CONFIG_GLOBAL"] = global_path
        status, out, err = git.Git(str(cwd)).execute(  # type: ignore[misc,attr-defined,str-unpack]  # a 3-tuple here
            [git.Git.GIT_PYTHON_GIT_EXECUTABLE or "git", *args],
            env=env,
            istream=istream,  # type: ignore[arg-type]  # GitPython's stub wants BinaryIO
            with_extended_output=True,
            with_exceptions=False,
            kill_after_timeout=timeout,
        )
    finally:
        os.unlink(global_path)
    return _Result(int(status or 0), str(out), str(err))


def _trim(text: str, *, strip: Path | None = None) -> str:
    """Git's stderr, capped, with the per-job directory removed so paths read relative."""
    if strip is not None:
        text = text.replace(f"{strip}/", "").replace(str(strip), ".")
    text = text.strip()
    return text if len(text) <= _ERROR_CHARS else text[:_ERROR_CHARS] + " […]"


def _require(result: _Result, what: str) -> str:
    if result.status != 0:
        raise WorkspaceError(f"{what} failed: {_trim(result.stderr)}")
    return result.stdout


# --------------------------------------------------------------------------- validation


def _reject(what: str, value: str, why: str) -> JobInputError:
    value = _redact(value)  # a refused URL may still carry a token
    shown = value if len(value) <= 80 else value[:80] + "…"
    return JobInputError(f"{what} {shown!r} refused: {why}")


def validate_repo_url(url: str, allow_local: bool) -> str:
    """Return the URL (or absolute local path) to clone, or raise JobInputError saying why not."""
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
    if match := _SCHEME.match(url):
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
        return url
    if not allow_local:
        raise _reject(
            "repository URL", url, "local paths are not allowed here (use https:// or ssh://)"
        )
    return _local_repo(Path(url), url)


def _validate_scheme_url(url: str, scheme: str, allow_local: bool) -> str:
    parts = urlsplit(url)
    if scheme == "file":
        if not allow_local:
            raise _reject(
                "repository URL", url, "file:// is not allowed here (use https:// or ssh://)"
            )
        if parts.netloc not in ("", "localhost"):
            raise _reject("repository URL", url, "file:// URLs must not name a host")
        return _local_repo(Path(unquote(parts.path)), url)
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
    return url


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


def _redact(url: str) -> str:
    """The URL without credentials, for logs, source.txt and the mirror's own config."""
    parts = urlsplit(url)
    if parts.scheme and "@" in parts.netloc:
        host = parts.netloc.rsplit("@", 1)[1]
        user = parts.username if parts.password is None else "***"
        return urlunsplit(parts._replace(netloc=f"{user}@{host}"))
    return url


def _cache_key(url: str) -> str:
    """sha256 of the normalised URL. Credentials stay in the key so tokens never share a mirror."""
    norm = url.rstrip("/")
    norm = norm.removesuffix(".git") if not Path(norm).is_dir() else norm
    if match := _SCHEME.match(norm):
        parts = urlsplit(norm)
        norm = urlunsplit(
            parts._replace(scheme=match.group(1).lower(), netloc=parts.netloc.lower())
        )
    return hashlib.sha256(norm.encode()).hexdigest()


# --------------------------------------------------------------------------- mirrors


class MirrorCache:
    """One bare mirror per repository under ``root``; jobs only read them.

    For a local repository only committed history counts: uncommitted changes in the
    user's checkout are never seen. Commit ids resolve against the mirror and fetch
    only when missing; symbolic names (branches, tags, HEAD) always fetch first,
    because they move.
    """

    def __init__(self, root: Path, allow_local: bool, timeout_s: float = GIT_TIMEOUT_S) -> None:
        self.root = root
        self.allow_local = allow_local
        self.timeout_s = timeout_s
        self.clone_count = 0
        self.fetch_count = 0
        root.mkdir(parents=True, exist_ok=True)

    def path_for(self, url: str) -> Path:
        """Where the mirror of ``url`` lives (whether or not it exists yet)."""
        return self.root / _cache_key(validate_repo_url(url, self.allow_local))

    def ensure(self, url: str, rev: str) -> Path:
        """Return the mirror of ``url``, cloned or fetched so that ``rev`` resolves."""
        return self.resolve(url, rev)[0]

    def resolve(self, url: str, rev: str) -> tuple[Path, str]:
        """Return the mirror of ``url`` and the full commit id ``rev`` names in it."""
        source = validate_repo_url(url, self.allow_local)
        rev = validate_revision(rev)
        key = _cache_key(source)
        mirror = self.root / key
        with self._locked(key):
            cloned = False
            if not (mirror / "HEAD").is_file():
                self._clone(source, mirror)
                cloned = True
            # The mirror's HEAD is fixed at clone time; ask the source for its HEAD now.
            target = self._remote_head(source, mirror) if rev == "HEAD" else rev
            is_id = bool(_HEX_ID.fullmatch(target))
            sha = _resolve_commit(mirror, target)
            if not cloned and (sha is None or not is_id):
                self._fetch(source, mirror)
                sha = _resolve_commit(mirror, target)
            if sha is None and _FULL_SHA.fullmatch(target):
                # A commit no ref points at (a PR head, a detached HEAD): ask for it by id.
                self._fetch(source, mirror, target)
                sha = _resolve_commit(mirror, target)
        if sha is None:
            raise JobInputError(f"revision {rev!r} is not a commit in {_redact(source)}")
        log.info("mirror_resolved", url=_redact(source), rev=rev, commit=sha, mirror=str(mirror))
        return mirror, sha

    def _locked(self, key: str) -> contextlib.AbstractContextManager[None]:
        return file_lock(self.root / f"{key}.lock")

    def _remote(
        self, source: str, args: Sequence[str], git_dir: Path, clone: bool = False
    ) -> _Result:
        """A git call that talks to the source repository."""
        local = Path(source).is_absolute()
        return _git(
            args,
            cwd=self.root,
            git_dir=git_dir,
            clone=clone,
            allow_file=local,
            trust=[Path(source)] if local else [],
            timeout=self.timeout_s,
        )

    def _clone(self, source: str, mirror: Path) -> None:
        tmp = Path(tempfile.mkdtemp(prefix=f".{mirror.name}.", dir=self.root))
        try:
            args = ["clone", "--mirror", "--no-local", "--quiet", "--", source, str(tmp)]
            _require(self._remote(source, args, tmp, clone=True), f"clone of {_redact(source)}")
            # Fetches name the source explicitly, so credentials never rest in the config.
            result = _git(["config", "remote.origin.url", _redact(source)], cwd=tmp, git_dir=tmp)
            _require(result, "git config")
            (tmp / "source.txt").write_text(_redact(source) + "\n")
            tmp.rename(mirror)  # atomic: a crashed clone never leaves a half mirror
        finally:
            remove_tree(tmp)
        self.clone_count += 1
        log.info("mirror_cloned", url=_redact(source), mirror=str(mirror))

    def _fetch(self, source: str, mirror: Path, commit: str | None = None) -> None:
        if commit is None:
            args = ["fetch", "--quiet", "--no-write-fetch-head", "--prune", "--", source]
            args.append("+refs/*:refs/*")
        else:
            args = ["fetch", "--quiet", "--no-write-fetch-head", "--", source, commit]
        result = self._remote(source, args, mirror)
        if result.status != 0 and commit is not None:
            log.info("mirror_fetch_by_id_failed", url=_redact(source), commit=commit)
            return  # the caller reports the missing revision
        _require(result, f"fetch of {_redact(source)}")
        self.fetch_count += 1
        log.info("mirror_fetched", url=_redact(source), mirror=str(mirror), commit=commit)

    def _remote_head(self, source: str, mirror: Path) -> str:
        args = ["ls-remote", "--", source, "HEAD"]
        out = _require(self._remote(source, args, mirror), f"ls-remote of {_redact(source)}")
        sha = out.split("\t", 1)[0].strip()
        if not _FULL_SHA.fullmatch(sha):
            raise JobInputError(f"{_redact(source)} has no HEAD commit")
        return sha


def _resolve_commit(repo: Path, rev: str) -> str | None:
    """Full commit id of ``rev`` in the bare repository ``repo``, or None."""
    result = _git(
        ["rev-parse", "--verify", "--quiet", "--end-of-options", f"{rev}^{{commit}}"],
        cwd=repo,
        git_dir=repo,
    )
    sha = result.stdout.strip()
    return sha if result.status == 0 and _FULL_SHA.fullmatch(sha) else None


# --------------------------------------------------------------------------- checkouts


def checkout(mirror: Path, commit: str, dest: Path) -> Path:
    """A per-job working tree of ``commit`` at ``dest`` with its own ``.git`` (objects borrowed)."""
    if not _FULL_SHA.fullmatch(commit):
        raise JobInputError(f"checkout needs a full commit id, got {commit!r}")
    if dest.exists() and any(dest.iterdir()):
        raise WorkspaceError(f"checkout destination {dest} is not empty")
    dest.parent.mkdir(parents=True, exist_ok=True)
    # --shared borrows the mirror's objects through alternates: nothing is copied, and
    # the mirror is append-only (gc disabled), so the borrowed objects stay.
    args = ["clone", "--shared", "--no-checkout", "--single-branch", "--no-tags", "--quiet"]
    result = _git(
        [*args, "--", str(mirror), str(dest)],
        cwd=dest.parent,
        git_dir=dest / ".git",
        clone=True,
        allow_file=True,  # our own mirror, whatever the job's URL policy is
        trust=[mirror],
    )
    _require(result, "clone of the mirror")
    _require(
        _git(
            ["checkout", "--quiet", "--detach", commit, "--"],
            cwd=dest,
            git_dir=dest / ".git",
            work_tree=dest,
            trust=[dest],
        ),
        f"checkout of {commit}",
    )
    log.info("checked_out", commit=commit, dest=str(dest))
    return dest


def _tree_git(
    dest: Path, args: Sequence[str], *, index: Path | None = None, istream: IO[bytes] | None = None
) -> _Result:
    """A git call inside a per-job tree."""
    git_dir = dest / ".git"
    return _git(
        args, cwd=dest, git_dir=git_dir, work_tree=dest, index=index, trust=[dest], istream=istream
    )


def tree_id(dest: Path) -> str:
    """Git tree id of the working tree as it is now (tracked and untracked, minus ignored files)."""
    fd, index = tempfile.mkstemp(prefix="index-fixrunner-", dir=dest / ".git")
    os.close(fd)
    try:
        real = dest / ".git" / "index"
        if real.is_file():
            shutil.copyfile(real, index)  # keeps stat data, so only changed files rehash
        else:
            os.unlink(index)
        _require(_tree_git(dest, ["add", "-A"], index=Path(index)), "git add (tree id)")
        out = _require(_tree_git(dest, ["write-tree"], index=Path(index)), "git write-tree")
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(index)
    return out.strip()


def check_paths_against_tree(dest: Path, paths: Sequence[str]) -> None:
    """Raise PatchError when a patch path leaves ``dest``, goes through a symlink or into .git."""
    root = dest.resolve()
    for raw in paths:
        parts = Path(raw).parts
        if Path(raw).is_absolute() or ".." in parts or not parts:
            raise PatchError(f"patch path {raw!r} is absolute or climbs out of the tree")
        if ".git" in (p.lower() for p in parts):
            raise PatchError(f"patch path {raw!r} touches .git/")
        current = root
        for part in parts:
            current = current / part
            if current.is_symlink():
                raise PatchError(
                    f"patch path {raw!r} goes through the symlink {current.relative_to(root)}"
                )
        if not (root / raw).resolve().is_relative_to(root):
            raise PatchError(f"patch path {raw!r} resolves outside the tree")


def apply_patch(dest: Path, patch_text: str, allow_3way: bool, label: str) -> ApplyMode:
    """Apply a unified diff to the tree and its index; return how it applied or raise PatchError."""
    data = patch_text.encode("utf-8", errors="surrogateescape")
    if not data.strip():
        raise PatchError(f"the {label} is empty")
    if not data.endswith(b"\n"):
        data += b"\n"  # git apply reads a missing final newline as a corrupt patch
    base = ["apply", "--whitespace=nowarn"]
    with tempfile.TemporaryFile() as stream:
        stream.write(data)

        def run(*extra: str) -> _Result:
            stream.seek(0)
            return _tree_git(dest, [*base, *extra], istream=stream)

        # A copied or re-owned tree has new stat data; without a refresh, --index
        # would call unchanged files "does not match index".
        _tree_git(dest, ["update-index", "-q", "--refresh"])
        check = run("--check", "--index")
        if check.status == 0:
            result = run("--index")
            if result.status != 0:
                raise PatchError(f"the {label} does not apply: {_trim(result.stderr, strip=dest)}")
            return _applied(label, "clean")
        if run("--check", "--index", "-R").status == 0:
            return _applied(label, "already_applied")
        reason = _trim(check.stderr, strip=dest)
        if not allow_3way:
            raise PatchError(f"the {label} does not apply: {reason}")
        snapshot = _require(_tree_git(dest, ["write-tree"]), "git write-tree").strip()
        merged = run("--3way")
        conflicts = _require(_tree_git(dest, ["ls-files", "--unmerged"]), "git ls-files").strip()
        if merged.status != 0 or conflicts:
            # Put tree and index back as they were, so the failure leaves no half merge.
            _require(_tree_git(dest, ["read-tree", "--reset", "-u", snapshot]), "git read-tree")
            detail = _trim(merged.stderr, strip=dest) or "conflicts"
            raise PatchError(
                f"the {label} does not apply: {reason}; a 3-way merge also failed: {detail}"
            )
        return _applied(label, "3way")


def _applied(label: str, mode: ApplyMode) -> ApplyMode:
    log.info("patch_applied", label=label, mode=mode)
    return mode


# --------------------------------------------------------------------------- trees on disk


def _make_writable(path: str) -> None:
    """chmod u+rwx a directory, opened without following symlinks (a swapped-in link fails)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    except OSError:
        return  # a symlink or gone: nothing of ours to fix
    try:
        mode = os.fstat(fd).st_mode
        os.fchmod(fd, stat.S_IMODE(mode) | stat.S_IRWXU)
    finally:
        os.close(fd)


def remove_tree(path: Path) -> None:
    """Delete a per-job tree; symlinks are removed, never followed. Missing is fine."""
    if path.is_symlink() or path.is_file():
        path.unlink()
        return
    if not path.exists():
        return
    # Read-only directories (a test may chmod them) would stop rmtree as a non-root user.
    for dirpath, dirnames, _files in os.walk(path, followlinks=False):
        _make_writable(dirpath)
        for name in dirnames:
            _make_writable(os.path.join(dirpath, name))
    # On Linux rmtree uses the fd-based walk that never follows symlinks.
    if not shutil.rmtree.avoids_symlink_attacks:
        raise WorkspaceError("this platform's rmtree may follow symlinks; refusing to delete")
    shutil.rmtree(path)


def copy_tree(src: Path, dst: Path) -> Path:
    """Copy a tree keeping symlinks as symlinks; fifos, sockets and devices are skipped."""

    def copy_regular(s: str, d: str) -> str:
        mode = os.lstat(s).st_mode
        if not stat.S_ISREG(mode):
            log.warning("copy_skipped_special_file", path=s)  # reading a fifo would hang
            return d
        return shutil.copy2(s, d, follow_symlinks=False)

    shutil.copytree(src, dst, symlinks=True, copy_function=copy_regular)
    return dst
