"""`runner fix`: ask Claude for a fix of an error report and verify each attempt."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from runner.cli.common import check_writable, stderr, terminate_as_interrupt
from runner.errors import UsageError


def add_fix_command(sub: Any) -> None:
    """Add `runner fix` to the `runner` parser's subparsers."""
    fix = sub.add_parser(
        "fix",
        help="ask Claude for a fix of an error report and verify it (exit 0 verified, "
        "1 none verified, 2 error)",
    )
    fix.add_argument("--repo", required=True, help="repository: local path or git URL")
    fix.add_argument("--base", default="HEAD", help="revision that failed (default HEAD)")
    fix.add_argument(
        "--error", required=True, type=Path, help="error report: JSON, or a traceback as printed"
    )
    fix.add_argument("--max-attempts", type=int, default=None, help="default: [fixer] max_attempts")
    fix.add_argument("--json", action="store_true", help="print the result JSON alone on stdout")
    fix.add_argument(
        "--output-dir",
        type=Path,
        default=None,
        help="write fix.diff, test.diff, PR.md, result.json",
    )
    from runner.cli.pullrequest import add_pr_arguments  # imports no GitHub client

    add_pr_arguments(fix)
    fix.set_defaults(func=_cmd_fix)


def _cmd_fix(args: argparse.Namespace) -> int:
    from pydantic import ValidationError
    from rich.markup import escape

    from runner.cli.interrupt import interruptible, until_cancelled
    from runner.cli.pullrequest import pr_target, publish
    from runner.common.logs import configure_logging
    from runner.config import load_settings
    from runner.fix.errorreport import ErrorReport
    from runner.fix.loop import make_client, run_fix, write_outputs
    from runner.models import new_fix_id
    from runner.verify.pipeline import Runtime

    settings = load_settings(args.config)
    configure_logging("warning")
    if args.max_attempts is not None and args.max_attempts < 1:
        raise UsageError("runner fix: --max-attempts must be at least 1")
    if args.output_dir is not None:
        check_writable(args.output_dir, "--output-dir", folder=True)
    try:
        report = ErrorReport.from_text(args.error.read_text(encoding="utf-8"))
    except OSError as exc:
        raise UsageError(f"runner fix: cannot read {args.error}: {exc.strerror}") from exc
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'report'}: {e['msg']}" for e in exc.errors()
        )
        raise UsageError(f"runner fix: {args.error} is not an error report: {problems}") from exc
    make_client(settings.fixer)  # a missing API key is one line before any work starts
    repo = args.repo
    if "://" not in repo and Path(repo).exists():
        repo = str(Path(repo).resolve())
    target = pr_target(args, settings, repo)  # --open-pr: checked before any work
    # SIGTERM from here on is a clean stop too (the base image may be built first)
    terminate_as_interrupt()
    runtime = Runtime.start(settings)

    def progress(phase: str, message: str) -> None:
        stderr.print(f"[dim]>[/dim] {phase:<9} {escape(message)}")

    fix_id = new_fix_id()
    # Ctrl-C/SIGTERM: the attempt under way stops, and no container of this fix is left.
    result = interruptible(
        lambda cancel: run_fix(
            report,
            repo,
            args.base,
            runtime,
            settings,
            until_cancelled(progress, cancel),
            cancel,
            max_attempts=args.max_attempts,
            fix_id=fix_id,
        ),
        runtime,
        fix_id,
        prefix=True,
    )
    if target is not None:
        result = publish(target, result, report, settings, runtime.mirrors)
    if args.output_dir is not None:
        write_outputs(result, args.output_dir)
    if args.json:
        sys.stdout.write(result.model_dump_json(indent=2) + "\n")
    else:
        for attempt in result.attempts:
            tokens = f"{attempt.input_tokens} in / {attempt.output_tokens} out"
            print(f"attempt {attempt.number}: {attempt.status} ({tokens})")
            for reason in attempt.reasons:
                print(f"  - {reason}")
        print(f"{result.status.upper()}: {result.summary}")
        if result.pr is not None:
            print(f"pull request {result.pr.state}: {result.pr.url or result.pr.error}")
        if args.output_dir is not None:
            print(f"wrote {args.output_dir}")
    if result.pr is not None and result.pr.state == "failed":
        return 2  # verified, but the PR asked for is not there: the run did not finish
    return {"verified": 0, "not_verified": 1, "error": 2}[result.status]
