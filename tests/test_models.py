"""The public contract: Verdict shape, the published schema, FixJob sanity checks."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
from pydantic import ValidationError

from runner.models import (
    SCHEMA_VERSION,
    Check,
    FixJob,
    Verdict,
    verdict_json_schema,
    verdict_json_schema_text,
)

SCHEMA_FILE = Path(__file__).resolve().parent.parent / "docs" / "verdict.schema.json"


def test_committed_schema_matches_the_models() -> None:
    # regenerate with: python -c "from runner.models import verdict_json_schema_text as t;
    # open('docs/verdict.schema.json','w').write(t())"
    assert SCHEMA_FILE.read_text(encoding="utf-8") == verdict_json_schema_text()


def test_verdict_top_level_fields_are_the_contract() -> None:
    assert list(Verdict.model_fields) == [
        "schema_version", "job_id", "status", "summary", "checks", "tests", "lint", "patch",
        "repro", "timings", "resources", "images", "logs", "runner_version", "host",
        "patch_coverage", "deadlines", "early",
    ]  # fmt: skip


def test_minimal_error_verdict_validates_against_schema() -> None:
    verdict = Verdict(job_id="j1", status="error", summary="error: engine down")
    jsonschema.validate(json.loads(verdict.model_dump_json()), verdict_json_schema())
    assert verdict.schema_version == SCHEMA_VERSION


def test_schema_rejects_unknown_status() -> None:
    data = json.loads(Verdict(job_id="j", status="verified", summary="s").model_dump_json())
    data["status"] = "maybe"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(data, verdict_json_schema())


def test_verdict_rejects_unknown_fields() -> None:
    with pytest.raises(ValidationError):
        Verdict(job_id="j", status="verified", summary="s", extra=1)  # type: ignore[call-arg]


def test_check_round_trips() -> None:
    check = Check(name="lint", passed=False, detail="1 new blocking finding(s)")
    assert Check.model_validate_json(check.model_dump_json()) == check


def test_fixjob_defaults() -> None:
    job = FixJob(repo="/src/app", patch="diff --git a/x b/x\n")
    assert (job.base, job.policy, job.fail_to_pass, job.repro) == ("HEAD", "default", [], [])


@pytest.mark.parametrize(
    "fields",
    [
        {"patch": ""},
        {"patch": "a\x00b"},
        {"repo": ""},
        {"repo": "/src\n/app"},
        {"base": "main branch"},
        {"base": ""},
        {"fail_to_pass": ["tests/t.py::a\nb"]},
        {"fail_to_pass": [" "]},
        {"repro": [""]},
        {"expect_error": "  "},
        {"job_id": "../etc"},
    ],
    ids=lambda f: next(iter(f)),
)
def test_fixjob_rejects_nonsense(fields: dict[str, object]) -> None:
    data: dict[str, object] = {"repo": "/src/app", "patch": "diff --git a/x b/x\n", **fields}
    with pytest.raises(ValidationError):
        FixJob.model_validate(data)
