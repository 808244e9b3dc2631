"""`make bench`: the runner against the bare test suite, and the service at 1 and 2 workers.

    .venv/bin/python bench/run.py [--runs N] [--service-jobs 20] [--no-service]
                                  [--scaleout | --no-scaleout]
                                  [--wait-quiet] [--output docs/benchmarks.md]

Two workloads (the bundled Flask example; a generated ~5 s pure-Python suite) as git
repositories in a temp dir. For each, the median of ``--runs`` runs (env BENCH_RUNS,
default 5) after a warm-up of: T_bare (pytest on the host in a venv made with Debian's
/usr/bin/python3.11), cold (env image removed; wheels and resolution cached), first
(warm image, empty baseline cache), second (another candidate on the same base, baseline
cached) and overhead (second - the candidate's own pytest time, JUnit's testsuite time).
Beside them (bench/costs.py): the CLI's start-up, CPU-seconds per verification and the
hostile candidates' time to verdict. Every figure carries its phase breakdown from the
verdict's timings. Then 20 jobs at once through `runner serve` at concurrency 1 and 2
(bench/load.py), and the same 20 jobs through the Celery executor with 1 and 2
workers, one per private Docker engine
(bench/scaleout.py; on by default, off with --no-scaleout or BENCH_SCALEOUT=0). Large
real suites from the accuracy corpus, affected tests first: bench/largesuite.py (on by
default, off with --no-large or BENCH_LARGE=0; its own section). Writes
the "Verification speed" and "Scale-out (Celery)" sections of docs/benchmarks.md and
prints them. Not a test.
"""

from __future__ import annotations

import argparse
import compileall
import contextlib
import hashlib
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

# bench/ is not a package: run as a script, its folder is first on sys.path.
import costs
import docker
import errortopr
import largesuite
import load
import scaleout
from workloads import Workload, flask_workload, hostile_patch, synthetic_workload

from runner.config import load_settings
from runner.environments.images import base_tag

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
RERUNS = 2  # the default policy's re-runs of changed tests, which the bench runs with
BARE_PYTHON = "/usr/bin/python3.11"
STATE = Path(os.environ.get("BENCH_STATE_DIR", "~/.cache/fixrunner-bench")).expanduser()
REPOSITORY = "fixrunner-bench"
PHASES = (
    "checkout",
    "env",
    "apply",
    "baseline",
    "candidate",
    "lint",
    "reruns-early",
    "compare",
    "reruns",
)
BEGIN = "<!-- bench:run.py begin -->"
END = "<!-- bench:run.py end -->"
# pytest as the runner's sandbox runs it (runner/pipeline.py PYTEST_ARGS), so the bare
# side does the same work: JUnit file, no random order, plain output.
BARE_ARGS = [
    "-o",
    "junit_family=xunit1",
    "--continue-on-collection-errors",
    "-p",
    "no:randomly",
    "--color=no",
    "-q",
    "-rfE",
    "--tb=short",
]


@dataclass
class Sample:
    """One measured run: wall seconds, the verdict's phase timings, peak RSS."""

    wall: float
    timings: dict[str, float] = field(default_factory=dict)
    pytest_s: float = 0.0
    rss_mib: float = 0.0
    status: str = ""
    cpu: float = 0.0  # CPU-seconds: the verify-patch process + its containers
    cpu_runner: float = 0.0  # of which the verify-patch process and its own children
    cpu_phases: dict[str, float] = field(default_factory=dict)  # containers' by phase label
    busy: float = 0.0  # the whole machine's busy CPU-seconds meanwhile (engine included)


@dataclass
class Figures:
    """All samples of one workload."""

    workload: Workload
    bare: list[float] = field(default_factory=list)
    cold: list[Sample] = field(default_factory=list)
    first: list[Sample] = field(default_factory=list)
    second: list[Sample] = field(default_factory=list)
    hostile: list[costs.Hostile] = field(default_factory=list)


# ---------------------------------------------------------------------------- setup


def config_file(folder: Path) -> Path:
    """A runner.toml for the bench: its own state dir, instance and image names."""
    path = folder / "bench.toml"
    path.write_text(
        f'[engine]\ninstance = "bench"\n'
        f'[images]\nrepository = "{REPOSITORY}"\n'
        f'[paths]\nstate_dir = "{STATE}"\n'
        "[security]\nallow_local_repos = true\n",
        encoding="utf-8",
    )
    return path


def prepare_state() -> None:
    """Keep the wheel and resolution caches; start jobs, mirrors and baselines afresh."""
    STATE.mkdir(parents=True, exist_ok=True)
    for name in ("jobs", "mirrors", "baselines"):
        shutil.rmtree(STATE / name, ignore_errors=True)


def share_base_image(client: docker.DockerClient, config: Path) -> None:
    """Tag the existing base image under the bench's name, so no second one is built."""
    settings = load_settings(config)
    mine = base_tag(settings.images)
    theirs = mine.replace(f"{REPOSITORY}-base:", f"{load_settings(None).images.repository}-base:")
    try:
        client.images.get(mine)
        return
    except docker.errors.ImageNotFound:
        pass
    try:
        image = client.images.get(theirs)
    except docker.errors.ImageNotFound:
        return  # the first verify builds it (about a minute)
    repository, tag = mine.split(":", 1)
    image.tag(repository, tag)


def bare_venv(repo: Path) -> Path:
    """A venv made with Debian's python3.11 holding the workload's pinned test requirements."""
    files = sorted(repo.glob("requirements*.txt"))
    digest = hashlib.sha256(b"".join(p.read_bytes() for p in files)).hexdigest()[:16]
    venv = STATE / "venvs" / digest
    if (venv / ".complete").is_file():
        return venv
    shutil.rmtree(venv, ignore_errors=True)
    subprocess.run([BARE_PYTHON, "-m", "venv", str(venv)], check=True)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q"]
    subprocess.run([*pip, "-r", str(repo / "requirements-test.txt")], check=True, cwd=repo)
    (venv / ".complete").write_text("ok\n")
    return venv


def bare_tree(workload: Workload, folder: Path) -> Path:
    """A plain clone of the workload with its first candidate applied: what the suite runs on."""
    tree = folder / f"{workload.name}-bare"
    subprocess.run(["git", "clone", "-q", str(workload.repo), str(tree)], check=True)
    subprocess.run(
        ["git", "-C", str(tree), "apply", "-"], input=workload.first.encode(), check=True
    )
    return tree


# ---------------------------------------------------------------------------- measuring


def time_bare(venv: Path, tree: Path, runs: int) -> list[float]:
    """Wall seconds of pytest on the host, ``runs`` times after one warm-up."""
    times = []
    with tempfile.TemporaryDirectory(prefix="bench-bare-") as tmp:
        argv = [
            str(venv / "bin" / "python"),
            "-m",
            "pytest",
            *BARE_ARGS,
            "-o",
            f"cache_dir={tmp}/cache",
            f"--junitxml={tmp}/junit.xml",
        ]
        for i in range(runs + 1):
            started = time.monotonic()
            proc = subprocess.run(argv, cwd=tree, capture_output=True, text=True, check=False)
            elapsed = time.monotonic() - started
            if proc.returncode != 0:
                raise SystemExit(f"bare pytest failed in {tree}:\n{proc.stdout[-2000:]}")
            if i:
                times.append(elapsed)
    return times


def verify(config: Path, repo: Path, patch: str, folder: Path) -> Sample:
    """One `verify-patch` process: wall time, verdict timings, its peak RSS."""
    patch_file = folder / f"patch-{time.monotonic_ns()}.diff"
    patch_file.write_text(patch, encoding="utf-8")
    out = patch_file.with_suffix(".json")
    argv = [
        str(BIN / "verify-patch"),
        "--config",
        str(config),
        "--repo",
        str(repo),
        "--patch",
        str(patch_file),
        "--output",
        str(out),
        "--format",
        "json",
    ]
    env = {k: v for k, v in os.environ.items() if not k.startswith("RUNNER_")}
    started, busy = time.monotonic(), load.cpu_busy()
    with costs.ContainerCpu() as containers:
        proc = subprocess.Popen(
            argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env, text=False
        )
        assert proc.stderr is not None
        stderr = proc.stderr.read()
        # wait4 gives this child's own resource use: its peak RSS is the runner's memory.
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.monotonic() - started
        busy = load.cpu_busy() - busy
    proc.returncode = os.waitstatus_to_exitcode(status)
    if not out.is_file():
        raise SystemExit(f"verify-patch wrote no verdict:\n{stderr.decode()[-3000:]}")
    verdict = json.loads(out.read_text(encoding="utf-8"))
    if verdict["status"] != "verified":
        raise SystemExit(f"expected verified, got {verdict['status']}: {verdict['summary']}")
    junit = STATE / "jobs" / verdict["job_id"] / "junit" / "candidate.xml"
    return Sample(
        wall=wall,
        timings=verdict.get("timings", {}),
        pytest_s=junit_seconds(junit),
        rss_mib=usage.ru_maxrss / 1024,
        status=verdict["status"],
        cpu=usage.ru_utime + usage.ru_stime + containers.seconds,
        cpu_runner=usage.ru_utime + usage.ru_stime,
        cpu_phases=containers.by_phase,
        busy=busy,
    )


def junit_seconds(path: Path) -> float:
    """pytest's own session time from its JUnit file (0 when absent)."""
    try:
        root = ET.parse(path).getroot()
    except (OSError, ET.ParseError):
        return 0.0
    suite = root if root.tag == "testsuite" else root.find("testsuite")
    return float(suite.get("time", 0)) if suite is not None else 0.0


def clear_baselines() -> None:
    """Empty the baseline cache, so the next job runs its baseline."""
    shutil.rmtree(STATE / "baselines", ignore_errors=True)


def remove_env_image(client: docker.DockerClient, tag: str) -> None:
    """Untag the bench's environment image, so the next job builds it (a cold run)."""
    with contextlib.suppress(docker.errors.ImageNotFound):
        client.images.remove(tag, noprune=False)


def measure(
    client: docker.DockerClient,
    config: Path,
    workload: Workload,
    folder: Path,
    runs: int,
    cold_runs: int,
) -> Figures:
    """Every figure of one workload."""
    figures = Figures(workload)
    print(f"[{workload.name}] bare venv and tree", flush=True)
    venv = bare_venv(workload.repo)
    figures.bare = time_bare(venv, bare_tree(workload, folder), runs)
    print(f"[{workload.name}] T_bare {statistics.median(figures.bare):.2f} s", flush=True)
    warm = verify(config, workload.repo, workload.first, folder)
    print(f"[{workload.name}] warm-up {warm.wall:.2f} s", flush=True)
    env_tag = _env_tag(folder)
    for _ in range(cold_runs):
        remove_env_image(client, env_tag)
        clear_baselines()
        figures.cold.append(verify(config, workload.repo, workload.first, folder))
        print(f"[{workload.name}] cold {figures.cold[-1].wall:.2f} s", flush=True)
    for _ in range(runs):
        clear_baselines()
        figures.first.append(verify(config, workload.repo, workload.first, folder))
        figures.second.append(verify(config, workload.repo, workload.second, folder))
        print(
            f"[{workload.name}] first {figures.first[-1].wall:.2f} s, "
            f"second {figures.second[-1].wall:.2f} s",
            flush=True,
        )
    if workload.imported:
        t_base = median([s.timings.get("baseline", 0.0) for s in figures.first])
        for name, code in costs.HOSTILE.items():
            patch = hostile_patch(workload, code)
            figures.hostile.append(
                costs.hostile(config, workload.repo, patch, folder, name, t_base)
            )
            print(f"[{workload.name}] {name}: {figures.hostile[-1].wall:.1f} s", flush=True)
    return figures


def _env_tag(folder: Path) -> str:
    newest = max(folder.glob("patch-*.json"), key=lambda p: p.stat().st_mtime)
    return json.loads(newest.read_text(encoding="utf-8"))["images"]["environment_image"]


# ---------------------------------------------------------------------------- report


def median(values: list[float]) -> float:
    """The median, 0 for no values."""
    return statistics.median(values) if values else 0.0


def phase_medians(samples: list[Sample]) -> dict[str, float]:
    """Median seconds of each phase over the samples."""
    return {p: median([s.timings.get(p, 0.0) for s in samples]) for p in PHASES}


def breakdown(samples: list[Sample]) -> str:
    """The phase columns of one table row."""
    phases = phase_medians(samples)
    return " | ".join(f"{phases[p]:.2f}" for p in PHASES)


def machine() -> dict[str, str]:
    """Cores, memory, Docker version, load."""
    mem_kib = 0
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            mem_kib = int(line.split()[1])
    try:
        docker_version = docker.from_env().version().get("Version", "?")
    except docker.errors.DockerException:
        docker_version = "?"
    return {
        "cores": str(os.cpu_count()),
        "memory": f"{mem_kib / 2**20:.1f} GiB",
        "docker": docker_version,
        "python": platform.python_version(),
        "kernel": platform.release(),
    }


def loadavg() -> str:
    """The 1, 5 and 15 minute load averages."""
    return " / ".join(Path("/proc/loadavg").read_text().split()[:3])


def targets(fig: Figures) -> list[tuple[str, float, float, bool]]:
    """(name, value, limit, met) of the per-workload targets."""
    bare = median(fig.bare)
    first = median([s.wall for s in fig.first])
    second = median([s.wall for s in fig.second])
    limit_first = 1.5 * bare + 1.0
    limit_second = 1.1 * bare + 0.4
    cpu = median([s.cpu for s in fig.second])
    out = [
        ("first <= 1.5 x T_bare + 1.0 s", first, limit_first, first <= limit_first),
        ("second <= 1.1 x T_bare + 0.4 s", second, limit_second, second <= limit_second),
    ]
    if fig.workload.cpu_target is not None:
        limit = fig.workload.cpu_target
        busy = median([s.busy for s in fig.second])
        out.append(
            (
                f"second <= {limit:g} CPU-seconds (its processes and containers)",
                cpu,
                limit,
                cpu <= limit,
            )
        )
        out.append(
            (
                f"second <= {limit:g} CPU-seconds (machine-wide busy time)",
                busy,
                limit,
                busy <= limit,
            )
        )
    for h in fig.hostile:
        out.append(
            (f"{h.name}: verdict <= 3 x T_baseline + 30 s", h.wall, h.limit, h.wall <= h.limit)
        )
        out.append((f"{h.name}: verdict <= 60 s", h.wall, 60.0, h.wall <= 60))
    return out


def render(
    all_figures: list[Figures],
    service: list[dict[str, object]],
    info: dict[str, str],
    command: str,
    runs: int,
    loads: tuple[str, str],
    startup: list[costs.Startup] | None = None,
    import_cpu: float = 0.0,
) -> str:
    """The markdown of the "Verification speed" section."""
    head = " | ".join(PHASES)
    lines = [
        BEGIN,
        "## Verification speed (`make bench`)",
        "",
        f"Measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on {info['cores']} cores, "
        f"{info['memory']}, Docker {info['docker']}, kernel {info['kernel']}, runner on "
        f"Python {info['python']}; load average (1/5/15 min) {loads[0]} at the start, "
        f"{loads[1]} at the end. Command: `{command}`. Medians of {runs} runs after a "
        "warm-up; wall = the `verify-patch` process from start to exit (interpreter "
        "start-up included); phases are the verdict's `timings` (seconds, medians), "
        "`reruns` being the second look at changed tests.",
        "",
        "The machine is shared: other sessions' builds and test runs ran beside this "
        "one (see the load averages), so walls are upper bounds; CPU-seconds count only "
        "this job's processes and containers (the verify-patch process and its children, "
        "each container's cpuacct); the machine-wide busy time beside them adds the "
        "engine's daemons (about 0.3 CPU-s per container started) and anything else running.",
        "",
        f"| workload | figure | wall | CPU-s | {head} |",
        "| --- | --- | --- | --- | " + " | ".join("---" for _ in PHASES) + " |",
    ]
    blank = " | ".join("" for _ in PHASES)
    for fig in all_figures:
        name = f"{fig.workload.name} ({fig.workload.tests} tests)"
        bare = median(fig.bare)
        lines.append(f"| {name} | T_bare (host pytest) | {bare:.2f} | | {blank} |")
        rows = [("cold (no env image)", fig.cold), ("first", fig.first), ("second", fig.second)]
        for label, samples in rows:
            if samples:
                wall = median([s.wall for s in samples])
                cpu = median([s.cpu for s in samples])
                lines.append(
                    f"| {name} | {label} | {wall:.2f} | {cpu:.2f} | {breakdown(samples)} |"
                )
        overhead = median([s.wall - s.pytest_s for s in fig.second])
        pytest_s = median([s.pytest_s for s in fig.second])
        lines.append(
            f"| {name} | overhead (second - its pytest {pytest_s:.2f} s) | {overhead:.2f} | | "
            f"{blank} |"
        )
        runner_cpu = median([s.cpu_runner for s in fig.second])
        container_cpu = median([s.cpu - s.cpu_runner for s in fig.second])
        imports = f" (imports {import_cpu:.2f})" if import_cpu else ""
        lines.append(
            f"| {name} | second's CPU-s: verify-patch process {runner_cpu:.2f}{imports}, "
            f"containers {container_cpu:.2f} ({phase_cpu(fig.second)}) | | "
            f"{median([s.cpu for s in fig.second]):.2f} | {blank} |"
        )
        busy = median([s.busy for s in fig.second])
        lines.append(
            f"| {name} | second's machine-wide busy CPU-s (the engine's daemons and anything "
            f"else running included) | | {busy:.2f} | {blank} |"
        )
        suite_cpu = median([s.cpu_phases.get("candidate", 0.0) for s in fig.second])
        reruns_cpu = median([s.cpu_phases.get("candidate-rerun-early", 0.0) for s in fig.second])
        if import_cpu and suite_cpu:
            # what the evidence asks for at the least: the runner's own start, the suite once,
            # and a fresh sandboxed pytest process per re-run of the fix's tests (their
            # module; never more than the whole suite)
            rerun_cpu = min(suite_cpu, reruns_cpu / RERUNS) if reruns_cpu else suite_cpu
            floor = import_cpu + suite_cpu + RERUNS * rerun_cpu
            lines.append(
                f"| {name} | second's floor as verified today: runner imports {import_cpu:.2f} + "
                f"the suite {suite_cpu:.2f} + {RERUNS} re-runs x {rerun_cpu:.2f} | | "
                f"{floor:.2f} | {blank} |"
            )
    lines += _cost_lines(all_figures, startup or [])
    lines += [
        "",
        "| workload | target | measured | limit | met |",
        "| --- | --- | --- | --- | --- |",
    ]
    for fig in all_figures:
        for label, value, limit, met in targets(fig):
            mark = "yes" if met else f"**no** (+{value - limit:.2f} s)"
            lines.append(
                f"| {fig.workload.name} | {label} | {value:.2f} s | {limit:.2f} s | {mark} |"
            )
    rss = max((s.rss_mib for f in all_figures for s in f.cold + f.first + f.second), default=0)
    lines.append(
        f"| all | runner memory < 300 MiB (peak RSS of `verify-patch`) | {rss:.0f} MiB | "
        f"300 MiB | {'yes' if rss < 300 else '**no**'} |"
    )
    if startup:
        v = startup[0]
        mark = "yes" if v.wall <= 0.15 else f"**no** (+{v.wall - 0.15:.2f} s)"
        lines.append(
            f"| all | CLI start-up (`{v.command}`, wall; CPU {v.cpu:.2f} s) <= 0.15 s | "
            f"{v.wall:.2f} s | 0.15 s | {mark} |"
        )
    if service:
        lines += _service_lines(service)
    lines += [END, ""]
    return "\n".join(lines)


def phase_cpu(samples: list[Sample]) -> str:
    """Median container CPU-seconds per phase label, largest first: "candidate 0.71, …"."""
    phases = {p for s in samples for p in s.cpu_phases}
    medians = {p: median([s.cpu_phases.get(p, 0.0) for s in samples]) for p in phases}
    return ", ".join(f"{p} {v:.2f}" for p, v in sorted(medians.items(), key=lambda i: -i[1]))


def _cost_lines(all_figures: list[Figures], startup: list[costs.Startup]) -> list[str]:
    """CLI start-up and the hostile candidates' time to verdict."""
    lines = []
    if startup:
        lines += ["", "| CLI command | wall (median) | CPU-s (median) |", "| --- | --- | --- |"]
        lines += [f"| `{s.command}` | {s.wall:.3f} | {s.cpu:.3f} |" for s in startup]
    hostile = [(f.workload.name, h) for f in all_figures for h in f.hostile]
    if hostile:
        lines += [
            "",
            "Hostile candidates (the fix's module runs the code at import), time to verdict; "
            "deadline = the verdict's recorded `deadlines.suite_s` and its source:",
            "",
            "| workload | candidate | verdict | wall | deadline | 3 x T_baseline + 30 s | why |",
            "| --- | --- | --- | --- | --- | --- | --- |",
        ]
        for name, h in hostile:
            lines.append(
                f"| {name} | {h.name} | {h.status} | {h.wall:.1f} s | {h.deadline_s:g} s "
                f"({h.source}) | {h.limit:.1f} s | {h.reason} |"
            )
    return lines


def _service_lines(service: list[dict[str, object]]) -> list[str]:
    lines = [
        "",
        f"Service: `runner serve` on loopback (bench/load.py's tiny repository), "
        f"{service[0]['jobs']} jobs submitted at once after one warm-up job. Latency: "
        "run = a worker took the job → verdict (the target); queued = accepted → "
        "verdict (all jobs arrive at once, so it grows with the queue by design).",
        "",
        "| workers | jobs/min | run p50 | run p95 | p95/p50 | queued p50 | queued p95 | "
        "cores busy | service peak RSS | lost | wrong |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in service:
        ratio = float(r["run_p95_s"]) / max(float(r["run_p50_s"]), 1e-9)  # type: ignore[arg-type]
        lines.append(
            f"| {r['concurrency']} | {r['throughput_per_min']:.1f} | {r['run_p50_s']:.2f} s | "
            f"{r['run_p95_s']:.2f} s | {ratio:.2f} | {r['p50_s']:.1f} s | {r['p95_s']:.1f} s | "
            f"{r['cores_busy']:.2f} | {r['rss_mib']:.0f} MiB | {r['lost']} | {r['wrong']} |"
        )
    if len(service) >= 2:
        one, two = service[0], service[1]
        speedup = float(two["throughput_per_min"]) / float(one["throughput_per_min"])  # type: ignore[arg-type]
        ratio = float(two["run_p95_s"]) / max(float(two["run_p50_s"]), 1e-9)  # type: ignore[arg-type]
        lines += [
            "",
            f"Targets: concurrency 2 gives {speedup:.2f} x the jobs/min of concurrency 1 "
            f"(target >= 1.7: {'met' if speedup >= 1.7 else '**missed**'}); its run p95 is "
            f"{ratio:.2f} x p50 (target <= 1.3: {'met' if ratio <= 1.3 else '**missed**'}).",
        ]
    return lines


def write_section(path: Path, text: str) -> None:
    """Replace (or append) this script's section, leaving the rest of the file alone."""
    old = path.read_text(encoding="utf-8") if path.exists() else "# Benchmarks\n"
    pattern = re.compile(re.escape(BEGIN) + r".*?" + re.escape(END) + r"\n?", re.S)
    if pattern.search(old):
        new = pattern.sub(lambda _: text, old)
    else:
        head, sep, rest = old.partition("\n## ")
        new = head.rstrip() + "\n\n" + text + ("\n## " + rest if sep else "")
    path.write_text(new.rstrip() + "\n", encoding="utf-8")


def wait_quiet(limit: float = 1.0, patience_s: float = 1200) -> None:
    """Wait (up to ``patience_s``) for a 1-minute load average below ``limit``."""
    deadline = time.monotonic() + patience_s
    while time.monotonic() < deadline:
        one = float(Path("/proc/loadavg").read_text().split()[0])
        if one < limit:
            return
        print(f"waiting for a quiet machine (load {one:.2f})", flush=True)
        time.sleep(30)
    print("the machine stayed busy: measuring anyway (the load is in the report)", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=int(os.environ.get("BENCH_RUNS", "5")))
    parser.add_argument("--cold-runs", type=int, default=None, help="default: 1, or 2 from 5 runs")
    parser.add_argument("--service-jobs", type=int, default=20)
    parser.add_argument("--no-service", action="store_true")
    parser.add_argument(
        "--scaleout",
        action=argparse.BooleanOptionalAction,
        default=os.environ.get("BENCH_SCALEOUT", "1") != "0",
        help="the Celery scale-out bench, 1 and 2 workers (default on; BENCH_SCALEOUT=0: off)",
    )
    parser.add_argument(
        "--pr-runs",
        type=int,
        default=int(os.environ.get("BENCH_PR_RUNS", "1")),
        help="runs of the error → draft PR scene (make demo-pr); 0: off",
    )
    parser.add_argument(
        "--large",
        action=argparse.BooleanOptionalAction,
        default=os.environ.get("BENCH_LARGE", "1") != "0",
        help="large corpus suites, affected tests first (bench/largesuite.py; BENCH_LARGE=0: off)",
    )
    parser.add_argument("--workloads", default="flask,synthetic")
    parser.add_argument("--wait-quiet", action="store_true", help="wait for load < 1.0 first")
    parser.add_argument("--output", type=Path, default=ROOT / "docs" / "benchmarks.md")
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args()
    runs = max(1, args.runs)
    cold_runs = args.cold_runs if args.cold_runs is not None else (2 if runs >= 5 else 1)
    if args.wait_quiet:
        wait_quiet()
    command = " ".join(
        [f"BENCH_RUNS={runs}" if "BENCH_RUNS" in os.environ else "", "make bench"]
        if Path(sys.argv[0]).name == "run.py" and len(sys.argv) == 1
        else [Path(sys.executable).name, *sys.argv]
    ).strip()
    start_load = loadavg()
    started = time.monotonic()
    # An installed package has its bytecode compiled; an editable install under
    # PYTHONDONTWRITEBYTECODE=1 would compile runner/ from source in every process.
    compileall.compile_dir(ROOT / "runner", quiet=1)
    startup = costs.cli_startup()
    import_cpu = costs.import_cpu()
    print(f"[cli] {startup[0].command}: {startup[0].wall:.3f} s", flush=True)
    client = docker.from_env()
    prepare_state()
    makers = {"flask": flask_workload, "synthetic": synthetic_workload}
    all_figures = []
    with tempfile.TemporaryDirectory(prefix="fixrunner-bench-") as tmp:
        folder = Path(tmp)
        config = config_file(folder)
        share_base_image(client, config)
        for name in args.workloads.split(","):
            workload = makers[name](folder)
            all_figures.append(measure(client, config, workload, folder, runs, cold_runs))
    service = []
    if not args.no_service:
        for concurrency in (1, 2):
            print(f"[service] {args.service_jobs} jobs at concurrency {concurrency}", flush=True)
            # One kind of job (a verified fix), so latency spread is the runner's, not the mix's.
            service.append(load.run(args.service_jobs, concurrency, mix=(load.GOOD,)))
    text = render(
        all_figures,
        service,
        machine(),
        command,
        runs,
        (start_load, loadavg()),
        startup,
        import_cpu,
    )
    print(text)
    scaleout_text = ""
    if args.scaleout:
        print(f"[scaleout] {args.service_jobs} jobs with 1 and 2 Celery workers", flush=True)
        scaleout_load = loadavg()
        result = scaleout.run(args.service_jobs, scaleout.DEFAULT_BROKER)
        scaleout_text = scaleout.section(result, command, (scaleout_load, loadavg()))
        print(scaleout_text)
    pr_text = ""
    if args.pr_runs > 0:
        pr_load = loadavg()
        samples = errortopr.run(args.pr_runs)
        pr_text = errortopr.section(samples, command, (pr_load, loadavg()))
        print(pr_text)
    large_text = ""
    if args.large:
        cases = os.environ.get("BENCH_LARGE_CASES", largesuite.DEFAULT_CASES)
        runs_large = int(os.environ.get("BENCH_LARGE_RUNS", "1"))
        large_text = largesuite.run(cases, runs_large, None, command)
        print(large_text)
    print(f"total {time.monotonic() - started:.0f} s")
    if not args.no_write:
        write_section(args.output, text)
        if scaleout_text:
            scaleout.write_section(args.output, scaleout_text)
        if pr_text:
            errortopr.write_section(args.output, pr_text)
        if large_text:
            largesuite.write_section(args.output, large_text)
        print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
