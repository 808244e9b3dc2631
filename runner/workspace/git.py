"""The one hardened git runner: every git call of the runner goes through :func:`run_git`.

It builds the hardened environment in one place: hooks pointed at an empty read-only
directory, no system or user config, no prompts, no transport helpers, and
``safe.directory`` only for the paths of that call. Nothing from a job reaches git's
argv before a ``--`` or ``--end-of-options``.
"""

from __future__ import annotations

import atexit
import os
import re
import shutil
import tempfile
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import IO, NamedTuple

import git

from runner.errors import WorkspaceError

GIT_TIMEOUT_S = 900.0
_ERROR_CHARS = 2000
FULL_SHA = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")
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


def _config(allow_file: bool) -> dict[str, str]:
    private = private_dir()
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
) -> GitResult:
    """Run one git command with the runner's hardened options; never raises on exit status."""
    config = _config(allow_file)
    env: dict[str, str] = {
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

    # safe.directory is honoured only in protected (global) config, and a local clone's
    # upload-pack child sees none of the command-line config, so each call gets its own
    # global file naming exactly the repositories it touches. Never "*".
    fd, global_path = tempfile.mkstemp(prefix="gitconfig-", dir=private_dir())
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
    return GitResult(int(status or 0), str(out), str(err))


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
