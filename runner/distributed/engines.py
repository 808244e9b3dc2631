"""Private Docker engines on one machine (tests, the README's demo) and image copies.

Each engine is its own ``dockerd`` with its own socket, data root, exec root (and so
its own containerd), no bridge and no iptables rules. Stopped by its PID; its
folder removed. The base image reaches a new engine by ``docker save`` → ``load``
from an engine that has it: same image id and labels, no second debootstrap.

    python -m runner.distributed.engines up --count 2 --dir /tmp/fxr-engines
    python -m runner.distributed.engines down --dir /tmp/fxr-engines
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import docker
import docker.errors
import requests.exceptions
import structlog

from runner.config import Settings, load_settings
from runner.environments.images import BaseImage, find_base_image
from runner.errors import EngineUnavailableError

log = structlog.get_logger(__name__)

STATE_FILE = "engines.json"
_CHUNK = 1 << 20


@dataclass(frozen=True)
class LocalEngine:
    """One private dockerd: its name, folder and process id."""

    name: str
    root: Path
    pid: int

    @property
    def socket(self) -> Path:
        return self.root / "docker.sock"

    @property
    def url(self) -> str:
        return f"unix://{self.socket}"

    def client(self, timeout_s: float = 300) -> docker.DockerClient:
        """A client of this engine (long timeout: image loads are big)."""
        return docker.DockerClient(base_url=self.url, version="auto", timeout=int(timeout_s))


def start_engine(root: Path, name: str, timeout_s: float = 60) -> LocalEngine:
    """Start a private dockerd under ``root`` and wait until it answers."""
    root.mkdir(parents=True, exist_ok=True)
    if len(str(root / "exec" / "containerd" / "containerd.sock")) > 100:
        raise ValueError(f"{root} is too long for the engine's unix sockets; use a short path")
    argv = [
        "dockerd",
        "--host",
        f"unix://{root / 'docker.sock'}",
        "--data-root",
        str(root / "data"),
        "--exec-root",
        str(root / "exec"),
        "--pidfile",
        str(root / "dockerd.pid"),
        "--bridge=none",
        "--iptables=false",
        "--ip-masq=false",
        "--log-level=warn",
    ]
    with (root / "dockerd.log").open("ab") as out:
        proc = subprocess.Popen(
            argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True,
        )  # fmt: skip
    engine = LocalEngine(name=name, root=root, pid=proc.pid)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = (root / "dockerd.log").read_text(errors="replace")[-2000:]
            raise EngineUnavailableError(f"dockerd {name} exited ({proc.returncode}): {tail}")
        with contextlib.suppress(
            docker.errors.DockerException, requests.exceptions.RequestException
        ):
            engine.client(timeout_s=5).ping()
            return engine
        time.sleep(0.25)
    stop_engine(engine)
    raise EngineUnavailableError(f"dockerd {name} did not answer within {timeout_s} s")


def stop_engine(engine: LocalEngine, timeout_s: float = 30, remove: bool = True) -> None:
    """Stop the engine by its PID (TERM, then KILL), unmount what it left, remove its folder."""
    containerd = _pid_in(engine.root / "exec" / "containerd" / "containerd.pid")
    with contextlib.suppress(ProcessLookupError):
        os.kill(engine.pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    while _alive(engine.pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    if _alive(engine.pid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(engine.pid, signal.SIGKILL)
        time.sleep(0.5)
    # dockerd stops the containerd it started; a killed dockerd leaves it running.
    if containerd is not None and _alive(containerd):
        with contextlib.suppress(ProcessLookupError):
            os.kill(containerd, signal.SIGTERM)
    for mount in _mounts_under(engine.root):
        subprocess.run(["umount", "-l", mount], check=False, capture_output=True)
    if remove:
        shutil.rmtree(engine.root, ignore_errors=True)


def _pid_in(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A child we started and that exited is a zombie until reaped: reap it here.
    with contextlib.suppress(ChildProcessError):
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done == pid:
            return False
    return True


def _mounts_under(root: Path) -> list[str]:
    prefix = str(root.resolve()) + "/"
    try:
        lines = Path("/proc/mounts").read_text().splitlines()
    except OSError:
        return []
    points = [line.split()[1] for line in lines if len(line.split()) > 1]
    # Deepest first, so nested mounts go before their parents.
    return sorted((p for p in points if p.startswith(prefix)), key=len, reverse=True)


def copy_image(source: docker.DockerClient, target: docker.DockerClient, ref: str) -> str:
    """Stream an image from one engine into another (save → load); its id on the target."""

    def chunks() -> Iterator[bytes]:
        yield from source.images.get(ref).save(chunk_size=_CHUNK, named=True)

    started = time.monotonic()
    target.api.load_image(chunks())  # type: ignore[no-untyped-call]  # untyped in the stubs
    image = target.images.get(ref)
    log.info("engines.image_copied", ref=ref, seconds=round(time.monotonic() - started, 1))
    return str(image.id)


def seed_base_image(
    source_host: str, target: docker.DockerClient, settings: Settings
) -> BaseImage | None:
    """Copy the base image from ``source_host`` when ``target`` lacks it; the image."""
    present = find_base_image(target, settings.images)
    if present is not None:
        return present
    source = docker.DockerClient(base_url=source_host, version="auto", timeout=300)
    found = find_base_image(source, settings.images)
    if found is None:
        raise EngineUnavailableError(
            f"{source_host} has no base image {found}: run `runner images build` there first"
        )
    copy_image(source, target, found.tag)
    return find_base_image(target, settings.images)


# ---------------------------------------------------------------------------- CLI


def _up(args: argparse.Namespace) -> int:
    settings = load_settings(args.config)
    root = Path(args.dir)
    if (root / STATE_FILE).exists():
        print(f"{root / STATE_FILE} exists: run `down --dir {root}` first", file=sys.stderr)
        return 2
    engines = []
    try:
        for i in range(1, args.count + 1):
            engines.append(start_engine(root / f"h{i}", f"h{i}"))
            (root / STATE_FILE).write_text(
                json.dumps([{"name": e.name, "root": str(e.root), "pid": e.pid} for e in engines])
            )
        source = docker.from_env(version="auto", timeout=300)
        base = find_base_image(source, settings.images)
        if base is None:
            print("the default engine has no base image: run `make setup` first", file=sys.stderr)
            return 2
        for engine in engines:
            copy_image(source, engine.client(), base.tag)
    except (EngineUnavailableError, docker.errors.DockerException) as exc:
        print(f"error: {exc}", file=sys.stderr)
        for engine in engines:
            stop_engine(engine)
        (root / STATE_FILE).unlink(missing_ok=True)
        return 2
    for engine in engines:
        print(f"{engine.name} DOCKER_HOST={engine.url} pid={engine.pid}")
    return 0


def _down(args: argparse.Namespace) -> int:
    root = Path(args.dir)
    state = root / STATE_FILE
    if not state.exists():
        print(f"no engines recorded in {state}", file=sys.stderr)
        return 0
    for entry in json.loads(state.read_text()):
        stop_engine(LocalEngine(entry["name"], Path(entry["root"]), int(entry["pid"])))
        print(f"{entry['name']} stopped (pid {entry['pid']})")
    state.unlink(missing_ok=True)
    with contextlib.suppress(OSError):
        root.rmdir()
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m runner.distributed.engines up|down``."""
    parser = argparse.ArgumentParser(prog="python -m runner.distributed.engines")
    parser.add_argument("--config", type=Path, default=None, help="runner.toml to read")
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="start N private engines, each with the base image")
    up.add_argument("--count", type=int, default=2)
    up.add_argument("--dir", required=True, help="a short folder (unix socket paths)")
    up.set_defaults(func=_up)
    down = sub.add_parser("down", help="stop the engines recorded in --dir and remove it")
    down.add_argument("--dir", required=True)
    down.set_defaults(func=_down)
    args = parser.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
