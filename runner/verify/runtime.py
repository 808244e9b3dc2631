"""The Runtime: what a process keeps between jobs (settings, engine, sandbox, caches)."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path

import docker

from runner.config import Settings
from runner.environments.dependencies import host_index_args
from runner.environments.images import BaseImage, ensure_base_image
from runner.sandbox.docker import DockerSandbox
from runner.sandbox.engine import connect
from runner.workspace.git import NetworkLimits
from runner.workspace.mirrors import MirrorCache

POLICIES_DIR = Path(__file__).resolve().parents[2] / "policies"


@dataclass
class Runtime:
    """What a process keeps between jobs: settings, engine, sandbox, caches."""

    settings: Settings
    client: docker.DockerClient
    sandbox: DockerSandbox
    mirrors: MirrorCache
    policies_dir: Path = POLICIES_DIR
    _bases: dict[str, BaseImage] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _warming: threading.Thread | None = None

    @classmethod
    def start(cls, settings: Settings) -> Runtime:
        """Connect to the engine and open the caches under the state directory."""
        # Reading the host's pip configuration takes a pip process (~0.15 s); it is only
        # needed at the environment step, so it runs while the engine and git work.
        warming = threading.Thread(target=host_index_args, name="warm-pip-config", daemon=True)
        warming.start()
        client = connect(settings.engine)
        root = settings.paths.root
        return cls(
            settings=settings,
            client=client,
            sandbox=DockerSandbox(client, settings.engine),
            mirrors=MirrorCache(
                root / "mirrors",
                allow_local=settings.security.allow_local_repos,
                network=NetworkLimits.of(settings.workspace),
            ),
            _warming=warming,
        )

    def warmed(self) -> None:
        """Wait for the start-up warming (instant once done), so nothing runs twice."""
        if self._warming is not None:
            self._warming.join()

    def base_image(self, python: str | None = None) -> BaseImage:
        """The base image carrying ``python`` (None: the default), built on first use."""
        key = python or ""
        with self._lock:
            if key not in self._bases:
                self._bases[key] = ensure_base_image(self.client, self.settings, python)
            return self._bases[key]

    @property
    def jobs_dir(self) -> Path:
        return self.settings.paths.root / "jobs"

    @property
    def baseline_cache(self) -> Path:
        return self.settings.paths.root / "baselines"
