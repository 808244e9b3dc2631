"""Hostile repositories, remotes and candidates are bounded by number (issue 16, item 3).

One test per vector, against real git repositories, real loopback servers and the real
engine. Each asserts the outcome, the bound that stopped it, and that nothing is left:
no git process, no container of this session, no file outside the job's folder.
"""

from __future__ import annotations

import os
import socket
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from runner.errors import JobInputError, WorkspaceError
from runner.workspace.git import NetworkLimits
from runner.workspace.mirrors import MirrorCache
from runner.workspace.trees import CheckoutLimits, checkout

SHORT = NetworkLimits(connect_timeout_s=1, low_speed_bytes=1000, low_speed_time_s=1)


@pytest.fixture(autouse=True)
def _git_identity(monkeypatch: pytest.MonkeyPatch) -> None:
    for who in ("AUTHOR", "COMMITTER"):
        monkeypatch.setenv(f"GIT_{who}_NAME", "Test")
        monkeypatch.setenv(f"GIT_{who}_EMAIL", "test@example.invalid")
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", os.devnull)


def tgit(repo: Path, *args: str, stdin: str = "") -> str:
    """The test's own git, to build repositories (never the runner's)."""
    cmd = ["git", "-c", "safe.directory=*", *args]
    done = subprocess.run(cmd, cwd=repo, input=stdin, capture_output=True, text=True, check=True)
    return done.stdout.strip()


def git_bomb(path: Path, fanout: int, depth: int) -> str:
    """A repository of a few kilobytes whose one commit names ``fanout ** depth`` files."""
    path.mkdir(parents=True)
    tgit(path, "init", "-q", "-b", "main")
    blob = tgit(path, "hash-object", "-w", "--stdin", stdin="boom\n")
    entries = "".join(f"100644 blob {blob}\tf{i}\n" for i in range(fanout))
    tree = tgit(path, "mktree", stdin=entries)
    for _ in range(depth - 1):
        tree = tgit(
            path, "mktree", stdin="".join(f"040000 tree {tree}\td{i}\n" for i in range(fanout))
        )
    sha = tgit(path, "commit-tree", tree, "-m", "bomb")
    tgit(path, "update-ref", "refs/heads/main", sha)
    return sha


def git_children() -> list[int]:
    """Processes of this test run that are git or one of its helpers."""
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            cmdline = Path(entry.path, "cmdline").read_bytes().split(b"\0")
            stat = Path(entry.path, "stat").read_text()
        except OSError:
            continue
        parent = int(stat.rsplit(") ", 1)[1].split()[1])
        name = Path(cmdline[0].decode(errors="replace")).name
        if name.startswith(("git", "ssh")) and parent == os.getpid():
            found.append(int(entry.name))
    return found


class HangingServer:
    """A loopback TCP server that accepts connections and never answers."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.accepted = threading.Event()
        self._conns: list[socket.socket] = []
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self._conns.append(conn)
            self.accepted.set()

    def close(self) -> None:
        self.sock.close()
        for conn in self._conns:
            conn.close()


@pytest.fixture
def hanging() -> Iterator[HangingServer]:
    server = HangingServer()
    yield server
    server.close()


def leftovers(root: Path) -> list[str]:
    """What a refused or stopped clone left in the mirror cache (lock files aside)."""
    return sorted(p.name for p in root.iterdir() if not p.name.endswith(".lock"))


# --------------------------------------------------------------------------- checkouts


def test_a_git_bomb_is_refused_before_its_files_exist(tmp_path: Path) -> None:
    """A million paths in a few kilobytes: refused at the default file cap, nothing written."""
    src = tmp_path / "bomb"
    git_bomb(src, fanout=10, depth=6)
    cache = MirrorCache(tmp_path / "cache", allow_local=True)
    mirror, sha = cache.resolve(str(src), "HEAD")
    dest = tmp_path / "job" / "tree"
    with pytest.raises(JobInputError, match=r"more than 200000 files .*checkout_max_files"):
        checkout(mirror, sha, dest, CheckoutLimits())
    assert not dest.exists()
    assert not git_children()


def test_a_tree_over_the_byte_cap_is_refused_and_one_under_it_checks_out(
    tmp_path: Path,
) -> None:
    src = tmp_path / "big"
    src.mkdir()
    tgit(src, "init", "-q", "-b", "main")
    for i in range(3):
        (src / f"blob{i}.bin").write_bytes(os.urandom(400_000))
    tgit(src, "add", "-A")
    tgit(src, "commit", "-q", "-m", "big")
    cache = MirrorCache(tmp_path / "cache", allow_local=True)
    mirror, sha = cache.resolve(str(src), "HEAD")
    with pytest.raises(JobInputError, match=r"more than 1000000 bytes .*checkout_max_bytes"):
        checkout(mirror, sha, tmp_path / "refused", CheckoutLimits(max_bytes=1_000_000))
    assert not (tmp_path / "refused").exists()
    dest = checkout(mirror, sha, tmp_path / "fits", CheckoutLimits(max_bytes=1_200_000))
    assert sum(p.stat().st_size for p in dest.glob("*.bin")) == 1_200_000


# --------------------------------------------------------------------------- remotes


def test_an_https_remote_that_accepts_and_hangs_is_dropped(
    tmp_path: Path, hanging: HangingServer
) -> None:
    cache = MirrorCache(tmp_path / "cache", allow_local=False, network=SHORT)
    with pytest.raises(WorkspaceError, match=r"sent nothing for 1s .*git_connect_timeout_s"):
        cache.resolve(f"https://127.0.0.1:{hanging.port}/acme/app.git", "HEAD")
    assert hanging.accepted.is_set()
    assert leftovers(cache.root) == []
    assert not git_children()


def test_an_ssh_remote_that_accepts_and_hangs_is_dropped(
    tmp_path: Path, hanging: HangingServer
) -> None:
    cache = MirrorCache(tmp_path / "cache", allow_local=False, network=SHORT)
    with pytest.raises(WorkspaceError, match=r"clone of .* failed"):
        cache.resolve(f"ssh://git@127.0.0.1:{hanging.port}/acme/app.git", "main")
    assert hanging.accepted.is_set()
    assert leftovers(cache.root) == []
    assert not git_children()


def test_cancelling_a_hung_clone_kills_git(tmp_path: Path, hanging: HangingServer) -> None:
    """The job's cancel event reaches git: the clone ends as cancelled, its processes gone."""
    cache = MirrorCache(tmp_path / "cache", allow_local=False)  # default 60 s limits
    cancel = threading.Event()
    errors: list[BaseException] = []

    def clone() -> None:
        try:
            cache.resolve(f"https://127.0.0.1:{hanging.port}/acme/app.git", "main", cancel)
        except BaseException as exc:  # handed to the test thread
            errors.append(exc)

    worker = threading.Thread(target=clone)
    worker.start()
    assert hanging.accepted.wait(30)
    cancel.set()
    worker.join(30)
    assert not worker.is_alive()
    assert len(errors) == 1 and isinstance(errors[0], WorkspaceError)
    assert "cancelled" in str(errors[0])
    assert leftovers(cache.root) == []
    assert not git_children()
