"""`runner serve`, `runner openapi` and `runner token create|list|revoke`.

FastAPI and uvicorn are imported only when `runner serve` runs, so every other
command starts as fast as before.
"""

from __future__ import annotations

import argparse
import signal
import socket
import sys
from typing import Any

from runner.errors import UsageError


def add_service_commands(sub: Any) -> None:
    """Add the service's commands to the `runner` parser's subparsers."""
    serve = sub.add_parser("serve", help="run the HTTP API (see README, Service)")
    serve.add_argument("--host", default=None, help="listen address (default: [service] host)")
    serve.add_argument("--port", type=int, default=None, help="port (default: [service] port)")
    serve.set_defaults(func=_cmd_serve)

    openapi = sub.add_parser("openapi", help="print the API's OpenAPI document")
    openapi.set_defaults(func=_cmd_openapi)

    token = sub.add_parser("token", help="API tokens of `runner serve`")
    token_sub = token.add_subparsers(dest="token_command", required=True, parser_class=type(token))
    create = token_sub.add_parser("create", help="make a token; it is printed once")
    create.add_argument("--name", required=True, help="who holds it (unique)")
    create.add_argument(
        "--callback-secret-env",
        default=None,
        metavar="VAR",
        help="sign callbacks with the secret in this environment variable "
        "instead of a generated one",
    )
    create.set_defaults(func=_cmd_token_create)
    listing = token_sub.add_parser("list", help="token names and states (never secrets)")
    listing.set_defaults(func=_cmd_token_list)
    revoke = token_sub.add_parser("revoke", help="revoke a token (takes effect at once)")
    revoke.add_argument("name")
    revoke.set_defaults(func=_cmd_token_revoke)


def _settings(args: argparse.Namespace) -> Any:
    from runner.common.logs import configure_logging
    from runner.config import load_settings

    settings = load_settings(args.config)
    configure_logging(settings.log_level)
    return settings


def _cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from runner.service.app import create_app
    from runner.service.core import Service

    settings = _settings(args)
    host = args.host or settings.service.host
    port = settings.service.port if args.port is None else args.port
    tokens_file = settings.service.tokens_file
    if tokens_file is not None and not tokens_file.expanduser().is_file():
        raise UsageError(
            f"runner serve: the tokens file {tokens_file} ([service] tokens_file) does not "
            "exist: create it with `runner token create`, or drop the key"
        )
    _check_port(host, port)
    remote = None
    if settings.service.executor == "celery":
        from runner.distributed.executor import celery_executor

        remote = celery_executor
    service = Service.build(settings, remote)
    config = uvicorn.Config(
        create_app(service),
        host=host,
        port=port,
        log_config=None,  # structlog, configured above, writes the request lines
        access_log=False,
        lifespan="on",
        # Open log streams are cut after this; running jobs get shutdown_grace_s after.
        timeout_graceful_shutdown=3,
    )
    # uvicorn re-raises a caught SIGTERM after its graceful shutdown; by then the work
    # is done (jobs finished or requeued), so the re-raised one is ignored: exit 0.
    signal.signal(signal.SIGTERM, lambda signum, frame: None)
    server = uvicorn.Server(config)
    print(f"runner serve: listening on http://{host}:{port}", file=sys.stderr, flush=True)
    server.run()
    return 0 if server.started else 2


def _check_port(host: str, port: int) -> None:
    """One clear line when the address is taken, instead of uvicorn's logged failure."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        # as uvicorn binds: a port in TIME_WAIT is free, one with a listener is not
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise UsageError(
                f"runner serve: cannot listen on {host}:{port}: {exc.strerror or exc} "
                "(another process has it? pick one with --port)"
            ) from exc


def _cmd_openapi(args: argparse.Namespace) -> int:
    from runner.service.app import openapi_text

    sys.stdout.write(openapi_text())
    return 0


def _cmd_token_create(args: argparse.Namespace) -> int:
    from runner.config import load_settings
    from runner.service.auth import create_token, tokens_path

    settings = load_settings(args.config)
    path = tokens_path(settings)
    configured = [t.name for t in settings.service.tokens]
    token, record = create_token(path, args.name, args.callback_secret_env, configured)
    # The token goes to stdout alone (scriptable); everything else to stderr.
    print(token)
    print(f"token {record.name!r} stored as a hash in {path}", file=sys.stderr)
    if record.callback_secret:
        print(
            f"callback secret (verify X-Runner-Signature with it): {record.callback_secret}",
            file=sys.stderr,
        )
    print("the token is shown only now; keep it somewhere safe", file=sys.stderr)
    return 0


def _cmd_token_list(args: argparse.Namespace) -> int:
    from runner.config import load_settings
    from runner.service.auth import token_summary

    for row in token_summary(load_settings(args.config)):
        print(f"{row['name']:<24} {row['source']:<12} {row['state']}")
    return 0


def _cmd_token_revoke(args: argparse.Namespace) -> int:
    from runner.config import load_settings
    from runner.service.auth import revoke_token, tokens_path

    settings = load_settings(args.config)
    if revoke_token(tokens_path(settings), args.name):
        print(f"token {args.name!r} revoked", file=sys.stderr)
        return 0
    if any(t.name == args.name for t in settings.service.tokens):
        raise UsageError(
            f"token {args.name!r} is configured in runner.toml: delete its [[service.tokens]] entry"
        )
    raise UsageError(f"no live token named {args.name!r} in {tokens_path(settings)}")
