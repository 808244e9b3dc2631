"""`make bench`, last part: the time from a production error's first event to its draft PR.

Runs ``examples/demo-pr.sh`` (the Flask example under the real Sentry SDK → `runner serve`
→ one fix job against the scripted loopback Messages API, two attempts → a branch in a
bare remote → a draft PR on the loopback GitHub server) ``runs`` times and reports the
first event → PR seconds and the fix job's own seconds. Writes the "Error to pull
request" section of docs/benchmarks.md.
"""

from __future__ import annotations

import re
import statistics
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BEGIN = "<!-- bench:errortopr.py begin -->"
END = "<!-- bench:errortopr.py end -->"
_LINE = re.compile(r"first event → PR: ([\d.]+) s \(fix job ([\d.]+) s over (\d+) attempt")


def run(runs: int) -> list[tuple[float, float, int]]:
    """(first event → PR, fix job seconds, attempts) of each run of the demo."""
    samples = []
    for n in range(1, runs + 1):
        print(f"[error→PR] run {n}/{runs}", flush=True)
        done = subprocess.run(
            ["bash", str(ROOT / "examples" / "demo-pr.sh")],
            capture_output=True,
            text=True,
            timeout=1800,
            check=False,
        )
        match = _LINE.search(done.stdout)
        if done.returncode != 0 or match is None:
            raise RuntimeError(f"demo-pr failed (exit {done.returncode}): {done.stdout[-1500:]}")
        samples.append((float(match[1]), float(match[2]), int(match[3])))
    return samples


def section(samples: list[tuple[float, float, int]], command: str, loads: tuple[str, str]) -> str:
    """The markdown of the section."""
    to_pr = [s[0] for s in samples]
    fix = [s[1] for s in samples]
    return "\n".join(
        [
            BEGIN,
            "## Error to pull request",
            "",
            f"`{command}`: `examples/demo-pr.sh` {len(samples)} time(s) — the Flask example "
            "crashes three times under the real Sentry SDK, `runner serve` groups the events "
            "and runs one fix job (scripted loopback Messages API: attempt 1 rejected, "
            "attempt 2 verified), pushes the fix to a bare remote and opens a draft PR on the "
            f"loopback GitHub server. Load average before/after: {loads[0]} / {loads[1]}.",
            "",
            "| figure | median | min | max |",
            "| --- | --- | --- | --- |",
            f"| first event → draft PR (s) | {statistics.median(to_pr):.1f} | "
            f"{min(to_pr):.1f} | {max(to_pr):.1f} |",
            f"| of which the fix job (s) | {statistics.median(fix):.1f} | "
            f"{min(fix):.1f} | {max(fix):.1f} |",
            "",
            "The rest is ingest, the fix job's queueing and checkout, and the commit, push "
            "and PR requests.",
            END,
        ]
    )


def write_section(path: Path, text: str) -> None:
    """Replace (or append) this section, leaving the rest of the file alone."""
    old = path.read_text(encoding="utf-8") if path.exists() else "# Benchmarks\n"
    pattern = re.compile(re.escape(BEGIN) + r".*?" + re.escape(END) + r"\n?", re.S)
    new = (
        pattern.sub(lambda _: text + "\n", old)
        if pattern.search(old)
        else old.rstrip() + "\n\n" + text
    )
    path.write_text(new.rstrip() + "\n", encoding="utf-8")
