"""Scale-out bench: the same 20 jobs through the Celery executor with 1 and with 2 workers.

    .venv/bin/python bench/scaleout.py [--jobs 20] [--broker-url amqp://...] [--output FILE]

Starts two private Docker engines (runner.distributed.engines, as
``scripts/multi-engine.sh up 2`` does; the base image copied from the default engine),
a `runner serve` with ``executor = "celery"`` on a free loopback port, and one
`runner worker --slots 1` per engine, all on the broker README's set-up starts
(127.0.0.1:5672; queue names private to this run). Each worker runs one warm-up job
first, so its environment image and baseline cache exist, as on a long-running host.
Then the same jobs (bench/load.py's repository and candidates) are submitted at once,
first with worker h1 alone, then with h1 and h2. Measures jobs/min and p50/p95
latency; stops everything it started by PID and removes the engines' folders; writes
the "Scale-out (Celery)" section of docs/benchmarks.md. Not a test: it takes minutes.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import docker
import httpx

# bench/ is not a package: run as a script, its folder is first on sys.path.
import load

from runner.client import RunnerClient
from runner.config import load_settings
from runner.distributed.engines import LocalEngine, copy_image, start_engine, stop_engine
from runner.environments.images import find_base_image
from runner.models import FixJob
from runner.service.auth import create_token

ROOT = Path(__file__).resolve().parent.parent
RUNNER = Path(sys.executable).parent / "runner"
BEGIN = "<!-- bench:scaleout.py begin -->"
END = "<!-- bench:scaleout.py end -->"
HOSTS = ("h1", "h2")
DEFAULT_BROKER = "amqp://guest:guest@127.0.0.1:5672//"


def celery_lines(broker_url: str, tag: str) -> list[str]:
    """The [celery] section shared by the service and the workers; queues private to ``tag``."""
    return [
        "[celery]",
        f'broker_url = "{broker_url}"',
        f'queue = "fxr-bench-{tag}.jobs"',
        f'host_queue_prefix = "fxr-bench-{tag}.host."',
        f'events_queue = "fxr-bench-{tag}.events"',
    ]


def write_config(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RUNNER_")}
    env.update(extra)
    return env


class Proc:
    """A subprocess started here, stopped here by its PID."""

    def __init__(self, argv: list[str], log: Path, env: dict[str, str]) -> None:
        with log.open("ab") as out:
            self.proc = subprocess.Popen(
                argv, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True
            )
        self.log = log

    def stop(self, sig: int = signal.SIGTERM, timeout_s: float = 60) -> int | None:
        if self.proc.poll() is not None:
            return self.proc.returncode
        self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait(timeout=30)


def start_engines(root: Path) -> dict[str, LocalEngine]:
    """Two private engines, each with the default engine's base image."""
    source = docker.from_env(version="auto", timeout=300)
    base = find_base_image(source, load_settings(None).images)
    if base is None:
        raise SystemExit("the default engine has no base image: run `make setup` first")
    engines: dict[str, LocalEngine] = {}
    try:
        for host in HOSTS:
            engines[host] = start_engine(root / host, host)
        with ThreadPoolExecutor(max_workers=len(HOSTS)) as pool:
            copies = [
                pool.submit(copy_image, source, e.client(), base.tag) for e in engines.values()
            ]
            for future in copies:
                future.result()
    except BaseException:
        for engine in engines.values():
            stop_engine(engine)
        raise
    return engines


def wait_ready(url: str, proc: Proc, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.proc.poll() is not None:
            raise SystemExit(f"the service exited; see {proc.log}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return
        time.sleep(0.2)
    raise SystemExit(f"the service did not become ready; see {proc.log}")


def wait_workers(config: Path, hosts: set[str], timeout_s: float = 90) -> None:
    """Wait until exactly ``hosts`` answer Celery's broadcast (so all consume from the start)."""
    from runner.distributed.worker import list_workers

    settings = load_settings(config)
    deadline = time.monotonic() + timeout_s
    seen: set[str] = set()
    while time.monotonic() < deadline:
        seen = {str(w.get("host")) for w in list_workers(settings, 1.0)} & set(HOSTS)
        if seen == hosts:
            return
        time.sleep(0.5)
    raise SystemExit(f"workers {sorted(hosts)} did not answer (saw {sorted(seen)})")


def measure(
    client: RunnerClient, repo: Path, jobs: int, mix: tuple[str, ...], workers: int
) -> dict[str, object]:
    """Submit ``jobs`` at once, wait for every verdict; throughput, latencies, hosts."""
    patches = [mix[i % len(mix)] for i in range(jobs)]
    started, busy = time.monotonic(), load.cpu_busy()
    with ThreadPoolExecutor(max_workers=16) as pool:
        refs = list(pool.map(lambda p: client.submit(FixJob(repo=str(repo), patch=p)), patches))
    verdicts = [client.wait(r.id, timeout=3600, max_poll_s=1) for r in refs]
    wall = time.monotonic() - started
    cores_busy = (load.cpu_busy() - busy) / wall
    views = [client.get(r.id) for r in refs]
    latencies = [(v.finished_at - v.created_at).total_seconds() for v in views if v.finished_at]
    runs = [
        (v.finished_at - v.started_at).total_seconds()
        for v in views
        if v.finished_at and v.started_at
    ]
    hosts: dict[str, int] = {}
    for verdict in verdicts:
        hosts[str(verdict.host)] = hosts.get(str(verdict.host), 0) + 1
    wrong = sum(1 for p, v in zip(patches, verdicts, strict=True) if v.status != load.EXPECTED[p])
    return {
        "workers": workers,
        "jobs": jobs,
        "lost": jobs - len(latencies),
        "wrong": wrong,
        "wall_s": wall,
        "throughput_per_min": jobs / wall * 60,
        "p50_s": load.percentile(latencies, 0.50),
        "p95_s": load.percentile(latencies, 0.95),
        "run_p50_s": load.percentile(runs, 0.50),
        "run_p95_s": load.percentile(runs, 0.95),
        "cores_busy": cores_busy,
        "hosts": hosts,
    }


def warm_up(client: RunnerClient, repo: Path, host: str) -> float:
    """One job on ``host`` alone (the only live worker): its env image and baseline."""
    started = time.monotonic()
    verdict = client.wait(client.submit(FixJob(repo=str(repo), patch=load.GOOD)).id, timeout=900)
    if verdict.host != host or verdict.status != "verified":
        raise SystemExit(f"warm-up on {host}: {verdict.status} on {verdict.host}")
    return time.monotonic() - started


def run(
    jobs: int, broker_url: str, mix: tuple[str, ...] = (load.GOOD,), keep: bool = False
) -> dict[str, object]:
    """The whole bench: engines, service, workers; 1 then 2 workers; everything stopped."""
    tag = uuid.uuid4().hex[:8]
    # Short paths: dockerd and containerd sockets live under each engine's folder.
    engines_root = Path(tempfile.mkdtemp(prefix="fxr-bench-", dir="/tmp"))
    folder = Path(tempfile.mkdtemp(prefix="fixrunner-scaleout-"))
    engines: dict[str, LocalEngine] = {}
    service: Proc | None = None
    workers: dict[str, Proc] = {}
    result: dict[str, object] = {"tag": tag}
    try:
        t0 = time.monotonic()
        engines = start_engines(engines_root)
        result["engines_s"] = time.monotonic() - t0
        print(f"[scaleout] engines up in {result['engines_s']:.0f} s", flush=True)
        repo = load.make_repo(folder / "repo")
        instance = f"bench-scale-{tag}"
        celery = celery_lines(broker_url, tag)
        port = load.free_port()
        state = folder / "svc-state"
        config = write_config(
            folder / "serve.toml",
            [
                "[engine]",
                f'instance = "{instance}"',
                "[paths]",
                f'state_dir = "{state}"',
                "[service]",
                f"port = {port}",
                'executor = "celery"',
                "queue_limit = 1000",
                "allow_local_repos = true",
                *celery,
            ],
        )
        token, _ = create_token(state / "tokens.json", "bench")
        worker_configs = {
            host: write_config(
                folder / f"worker-{host}.toml",
                [
                    "[engine]",
                    f'instance = "{instance}"',
                    "[paths]",
                    f'state_dir = "{folder / f"state-{host}"}"',
                    "[service]",
                    "allow_local_repos = true",
                    *celery,
                ],
            )
            for host in HOSTS
        }

        def start_worker(host: str) -> None:
            workers[host] = Proc(
                [str(RUNNER), "--config", str(worker_configs[host]), "worker", "--host", host,
                 "--slots", "1"],
                folder / f"worker-{host}.log",
                clean_env(DOCKER_HOST=engines[host].url),
            )  # fmt: skip

        def stop_worker(host: str) -> None:
            workers.pop(host).stop(signal.SIGTERM, 60)  # idle: a warm shutdown is quick

        service = Proc(
            [str(RUNNER), "--config", str(config), "serve"], folder / "serve.log", clean_env()
        )
        url = f"http://127.0.0.1:{port}"
        wait_ready(url, service)
        warm: dict[str, float] = {}
        with RunnerClient(url, token) as client:
            # Warm h2 alone, then h1 alone (kept running): each host has its env image.
            for host in ("h2", "h1"):
                start_worker(host)
                wait_workers(config, {host})
                warm[host] = warm_up(client, repo, host)
                print(f"[scaleout] warm-up on {host}: {warm[host]:.1f} s", flush=True)
                if host == "h2":
                    stop_worker(host)
            result["warm_s"] = warm
            phases = []
            print(f"[scaleout] {jobs} jobs with 1 worker", flush=True)
            phases.append(measure(client, repo, jobs, mix, 1))
            start_worker("h2")
            wait_workers(config, set(HOSTS))
            print(f"[scaleout] {jobs} jobs with 2 workers", flush=True)
            phases.append(measure(client, repo, jobs, mix, 2))
            result["phases"] = phases
    finally:
        for host in list(workers):
            stop_worker(host)
        if service is not None:
            result["service_exit"] = service.stop(signal.SIGTERM, 120)
        left = 0
        for engine in engines.values():
            with contextlib.suppress(docker.errors.DockerException):
                left += len(engine.client(timeout_s=30).containers.list(all=True))
            stop_engine(engine)
        result["left_containers"] = left
        shutil.rmtree(engines_root, ignore_errors=True)
        if not keep:
            shutil.rmtree(folder, ignore_errors=True)
        else:
            print(f"[scaleout] kept {folder}", flush=True)
    return result


def section(result: dict[str, object], command: str, loads: tuple[str, str]) -> str:
    """The markdown of the "Scale-out (Celery)" section, between its markers."""
    phases: list[dict[str, object]] = result["phases"]  # type: ignore[assignment]
    jobs = phases[0]["jobs"]
    warm: dict[str, float] = result["warm_s"]  # type: ignore[assignment]
    lines = [
        BEGIN,
        "## Scale-out (Celery)",
        "",
        f'`bench/scaleout.py`: `runner serve` with `executor = "celery"` on loopback, '
        "RabbitMQ from `make setup` (127.0.0.1:5672, queues private to the run), two private "
        "Docker engines on this machine (`runner.distributed.engines`, the base image copied "
        "in) and one `runner worker --slots 1` per engine. Each worker ran one warm-up job "
        f"first (h1 {warm['h1']:.1f} s, h2 {warm['h2']:.1f} s: its environment image and "
        f"baseline cache), then the same {jobs} jobs (bench/load.py's tiny repository, a "
        "verified fix each) were submitted at once with h1 alone, then with h1 and h2. "
        "run = a worker took the job → verdict; queued = accepted (202) → verdict.",
        "",
        "| workers | jobs | wall | jobs/min | run p50 | run p95 | queued p50 | queued p95 | "
        "jobs per host | cores busy | lost | wrong |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in phases:
        split = ", ".join(f"{h} {n}" for h, n in sorted(r["hosts"].items()))  # type: ignore[attr-defined]
        lines.append(
            f"| {r['workers']} | {r['jobs']} | {r['wall_s']:.1f} s | "
            f"{r['throughput_per_min']:.1f} | {r['run_p50_s']:.2f} s | {r['run_p95_s']:.2f} s | "
            f"{r['p50_s']:.1f} s | {r['p95_s']:.1f} s | {split} | {r['cores_busy']:.2f} | "
            f"{r['lost']} | {r['wrong']} |"
        )
    one, two = phases[0], phases[1]
    speedup = float(two["throughput_per_min"]) / float(one["throughput_per_min"])  # type: ignore[arg-type]
    lines += [
        "",
        f"2 workers give {speedup:.2f} x the jobs/min of 1. Both engines share this "
        f"machine's {os.cpu_count()} cores, so the gain is bounded by the cores, not by "
        "the broker: on separate hosts each worker brings its own.",
        "",
        f"Measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on {os.cpu_count()} cores "
        f"({platform.machine()}, kernel {platform.release()}, Python "
        f"{platform.python_version()}); load average (1/5/15 min) {loads[0]} at the start, "
        f"{loads[1]} at the end. Command: `{command}`. Engines up (with the base image) in "
        f"{float(result['engines_s']):.0f} s; the service exited {result.get('service_exit')} "  # type: ignore[arg-type]
        f"on SIGTERM; containers left on the engines: {result.get('left_containers')}.",
        END,
        "",
    ]
    return "\n".join(lines)


def write_section(path: Path, text: str) -> None:
    """Replace (or append) this script's marked section, leaving the rest alone."""
    old = path.read_text(encoding="utf-8") if path.exists() else "# Benchmarks\n"
    pattern = re.compile(re.escape(BEGIN) + r".*?" + re.escape(END) + r"\n?", re.S)
    found = pattern.search(old)
    new = pattern.sub(lambda _: text, old) if found else old.rstrip() + "\n\n" + text
    path.write_text(new.rstrip() + "\n", encoding="utf-8")


def loadavg() -> str:
    return " / ".join(Path("/proc/loadavg").read_text().split()[:3])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=20)
    parser.add_argument("--broker-url", default=os.environ.get("BENCH_BROKER_URL", DEFAULT_BROKER))
    parser.add_argument("--mix", choices=("good", "all"), default="good")
    parser.add_argument("--keep", action="store_true", help="keep the logs' folder")
    parser.add_argument("--output", type=Path, default=ROOT / "docs" / "benchmarks.md")
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args()
    command = " ".join([Path(sys.executable).name, *sys.argv])
    mix = (load.GOOD,) if args.mix == "good" else (load.GOOD, load.BREAKS, load.NOT_APPLYING)
    start_load = loadavg()
    result = run(args.jobs, args.broker_url, mix, args.keep)
    text = section(result, command, (start_load, loadavg()))
    print(text)
    if not args.no_write:
        write_section(args.output, text)
        print(f"wrote the Scale-out (Celery) section of {args.output}")
    phases: list[dict[str, object]] = result["phases"]  # type: ignore[assignment]
    ok = all(p["lost"] == 0 and p["wrong"] == 0 for p in phases)
    return 0 if ok and result.get("left_containers") == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
