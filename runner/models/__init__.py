"""Every type that crosses a module boundary: the public contract.

Pydantic v2, ``extra="forbid"`` everywhere, a short description on each field. One
module per part of the contract; everything is re-exported here, the stable import path.
This package imports nothing else of runner.
"""

from __future__ import annotations

from runner.models.base import (
    Model,
)
from runner.models.evidence import (
    Evidence,
)
from runner.models.job import (
    FixJob,
    new_fix_id,
    new_job_id,
    one_line,
    revision,
)
from runner.models.patch import (
    SYMLINK_MODE,
    FileChange,
    FileStatus,
    ParsedPatch,
    SourceChange,
)
from runner.models.results import (
    CollectedTest,
    Comparison,
    HarnessAlert,
    HarnessReport,
    JUnitReport,
    LintFinding,
    LintSummary,
    Outcome,
    RunCounts,
    SuiteRepeat,
    SuiteRun,
    TestResult,
)
from runner.models.run import (
    Limits,
    Mount,
    RunResult,
    RunSpec,
)
from runner.models.tracebacks import (
    ExceptionInfo,
    ExpectedError,
    Frame,
    RepoFrame,
    SyntaxLocation,
    Traceback,
)
from runner.models.verdict import (
    SCHEMA_VERSION,
    AppliedWith,
    Check,
    Deadlines,
    EarlyAnswer,
    EnvironmentInfo,
    FileCoverage,
    ImagesInfo,
    LastException,
    MapRecording,
    PatchCoverage,
    PatchStats,
    PhaseLog,
    ReproResult,
    ReproRun,
    Resources,
    Status,
    TestSummary,
    Verdict,
    verdict_json_schema,
    verdict_json_schema_text,
)

__all__ = [
    "SCHEMA_VERSION",
    "SYMLINK_MODE",
    "AppliedWith",
    "Check",
    "CollectedTest",
    "Comparison",
    "Deadlines",
    "EarlyAnswer",
    "EnvironmentInfo",
    "Evidence",
    "ExceptionInfo",
    "ExpectedError",
    "FileChange",
    "FileCoverage",
    "FileStatus",
    "FixJob",
    "Frame",
    "HarnessAlert",
    "HarnessReport",
    "ImagesInfo",
    "JUnitReport",
    "LastException",
    "Limits",
    "LintFinding",
    "LintSummary",
    "MapRecording",
    "Model",
    "Mount",
    "Outcome",
    "ParsedPatch",
    "PatchCoverage",
    "PatchStats",
    "PhaseLog",
    "RepoFrame",
    "ReproResult",
    "ReproRun",
    "Resources",
    "RunCounts",
    "RunResult",
    "RunSpec",
    "SourceChange",
    "Status",
    "SuiteRepeat",
    "SuiteRun",
    "SyntaxLocation",
    "TestResult",
    "TestSummary",
    "Traceback",
    "Verdict",
    "new_fix_id",
    "new_job_id",
    "one_line",
    "revision",
    "verdict_json_schema",
    "verdict_json_schema_text",
]
