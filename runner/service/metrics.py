"""Prometheus metrics of one service, on a registry of its own (not the global one)."""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CONTENT_TYPE_LATEST as CONTENT_TYPE
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from runner.models import Verdict

__all__ = ["CONTENT_TYPE", "ServiceMetrics"]

# Jobs take seconds to minutes: buckets from a cached rerun to a slow suite.
_JOB_BUCKETS = (1, 2.5, 5, 10, 20, 30, 60, 120, 300, 600, 1200, 3600)
_PHASE_BUCKETS = (0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)


class ServiceMetrics:
    """Queue depth, running jobs, verdicts and fix results by status, durations, callbacks."""

    def __init__(self, queued: Callable[[], int], running: Callable[[], int]) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        Gauge("fixrunner_queue_depth", "Jobs waiting for a worker.", registry=r).set_function(
            lambda: float(queued())
        )
        Gauge("fixrunner_running_jobs", "Jobs a worker is running.", registry=r).set_function(
            lambda: float(running())
        )
        self.submitted = Counter("fixrunner_jobs_submitted", "Jobs accepted (202).", registry=r)
        self.rejected = Counter(
            "fixrunner_jobs_refused", "Submissions refused, by reason.", ["reason"], registry=r
        )
        self.verdicts = Counter(
            "fixrunner_verdicts", "Finished jobs by verdict status.", ["status"], registry=r
        )
        self.job_seconds = Histogram(
            "fixrunner_job_duration_seconds",
            "Seconds from a worker's start to the verdict.",
            buckets=_JOB_BUCKETS,
            registry=r,
        )
        self.phase_seconds = Histogram(
            "fixrunner_phase_duration_seconds",
            "Seconds per pipeline phase.",
            ["phase"],
            buckets=_PHASE_BUCKETS,
            registry=r,
        )
        self.fixes = Counter(
            "fixrunner_fixes",
            "Finished fix jobs by result status (verified, not_verified, error, cancelled).",
            ["status"],
            registry=r,
        )
        self.deliveries = Counter(
            "fixrunner_callback_deliveries",
            "Callback attempts by outcome.",
            ["outcome"],
            registry=r,
        )
        self._recent: list[float] = []

    def job_finished(self, verdict: Verdict, seconds: float) -> None:
        """Count a verdict and observe its durations."""
        self.verdicts.labels(status=verdict.status).inc()
        self.job_seconds.observe(seconds)
        for phase, value in verdict.timings.items():
            if phase != "total" and not phase.endswith("_cached"):
                self.phase_seconds.labels(phase=phase).observe(value)
        self._recent = [*self._recent[-19:], seconds]

    def typical_job_seconds(self, default: float = 30.0) -> float:
        """Mean of the last 20 jobs' durations (for Retry-After)."""
        return sum(self._recent) / len(self._recent) if self._recent else default

    def render(self) -> bytes:
        """The Prometheus text exposition."""
        return generate_latest(self.registry)
