"""What recording the per-test map costs a suite: no map, the map as of a git revision, now.

    .venv/bin/python bench/mapcost.py --repo BARE_GIT --commit SHA --image ENV_IMAGE
        [--python-path src] [--runs 3] [--old-rev main]

The suite runs in a network-less container of the runner's environment image for that
commit (``images.environment_image`` of a verify-patch job on it; nothing from the
repository runs on the host), the tree read-only, as pytest plus a small plugin that
loads ``fixrunner_testmap`` as the harness does. Variants, interleaved run by run:
``none`` (plain pytest), ``old`` (fixrunner_testmap.py at ``--old-rev``) and ``new`` (the
working tree's). Prints the medians of wall and CPU seconds (the pytest process and its
children, from inside the container: what the machine's load disturbs least) and whether
the old and new maps agree, test by test. Not a test; writes nothing outside a temp dir.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TESTMAP = "runner/verify/harness/fixrunner_testmap.py"
PLUGIN = """import json, os
import fixrunner_testmap

def pytest_configure(config):
    out = open(os.environ["MAP_OUT"], "w")
    def write(kind, **fields):
        out.write(json.dumps({"kind": kind, **fields}) + "\\n")
        out.flush()
    config.pluginmanager.register(fixrunner_testmap.TestMap("/work", write), "fixrunner-testmap")
"""
TIMED = """import os, sys, time
import pytest
started, before = time.monotonic(), os.times()
code = pytest.main(sys.argv[1:])
after = os.times()
cpu = sum(after[i] - before[i] for i in range(4))
print("MAPCOST", round(time.monotonic() - started, 3), round(cpu, 3), int(code))
"""


def run_suite(
    image: str, tree: Path, harness: Path | None, out: Path, python_path: str
) -> tuple[float, float]:
    """One pytest run in the image: (wall, CPU) seconds as measured inside the container."""
    tools = out.parent.parent / "tools"
    argv = ["docker", "run", "--rm", "--network", "none", "--tmpfs", "/tmp:exec"]
    argv += ["-v", f"{tree}:/work:ro", "-v", f"{tools}:/tools:ro", "-v", f"{out.parent}:/out"]
    paths = ["/tools", python_path]
    if harness is not None:
        argv += ["-v", f"{harness}:/harness:ro", "-e", f"MAP_OUT=/out/{out.name}"]
        paths.insert(0, "/harness")
    argv += [
        "-w",
        "/work",
        "-e",
        "PYTHONDONTWRITEBYTECODE=1",
        "-e",
        f"PYTHONPATH={':'.join(paths)}",
    ]
    argv += [image, "python", "/tools/timed.py", "-q", "-p", "no:cacheprovider"]
    argv += ["-p", "bench_map"] if harness is not None else []
    proc = subprocess.run(argv, capture_output=True, text=True, check=False)
    for line in proc.stdout.splitlines():
        if line.startswith("MAPCOST "):
            _, wall, cpu, _code = line.split()
            return float(wall), float(cpu)
    raise SystemExit(f"no timing from the run:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")


def read_map(path: Path) -> dict[str, set[tuple[str, int]]]:
    """Per test id, the functions it ran as (file, first line)."""
    for line in path.read_text(encoding="utf-8").splitlines():
        record = json.loads(line)
        if record.get("kind") == "testmap":
            files, units = record["files"], record["units"]
            return {
                test: {(files[units[u][0]], units[u][1]) for u in ids}
                for test, ids in record["functions"].items()
            }
    raise SystemExit(f"{path}: no testmap record")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repo", required=True, type=Path, help="a git repository (bare is fine)")
    parser.add_argument("--commit", required=True)
    parser.add_argument("--image", required=True, help="the runner's environment image for it")
    parser.add_argument("--python-path", default=".", help="relative to the tree, e.g. src")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--old-rev", default="main", help="revision of fixrunner_testmap.py")
    parser.add_argument(
        "--variants", default="none,old,new", help="which of none, old, new to run (in order)"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="mapcost-") as tmp:
        root = Path(tmp)
        tree, tools, out = root / "tree", root / "tools", root / "out"
        for folder in (tree, tools, out):
            folder.mkdir()
        out.chmod(0o777)
        archive = subprocess.run(
            ["git", f"--git-dir={args.repo}", "archive", args.commit],
            capture_output=True,
            check=True,
        ).stdout
        subprocess.run(["tar", "-x", "-C", str(tree)], input=archive, check=True)
        (tools / "timed.py").write_text(TIMED, encoding="utf-8")
        harnesses: dict[str, Path | None] = {}
        for name in args.variants.split(","):
            if name not in ("none", "old", "new"):
                raise SystemExit(f"unknown variant {name!r}")
            folder = root / name
            folder.mkdir()
            (folder / "bench_map.py").write_text(PLUGIN, encoding="utf-8")
            harnesses[name] = None if name == "none" else folder
        for name, harness in harnesses.items():
            if harness is None:
                continue
            if name == "old":
                text = subprocess.run(
                    ["git", "-C", str(ROOT), "show", f"{args.old_rev}:{TESTMAP}"],
                    capture_output=True,
                    text=True,
                    check=True,
                ).stdout
            else:
                text = (ROOT / TESTMAP).read_text(encoding="utf-8")
            (harness / "fixrunner_testmap.py").write_text(text, encoding="utf-8")
        walls: dict[str, list[float]] = {n: [] for n in harnesses}
        cpus: dict[str, list[float]] = {n: [] for n in harnesses}
        for i in range(args.runs):
            for name, harness in harnesses.items():
                wall, cpu = run_suite(
                    args.image, tree, harness, out / f"{name}-{i}.jsonl", args.python_path
                )
                walls[name].append(wall)
                cpus[name].append(cpu)
                print(f"run {i + 1} {name}: wall {wall:.1f} s, CPU {cpu:.1f} s", flush=True)
        base = "none" if "none" in harnesses else next(iter(harnesses))
        base_wall, base_cpu = statistics.median(walls[base]), statistics.median(cpus[base])
        for name in harnesses:
            wall, cpu = statistics.median(walls[name]), statistics.median(cpus[name])
            print(
                f"{name}: median wall {wall:.1f} s ({wall / base_wall:.2f} x {base}), "
                f"CPU {cpu:.1f} s ({cpu / base_cpu:.2f} x) over {args.runs} runs"
            )
        if not {"old", "new"} <= set(harnesses):
            return 0
        before, after = read_map(out / "old-0.jsonl"), read_map(out / "new-0.jsonl")
        same = sum(1 for t in before if after.get(t) == before[t])
        print(f"maps: {len(before)} tests (old), {len(after)} (new); identical for {same}")
        differ = [t for t in sorted(set(before) | set(after)) if before.get(t) != after.get(t)]
        for test in differ[:10]:
            gone = sorted(before.get(test, set()) - after.get(test, set()))[:5]
            extra = sorted(after.get(test, set()) - before.get(test, set()))[:5]
            print(f"  differs: {test}: only old {gone}; only new {extra}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
