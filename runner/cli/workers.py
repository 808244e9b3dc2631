"""`runner worker` and `runner workers`; Celery is imported only when they run."""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

from runner.errors import UsageError

if TYPE_CHECKING:
    from runner.config import Settings


def add_worker_commands(sub: Any) -> None:
    """Add `runner worker` and `runner workers` to the `runner` parser's subparsers."""
    worker = sub.add_parser(
        "worker", help="run a Celery worker beside one Docker engine (see docs/scaling.md)"
    )
    worker.add_argument(
        "--host", default=None, help="this worker's host name (default: [celery] host, hostname)"
    )
    worker.add_argument(
        "--slots", type=int, default=None, help="jobs at once (default: [celery] slots)"
    )
    worker.add_argument(
        "--seed-base-from",
        default=None,
        metavar="DOCKER_HOST",
        help="copy the base image from this engine when the worker's engine lacks it",
    )
    worker.set_defaults(func=_cmd_worker)

    workers = sub.add_parser("workers", help="list the live workers: engine, slots, images")
    workers.add_argument("--json", action="store_true", help="print JSON")
    workers.add_argument("--timeout", type=float, default=2.0, help="seconds to wait for replies")
    workers.set_defaults(func=_cmd_workers)


def _settings(args: argparse.Namespace) -> Settings:
    from runner.common.logs import configure_logging
    from runner.config import load_settings

    settings = load_settings(args.config)
    configure_logging(settings.log_level)
    return settings


def _public_url(url: str) -> str:
    """The broker URL without its credentials (they never reach a message)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def _cmd_worker(args: argparse.Namespace) -> int:
    from runner.distributed.worker import main

    return main(_settings(args), args.host, args.slots, args.seed_base_from)


def _cmd_workers(args: argparse.Namespace) -> int:
    from kombu.exceptions import OperationalError

    from runner.distributed.worker import list_workers

    settings = _settings(args)
    try:
        found = list_workers(settings, args.timeout)
    except (OperationalError, OSError) as exc:
        raise UsageError(
            f"runner workers: the broker at {_public_url(settings.celery.broker_url)} does not "
            f"answer ({exc}): start it (make broker) or set [celery] broker_url"
        ) from exc
    if args.json:
        print(json.dumps(found, indent=2, sort_keys=True))
        return 0
    if not found:
        print("no live workers answered", file=sys.stderr)
        return 1
    print(f"{'host':<16} {'slots':>5} {'running':>7} {'images':>6}  engine")
    for w in found:
        running = len(w.get("running", []))
        images = len(w.get("images", []))
        print(f"{w['host']:<16} {w['slots']:>5} {running:>7} {images:>6}  {w['engine']}")
        for tag in w.get("images", []):
            print(f"{'':<16} {tag}")
    return 0
