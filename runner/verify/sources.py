"""The changed Python files' text in both trees, read on the host for the deciding core.

Read before anything runs in the trees, capped, and never through a link: the trees are
the repository's, not ours. Nothing read here is executed.
"""

from __future__ import annotations

from pathlib import Path

from runner.common.files import read_regular
from runner.models import ParsedPatch, SourceChange

SOURCE_READ_BYTES = 1_000_000


def read_befores(baseline_dir: Path, parsed: ParsedPatch) -> dict[str, str | None]:
    """The base's text of each changed Python file, by its path in the candidate."""
    return {
        change.path: None
        if change.status == "added"
        else _read_source(baseline_dir, change.old_path or change.path)
        for change in parsed.files
        if change.path.endswith(".py")
    }


def source_changes(
    befores: dict[str, str | None], candidate_dir: Path, parsed: ParsedPatch
) -> list[SourceChange]:
    """Changed Python files before and after, read before anything runs in the trees."""
    out = []
    for change in parsed.files:
        if change.path not in befores:
            continue
        after = None if change.status == "deleted" else _read_source(candidate_dir, change.path)
        out.append(SourceChange(path=change.path, before=befores[change.path], after=after))
    return out


def _read_source(tree: Path, relative: str) -> str | None:
    path = tree / relative
    if not path.resolve().is_relative_to(tree.resolve()):
        return None
    data = read_regular(path, SOURCE_READ_BYTES)
    if data is None or len(data) > SOURCE_READ_BYTES:
        return None
    return data.decode("utf-8", "replace")
