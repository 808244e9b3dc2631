"""The job's environment image: from the base commit's tree, or the candidate's own.

The environment is described from the baseline tree while the candidate's checkout runs
beside it. A patch (or test patch) that changes a file the description reads (a new test
dependency in pyproject.toml, a requirements file) gets the environment of the candidate's
tree instead, after the patches are applied: the tests it adds can then import what it
declares. Both trees run in that one environment, so the comparison stays like for like.
"""

from __future__ import annotations

import threading
from pathlib import Path

from runner.environments.builds import commit_date, prepare_environment
from runner.environments.manifests import environment_files
from runner.errors import ImageBuildError, PatchError
from runner.models import ParsedPatch
from runner.verify.job import Job
from runner.verify.runtime import Runtime

__all__ = ["changed_environment_files", "prepare_job_environment"]


def changed_environment_files(parsed: ParsedPatch, test_parsed: ParsedPatch | None) -> list[str]:
    """The files the job's patches change that describe the environment (often none)."""
    paths = parsed.paths() | (test_parsed.paths() if test_parsed is not None else set())
    return environment_files(paths)


def prepare_job_environment(
    state: Job,
    runtime: Runtime,
    tree: Path,
    cancel: threading.Event | None,
    changed: tuple[list[str], Path] | None = None,
) -> None:
    """Prepare the environment image from ``tree`` into ``state``.

    ``changed``: the environment files the patch changes and the baseline tree. When the
    candidate's environment cannot be built, the base commit's says whose fault it is: if
    that one builds, the patch's declarations are (``rejected``); if not, the runner's.
    """
    files = changed[0] if changed else []
    message = "preparing the environment image"
    if files:
        message += f" from the candidate's tree (the patch changes {', '.join(files)})"
    with state.phase("env", message):
        runtime.warmed()
        try:
            _prepare(state, runtime, tree, cancel)
        except ImageBuildError as exc:
            if changed is None or (cancel is not None and cancel.is_set()):
                raise
            try:
                _prepare(state, runtime, changed[1], cancel)
            except ImageBuildError:
                raise exc from None
            raise PatchError(
                f"the environment the patch declares ({', '.join(files)}) cannot be "
                f"prepared, while the base commit's can: {exc}",
                check="environment",
            ) from exc
        assert state.env is not None
        if files:
            state.env.notes.append(
                "environment described from the candidate's tree, not the base commit's: "
                f"the patch changes {', '.join(files)} (both trees run in it)"
            )
            # decided while applying the patches, before this environment existed
            if state.unittest_files.files:
                state.env.notes.append(state.unittest_files.note())
        state.env.write_environment_json(state.folder)


def _prepare(state: Job, runtime: Runtime, tree: Path, cancel: threading.Event | None) -> None:
    # The commit's Python picks the base: built here the first time it is needed.
    state.base, state.env = prepare_environment(
        runtime.client,
        runtime.base_image,
        tree,
        runtime.settings,
        repo_key=state.job.repo,
        commit_date=commit_date(tree),
        job_id=state.job_id,
        cancel=cancel,
    )
