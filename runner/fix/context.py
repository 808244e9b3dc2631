"""Code context for a fix prompt: what a person would open first, under a token budget.

Pure functions on a checked-out tree. In priority order: the code around each
repository frame (the whole enclosing function when it is short, else a window; a
short file whole), a test near the failing code as a style example with the conftest
files above it, the repository modules the frame files import, and the repository's
paths. Tokens are estimated as characters / 4: the SDK offers no offline counter.
Only regular files inside the tree are read; a symlink could point anywhere on the host.
"""

from __future__ import annotations

import ast
import os
import stat
from pathlib import Path, PurePosixPath
from typing import Literal

from pydantic import Field

from runner.common.files import read_regular
from runner.core.patch import DEFAULT_TEST_GLOBS, is_test_path
from runner.fix.errorreport import ErrorReport, report_frames
from runner.models import Model

__all__ = [
    "CodeContext",
    "Snippet",
    "estimate_tokens",
    "gather_context",
    "list_files",
    "render_context",
]

MAX_FILE_BYTES = 512 * 1024
WHOLE_FILE_LINES = 150
WHOLE_FUNCTION_LINES = 120
WINDOW = 25
TREE_MAX_PATHS = 400
TREE_SHARE = 0.15
_SKIP_DIRS = {".git", "__pycache__", ".venv", "venv", "node_modules", ".tox", ".mypy_cache"}
_SKIP_DIRS |= {".pytest_cache", ".ruff_cache", "build", "dist", ".eggs"}

SnippetKind = Literal["frame", "test-example", "conftest", "import"]


class Snippet(Model):
    """Lines start..end (1-based, inclusive) of one repository file."""

    path: str = Field(description="Repository-relative path.")
    start: int = Field(ge=1, description="First line.")
    end: int = Field(ge=1, description="Last line.")
    kind: SnippetKind = Field(description="Why it is in the context.")
    note: str = Field(default="", description="E.g. which frames point into it.")
    text: str = Field(description="The lines, each prefixed with its line number.")


class CodeContext(Model):
    """What the first prompt shows of the repository."""

    tree: list[str] = Field(default_factory=list, description="Repository paths (trimmed).")
    tree_omitted: int = Field(default=0, description="Paths left out of the tree.")
    test_layout: list[str] = Field(
        default_factory=list, description="Folders holding tests, and conftest files."
    )
    snippets: list[Snippet] = Field(default_factory=list, description="Code, in priority order.")
    omitted: list[str] = Field(default_factory=list, description="What did not fit the budget.")
    tokens: int = Field(default=0, description="Estimated tokens of the rendered context.")


def estimate_tokens(text: str) -> int:
    """About four characters a token for code and English."""
    return (len(text) + 3) // 4


def list_files(root: Path) -> list[str]:
    """Regular files of a tree as sorted POSIX paths, without VCS, caches and virtualenvs."""
    found: list[str] = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        dirnames[:] = sorted(d for d in dirnames if d not in _SKIP_DIRS)
        rel = Path(dirpath).relative_to(root)
        for name in filenames:
            path = Path(dirpath) / name
            if stat.S_ISREG(os.lstat(path).st_mode):
                found.append((rel / name).as_posix())
    return sorted(found)


def _read_lines(root: Path, rel: str) -> list[str] | None:
    data = read_regular(root / rel, MAX_FILE_BYTES)
    if data is None or len(data) > MAX_FILE_BYTES or b"\x00" in data:
        return None
    return data.decode("utf-8", errors="replace").splitlines()


def _numbered(lines: list[str], start: int, end: int) -> str:
    return "\n".join(f"{n:>5}  {lines[n - 1]}" for n in range(start, end + 1))


def _enclosing_function(tree: ast.AST | None, line: int) -> tuple[int, int] | None:
    """Start and end lines of the innermost function around `line` (decorators included)."""
    best: tuple[int, int] | None = None
    if tree is None:
        return None
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            start = min([node.lineno, *(d.lineno for d in node.decorator_list)])
            end = node.end_lineno or node.lineno
            if start <= line <= end and (best is None or end - start < best[1] - best[0]):
                best = (start, end)
    return best


def _parse(lines: list[str]) -> ast.AST | None:
    try:
        return ast.parse("\n".join(lines))
    except (SyntaxError, ValueError):
        return None


def _frame_ranges(lines: list[str], frame_lines: list[int]) -> list[tuple[int, int]]:
    """Merged line ranges covering each frame line: its function when short, else a window."""
    n = len(lines)
    if n <= WHOLE_FILE_LINES:
        return [(1, max(n, 1))]
    tree = _parse(lines)
    ranges = []
    for line in frame_lines:
        func = _enclosing_function(tree, line)
        if func and func[1] - func[0] < WHOLE_FUNCTION_LINES:
            ranges.append(func)
        else:
            ranges.append((max(1, line - WINDOW), min(n, line + WINDOW)))
    # The import block at the top: a fix often needs one more import.
    header_end = _import_block_end(tree)
    if header_end:
        ranges.append((1, header_end))
    merged: list[tuple[int, int]] = []
    for start, end in sorted(ranges):
        if merged and start <= merged[-1][1] + 1:
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
        else:
            merged.append((start, end))
    return merged


def _import_block_end(tree: ast.AST | None) -> int:
    if not isinstance(tree, ast.Module):
        return 0
    end = 0
    for node in tree.body:
        if isinstance(node, ast.Import | ast.ImportFrom):
            end = node.end_lineno or node.lineno
        elif end:
            break
    return min(end, 60)


def _imported_modules(lines: list[str], rel: str) -> list[str]:
    """Dotted names a file imports, relative imports resolved against its package."""
    tree = _parse(lines)
    if tree is None:
        return []
    package = list(PurePosixPath(rel).parent.parts)
    names: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package[: len(package) - (node.level - 1)] if node.level > 1 else package
                base = ".".join([*up, *([base] if base else [])])
            if base:
                names.append(base)
                names += [f"{base}.{alias.name}" for alias in node.names]
    return names


def _module_file(name: str, files: set[str]) -> str | None:
    stem = name.replace(".", "/")
    for candidate in (
        f"{stem}.py",
        f"{stem}/__init__.py",
        f"src/{stem}.py",
        f"src/{stem}/__init__.py",
    ):
        if candidate in files:
            return candidate
    return None


def _test_example(frame_paths: list[str], tests: list[str]) -> str | None:
    """A test file for the failing module (test_<stem>.py), else one beside it, else any."""
    if not tests:
        return None
    for path in frame_paths:
        stem = PurePosixPath(path).stem
        for test in tests:
            if PurePosixPath(test).name in (f"test_{stem}.py", f"{stem}_test.py"):
                return test
    for path in frame_paths:
        top = PurePosixPath(path).parts[0]
        near = [t for t in tests if PurePosixPath(t).parts[0] == top]
        if near:
            return near[0]
    return tests[0]


def _conftests(test: str, files: set[str]) -> list[str]:
    parts = PurePosixPath(test).parent.parts
    chain = [PurePosixPath(*parts[:i], "conftest.py").as_posix() for i in range(len(parts) + 1)]
    return [c for c in chain if c in files]


class _Budget:
    """Adds snippets while their estimated tokens fit."""

    def __init__(self, tokens: int) -> None:
        self.left = tokens
        self.snippets: list[Snippet] = []
        self.omitted: list[str] = []

    def offer(self, snippet: Snippet, fallback: Snippet | None = None) -> None:
        for option in (snippet, fallback):
            if option is None:
                continue
            cost = estimate_tokens(_render_snippet(option))
            if cost <= self.left:
                self.left -= cost
                self.snippets.append(option)
                return
        self.omitted.append(f"{snippet.path}:{snippet.start}-{snippet.end} ({snippet.kind})")


def _snippet(
    lines: list[str], rel: str, start: int, end: int, kind: SnippetKind, note: str = ""
) -> Snippet:
    end = max(start, min(end, len(lines)))
    return Snippet(
        path=rel, start=start, end=end, kind=kind, note=note, text=_numbered(lines, start, end)
    )


def gather_context(root: Path, report: ErrorReport, budget_tokens: int) -> CodeContext:
    """The context of `report` in the tree at `root`, bounded by `budget_tokens`."""
    paths = list_files(root)
    files = set(paths)
    frames = report_frames(report, files)
    tests = [p for p in paths if p.endswith(".py") and is_test_path(p, DEFAULT_TEST_GLOBS)]
    tests_only = [p for p in tests if PurePosixPath(p).name != "conftest.py"]
    budget = _Budget(budget_tokens - int(budget_tokens * TREE_SHARE))

    by_file: dict[str, list[int]] = {}
    notes: dict[str, list[str]] = {}
    for repo_frame in reversed(frames):  # innermost first: nearest to where it raised
        by_file.setdefault(repo_frame.repo_path, []).append(repo_frame.frame.line)
        notes.setdefault(repo_frame.repo_path, []).append(
            f"line {repo_frame.frame.line} in {repo_frame.frame.function}"
        )
    sources: dict[str, list[str]] = {}
    for rel, frame_lines in by_file.items():
        lines = _read_lines(root, rel)
        if lines is None:
            continue
        sources[rel] = lines
        note = "traceback: " + ", ".join(notes[rel])
        for start, end in _frame_ranges(lines, frame_lines):
            small = [ln for ln in frame_lines if start <= ln <= end]
            fallback = None
            if small and end - start > 2 * 10:
                line = small[0]
                fallback = _snippet(lines, rel, max(1, line - 10), line + 10, "frame", note)
            budget.offer(_snippet(lines, rel, start, end, "frame", note), fallback)

    example = _test_example(list(by_file), tests_only)
    if example is not None:
        for rel, kind in [(c, "conftest") for c in _conftests(example, files)] + [
            (example, "test-example")
        ]:
            lines = _read_lines(root, rel)
            if lines:
                whole = _snippet(lines, rel, 1, len(lines), kind)  # type: ignore[arg-type]
                head = _snippet(lines, rel, 1, 80, kind) if len(lines) > 80 else None  # type: ignore[arg-type]
                budget.offer(whole, head)

    seen = set(by_file) | {s.path for s in budget.snippets}
    for rel, lines in sources.items():
        for name in _imported_modules(lines, rel):
            target = _module_file(name, files)
            if target is None or target in seen:
                continue
            seen.add(target)
            imported = _read_lines(root, target)
            if imported:
                note = f"imported by {rel}"
                whole = _snippet(imported, target, 1, len(imported), "import", note)
                head = (
                    _snippet(imported, target, 1, 80, "import", note)
                    if len(imported) > 80
                    else None
                )
                budget.offer(whole, head)

    tree_budget = int(budget_tokens * TREE_SHARE) + budget.left
    tree: list[str] = []
    for path in paths[:TREE_MAX_PATHS]:
        cost = estimate_tokens(path + "\n")
        if cost > tree_budget:
            break
        tree_budget -= cost
        tree.append(path)
    layout = sorted({str(PurePosixPath(t).parent) + "/" for t in tests_only})
    layout += [p for p in tests if PurePosixPath(p).name == "conftest.py"]
    context = CodeContext(
        tree=tree,
        tree_omitted=len(paths) - len(tree),
        test_layout=layout,
        snippets=budget.snippets,
        omitted=budget.omitted,
    )
    # Headings, the test layout and the omitted list cost tokens too: trim the tree,
    # then the last snippets, until the rendered whole fits.
    tokens = estimate_tokens(render_context(context))
    while tokens > budget_tokens and (context.tree or context.snippets):
        if context.tree:
            cut = max(1, (tokens - budget_tokens) * 4 // 20)
            context.tree = context.tree[: max(0, len(context.tree) - cut)]
            context.tree_omitted = len(paths) - len(context.tree)
        else:
            dropped = context.snippets.pop()
            context.omitted.append(f"{dropped.path}:{dropped.start}-{dropped.end} ({dropped.kind})")
        tokens = estimate_tokens(render_context(context))
    context.tokens = tokens
    return context


def _render_snippet(snippet: Snippet) -> str:
    note = f" ({snippet.note})" if snippet.note else ""
    header = f"### {snippet.path} lines {snippet.start}-{snippet.end} [{snippet.kind}]{note}"
    return f"{header}\n```python\n{snippet.text}\n```\n"


def render_context(context: CodeContext) -> str:
    """Markdown for the prompt: tree, test layout, then the code with line numbers."""
    parts = ["## Repository files", "```", *context.tree]
    if context.tree_omitted:
        parts.append(f"… and {context.tree_omitted} more")
    parts.append("```")
    if context.test_layout:
        parts += ["## Test layout", *[f"- {p}" for p in context.test_layout]]
    parts.append("## Code (line numbers are not part of the files)")
    parts += [_render_snippet(s) for s in context.snippets]
    if context.omitted:
        parts.append("Left out for length: " + ", ".join(context.omitted))
    return "\n".join(parts) + "\n"
