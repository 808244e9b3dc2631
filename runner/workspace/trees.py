"""Per-job trees: checkout from a mirror, patch path safety, ``git apply``, copy and removal."""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
import tempfile
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Literal

import structlog

from runner.config import WorkspaceSettings
from runner.errors import JobInputError, PatchError, WorkspaceError
from runner.workspace.git import FULL_SHA, GitResult, require_ok, run_git, stream_git, trim_error

log = structlog.get_logger(__name__)

ApplyMode = Literal["clean", "3way", "already_applied"]


_READ_CHUNK = 1 << 16


@dataclass(frozen=True)
class CheckoutLimits:
    """The most a checkout may put on the host's disk."""

    max_bytes: int = 2 * 2**30
    max_files: int = 200_000

    @classmethod
    def of(cls, settings: WorkspaceSettings) -> CheckoutLimits:
        """The limits runner.toml's [workspace] section sets."""
        return cls(settings.checkout_max_bytes, settings.checkout_max_files)


def checkout(
    mirror: Path,
    commit: str,
    dest: Path,
    limits: CheckoutLimits | None = None,
    cancel: threading.Event | None = None,
) -> Path:
    """A per-job working tree of ``commit`` at ``dest`` with its own ``.git`` (objects borrowed).

    The tree's size is measured in the object database first, so a tree over ``limits``
    is refused before one file of it is written.
    """
    if not FULL_SHA.fullmatch(commit):
        raise JobInputError(f"checkout needs a full commit id, got {commit!r}")
    if dest.exists() and any(dest.iterdir()):
        raise WorkspaceError(f"checkout destination {dest} is not empty")
    check_tree_size(mirror, commit, limits or CheckoutLimits(), cancel)
    dest.parent.mkdir(parents=True, exist_ok=True)
    # --shared borrows the mirror's objects through alternates: nothing is copied, and
    # the mirror is append-only (gc disabled), so the borrowed objects stay.
    args = ["clone", "--shared", "--no-checkout", "--single-branch", "--no-tags", "--quiet"]
    result = run_git(
        [*args, "--", str(mirror), str(dest)],
        cwd=dest.parent,
        git_dir=dest / ".git",
        clone=True,
        allow_file=True,  # our own mirror, whatever the job's URL policy is
        trust=[mirror],
        cancel=cancel,
    )
    require_ok(result, "clone of the mirror")
    require_ok(
        run_git(
            ["checkout", "--quiet", "--detach", commit, "--"],
            cwd=dest,
            git_dir=dest / ".git",
            work_tree=dest,
            trust=[dest],
            cancel=cancel,
        ),
        f"checkout of {commit}",
    )
    log.info("checked_out", commit=commit, dest=str(dest))
    return dest


def check_tree_size(
    mirror: Path, commit: str, limits: CheckoutLimits, cancel: threading.Event | None = None
) -> None:
    """Raise JobInputError when ``commit``'s tree has more files or bytes than ``limits``.

    Reads ``git ls-tree -r -l`` as a stream and stops at the first entry over a cap: a
    "git bomb" names a billion paths in a few kilobytes, so it is never listed whole.
    """
    files = size = 0
    pending = b""
    args = ["ls-tree", "-r", "-l", "-z", "--full-tree", "--end-of-options", commit]
    with stream_git(args, cwd=mirror, git_dir=mirror, trust=[mirror]) as out:
        while chunk := out.read(_READ_CHUNK):
            if cancel is not None and cancel.is_set():
                raise WorkspaceError("checkout stopped: the job was cancelled")
            *entries, pending = (pending + chunk).split(b"\0")
            for entry in entries:
                # "<mode> <type> <object> <size>\t<path>"; a submodule's size is "-".
                meta = entry.split(b"\t", 1)[0].split()
                files += 1
                size += int(meta[3]) if len(meta) == 4 and meta[3].isdigit() else 0
                if files > limits.max_files:
                    raise JobInputError(
                        f"the repository at {commit[:12]} has more than {limits.max_files} files "
                        "([workspace] checkout_max_files); refused before checkout"
                    )
                if size > limits.max_bytes:
                    raise JobInputError(
                        f"the repository at {commit[:12]} has more than {limits.max_bytes} bytes "
                        "of files ([workspace] checkout_max_bytes); refused before checkout"
                    )
    log.info("checkout_size", commit=commit, files=files, bytes=size)


def _tree_git(
    dest: Path, args: Sequence[str], *, index: Path | None = None, istream: IO[bytes] | None = None
) -> GitResult:
    """A git call inside a per-job tree."""
    git_dir = dest / ".git"
    return run_git(
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
        require_ok(_tree_git(dest, ["add", "-A"], index=Path(index)), "git add (tree id)")
        out = require_ok(_tree_git(dest, ["write-tree"], index=Path(index)), "git write-tree")
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

        def run(*extra: str) -> GitResult:
            stream.seek(0)
            return _tree_git(dest, [*base, *extra], istream=stream)

        # A copied or re-owned tree has new stat data; without a refresh, --index
        # would call unchanged files "does not match index".
        _tree_git(dest, ["update-index", "-q", "--refresh"])
        check = run("--check", "--index")
        if check.status == 0:
            result = run("--index")
            if result.status != 0:
                raise PatchError(
                    f"the {label} does not apply: {trim_error(result.stderr, strip=dest)}"
                )
            return _applied(label, "clean")
        if run("--check", "--index", "-R").status == 0:
            return _applied(label, "already_applied")
        reason = trim_error(check.stderr, strip=dest)
        if not allow_3way:
            raise PatchError(f"the {label} does not apply: {reason}")
        snapshot = require_ok(_tree_git(dest, ["write-tree"]), "git write-tree").strip()
        merged = run("--3way")
        conflicts = require_ok(_tree_git(dest, ["ls-files", "--unmerged"]), "git ls-files").strip()
        if merged.status != 0 or conflicts:
            # Put tree and index back as they were, so the failure leaves no half merge.
            require_ok(_tree_git(dest, ["read-tree", "--reset", "-u", snapshot]), "git read-tree")
            detail = trim_error(merged.stderr, strip=dest) or "conflicts"
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
