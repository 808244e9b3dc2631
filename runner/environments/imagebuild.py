"""The offline build container: copy the tree in, install from the host's wheels, commit.

One container per environment image, network-less and labelled with its job, removed on
every path; each step's output is kept (capped) for the build log.
"""

from __future__ import annotations

import json
import re
import secrets
import subprocess
import threading
import time
from pathlib import Path
from typing import Any, Literal

import docker
import docker.errors
import requests.exceptions
import structlog
from docker.models.containers import Container
from docker.types import LogConfig, Mount
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version
from pydantic import Field

from runner import __version__
from runner.common.hostenv import host_env
from runner.config import Settings
from runner.environments.dependencies import ResolvedEnvironment, uv_binary
from runner.environments.images import BaseImage
from runner.environments.project import project_name
from runner.environments.requirements import read_toml
from runner.environments.wheels import INSTALL_LIST
from runner.errors import ImageBuildError
from runner.models import EnvironmentInfo, Model
from runner.sandbox.engine import removal_under_way
from runner.sandbox.labels import (
    LABEL_DEADLINE,
    LABEL_ENV_HASH,
    LABEL_INSTALL,
    LABEL_JOB,
    LABEL_KIND,
    LABEL_OWNER,
    LABEL_PHASE,
    LABEL_PREFIX,
    LABEL_PYTHON,
    LABEL_TARGET,
    LABEL_VERSION,
)

log = structlog.get_logger(__name__)

BUILD_ONLY_LABELS = (LABEL_OWNER, LABEL_JOB, LABEL_PHASE, LABEL_DEADLINE, LABEL_TARGET)

VENV = "/opt/venv"
ENV_JSON = f"{VENV}/fixrunner-environment.json"
WHEELS_MOUNT = "/mnt/wheels"
SOURCE_MOUNT = "/mnt/src"
UV_MOUNT = "/mnt/uv"
PATH = f"{VENV}/bin:/usr/local/bin:/usr/bin:/bin"
# The build container ends itself after this, so a crashed runner leaves nothing running.
BUILD_TIMEOUT_S = 1800
STEP_LOG_CAP = 20_000
RECORD_CAP = 4 * 2**20
LOG_TAIL = 8_000
PROJECT_FILES = ("pyproject.toml", "setup.py", "setup.cfg")

InstallMode = Literal["editable", "pth"]

# Programs run inside the build container by its own python, passed as argv.
_COPY = (
    "import shutil, sys; shutil.copytree(sys.argv[1], sys.argv[2], symlinks=True, "
    "dirs_exist_ok=True, ignore=shutil.ignore_patterns('.git'))"
)
_PTH = (
    "import sys, sysconfig, pathlib; "
    "pathlib.Path(sysconfig.get_paths()['purelib'], '_fixrunner_workspace.pth')"
    ".write_text(sys.argv[1] + '\\n')"
)
_VERSION_OF = (
    "import sys, importlib.metadata as m\n"
    "try:\n    print(m.version(sys.argv[1]))\n"
    "except m.PackageNotFoundError:\n    print('')"
)
_RECORD = (
    "import json, platform, sys, importlib.metadata as m; "
    "data = json.loads(sys.argv[2]); data['python_full'] = platform.python_version(); "
    "data['installed'] = dict(sorted((d.metadata['Name'].lower(), d.version) "
    "for d in m.distributions())); "
    "open(sys.argv[1], 'w').write(json.dumps(data, indent=1)); print(json.dumps(data))"
)


class EnvBuild:
    """One offline build of an environment image in a throw-away container."""

    def __init__(
        self,
        client: docker.DockerClient,
        base: BaseImage,
        checkout: Path,
        settings: Settings,
        env: ResolvedEnvironment,
        wheels: Path,
        tag: str,
        digest: str,
        job_id: str | None = None,
    ) -> None:
        self.client, self.base, self.checkout, self.settings = client, base, checkout, settings
        self.job_id = job_id or "env-build"
        self.env, self.wheels, self.tag, self.digest = env, wheels, tag, digest
        self.installer = settings.tools.installer
        self.log: list[str] = []
        self.seconds: dict[str, float] = {}
        self.notes: list[str] = []
        self.deadline = time.monotonic() + BUILD_TIMEOUT_S
        self.cancel: threading.Event | None = None
        if self.installer == "uv" and not Path(uv_binary()).is_file():
            self.installer = "pip"
            self.notes.append("uv not found on the host: installed with pip")

    def run(self) -> EnvImage:
        """Create the container, run the steps, commit; the container is always removed."""
        started = time.monotonic()
        self._check_cancel("create")
        container = self._create()
        try:
            # cancelled while the engine created it: removed without ever starting
            self._check_cancel("start")
            container.start()
            mode, record = self._steps(container)
            image = self._commit(container, mode, record)
        except (docker.errors.APIError, requests.exceptions.RequestException) as exc:
            raise ImageBuildError(f"environment image build: engine error: {exc}") from exc
        finally:
            self._remove(container)
        self.seconds["build"] = round(time.monotonic() - started, 2)
        log.info("environments.built", tag=self.tag, seconds=self.seconds, mode=mode)
        return EnvImage(
            id=image.id,
            tag=self.tag,
            environment=self.env,
            install_mode=mode,
            python=record.get("python_full", self.base.python),
            reused=False,
            seconds=self.seconds,
            build_log_tail=self._log_tail(),
            notes=self.notes,
        )

    def _create(self) -> Container:
        mounts = [Mount(WHEELS_MOUNT, str(self.wheels), type="bind", read_only=True)]
        tmpfs = {"/tmp": "rw,exec,nosuid,nodev,size=2g,mode=1777"}
        if self.installer == "uv":
            mounts.append(Mount(UV_MOUNT, uv_binary(), type="bind", read_only=True))
        if self.env.install_project:
            mounts.append(
                Mount(SOURCE_MOUNT, str(self.checkout.resolve()), type="bind", read_only=True)
            )
            # The editable install happens in a tmpfs at /work: the build backend may
            # write (egg-info) beside the sources, and a tmpfs is never committed, so
            # the image keeps an empty /work for the sandbox's bind of the job's tree.
            tmpfs["/work"] = "rw,exec,nosuid,nodev,size=2g,mode=0755"
        memory = f"{max(self.settings.sandbox.memory_mb, 2048)}m"
        name = f"fixrunner-envbuild-{self.digest[:12]}-{secrets.token_hex(3)}"
        try:
            return self.client.containers.create(
                image=self.base.id,
                command=["sleep", str(BUILD_TIMEOUT_S)],
                name=name,
                labels={
                    LABEL_OWNER: self.settings.engine.instance,
                    LABEL_JOB: self.job_id,
                    LABEL_PHASE: "env-build",
                    LABEL_TARGET: self.tag,
                    LABEL_DEADLINE: f"{time.time() + BUILD_TIMEOUT_S + 60:.0f}",
                },
                network_mode="none",
                cap_drop=["ALL"],
                security_opt=["no-new-privileges:true"],
                mounts=mounts,
                tmpfs=tmpfs,
                mem_limit=memory,
                memswap_limit=memory,
                pids_limit=1024,
                log_config=LogConfig(type="none"),
                working_dir="/",
                detach=True,
            )
        except docker.errors.ImageNotFound as exc:
            raise ImageBuildError(f"base image {self.base.tag} is not present") from exc
        except (docker.errors.APIError, requests.exceptions.RequestException) as exc:
            # The engine may have created it before the call failed: removed by name.
            self._remove(name)
            raise ImageBuildError(f"build container could not be created: {exc}") from exc

    def _steps(self, container: Container) -> tuple[InstallMode, dict[str, Any]]:
        py = f"{VENV}/bin/python"
        self._exec(container, "venv", ["python3", "-m", "venv", VENV])
        self._exec(
            container, "install", self._install_argv(["-r", f"{WHEELS_MOUNT}/{INSTALL_LIST}"])
        )
        mode: InstallMode = "pth"
        if self.env.install_project:
            mode = self._editable(container)
        if mode == "pth":
            self._drop_installed_self(container)
        self._exec(container, "pth", [py, "-c", _PTH, "\n".join(self.env.pth_paths)])
        summary = {"source": self.env.source, "pytest": self.env.pytest, "flake8": self.env.flake8}
        record_argv = [py, "-c", _RECORD, ENV_JSON, json.dumps(summary)]
        out = self._exec(container, "record", record_argv, cap=RECORD_CAP)
        try:
            record: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
        except (ValueError, IndexError) as exc:
            raise ImageBuildError("environment record unreadable", log=out[-LOG_TAIL:]) from exc
        installed = record.get("installed", {})
        for tool in ("pytest", "flake8"):
            expected = getattr(self.env, tool)
            if expected and installed.get(tool) != expected:
                raise ImageBuildError(
                    f"{tool} {expected} was resolved but {installed.get(tool)} is installed",
                    log=self._log_tail(),
                )
        return mode, record

    def _editable(self, container: Container) -> InstallMode:
        try:
            self._exec(container, "copy-project", ["python3", "-c", _COPY, SOURCE_MOUNT, "/work"])
            argv = self._install_argv(["--no-deps", "--no-build-isolation", "-e", "/work"])
            env = version_environment(self.checkout)
            self._exec(container, "install-project", argv, env=env)
        except ImageBuildError as exc:
            note = f"editable install failed, project importable via .pth only: {exc}"
            self.notes.append(note)
            log.warning("environments.editable_failed", error=str(exc))
            return "pth"
        return "editable"

    def _drop_installed_self(self, container: Container) -> None:
        # A project its own test tools depend on (attrs under hypothesis, pluggy under
        # pytest) arrives as a released wheel; a .pth line comes after site-packages, so
        # that release, not the tree under test, would be imported.
        # detection reads the name statically; the build backend's metadata when computed
        name = self.env.project_name
        if not name:
            return
        py = f"{VENV}/bin/python"
        found = self._exec(container, "find-self", [py, "-c", _VERSION_OF, name]).strip()
        version = found.splitlines()[-1] if found else ""
        if not version:
            return
        if self.installer == "uv":
            argv = [UV_MOUNT, "pip", "uninstall", "--offline", "--python", py, name]
        else:
            argv = [f"{VENV}/bin/pip", "uninstall", "-y", "--disable-pip-version-check", name]
        self._exec(container, "drop-self", argv)
        self.notes.append(
            f"{name} {version} came in as a dependency of the test tools; removed, so the "
            "tests import the tree's own code"
        )

    def _install_argv(self, args: list[str]) -> list[str]:
        if self.installer == "uv":
            return [
                UV_MOUNT,
                "pip",
                "install",
                "--offline",
                "--no-index",
                "--no-config",
                "--find-links",
                WHEELS_MOUNT,
                "--python",
                f"{VENV}/bin/python",
                "--link-mode",
                "copy",
                "--no-cache",
                "--compile-bytecode",
                *args,
            ]
        return [
            f"{VENV}/bin/pip",
            "install",
            "--no-index",
            "--find-links",
            WHEELS_MOUNT,
            "--disable-pip-version-check",
            "--no-cache-dir",
            "--progress-bar",
            "off",
            *args,
        ]

    def _exec(
        self,
        container: Container,
        step: str,
        argv: list[str],
        env: dict[str, str] | None = None,
        cap: int = STEP_LOG_CAP,
    ) -> str:
        # Detached, polled, output to a file in the tmpfs: a long silent install would
        # trip the client's read timeout on a streamed exec, and the engine would
        # otherwise hold a step's whole output in memory.
        started = time.monotonic()
        api = self.client.api
        log_file = f"/tmp/fixrunner-{step}.log"
        wrapped = ["sh", "-c", 'exec "$@" >"$0" 2>&1', log_file, *argv]
        environment = {"PATH": PATH, "HOME": "/tmp", "LANG": "C.UTF-8", **(env or {})}
        try:
            exec_id = api.exec_create(
                container.id, wrapped, environment=environment, workdir="/", user="0:0"
            )["Id"]
            api.exec_start(exec_id, detach=True)
            code = self._wait_exec(exec_id, step)
            _, raw = container.exec_run(["tail", "-c", str(cap), log_file], user="0:0")
        except (docker.errors.APIError, requests.exceptions.RequestException) as exc:
            raise ImageBuildError(f"step '{step}': engine error: {exc}") from exc
        output = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else ""
        self.seconds[step] = round(time.monotonic() - started, 2)
        self.log.append(f"$ {step} (exit {code}, {self.seconds[step]} s)\n{output[-STEP_LOG_CAP:]}")
        if code != 0:
            raise ImageBuildError(
                f"environment image build failed at step '{step}' (exit {code}): "
                f"{_last_error_line(output)}",
                log=output[-LOG_TAIL:],
            )
        return output

    def _wait_exec(self, exec_id: str, step: str) -> int | None:
        delay = 0.05
        while True:
            info = self.client.api.exec_inspect(exec_id)
            if not info.get("Running") and info.get("ExitCode") is not None:
                return int(info["ExitCode"])
            self._check_cancel(step)
            if time.monotonic() > self.deadline:
                raise ImageBuildError(
                    f"environment image build timed out at step '{step}' after {BUILD_TIMEOUT_S} s",
                    log=self._log_tail(),
                )
            time.sleep(delay)
            delay = min(delay * 2, 0.5)

    def _commit(self, container: Container, mode: InstallMode, record: dict[str, Any]) -> Any:
        labels = {
            LABEL_KIND: "env",
            LABEL_VERSION: __version__,
            LABEL_ENV_HASH: self.digest,
            LABEL_INSTALL: mode,
            LABEL_PYTHON: str(record.get("python_full", self.base.python)),
            f"{LABEL_PREFIX}.resolution": self.env.source,
            f"{LABEL_PREFIX}.pytest": self.env.pytest or "",
            f"{LABEL_PREFIX}.flake8": self.env.flake8 or "",
            f"{LABEL_PREFIX}.notes": " | ".join(self.notes)[:500],
        }
        # A commit keeps the build container's labels; blank the ones that describe
        # that container, or every sandbox started from the image would inherit them.
        labels.update(dict.fromkeys(BUILD_ONLY_LABELS, ""))
        changes = [f"ENV PATH={PATH}", "WORKDIR /work", 'CMD ["python3"]']
        changes += [f"LABEL {key}={json.dumps(value)}" for key, value in labels.items()]
        repository, tag = self.tag.rsplit(":", 1)
        return container.commit(repository=repository, tag=tag, changes=changes)

    def _check_cancel(self, step: str) -> None:
        if self.cancel is not None and self.cancel.is_set():
            raise ImageBuildError(f"environment image build stopped at step '{step}': cancelled")

    def _remove(self, ref: Container | str) -> None:
        ref = ref if isinstance(ref, str) else ref.id or ref.name or ""
        try:
            self.client.api.remove_container(ref, force=True, v=True)
        except docker.errors.NotFound:
            return
        except (docker.errors.APIError, requests.exceptions.RequestException) as exc:
            if isinstance(exc, docker.errors.APIError) and removal_under_way(exc):
                return  # another caller (an interrupted job's sweep) is removing it
            # Left for `runner gc`, which finds it by its owner label and deadline.
            log.warning("environments.remove_failed", container=ref[:12], error=str(exc))

    def _log_tail(self) -> str:
        return "\n".join(self.log)[-LOG_TAIL:]


def _last_error_line(output: str) -> str:
    # A Python exception line says most; else the installer's first "error:" line
    # (later ones are its chain of causes and hints).
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    exceptions = [line for line in lines if re.match(r"^[\w.]*(Error|Exception)\b:", line)]
    errors = [line for line in lines if re.match(r"^(error|ERROR)\b", line)]
    if exceptions:
        return exceptions[-1][:300]
    return (errors[:1] or lines[-1:] or ["no output"])[0][:300]


class EnvImage(Model):
    """An environment image that exists in the engine, and what is inside it."""

    id: str = Field(description="Image id (sha256:…).")
    tag: str = Field(description="repository-env:<hash16>.")
    environment: ResolvedEnvironment = Field(description="How the dependencies were resolved.")
    install_mode: InstallMode = Field(
        description="editable: the project's metadata is installed; pth: only importable."
    )
    python: str = Field(description="Exact Python version inside the image.")
    reused: bool = Field(description="True when the image existed and nothing was built.")
    seconds: dict[str, float] = Field(default_factory=dict, description="Seconds per step.")
    build_log_tail: str = Field(default="", description="Tail of the build's log.")
    notes: list[str] = Field(default_factory=list, description="Caveats of this build.")

    def all_notes(self) -> list[str]:
        """Detection's and resolution's notes, then the build's: added up, never replaced."""
        return list(dict.fromkeys([*self.environment.notes, *self.notes]))

    def info(self) -> EnvironmentInfo:
        """The verdict's images.environment block."""
        info = self.environment.environment_info(python=self.python)
        return info.model_copy(update={"notes": self.all_notes()})

    def environment_json(self) -> dict[str, Any]:
        """The full record the pipeline puts in the job folder as environment.json."""
        # The resolved environment has a "notes" field too: spread first, so the build's
        # notes (an editable install that fell back to a .pth) are added, not overwritten.
        return {
            **self.environment.model_dump(mode="json"),
            "image": self.tag,
            "image_id": self.id,
            "install_mode": self.install_mode,
            "python": self.python,
            "notes": self.all_notes(),
        }

    def write_environment_json(self, folder: Path) -> Path:
        """Write environment.json into ``folder`` and return its path."""
        path = folder / "environment.json"
        path.write_text(json.dumps(self.environment_json(), indent=1) + "\n", encoding="utf-8")
        return path


def version_environment(checkout: Path) -> dict[str, str]:
    """SETUPTOOLS_SCM_PRETEND_VERSION and its _FOR_<DIST> form: a sandbox cannot read git."""
    version = scm_version(checkout)
    env = {"SETUPTOOLS_SCM_PRETEND_VERSION": version}
    root = checkout.resolve()
    name = project_name(root, read_toml(root, root / "pyproject.toml"))
    if name:
        dist = re.sub(r"[^A-Z0-9]", "_", canonicalize_name(name).upper())
        env[f"SETUPTOOLS_SCM_PRETEND_VERSION_FOR_{dist}"] = version
    return env


def scm_version(checkout: Path) -> str:
    # setuptools-scm and hatch-vcs read the version from git, which the build copy
    # lacks; the newest tag on the host is the closest honest answer.
    try:
        proc = subprocess.run(
            [*git_argv(checkout), "describe", "--tags", "--abbrev=0"],
            capture_output=True,
            text=True,
            timeout=30,
            env=host_env(),
            check=False,
        )
        return str(Version(proc.stdout.strip().lstrip("v")))
    except (OSError, subprocess.SubprocessError, InvalidVersion):
        return "0.0.0"


def git_argv(checkout: Path) -> list[str]:
    # The job's tree may already belong to the sandbox user: trust it for reading.
    return ["git", "-c", f"safe.directory={checkout}", "-C", str(checkout)]
