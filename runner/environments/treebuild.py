"""Files a project makes when it is built, made in each job tree before its tests run.

A setuptools-scm or hatch-vcs version file (`_version.py`) and a compiled C extension
exist only after a build. The environment image's install happens in a copy that is not
kept, and the candidate's patch may change the C source, so each tree (baseline and
candidate) is built in place by the project's own backend (PEP 660 `build_editable`),
in a network-less sandbox of the environment image, before its tests run.
"""

from __future__ import annotations

import json
import re
import threading
from pathlib import Path
from typing import Any

import structlog

from runner.environments.backendmeta import LEGACY_BACKEND
from runner.environments.imagebuild import EnvImage, version_environment
from runner.environments.requirements import read_manifest, read_toml
from runner.models import Limits, Mount, RunSpec
from runner.sandbox.docker import DockerSandbox, hand_over

log = structlog.get_logger(__name__)

BUILD_TIMEOUT_S = 900
# Run by the image's venv python in the tree: the backend's editable build, its wheel
# thrown away; a build/ folder it made is removed so pytest never collects copies.
_PROGRAM = r"""
import importlib, json, os, shutil, sys, tempfile
backend, paths = sys.argv[1], json.loads(sys.argv[2])
sys.path[:0] = [os.path.abspath(p) for p in paths]
def walk():
    found = set()
    for root, dirs, files in os.walk("."):
        dirs[:] = [d for d in dirs if d not in (".git", "build", "__pycache__")
                   and not d.endswith(".egg-info")]
        found.update(os.path.join(root, f)[2:] for f in files)
    return found
before, had_build = walk(), os.path.exists("build")
module, _, attrs = backend.partition(":")
obj = importlib.import_module(module)
for part in filter(None, attrs.split(".")):
    obj = getattr(obj, part)
hook = getattr(obj, "build_editable", None) or obj.build_wheel
hook(tempfile.mkdtemp(), {})
if not had_build and os.path.isdir("build"):
    shutil.rmtree("build")
print("@@fixrunner-made@@" + json.dumps(sorted(walk() - before)))
"""
MARK = "@@fixrunner-made@@"
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
    """Build each named tree in place; notes saying what was made, or what failed."""
    first = next(iter(trees.values()))
    root = first.resolve()
    system = read_toml(root, root / "pyproject.toml").get("build-system", {})
    backend = str(system.get("build-backend") or LEGACY_BACKEND)
    paths = json.dumps([str(p) for p in system.get("backend-path", [])])
    env = {"HOME": "/tmp", **version_environment(first)}
    notes = []
    for name, tree in trees.items():
        hand_over(tree, sandbox.user)
        spec = RunSpec(
            image=image.tag,
            command=["python", "-c", _PROGRAM, backend, paths],
            mounts=[Mount(source=tree, target="/work", read_only=False)],
            env=env,
            limits=Limits(timeout_s=BUILD_TIMEOUT_S, memory_mb=2048, tmpfs_mb=1024),
            job_id=job_id,
            phase=f"build-{name}",
        )
        result = sandbox.run(spec, cancel)
        notes.append(_note(name, result.ok, result.output, result.exit_code))
        log.info("environments.tree_built", tree=name, ok=result.ok, seconds=result.duration_s)
    return notes


def _note(name: str, ok: bool, output: str, code: int | None) -> str:
    made: list[Any] = []
    if MARK in output:
        try:
            made = json.loads(output.split(MARK, 1)[1].strip().splitlines()[0])
        except (ValueError, IndexError):
            made = []
    if ok:
        listed = ", ".join(str(x) for x in made[:5]) or "no new file"
        more = f" and {len(made) - 5} more" if len(made) > 5 else ""
        return f"project built in the {name} tree (build_editable): {listed}{more}"
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    errors = [line for line in lines if re.match(r"^[\w.]*(Error|Exception)\b:|error:", line)]
    last = (errors[-1:] or lines[-1:] or ["no output"])[0][:300]
    return f"project build in the {name} tree failed (exit {code}): {last}"
