"""Cost per verification: the CLI's start-up, CPU-seconds per job, hostile candidates.

Used by bench/run.py. CPU-seconds of one verification = the ``verify-patch`` process
and its own children (wait4's rusage: the runner, git) + every container it ran (each
container's cpuacct counter, sampled every 0.1 s from the host's cgroup tree while the
job runs, so a container's last tenth of a second can be missed).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

BIN = Path(sys.executable).parent
CPUACCT = [Path("/sys/fs/cgroup/cpuacct/docker"), Path("/sys/fs/cgroup/system.slice")]

# Appended to a module the tests import: the two hostile candidates of the issue.
FORK_BOMB = """

import os as _os
import time as _time

while True:  # every child forks on, forever
    try:
        _os.fork()
    except OSError:
        _time.sleep(1)
"""
ENDLESS_LOOP = "\n\nwhile True:  # never finishes importing\n    pass\n"
HOSTILE = {"fork bomb at import": FORK_BOMB, "endless loop at import": ENDLESS_LOOP}


@dataclass
class Startup:
    """Median wall and CPU seconds of one CLI invocation."""

    command: str
    wall: float
    cpu: float


def cli_startup(runs: int = 7) -> list[Startup]:
    """`runner --version`, `runner --help` and `verify-patch --help`, medians of ``runs``."""
    out = []
    for argv in (["runner", "--version"], ["runner", "--help"], ["verify-patch", "--help"]):
        walls, cpus = [], []
        for _ in range(runs):
            wall, cpu, _ = timed([str(BIN / argv[0]), *argv[1:]])
            walls.append(wall)
            cpus.append(cpu)
        out.append(Startup(" ".join(argv), statistics.median(walls), statistics.median(cpus)))
    return out


def import_cpu(runs: int = 5) -> float:
    """Median CPU-seconds of importing what a ``verify-patch`` job loads (no job run)."""
    code = "import runner.cli.verify, runner.cli.progress, runner.verify.pipeline"
    return statistics.median(timed([sys.executable, "-c", code])[1] for _ in range(runs))


def timed(argv: list[str], env: dict[str, str] | None = None) -> tuple[float, float, int]:
    """Wall seconds, CPU seconds (the process and its waited children) and exit status."""
    started = time.monotonic()
    proc = subprocess.Popen(
        argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env or dict(os.environ)
    )
    _, status, usage = os.wait4(proc.pid, 0)
    return (
        time.monotonic() - started,
        usage.ru_utime + usage.ru_stime,
        os.waitstatus_to_exitcode(status),
    )


class ContainerCpu:
    """CPU-seconds of this runner instance's containers that run meanwhile (cpuacct).

    The engine is shared: a container counts only when it carries the owner label of
    ``instance`` (the bench's runner.toml), asked of the engine once per container.
    """

    def __init__(self, instance: str = "bench") -> None:
        import docker

        self._client = docker.from_env()
        self._instance = instance
        self._mine: dict[str, bool] = {}
        self._phase: dict[str, str] = {}
        self._before = set(self._ids())
        self._seen: dict[str, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def __enter__(self) -> ContainerCpu:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._client.close()

    @property
    def seconds(self) -> float:
        """Sum over the new containers of their last sampled usage."""
        return sum(self._seen.values())

    @property
    def by_phase(self) -> dict[str, float]:
        """The same seconds by the container's phase label (``test-env`` etc.)."""
        out: dict[str, float] = {}
        for container_id, seconds in self._seen.items():
            phase = self._phase.get(container_id, "other")
            out[phase] = out.get(phase, 0.0) + seconds
        return out

    def _owned(self, container_id: str) -> bool:
        if container_id not in self._mine:
            import docker.errors

            from runner.sandbox.labels import LABEL_OWNER, LABEL_PHASE

            try:
                labels = self._client.api.inspect_container(container_id)["Config"]["Labels"]
            except docker.errors.DockerException:  # gone already: not counted
                labels = {}
            self._mine[container_id] = (labels or {}).get(LABEL_OWNER) == self._instance
            self._phase[container_id] = (labels or {}).get(LABEL_PHASE) or "other"
        return self._mine[container_id]

    @staticmethod
    def _ids() -> list[Path]:
        return [p for root in CPUACCT if root.is_dir() for p in root.iterdir() if p.is_dir()]

    def _sample(self) -> None:
        while not self._stop.is_set():
            for path in self._ids():
                if path in self._before or not self._owned(path.name):
                    continue
                try:
                    usage = int((path / "cpuacct.usage").read_text()) / 1e9
                except (OSError, ValueError):
                    continue
                self._seen[path.name] = max(self._seen.get(path.name, 0.0), usage)
            self._stop.wait(0.1)


@dataclass
class Hostile:
    """Time to verdict of one hostile candidate against its limit."""

    name: str
    wall: float
    status: str
    reason: str
    deadline_s: float
    source: str
    limit: float


def hostile(
    config: Path, repo: Path, patch: str, folder: Path, name: str, t_base: float
) -> Hostile:
    """Verify one hostile candidate; its verdict's recorded deadline and stop reason.

    ``t_base`` stands in for the baseline's suite time when the verdict records none.
    """
    patch_file = folder / f"hostile-{time.monotonic_ns()}.diff"
    patch_file.write_text(patch, encoding="utf-8")
    out = patch_file.with_suffix(".json")
    argv = [str(BIN / "verify-patch"), "--config", str(config), "--repo", str(repo)]
    argv += ["--patch", str(patch_file), "--output", str(out), "--format", "json"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("RUNNER_")}
    wall, _, _ = timed(argv, env)
    verdict = json.loads(out.read_text(encoding="utf-8")) if out.is_file() else {}
    deadlines = verdict.get("deadlines") or {}
    # T_baseline: the baseline suite's seconds the runner learned the deadline from
    t_base = float(deadlines.get("baseline_s") or t_base)
    checks = {c["name"]: c for c in verdict.get("checks", [])}
    reason = checks.get("no_regressions", {}).get("detail", verdict.get("summary", "?"))
    return Hostile(
        name=name,
        wall=wall,
        status=verdict.get("status", "none"),
        reason=reason,
        deadline_s=float(deadlines.get("suite_s", 0)),
        source=str(deadlines.get("source", "?")),
        limit=3 * t_base + 30,
    )
