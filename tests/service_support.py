"""Helpers for the service tests: a real `runner serve` subprocess, tiny git repos, a receiver.

Imported by tests/test_service*.py and tests/test_client.py (not a test module).
"""

from __future__ import annotations

import contextlib
import http.server
import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import docker
import httpx
from conftest import TEST_INSTANCE

from runner.client import RunnerClient
from runner.sandbox.labels import LABEL_JOB, LABEL_OWNER
from runner.service.auth import create_token

REPO_ROOT = Path(__file__).resolve().parent.parent
RUNNER = Path(sys.executable).parent / "runner"
COMMIT_DATE = "2026-11-01T12:00:00+00:00"

CALC = """
    def add(a, b):
        return a - b


    def mul(a, b):
        return a * b
"""
TESTS = """
    from calc import add, mul


    def test_add():
        assert add(2, 3) == 5


    def test_mul():
        assert mul(2, 3) == 6
"""
SLOW_TEST = """
    import time


    def test_slow():
        time.sleep({seconds})
"""


def _diff(*lines: str) -> str:
    # Built line by line: a context line of a blank source line is a lone space.
    return "\n".join(lines) + "\n"


_HEADER = ("--- a/calc.py", "+++ b/calc.py")
GOOD = _diff(
    *_HEADER, "@@ -1,5 +1,5 @@", " def add(a, b):", "-    return a - b", "+    return a + b",
    " ", " ", " def mul(a, b):",
)  # fmt: skip
BREAKS_OTHER = _diff(
    *_HEADER, "@@ -1,6 +1,6 @@", " def add(a, b):", "-    return a - b", "+    return a + b",
    " ", " ", " def mul(a, b):", "-    return a * b", "+    return a + b",
)  # fmt: skip
NOT_APPLYING = _diff(
    *_HEADER, "@@ -1,5 +1,5 @@", " def add(a, b):", "-    return a - b - 0", "+    return a + b",
    " ", " ", " def mul(a, b):",
)  # fmt: skip


def make_calc_repo(root: Path, slow_seconds: float | None = None) -> Path:
    """A tiny pure-Python project (one failing test) committed on 2026-11-01."""
    files = {
        "calc.py": CALC,
        "tests/test_calc.py": TESTS,
        "requirements-test.txt": "pytest==8.3.5\nflake8==7.1.2\n",
    }
    if slow_seconds is not None:
        files["tests/test_slow.py"] = SLOW_TEST.format(seconds=slow_seconds)
    root.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
    env = {**os.environ, "GIT_COMMITTER_DATE": COMMIT_DATE, "GIT_AUTHOR_DATE": COMMIT_DATE}
    identity = ["-c", "user.name=t", "-c", "user.email=t@example.invalid"]
    for argv in (["init", "-q"], ["add", "-A"], [*identity, "commit", "-qm", "c"]):
        subprocess.run(["git", *argv], cwd=root, env=env, check=True, timeout=30)
    return root


def free_port() -> int:
    """A port free on loopback right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _toml_value(value: Any) -> str:
    return json.dumps(value) if not isinstance(value, bool) else str(value).lower()


@dataclass
class Server:
    """One `runner serve` subprocess with its config, token and log file."""

    folder: Path
    config: Path
    instance: str
    url: str
    token: str
    callback_secret: str
    log: Path
    proc: subprocess.Popen[bytes] | None = None
    returncodes: list[int] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)  # added to the process's environment

    def start(self, timeout_s: float = 60) -> None:
        """Start the process and wait until /healthz answers."""
        # The machine's own RUNNER_* and ANTHROPIC_* settings never leak into a test server.
        inherited = {
            k: v for k, v in os.environ.items() if not k.startswith(("RUNNER_", "ANTHROPIC_"))
        }
        env = {**inherited, **self.env}
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [str(RUNNER), "--config", str(self.config), "serve"],
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=self.folder,
            )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"runner serve exited: {self.log.read_text()[-3000:]}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"runner serve did not come up: {self.log.read_text()[-3000:]}")

    def stop(self, sig: int = signal.SIGTERM, timeout_s: float = 90) -> int:
        """Signal the process and return its exit code."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        code = self.proc.wait(timeout=timeout_s)
        self.returncodes.append(code)
        self.proc = None
        return code

    def client(self, token: str | None = None) -> RunnerClient:
        """A client with this server's token (or another)."""
        return RunnerClient(self.url, self.token if token is None else token, timeout=30)

    def runner(self, *args: str) -> subprocess.CompletedProcess[str]:
        """Run a `runner` command against this server's config."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("RUNNER_")}
        return subprocess.run(
            [str(RUNNER), "--config", str(self.config), *args],
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
        )


def make_server(folder: Path, state_dir: Path, instance: str, **service: Any) -> Server:
    """Write a runner.toml for a service on a free port (state shared, store private).

    The instance name is prefixed with this test session's owner, so conftest's
    leftover check covers the service's containers and no other session touches them.
    """
    instance = f"{TEST_INSTANCE}-{instance}"
    folder.mkdir(parents=True, exist_ok=True)
    port = free_port()
    options = {
        "port": port,
        "allow_local_repos": True,
        "repo_allowlist": ["github.com"],
        # The receivers listen on loopback, which a callback may reach only when named.
        "callback_allowlist": ["127.0.0.1"],
        "store_path": str(folder / "service.db"),
        "tokens_file": str(folder / "tokens.json"),
        "callback_backoff_s": 0.2,
        "shutdown_grace_s": 5.0,
        **service,
    }
    lines = [
        'log_level = "info"',
        "[engine]",
        f'instance = "{instance}"',
        "[paths]",
        f"state_dir = {json.dumps(str(state_dir))}",
        "[service]",
        *(f"{key} = {_toml_value(value)}" for key, value in options.items()),
    ]
    config = folder / "runner.toml"
    config.write_text("\n".join(lines) + "\n", encoding="utf-8")
    token, record = create_token(folder / "tokens.json", "ingest")
    assert record.callback_secret
    return Server(
        folder=folder,
        config=config,
        instance=instance,
        url=f"http://127.0.0.1:{port}",
        token=token,
        callback_secret=record.callback_secret,
        log=folder / "serve.log",
    )


def job_containers(client: docker.DockerClient, instance: str, job_id: str | None = None) -> list:
    """This instance's containers (of one job, when given)."""
    labels = [f"{LABEL_OWNER}={instance}"]
    if job_id is not None:
        labels.append(f"{LABEL_JOB}={job_id}")
    return client.containers.list(all=True, ignore_removed=True, filters={"label": labels})


def wait_for(predicate: Any, timeout_s: float, what: str, poll_s: float = 0.2) -> Any:
    """Poll until ``predicate()`` is truthy; fail naming ``what``."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(poll_s)
    raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")


@dataclass
class Receiver:
    """A callback receiver on loopback: answers 500 ``fail_first`` times, then 200."""

    fail_first: int = 0
    host: str = "127.0.0.1"  # any of 127/8: a test may use one its server does not allowlist
    requests: list[tuple[dict[str, str], bytes, int]] = field(default_factory=list)
    server: http.server.ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://{self.host}:{self.server.server_address[1]}/hook"

    def __enter__(self) -> Receiver:
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                code = 500 if len(receiver.requests) < receiver.fail_first else 200
                receiver.requests.append((dict(self.headers.items()), body, code))
                self.send_response(code)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                return None

        self.server = http.server.ThreadingHTTPServer((self.host, 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.shutdown()
        self.server.server_close()


def shared_state(base: Path) -> Path:
    """One state dir for every service test server of the session: caches are shared."""
    path = base / "service-state"
    path.mkdir(exist_ok=True)
    return path


@contextlib.contextmanager
def serving(
    factory: Any, name: str, before_start: Callable[[Server], None] | None = None, **service: Any
) -> Iterator[Server]:
    """A started module server (shared state, private store) that must stop cleanly.

    ``factory`` is pytest's tmp_path_factory; ``before_start`` may edit the config or env.
    """
    srv = make_server(factory.mktemp(name), shared_state(factory.getbasetemp()), name, **service)
    if before_start is not None:
        before_start(srv)
    srv.start()
    yield srv
    assert srv.stop() == 0, srv.log.read_text()[-3000:]
