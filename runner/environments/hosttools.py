"""The host's packaging tools: the bundled uv binary and the host's pip index configuration."""

from __future__ import annotations

import functools
import re
import subprocess
import sys
from pathlib import Path

from runner.common.hostenv import host_env
from runner.environments.requirements import trim
from runner.errors import ResolutionError

UV_TIMEOUT_S = 300


def host_index_args() -> list[str]:
    """The host's pip configuration (files and PIP_* variables) as uv index arguments."""
    config = pip_config()
    argv: list[str] = []
    if config.get("no-index", "").lower() in ("1", "true", "yes", "on"):
        argv.append("--no-index")
    if config.get("index-url"):
        argv += ["--index-url", config["index-url"]]
    for url in config.get("extra-index-url", "").split():
        argv += ["--extra-index-url", url]
    for link in config.get("find-links", "").split():
        argv += ["--find-links", link]
    # pip considers every index and takes the best version; uv's default stops at the
    # first index that has the name, which hides older releases that only PyPI has.
    argv += ["--index-strategy", "unsafe-best-match"]
    return argv


@functools.lru_cache(maxsize=1)
def pip_config() -> dict[str, str]:
    """The host's effective pip settings (files and PIP_* variables), by key."""
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "pip", "config", "list"],
            capture_output=True,
            env=host_env(),
            text=True,
            timeout=60,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return {}
    ranked: dict[str, tuple[int, str]] = {}
    rank = {"global": 0, "install": 1, "download": 1, "wheel": 1, ":env:": 2}
    for line in proc.stdout.splitlines():
        match = re.match(r"^(:env:|[\w-]+)\.([\w-]+)='(.*)'$", line.strip())
        if not match:
            continue
        section, key, value = match.groups()
        level = rank.get(section, 0)
        if key not in ranked or ranked[key][0] <= level:
            ranked[key] = (level, value)
    return {key: value for key, (_, value) in ranked.items()}


def uv_binary() -> str:
    """Path of the uv binary shipped with the runner's own environment."""
    try:
        import uv

        return uv.find_uv_bin()
    except (ImportError, FileNotFoundError):
        return str(Path(sys.executable).with_name("uv"))


def run_uv(argv: list[str], cwd: Path, what: str) -> str:
    """Run uv with the host's allow-listed environment; its stdout, or a ResolutionError."""
    # uv's own variables (UV_EXCLUDE_NEWER, UV_INDEX_URL…) would change the answer
    # behind the runner's back: the allowlist keeps only its cache location.
    env = host_env({"UV_NO_PROGRESS": "1"})
    cert = env.get("PIP_CERT") or pip_config().get("cert")
    if cert and "SSL_CERT_FILE" not in env:
        env["SSL_CERT_FILE"] = cert
    try:
        proc = subprocess.run(
            argv,
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=UV_TIMEOUT_S,
            env=env,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise ResolutionError(f"{what} timed out after {UV_TIMEOUT_S} s") from exc
    except OSError as exc:
        raise ResolutionError(f"{what}: uv could not run: {exc}") from exc
    if proc.returncode != 0:
        message = trim(proc.stderr.strip() or proc.stdout.strip())
        raise ResolutionError(f"{what} failed: {message}", log=message)
    return proc.stdout
