"""Patch intake: normalise, parse and vet a unified diff; split off its test part.

Pure: text in, ParsedPatch out, PatchError on anything unsafe. ``git apply`` stays
the authority on whether a patch applies; this module decides whether it may be tried.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Iterable

from unidiff.errors import UnidiffParseError
from unidiff.patch import PatchedFile, PatchSet

from runner.core.paths import DEFAULT_TEST_GLOBS, glob_match, is_test_path
from runner.core.weakening import weakening_findings
from runner.errors import PatchError
from runner.models import (
    SYMLINK_MODE,
    AppliedWith,
    FileChange,
    FileStatus,
    ParsedPatch,
    PatchStats,
)

__all__ = [
    "DEFAULT_TEST_GLOBS",
    "FileChange",
    "ParsedPatch",
    "glob_match",
    "is_test_path",
    "normalise",
    "parse_patch",
    "patch_stats",
    "split_test_part",
    "weakening_findings",
]

DEFAULT_MAX_BYTES = 1_000_000
DEFAULT_MAX_FILES = 200
DEFAULT_MAX_LINES = 20_000

_FILE_START = re.compile(r"^diff --git |^--- ")
# git format-patch ends with "-- \n<git version>\n"; a hunk line never lacks a prefix
# character, so a bare version line after "-- " cannot be diff content.
_SIGNATURE = re.compile(r"\n-- \n\d[\w.+-]*(?: [^\n]*)?\n*\Z")
_EXTENDED_PATH = re.compile(r"^(rename from|rename to|copy from|copy to) (.+)$")
_DIFF_GIT = re.compile(r"^diff --git (.+)$")
_OLD_MODE = re.compile(r"^(?:old mode|deleted file mode) (\d+)$")
_NEW_MODE = re.compile(r"^(?:new mode|new file mode) (\d+)$")
_INDEX_MODE = re.compile(r"^index [0-9a-f]+\.\.[0-9a-f]+ (\d+)$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_C_ESCAPES = {"a": 7, "b": 8, "t": 9, "n": 10, "v": 11, "f": 12, "r": 13, '"': 34, "\\": 92}
_PREFIX = re.compile(r"^[abciow12]/")


def normalise(text: str) -> str:
    """CRLF to LF, drop leading prose and a format-patch signature, end with a newline."""
    text = text.replace("\r\n", "\n")
    if not text.endswith("\n"):
        text += "\n"
    text = _SIGNATURE.sub("\n", text)
    lines = text.splitlines(keepends=True)
    for i, line in enumerate(lines):
        if line.startswith("diff --git "):
            return "".join(lines[i:])
        # a bare "--- " only starts a diff when "+++ " follows; prose may contain "--- "
        if line.startswith("--- ") and i + 1 < len(lines) and lines[i + 1].startswith("+++ "):
            return "".join(lines[i:])
    return text


def parse_patch(
    text: str,
    *,
    allow_binary: bool = False,
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_files: int = DEFAULT_MAX_FILES,
    max_lines: int = DEFAULT_MAX_LINES,
) -> ParsedPatch:
    """Normalise and parse ``text``; raise PatchError when it is not a safe diff."""
    size = len(text.encode("utf-8", "surrogateescape"))
    if size > max_bytes:
        raise PatchError(f"the patch is {size} bytes; the limit is {max_bytes}", check="scope")
    if not text.strip():
        raise PatchError("the patch is empty; give a unified diff (for example `git diff`)")
    norm = normalise(text)
    try:
        patchset = PatchSet(norm)
    except UnidiffParseError as exc:
        raise PatchError(f"the patch is not a valid unified diff: {exc}") from exc
    if not patchset:
        raise PatchError(
            "the text is not a unified diff: no file headers ('diff --git' or '---'/'+++') found"
        )
    if len(patchset) > max_files:
        raise PatchError(
            f"the patch touches {len(patchset)} files; the limit is {max_files}", check="scope"
        )
    chunks = _file_chunks(norm, patchset)
    files = [_file_change(pf, chunk) for pf, chunk in zip(patchset, chunks, strict=True)]
    for change, chunk in zip(files, chunks, strict=True):
        if not change.path:
            raise PatchError("a file header in the patch names no path")
        for path in _all_paths(change, chunk):
            _check_path(path)
        _check_link(change)
        if change.is_binary and not allow_binary:
            raise PatchError(
                f"{change.path}: binary changes are not allowed by the policy; send a text diff",
            )
        if (
            not change.is_binary
            and change.added == change.removed == 0
            and not _header_only(change)
        ):
            raise PatchError(f"{change.path}: the diff has a file header but no changes")
    lines = sum(f.added + f.removed for f in files)
    if lines > max_lines:
        raise PatchError(
            f"the patch changes {lines} lines; the limit is {max_lines}", check="scope"
        )
    return ParsedPatch(text=norm, files=files)


def _header_only(change: FileChange) -> bool:
    # renames, mode changes, and empty added/deleted files legitimately have no hunks
    return change.status in ("renamed", "added", "deleted") or change.mode_changed


def _file_chunks(text: str, patchset: PatchSet) -> list[str]:
    """Slice the normalised text into one faithful chunk per file, in order."""
    lines = text.splitlines(keepends=True)
    starts = [_start_line(pf, lines) for pf in patchset]
    ends = [*starts[1:], len(lines)]
    return ["".join(lines[s:e]) for s, e in zip(starts, ends, strict=True)]


def _start_line(pf: PatchedFile, lines: list[str]) -> int:
    # unidiff records the 1-based line of "diff --git" (git diffs) or "+++" (plain diffs)
    index = (pf.diff_line_no or 1) - 1
    if lines[index].startswith("+++ ") and index > 0 and lines[index - 1].startswith("--- "):
        index -= 1
    return index


def _file_change(pf: PatchedFile, chunk: str) -> FileChange:
    old_mode, new_mode = _modes(chunk)
    source = _strip_prefix(_unquote(pf.source_file)) if pf.source_file else None
    target = _strip_prefix(_unquote(pf.target_file)) if pf.target_file else None
    renamed = _extended(chunk, "rename from"), _extended(chunk, "rename to")
    status: FileStatus
    if (pf.is_added_file and source in (None, "/dev/null")) or "\nnew file mode " in chunk:
        status, path, old_path = "added", target or "", None
    elif (pf.is_removed_file and target in (None, "/dev/null")) or "\ndeleted file mode " in chunk:
        status, path, old_path = "deleted", source or "", source
    elif (renamed[0] and renamed[1]) or (source and target and source != target):
        status = "renamed"
        path, old_path = renamed[1] or target or "", renamed[0] or source
    else:
        status, path, old_path = "modified", target or source or "", source
    added_lines: list[int] = []
    removed_lines: list[int] = []
    added_text: list[str] = []
    removed_text: list[str] = []
    for hunk in pf:
        for line in hunk:
            if line.is_added and line.target_line_no is not None:
                added_lines.append(line.target_line_no)
                added_text.append(line.value.rstrip("\n"))
            elif line.is_removed and line.source_line_no is not None:
                removed_lines.append(line.source_line_no)
                removed_text.append(line.value.rstrip("\n"))
    return FileChange(
        path=path,
        old_path=old_path,
        status=status,
        is_binary=bool(pf.is_binary_file),
        added=len(added_lines),
        removed=len(removed_lines),
        added_lines=added_lines,
        removed_lines=removed_lines,
        added_text=added_text,
        removed_text=removed_text,
        hunk_headers=[h.section_header for h in pf],
        old_mode=old_mode,
        new_mode=new_mode,
    )


def _header_lines(chunk: str) -> Iterable[str]:
    for line in chunk.splitlines():
        if line.startswith("@@ "):
            return
        yield line


def _modes(chunk: str) -> tuple[str | None, str | None]:
    old = new = None
    for line in _header_lines(chunk):
        if m := _OLD_MODE.match(line):
            old = m.group(1)
        elif m := _NEW_MODE.match(line):
            new = m.group(1)
        elif m := _INDEX_MODE.match(line):
            old, new = old or m.group(1), new or m.group(1)
    return old, new


def _extended(chunk: str, key: str) -> str | None:
    for line in _header_lines(chunk):
        m = _EXTENDED_PATH.match(line)
        if m and m.group(1) == key:
            return _unquote(m.group(2))
    return None


def _all_paths(change: FileChange, chunk: str) -> list[str]:
    """Every path git could act on: unidiff's view plus git's own header lines."""
    paths = [change.path, change.old_path or ""]
    for line in _header_lines(chunk):
        if m := _EXTENDED_PATH.match(line):
            paths.append(_unquote(m.group(2)))
        elif line.startswith(("--- ", "+++ ")):
            name = line[4:].split("\t", 1)[0]
            if name != "/dev/null":
                paths.append(_strip_prefix(_unquote(name)))
        elif m := _DIFF_GIT.match(line):
            paths.extend(_strip_prefix(_unquote(p)) for p in _split_git_header(m.group(1)))
    return [p for p in paths if p]


def _split_git_header(rest: str) -> list[str]:
    if rest.startswith('"'):
        end = rest.find('" ', 1)
        return [rest[: end + 1], rest[end + 2 :]] if end > 0 else [rest]
    if " b/" in rest:
        head, _, tail = rest.partition(" b/")
        return [head, "b/" + tail]
    return rest.split(" ", 1)


def _check_path(path: str) -> None:
    if _CONTROL.search(path):
        raise PatchError(f"{path!r}: paths with control characters or NUL are refused")
    if path.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:[\\/]", path):
        raise PatchError(f"{path}: absolute paths are refused; use paths relative to the repo root")
    parts = re.split(r"[\\/]+", path)
    if ".." in parts:
        raise PatchError(f"{path}: paths with '..' components are refused")
    if any(part.lower() == ".git" for part in parts):
        raise PatchError(f"{path}: the patch may not touch .git/")


def _check_link(change: FileChange) -> None:
    """Refuse a symlink the patch creates or retargets unless it stays inside the tree.

    A link to /etc/passwd or ../../ is harmless inside the sandbox (it resolves in the
    container), but anything on the host that ever reads the tree would follow it.
    """
    if change.new_mode != SYMLINK_MODE or change.status == "deleted" or not change.added_text:
        return
    target = "".join(change.added_text)  # a link's content is its target, one line
    where = posixpath.normpath(posixpath.join(posixpath.dirname(change.path), target))
    parts = where.split("/")
    if target.startswith("/") or parts[0] == ".." or ".git" in (p.lower() for p in parts):
        raise PatchError(
            f"{change.path}: a symlink to {target!r} points outside the repository "
            "or into .git/; links must stay inside the tree"
        )


def _strip_prefix(path: str) -> str:
    return path[2:] if _PREFIX.match(path) else path


def _unquote(name: str) -> str:
    """Undo git's C-style quoting of unusual file names ("a/\\303\\251.py")."""
    name = name.strip()
    if not (len(name) >= 2 and name.startswith('"') and name.endswith('"')):
        return name
    body, out, i = name[1:-1], bytearray(), 0
    while i < len(body):
        char = body[i]
        if char == "\\" and i + 1 < len(body):
            nxt = body[i + 1]
            if nxt in _C_ESCAPES:
                out.append(_C_ESCAPES[nxt])
                i += 2
                continue
            if re.match(r"[0-7]{3}", body[i + 1 : i + 4]):
                out.append(int(body[i + 1 : i + 4], 8))
                i += 4
                continue
        out.extend(char.encode("utf-8"))
        i += 1
    return out.decode("utf-8", "replace")


# --------------------------------------------------------------------------- test split


def split_test_part(
    parsed: ParsedPatch,
    patch_text: str | None = None,
    test_globs: Iterable[str] = DEFAULT_TEST_GLOBS,
) -> tuple[str, str]:
    """Split the diff per file into (test part, source part), each a diff text ('' if empty).

    Slices the normalised original text so each part applies exactly as the whole would.
    A rename counts as a test file when either of its paths is one.
    """
    globs = tuple(test_globs)
    text = normalise(patch_text) if patch_text is not None else parsed.text
    chunks = _file_chunks(text, PatchSet(text))
    if len(chunks) != len(parsed.files):
        raise PatchError("the patch text does not match its parsed form")
    test: list[str] = []
    source: list[str] = []
    for change, chunk in zip(parsed.files, chunks, strict=True):
        paths = [change.path, *([change.old_path] if change.old_path else [])]
        (test if any(is_test_path(p, globs) for p in paths) else source).append(chunk)
    return "".join(test), "".join(source)


def patch_stats(
    parsed: ParsedPatch, applied_with: AppliedWith, test_globs: Iterable[str] = DEFAULT_TEST_GLOBS
) -> PatchStats:
    """The verdict's ``patch`` section."""
    globs = tuple(test_globs)
    tests = [f.path for f in parsed.files if is_test_path(f.path, globs)]
    return PatchStats(
        files=len(parsed.files),
        added=parsed.added,
        removed=parsed.removed,
        applied_with=applied_with,
        test_files=tests,
        source_files=[f.path for f in parsed.files if f.path not in tests],
    )
