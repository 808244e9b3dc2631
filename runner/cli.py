"""Command-line entry points: ``runner …`` and ``verify-patch``.

Logging is configured here, once. Every RunnerError becomes one clear line on stderr
and its exit code; nothing else is caught.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import structlog
from rich.console import Console

from runner import __version__
from runner.config import Settings, load_settings
from runner.errors import ImageBuildError, JobInputError, RunnerError, UsageError
from runner.logs import configure_logging

log = structlog.get_logger(__name__)
stderr = Console(stderr=True, highlight=False, soft_wrap=True)


class _Parser(argparse.ArgumentParser):
    """argparse that exits 2 with one line, as the contract says for bad usage."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(f"{self.prog}: {message}")


def _settings(args: argparse.Namespace) -> Settings:
    settings = load_settings(args.config)
    configure_logging(settings.log_level)
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
    from runner.doctor import diagnose

    report = diagnose(_settings(args))
    for line in report.lines:
        stderr.print(line)
    return 0 if report.ok else 2


def _cmd_images_build(args: argparse.Namespace) -> int:
    from runner.engine import connect
    from runner.images import ensure_base_image

    settings = _settings(args)
    client = connect(settings.engine)
    if not args.quiet:
        stderr.print(f"base image ({settings.images.recipe} recipe) …")
    image = ensure_base_image(client, settings)
    action = f"built in {image.seconds:.0f}s" if image.built else "up to date, nothing built"
    print(f"{image.tag}  {image.id[:19]}  {action}")
    return 0


def _cmd_gc(args: argparse.Namespace) -> int:
    from runner.engine import connect, sweep_expired

    settings = _settings(args)
    sweep = sweep_expired(connect(settings.engine), settings.engine.instance)
    print(f"removed {len(sweep.removed)} expired container(s); {sweep.live} still within deadline")
    return 0


def _runner_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="runner", description="fixrunner: verify candidate fixes in a sandbox")
    parser.add_argument("--version", action="version", version=f"fixrunner {__version__}")
    parser.add_argument("--config", type=Path, default=None, help="runner.toml to read")
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
    parser.add_argument("--format", choices=["text", "json"], default=None, help="stdout format")
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

    from runner.models import FixJob
    from runner.pipeline import Runtime, verify
    from runner.repro import check_expected, split_command
    from runner.report import render_json, render_text

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
    if fmt == "json":
        sys.stdout.write(render_json(verdict))
    else:
        render_text(verdict, Console(width=None if sys.stdout.isatty() else 120))
    return {"verified": 0, "rejected": 1, "error": 2}[verdict.status]


def verify_patch_main(argv: Sequence[str] | None = None) -> int:
    """``verify-patch`` console script: exit 0 verified, 1 rejected, 2 error."""
    return _run(_verify_patch, argv)
