"""Files a project makes when it is built, made in each job tree before its tests run.

A setuptools-scm or hatch-vcs version file (`_version.py`) and a compiled C extension
exist only after a build. The environment image's install happens in a copy that is not
kept, and the candidate's patch may change the C source, so each tree (baseline and
candidate) is built by the project's own backend (PEP 660 `build_editable`) in a
network-less sandbox of the environment image, in a scratch copy; the files the build
added come back into the tree before its tests run.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
import threading
from pathlib import Path

import structlog

from runner.environments.backendmeta import LEGACY_BACKEND
from runner.environments.imagebuild import EnvImage, version_environment
from runner.environments.requirements import read_manifest, read_toml
from runner.models import Limits, Mount, RunSpec
from runner.sandbox.docker import DockerSandbox, hand_over

log = structlog.get_logger(__name__)

BUILD_TIMEOUT_S = 900
# Run by the image's venv python in a scratch copy of the tree: the backend's editable
# build, its wheel thrown away.
_PROGRAM = r"""
import importlib, json, os, sys, tempfile
backend, paths = sys.argv[1], json.loads(sys.argv[2])
sys.path[:0] = [os.path.abspath(p) for p in paths]
module, _, attrs = backend.partition(":")
obj = importlib.import_module(module)
for part in filter(None, attrs.split(".")):
    obj = getattr(obj, part)
hook = getattr(obj, "build_editable", None) or obj.build_wheel
hook(tempfile.mkdtemp(), {})
"""
_SKIPPED_DIRS = (".git", "build", "__pycache__")
# Files the test run reads at start-up or collection: a build may not add them.
_HARNESS_FILES = (
    "conftest.py",
    "sitecustomize.py",
    "usercustomize.py",
    "pytest.ini",
    ".pytest.ini",
    "tox.ini",
    "setup.cfg",
    "pyproject.toml",
    ".flake8",
)
VERSION_FILE = "a version file written at build time (setuptools-scm or hatch-vcs)"
C_EXTENSION = "a C extension"


def build_reasons(checkout: Path) -> list[str]:
    """Why a tree must be built before its tests run: a version file or a C extension."""
    root = checkout.resolve()
    pyproject = read_toml(root, root / "pyproject.toml")
    tool = pyproject.get("tool", {})
    setup_py = read_manifest(root, root / "setup.py") or ""
    setup_cfg = read_manifest(root, root / "setup.cfg") or ""
    reasons = []
    scm = tool.get("setuptools_scm", {})
    vcs_hook = tool.get("hatch", {}).get("build", {}).get("hooks", {}).get("vcs", {})
    if (
        any(key in scm for key in ("write_to", "version_file"))
        or "version-file" in vcs_hook
        or re.search(r"\bwrite_to\b|\bversion_file\b", setup_py + setup_cfg)
    ):
        reasons.append(VERSION_FILE)
    if tool.get("setuptools", {}).get("ext-modules") or re.search(
        r"\bext_modules\b|\bExtension\(", setup_py
    ):
        reasons.append(C_EXTENSION)
    return reasons


def build_trees(
    sandbox: DockerSandbox,
    image: EnvImage,
    trees: dict[str, Path],
    job_id: str,
    cancel: threading.Event | None = None,
) -> list[str]:
    """Build each named tree; notes saying what was made, or what failed.

    The backend runs in a scratch copy, and only files it added come back: a build never
    changes a file of the tree, nor adds one the harness reads at start-up (a conftest.py,
    a sitecustomize.py, a .pth) behind the weakening checks' back.
    """
    first = next(iter(trees.values()))
    root = first.resolve()
    system = read_toml(root, root / "pyproject.toml").get("build-system", {})
    backend = str(system.get("build-backend") or LEGACY_BACKEND)
    paths = json.dumps([str(p) for p in system.get("backend-path", [])])
    env = {"HOME": "/tmp", **version_environment(first)}
    notes = []
    for name, tree in trees.items():
        with tempfile.TemporaryDirectory(prefix="fixrunner-treebuild-") as tmp:
            scratch = Path(tmp) / "tree"
            shutil.copytree(tree, scratch, symlinks=True, ignore=_ignore_git)
            hand_over(Path(tmp), sandbox.user)
            Path(tmp).chmod(0o755)
            spec = RunSpec(
                image=image.tag,
                command=["python", "-c", _PROGRAM, backend, paths],
                mounts=[Mount(source=scratch, target="/work", read_only=False)],
                env=env,
                limits=Limits(timeout_s=BUILD_TIMEOUT_S, memory_mb=2048, tmpfs_mb=1024),
                job_id=job_id,
                phase=f"build-{name}",
            )
            result = sandbox.run(spec, cancel)
            kept, refused = bring_back(scratch, tree) if result.ok else ([], [])
        notes.append(_note(name, result.ok, kept, result.output, result.exit_code))
        if refused:
            notes.append(f"the build in the {name} tree wrote {', '.join(refused[:5])}: not kept")
        log.info("environments.tree_built", tree=name, ok=result.ok, seconds=result.duration_s)
    return notes


def bring_back(scratch: Path, tree: Path) -> tuple[list[str], list[str]]:
    """Copy the regular files the build added from ``scratch`` into ``tree``.

    Returns (kept, refused): harness files, links and anything under .git, build/ or an
    .egg-info folder stay behind; files that existed in the tree are never overwritten.
    """
    kept: list[str] = []
    refused: list[str] = []
    for folder, dirs, files in os.walk(scratch):
        dirs[:] = [d for d in dirs if d not in _SKIPPED_DIRS and not d.endswith(".egg-info")]
        for file in files:
            source = Path(folder) / file
            rel = source.relative_to(scratch)
            target = tree / rel
            if os.path.lexists(target) or source.is_symlink() or not source.is_file():
                continue
            if file in _HARNESS_FILES or file.endswith(".pth"):
                refused.append(rel.as_posix())
                continue
            parent = target.parent
            if not _plain_dir_inside(tree, parent):
                refused.append(rel.as_posix())
                continue
            parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, target, follow_symlinks=False)
            kept.append(rel.as_posix())
    return sorted(kept), sorted(refused)


def _plain_dir_inside(tree: Path, folder: Path) -> bool:
    # Every existing part of the path is a real folder inside the tree, never a link.
    current = tree
    for part in folder.relative_to(tree).parts:
        current = current / part
        if current.is_symlink() or (current.exists() and not current.is_dir()):
            return False
    return folder.resolve().is_relative_to(tree.resolve())


def _ignore_git(folder: str, names: list[str]) -> list[str]:
    return [name for name in names if name == ".git"]


def _note(name: str, ok: bool, made: list[str], output: str, code: int | None) -> str:
    if ok:
        listed = ", ".join(str(x) for x in made[:5]) or "no new file"
        more = f" and {len(made) - 5} more" if len(made) > 5 else ""
        return f"project built in the {name} tree (build_editable): {listed}{more}"
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    errors = [line for line in lines if re.match(r"^[\w.]*(Error|Exception)\b:|error:", line)]
    last = (errors[-1:] or lines[-1:] or ["no output"])[0][:300]
    return f"project build in the {name} tree failed (exit {code}): {last}"
