"""Environment images: a base image plus one repository's resolved dependencies.

The commit's Python is chosen first (interpreters.py), then resolved for and built on
the base that carries it. The tag is a hash of what goes in (base image, resolved pins,
tools, install mode), so an unchanged repository reuses its image and repositories with
the same set share one. The build runs offline in a locked-down container; wheels come
from the host's cache.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import threading
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import docker
import docker.errors
import requests.exceptions
import structlog

from runner.common.files import file_lock, read_inside
from runner.common.hostenv import host_env
from runner.config import Settings
from runner.environments.backendmeta import with_backend_metadata
from runner.environments.builder import ensure_builder_image
from runner.environments.dependencies import InstallPlan, ResolvedEnvironment, detect, resolve
from runner.environments.imagebuild import PROJECT_FILES, EnvBuild, EnvImage, InstallMode, git_argv
from runner.environments.images import (
    DEFAULT_PYTHON,
    BaseImage,
    available_pythons,
    fixed_python,
    wheel_platform,
)
from runner.environments.interpreters import (
    EVIDENCE_FILES,
    WORKFLOWS_DIR,
    PythonChoice,
    broken_pins,
    choose_python,
)
from runner.environments.requirements import MANIFEST_MAX_BYTES, trim
from runner.environments.treebuild import C_EXTENSION, build_reasons
from runner.environments.wheels import ensure_wheels
from runner.errors import ImageBuildError, ResolutionError
from runner.sandbox.labels import (
    LABEL_INSTALL,
    LABEL_PREFIX,
    LABEL_PYTHON,
)

log = structlog.get_logger(__name__)

# Bumped whenever the build recipe below changes what an image contains.
ENV_FORMAT = "3"
# What the chooser reads of a file: version declarations sit near the top.
EVIDENCE_MAX_BYTES = 256 * 1024
EVIDENCE_MAX_WORKFLOWS = 50


def describe_environment(
    checkout: Path,
    settings: Settings,
    repo_key: str = "",
    commit_date: datetime | None = None,
    python: str | None = None,
    metadata: Callable[[InstallPlan, str], InstallPlan] | None = None,
) -> ResolvedEnvironment:
    """Detect and resolve a checkout's environment without building anything.

    Without ``python`` the commit's Python is chosen from the tree's evidence (or
    runner.toml's), and the resolved environment says which and why. ``metadata`` reads
    a computed setup.py's requirements from its build backend, in a base of that Python.
    """
    plan = detect(checkout, settings, repo_key)
    if python is not None:
        if metadata is not None and plan.metadata_extras is not None:
            plan = metadata(plan, python)
        return resolve(plan, settings, python, commit_date, wheel_platform(settings.images, python))
    choice = choose_python(
        available_pythons(settings.images),
        read_evidence(checkout),
        [*plan.requirements, *plan.constraints],
        plan.label,
        commit_date.date() if commit_date else None,
        fixed=_fixed_python(settings, repo_key),
        preferred=DEFAULT_PYTHON,
    )
    if metadata is not None and plan.metadata_extras is not None:
        plan = metadata(plan, choice.python)
    return _resolve_chosen(plan, settings, choice, commit_date)


def prepare_environment(
    client: docker.DockerClient,
    bases: Callable[[str], BaseImage],
    checkout: Path,
    settings: Settings,
    repo_key: str,
    commit_date: datetime | None,
    *,
    job_id: str | None = None,
    cancel: threading.Event | None = None,
) -> tuple[BaseImage, EnvImage]:
    """Choose the commit's Python, then its base image (built on first need) and env image."""
    started = time.monotonic()

    def metadata(plan: InstallPlan, python: str) -> InstallPlan:
        return with_backend_metadata(
            client,
            bases(python),
            checkout,
            settings,
            plan,
            commit_date,
            job_id or "env-build",
            cancel,
        )

    env = describe_environment(checkout, settings, repo_key, commit_date, metadata=metadata)
    resolved_s = round(time.monotonic() - started, 2)
    base = bases(env.python)
    image = ensure_env_image(
        client,
        base,
        checkout,
        settings,
        repo_key,
        commit_date,
        job_id=job_id,
        cancel=cancel,
        environment=env,
    )
    image.seconds["resolve"] = resolved_s
    if base.built:
        image.seconds["base"] = base.seconds
    return base, image


def read_evidence(checkout: Path) -> dict[str, str]:
    """The texts the Python chooser weighs (capped; never through a link out of the tree)."""
    root = checkout.resolve()
    paths = [root / name for name in EVIDENCE_FILES]
    workflows = root / WORKFLOWS_DIR
    if workflows.is_dir() and not workflows.is_symlink():
        found = sorted(p for p in workflows.iterdir() if p.suffix in (".yml", ".yaml"))
        paths += found[:EVIDENCE_MAX_WORKFLOWS]
    texts = {}
    for path in paths:
        data = read_inside(root, path, EVIDENCE_MAX_BYTES) if path.is_file() else None
        if data is not None:
            texts[path.relative_to(root).as_posix()] = data.decode("utf-8", errors="replace")
    return texts


def _fixed_python(settings: Settings, repo_key: str) -> tuple[str, str] | None:
    for key in (repo_key, repo_key.rstrip("/"), repo_key.removesuffix(".git")):
        override = settings.repos.get(key) if key else None
        if override is not None and override.python:
            return override.python, f'[repos."{key}"] python'
    fixed = fixed_python(settings.images)
    if fixed is None:
        return None
    return fixed, "[images] python" if settings.images.python else "[images] debian_suite"


def _resolve_chosen(
    plan: InstallPlan, settings: Settings, choice: PythonChoice, commit_date: datetime | None
) -> ResolvedEnvironment:
    # The chosen Python first, then the older ones the evidence allows: a resolution
    # without wheels for the newest, or one that lands on a release that cannot start on
    # it (as of an old commit), moves down one Python.
    reason = choice.reason
    candidates = [choice.python, *choice.fallbacks]
    for index, python in enumerate(candidates):
        last = index == len(candidates) - 1
        try:
            env = resolve(
                plan, settings, python, commit_date, wheel_platform(settings.images, python)
            )
        except ResolutionError as exc:
            if last:
                raise
            first = trim(str(exc).strip().splitlines()[0] if str(exc).strip() else "", 200)
            reason += f"; {python} did not resolve ({first})"
            log.info("environments.python_fallback", python=python, error=first)
            continue
        broken = broken_pins(env.pins, python, f"the resolution ({env.source})")
        if broken and not last:
            reason += f"; {broken[0]}"
            log.info("environments.python_fallback", python=python, error=broken[0])
            continue
        return env.model_copy(update={"python_reason": reason})
    raise AssertionError("unreachable: the last candidate returns or raises")


def commit_date(checkout: Path, rev: str = "HEAD") -> datetime:
    """The committer date of ``rev`` in the checkout: the as-of date of its environment."""
    try:
        proc = subprocess.run(
            [*git_argv(checkout), "log", "-1", "--format=%cI", rev, "--"],
            capture_output=True,
            text=True,
            timeout=30,
            env=host_env(),
            check=True,
        )
        return datetime.fromisoformat(proc.stdout.strip())
    except (subprocess.SubprocessError, OSError, ValueError) as exc:
        raise ImageBuildError(f"cannot read the commit date of {rev} in {checkout}: {exc}") from exc


def env_hash(base: BaseImage, env: ResolvedEnvironment, checkout: Path) -> str:
    """Content hash of an environment image: what goes in, never where it came from."""
    mode: InstallMode = "editable" if env.install_project else "pth"
    # An editable install records the project's own metadata (name, entry points),
    # so the files that declare it are part of the image's content.
    project = (
        {name: _file_digest(checkout, checkout / name) for name in PROJECT_FILES}
        if mode == "editable"
        else {}
    )
    payload = [
        ENV_FORMAT,
        base.id,
        sorted(env.pins),
        env.pytest,
        env.flake8,
        mode,
        env.pth_paths,
        project,
    ]
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def env_tag(settings: Settings, digest: str) -> str:
    """The image tag for an environment hash."""
    return f"{settings.images.repository}-env:{digest[:16]}"


def ensure_env_image(
    client: docker.DockerClient,
    base: BaseImage,
    checkout: Path,
    settings: Settings,
    repo_key: str,
    commit_date: datetime | None,
    *,
    job_id: str | None = None,
    cancel: threading.Event | None = None,
    environment: ResolvedEnvironment | None = None,
) -> EnvImage:
    """Return the environment image for a checkout, building it only when its tag is missing.

    ``job_id`` labels the build container, so a restart after a crash finds its owner.
    Setting ``cancel`` stops a build under way: its container is removed, ImageBuildError.
    ``environment`` (resolved for ``base.python``) skips the resolution.
    """
    started = time.monotonic()

    def metadata(plan: InstallPlan, python: str) -> InstallPlan:
        return with_backend_metadata(
            client, base, checkout, settings, plan, commit_date, job_id or "env-build", cancel
        )

    env = environment or describe_environment(
        checkout, settings, repo_key, commit_date, python=base.python, metadata=metadata
    )
    if env.python != base.python:
        raise ImageBuildError(
            f"the environment was resolved for Python {env.python}, the base image "
            f"{base.tag} carries {base.python}"
        )
    if C_EXTENSION in build_reasons(checkout):
        # The per-tree build compiles it: start from the variant with gcc and headers.
        base, note = ensure_builder_image(client, settings, base)
        env = env.model_copy(update={"notes": [*env.notes, note]})
    resolved_s = round(time.monotonic() - started, 2)
    digest = env_hash(base, env, checkout)
    tag = env_tag(settings, digest)
    with file_lock(settings.paths.root / "locks" / f"env-{digest[:16]}.lock"):
        existing = _existing(client, tag)
        if existing is not None:
            labels = existing.labels or {}
            log.info("environments.reused", tag=tag, source=env.source)
            return EnvImage(
                id=existing.id,
                tag=tag,
                environment=env,
                install_mode=labels.get(LABEL_INSTALL, "pth"),
                python=labels.get(LABEL_PYTHON, base.python),
                reused=True,
                seconds={"resolve": resolved_s},
                notes=_label_notes(labels),
            )
        wheels_started = time.monotonic()
        wheels = ensure_wheels(
            env.pins, settings.paths.root, base.python, wheel_platform(settings.images, base.python)
        )
        seconds = {"resolve": resolved_s, "wheels": round(time.monotonic() - wheels_started, 2)}
        build = EnvBuild(client, base, checkout, settings, env, wheels.path, tag, digest, job_id)
        build.cancel = cancel
        image = build.run()
        image.seconds = {**seconds, **image.seconds}
        return image


def _existing(client: docker.DockerClient, tag: str) -> Any:
    try:
        return client.images.get(tag)
    except docker.errors.ImageNotFound:
        return None
    except (docker.errors.APIError, requests.exceptions.RequestException) as exc:
        raise ImageBuildError(f"cannot look up image {tag}: {exc}") from exc


def _label_notes(labels: dict[str, str]) -> list[str]:
    text = labels.get(f"{LABEL_PREFIX}.notes", "")
    return [part for part in text.split(" | ") if part]


def _file_digest(root: Path, path: Path) -> str:
    # Capped and never through a link out of the checkout: a hash needs no host file.
    data = read_inside(root, path, MANIFEST_MAX_BYTES)
    return hashlib.sha256(data).hexdigest() if data is not None else ""
