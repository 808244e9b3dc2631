"""Evidence: everything the judge decides from, gathered by the pipeline."""

from __future__ import annotations

from pydantic import Field

from runner.models.base import Model
from runner.models.patch import ParsedPatch, SourceChange
from runner.models.results import Comparison, LintSummary, SuiteRun
from runner.models.verdict import AppliedWith, ReproRun


class Evidence(Model):
    """Everything policy.judge() decides from: plain data gathered by the pipeline."""

    infrastructure_error: str | None = Field(
        default=None, description="Set when the runner itself failed: the verdict is error."
    )
    applied_with: AppliedWith = Field(default="not_applied", description="How the patch applied.")
    patch_error: str | None = Field(default=None, description="Why intake or apply refused it.")
    patch_error_check: str = Field(default="applies", description="Check the refusal belongs to.")
    patch: ParsedPatch | None = Field(default=None, description="The parsed candidate patch.")
    test_patch: ParsedPatch | None = Field(default=None, description="The job's test patch.")
    fail_to_pass_ids: list[str] = Field(default_factory=list, description="--fail-to-pass ids.")
    baseline: SuiteRun | None = Field(default=None, description="Graded baseline run.")
    candidate: SuiteRun | None = Field(default=None, description="Graded candidate run.")
    comparison: Comparison | None = Field(default=None, description="After re-runs.")
    lint: LintSummary | None = Field(default=None, description="None when lint did not run.")
    repro: list[ReproRun] = Field(default_factory=list, description="Repro commands' results.")
    expect_error: str | None = Field(default=None, description="--expect-error, when given.")
    executed: dict[str, dict[str, list[int]]] | None = Field(
        default=None,
        description="Test id -> changed source file -> lines it executed in the candidate's "
        "traced re-runs ('' for lines run outside any test); None when none were traced.",
    )
    sources: list[SourceChange] = Field(
        default_factory=list,
        description="Changed Python files, before and after (capped reads).",
    )
    test_sources: list[SourceChange] = Field(
        default_factory=list,
        description="Python files of the job's test patch, before and after (capped reads).",
    )
