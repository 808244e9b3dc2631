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
    status, summary = judgement.status, judgement.summary
    early = state.early
    if early is not None and early.stopped and status != "error":
        shown = ", ".join(early.failed[:5])
        summary = (
            f"rejected early (fail_fast; the full suite was stopped): {len(early.failed)} "
            f"affected test(s) fail: {shown}" + (f"; {summary}" if status == "rejected" else "")
        )
        status = "rejected"
    if early is not None and status != "error" and (early.selected or early.stopped):
        early = early.model_copy(update={"agrees": (not early.failed) == (status == "verified")})
    timings = dict(state.timings)
    if state.baseline_cached:
        timings["baseline"] = 0.0
        timings["baseline_cached"] = 1.0
    return Verdict(
        job_id=state.job_id,
        status=status,
        summary=summary,
        checks=judgement.checks,
        tests=tests,
        lint=evidence.lint or LintSummary(),
        patch=patch,
        repro=evidence.repro,
        patch_coverage=patch_coverage(evidence, state.policy.test_globs)
        if judgement.status != "error"
        else None,
        early=early,
        timings=timings,
        resources=Resources(limits=state.policy.limits.for_phase("test")),
        images=images,
        logs=state.logs,
        runner_version=__version__,
        deadlines=state.deadline.verdict() if state.deadline is not None else None,
    )


def error_verdict(job_id: str, reason: str) -> Verdict:
    return Verdict.error(job_id, reason, __version__)
