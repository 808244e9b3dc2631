"""Caches under the state directory: baseline runs, baseline re-runs, baseline lint."""

from __future__ import annotations

import hashlib
import json
import secrets

from pydantic import TypeAdapter

from runner.models import (
    SuiteRun,
)
from runner.verify.harness import harness_digest
from runner.verify.runs import (
    PYTEST_ARGS,
)
from runner.verify.runtime import Runtime

_SUITE_RUNS = TypeAdapter(list[SuiteRun])


# Bumped when reading a run changes what a cached one holds (pytest 3's ``::()::`` ids).
CACHE_FORMAT = "2"


def baseline_key(tree: str, env_id: str, command: list[str], limits: str) -> str:
    # what the harness records (phases, exception types) is part of a cached run
    material = json.dumps(
        [tree, env_id, command, PYTEST_ARGS, limits, harness_digest(), CACHE_FORMAT],
        sort_keys=True,
    )
    return hashlib.sha256(material.encode()).hexdigest()


def load_baseline(runtime: Runtime, key: str) -> SuiteRun | None:
    path = runtime.baseline_cache / f"{key}.json"
    try:
        return SuiteRun.model_validate_json(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def store_baseline(runtime: Runtime, key: str, run: SuiteRun) -> None:
    store_text(runtime, f"{key}.json", run.model_dump_json())


def rerun_key(baseline_key: str, reruns: int, test_ids: list[str]) -> str:
    # The baseline key covers tree, image, command, pytest arguments and limits; the
    # re-runs add only how many there are and which tests they select.
    material = json.dumps([baseline_key, reruns, sorted(test_ids)])
    return hashlib.sha256(material.encode()).hexdigest()


def load_reruns(runtime: Runtime, key: str) -> list[SuiteRun] | None:
    path = runtime.baseline_cache / f"{key}.reruns.json"
    try:
        return _SUITE_RUNS.validate_json(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def store_reruns(runtime: Runtime, key: str, runs: list[SuiteRun]) -> None:
    store_text(runtime, f"{key}.reruns.json", _SUITE_RUNS.dump_json(runs).decode())


def load_repeat(runtime: Runtime, key: str) -> SuiteRun | None:
    """The baseline suite's repeat under baseline key ``key``, when one was run before."""
    text = load_text(runtime, f"{key}.repeat.json")
    try:
        return SuiteRun.model_validate_json(text) if text is not None else None
    except ValueError:
        return None


def store_repeat(runtime: Runtime, key: str, run: SuiteRun) -> None:
    store_text(runtime, f"{key}.repeat.json", run.model_dump_json())


def lint_key(tree: str, env_id: str, options: list[str], files: list[str]) -> str:
    material = json.dumps(["flake8", tree, env_id, options, files])
    return hashlib.sha256(material.encode()).hexdigest()


def load_text(runtime: Runtime, name: str) -> str | None:
    try:
        return (runtime.baseline_cache / name).read_text(encoding="utf-8")
    except OSError:
        return None


def store_text(runtime: Runtime, name: str, text: str) -> None:
    runtime.baseline_cache.mkdir(parents=True, exist_ok=True)
    tmp = runtime.baseline_cache / f".{name}.{secrets.token_hex(4)}"
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(runtime.baseline_cache / name)
