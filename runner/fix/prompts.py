"""The text the fix loop writes: the prompt, feedback on a rejected attempt, the PR description.

Pure functions from models to Markdown. Output that came from the sandbox is trimmed
(head of a message, tail of a traceback) so one failing test cannot fill a prompt.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TYPE_CHECKING

from runner.fix.context import CodeContext, render_context
from runner.fix.errorreport import ErrorReport, Repro
from runner.models import ReproRun, SuiteRun, TestResult, Verdict

if TYPE_CHECKING:
    from runner.fix.result import Attempt, FixResult

__all__ = ["SYSTEM_PROMPT", "feedback", "first_prompt", "pull_request"]

TEST_TEXT_CHARS = 2000
MAX_TESTS_SHOWN = 5
OUTPUT_CHARS = 1500
_INSTALLED = re.compile(r"(?:site|dist)-packages/|/lib/python3\.\d+/")

SYSTEM_PROMPT = """\
You fix production errors in Python repositories. You get an error report (the
traceback as Python printed it) and code from the repository at the commit that failed.

Answer only by calling the submit_fix tool with:
- patch: a unified diff (git diff format, a/ and b/ prefixes, paths relative to the
  repository root) of the smallest source change that fixes the root cause. Do not
  catch and hide the exception, do not change existing tests, CI or dependency files.
- test_patch: a unified diff adding one regression test in the repository's test style.
  It must fail on the current code with the reported exception type and pass with the fix.
- explanation: the root cause and the fix in a few sentences.

Both diffs apply to the original commit, separately from any earlier attempt: every
submission replaces the previous one. Hunk headers and context lines must match the
files exactly (the line numbers shown beside the code are not part of the files).
Your patches run in a sandbox with the repository's own tests and flake8; when one is
rejected you get the evidence and submit a corrected fix."""


def _fence(text: str, lang: str = "") -> str:
    fence = "````" if "```" in text else "```"
    return f"{fence}{lang}\n{text.rstrip()}\n{fence}"


def _head(text: str, limit: int) -> str:
    text = text.strip()
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _tail(text: str, limit: int) -> str:
    text = text.strip()
    return text if len(text) <= limit else "…" + text[-(limit - 1) :]


def first_prompt(report: ErrorReport, context: CodeContext, repro: Repro | None) -> str:
    """The first user message: the error report, how it will be checked, and the code."""
    parts = [
        "# Production error",
        f"**{report.summary}**",
        _fence(report.traceback.rstrip(), "text"),
    ]
    if report.request is not None:
        req = report.request
        lines = [f"{req.method or ''} {req.path or ''}".strip()]
        lines += [f"{k}: {v}" for k, v in req.headers.items()]
        parts += ["## Request being served", _fence("\n".join(lines), "http")]
    if report.environment is not None:
        env = report.environment
        lines = [f"python {env.python}"] if env.python else []
        lines += [f"{name}=={version}" for name, version in sorted(env.packages.items())]
        if lines:
            parts += ["## Environment", _fence("\n".join(lines), "text")]
    parts.append("# How your fix is checked")
    checks = [
        "- The repository's whole test suite and flake8 run without and with your patch.",
        f"- Your regression test must fail on the current code with {report.short_type} "
        "and pass with the fix; no other test may break; no new flake8 errors. When the "
        "error is raised in a thread or task, the test may capture it there and assert "
        f"that no {report.short_type} was raised.",
        f"- Catching {report.short_type} (or Exception) without re-raising is rejected: "
        "fix the cause.",
    ]
    if repro is not None:
        checks.append(
            f"- `{repro.command}` must fail with `{repro.expect_error}` on the current code "
            "and exit 0 with your fix."
        )
    parts.append("\n".join(checks))
    parts += ["# Repository at the failing commit", render_context(context)]
    return "\n\n".join(parts)


def _failing_tests(verdict: Verdict, candidate: dict[str, TestResult]) -> list[TestResult]:
    order = [*verdict.tests.pass_to_fail, *verdict.tests.still_failing, *verdict.tests.removed]
    failing = [t for t in candidate.values() if t.outcome in ("failed", "error")]
    failing.sort(key=lambda t: order.index(t.id) if t.id in order else len(order))
    return failing[:MAX_TESTS_SHOWN]


def _condense(text: str) -> str:
    """pytest's failure text without frames in installed packages: the repository's
    frames and the ``E`` lines are what a fix needs."""
    out: list[str] = []
    skip_code = False
    for line in text.splitlines():
        if _INSTALLED.search(line) and not line.startswith("E "):
            skip_code = True
            continue
        if skip_code and line.startswith(" "):
            continue
        skip_code = False
        out.append(line)
    return "\n".join(out).strip()


def _repro_lines(runs: Sequence[ReproRun]) -> list[str]:
    lines = []
    for run in runs:
        cand = run.candidate
        exc = cand.last_exception
        status = "timed out" if cand.timed_out else f"exit {cand.exit_code}"
        shown = f", last exception {exc.type}: {_head(exc.message, 200)}" if exc else ""
        lines.append(f"`{run.command}` with your patch: {status}{shown}")
        if run.problem:
            lines.append(f"(problem: {run.problem})")
        output = (cand.output_tail or cand.output_head).strip()
        if output and cand.exit_code != 0:
            lines.append(_fence(_tail(output, OUTPUT_CHARS), "text"))
    return lines


def feedback(
    reasons: Sequence[str],
    verdict: Verdict | None,
    candidate: dict[str, TestResult],
) -> str:
    """Why an attempt was rejected, with the evidence the next attempt needs."""
    parts = ["Your fix was rejected."]
    parts.append("Reasons:\n" + "\n".join(f"- {r}" for r in reasons))
    if verdict is not None:
        failing = _failing_tests(verdict, candidate)
        if failing:
            parts.append("## Tests failing with your patch")
            for test in failing:
                body = _condense(test.text) or test.message
                parts.append(
                    f"### {test.id} ({test.outcome})\n" + _fence(_tail(body, TEST_TEXT_CHARS))
                )
        if verdict.lint.new:
            parts.append("## New flake8 findings")
            parts.append(
                "\n".join(
                    f"- {f.path}:{f.line}:{f.col}: {f.code} {f.message}"
                    + (" (blocking)" if f.blocking else "")
                    for f in verdict.lint.new
                )
            )
        repro = _repro_lines(verdict.repro)
        if repro:
            parts.append("## Repro command\n" + "\n".join(repro))
    parts.append(
        "Call submit_fix again with a corrected patch and test_patch. Both replace this "
        "attempt and apply to the original commit."
    )
    return "\n\n".join(parts)


def _counts(verdict: Verdict) -> str:
    b, c = verdict.tests.baseline, verdict.tests.candidate
    return (
        f"{b.passed} passed, {b.failed + b.error} failed before; "
        f"{c.passed} passed, {c.failed + c.error} failed after"
    )


def _files(patch: str) -> list[str]:
    return [
        line.split(" b/", 1)[-1]
        for line in patch.splitlines()
        if line.startswith("diff --git ") and " b/" in line
    ]


def pull_request(
    result: FixResult, attempt: Attempt, report: ErrorReport, baseline: SuiteRun | None
) -> str:
    """The pull-request description of a verified attempt, with its evidence."""
    verdict = attempt.verdict
    assert verdict is not None
    parts = [
        f"# Fix {report.summary}",
        "## The error",
        _fence(_tail(report.traceback, 3000), "text"),
        "## Root cause and fix",
        attempt.explanation.strip() or "(no explanation given)",
        "## Verification",
        f"Verified by fixrunner in a sandbox (job `{verdict.job_id}`, "
        f"attempt {attempt.number} of {len(result.attempts)}): {verdict.summary}.",
    ]
    evidence = []
    for test_id in verdict.tests.fail_to_pass:
        before = baseline.tests.get(test_id) if baseline else None
        first = before.message.strip().splitlines()[0] if before and before.message.strip() else ""
        how = f" (fails on the base with `{_head(first, 160)}`)" if first else ""
        evidence.append(f"- Fail-to-pass: `{test_id}`{how}")
    evidence.append(f"- Test suite: {_counts(verdict)}; pass-to-fail: none")
    new = verdict.lint.new
    evidence.append(
        "- flake8: no new findings"
        if not new
        else f"- flake8: {len(new)} new non-blocking finding(s)"
    )
    for check in verdict.checks:
        evidence.append(
            f"- check `{check.name}`: {'pass' if check.passed else 'fail'} — {check.detail}"
        )
    parts.append("\n".join(evidence))
    for run in verdict.repro:
        parts.append(f"### Reproduction: `{run.command}`")
        for side, res in (("Before the fix", run.baseline), ("After the fix", run.candidate)):
            status = "timed out" if res.timed_out else f"exit {res.exit_code}"
            output = (res.output_tail or res.output_head).strip() or "(no output)"
            parts.append(f"{side} ({status}):\n" + _fence(_tail(output, OUTPUT_CHARS), "text"))
    files = _files(attempt.patch) + _files(attempt.test_patch)
    if files:
        parts.append("## Files changed\n" + "\n".join(f"- `{f}`" for f in files))
    earlier = [a for a in result.attempts if a.number < attempt.number]
    if earlier:
        lines = [f"- attempt {a.number}: {a.status} — {'; '.join(a.reasons)}" for a in earlier]
        parts.append("## Earlier attempts\n" + "\n".join(lines))
    cost = f", estimated cost ${result.cost_usd:.4f}" if result.cost_usd is not None else ""
    parts.append(
        f"_Proposed by {result.model} through fixrunner's fix loop: "
        f"{result.input_tokens} input and {result.output_tokens} output tokens{cost}._"
    )
    return "\n\n".join(parts) + "\n"
