"""flake8 on the changed files of both trees, in one sandbox."""

from __future__ import annotations

import shlex
import threading
import tomllib
from pathlib import Path

from runner.common.files import read_inside, read_regular
from runner.core.lint import adds_noqa, noqa_findings, ruff_flake8_options
from runner.core.suite import (
    FLAKE8_FORMAT,
    lint_diff,
    parse_flake8,
)
from runner.models import (
    LintSummary,
    Mount,
    ParsedPatch,
    RunSpec,
)
from runner.verify.caches import (
    lint_key,
    load_text,
    store_text,
)
from runner.verify.job import Job
from runner.verify.jobfolder import keep_log, results_dir
from runner.verify.runs import RESULTS
from runner.verify.runtime import Runtime

LINT_MAX_BYTES = 20 * 2**20
# setup.cfg or tox.ini read for a [flake8] section; a real one is a few KiB.
LINT_CONFIG_MAX_BYTES = 2**20


def run_lint(
    state: Job,
    runtime: Runtime,
    baseline_dir: Path,
    candidate_dir: Path,
    baseline_tree: str,
    parsed: ParsedPatch,
    cancel: threading.Event | None,
) -> LintSummary:
    """flake8 on both trees' changed files; new findings, fixed ones, and what noqa hides."""
    lint_policy = state.policy.lint
    files = sorted(f.path for f in parsed.files if f.path.endswith(".py") and f.status != "deleted")
    if not files:
        return lint_diff([], [], parsed, lint_policy.blocking_select)
    # Lint by the project's rules, as the baseline declares them: its flake8 config, else
    # its ruff select/ignore, else ours with only real errors blocking (issue 17, class 9).
    options = ["--format", FLAKE8_FORMAT, "--exit-zero"]
    blocking = list(lint_policy.blocking_select)
    if not _has_flake8_config(baseline_dir):
        ruff = _ruff_options(baseline_dir)
        if ruff is not None:
            options += ruff
        else:
            blocking = list(lint_policy.unconfigured_blocking)
            options += [
                f"--select={','.join(lint_policy.default_select)}",
                f"--extend-ignore={','.join(lint_policy.default_extend_ignore)}",
                f"--max-line-length={lint_policy.default_max_line_length}",
            ]
    lint_policy = lint_policy.model_copy(update={"blocking_select": blocking})
    old_files = [
        (f.old_path or f.path)
        for f in parsed.files
        if f.path.endswith(".py") and f.status not in ("added",)
    ]
    old_files = [p for p in old_files if (baseline_dir / p).is_file()]
    # The baseline's findings depend only on its tree, the image, the options and the
    # files: a later candidate on the same baseline reuses them.
    env_id = state.env.id if state.env else ""
    key = lint_key(baseline_tree, env_id, options, old_files) if old_files else None
    cached = load_text(runtime, f"{key}.lint.txt") if key else ""
    # One container lints both trees: flake8 never imports the code it reads. Findings go
    # to files in the results folder (--output-file), never read back from stdout.
    results = results_dir(state, "lint", runtime)
    parts = []
    if cached is None:
        parts.append(_flake8("/base", "baseline", options + old_files))
    parts.append(_flake8("/cand", "candidate", options + files))
    if adds_noqa(parsed):
        # Again without noqa: what only this run reports is what noqa comments hide.
        parts.append(_flake8("/cand", "unsuppressed", ["--disable-noqa", *options, *files]))
    spec = RunSpec(
        image=state.env.id if state.env else "",
        command=["sh", "-c", " ; ".join(parts)],
        workdir="/tmp",
        mounts=[
            Mount(source=baseline_dir, target="/base", read_only=True),
            Mount(source=candidate_dir, target="/cand", read_only=True),
            Mount(source=results, target=RESULTS, read_only=False),
        ],
        limits=state.policy.limits.for_phase("lint"),
        job_id=state.job_id,
        phase="lint",
    )
    # the candidate's lint is held to the candidate's deadline (learned when known)
    result = runtime.sandbox.run(spec, cancel, state.candidate_deadline.seconds)
    keep_log(state, "lint", result)
    before_text, before_ok = _findings(results, "baseline")
    after_text, _ = _findings(results, "candidate")
    unsuppressed_text, _ = _findings(results, "unsuppressed")
    if cached is not None:
        before_text = cached
    elif key and before_ok and result.exit_code == 0:
        store_text(runtime, f"{key}.lint.txt", before_text)
    before = parse_flake8(before_text, lint_policy.blocking_select)
    after = parse_flake8(after_text, lint_policy.blocking_select)
    summary = lint_diff(before, after, parsed, lint_policy.blocking_select)
    unsuppressed = parse_flake8(unsuppressed_text, lint_policy.blocking_select)
    hiding = noqa_findings(parsed, after, unsuppressed, lint_policy.blocking_select)
    return summary.model_copy(update={"new": summary.new + hiding})


def _flake8(tree: str, side: str, arguments: list[str]) -> str:
    flake8 = shlex.join(["flake8", f"--output-file={RESULTS}/{side}.txt", *arguments])
    return f"cd {tree} && {flake8} ; echo $? > {RESULTS}/{side}.exit"


def _findings(results: Path, side: str) -> tuple[str, bool]:
    """One side's findings file and whether flake8 ended cleanly; a missing file is empty."""
    data = read_regular(results / f"{side}.txt", LINT_MAX_BYTES)
    status = read_regular(results / f"{side}.exit", 64)
    ok = data is not None and len(data) <= LINT_MAX_BYTES
    ok = ok and status is not None and status.strip() == b"0"
    text = data[:LINT_MAX_BYTES].decode("utf-8", errors="replace") if data is not None else ""
    return text, ok


def _ruff_options(tree: Path) -> list[str] | None:
    """flake8 options from the tree's ruff configuration, None when it has none."""
    for name, pyproject in ((".ruff.toml", False), ("ruff.toml", False), ("pyproject.toml", True)):
        data = read_inside(tree, tree / name, LINT_CONFIG_MAX_BYTES)
        if data is None:
            continue
        try:
            config = tomllib.loads(data.decode("utf-8", errors="replace"))
        except tomllib.TOMLDecodeError:
            continue
        options = ruff_flake8_options(config, pyproject)
        if options is not None:
            return options
    return None


def _has_flake8_config(tree: Path) -> bool:
    if (tree / ".flake8").is_file():
        return True
    for name in ("setup.cfg", "tox.ini"):
        # The candidate's tree: the candidate may have made these a FIFO or a link to
        # /dev/zero, so never through a link out of it, never a device, capped.
        data = read_inside(tree, tree / name, LINT_CONFIG_MAX_BYTES)
        if data is not None and b"[flake8]" in data:
            return True
    return False
