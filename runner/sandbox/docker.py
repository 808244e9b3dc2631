"""One hardened container run: limits, timeout, capped output, guaranteed removal.

``DockerSandbox.run(spec) -> RunResult`` is the whole interface. What the command does
(exit code, timeout, OOM, a flood of output) is data in the result; only the sandbox's
own failures (engine down, image missing, container cannot start) raise SandboxError.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Protocol

import docker
import docker.errors
import requests.exceptions
import structlog
from docker.models.containers import Container
from docker.types import LogConfig, Mount, Ulimit

from runner.config import EngineSettings
from runner.errors import SandboxError
from runner.models import Mount as RunSpecMount
from runner.models import RunResult, RunSpec
from runner.sandbox.engine import removal_under_way
from runner.sandbox.labels import LABEL_DEADLINE, LABEL_JOB, LABEL_OWNER, LABEL_PHASE
from runner.sandbox.output import CappedOutput
from runner.sandbox.pids import PidsEvents

log = structlog.get_logger(__name__)

# Grace after the wall-clock timeout before the container ends itself, in case the
# runner that should have killed it died first (kill -9, power loss).
SELF_DESTRUCT_GRACE_S = 30
# A container's deadline label, after which `runner gc` may remove it.
GC_GRACE_S = SELF_DESTRUCT_GRACE_S + 30

BASE_ENV = {
    "PATH": "/opt/venv/bin:/usr/local/bin:/usr/bin:/bin",
    "HOME": "/tmp",
    "LANG": "C.UTF-8",
    "LC_ALL": "C.UTF-8",
    "TZ": "UTC",
    "PYTHONHASHSEED": "0",
    "PYTHONDONTWRITEBYTECODE": "1",
    "PYTHONUNBUFFERED": "1",
    "PIP_NO_INDEX": "1",
    "PIP_DISABLE_PIP_VERSION_CHECK": "1",
}


# How often the watchdog looks at the clock, the cancel flag and the pids counter.
WATCH_INTERVAL_S = 0.2

# Seconds from the container's start the run may take, asked while it runs: a deadline
# learned from another run can arrive (and shorten this one) after it started.
Deadline = Callable[[], float]


class Sandbox(Protocol):
    """Runs one command in isolation. A backend, not a seam for fakes."""

    def run(
        self,
        spec: RunSpec,
        cancel: threading.Event | None = None,
        deadline: Deadline | None = None,
    ) -> RunResult:
        """Run ``spec`` to completion (or its timeout) and return what happened."""
        ...


class _Watch:
    """What the watchdog of one run watches, and why it fired."""

    def __init__(
        self, timeout_s: float, deadline: Deadline | None, cancel: threading.Event | None
    ) -> None:
        self.timeout_s = timeout_s
        self.deadline = deadline
        self.cancel = cancel
        self.stop = threading.Event()
        self.started = time.monotonic()
        self.pids: PidsEvents | None = None
        self.fired: str | None = None

    def limit(self) -> float:
        """The seconds this run may take now: the spec's timeout or a shorter deadline."""
        if self.deadline is None:
            return self.timeout_s
        return min(self.timeout_s, self.deadline())

    def due(self) -> str | None:
        """Why the container must be killed now ("deadline", "pids", "cancel"), or None."""
        if time.monotonic() - self.started >= self.limit():
            return "deadline"
        if self.pids is not None and self.pids.climbed():
            return "pids"
        if self.cancel is not None and self.cancel.is_set():
            return "cancel"
        return None


def sandbox_user(settings: EngineSettings) -> str:
    """The uid:gid sandboxes run as: the configured one as root, else the caller's own."""
    if os.geteuid() == 0:
        return settings.sandbox_user
    return f"{os.getuid()}:{os.getgid()}"


def hand_over(path: Path, user: str) -> None:
    """Give a per-job tree to the sandbox user, never following a symlink."""
    if os.geteuid() != 0:
        return
    uid, gid = (int(part) for part in user.split(":"))
    os.chown(path, uid, gid, follow_symlinks=False)
    for root, dirs, files in os.walk(path):
        for name in dirs + files:
            os.chown(os.path.join(root, name), uid, gid, follow_symlinks=False)


class DockerSandbox:
    """The Docker engine behind the Sandbox interface."""

    def __init__(self, client: docker.DockerClient, settings: EngineSettings) -> None:
        self._client = client
        self._settings = settings
        self._user = sandbox_user(settings)

    @property
    def user(self) -> str:
        """The uid:gid its containers run as (per-job trees are handed over to it)."""
        return self._user

    def run(
        self,
        spec: RunSpec,
        cancel: threading.Event | None = None,
        deadline: Deadline | None = None,
    ) -> RunResult:
        """Create, start, stream, wait, remove. Removal happens on every path out.

        ``deadline`` (seconds from start, asked again while it runs) may shorten the
        spec's timeout once it is known, never lengthen it. Once ``cancel`` is set no
        container starts (SandboxError) and a running one is killed (its result returned).
        """
        output = CappedOutput(spec.limits.output_bytes)
        refuse_if_cancelled(cancel, spec.phase)
        with self._container(spec) as container:
            stream = self._attach(container)
            watch = _Watch(spec.limits.timeout_s, deadline, cancel)
            watchdog = threading.Thread(target=self._watch, args=(container, watch), daemon=True)
            # cancelled while the engine created it: it is removed without ever starting
            refuse_if_cancelled(cancel, spec.phase)
            try:
                container.start()
            except (docker.errors.APIError, requests.exceptions.RequestException) as exc:
                raise SandboxError(f"container for {spec.phase} could not start: {exc}") from exc
            watch.started = time.monotonic()
            watch.pids = PidsEvents(container.id or "")
            watchdog.start()
            try:
                for chunk in stream:
                    output.feed(chunk)
                exit_code = self._exit_code(container)
            finally:
                watch.stop.set()
                watchdog.join()
            duration = time.monotonic() - watch.started
            oom = self._oom_killed(container)
        timed_out = watch.fired == "deadline"
        pids_limited = watch.fired == "pids"
        result = RunResult(
            exit_code=None if timed_out or pids_limited else exit_code,
            timed_out=timed_out,
            oom_killed=oom,
            pids_limited=pids_limited,
            timeout_s=round(watch.limit(), 3),
            duration_s=round(duration, 3),
            output=output.text(),
            output_bytes=output.total,
            output_truncated=output.truncated,
            container_id=container.short_id,
        )
        log.info(
            "sandbox.run",
            phase=spec.phase,
            exit_code=result.exit_code,
            timed_out=timed_out,
            oom_killed=oom,
            pids_limited=pids_limited,
            timeout_s=result.timeout_s,
            duration_s=result.duration_s,
            output_bytes=output.total,
        )
        return result

    # ----------------------------------------------------------------- internals

    def _create_kwargs(self, spec: RunSpec, name: str) -> dict[str, Any]:
        limits = spec.limits
        deadline = time.time() + limits.timeout_s + GC_GRACE_S
        # The command ends itself a little after the runner should have killed it,
        # so a container cannot outlive a dead runner for long. `timeout` signals its
        # whole process group; when it exits, the init exits and the kernel ends the rest.
        self_destruct = int(limits.timeout_s) + SELF_DESTRUCT_GRACE_S
        command = ["timeout", "-s", "KILL", str(self_destruct), *_seeded(spec)]
        memory = f"{limits.memory_mb}m"
        kwargs: dict[str, object] = {
            "image": spec.image,
            "command": command,
            "name": name,
            "user": self._user,
            "working_dir": spec.workdir,
            "environment": {**BASE_ENV, **spec.env},
            "labels": {
                LABEL_OWNER: self._settings.instance,
                LABEL_JOB: spec.job_id,
                LABEL_PHASE: spec.phase,
                LABEL_DEADLINE: f"{deadline:.0f}",
            },
            "network_mode": "none",
            "cap_drop": ["ALL"],
            "security_opt": ["no-new-privileges:true"],
            "read_only": True,
            "init": True,
            "tmpfs": {
                "/tmp": (
                    f"rw,nosuid,nodev,exec,size={limits.tmpfs_mb}m,"
                    f"nr_inodes={limits.tmpfs_inodes},mode=1777"
                ),
                **self._quota_tmpfs(spec),
            },
            "mem_limit": memory,
            "memswap_limit": memory,
            "nano_cpus": int(limits.cpus * 1e9),
            "pids_limit": limits.pids,
            "ulimits": [
                Ulimit(name="core", soft=0, hard=0),
                Ulimit(name="nofile", soft=4096, hard=4096),
                # One file may not exceed the tmpfs size: a disk bomb in a writable bind
                # mount without a quota (the results folder) is capped per file.
                Ulimit(name="fsize", soft=limits.tmpfs_mb * 2**20, hard=limits.tmpfs_mb * 2**20),
            ],
            "mounts": [
                Mount(
                    target=_seed_dir(n) if _quota(m) else m.target,
                    source=str(m.source),
                    type="bind",
                    read_only=m.read_only or _quota(m),
                )
                for n, m in enumerate(spec.mounts)
            ],
            # Output is streamed with its cap applied while reading; the engine keeps none.
            "log_config": LogConfig(type="none"),
            "stdin_open": False,
            "tty": False,
            "detach": True,
        }
        if self._settings.runtime:
            kwargs["runtime"] = self._settings.runtime
        return kwargs

    def _quota_tmpfs(self, spec: RunSpec) -> dict[str, str]:
        """A size- and inode-capped tmpfs, owned by the sandbox user, per quota mount."""
        uid, _, gid = self._user.partition(":")
        options = (
            f"rw,nosuid,nodev,exec,size={spec.limits.workspace_mb}m,"
            f"nr_inodes={spec.limits.workspace_inodes},mode=0755,uid={uid},gid={gid or uid}"
        )
        return {m.target: options for m in spec.mounts if _quota(m)}

    @contextlib.contextmanager
    def _container(self, spec: RunSpec) -> Iterator[Container]:
        name = f"fixrunner-{_slug(spec.job_id)}-{_slug(spec.phase)}-{secrets.token_hex(4)}"
        try:
            container = self._client.containers.create(**self._create_kwargs(spec, name))
        except docker.errors.ImageNotFound as exc:
            raise SandboxError(
                f"image {spec.image} is not present: run `runner images build`"
            ) from exc
        except (docker.errors.APIError, requests.exceptions.RequestException) as exc:
            # The engine may have created it before the call failed: remove by name.
            self._remove(name)
            raise SandboxError(f"container for {spec.phase} could not be created: {exc}") from exc
        try:
            yield container
        finally:
            self._remove(container.id or name)

    def _attach(self, container: Container) -> Iterator[bytes]:
        # Attach before start so no early output is lost; logs=False because the
        # engine stores none (log driver "none").
        try:
            stream: Iterator[bytes] = self._client.api.attach(
                container.id or "", stdout=True, stderr=True, stream=True, logs=False
            )
            return stream
        except (docker.errors.APIError, requests.exceptions.RequestException) as exc:
            raise SandboxError(f"could not attach to the container: {exc}") from exc

    def _watch(self, container: Container, watch: _Watch) -> None:
        # Kill the container itself: wait(timeout=) on the SDK only times out the HTTP
        # call and leaves the container running.
        while not watch.stop.is_set():
            reason = watch.due()
            if reason is not None:
                watch.fired = reason if reason != "cancel" else None
                with contextlib.suppress(
                    docker.errors.APIError, requests.exceptions.RequestException
                ):
                    container.kill()
                return
            watch.stop.wait(WATCH_INTERVAL_S)

    def _exit_code(self, container: Container) -> int | None:
        try:
            status = container.wait(timeout=SELF_DESTRUCT_GRACE_S)
        except (docker.errors.APIError, requests.exceptions.RequestException) as exc:
            raise SandboxError(f"lost the container while waiting for it: {exc}") from exc
        code = status.get("StatusCode")
        return int(code) if code is not None else None

    def _oom_killed(self, container: Container) -> bool:
        try:
            container.reload()
        except (docker.errors.APIError, requests.exceptions.RequestException):
            return False
        return bool(container.attrs.get("State", {}).get("OOMKilled"))

    def _remove(self, ref: str) -> None:
        try:
            self._client.api.remove_container(ref, force=True, v=True)
        except docker.errors.NotFound:
            return
        except (docker.errors.APIError, requests.exceptions.RequestException) as exc:
            if isinstance(exc, docker.errors.APIError) and removal_under_way(exc):
                return  # another caller (an interrupted job's sweep) is removing it
            # Left for `runner gc`, which finds it by label once its deadline passes.
            log.warning("sandbox.remove_failed", container=ref, error=str(exc))


def refuse_if_cancelled(cancel: threading.Event | None, phase: str) -> None:
    """Raise SandboxError when the job was cancelled: no container starts after that."""
    if cancel is not None and cancel.is_set():
        raise SandboxError(f"{phase} not started: the job was cancelled")


# Copies each quota mount's read-only source onto its tmpfs, then runs the command.
# A tree that does not fit its quota ends the run with QUOTA_EXIT and says so.
QUOTA_EXIT = 125
_SEED_ROOT = "/.fixrunner-seed"
_SEED_SCRIPT = f"""
while [ "$1" != -- ]; do
  cp -a "$1/." "$2/" || {{
    echo "fixrunner: the tree does not fit the workspace quota (limits.workspace_mb," \
         "workspace_inodes)" >&2
    exit {QUOTA_EXIT}
  }}
  shift 2
done
shift
exec "$@"
"""


def _quota(mount: RunSpecMount) -> bool:
    return mount.quota and not mount.read_only


def _seed_dir(n: int) -> str:
    return f"{_SEED_ROOT}/{n}"


def _seeded(spec: RunSpec) -> list[str]:
    """The command, preceded by the copy of every quota mount when there is one."""
    pairs = [
        part for n, m in enumerate(spec.mounts) if _quota(m) for part in (_seed_dir(n), m.target)
    ]
    if not pairs:
        return list(spec.command)
    return ["sh", "-c", _SEED_SCRIPT, "fixrunner-seed", *pairs, "--", *spec.command]


def _slug(text: str) -> str:
    cleaned = "".join(c if c.isalnum() or c in "-_." else "-" for c in text)
    return cleaned.strip("-.")[:40] or "x"
