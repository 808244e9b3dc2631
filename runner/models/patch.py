"""A patch as the runner parsed it: one FileChange per file."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from runner.models.base import Model

FileStatus = Literal["added", "modified", "deleted", "renamed"]


class FileChange(Model):
    """One file touched by a unified diff, as git will apply it."""

    path: str = Field(description="Path in the new tree (the old path for a deletion).")
    old_path: str | None = Field(default=None, description="Path in the old tree; None when added.")
    status: FileStatus = Field(description="What the diff does to the file.")
    is_binary: bool = Field(default=False, description="A binary diff (no text hunks).")
    added: int = Field(default=0, description="Lines added.")
    removed: int = Field(default=0, description="Lines removed.")
    added_lines: list[int] = Field(
        default_factory=list, description="Line numbers of added lines in the new file."
    )
    removed_lines: list[int] = Field(
        default_factory=list, description="Line numbers of removed lines in the old file."
    )
    added_text: list[str] = Field(
        default_factory=list, description="Added lines' text, without the '+' or newline."
    )
    removed_text: list[str] = Field(
        default_factory=list, description="Removed lines' text, without the '-' or newline."
    )
    hunk_headers: list[str] = Field(
        default_factory=list, description="Each hunk's section header (text after '@@ … @@')."
    )
    old_mode: str | None = Field(default=None, description="Git file mode before, e.g. 100644.")
    new_mode: str | None = Field(default=None, description="Git file mode after; 120000 = symlink.")

    @property
    def is_symlink(self) -> bool:
        """True when either side of the change is a symlink (mode 120000)."""
        return SYMLINK_MODE in (self.old_mode, self.new_mode)

    @property
    def mode_changed(self) -> bool:
        """True when the file's git mode differs between the two sides."""
        both = self.old_mode is not None and self.new_mode is not None
        return both and self.old_mode != self.new_mode


SYMLINK_MODE = "120000"


class ParsedPatch(Model):
    """A unified diff after normalisation, parsing and the safety checks."""

    text: str = Field(description="The normalised diff text (LF, final newline, no prose).")
    files: list[FileChange] = Field(description="Files in diff order.")

    @property
    def added(self) -> int:
        """Total added lines."""
        return sum(f.added for f in self.files)

    @property
    def removed(self) -> int:
        """Total removed lines."""
        return sum(f.removed for f in self.files)

    def paths(self) -> set[str]:
        """Every path the patch touches, old and new."""
        out = {f.path for f in self.files}
        out.update(f.old_path for f in self.files if f.old_path)
        return out


class SourceChange(Model):
    """A changed file's text before and after the candidate, for analysis of its code."""

    path: str = Field(description="Path in the candidate's tree.")
    before: str | None = Field(
        default=None, description="Text on the baseline; None when added or unreadable."
    )
    after: str | None = Field(
        default=None, description="Text on the candidate; None when deleted or unreadable."
    )
