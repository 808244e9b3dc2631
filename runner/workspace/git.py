"""The one hardened git runner: every git call of the runner goes through :func:`run_git`.

It builds the hardened environment in one place: hooks pointed at an empty read-only
directory, no system or user config, no prompts, no transport helpers, and
``safe.directory`` only for the paths of that call. Nothing from a job reaches git's
argv before a ``--`` or ``--end-of-options``.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, NamedTuple

from runner.common.hostenv import host_env
from runner.config import WorkspaceSettings
from runner.errors import WorkspaceError

GIT_TIMEOUT_S = 900.0
_ERROR_CHARS = 2000
FULL_SHA = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")
_POLL_S = 0.1  # how often a running git call looks at its job's cancel event
_private_dir: Path | None = None
_private_lock = threading.Lock()


@dataclass(frozen=True)
class NetworkLimits:
    """How long git waits on a remote that connects slowly or stops sending."""

    connect_timeout_s: float = 60.0
    low_speed_bytes: int = 1000
    low_speed_time_s: float = 60.0

    @classmethod
    def of(cls, settings: WorkspaceSettings) -> NetworkLimits:
        """The limits runner.toml's [workspace] section sets."""
        return cls(
            settings.git_connect_timeout_s,
            settings.git_low_speed_bytes,
            settings.git_low_speed_time_s,
        )


class GitResult(NamedTuple):
    status: int
    stdout: str
    stderr: str


def private_dir() -> Path:
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
        atexit.register(shutil.rmtree, base, True)
        _private_dir = base
        return base


def _config(allow_file: bool, network: NetworkLimits) -> dict[str, str]:
    private = private_dir()
    return {
        # curl gives up on a transfer slower than this for this long (a hung server too).
        "http.lowSpeedLimit": str(network.low_speed_bytes),
        "http.lowSpeedTime": str(max(1, round(network.low_speed_time_s))),
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


def run_git(
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
    network: NetworkLimits | None = None,
    cancel: threading.Event | None = None,
) -> GitResult:
    """Run one git command with the runner's hardened options; never raises on exit status.

    Raises WorkspaceError only when ``cancel`` is set while git runs (git is killed first).
    """
    with _git_process(
        args, cwd, git_dir, work_tree, index, clone, allow_file, trust, network, istream
    ) as proc:
        deadline = None if timeout is None else time.monotonic() + timeout
        idle = _Idle(proc.pid, network.connect_timeout_s) if network is not None else None
        while True:
            try:
                out, err = proc.communicate(timeout=_POLL_S)
                break
            except subprocess.TimeoutExpired:
                if cancel is not None and cancel.is_set():
                    _kill(proc)
                    raise WorkspaceError(f"git {args[0]} stopped: the job was cancelled") from None
                if deadline is not None and time.monotonic() > deadline:
                    _kill(proc)
                    proc.communicate()
                    return GitResult(-9, "", f"git {args[0]} took longer than {timeout:g}s")
                if idle is not None and idle.expired():
                    _kill(proc)
                    proc.communicate()
                    return GitResult(-9, "", idle.reason(args[0]))
    return GitResult(proc.returncode, _text(out), _text(err))


@contextlib.contextmanager
def stream_git(
    args: Sequence[str], *, cwd: Path, git_dir: Path, trust: Sequence[Path] = ()
) -> Iterator[IO[bytes]]:
    """Run a local git command and yield its stdout to read as a stream.

    For output that may be unbounded (``ls-tree -r`` of a git bomb): the reader stops
    when it has seen enough, and git is killed on the way out.
    """
    with _git_process(args, cwd, git_dir, None, None, False, False, trust, None, None) as proc:
        assert proc.stdout is not None
        yield proc.stdout


class _Idle:
    """Notices a git call whose processes read nothing for ``limit_s`` seconds.

    git has no connect timeout for HTTPS (curl's default is 300 s, TLS handshake
    included, and ``http.lowSpeedTime`` starts only after it), so a remote that
    accepts and then says nothing is caught here: the bytes read by git and its
    helpers (``/proc/<pid>/io``) stop growing.
    """

    def __init__(self, group: int, limit_s: float) -> None:
        self._group = group
        self._limit_s = limit_s
        self._read = -1
        self._since = self._looked = time.monotonic()

    def expired(self) -> bool:
        """True once nothing was read for the limit."""
        now = time.monotonic()
        # A walk of /proc costs a little; once every tenth of the limit is enough.
        if now - self._looked < min(1.0, self._limit_s / 10):
            return False
        self._looked = now
        read = _bytes_read(self._group)
        if read != self._read:
            self._read, self._since = read, now
        return now - self._since >= self._limit_s

    def reason(self, command: str) -> str:
        """The error for a call stopped this way."""
        return (
            f"git {command}: the remote sent nothing for {self._limit_s:g}s and was dropped "
            "([workspace] git_connect_timeout_s)"
        )


def _bytes_read(group: int) -> int:
    """Bytes read so far by the processes of one process group (0 for any that vanished)."""
    total = 0
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat_line = Path(entry.path, "stat").read_text()
            # The fields after ") " are: state ppid pgrp ...
            if int(stat_line.rsplit(") ", 1)[1].split()[2]) != group:
                continue
            for line in Path(entry.path, "io").read_text().splitlines():
                if line.startswith("rchar:"):
                    total += int(line.split()[1])
        except (OSError, IndexError, ValueError):
            continue  # gone, or not ours to read
    return total


def _text(data: bytes) -> str:
    # As GitPython did: one trailing newline stripped, bytes decoded leniently.
    return data.removesuffix(b"\n").decode("utf-8", "replace")


def _kill(proc: subprocess.Popen[bytes]) -> None:
    """Kill git and every helper it started (remote-https, ssh, upload-pack)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)


@contextlib.contextmanager
def _git_process(
    args: Sequence[str],
    cwd: Path,
    git_dir: Path | None,
    work_tree: Path | None,
    index: Path | None,
    clone: bool,
    allow_file: bool,
    trust: Sequence[Path],
    network: NetworkLimits | None,
    istream: IO[bytes] | None,
) -> Iterator[subprocess.Popen[bytes]]:
    env = _environment(git_dir, work_tree, index, clone, allow_file, network or NetworkLimits())
    # safe.directory is honoured only in protected (global) config, and a local clone's
    # upload-pack child sees none of the command-line config, so each call gets its own
    # global file naming exactly the repositories it touches. Never "*".
    fd, global_path = tempfile.mkstemp(prefix="gitconfig-", dir=private_dir())
    try:
        config = _config(allow_file, network or NetworkLimits())
        lines = ["[safe]", *(f"\tdirectory = {_quote(p)}" for p in _safe_entries(trust))]
        lines += [_config_line(k, v) for k, v in config.items()]
        os.write(fd, ("\n".join(lines) + "\n").encode())
        os.close(fd)
        env["GIT_CONFIG_GLOBAL"] = global_path
        # A session of its own, so a kill reaches git's helpers too.
        proc = subprocess.Popen(
            ["git", *args],
            cwd=cwd,
            env=env,
            stdin=istream if istream is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        try:
            yield proc
        finally:
            if proc.poll() is None:
                _kill(proc)
            proc.communicate()
    finally:
        os.unlink(global_path)


def _environment(
    git_dir: Path | None,
    work_tree: Path | None,
    index: Path | None,
    clone: bool,
    allow_file: bool,
    network: NetworkLimits,
) -> dict[str, str]:
    """git's whole environment: an allow-list of the host's, then the hardened settings."""
    # The one host allow-list (never a secret, never a GIT_* variable that would redirect
    # git), plus the ssh agent's socket: private repositories over ssh need it.
    env = host_env()
    if agent := os.environ.get("SSH_AUTH_SOCK"):
        env["SSH_AUTH_SOCK"] = agent
    config = _config(allow_file, network)
    alive = max(1, min(15, int(network.low_speed_time_s)))
    env |= {
        "HOME": str(private_dir() / "home"),
        "XDG_CONFIG_HOME": str(private_dir() / "home" / ".config"),
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_SYSTEM": os.devnull,
        "GIT_CONFIG_PARAMETERS": "",
        "GIT_TERMINAL_PROMPT": "0",
        # An empty askpass makes git fall through to the (disabled) terminal prompt,
        # so a private URL fails at once instead of waiting for a password.
        "GIT_ASKPASS": "",
        "SSH_ASKPASS": "",
        # A server that accepts and then says nothing is dropped after the timeouts.
        "GIT_SSH_COMMAND": (
            f"ssh -o BatchMode=yes -o ConnectTimeout={max(1, round(network.connect_timeout_s))}"
            f" -o ServerAliveInterval={alive}"
            f" -o ServerAliveCountMax={max(1, int(network.low_speed_time_s) // alive)}"
        ),
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
    return env


def trim_error(text: str, *, strip: Path | None = None) -> str:
    """Git's stderr, capped, with the per-job directory removed so paths read relative."""
    if strip is not None:
        text = text.replace(f"{strip}/", "").replace(str(strip), ".")
    text = text.strip()
    return text if len(text) <= _ERROR_CHARS else text[:_ERROR_CHARS] + " […]"


def require_ok(result: GitResult, what: str) -> str:
    """stdout of a git call that succeeded, else WorkspaceError with git's reason."""
    if result.status != 0:
        raise WorkspaceError(f"{what} failed: {trim_error(result.stderr)}")
    return result.stdout
