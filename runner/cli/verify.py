"""`verify-patch`: prove or disprove one candidate fix; exit 0 verified, 1 rejected, 2 error."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from runner import __version__
from runner.cli.common import (
    Parser,
    check_writable,
    command_settings,
    run_command,
    set_job_folder,
    stderr,
    terminate_as_interrupt,
)
from runner.cli.interrupt import interruptible, until_cancelled
from runner.errors import JobInputError, RunnerError, UsageError

if TYPE_CHECKING:
    from runner.models import Verdict


def _verify_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="verify-patch",
        description="Prove or disprove a candidate fix: run the repository's tests and flake8 "
        "without and with the patch in hardened containers. Exit 0 verified, 1 rejected, "
        "2 error or bad usage.",
    )
    parser.add_argument("--version", action="version", version=f"fixrunner {__version__}")
    parser.add_argument("--repo", required=True, help="repository: local path or git URL")
    parser.add_argument("--base", default="HEAD", help="base revision (default HEAD)")
    parser.add_argument(
        "--patch", required=True, help="candidate unified diff file, or - for stdin"
    )
    parser.add_argument("--test-patch", help="regression tests that show the bug (a diff file)")
    parser.add_argument(
        "--fail-to-pass",
        nargs="+",
        action="extend",
        default=[],
        metavar="TEST_ID",
        help="test ids that must fail before and pass after",
    )
    parser.add_argument(
        "--repro",
        action="append",
        default=[],
        metavar="CMD",
        help="a command that shows the production error (run from the repository root, "
        "split with shell rules, never through a shell); repeatable",
    )
    parser.add_argument(
        "--expect-error",
        metavar="TEXT",
        help="what the baseline must show: 'Type' or 'Type: message prefix' of the last exception",
    )
    parser.add_argument("--policy", default="default", help="policy name or .toml file")
    parser.add_argument("--config", type=Path, default=None, help="runner.toml to read")
    parser.add_argument("--job-id", default=None, help="id for the job folder (default: generated)")
    parser.add_argument(
        "--json", action="store_true", help="print the verdict JSON alone on stdout"
    )
    parser.add_argument("--output", type=Path, help="also write the verdict JSON to this file")
    parser.add_argument(
        "--format",
        choices=["text", "json", "github"],
        default=None,
        help="stdout format; github also writes $GITHUB_OUTPUT and $GITHUB_STEP_SUMMARY "
        "and prints workflow annotations",
    )
    parser.add_argument(
        "--junit", type=Path, metavar="DIR", help="write baseline.xml and candidate.xml here"
    )
    parser.add_argument(
        "--sarif", type=Path, metavar="FILE", help="write the new lint findings as SARIF 2.1.0"
    )
    parser.add_argument(
        "--fail-on",
        choices=["rejected", "never"],
        default="rejected",
        help="never: a rejected verdict exits 0 (an error still exits 2)",
    )
    parser.add_argument(
        "--record-map",
        action="store_true",
        help="record the commit's per-test map with the baseline, for later candidates on "
        "the same commit (slower first baseline; default: [affected] record_map)",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log every step on stderr")
    return parser


def _read_patch(value: str, what: str) -> str:
    if value == "-":
        return sys.stdin.read()
    path = Path(value)
    try:
        return path.read_text(encoding="utf-8", errors="surrogateescape")
    except OSError as exc:
        raise UsageError(f"cannot read the {what} {value}: {exc.strerror}") from exc


def _verify_patch(argv: Sequence[str] | None) -> int:
    # parsed first: --help, --version and bad usage answer before the heavy imports
    args = _verify_parser().parse_args(argv)

    from pydantic import ValidationError
    from rich.console import Console

    from runner.cli.progress import PhaseProgress
    from runner.core.policy import load_policy
    from runner.core.repro import check_expected, split_command
    from runner.models import FixJob
    from runner.reports.text import plain, render_json, render_text
    from runner.verify.pipeline import Runtime, new_job_id, verify
    from runner.verify.runtime import POLICIES_DIR

    fmt = "json" if args.json else (args.format or "text")
    settings = command_settings(args)
    # Outputs the user named are checked before any work: a run of minutes must not end
    # in "cannot write".
    for path, flag in ((args.output, "--output"), (args.sarif, "--sarif")):
        if path is not None:
            check_writable(path, flag)
    if args.junit is not None:
        check_writable(args.junit, "--junit", folder=True)
    repo = args.repo
    if "://" not in repo and Path(repo).exists():
        repo = str(Path(repo).resolve())
    try:
        job = FixJob(
            repo=repo,
            base=args.base,
            patch=_read_patch(args.patch, "patch"),
            test_patch=_read_patch(args.test_patch, "test patch") if args.test_patch else None,
            fail_to_pass=args.fail_to_pass,
            policy=str(args.policy),
            repro=args.repro,
            expect_error=args.expect_error,
            job_id=args.job_id,
        )
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()
        )
        raise UsageError(f"verify-patch: {problems}") from exc
    if args.expect_error and not args.repro:
        raise UsageError("verify-patch: --expect-error needs at least one --repro command")
    try:
        check_expected(args.expect_error)
        for command in args.repro:
            split_command(command)
    except JobInputError as exc:
        raise UsageError(f"verify-patch: {exc}") from exc
    try:
        load_policy(job.policy, POLICIES_DIR)
    except RunnerError as exc:
        raise UsageError(f"verify-patch: --policy {job.policy}: {exc}") from exc
    job = job.model_copy(update={"job_id": job.job_id or new_job_id()})
    # SIGTERM from here on is a clean stop too (the base image may be built first)
    terminate_as_interrupt()
    runtime = Runtime.start(settings)
    set_job_folder(runtime.jobs_dir / str(job.job_id))

    with PhaseProgress(stderr.console) as progress:
        verdict = interruptible(
            lambda cancel: verify(
                job,
                runtime,
                until_cancelled(progress, cancel),
                cancel,
                record_map=args.record_map,
            ),
            runtime,
            str(job.job_id),
        )
    if args.output:
        # its folder may not exist yet: check_writable accepted the nearest existing one
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(render_json(verdict), encoding="utf-8")
    job_folder = runtime.jobs_dir / verdict.job_id
    _write_reports(verdict, job_folder, args.junit, args.sarif)
    if fmt == "json":
        sys.stdout.write(render_json(verdict))
    elif fmt == "github":
        _render_github(verdict, job_folder, args.output or job_folder / "verdict.json")
    else:
        console = Console(width=None if sys.stdout.isatty() else 120)
        render_text(verdict, console)
        console.print(plain(f"job {verdict.job_id}: {job_folder}"), style="dim", soft_wrap=True)
    return exit_code(verdict.status, args.fail_on)


def exit_code(status: str, fail_on: str = "rejected") -> int:
    """0 verified, 1 rejected, 2 error; ``--fail-on never`` turns only rejected into 0."""
    if status == "rejected" and fail_on == "never":
        return 0
    return {"verified": 0, "rejected": 1, "error": 2}[status]


def _write_reports(
    verdict: Verdict, job_folder: Path, junit: Path | None, sarif: Path | None
) -> None:
    from runner.reports.junit import write_junit
    from runner.reports.sarif import render_sarif

    try:
        if junit is not None:
            write_junit(verdict, job_folder, junit)
        if sarif is not None:
            sarif.parent.mkdir(parents=True, exist_ok=True)
            sarif.write_text(render_sarif(verdict), encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"verify-patch: cannot write a report: {exc}") from exc


def _render_github(verdict: Verdict, job_folder: Path, verdict_json: Path) -> None:
    """Outputs, job summary and annotations where GitHub reads them (files from its env)."""
    import io
    import os

    from rich.console import Console

    from runner.reports.github import quote_untrusted, render_github
    from runner.reports.text import render_text

    def env_path(name: str) -> Path | None:
        value = os.environ.get(name)
        if not value:
            stderr.print(f"[dim]{name} is not set: skipped[/dim]")
        return Path(value) if value else None

    lines = render_github(
        verdict,
        verdict_json.resolve(),
        output_file=env_path("GITHUB_OUTPUT"),
        summary_file=env_path("GITHUB_STEP_SUMMARY"),
        job_folder=job_folder,
    )
    buffer = io.StringIO()
    render_text(verdict, Console(file=buffer, width=120, no_color=True, highlight=False))
    # The table quotes test ids and messages from the candidate's run: no workflow
    # command in it may take effect, so it is printed between stop-commands markers.
    sys.stdout.write(quote_untrusted(buffer.getvalue()))
    sys.stdout.write("".join(f"{line}\n" for line in lines))


def verify_patch_main(argv: Sequence[str] | None = None) -> int:
    """``verify-patch`` console script: exit 0 verified, 1 rejected, 2 error."""
    return run_command(_verify_patch, argv)
