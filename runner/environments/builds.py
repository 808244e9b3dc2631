"""Environment images: a base image plus one repository's resolved dependencies.

The tag is a hash of what goes in (base image, resolved pins, tools, install mode), so
an unchanged repository reuses its image and repositories with the same set share one.
The build runs offline in a locked-down container; wheels come from the host's cache.
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
from runner.environments.images import BaseImage, base_python
from runner.environments.requirements import MANIFEST_MAX_BYTES
from runner.environments.treebuild import C_EXTENSION, build_reasons
from runner.environments.wheels import ensure_wheels
from runner.errors import ImageBuildError
from runner.sandbox.labels import (
    LABEL_INSTALL,
    LABEL_PREFIX,
    LABEL_PYTHON,
)

log = structlog.get_logger(__name__)

# Bumped whenever the build recipe below changes what an image contains.
ENV_FORMAT = "1"


def describe_environment(
    checkout: Path,
    settings: Settings,
    repo_key: str = "",
    commit_date: datetime | None = None,
    python: str | None = None,
    metadata: Callable[[InstallPlan], InstallPlan] | None = None,
) -> ResolvedEnvironment:
    """Detect and resolve a checkout's environment without building anything.

    ``metadata`` reads a computed setup.py's requirements from its build backend.
    """
    plan = detect(checkout, settings, repo_key)
    if metadata is not None and plan.metadata_extras is not None:
        plan = metadata(plan)
    return resolve(plan, settings, python or base_python(settings.images), commit_date)


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
) -> EnvImage:
    """Return the environment image for a checkout, building it only when its tag is missing.

    ``job_id`` labels the build container, so a restart after a crash finds its owner.
    Setting ``cancel`` stops a build under way: its container is removed, ImageBuildError.
    """
    started = time.monotonic()

    def metadata(plan: InstallPlan) -> InstallPlan:
        return with_backend_metadata(
            client, base, checkout, settings, plan, commit_date, job_id or "env-build"
        )

    env = describe_environment(
        checkout, settings, repo_key, commit_date, python=base.python, metadata=metadata
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
        wheels = ensure_wheels(env.pins, settings.paths.root, base.python)
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
