"""flake8 on the changed files of both trees, in one sandbox."""

from __future__ import annotations

import shlex
import threading
from pathlib import Path

from runner.core.suite import (
    FLAKE8_FORMAT,
    lint_diff,
    parse_flake8,
)
from runner.models import (
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
from runner.verify.jobfolder import (
    keep_log,
)
from runner.verify.runtime import Runtime


def run_lint(
    state: Job,
    runtime: Runtime,
    baseline_dir: Path,
    candidate_dir: Path,
    baseline_tree: str,
    parsed: ParsedPatch,
    cancel: threading.Event | None,
) -> object:
    lint_policy = state.policy.lint
    files = sorted(f.path for f in parsed.files if f.path.endswith(".py") and f.status != "deleted")
    if not files:
        return lint_diff([], [], parsed, lint_policy.blocking_select)
    has_config = _has_flake8_config(candidate_dir)
    options = ["--format", FLAKE8_FORMAT, "--exit-zero"]
    if not has_config:
        options += [
            f"--select={','.join(lint_policy.default_select)}",
            f"--extend-ignore={','.join(lint_policy.default_extend_ignore)}",
            f"--max-line-length={lint_policy.default_max_line_length}",
        ]
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
    # One container lints both trees: flake8 never imports the code it reads.
    parts = []
    if cached is None:
        parts.append(f"cd /base && flake8 {shlex.join(options + old_files)}")
    parts.append("echo '::fixrunner-candidate::'")
    parts.append(f"cd /cand && flake8 {shlex.join(options + files)}")
    spec = RunSpec(
        image=state.env.id if state.env else "",
        command=["sh", "-c", " ; ".join(parts)],
        workdir="/tmp",
        mounts=[
            Mount(source=baseline_dir, target="/base", read_only=True),
            Mount(source=candidate_dir, target="/cand", read_only=True),
        ],
        limits=state.policy.limits.for_phase("lint"),
        job_id=state.job_id,
        phase="lint",
    )
    result = runtime.sandbox.run(spec, cancel)
    keep_log(state, "lint", result)
    before_text, marker, after_text = result.output.partition("::fixrunner-candidate::")
    if cached is not None:
        before_text = cached
    elif key and marker and result.exit_code == 0 and not result.output_truncated:
        store_text(runtime, f"{key}.lint.txt", before_text)
    before = parse_flake8(before_text, lint_policy.blocking_select)
    after = parse_flake8(after_text, lint_policy.blocking_select)
    return lint_diff(before, after, parsed, lint_policy.blocking_select)


def _has_flake8_config(tree: Path) -> bool:
    if (tree / ".flake8").is_file():
        return True
    for name in ("setup.cfg", "tox.ini"):
        path = tree / name
        if path.is_file() and "[flake8]" in path.read_text(encoding="utf-8", errors="replace"):
            return True
    return False
