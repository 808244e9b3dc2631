"""Find a tree's unittest-only test files and widen pytest's collection to them.

Reads files only (never imports them): pytest's config files at the tree's root and the
``test*.py`` files pytest's default pattern skips. The decision is made once per job,
over both trees, and used by every pytest run of the job and by the policy's test globs.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from pathlib import Path

from runner.common.files import read_regular
from runner.core.testfiles import PYTEST_CONFIG_FILES, UnittestFiles, only_unittest_finds
from runner.verify.job import Job

__all__ = ["collect_args", "decide_unittest_files", "find_unittest_files"]

# pytest's default norecursedirs, and folders no suite lives in
_SKIPPED_DIRS = frozenset(
    {"node_modules", "__pycache__", "build", "dist", "venv", "site-packages", "CVS", "_darcs"}
)
_MAX_SOURCE = 2_000_000  # bytes of one candidate file
_MAX_FILES = 5_000  # candidate files read per tree


def decide_unittest_files(state: Job, trees: Iterable[Path]) -> None:
    """Make the job's one decision: its files count as tests, and the environment notes say so."""
    decision = find_unittest_files(trees)
    state.unittest_files = decision
    if not decision.files:
        return
    globs = [*state.policy.test_globs, *decision.test_globs()]
    state.policy = state.policy.model_copy(update={"test_globs": globs})
    if state.env is not None:
        state.env.notes.append(decision.note())
        state.env.write_environment_json(state.folder)


def find_unittest_files(trees: Iterable[Path]) -> UnittestFiles:
    """Decide, over all ``trees`` together, which unittest-only test files pytest collects."""
    configs: list[dict[str, str]] = []
    found: list[tuple[str, bytes]] = []
    for tree in trees:
        configs.append({})
        for name in PYTEST_CONFIG_FILES:
            data = read_regular(tree / name, _MAX_SOURCE)
            if data is not None:
                configs[-1][name] = data.decode("utf-8", "replace")
        for path in _candidates(tree):
            data = read_regular(tree / path, _MAX_SOURCE)
            if data is not None and len(data) <= _MAX_SOURCE:
                found.append((path, data))
    return UnittestFiles.decide(configs, found)


def collect_args(decision: UnittestFiles, command: list[str], root: str) -> list[str]:
    """pytest arguments that add the decision's files (``root`` is the tree in the sandbox).

    Nothing when there is nothing to add, or when the test command sets ``python_files``.
    """
    if not decision.files or any("python_files" in arg for arg in command):
        return []
    # the decision's paths hold no space, quote or wildcard: the list splits as pytest does
    return ["-o", "python_files=" + " ".join(decision.python_files(root))]


def _candidates(tree: Path) -> Iterator[str]:
    count = 0
    for folder, dirs, files in os.walk(tree, followlinks=False):
        dirs[:] = sorted(d for d in dirs if not _skipped(Path(folder) / d))
        for name in sorted(files):
            if only_unittest_finds(name):
                count += 1
                if count > _MAX_FILES:
                    return
                yield (Path(folder) / name).relative_to(tree).as_posix()


def _skipped(folder: Path) -> bool:
    name = folder.name
    return (
        name.startswith(".")
        or name in _SKIPPED_DIRS
        or name.endswith((".egg", ".egg-info"))
        or (folder / "pyvenv.cfg").exists()
    )
