"""A project's requirements asked of its build backend (PEP 517), in a network-less sandbox.

For a setup.py that computes install_requires or extras_require: parsing cannot know
them, and running setup.py on the host would execute the repository's code there. The
backend's build requirements are resolved and downloaded as wheels on the host, then
`prepare_metadata_for_build_wheel` runs in a throw-away container of the base image
with no network; its METADATA (data) comes back and is read here.
"""

from __future__ import annotations

import email.parser
import hashlib
import json
import shutil
import tempfile
import threading
from datetime import datetime
from pathlib import Path

import docker
import structlog
from packaging.markers import (
    InvalidMarker,
    Marker,
    UndefinedComparison,
    UndefinedEnvironmentName,
)
from packaging.utils import canonicalize_name

from runner.common.files import read_inside
from runner.config import Settings
from runner.environments.images import BaseImage, wheel_platform
from runner.environments.plans import InstallPlan
from runner.environments.requirements import (
    MANIFEST_MAX_BYTES,
    dedupe,
    marker_env,
    parse_requirement,
    read_toml,
)
from runner.environments.resolution import compile_requirements
from runner.environments.wheels import ensure_wheels
from runner.errors import ResolutionError
from runner.models import Limits, Mount, RunSpec
from runner.sandbox.docker import DockerSandbox, hand_over

log = structlog.get_logger(__name__)

METADATA_FORMAT = "1"
MARK = "@@fixrunner-metadata@@"
LEGACY_BACKEND = "setuptools.build_meta:__legacy__"
# Run inside the container by the base image's python3: a venv with the build
# requirements from the wheels, a writable copy of the tree, then the backend's hook.
_PROGRAM = r"""
import os, shutil, subprocess, sys
src, wheels, backend, paths = sys.argv[1:5]
subprocess.run([sys.executable, "-m", "venv", "/tmp/venv"], check=True)
subprocess.run(["/tmp/venv/bin/pip", "install", "-q", "--no-index", "--find-links", wheels,
                "--disable-pip-version-check", "--no-cache-dir", "-r", wheels + "/install.txt"],
               check=True)
shutil.copytree(src, "/tmp/tree", symlinks=True)
hook = '''
import importlib, json, os, sys, zipfile
backend, paths = sys.argv[1], json.loads(sys.argv[2])
sys.path[:0] = [os.path.abspath(p) for p in paths]
module, _, attrs = backend.partition(":")
obj = importlib.import_module(module)
for part in filter(None, attrs.split(".")):
    obj = getattr(obj, part)
out = "/tmp/metadata"
os.makedirs(out)
prepare = getattr(obj, "prepare_metadata_for_build_wheel", None)
if prepare is not None:
    text = open(os.path.join(out, prepare(out, {}), "METADATA"), encoding="utf-8").read()
else:
    wheel = zipfile.ZipFile(os.path.join(out, obj.build_wheel(out, {})))
    name = next(n for n in wheel.namelist() if n.endswith(".dist-info/METADATA"))
    text = wheel.read(name).decode("utf-8")
print("@@fixrunner-metadata@@")
print(text)
'''
code = subprocess.run(["/tmp/venv/bin/python", "-c", hook, backend, paths], cwd="/tmp/tree")
sys.exit(code.returncode)
"""


def with_backend_metadata(
    client: docker.DockerClient,
    base: BaseImage,
    checkout: Path,
    settings: Settings,
    plan: InstallPlan,
    commit_date: datetime | None,
    job_id: str = "env-build",
    cancel: threading.Event | None = None,
) -> InstallPlan:
    """The plan plus the requirements the backend's metadata names for the wanted extras.

    A backend that fails leaves the plan as it was, with a note saying why.
    """
    if plan.metadata_extras is None:
        return plan
    wanted = tuple(plan.metadata_extras)
    try:
        text = _metadata(client, base, checkout, settings, plan, commit_date, job_id, cancel)
    except ResolutionError as exc:
        note = f"build backend metadata not read: {exc}"
        return plan.model_copy(update={"metadata_extras": None, "notes": [*plan.notes, note]})
    lines = requirements_from_metadata(text, wanted, base.python)
    label = "build backend metadata (PEP 517)"
    named = email.parser.Parser().parsestr(text).get("Name", "") or plan.project_name
    requirements = dedupe([*plan.requirements, *lines])
    origins = {**{line: label for line in lines}, **plan.origins}
    return plan.model_copy(
        update={
            "requirements": requirements,
            "origins": {line: origins[line] for line in requirements if line in origins},
            "metadata_extras": None,
            "project_name": named,
        }
    )


def requirements_from_metadata(text: str, extras: tuple[str, ...], python: str) -> list[str]:
    """Requires-Dist of a METADATA text for the image and the wanted extras, markers evaluated.

    The project's own name with extras (attrs[tests-no-zope]) adds those extras instead.
    """
    message = email.parser.Parser().parsestr(text)
    name = canonicalize_name(message.get("Name", ""))
    wanted = [canonicalize_name(e) for e in ("", *extras)]
    lines = message.get_all("Requires-Dist") or []
    out: list[str] = []
    index = 0
    while index < len(wanted):
        extra = wanted[index]
        index += 1
        for line in lines:
            req = parse_requirement(line)
            if req is None or not _holds(req.marker, extra, python):
                continue
            if req.marker is not None and extra == "" and "extra" in str(req.marker):
                continue
            if name and canonicalize_name(req.name) == name:
                wanted += [e for e in map(canonicalize_name, req.extras) if e not in wanted]
                continue
            req.marker = None
            out.append(str(req))
    return dedupe(out)


def _holds(marker: Marker | None, extra: str, python: str) -> bool:
    if marker is None:
        return extra == ""
    env = {**marker_env(python), "extra": extra}
    try:
        return marker.evaluate(env)
    except (InvalidMarker, UndefinedComparison, UndefinedEnvironmentName):
        return False


def _metadata(
    client: docker.DockerClient,
    base: BaseImage,
    checkout: Path,
    settings: Settings,
    plan: InstallPlan,
    commit_date: datetime | None,
    job_id: str,
    cancel: threading.Event | None,
) -> str:
    root = checkout.resolve()
    pyproject = read_toml(root, root / "pyproject.toml")
    system = pyproject.get("build-system", {})
    backend = str(system.get("build-backend") or LEGACY_BACKEND)
    backend_path = [str(p) for p in system.get("backend-path", [])]
    as_of = None
    if settings.tools.resolution != "latest" and commit_date is not None:
        as_of = commit_date.date().isoformat()
    # The base's Python and glibc: no host interpreter of an older Python picks for us.
    manylinux = wheel_platform(settings.images, base.python)
    pins = compile_requirements(plan.build_requires, [], base.python, as_of, manylinux)
    cache = _cache_path(settings, root, base, pins, backend)
    if cache.is_file():
        return cache.read_text(encoding="utf-8")
    wheels = ensure_wheels(pins, settings.paths.root, base.python, manylinux)
    sandbox = DockerSandbox(client, settings.engine)
    with tempfile.TemporaryDirectory(prefix="fixrunner-metadata-") as tmp:
        # Copies the sandbox user can read: the job's tree and the wheel cache may not be.
        shutil.copytree(root, Path(tmp) / "src", symlinks=True, ignore=_ignore_git)
        shutil.copytree(wheels.path, Path(tmp) / "wheels")
        hand_over(Path(tmp), sandbox.user)
        Path(tmp).chmod(0o755)
        spec = RunSpec(
            image=base.id,
            command=[
                "python3",
                "-c",
                _PROGRAM,
                "/mnt/meta/src",
                "/mnt/meta/wheels",
                backend,
                json.dumps(backend_path),
            ],
            workdir="/tmp",
            mounts=[Mount(source=Path(tmp), target="/mnt/meta")],
            env={"HOME": "/tmp"},
            limits=Limits(timeout_s=600, memory_mb=1024, tmpfs_mb=1024),
            job_id=job_id,
            phase="metadata",
        )
        result = sandbox.run(spec, cancel)
    if not result.ok or MARK not in result.output:
        tail = [line for line in result.output.strip().splitlines() if line.strip()][-1:]
        raise ResolutionError(
            f"prepare_metadata_for_build_wheel failed (exit {result.exit_code}): "
            f"{(tail or ['no output'])[0][:300]}",
            log=result.output[-4000:],
        )
    text = result.output.split(MARK, 1)[1].lstrip("\n")
    cache.parent.mkdir(parents=True, exist_ok=True)
    cache.write_text(text, encoding="utf-8")
    log.info("environments.backend_metadata", backend=backend, seconds=result.duration_s)
    return text


def _ignore_git(folder: str, names: list[str]) -> list[str]:
    return [name for name in names if name == ".git"]


def _cache_path(
    settings: Settings, root: Path, base: BaseImage, pins: list[str], backend: str
) -> Path:
    # The metadata depends on what builds it and on the files setup.py may read: every
    # file at the root (requirements.txt, a version file) and under requirements/.
    digest = hashlib.sha256()
    for part in (METADATA_FORMAT, base.id, backend, *pins):
        digest.update(part.encode() + b"\0")
    files = [*root.iterdir(), *(root / "requirements").glob("*")]
    for path in sorted(p for p in files if p.is_file() and not p.is_symlink()):
        data = read_inside(root, path, MANIFEST_MAX_BYTES)
        digest.update(path.name.encode() + b"\0" + (data or b"") + b"\0")
    return settings.paths.root / "metadata" / f"{digest.hexdigest()[:32]}.txt"
