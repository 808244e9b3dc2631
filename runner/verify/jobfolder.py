"""Every path under jobs/<id>/: job files, logs, results folders and their readers, verdict.json."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from runner.common.files import read_regular
from runner.core.harnessresults import read_stream
from runner.core.suite import (
    parse_junit,
)
from runner.models import (
    HarnessReport,
    JUnitReport,
    PhaseLog,
    RunResult,
    Verdict,
)
from runner.sandbox.docker import hand_over
from runner.verify.job import Job
from runner.verify.runtime import Runtime

JUNIT_MAX_BYTES = 50 * 2**20
# pypa/packaging's 62,000 tests wrote ~88 MB, and with its per-test map went past 100 MiB:
# the cap bounds what a run can make the runner read, far above any real suite's record.
STREAM_MAX_BYTES = 512 * 2**20
LOG_HEAD = 4000
LOG_TAIL = 8000


def write_job_files(state: Job) -> None:
    (state.folder / "patch.diff").write_text(state.job.patch, encoding="utf-8")
    if state.job.test_patch:
        (state.folder / "test.diff").write_text(state.job.test_patch, encoding="utf-8")
    (state.folder / "job.json").write_text(
        state.job.model_dump_json(indent=2, exclude={"patch", "test_patch"}), encoding="utf-8"
    )


def results_dir(state: Job, phase: str, runtime: Runtime) -> Path:
    results = state.folder / "trees" / "results" / phase
    results.mkdir(parents=True, exist_ok=True)
    hand_over(results, runtime.sandbox._user)
    return results


def harness_dir(state: Job, phase: str, runtime: Runtime, runs: int) -> tuple[Path, list[bytes]]:
    """A fresh folder for the plugin's streams, with one single-use key per pytest run."""
    folder = state.folder / "trees" / "results" / f"{phase}.harness"
    folder.mkdir(parents=True, exist_ok=True)
    keys = []
    for i in range(runs):
        key = secrets.token_hex(32).encode()
        path = folder / f"key-{i}"
        path.unlink(missing_ok=True)
        (folder / f"stream-{i}.jsonl").unlink(missing_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(key)
        keys.append(key)
    hand_over(folder, runtime.sandbox._user)
    return folder, keys


def read_harness(folder: Path, run: int, key: bytes, keep: Path | None) -> HarnessReport | None:
    """The plugin's stream of one run, checked under its key; None when none was written."""
    data = read_regular(folder / f"stream-{run}.jsonl", STREAM_MAX_BYTES)
    if data is None:
        return None
    if keep is not None:
        keep.parent.mkdir(parents=True, exist_ok=True)
        keep.write_bytes(data[:STREAM_MAX_BYTES])
    if len(data) > STREAM_MAX_BYTES:
        return HarnessReport(error=f"the results stream is over {STREAM_MAX_BYTES} bytes")
    return read_stream(data, key)


def read_junit(path: Path, keep: Path | None) -> JUnitReport | None:
    # The file sits in a folder the sandbox could write: never follow a symlink,
    # read only a regular file, and only up to a size cap.
    data = read_regular(path, JUNIT_MAX_BYTES)
    if data is None:
        return None
    if keep is not None:
        keep.parent.mkdir(parents=True, exist_ok=True)
        keep.write_bytes(data[:JUNIT_MAX_BYTES])
    if len(data) > JUNIT_MAX_BYTES:
        return None
    return parse_junit(data)


def keep_log(state: Job, phase: str, result: RunResult) -> None:
    logs = state.folder / "logs"
    logs.mkdir(exist_ok=True)
    (logs / f"{phase}.log").write_text(result.output, encoding="utf-8")
    text = result.output
    head, tail = text[:LOG_HEAD], text[-LOG_TAIL:] if len(text) > LOG_HEAD else ""
    state.logs.append(
        PhaseLog(phase=phase, head=head, tail=tail, truncated=result.output_truncated)
    )


def write_verdict(folder: Path, verdict: Verdict) -> Verdict:
    (folder / "verdict.json").write_text(verdict.model_dump_json(indent=2), encoding="utf-8")
    return verdict
