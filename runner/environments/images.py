"""Sandbox base images: two recipes, a content-hash tag, and an idempotent build.

The recipe's files and settings hash into the tag, so `ensure_base_image` builds only
when the recipe changed and a second call builds nothing.
"""

from __future__ import annotations

import hashlib
import re
import subprocess
import tempfile
import time
from pathlib import Path

import docker
import docker.errors
import requests.exceptions
import structlog
from pydantic import Field

from runner import __version__
from runner.common.hostenv import host_env
from runner.config import ImageSettings, Settings
from runner.errors import ImageBuildError
from runner.models import Model
from runner.sandbox.labels import LABEL_KIND, LABEL_RECIPE, LABEL_RECIPE_HASH, LABEL_VERSION

log = structlog.get_logger(__name__)

IMAGES_DIR = Path(__file__).resolve().parents[2] / "images"
BASE_ENV_CHANGES = ["ENV PATH=/usr/local/bin:/usr/bin:/bin", "ENV LANG=C.UTF-8"]
# Python of the offline recipe: Debian bookworm's python3.
SUITE_PYTHON = {"bookworm": "3.11", "trixie": "3.13"}


class BaseImage(Model):
    """A sandbox base image that exists in the engine."""

    id: str = Field(description="Image id (sha256:…).")
    tag: str = Field(description="repository:tag, content-addressed by the recipe.")
    recipe: str = Field(description="offline or registry.")
    python: str = Field(description="Python major.minor inside the image.")
    built: bool = Field(description="True when this call built it, False when it was reused.")
    seconds: float = Field(default=0.0, description="Build time, 0 when reused.")


def recipe_dir(settings: ImageSettings) -> Path:
    """Where the selected recipe's files live."""
    return IMAGES_DIR / settings.recipe


def base_python(settings: ImageSettings) -> str:
    """Python version the base image will carry."""
    if settings.recipe == "registry":
        return settings.python
    return SUITE_PYTHON.get(settings.debian_suite, "3")


def recipe_hash(settings: ImageSettings) -> str:
    """Hash of the recipe's files plus the settings that change what it builds."""
    digest = hashlib.sha256()
    folder = recipe_dir(settings)
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        digest.update(path.relative_to(folder).as_posix().encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    if settings.recipe == "offline":
        digest.update(f"suite={settings.debian_suite}".encode())
    else:
        digest.update(f"python={settings.python}".encode())
    return digest.hexdigest()[:16]


def base_tag(settings: ImageSettings) -> str:
    """The content-addressed tag of the base image for these settings."""
    return f"{settings.repository}-base:py{base_python(settings)}-{recipe_hash(settings)}"


def find_base_image(client: docker.DockerClient, settings: ImageSettings) -> BaseImage | None:
    """The base image for these settings if it already exists."""
    tag = base_tag(settings)
    try:
        image = client.images.get(tag)
    except docker.errors.ImageNotFound:
        return None
    return BaseImage(
        id=image.id or tag,
        tag=tag,
        recipe=settings.recipe,
        python=base_python(settings),
        built=False,
    )


def ensure_base_image(client: docker.DockerClient, settings: Settings) -> BaseImage:
    """Return the base image, building it only when its recipe's tag is missing."""
    existing = find_base_image(client, settings.images)
    if existing is not None:
        return existing
    started = time.monotonic()
    if settings.images.recipe == "offline":
        image_id = _build_offline(client, settings.images)
    else:
        image_id = _build_registry(client, settings.images)
    seconds = round(time.monotonic() - started, 1)
    log.info("images.base_built", tag=base_tag(settings.images), seconds=seconds)
    return BaseImage(
        id=image_id,
        tag=base_tag(settings.images),
        recipe=settings.images.recipe,
        python=base_python(settings.images),
        built=True,
        seconds=seconds,
    )


def _labels(settings: ImageSettings) -> dict[str, str]:
    return {
        LABEL_KIND: "base",
        LABEL_RECIPE: settings.recipe,
        LABEL_RECIPE_HASH: recipe_hash(settings),
        LABEL_VERSION: __version__,
    }


def host_debian_mirror(sources: list[Path] | None = None) -> str:
    """The Debian mirror the host's apt already uses, read from its sources files."""
    candidates = sources or [
        Path("/etc/apt/sources.list"),
        *sorted(Path("/etc/apt/sources.list.d").glob("*.sources")),
        *sorted(Path("/etc/apt/sources.list.d").glob("*.list")),
    ]
    for path in candidates:
        if not path.is_file():
            continue
        text = path.read_text(encoding="utf-8", errors="replace")
        if path.suffix == ".sources":
            for stanza in text.split("\n\n"):
                uris = re.search(r"^URIs:\s*(\S+)", stanza, re.M)
                suites = re.search(r"^Suites:\s*(.+)$", stanza, re.M)
                if uris and suites and "security" not in suites.group(1):
                    return uris.group(1)
        else:
            for line in text.splitlines():
                match = re.match(r"^deb\s+(?:\[[^\]]*\]\s+)?(\S+)\s+(\S+)", line.strip())
                if match and "security" not in match.group(2):
                    return match.group(1)
    raise ImageBuildError(
        "no Debian mirror found in the host's apt sources: set [images] debian_mirror "
        "in runner.toml"
    )


def _build_offline(client: docker.DockerClient, settings: ImageSettings) -> str:
    mirror = settings.debian_mirror or host_debian_mirror()
    script = recipe_dir(settings) / "build-rootfs.sh"
    with tempfile.TemporaryDirectory(prefix="fixrunner-base-", dir="/var/tmp") as tmp:
        tarball = Path(tmp) / "rootfs.tar"
        try:
            proc = subprocess.run(
                ["bash", str(script), mirror, str(tarball), settings.debian_suite],
                capture_output=True,
                text=True,
                timeout=1800,
                check=False,
                env=host_env(),
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise ImageBuildError(f"debootstrap could not run: {exc}") from exc
        if proc.returncode != 0:
            raise ImageBuildError(
                f"building the offline base image failed (debootstrap, exit {proc.returncode}); "
                "is debootstrap installed (`make setup`) and the Debian mirror reachable?",
                log=(proc.stdout + proc.stderr)[-4000:],
            )
        repository, tag = base_tag(settings).split(":")
        changes = [*BASE_ENV_CHANGES, *(f'LABEL {k}="{v}"' for k, v in _labels(settings).items())]
        try:
            client.api.import_image_from_file(
                str(tarball), repository=repository, tag=tag, changes=changes
            )
            return client.images.get(f"{repository}:{tag}").id or f"{repository}:{tag}"
        except (docker.errors.APIError, requests.exceptions.RequestException) as exc:
            raise ImageBuildError(f"docker import of the base image failed: {exc}") from exc


def _build_registry(client: docker.DockerClient, settings: ImageSettings) -> str:
    try:
        image, _ = client.images.build(
            path=str(recipe_dir(settings)),
            tag=base_tag(settings),
            buildargs={"PYTHON": settings.python},
            labels=_labels(settings),
            rm=True,
            forcerm=True,
        )
    except docker.errors.BuildError as exc:
        tail = "".join(str(chunk.get("stream", chunk)) for chunk in exc.build_log)[-4000:]
        raise ImageBuildError(
            f"building the registry base image failed: {exc.msg}; it needs a reachable "
            'registry (use recipe = "offline" otherwise)',
            log=tail,
        ) from exc
    except (docker.errors.APIError, requests.exceptions.RequestException) as exc:
        raise ImageBuildError(f"building the registry base image failed: {exc}") from exc
    return str(image.id)
