"""Service load run: 50 jobs submitted at once to a real `runner serve`.

    .venv/bin/python bench/load.py [--jobs 50] [--concurrency N] [--output docs/benchmarks.md]

Starts its own service on a free loopback port with a temporary state dir, makes a
tiny git repository (one failing test; requirements pinned), submits the jobs at once
through RunnerClient (a mix of good, regressing and non-applying candidates), waits for
every verdict, and writes throughput, p50/p95 latency and lost jobs to the
"Service load" section of docs/benchmarks.md. Not a test: it takes minutes.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import httpx

from runner.client import RunnerClient
from runner.models import FixJob
from runner.service.auth import create_token

ROOT = Path(__file__).resolve().parent.parent
RUNNER = Path(sys.executable).parent / "runner"
DATE = "2026-11-01T12:00:00+00:00"
FILES = {
    "calc.py": "def add(a, b):\n    return a - b\n\n\ndef mul(a, b):\n    return a * b\n",
    "tests/test_calc.py": (
        "from calc import add, mul\n\n\ndef test_add():\n    assert add(2, 3) == 5\n\n\n"
        "def test_mul():\n    assert mul(2, 3) == 6\n"
    ),
    "requirements-test.txt": "pytest==8.3.5\nflake8==7.1.2\n",
}
HEADER = "--- a/calc.py\n+++ b/calc.py\n"
GOOD = HEADER + (
    "@@ -1,5 +1,5 @@\n def add(a, b):\n-    return a - b\n+    return a + b\n"
    " \n \n def mul(a, b):\n"
)
BREAKS = HEADER + (
    "@@ -1,6 +1,6 @@\n def add(a, b):\n-    return a - b\n+    return a + b\n \n \n"
    " def mul(a, b):\n-    return a * b\n+    return a + b\n"
)
NOT_APPLYING = GOOD.replace("-    return a - b\n", "-    return a - b - 0\n")
EXPECTED = {GOOD: "verified", BREAKS: "rejected", NOT_APPLYING: "rejected"}


def make_repo(root: Path) -> Path:
    """The tiny repository, committed on a fixed date."""
    for name, text in FILES.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text, encoding="utf-8")
    env = {**os.environ, "GIT_COMMITTER_DATE": DATE, "GIT_AUTHOR_DATE": DATE}
    ident = ["-c", "user.name=bench", "-c", "user.email=bench@example.invalid"]
    for argv in (["init", "-q"], ["add", "-A"], [*ident, "commit", "-qm", "bench"]):
        subprocess.run(["git", *argv], cwd=root, env=env, check=True)
    return root


def free_port() -> int:
    """A free loopback port."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_service(folder: Path, concurrency: int) -> tuple[subprocess.Popen[bytes], str, str]:
    """`runner serve` with its own config and token; returns (process, url, token)."""
    port = free_port()
    config = folder / "runner.toml"
    config.write_text(
        f'[engine]\ninstance = "bench"\n[paths]\nstate_dir = "{folder / "state"}"\n'
        f"[service]\nport = {port}\nconcurrency = {concurrency}\nqueue_limit = 1000\n"
        "allow_local_repos = true\n",
        encoding="utf-8",
    )
    token, _ = create_token(folder / "state" / "tokens.json", "bench")
    env = {k: v for k, v in os.environ.items() if not k.startswith("RUNNER_")}
    log = (folder / "serve.log").open("wb")
    proc = subprocess.Popen(
        [str(RUNNER), "--config", str(config), "serve"], stdout=log, stderr=log, env=env
    )
    url = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                return proc, url, token
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    proc.kill()
    raise SystemExit(f"the service did not become ready; see {folder / 'serve.log'}")


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, round(q * len(ordered) + 0.5) - 1))]


def cpu_busy() -> float:
    """Busy CPU seconds of the whole machine since boot, all cores (from /proc/stat)."""
    fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + fields[4]
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def peak_rss_mib(pid: int) -> float:
    """A live process's peak resident memory (VmHWM), in MiB; 0 when unreadable."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def run(
    jobs: int, concurrency: int, mix: tuple[str, ...] = (GOOD, BREAKS, NOT_APPLYING)
) -> dict[str, object]:
    """Submit ``jobs`` at once (patches taken from ``mix`` in turn), wait for all, and measure."""
    with tempfile.TemporaryDirectory(prefix="fixrunner-bench-") as tmp:
        folder = Path(tmp)
        repo = make_repo(folder / "repo")
        proc, url, token = start_service(folder, concurrency)
        try:
            with RunnerClient(url, token) as client:
                # One warm-up job builds the environment image and the baseline cache,
                # as a long-running service would have them.
                warm = client.submit(FixJob(repo=str(repo), patch=GOOD))
                client.wait(warm.id, timeout=600)
                patches = [mix[i % len(mix)] for i in range(jobs)]
                started, busy = time.monotonic(), cpu_busy()
                with ThreadPoolExecutor(max_workers=16) as pool:
                    refs = list(
                        pool.map(lambda p: client.submit(FixJob(repo=str(repo), patch=p)), patches)
                    )
                verdicts = [client.wait(r.id, timeout=3600, max_poll_s=1) for r in refs]
                wall = time.monotonic() - started
                cores_busy = (cpu_busy() - busy) / wall
                views = [client.get(r.id) for r in refs]
            rss_mib = peak_rss_mib(proc.pid)
        finally:
            proc.send_signal(signal.SIGTERM)
            code = proc.wait(timeout=120)
    latencies = [(v.finished_at - v.created_at).total_seconds() for v in views if v.finished_at]
    # From a worker taking the job to its verdict: the job's own time, without the queue.
    runs = [
        (v.finished_at - v.started_at).total_seconds()
        for v in views
        if v.finished_at and v.started_at
    ]
    wrong = sum(1 for p, v in zip(patches, verdicts, strict=True) if v.status != EXPECTED[p])
    return {
        "jobs": jobs,
        "concurrency": concurrency,
        "finished": len(latencies),
        "lost": jobs - len(latencies),
        "wrong": wrong,
        "wall_s": wall,
        "throughput_per_min": jobs / wall * 60,
        "p50_s": percentile(latencies, 0.50),
        "p95_s": percentile(latencies, 0.95),
        "max_s": max(latencies),
        "run_p50_s": percentile(runs, 0.50),
        "run_p95_s": percentile(runs, 0.95),
        "rss_mib": rss_mib,
        "cores_busy": cores_busy,
        "exit_code": code,
    }


def section(result: dict[str, object]) -> str:
    """The markdown of the "Service load" section."""
    r = result
    return (
        "## Service load\n\n"
        "`bench/load.py`: one `runner serve` on loopback, a tiny repository (2 tests, pytest "
        "and flake8 pinned), its environment image and baseline warmed by one job first, "
        f"then {r['jobs']} jobs submitted at once through `RunnerClient` (good, regressing "
        "and non-applying candidates in turn). Latency is the job's time from accepted "
        "(202) to verdict, queueing included.\n\n"
        "| jobs | workers | wall | throughput | p50 latency | p95 latency | max | lost | "
        "wrong verdicts |\n"
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |\n"
        f"| {r['jobs']} | {r['concurrency']} | {r['wall_s']:.1f} s | "
        f"{r['throughput_per_min']:.1f} jobs/min | {r['p50_s']:.1f} s | {r['p95_s']:.1f} s | "
        f"{r['max_s']:.1f} s | {r['lost']} | {r['wrong']} |\n\n"
        f"Measured {datetime.now(UTC):%Y-%m-%d} on {os.cpu_count()} cores "
        f"({platform.machine()}, Python {platform.python_version()}); the service exited "
        f"{r['exit_code']} on SIGTERM. Each job runs three sandboxes at once (baseline "
        "from cache, candidate, lint) plus re-runs of changed tests, so past the core "
        "count more workers add queueing inside the engine, not throughput.\n"
    )


def write_section(path: Path, text: str) -> None:
    """Replace (or append) the "Service load" section of the benchmarks file."""
    old = path.read_text(encoding="utf-8") if path.exists() else "# Benchmarks\n"
    pattern = re.compile(r"^## Service load\n.*?(?=^## |\Z)", re.S | re.M)
    if pattern.search(old):
        new = pattern.sub(lambda _: text + "\n", old).rstrip() + "\n"
    else:
        new = old.rstrip() + "\n\n" + text
    path.write_text(new, encoding="utf-8")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=50)
    parser.add_argument("--concurrency", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--output", type=Path, default=ROOT / "docs" / "benchmarks.md")
    args = parser.parse_args()
    result = run(args.jobs, args.concurrency)
    for key, value in result.items():
        print(f"{key:>20}: {value:.2f}" if isinstance(value, float) else f"{key:>20}: {value}")
    write_section(args.output, section(result))
    print(f"wrote the Service load section of {args.output}")
    return 0 if result["lost"] == 0 and result["wrong"] == 0 and result["exit_code"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
