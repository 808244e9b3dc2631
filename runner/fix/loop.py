"""The Claude fix loop: error report → candidate → verify → feedback → … → verified.

One conversation per job. Claude answers through one forced tool, ``submit_fix``; each
candidate goes through :func:`runner.verify.pipeline.verify`; a rejected verdict goes back as
the tool's result, and the loop stops at the first verified candidate, after
``max_attempts``, or when the token budget is spent. A bad reply is a rejected attempt,
never a crash; an API failure after the SDK's retries ends the job as ``error``.
The API key is passed to the SDK and nowhere else: results, logs and errors never hold it.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import anthropic
import structlog
from pydantic import ValidationError

from runner.config import Settings
from runner.core.patch import parse_patch
from runner.errors import MissingApiKeyError, ModelApiError, PatchError, RunnerError
from runner.fix.acceptance import reproduces
from runner.fix.claude import (
    SUBMIT_FIX_TOOL,
    TOOL_NAME,
    SubmitFix,
    answer,
    ask,
    make_client,
    redact,
    reply_blocks,
    tool_uses,
)
from runner.fix.context import estimate_tokens, gather_context, list_files
from runner.fix.errorreport import ErrorReport, derive_repro
from runner.fix.prompts import feedback, first_prompt, pull_request
from runner.fix.result import Attempt, FixResult
from runner.models import FixJob, SuiteRun, TestResult, Verdict, new_fix_id
from runner.verify.pipeline import Runtime, verify
from runner.workspace.trees import CheckoutLimits, checkout, remove_tree
from runner.workspace.urls import validate_repo_url

__all__ = [
    "SUBMIT_FIX_TOOL",
    "Attempt",
    "FixResult",
    "MissingApiKeyError",
    "ModelApiError",
    "make_client",
    "run_fix",
    "write_outputs",
]

log = structlog.get_logger(__name__)

Progress = Callable[[str, str], None]


def _quiet(phase: str, message: str) -> None:
    return None


class _Loop:
    """One job's state: conversation, attempts, spend."""

    def __init__(
        self,
        report: ErrorReport,
        settings: Settings,
        runtime: Runtime,
        progress: Progress,
        cancel: threading.Event | None,
    ) -> None:
        self.report = report
        self.settings = settings
        self.fixer = settings.fixer
        self.runtime = runtime
        self.progress = progress
        self.cancel = cancel
        self.messages: list[dict[str, Any]] = []
        self.attempts: list[Attempt] = []
        self.spent = 0
        self.baselines: dict[int, SuiteRun | None] = {}

    def cost(self, tokens_in: int, tokens_out: int) -> float | None:
        price = self.fixer.prices.get(self.fixer.model)
        if price is None:
            return None
        return round(
            tokens_in / 1e6 * price.input_per_mtok + tokens_out / 1e6 * price.output_per_mtok, 6
        )

    def ask(self, client: anthropic.Anthropic, key: str) -> anthropic.types.Message:
        return ask(client, key, self.fixer, self.messages)


def _check_diff(text: str, what: str) -> str | None:
    try:
        parse_patch(text)
    except PatchError as exc:
        return f"the {what} is not a usable unified diff: {exc}"
    return None


def _join(patch: str, test_patch: str) -> str:
    parts = [p if p.endswith("\n") else p + "\n" for p in (patch, test_patch) if p.strip()]
    return "".join(parts)


# How pytest reports an exception nobody caught in a thread (and in a task's callback).
def _job_files(runtime: Runtime, job_id: str) -> tuple[SuiteRun | None, dict[str, TestResult]]:
    folder = runtime.jobs_dir / job_id
    baseline = None
    try:
        baseline = SuiteRun.model_validate_json((folder / "baseline.json").read_text("utf-8"))
    except (OSError, ValueError):
        baseline = None
    candidate: dict[str, TestResult] = {}
    try:
        run = SuiteRun.model_validate_json((folder / "candidate.json").read_text("utf-8"))
        candidate = {t.id: t for t in [*run.tests.values(), *run.collection_errors]}
    except (OSError, ValueError):
        pass
    return baseline, candidate


def run_fix(
    report: ErrorReport,
    repo: str,
    base: str,
    runtime: Runtime,
    settings: Settings | None = None,
    progress: Progress = _quiet,
    cancel: threading.Event | None = None,
    *,
    max_attempts: int | None = None,
    fix_id: str | None = None,
    environ: Mapping[str, str] | None = None,
) -> FixResult:
    """Run the loop for one error report; always returns a result (status error on failure)."""
    settings = settings or runtime.settings
    fixer = settings.fixer
    fix_id = fix_id or new_fix_id()
    started = time.monotonic()
    result = FixResult(
        fix_id=fix_id,
        status="error",
        summary="",
        repo=repo,
        base=base,
        error=report.summary.splitlines()[0],
        model=fixer.model,
    )
    loop = _Loop(report, settings, runtime, progress, cancel)
    key = ""
    try:
        client, key = make_client(fixer, environ)
        result = _prepare(loop, result, repo, base)
        result = _iterate(loop, result, client, key, max_attempts or fixer.max_attempts)
    except RunnerError as exc:
        result = result.model_copy(update={"status": "error", "summary": redact(str(exc), key)})
    result = result.model_copy(
        update={
            "attempts": loop.attempts,
            "input_tokens": sum(a.input_tokens for a in loop.attempts),
            "output_tokens": sum(a.output_tokens for a in loop.attempts),
            "seconds": round(time.monotonic() - started, 3),
        }
    )
    costs = [a.cost_usd for a in loop.attempts]
    if costs and all(c is not None for c in costs):
        result.cost_usd = round(sum(c for c in costs if c is not None), 6)
    if result.status == "verified":
        attempt = loop.attempts[-1]
        result.pull_request = pull_request(
            result, attempt, report, loop.baselines.get(attempt.number)
        )
    _keep(runtime, result, loop.messages)
    log.info(
        "fix_result",
        fix_id=fix_id,
        status=result.status,
        attempts=len(result.attempts),
        input_tokens=result.input_tokens,
        output_tokens=result.output_tokens,
    )
    return result


def _prepare(loop: _Loop, result: FixResult, repo: str, base: str) -> FixResult:
    """Resolve the commit, read the code context, derive the repro, write the first prompt."""
    runtime = loop.runtime
    loop.progress("context", "reading the repository at the failing commit")
    url = validate_repo_url(repo, runtime.settings.security.allow_local_repos)
    mirror, commit = runtime.mirrors.resolve(url, base)
    tree = runtime.settings.paths.root / "fixes" / result.fix_id / "tree"
    try:
        checkout(mirror, commit, tree, CheckoutLimits.of(runtime.settings.workspace))
        files = set(list_files(tree))
        context = gather_context(tree, loop.report, loop.fixer.context_tokens)
    finally:
        remove_tree(tree)
    repro = derive_repro(loop.report, files)
    loop.messages.append({"role": "user", "content": first_prompt(loop.report, context, repro)})
    return result.model_copy(
        update={"repo": url, "commit": commit, "repro": repro, "context_tokens": context.tokens}
    )


def _iterate(
    loop: _Loop, result: FixResult, client: anthropic.Anthropic, key: str, max_attempts: int
) -> FixResult:
    for number in range(1, max_attempts + 1):
        if loop.cancel is not None and loop.cancel.is_set():
            return result.model_copy(update={"status": "error", "summary": "cancelled"})
        needed = sum(estimate_tokens(json.dumps(m)) for m in loop.messages)
        if loop.spent + needed > loop.fixer.token_budget:
            return result.model_copy(
                update={
                    "status": "not_verified",
                    "summary": f"token budget exhausted before attempt {number}: "
                    f"{loop.spent} spent, about {needed} more needed, "
                    f"budget {loop.fixer.token_budget}",
                }
            )
        attempt = _attempt(loop, result, client, key, number)
        loop.attempts.append(attempt)
        log.info(
            "fix_attempt",
            fix_id=result.fix_id,
            attempt=number,
            status=attempt.status,
            reasons=attempt.reasons,
        )
        loop.progress(
            "attempt",
            f"attempt {number}: {attempt.status}" + "".join(f"\n  - {r}" for r in attempt.reasons),
        )
        if attempt.status == "verified":
            verdict = attempt.verdict
            summary = verdict.summary if verdict else "verified"
            return result.model_copy(
                update={
                    "status": "verified",
                    "summary": f"attempt {number}: {summary}",
                    "patch": attempt.patch,
                    "test_patch": attempt.test_patch,
                }
            )
        if attempt.status == "error":
            return result.model_copy(
                update={"status": "error", "summary": f"attempt {number}: {attempt.reasons[0]}"}
            )
    return result.model_copy(
        update={
            "status": "not_verified",
            "summary": f"no candidate verified in {max_attempts} attempt(s)",
        }
    )


def _attempt(
    loop: _Loop, result: FixResult, client: anthropic.Anthropic, key: str, number: int
) -> Attempt:
    started = time.monotonic()
    loop.progress("ask", f"attempt {number}: asking {loop.fixer.model} for a fix")
    reply = loop.ask(client, key)
    usage = reply.usage
    tokens_in = (
        usage.input_tokens
        + (usage.cache_creation_input_tokens or 0)
        + (usage.cache_read_input_tokens or 0)
    )
    loop.spent += tokens_in + usage.output_tokens
    attempt = Attempt(
        number=number,
        status="rejected",
        input_tokens=tokens_in,
        output_tokens=usage.output_tokens,
        cost_usd=loop.cost(tokens_in, usage.output_tokens),
    )
    loop.messages.append({"role": "assistant", "content": reply_blocks(reply)})
    attempt = _judge(loop, result, reply, attempt)
    attempt.seconds = round(time.monotonic() - started, 3)
    return attempt


def _judge(
    loop: _Loop, result: FixResult, reply: anthropic.types.Message, attempt: Attempt
) -> Attempt:
    """Check the reply, verify the candidate, and queue feedback unless it is verified."""
    uses = [u for u in tool_uses(reply) if u.name == TOOL_NAME]
    verdict: Verdict | None = None
    candidate: dict[str, TestResult] = {}
    if not uses:
        why = f"the reply did not call {TOOL_NAME} (stop_reason {reply.stop_reason})"
        attempt.reasons = [why]
        loop.messages.append(answer(reply, f"{why}. Call {TOOL_NAME} with your fix."))
        return attempt
    use = uses[0]
    try:
        fix = SubmitFix.model_validate(use.input)
    except ValidationError as exc:
        cut = " (the reply was cut off at max_tokens)" if reply.stop_reason == "max_tokens" else ""
        invalid = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        attempt.reasons = [f"the {TOOL_NAME} input is invalid{cut}: {invalid}"]
        loop.messages.append(answer(reply, feedback(attempt.reasons, None, {}), use.id))
        return attempt
    attempt = attempt.model_copy(
        update={"patch": fix.patch, "test_patch": fix.test_patch, "explanation": fix.explanation}
    )
    problems = [
        p
        for p in (
            _check_diff(fix.patch, "patch"),
            _check_diff(fix.test_patch, "test_patch") if fix.test_patch.strip() else None,
        )
        if p
    ]
    if not problems:
        verdict, candidate = _verify(loop, result, attempt, fix)
        attempt.verdict = verdict
        if verdict.status == "error":
            attempt.status = "error"
            attempt.reasons = [verdict.summary]
            return attempt
        problems = [
            f"{c.name}: {c.detail}" for c in verdict.checks if c.required and not c.passed
        ] or ([] if verdict.status == "verified" else [verdict.summary])
        if verdict.status == "verified":
            unproven = reproduces(
                verdict, loop.baselines.get(attempt.number), loop.report.short_type
            )
            problems = [unproven] if unproven else []
    if not problems:
        attempt.status = "verified"
        return attempt
    attempt.reasons = problems
    loop.messages.append(answer(reply, feedback(problems, verdict, candidate), use.id))
    return attempt


def _verify(
    loop: _Loop, result: FixResult, attempt: Attempt, fix: SubmitFix
) -> tuple[Verdict, dict[str, TestResult]]:
    # The test patch goes in as part of the candidate, not as the job's trusted test
    # patch: the weakening and lint checks then cover the model's tests too.
    repro = result.repro
    job = FixJob(
        repo=result.repo,
        base=result.commit or result.base,
        patch=_join(fix.patch, fix.test_patch),
        policy=loop.fixer.policy,
        repro=[repro.command] if repro else [],
        expect_error=repro.expect_error if repro else None,
        job_id=f"{result.fix_id}-a{attempt.number}",
    )
    loop.progress("verify", f"attempt {attempt.number}: verifying the candidate in the sandbox")
    # fail_fast by default here: a rejected attempt's early answer is enough to ask again
    # the later attempts are candidates on the same commit: their baseline records the map
    verdict = verify(
        job, loop.runtime, loop.progress, loop.cancel, fail_fast=True, caller="fix-loop"
    )
    baseline, candidate = _job_files(loop.runtime, verdict.job_id)
    loop.baselines[attempt.number] = baseline
    return verdict, candidate


def _keep(runtime: Runtime, result: FixResult, messages: list[dict[str, Any]]) -> None:
    """The result and the conversation, in the fix's own folder (no key in either)."""
    folder = runtime.settings.paths.root / "fixes" / result.fix_id
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "result.json").write_text(result.model_dump_json(indent=2), encoding="utf-8")
    (folder / "conversation.json").write_text(json.dumps(messages, indent=2), encoding="utf-8")


def write_outputs(result: FixResult, out_dir: Path) -> list[Path]:
    """fix.diff, test.diff and PR.md of a verified result, and result.json always."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    files = {
        "fix.diff": result.patch,
        "test.diff": result.test_patch,
        "PR.md": result.pull_request,
        "result.json": result.model_dump_json(indent=2) + "\n",
    }
    for name, text in files.items():
        if text:
            path = out_dir / name
            path.write_text(text, encoding="utf-8")
            written.append(path)
    return written
