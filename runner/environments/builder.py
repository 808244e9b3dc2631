"""The builder variant of the base image: the base plus a C compiler and Python's headers.

Environment images of projects with C extensions start from it, so the per-tree build
can compile them offline; every other project keeps the smaller base. Built from
Debian's packages like the offline base (its own recipe in images/builder), tagged by
the recipe's hash, built once.
"""

from __future__ import annotations

import hashlib
import subprocess
import tempfile
import time
from pathlib import Path

import docker
import docker.errors
import requests.exceptions
import structlog

from runner import __version__
from runner.common.files import file_lock
from runner.common.hostenv import host_env
from runner.config import Settings
from runner.environments.images import (
    BASE_ENV_CHANGES,
    DEFAULT_PYTHON,
    IMAGES_DIR,
    PYTHON_SUITE,
    SUITE_PYTHON,
    BaseImage,
    host_debian_mirror,
)
from runner.errors import ImageBuildError
from runner.sandbox.labels import LABEL_KIND, LABEL_RECIPE, LABEL_RECIPE_HASH, LABEL_VERSION

log = structlog.get_logger(__name__)

BUILDER_DIR = IMAGES_DIR / "builder"
BUILD_TIMEOUT_S = 1800


def builder_suite(settings: Settings, base: BaseImage) -> str:
    """The Debian suite whose Python is the base's: the builder must match its base."""
    suites = [suite for suite, python in SUITE_PYTHON.items() if python == base.python]
    return suites[0] if suites else settings.images.debian_suite or PYTHON_SUITE[DEFAULT_PYTHON]


def builder_tag(settings: Settings, base: BaseImage) -> str:
    """The builder's tag: its recipe's hash, the Debian suite and the base's Python."""
    digest = hashlib.sha256((BUILDER_DIR / "build-rootfs.sh").read_bytes())
    digest.update(f"suite={builder_suite(settings, base)}".encode())
    return f"{settings.images.repository}-builder:py{base.python}-{digest.hexdigest()[:16]}"


def ensure_builder_image(
    client: docker.DockerClient, settings: Settings, base: BaseImage
) -> tuple[BaseImage, str]:
    """The builder image for ``base`` (built when missing) and a note for the environment.

    Only the offline recipe has a builder; with the registry recipe the base is returned
    and the note says a C extension cannot be compiled.
    """
    if settings.images.recipe != "offline":
        return base, "no builder image for the registry recipe: C extensions are not compiled"
    tag = builder_tag(settings, base)
    repository, name = tag.split(":")
    with file_lock(settings.paths.root / "locks" / f"builder-{name}.lock"):
        try:
            image = client.images.get(tag)
            return _as_base(image.id or tag, tag, base, built=False), _note(tag)
        except docker.errors.ImageNotFound:
            pass
        except (docker.errors.APIError, requests.exceptions.RequestException) as exc:
            raise ImageBuildError(f"cannot look up image {tag}: {exc}") from exc
        started = time.monotonic()
        image_id = _build(client, settings, builder_suite(settings, base), repository, name)
    seconds = round(time.monotonic() - started, 1)
    log.info("images.builder_built", tag=tag, seconds=seconds)
    return _as_base(image_id, tag, base, built=True, seconds=seconds), _note(tag)


def _note(tag: str) -> str:
    return f"built from the builder image {tag} (gcc and Python headers) for a C extension"


def _as_base(
    image_id: str, tag: str, base: BaseImage, built: bool, seconds: float = 0.0
) -> BaseImage:
    return BaseImage(
        id=image_id, tag=tag, recipe="offline", python=base.python, built=built, seconds=seconds
    )


def _build(
    client: docker.DockerClient, settings: Settings, suite: str, repository: str, name: str
) -> str:
    mirror = settings.images.debian_mirror or host_debian_mirror()
    script = BUILDER_DIR / "build-rootfs.sh"
    with tempfile.TemporaryDirectory(prefix="fixrunner-builder-", dir="/var/tmp") as tmp:
        tarball = Path(tmp) / "rootfs.tar"
        try:
            proc = subprocess.run(
                ["bash", str(script), mirror, str(tarball), suite],
                capture_output=True,
                text=True,
                timeout=BUILD_TIMEOUT_S,
                check=False,
                env=host_env(),
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise ImageBuildError(f"debootstrap could not run: {exc}") from exc
        if proc.returncode != 0:
            raise ImageBuildError(
                f"building the builder image failed (debootstrap, exit {proc.returncode}); "
                "is debootstrap installed (`make setup`) and the Debian mirror reachable?",
                log=(proc.stdout + proc.stderr)[-4000:],
            )
        labels = {
            LABEL_KIND: "builder",
            LABEL_RECIPE: "offline-builder",
            LABEL_RECIPE_HASH: name.rsplit("-", 1)[-1],
            LABEL_VERSION: __version__,
        }
        changes = [*BASE_ENV_CHANGES, *(f'LABEL {k}="{v}"' for k, v in labels.items())]
        try:
            client.api.import_image_from_file(
                str(tarball), repository=repository, tag=name, changes=changes
            )
            return client.images.get(f"{repository}:{name}").id or f"{repository}:{name}"
        except (docker.errors.APIError, requests.exceptions.RequestException) as exc:
            raise ImageBuildError(f"docker import of the builder image failed: {exc}") from exc
