"""Policies (policies/*.toml): the rules a verdict is judged by, loaded and validated.

The judge that applies them is ``runner.core.judge``.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Literal

from pydantic import Field, ValidationError, field_validator

from runner.common.files import read_regular
from runner.core.paths import DEFAULT_TEST_GLOBS
from runner.errors import ConfigError
from runner.models import (
    Limits,
    Model,
)

__all__ = [
    "CHECK_NAMES",
    "LimitsPolicy",
    "LintPolicy",
    "PatchPolicy",
    "Policy",
    "load_policy",
]

# A policy is a few dozen lines; anything larger is not one.
POLICY_MAX_BYTES = 256 * 1024
CHECK_NAMES = (
    "applies",
    "reproduced",
    "reproduced_by_command",
    "no_regressions",
    "lint",
    "scope",
    "tests_not_weakened",
    "error_not_suppressed",
    "harness_untouched",
    "patch_coverage",
)
REPRO_CHECKS = ("reproduced", "reproduced_by_command")
Phase = Literal["test", "lint", "repro"]


class LimitsPolicy(Model):
    """Resource limits for every sandboxed phase, and the job's wall clock."""

    cpus: float = Field(default=2.0, gt=0, le=64)
    memory_mb: int = Field(default=2048, ge=64)
    pids: int = Field(default=512, ge=16)
    test_timeout_s: float = Field(default=600, gt=0)
    lint_timeout_s: float = Field(default=120, gt=0)
    repro_timeout_s: float = Field(default=120, gt=0)
    job_timeout_s: float = Field(default=1800, gt=0)
    deadline_floor_s: float = Field(
        default=30,
        gt=0,
        description="The least a learned deadline allows the candidate's suite, re-runs and lint.",
    )
    deadline_factor: float = Field(
        default=3.0,
        ge=1,
        description="The candidate's deadline is this many times the baseline suite's seconds "
        "(at least deadline_floor_s, never above test_timeout_s).",
    )
    test_item_timeout_s: float = Field(
        default=120,
        ge=0,
        description="One test's phase (setup, call or teardown) may take this long before it "
        "fails as timed out and the run goes on: a fix for a hang shows as a test that times "
        "out on the baseline and passes with the candidate. 0: no per-test limit.",
    )
    output_bytes: int = Field(default=1_000_000, ge=1024)
    workspace_mb: int = Field(default=1024, ge=16)
    workspace_inodes: int = Field(default=262_144, ge=1024)

    def for_phase(self, phase: Phase) -> Limits:
        """The sandbox Limits for one phase (its own timeout)."""
        timeout = {"test": self.test_timeout_s, "lint": self.lint_timeout_s}.get(
            phase, self.repro_timeout_s
        )
        return Limits(
            cpus=self.cpus,
            memory_mb=self.memory_mb,
            pids=self.pids,
            timeout_s=timeout,
            output_bytes=self.output_bytes,
            workspace_mb=self.workspace_mb,
            workspace_inodes=self.workspace_inodes,
        )


class PatchPolicy(Model):
    """Hard caps checked at intake (before anything runs) and again by ``scope``."""

    max_bytes: int = Field(default=1_000_000, ge=1)
    max_files: int = Field(default=50, ge=1)
    max_changed_lines: int = Field(default=2000, ge=1)
    allow_binary: bool = False
    allow_3way: bool = True


class LintPolicy(Model):
    """flake8: which codes block, and the config used when the repo has none."""

    blocking_select: list[str] = Field(default_factory=lambda: ["E9", "F"])
    # A project that declares no flake8 (or ruff) rules is not held to them: only real
    # errors block (syntax errors, undefined names: the set GitHub's Python workflow
    # blocks on), never the style of star imports the file already uses.
    unconfigured_blocking: list[str] = Field(default_factory=lambda: ["E9", "F63", "F7", "F82"])
    default_select: list[str] = Field(default_factory=lambda: ["E", "F", "W", "C90"])
    default_extend_ignore: list[str] = Field(default_factory=lambda: ["E203", "W503"])
    default_max_line_length: int = Field(default=100, ge=40)


class Policy(Model):
    """One policy file. Unknown keys are errors."""

    name: str
    description: str = ""
    reruns: int = Field(default=2, ge=0, le=10, description="Re-runs of changed tests.")
    fail_fast: bool | None = Field(
        default=None,
        description="End the job 'rejected' when an affected test, run first, fails (confirmed "
        "by the re-runs), without waiting for the full suite. Unset: the caller decides (on in "
        "the fix loop, off in verify-patch).",
    )
    limits: LimitsPolicy = Field(default_factory=LimitsPolicy)
    patch: PatchPolicy = Field(default_factory=PatchPolicy)
    lint: LintPolicy = Field(default_factory=LintPolicy)
    test_globs: list[str] = Field(default_factory=lambda: list(DEFAULT_TEST_GLOBS))
    forbidden_paths: list[str] = Field(default_factory=list)
    required_checks: list[str] = Field(
        default_factory=lambda: [
            "applies",
            "no_regressions",
            "lint",
            "scope",
            "tests_not_weakened",
            "error_not_suppressed",
        ]
    )
    min_patch_coverage: float = Field(
        default=0,
        ge=0,
        le=100,
        description="Per cent of the changed source lines the fail-to-pass tests must execute "
        "(the patch_coverage check, then required); 0 reports patch coverage without a check.",
    )
    evidence: Literal["either", "both", "none"] = Field(
        default="either",
        description="Reproduction: 'either' needs reproduced_by_command when repro commands "
        "are given (the command decides) and reproduced otherwise; 'both' needs both when "
        "repro commands are given; 'none' needs neither.",
    )

    @field_validator("required_checks")
    @classmethod
    def _known_checks(cls, value: list[str]) -> list[str]:
        for name in value:
            if name in REPRO_CHECKS:
                raise ValueError(f"{name!r} is governed by 'evidence', not 'required_checks'")
            if name not in CHECK_NAMES:
                raise ValueError(f"unknown check {name!r}; known: {', '.join(CHECK_NAMES)}")
        if "applies" not in value:
            raise ValueError("'applies' is always required")
        return value


def load_policy(name_or_path: str, policies_dir: Path) -> Policy:
    """Load a policy by name (policies_dir/NAME.toml) or by file path."""
    candidate = Path(name_or_path)
    if candidate.suffix == ".toml" or "/" in name_or_path:
        path = candidate
    elif name_or_path.replace("-", "").replace("_", "").isalnum():
        path = policies_dir / f"{name_or_path}.toml"
    else:
        raise ConfigError(f"{name_or_path!r} is neither a policy name nor a .toml file")
    if not os.path.lexists(path):
        known = sorted(p.stem for p in policies_dir.glob("*.toml")) if policies_dir.is_dir() else []
        raise ConfigError(f"no policy {name_or_path!r} (known: {', '.join(known)})")
    # Never through a link, never a FIFO or device, never more than the cap.
    raw = read_regular(path, POLICY_MAX_BYTES)
    if raw is None:
        raise ConfigError(f"{path}: not a regular file (a policy is never read through a link)")
    if len(raw) > POLICY_MAX_BYTES:
        raise ConfigError(f"{path}: larger than {POLICY_MAX_BYTES // 1024} KiB, not a policy")
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{path}: {exc}") from exc
    data.setdefault("name", path.stem)
    try:
        return Policy.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(f"{path}: {_explain(exc)}") from exc


def _explain(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"])
        if err["type"] == "extra_forbidden":
            parts.append(f"unknown key {where!r}")
        else:
            parts.append(f"{where}: {err['msg']}")
    return "; ".join(parts)
