"""Command-line entry points: ``runner …`` and ``verify-patch``.

Logging is configured here, once. Every RunnerError becomes one clear line on stderr
and its exit code; nothing else is caught.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import structlog
from rich.console import Console

from runner import __version__
from runner.common.logs import configure_logging
from runner.config import Settings, load_settings
from runner.errors import ImageBuildError, JobInputError, RunnerError, UsageError

if TYPE_CHECKING:
    from runner.models import Verdict

log = structlog.get_logger(__name__)
stderr = Console(stderr=True, highlight=False, soft_wrap=True)


class _Parser(argparse.ArgumentParser):
    """argparse that exits 2 with one line, as the contract says for bad usage."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(f"{self.prog}: {message}")


def _settings(args: argparse.Namespace) -> Settings:
    settings = load_settings(args.config)
    # A person at a one-shot command reads its output, not the event log: only warnings
    # and errors unless --verbose. Long-running commands (serve, worker) log at the
    # configured level.
    configure_logging(settings.log_level if getattr(args, "verbose", False) else "warning")
    return settings


def _run(main: Callable[[Sequence[str] | None], int], argv: Sequence[str] | None) -> int:
    try:
        return main(argv)
    except ImageBuildError as exc:
        stderr.print(f"[red]error:[/red] {exc}")
        if exc.log:
            stderr.print("[dim]--- last lines of the build log ---[/dim]")
            stderr.print(exc.log, markup=False)
        return exc.exit_code
    except RunnerError as exc:
        stderr.print(f"[red]error:[/red] {exc}", markup=True)
        return exc.exit_code
    except KeyboardInterrupt:
        stderr.print("interrupted")
        return 130


# ---------------------------------------------------------------------------- runner


def _cmd_doctor(args: argparse.Namespace) -> int:
    from runner.cli.doctor import diagnose

    report = diagnose(_settings(args))
    for line in report.lines:
        stderr.print(line)
    return 0 if report.ok else 2


def _cmd_images_build(args: argparse.Namespace) -> int:
    from runner.environments.images import ensure_base_image
    from runner.sandbox.engine import connect

    settings = _settings(args)
    client = connect(settings.engine)
    if not args.quiet:
        stderr.print(f"base image ({settings.images.recipe} recipe) …")
    image = ensure_base_image(client, settings)
    action = f"built in {image.seconds:.0f}s" if image.built else "up to date, nothing built"
    print(f"{image.tag}  {image.id[:19]}  {action}")
    return 0


def _cmd_gc(args: argparse.Namespace) -> int:
    from runner.sandbox.engine import connect, sweep_expired

    settings = _settings(args)
    sweep = sweep_expired(connect(settings.engine), settings.engine.instance)
    print(f"removed {len(sweep.removed)} expired container(s); {sweep.live} still within deadline")
    return 0


def _cmd_env_show(args: argparse.Namespace) -> int:
    import tempfile

    from runner.environments.builds import commit_date, describe_environment
    from runner.environments.images import base_python
    from runner.workspace.repository import MirrorCache, checkout, remove_tree, validate_repo_url

    settings = _settings(args)
    repo = args.repo
    if "://" not in repo and Path(repo).exists():
        repo = str(Path(repo).resolve())
    url = validate_repo_url(repo, settings.security.allow_local_repos)
    mirrors = MirrorCache(settings.paths.root / "mirrors", settings.security.allow_local_repos)
    mirror, commit = mirrors.resolve(url, args.base)
    with tempfile.TemporaryDirectory(prefix="fixrunner-env-") as tmp:
        tree = checkout(mirror, commit, Path(tmp) / "tree")
        try:
            env = describe_environment(
                tree, settings, repo, commit_date(tree), python=base_python(settings.images)
            )
        finally:
            remove_tree(tree)
    if args.json:
        sys.stdout.write(env.model_dump_json(indent=2) + "\n")
        return 0
    print(f"commit      {commit}")
    print(f"resolution  {env.source}")
    print(f"python      {env.python}")
    for tool in ("pytest", "flake8"):
        print(f"{tool:<11} {getattr(env, tool) or '-'} ({env.tool_sources.get(tool, '?')})")
    print(f"project     {'installed editable' if env.install_project else 'on sys.path'}")
    print(f"packages    {len(env.pins)} pinned:")
    for pin in env.pins:
        print(f"  {pin}")
    for note in env.notes:
        print(f"note        {note}")
    return 0


def _cmd_fix(args: argparse.Namespace) -> int:
    from pydantic import ValidationError
    from rich.markup import escape

    from runner.cli.pullrequest import pr_target, publish
    from runner.fix.errorreport import ErrorReport
    from runner.fix.loop import make_client, run_fix, write_outputs
    from runner.verify.pipeline import Runtime

    settings = load_settings(args.config)
    configure_logging("warning")
    if args.max_attempts is not None and args.max_attempts < 1:
        raise UsageError("runner fix: --max-attempts must be at least 1")
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
    runtime = Runtime.start(settings)

    def progress(phase: str, message: str) -> None:
        stderr.print(f"[dim]>[/dim] {phase:<9} {escape(message)}")

    result = run_fix(
        report, repo, args.base, runtime, settings, progress, max_attempts=args.max_attempts
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


def _runner_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="runner", description="fixrunner: verify candidate fixes in a sandbox")
    parser.add_argument("--version", action="version", version=f"fixrunner {__version__}")
    parser.add_argument("--config", type=Path, default=None, help="runner.toml to read")
    parser.add_argument("-v", "--verbose", action="store_true", help="log every step on stderr")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    doctor = sub.add_parser("doctor", help="report engine, images and limits")
    doctor.set_defaults(func=_cmd_doctor)

    images = sub.add_parser("images", help="sandbox images")
    images_sub = images.add_subparsers(dest="images_command", required=True, parser_class=_Parser)
    build = images_sub.add_parser("build", help="build the base image if its recipe changed")
    build.add_argument("--quiet", action="store_true")
    build.set_defaults(func=_cmd_images_build)

    gc = sub.add_parser("gc", help="remove this runner's containers whose deadline passed")
    gc.set_defaults(func=_cmd_gc)

    env = sub.add_parser("env", help="repository environments")
    env_sub = env.add_subparsers(dest="env_command", required=True, parser_class=_Parser)
    show = env_sub.add_parser(
        "show", help="how a repository's test environment resolves at a revision (builds nothing)"
    )
    show.add_argument("--repo", required=True, help="local path or git URL")
    show.add_argument("--base", default="HEAD", help="revision (default HEAD)")
    show.add_argument("--json", action="store_true", help="print the resolved environment as JSON")
    show.set_defaults(func=_cmd_env_show)

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

    from runner.cli.service import add_service_commands  # imports no web framework
    from runner.cli.workers import add_worker_commands  # imports no Celery

    add_worker_commands(sub)

    add_service_commands(sub)
    return parser


def _runner(argv: Sequence[str] | None) -> int:
    args = _runner_parser().parse_args(argv)
    return int(args.func(args))


def runner_main(argv: Sequence[str] | None = None) -> int:
    """``runner`` console script."""
    return _run(_runner, argv)


# ---------------------------------------------------------------------- verify-patch


def _verify_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="verify-patch",
        description="Prove or disprove a candidate fix: run the repository's tests and flake8 "
        "without and with the patch in hardened containers. Exit 0 verified, 1 rejected, "
        "2 error or bad usage.",
    )
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
    from pydantic import ValidationError

    from runner.core.repro import check_expected, split_command
    from runner.models import FixJob
    from runner.reports.text import render_json, render_text
    from runner.verify.pipeline import Runtime, verify

    args = _verify_parser().parse_args(argv)
    fmt = "json" if args.json else (args.format or "text")
    settings = load_settings(args.config)
    # A person wants one progress line per phase; --verbose shows the structured log too.
    configure_logging(settings.log_level if args.verbose else "warning")
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
    runtime = Runtime.start(settings)

    def progress(phase: str, message: str) -> None:
        stderr.print(f"[dim]>[/dim] {phase:<9} {message}")

    verdict = verify(job, runtime, progress=progress)
    if args.output:
        args.output.write_text(render_json(verdict), encoding="utf-8")
    job_folder = runtime.jobs_dir / verdict.job_id
    _write_reports(verdict, job_folder, args.junit, args.sarif)
    if fmt == "json":
        sys.stdout.write(render_json(verdict))
    elif fmt == "github":
        _render_github(verdict, job_folder, args.output or job_folder / "verdict.json")
    else:
        render_text(verdict, Console(width=None if sys.stdout.isatty() else 120))
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
    return _run(_verify_patch, argv)
