"""Command-line entry points: ``runner …`` and ``verify-patch``.

Logging is configured here, once. Every RunnerError becomes one clear line on stderr
and its exit code; nothing else is caught. Command groups live beside this module
(verify, fix, service, workers, doctor); this one holds the `runner` parser.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from runner import __version__
from runner.cli.common import Parser, command_settings, run_command, stderr
from runner.cli.verify import _verify_parser, exit_code, verify_patch_main
from runner.errors import UsageError

__all__ = ["_verify_parser", "exit_code", "runner_main", "verify_patch_main"]


def _cmd_doctor(args: argparse.Namespace) -> int:
    from rich.console import Console

    from runner.cli.doctor import diagnose

    report = diagnose(command_settings(args))
    # the report is the command's output: stdout, so it can be piped or saved
    stdout = Console(highlight=False, soft_wrap=True)
    for line in report.lines:
        stdout.print(line)
    return 0 if report.ok else 2


def _cmd_images_build(args: argparse.Namespace) -> int:
    from runner.environments.images import ensure_base_image
    from runner.sandbox.engine import connect

    settings = command_settings(args)
    client = connect(settings.engine)
    if not args.quiet:
        which = f"Python {args.python}" if args.python else "default"
        stderr.print(f"base image ({settings.images.recipe} recipe, {which}) …")
    image = ensure_base_image(client, settings, args.python)
    action = f"built in {image.seconds:.0f}s" if image.built else "up to date, nothing built"
    print(f"{image.tag}  {image.id[:19]}  {action}")
    return 0


def _cmd_gc(args: argparse.Namespace) -> int:
    from runner.sandbox.engine import connect, sweep_expired

    settings = command_settings(args)
    sweep = sweep_expired(connect(settings.engine), settings.engine.instance)
    print(f"removed {len(sweep.removed)} expired container(s); {sweep.live} still within deadline")
    return 0


def _cmd_logs(args: argparse.Namespace) -> int:
    import re

    settings = command_settings(args)
    jobs = settings.paths.root / "jobs"
    # a job id names a folder under jobs/ and nothing else (no "..", no "/")
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}", args.job):
        raise UsageError(f"runner logs: {args.job!r} is not a job id")
    folder = jobs / args.job
    if not folder.is_dir():
        raise UsageError(f"runner logs: no job {args.job} in {jobs}")
    logs = sorted((folder / "logs").glob("*.log")) if (folder / "logs").is_dir() else []
    if args.phase:
        logs = [p for p in logs if p.stem == args.phase]
        if not logs:
            raise UsageError(f"runner logs: job {args.job} has no {args.phase} log")
    for path in logs:
        text = path.read_text(encoding="utf-8", errors="replace")
        sys.stdout.write(f"==> {path.stem} ({path}) <==\n{text}")
        sys.stdout.write("" if not text or text.endswith("\n") else "\n")
    if not logs:
        print(f"job {args.job} has no logs yet ({folder})", file=sys.stderr)
    return 0


def _cmd_env_show(args: argparse.Namespace) -> int:
    import tempfile

    from runner.environments.builds import commit_date, describe_environment
    from runner.workspace.git import NetworkLimits
    from runner.workspace.mirrors import MirrorCache
    from runner.workspace.trees import CheckoutLimits, checkout, remove_tree
    from runner.workspace.urls import validate_repo_url

    settings = command_settings(args)
    repo = args.repo
    if "://" not in repo and Path(repo).exists():
        repo = str(Path(repo).resolve())
    url = validate_repo_url(repo, settings.security.allow_local_repos)
    mirrors = MirrorCache(
        settings.paths.root / "mirrors",
        settings.security.allow_local_repos,
        network=NetworkLimits.of(settings.workspace),
    )
    mirror, commit = mirrors.resolve(url, args.base)
    with tempfile.TemporaryDirectory(prefix="fixrunner-env-") as tmp:
        tree = checkout(mirror, commit, Path(tmp) / "tree", CheckoutLimits.of(settings.workspace))
        try:
            env = describe_environment(tree, settings, repo, commit_date(tree))
        finally:
            remove_tree(tree)
    if args.json:
        sys.stdout.write(env.model_dump_json(indent=2) + "\n")
        return 0
    print(f"commit      {commit}")
    print(f"resolution  {env.source}")
    print(f"python      {env.python} ({env.python_reason})")
    for tool in ("pytest", "flake8"):
        print(f"{tool:<11} {getattr(env, tool) or '-'} ({env.tool_sources.get(tool, '?')})")
    print(f"project     {'installed editable' if env.install_project else 'on sys.path'}")
    print(f"packages    {len(env.pins)} pinned:")
    for pin in env.pins:
        print(f"  {pin}")
    for note in env.notes:
        print(f"note        {note}")
    return 0


def _runner_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="runner", description="fixrunner: verify candidate fixes in a sandbox")
    parser.add_argument("--version", action="version", version=f"fixrunner {__version__}")
    parser.add_argument("--config", type=Path, default=None, help="runner.toml to read")
    parser.add_argument("-v", "--verbose", action="store_true", help="log every step on stderr")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)

    doctor = sub.add_parser("doctor", help="report engine, images and limits")
    doctor.set_defaults(func=_cmd_doctor)

    images = sub.add_parser("images", help="sandbox images")
    images_sub = images.add_subparsers(dest="images_command", required=True, parser_class=Parser)
    build = images_sub.add_parser("build", help="build the base image if its recipe changed")
    build.add_argument("--quiet", action="store_true")
    build.add_argument(
        "--python",
        default=None,
        choices=["3.9", "3.10", "3.11", "3.12", "3.13"],
        help="the base carrying this Python (offline: 3.9 bullseye, 3.11 bookworm, 3.13 "
        "trixie); default: the default base",
    )
    build.set_defaults(func=_cmd_images_build)

    gc = sub.add_parser("gc", help="remove this runner's containers whose deadline passed")
    gc.set_defaults(func=_cmd_gc)

    logs = sub.add_parser("logs", help="print a job's logs (its folder's logs/*.log)")
    logs.add_argument("job", help="job id (printed at the end of a verify-patch run)")
    logs.add_argument("--phase", default=None, help="only this phase's log (e.g. candidate)")
    logs.set_defaults(func=_cmd_logs)

    env = sub.add_parser("env", help="repository environments")
    env_sub = env.add_subparsers(dest="env_command", required=True, parser_class=Parser)
    show = env_sub.add_parser(
        "show", help="how a repository's test environment resolves at a revision (builds nothing)"
    )
    show.add_argument("--repo", required=True, help="local path or git URL")
    show.add_argument("--base", default="HEAD", help="revision (default HEAD)")
    show.add_argument("--json", action="store_true", help="print the resolved environment as JSON")
    show.set_defaults(func=_cmd_env_show)

    from runner.cli.fix import add_fix_command
    from runner.cli.service import add_service_commands  # imports no web framework
    from runner.cli.workers import add_worker_commands  # imports no Celery

    add_fix_command(sub)
    add_worker_commands(sub)

    add_service_commands(sub)
    return parser


def _runner(argv: Sequence[str] | None) -> int:
    args = _runner_parser().parse_args(argv)
    return int(args.func(args))


def runner_main(argv: Sequence[str] | None = None) -> int:
    """``runner`` console script."""
    return run_command(_runner, argv)
