"""The host's content-addressed wheel cache: a resolved pin set downloaded as wheels once.

Downloaded with `pip download --only-binary=:all: --no-deps` on the host (pip reads
the host's index configuration itself): wheels only, so nothing a package ships runs
here. The image build installs from the cache offline.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
import time
from pathlib import Path

import structlog
from pydantic import Field

from runner.common.files import file_lock
from runner.common.hostenv import host_env
from runner.errors import ResolutionError
from runner.models import Model

log = structlog.get_logger(__name__)

COMPLETE = ".complete"
INSTALL_LIST = "install.txt"
PIP_TIMEOUT_S = 1800
LOG_TAIL = 4000
# Bumped when the cache's layout changes.
WHEELS_FORMAT = "2"


class WheelSet(Model):
    """A directory of wheels for one resolved pin set."""

    path: Path = Field(description="Host directory holding the wheels and install.txt.")
    key: str = Field(description="sha256 of the sorted pins and the interpreter tag.")
    reused: bool = Field(description="True when the cache already had it.")
    seconds: float = Field(default=0.0, description="Time spent building, 0 when reused.")


def wheel_key(pins: list[str], python: str, manylinux: str | None = None) -> str:
    """Content address of a pin set: the same pins for the same Python share a directory."""
    target = [f"python={python}"] + ([f"manylinux={manylinux}"] if manylinux else [])
    text = "\n".join([f"format={WHEELS_FORMAT}", *target, *sorted(pins)])
    return hashlib.sha256(text.encode()).hexdigest()


def ensure_wheels(
    pins: list[str], state_dir: Path, python: str, manylinux: str | None = None
) -> WheelSet:
    """Wheels for every pin under ``state_dir/wheels/<key>``, downloaded only when missing.

    ``manylinux`` (a glibc level such as '2_31') picks wheels for another Python and glibc
    than the host's; None lets a host interpreter of ``python`` pick for itself.
    """
    key = wheel_key(pins, python, manylinux)
    folder = state_dir / "wheels" / key
    started = time.monotonic()
    with file_lock(state_dir / "wheels" / f"{key}.lock"):
        if (folder / COMPLETE).is_file():
            return WheelSet(path=folder, key=key, reused=True)
        if folder.exists():
            shutil.rmtree(folder)  # a build that died half-way
        folder.mkdir(parents=True)
        (folder / "pins.txt").write_text("\n".join(pins) + "\n", encoding="utf-8")
        _pip_download(folder, python, manylinux)
        (folder / INSTALL_LIST).write_text(
            "\n".join(_install_line(pin) for pin in pins) + "\n", encoding="utf-8"
        )
        (folder / COMPLETE).write_text(f"{len(pins)} pins\n", encoding="utf-8")
    seconds = round(time.monotonic() - started, 2)
    log.info("wheels.downloaded", key=key[:16], pins=len(pins), seconds=seconds)
    return WheelSet(path=folder, key=key, reused=False, seconds=seconds)


def host_python(python: str) -> str:
    """A host interpreter of the image's Python version, to pick matching wheels."""
    if f"{sys.version_info.major}.{sys.version_info.minor}" == python:
        return sys.executable
    found = shutil.which(f"python{python}")
    if found is None:
        raise ResolutionError(
            f"no Python {python} on the host to pick wheels for the image "
            f"(the runner runs {sys.version_info.major}.{sys.version_info.minor})"
        )
    return found


def target_args(python: str, manylinux: str) -> list[str]:
    """pip's flags for wheels of CPython ``python`` on x86_64 with glibc ``manylinux``."""
    # pip does not widen a manylinux_2_X platform to the older levels it runs: list them.
    major, minor = (int(part) for part in manylinux.split("_"))
    platforms = [f"manylinux_{major}_{level}_x86_64" for level in range(minor, 16, -1)]
    platforms.append("manylinux2014_x86_64")  # pip adds manylinux2010 and manylinux1
    return [
        "--python-version",
        python,
        "--implementation",
        "cp",
        *(arg for platform in platforms for arg in ("--platform", platform)),
    ]


def _pip_download(folder: Path, python: str, manylinux: str | None) -> None:
    target = target_args(python, manylinux) if manylinux else []
    argv = [
        sys.executable if manylinux else host_python(python),
        "-m",
        "pip",
        "download",
        "--no-deps",
        # Never a source distribution: pip would run its setup.py here for metadata.
        "--only-binary=:all:",
        "--disable-pip-version-check",
        "--progress-bar",
        "off",
        *target,
        "--dest",
        str(folder),
        "-r",
        str(folder / "pins.txt"),
    ]
    try:
        proc = subprocess.run(
            argv,
            capture_output=True,
            text=True,
            timeout=PIP_TIMEOUT_S,
            check=False,
            env=host_env(),
        )
    except subprocess.TimeoutExpired as exc:
        raise ResolutionError(f"downloading wheels timed out after {PIP_TIMEOUT_S} s") from exc
    if proc.returncode != 0:
        output = (proc.stdout + proc.stderr).strip()
        errors = [line for line in output.splitlines() if line.startswith("ERROR")]
        headline = errors[0] if errors else "pip download failed"
        raise ResolutionError(
            f"downloading wheels on the host failed: {headline} (wheels only: the runner "
            "never builds a source distribution on the host)",
            log=output[-LOG_TAIL:],
        )


def _install_line(pin: str) -> str:
    # Resolution refuses URL pins; should one reach here, only its name (never its URL)
    # finds a wheel in the offline directory.
    return pin.split("@", 1)[0].strip() if " @ " in pin else pin
