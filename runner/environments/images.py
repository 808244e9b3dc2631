"""Sandbox base images: two recipes, one base per Python, a content-hash tag, an idempotent build.

The recipe's files and settings hash into the tag, so `ensure_base_image` builds only
when the recipe changed and a second call builds nothing. The offline recipe has one
base per Debian suite (bullseye 3.9, bookworm 3.11, trixie 3.13); `make setup` builds
the default one and the others are built the first time a job's Python needs them.
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
from runner.errors import ConfigError, ImageBuildError
from runner.models import Model
from runner.sandbox.labels import LABEL_KIND, LABEL_RECIPE, LABEL_RECIPE_HASH, LABEL_VERSION

log = structlog.get_logger(__name__)

IMAGES_DIR = Path(__file__).resolve().parents[2] / "images"
BASE_ENV_CHANGES = ["ENV PATH=/usr/local/bin:/usr/bin:/bin", "ENV LANG=C.UTF-8"]
# Python of each offline base: the suite's python3. Its glibc sets the wheels' platform.
SUITE_PYTHON = {"bullseye": "3.9", "bookworm": "3.11", "trixie": "3.13"}
PYTHON_SUITE = {python: suite for suite, python in SUITE_PYTHON.items()}
# The manylinux level of each suite's glibc (trixie has 2.41; uv names levels up to 2_40).
SUITE_MANYLINUX = {"bullseye": "2_31", "bookworm": "2_36", "trixie": "2_40"}
# What the registry recipe (FROM python:X-slim) offers.
REGISTRY_PYTHONS = ("3.9", "3.10", "3.11", "3.12", "3.13")
# The base `make setup` builds, and the Python of a job whose tree decides nothing.
DEFAULT_PYTHON = "3.11"


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


def fixed_python(settings: ImageSettings) -> str | None:
    """The one Python runner.toml sets for every job, or None when each commit chooses."""
    if settings.python:
        return settings.python
    if settings.recipe == "offline" and settings.debian_suite:
        python = SUITE_PYTHON.get(settings.debian_suite)
        if python is None:
            raise ConfigError(
                f"[images] debian_suite = {settings.debian_suite!r}: its python3 is unknown "
                f"to the runner (known: {', '.join(SUITE_PYTHON)}); set [images] python too"
            )
        return python
    return None


def available_pythons(settings: ImageSettings) -> tuple[str, ...]:
    """The Pythons a base image can carry under these settings, oldest first."""
    fixed = fixed_python(settings)
    if fixed is not None:
        return (fixed,)
    if settings.recipe == "registry":
        return REGISTRY_PYTHONS
    return tuple(sorted(PYTHON_SUITE, key=lambda v: tuple(int(p) for p in v.split("."))))


def for_python(settings: ImageSettings, python: str | None = None) -> ImageSettings:
    """The settings of the base that carries ``python`` (None: the fixed or default one)."""
    fixed = fixed_python(settings)
    if python and fixed and python != fixed:
        raise ConfigError(
            f"Python {python} was asked for, but runner.toml fixes Python {fixed} for every "
            "job ([images] python or debian_suite): unset those to choose per commit"
        )
    python = python or fixed or DEFAULT_PYTHON
    if settings.recipe == "registry":
        return settings.model_copy(update={"python": python})
    suite = settings.debian_suite or PYTHON_SUITE.get(python)
    if suite is None:
        raise ConfigError(
            f"no offline base has Python {python} (bases: "
            f"{', '.join(f'{p} ({s})' for s, p in SUITE_PYTHON.items())}); choose one of "
            'those, or recipe = "registry"'
        )
    return settings.model_copy(update={"python": python, "debian_suite": suite})


def base_python(settings: ImageSettings) -> str:
    """Python version the base image for these settings will carry."""
    return str(for_python(settings).python)


def wheel_platform(settings: ImageSettings, python: str) -> str:
    """The manylinux glibc level (e.g. '2_31') of the base that carries ``python``."""
    # The registry's python:X-slim images are bookworm-based.
    suite = "bookworm"
    if settings.recipe == "offline":
        suite = settings.debian_suite or PYTHON_SUITE.get(python, suite)
    return SUITE_MANYLINUX.get(suite, SUITE_MANYLINUX["bookworm"])


def recipe_hash(settings: ImageSettings) -> str:
    """Hash of the recipe's files plus the settings that change what it builds."""
    settings = for_python(settings)
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
    """The base image for these settings (the fixed or default Python) if it exists."""
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


def ensure_base_image(
    client: docker.DockerClient, settings: Settings, python: str | None = None
) -> BaseImage:
    """Return the base image for ``python`` (None: the default), building it only when missing."""
    images = for_python(settings.images, python)
    existing = find_base_image(client, images)
    if existing is not None:
        return existing
    started = time.monotonic()
    if images.recipe == "offline":
        image_id = _build_offline(client, images)
    else:
        image_id = _build_registry(client, images)
    seconds = round(time.monotonic() - started, 1)
    log.info("images.base_built", tag=base_tag(images), seconds=seconds)
    return BaseImage(
        id=image_id,
        tag=base_tag(images),
        recipe=images.recipe,
        python=base_python(images),
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
                ["bash", str(script), mirror, str(tarball), str(settings.debian_suite)],
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
            buildargs={"PYTHON": str(settings.python)},
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
