"""Cost that grows with the patch: large real suites from the accuracy corpus.

    .venv/bin/python bench/largesuite.py [--cases ID,ID,...] [--runs N] [--no-write]

For each corpus case (default: the packaging case, 60k+ tests, and the two next largest
suites of the corpus), from the fetched mirror ($ACCURACY_MIRRORS, default /work/.mirror):

- T_bare: plain pytest on the fixed tree, in a network-less container of the runner's
  environment image for that commit (nothing from the repository runs on the host);
- one-shot: plain ``verify-patch`` with the upstream fix on an empty baseline cache: its
  baseline records no map (``[affected] record_map = "auto"``);
- first: ``verify-patch --record-map`` with the upstream fix (source + tests) on an empty
  baseline cache: baseline (recording the per-test map) beside the candidate;
- second: the same candidate again, the baseline and its map cached: the affected tests
  run first; the time to the early answer (the verdict's ``early.seconds``) and to the
  verdict;
- noop: a candidate that leaves the source alone (the tests only): rejected; again the
  early answer's time and whether it agreed with the verdict.

The map's overhead is the first run's baseline phase (with the map) against its candidate
phase (the same suite without it, run beside it). Medians of ``--runs`` (env
BENCH_LARGE_RUNS, default 1: a large suite takes minutes). Writes its own section of
docs/benchmarks.md. Not a test.
"""

from __future__ import annotations

import argparse
import difflib
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
CORPUS = ROOT / "bench" / "accuracy" / "corpus.toml"
MIRRORS = Path(os.environ.get("ACCURACY_MIRRORS", "/work/.mirror"))
STATE = Path(os.environ.get("BENCH_LARGE_STATE_DIR", "~/.cache/fixrunner-bench-large")).expanduser()
DEFAULT_CASES = "packaging-4e79787a,click-1a4d8c1b,jinja-66587ce9"
BEGIN = "<!-- bench:largesuite.py begin -->"
END = "<!-- bench:largesuite.py end -->"
# A large suite in a sandbox sharing two cores: the default 600 s would cut it short.
POLICY = """name = "bench-large"
reruns = 2
[limits]
test_timeout_s = 3600
job_timeout_s = 7200
"""


@dataclass
class Run:
    """One verify-patch job."""

    wall: float
    status: str
    early_seconds: float | None
    early_selection: str
    early_selected: int
    early_reason: str
    early_failed: int
    agrees: bool | None
    timings: dict[str, float]
    tests: int


@dataclass
class CaseFigures:
    """Every figure of one case."""

    case: str
    tests: int = 0
    bare: list[float] = field(default_factory=list)
    oneshot: list[Run] = field(default_factory=list)
    first: list[Run] = field(default_factory=list)
    second: list[Run] = field(default_factory=list)
    noop: list[Run] = field(default_factory=list)


def git(*args: str) -> str:
    """git without user configuration or hooks."""
    env = {**os.environ, "GIT_CONFIG_GLOBAL": "/dev/null", "GIT_CONFIG_NOSYSTEM": "1"}
    argv = ["git", "-c", "core.hooksPath=/dev/null", *args]
    return subprocess.run(argv, env=env, check=True, capture_output=True, text=True).stdout


def load_case(case_id: str) -> dict[str, object]:
    """The corpus entry ``case_id``."""
    for case in tomllib.loads(CORPUS.read_text(encoding="utf-8"))["case"]:
        if case["id"] == case_id:
            return dict(case)
    raise SystemExit(f"no case {case_id!r} in {CORPUS}")


def case_repo(case: dict[str, object]) -> Path:
    """A bare repository holding the fix commit (and so its base), from the fetched mirror."""
    owner_name = str(case["repo"]).removeprefix("https://github.com/")
    repo = STATE / "repos" / (owner_name.replace("/", "+") + ".git")
    if not repo.exists():
        git("init", "-q", "--bare", str(repo))
    mirror = MIRRORS / owner_name.replace("/", "+") / "repo"
    source = str(mirror) if mirror.is_dir() else str(case["repo"])
    ref = f"refs/heads/case-{case['id']}"
    git("-C", str(repo), "fetch", "-q", source, f"{case['fix']}:{ref}")
    return repo


def verify(
    repo: Path, base: str, patch: str, test_patch: str | None, folder: Path, *extra: str
) -> Run:
    """One verify-patch process on the bench's own state dir."""
    patch_file = folder / f"patch-{time.monotonic_ns()}.diff"
    patch_file.write_text(patch, encoding="utf-8")
    argv = [str(BIN / "verify-patch"), "--repo", str(repo), "--base", base]
    argv += ["--patch", str(patch_file), "--json", "--policy", str(folder / "policy.toml")]
    argv += extra
    if test_patch is not None:
        tests_file = patch_file.with_suffix(".tests.diff")
        tests_file.write_text(test_patch, encoding="utf-8")
        argv += ["--test-patch", str(tests_file)]
    env = {k: v for k, v in os.environ.items() if not k.startswith("RUNNER_")}
    env["RUNNER_PATHS__STATE_DIR"] = str(STATE / "runner")
    env["RUNNER_ENGINE__INSTANCE"] = "bench-large"
    env["RUNNER_SECURITY__ALLOW_LOCAL_REPOS"] = "true"
    started = time.monotonic()
    proc = subprocess.run(argv, capture_output=True, text=True, env=env, check=False)
    wall = time.monotonic() - started
    try:
        verdict = json.loads(proc.stdout)
    except json.JSONDecodeError:
        raise SystemExit(f"verify-patch printed no verdict:\n{proc.stderr[-3000:]}") from None
    early = verdict.get("early") or {}
    return Run(
        wall=wall,
        status=verdict["status"],
        early_seconds=early.get("seconds"),
        early_selection=early.get("selection", ""),
        early_selected=int(early.get("selected", 0)),
        early_reason=str(early.get("reason", "")),
        early_failed=len(early.get("failed", [])),
        agrees=early.get("agrees"),
        timings=verdict.get("timings", {}),
        tests=int(verdict.get("tests", {}).get("candidate", {}).get("total", 0)),
    )


def time_bare(image: str, tree: Path, python_path: str, runs: int) -> list[float]:
    """Plain pytest on ``tree`` in a network-less container of ``image``, ``runs`` times."""
    argv = ["docker", "run", "--rm", "--network", "none", "-v", f"{tree}:/work:ro", "-w", "/work"]
    argv += ["-e", f"PYTHONPATH={python_path}", image]
    argv += ["python", "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:randomly"]
    times = []
    for _ in range(runs):
        started = time.monotonic()
        subprocess.run(argv, capture_output=True, check=False)
        times.append(time.monotonic() - started)
    return times


def measure(case_id: str, runs: int, folder: Path) -> CaseFigures:
    """first, second, noop and T_bare of one case."""
    case = load_case(case_id)
    repo = case_repo(case)
    base, fix = str(case["base"]), str(case["fix"])
    source = [str(p) for p in case["source"]]  # type: ignore[attr-defined]
    tests = [str(p) for p in case["tests"]]  # type: ignore[attr-defined]
    combined = git("-C", str(repo), "diff", base, fix, "--", *source, *tests)
    test_part = git("-C", str(repo), "diff", base, fix, "--", *tests)
    # the noop candidate: one comment line added to the first source file, tests as given
    first_file = source[0]
    text = git("-C", str(repo), "show", f"{base}:{first_file}")
    noop = _add_comment(first_file, text)
    figures = CaseFigures(case_id)
    for i in range(runs):
        shutil.rmtree(STATE / "runner" / "baselines", ignore_errors=True)
        figures.oneshot.append(verify(repo, base, combined, None, folder))
        shutil.rmtree(STATE / "runner" / "baselines", ignore_errors=True)
        # a one-shot verify-patch records no map unless asked: the later jobs select from it
        figures.first.append(verify(repo, base, combined, None, folder, "--record-map"))
        figures.second.append(verify(repo, base, combined, None, folder))
        figures.noop.append(verify(repo, base, noop, test_part, folder))
        print(f"[{case_id}] run {i + 1}: {_line(figures, -1)}", flush=True)
    figures.tests = figures.first[-1].tests
    image = _last_image()
    tree = folder / f"{case_id}-tree"
    tree.mkdir()
    archive = subprocess.run(
        ["git", "-C", str(repo), "archive", fix], capture_output=True, check=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(tree)], input=archive, check=True)
    figures.bare = time_bare(image, tree, str(case.get("python_path", ".")), runs)
    return figures


def _add_comment(path: str, text: str) -> str:
    """A diff adding one comment line after the file's first line."""
    before = text.splitlines(keepends=True)
    after = [*before[:1], "# bench: a candidate that changes nothing\n", *before[1:]]
    return "".join(difflib.unified_diff(before, after, f"a/{path}", f"b/{path}"))


def _last_image() -> str:
    jobs = sorted(
        (STATE / "runner" / "jobs").glob("*/verdict.json"), key=lambda p: p.stat().st_mtime
    )
    verdict = json.loads(jobs[-1].read_text(encoding="utf-8"))
    return str(verdict["images"]["environment_image"])


def median(values: list[float]) -> float:
    return statistics.median(values) if values else 0.0


def _early(runs: list[Run]) -> str:
    """The early answer's median time, or why there was none (everything selected)."""
    ran = [r for r in runs if r.early_selection == "affected" and r.early_seconds is not None]
    if not ran:
        return "none: " + (runs[0].early_reason if runs else "no run")
    selected = median([r.early_selected for r in ran])
    return f"{median([r.early_seconds or 0.0 for r in ran]):.1f} s ({selected:.0f} tests)"


def _line(f: CaseFigures, i: int) -> str:
    first, second, noop = f.first[i], f.second[i], f.noop[i]
    return (
        f"one-shot {f.oneshot[i].wall:.1f} s; first {first.wall:.1f} s ({first.status}); "
        f"second {second.wall:.1f} s, early "
        f"{second.early_seconds} s ({second.early_selected} selected); noop {noop.wall:.1f} s "
        f"({noop.status}), early {noop.early_seconds} s"
    )


def render(all_figures: list[CaseFigures], command: str, loads: tuple[str, str]) -> str:
    """This module's section of docs/benchmarks.md."""
    out = [
        BEGIN,
        "## Cost that grows with the patch (large suites, affected tests first)",
        "",
        f"Command: `{command}` · {datetime_now()} · load average (1/5/15 min) "
        f"{loads[0]} at the start, {loads[1]} at the end. **The machine was shared and busy** "
        "(other engineers' test runs and builds on its 2 cores): the figures are what a "
        "loaded machine gives, medians of the runs shown, not a quiet machine's.",
        "",
        "| case | tests | T_bare | first | second: early answer | second: verdict "
        "| noop: early answer | noop: verdict | baseline with map / candidate without "
        "| one-shot (no map) | its baseline / candidate |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for f in all_figures:
        ratio, plain = (
            median(
                [
                    r.timings.get("baseline", 0) / r.timings["candidate"]
                    for r in runs
                    if r.timings.get("candidate")
                ]
            )
            for runs in (f.first, f.oneshot)
        )
        walls = [median([r.wall for r in runs]) for runs in (f.first, f.second, f.noop)]
        out.append(
            f"| {f.case} | {f.tests} | {median(f.bare):.1f} s | {walls[0]:.1f} s "
            f"| {_early(f.second)} | {walls[1]:.1f} s | {_early(f.noop)} | {walls[2]:.1f} s "
            f"| {ratio:.2f} x | {median([r.wall for r in f.oneshot]):.1f} s | {plain:.2f} x |"
        )
    answers = [r for f in all_figures for r in (*f.second, *f.noop) if r.agrees is not None]
    agreed = sum(1 for r in answers if r.agrees)
    out += [
        "",
        f"Early answer agreed with the final verdict in {agreed} of {len(answers)} jobs "
        "(second and noop; a first run has no map yet, so no early answer).",
        "",
        END,
        "",
    ]
    return "\n".join(out)


def datetime_now() -> str:
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())


def loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def write_section(path: Path, text: str) -> None:
    """Replace (or append) this module's section, leaving the rest of the file alone."""
    old = path.read_text(encoding="utf-8") if path.exists() else "# Benchmarks\n"
    pattern = re.compile(re.escape(BEGIN) + r".*?" + re.escape(END) + r"\n?", re.S)
    new = pattern.sub(lambda _: text, old) if pattern.search(old) else old.rstrip() + "\n\n" + text
    path.write_text(new.rstrip() + "\n", encoding="utf-8")


def run(cases: str, runs: int, output: Path | None, command: str) -> str:
    """Measure ``cases`` and (unless ``output`` is None) write the section; returns its text."""
    STATE.mkdir(parents=True, exist_ok=True)
    start = loadavg()
    figures = []
    with tempfile.TemporaryDirectory(prefix="bench-large-") as tmp:
        folder = Path(tmp)
        (folder / "policy.toml").write_text(POLICY, encoding="utf-8")
        for case_id in cases.split(","):
            figures.append(measure(case_id.strip(), runs, folder))
    text = render(figures, command, (start, loadavg()))
    if output is not None:
        write_section(output, text)
    return text


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", default=os.environ.get("BENCH_LARGE_CASES", DEFAULT_CASES))
    parser.add_argument("--runs", type=int, default=int(os.environ.get("BENCH_LARGE_RUNS", "1")))
    parser.add_argument("--output", type=Path, default=ROOT / "docs" / "benchmarks.md")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    command = " ".join([Path(sys.executable).name, *sys.argv])
    text = run(args.cases, max(1, args.runs), None if args.no_write else args.output, command)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
