"""Repro commands: their own tree copies, sandboxed runs, and the evidence they give."""

from __future__ import annotations

import threading
from pathlib import Path

from runner.core.repro import (
    evaluate,
    missing_files,
    not_runnable,
    split_command,
)
from runner.models import (
    Mount,
    ReproResult,
    ReproRun,
    RunResult,
    RunSpec,
)
from runner.verify.job import Job
from runner.verify.jobfolder import (
    keep_log,
)
from runner.verify.runs import (
    WORK,
    mirror_mount,
)
from runner.verify.runtime import Runtime
from runner.workspace.trees import copy_tree


def repro_trees(state: Job, baseline_dir: Path, candidate_dir: Path) -> list[Path]:
    # Repro commands get their own copies of the trees: a script may write files, and
    # the test runs read the same trees at the same time.
    if not state.job.repro:
        return []
    for command in state.job.repro:
        missing = missing_files(split_command(command), baseline_dir)
        if missing:
            state.repro_problems[command] = (
                f"names {', '.join(missing)}, which is not in the repository at the base revision"
            )
    return [
        copy_tree(baseline_dir, baseline_dir.parent / "baseline-repro"),
        copy_tree(candidate_dir, candidate_dir.parent / "candidate-repro"),
    ]


def run_repro(
    state: Job, runtime: Runtime, tree: Path, side: str, cancel: threading.Event | None
) -> list[RunResult | None]:
    assert state.env is not None
    results: list[RunResult | None] = []
    for i, command in enumerate(state.job.repro):
        if command in state.repro_problems:
            results.append(None)
            continue
        spec = RunSpec(
            image=state.env.id,
            command=split_command(command),
            workdir=WORK,
            mounts=[
                Mount(source=tree, target=WORK, read_only=False, quota=True),
                *mirror_mount(state),
            ],
            limits=state.policy.limits.for_phase("repro"),
            job_id=state.job_id,
            phase=f"repro-{side}-{i}",
        )
        result = runtime.sandbox.run(spec, cancel)
        keep_log(state, f"repro-{side}-{i}", result)
        results.append(result)
    return results


def repro_evidence(state: Job, sides: list[list[RunResult | None]]) -> list[ReproRun]:
    if not sides:
        return []
    baseline, candidate = sides
    runs = []
    for command, base, cand in zip(state.job.repro, baseline, candidate, strict=True):
        if base is None or cand is None:
            empty = ReproResult()
            runs.append(
                ReproRun(
                    command=command,
                    expect_error=state.job.expect_error,
                    baseline=empty,
                    candidate=empty,
                    problem=state.repro_problems.get(command, "did not run"),
                )
            )
            continue
        run = evaluate(command, state.job.expect_error, base, cand)
        why = not_runnable(base)
        if why:
            program = split_command(command)[0]
            run = run.model_copy(update={"problem": f"{program} {why} in the sandbox"})
        runs.append(run)
    return runs
