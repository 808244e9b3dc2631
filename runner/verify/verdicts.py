"""The verdict: judged from the evidence, with the job's timings, images and logs."""

from __future__ import annotations

from runner import __version__
from runner.core.judge import judge
from runner.core.patch import patch_stats
from runner.core.patchcoverage import patch_coverage
from runner.core.suite import (
    test_summary,
)
from runner.models import (
    ImagesInfo,
    LintSummary,
    PatchStats,
    Resources,
    Verdict,
)
from runner.verify.job import Job
from runner.verify.runtime import Runtime


def build_verdict(state: Job, runtime: Runtime) -> Verdict:
    evidence = state.evidence
    judgement = judge(evidence, state.policy)
    tests = test_summary(evidence.baseline, evidence.candidate, evidence.comparison)
    patch = (
        patch_stats(evidence.patch, evidence.applied_with, state.policy.test_globs)
        if evidence.patch is not None
        else PatchStats(applied_with=evidence.applied_with)
    )
    images = ImagesInfo()
    if state.base is not None:
        images.base = state.base.tag
    if state.env is not None:
        images.environment_image = state.env.tag
        images.environment = state.env.info()
    timings = dict(state.timings)
    if state.baseline_cached:
        timings["baseline"] = 0.0
        timings["baseline_cached"] = 1.0
    return Verdict(
        job_id=state.job_id,
        status=judgement.status,
        summary=judgement.summary,
        checks=judgement.checks,
        tests=tests,
        lint=evidence.lint or LintSummary(),
        patch=patch,
        repro=evidence.repro,
        patch_coverage=patch_coverage(evidence, state.policy.test_globs)
        if judgement.status != "error"
        else None,
        timings=timings,
        resources=Resources(limits=state.policy.limits.for_phase("test")),
        images=images,
        logs=state.logs,
        runner_version=__version__,
        deadlines=state.deadline.verdict() if state.deadline is not None else None,
    )


def error_verdict(job_id: str, reason: str) -> Verdict:
    return Verdict.error(job_id, reason, __version__)
