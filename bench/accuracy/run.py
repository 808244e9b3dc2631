"""`make accuracy`: the corpus checked bare, then verify-patch three ways per case.

    .venv/bin/python bench/accuracy/run.py [--cases ID ...] [--limit N] [--force] [--record]
                        [--stage all|bare|verify|report] [--output docs/accuracy.md]

Resumable: each case's bare truth and verdicts are kept under $ACCURACY_STATE_DIR
(default ~/.cache/fixrunner-accuracy/results/<id>.json) and a finished step is not run
again (``--force`` re-runs). Repositories come from the fetched mirror
($ACCURACY_MIRRORS/<owner>+<name>/repo, default /work/.mirror) or else the upstream URL;
only the objects reachable from each fix commit are copied. The runner gets its own
state dir, so environment images and wheels are cached between runs. Not a test.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import bare
from corpus import CORPUS, HEADER, Case, WayResult, dump_corpus, load_corpus, noop_patch
from report import write_report

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
STATE = Path(os.environ.get("ACCURACY_STATE_DIR", "~/.cache/fixrunner-accuracy")).expanduser()
MIRRORS = Path(os.environ.get("ACCURACY_MIRRORS", "/work/.mirror"))


def git(*args: str, check: bool = True) -> str:
    got = subprocess.run(["git", *args], capture_output=True, text=True, check=False)
    if check and got.returncode != 0:
        raise RuntimeError(f"git {' '.join(args)}: {got.stderr.strip()}")
    return got.stdout


def project_repo(case: Case) -> Path:
    """A bare repository holding only what each of the project's fix commits reaches."""
    repo = STATE / "repos" / (case.owner_name.replace("/", "+") + ".git")
    if not repo.exists():
        git("init", "-q", "--bare", str(repo))
    ref = f"refs/heads/case-{case.id}"
    if not git("-C", str(repo), "rev-parse", "-q", "--verify", ref, check=False).strip():
        mirror = MIRRORS / case.owner_name.replace("/", "+") / "repo"
        source = str(mirror) if mirror.is_dir() else case.repo
        git("-C", str(repo), "fetch", "-q", source, f"{case.fix}:{ref}")
        git("-C", str(repo), "symbolic-ref", "HEAD", ref)
    return repo


def load_result(case: Case) -> dict[str, object]:
    path = STATE / "results" / f"{case.id}.json"
    return json.loads(path.read_text()) if path.exists() else {}


def save_result(case: Case, result: dict[str, object]) -> None:
    path = STATE / "results" / f"{case.id}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=1, sort_keys=True))


def bare_stage(case: Case, force: bool) -> dict[str, object]:
    result = load_result(case)
    if "bare" in result and not force:
        return result
    result["bare"] = bare_truth(case)
    result.pop("ways", None)
    save_result(case, result)
    return result


def bare_truth(case: Case) -> dict[str, object]:
    """The case's fail-to-pass ids found bare on the case's Python, with the log tail."""
    started = time.monotonic()
    ids, log = bare.check(case, project_repo(case), STATE)
    print(f"{case.id}: bare fail-to-pass {len(ids)} on Python {case.python}", file=sys.stderr)
    return {
        "fail_to_pass": ids,
        "log": log,
        "python": case.python,
        "seconds": round(time.monotonic() - started, 1),
    }


def minor(version: str) -> str:
    """``3.9`` of ``3.9.2``; empty when the text is not a version."""
    parts = version.split(".")
    return ".".join(parts[:2]) if len(parts) >= 2 and all(p.isdigit() for p in parts[:2]) else ""


def truth_on_runners_python(case: Case, result: dict[str, object]) -> None:
    """Take the truth again on the Python the runner chose, when it is not the bare one's.

    A fix can be right on one Python and moot on another (an interpreter's own behaviour,
    gc counts, error messages): the verdicts are graded against a truth taken on their
    own Python, whatever the case's default.
    """
    ways = result.get("ways", {})
    bare_result = result.get("bare", {})
    if not isinstance(ways, dict) or not isinstance(bare_result, dict):
        return
    chosen = {minor(str(w.get("python", ""))) for w in ways.values() if isinstance(w, dict)}
    chosen.discard("")
    truth_python = str(bare_result.get("python", case.python))
    if len(chosen) != 1 or truth_python in chosen:
        return
    (python,) = chosen
    first = {k: v for k, v in bare_result.items() if k != "log"}
    result["bare"] = {**bare_truth(case.model_copy(update={"python": python})), "first": first}
    save_result(case, result)


def env_images() -> set[str]:
    out = subprocess.run(
        ["docker", "images", "--format", "{{.Repository}}:{{.Tag}}"],
        capture_output=True, text=True, check=False,
    ).stdout  # fmt: skip
    return set(out.split())


def verify(case: Case, repo: Path, way: str, patch: str, test_patch: str | None) -> WayResult:
    with tempfile.TemporaryDirectory(prefix="acc-patch-") as tmp:
        patch_file = Path(tmp) / "candidate.diff"
        patch_file.write_text(patch)
        cmd = [str(BIN / "verify-patch"), "--repo", str(repo), "--base", case.base,
               "--patch", str(patch_file), "--json"]  # fmt: skip
        if test_patch is not None:
            (Path(tmp) / "tests.diff").write_text(test_patch)
            cmd += ["--test-patch", str(Path(tmp) / "tests.diff")]
        env = dict(os.environ, RUNNER_PATHS__STATE_DIR=str(STATE / "runner"))
        started = time.monotonic()
        got = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
        seconds = round(time.monotonic() - started, 1)
    try:
        verdict = json.loads(got.stdout)
    except json.JSONDecodeError:
        return WayResult(way=way, status="crash", summary=got.stderr[-500:], seconds=seconds)  # type: ignore[arg-type]
    env_info = verdict.get("images", {}).get("environment", {})
    return WayResult(
        way=way,  # type: ignore[arg-type]
        status=verdict["status"],
        summary=verdict.get("summary", "")[:600],
        fail_to_pass=verdict.get("tests", {}).get("fail_to_pass", []),
        failed_checks=[c["name"] for c in verdict.get("checks", []) if not c.get("passed", True)],
        seconds=seconds,
        env_seconds=float(verdict.get("timings", {}).get("env", 0.0)),
        python=str(env_info.get("python", "")),
        resolution=str(env_info.get("resolution", "")),
        image=verdict.get("images", {}).get("environment_image", ""),
        tools={str(k): str(v) for k, v in env_info.get("tools", {}).items()},
        job_id=str(verdict.get("job_id", "")),
    )


def verify_stage(case: Case, result: dict[str, object], force: bool) -> None:
    ids = result["bare"]["fail_to_pass"]  # type: ignore[index]
    if not ids:
        return
    case = case.model_copy(update={"fail_to_pass": ids})
    ways: dict[str, object] = dict(result.get("ways", {}) if not force else {})  # type: ignore[call-overload]
    repo = project_repo(case)
    paths_src, paths_tests = case.source, case.tests
    source = git("-C", str(repo), "diff", case.base, case.fix, "--", *paths_src)
    tests = git("-C", str(repo), "diff", case.base, case.fix, "--", *paths_tests)
    combined = git("-C", str(repo), "diff", case.base, case.fix, "--", *paths_src, *paths_tests)
    first = paths_src[0]
    noop = noop_patch(first, git("-C", str(repo), "show", f"{case.base}:{first}"))
    plan = {"fix": (source, tests), "noop": (noop, tests), "combined": (combined, None)}
    for way, (patch, test_patch) in plan.items():
        if way in ways:
            continue
        before = env_images()
        got = verify(case, repo, way, patch, test_patch)
        if got.image and got.image not in before and "cold_build_s" not in result:
            result["cold_build_s"] = got.env_seconds
        ways[way] = got.model_dump()
        result["ways"] = ways
        save_result(case, result)
        print(f"{case.id}: {way} {got.status} ({got.seconds}s)", file=sys.stderr)


def drop_reason(log: str) -> str:
    """Why a bare check found no fail-to-pass test, from pytest's last summary line."""
    lines = log.strip().splitlines()
    last = lines[-1] if lines else ""
    crashed = any(mark in log for mark in ("Interrupted", "Traceback", '  File "'))
    if "error" in last or crashed:
        # pytest's summary line of a collection error names the module and the exception.
        errors = [line for line in lines if line.startswith("ERROR ") and " - " in line]
        said = errors[0] if errors else last.strip()
        return f"bare: the run without the fix could not run the tests ({said[:160]})"
    return "bare: the test part passes without the source part"


def record_bare(cases: list[Case]) -> None:
    """Write each checked case's bare fail-to-pass ids (or why it was dropped) to the corpus."""
    updated = []
    for case in cases:
        bare_result = load_result(case).get("bare")
        if isinstance(bare_result, dict):
            ids = list(bare_result.get("fail_to_pass", []))
            dropped = "" if ids else drop_reason(str(bare_result.get("log", "")))
            case = case.model_copy(update={"fail_to_pass": ids, "excluded": dropped})
        updated.append(case)
    CORPUS.write_text(dump_corpus(updated, HEADER))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--cases", nargs="*", default=None, help="case ids, run in this order (default: all)"
    )
    parser.add_argument("--limit", type=int, default=None, help="only the first N cases")
    parser.add_argument("--stage", choices=["all", "bare", "verify", "report"], default="all")
    parser.add_argument("--force", action="store_true", help="re-run finished steps")
    parser.add_argument("--record", action="store_true", help="write bare ids to the corpus")
    parser.add_argument("--output", type=Path, default=ROOT / "docs" / "accuracy.md")
    args = parser.parse_args(argv)
    cases = load_corpus()
    if args.cases:  # in the order given
        by_id = {c.id: c for c in cases}
        unknown = [i for i in args.cases if i not in by_id]
        if unknown:
            parser.error(f"no such case in the corpus: {', '.join(unknown)}")
        cases = [by_id[i] for i in args.cases]
    if args.limit:
        cases = cases[: args.limit]
    for case in cases:
        if case.excluded or args.stage == "report":
            continue
        try:
            result = bare_stage(case, args.force)
            if args.stage in ("all", "verify"):
                verify_stage(case, result, args.force)
                truth_on_runners_python(case, result)
        except (RuntimeError, subprocess.SubprocessError, OSError) as exc:
            print(f"{case.id}: {exc}", file=sys.stderr)
    if args.record:
        record_bare(load_corpus())
    results = {c.id: load_result(c) for c in load_corpus()}
    write_report(load_corpus(), results, args.output)
    print(f"wrote {args.output}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
