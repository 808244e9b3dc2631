"""Helpers for tests/test_scaleout.py: a private RabbitMQ node and `runner worker` processes.

Everything listens on loopback (the node's AMQP port, its Erlang distribution port and
its own epmd); every process is started here and stopped here by its PID.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from service_support import RUNNER, free_port

RABBITMQ_SERVER = Path("/usr/lib/rabbitmq/bin/rabbitmq-server")


def _port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _stop(
    proc: subprocess.Popen[bytes] | None, timeout_s: float, sig: int = signal.SIGTERM
) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(sig)
    try:
        proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=30)


@dataclass
class Broker:
    """A private RabbitMQ node: its own epmd, ports, data folder; restartable."""

    root: Path
    name: str
    port: int = field(default_factory=free_port)
    dist_port: int = field(default_factory=free_port)
    epmd_port: int = field(default_factory=free_port)
    epmd: subprocess.Popen[bytes] | None = None
    server: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}//"

    def start(self, timeout_s: float = 90) -> None:
        """Start epmd (once) and the node; wait for its AMQP port."""
        self.root.mkdir(parents=True, exist_ok=True)
        (self.root / "rabbitmq.conf").write_text(
            f"listeners.tcp.1 = 127.0.0.1:{self.port}\n"
            # Longer than any job: a job running past it would be redelivered and run twice.
            "consumer_timeout = 7200000\n"
        )
        (self.root / "enabled_plugins").write_text("[].\n")
        log = (self.root / "broker.log").open("ab")
        if self.epmd is None or self.epmd.poll() is not None:
            self.epmd = subprocess.Popen(
                ["epmd", "-address", "127.0.0.1", "-port", str(self.epmd_port)],
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(self.root),  # the Erlang cookie lives here
            "ERL_EPMD_PORT": str(self.epmd_port),
            "ERL_EPMD_ADDRESS": "127.0.0.1",
            "RABBITMQ_NODENAME": f"{self.name}@localhost",
            "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "RABBITMQ_CONFIG_FILE": str(self.root / "rabbitmq.conf"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(self.root / "enabled_plugins"),
            "RABBITMQ_MNESIA_BASE": str(self.root / "mnesia"),
            "RABBITMQ_LOG_BASE": str(self.root / "log"),
            "RABBITMQ_LOGS": "-",
            "RABBITMQ_PID_FILE": str(self.root / "rabbit.pid"),
            "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": "-kernel inet_dist_use_interface {127,0,0,1}",
        }
        self.server = subprocess.Popen(
            [str(RABBITMQ_SERVER)], stdout=log, stderr=subprocess.STDOUT, env=env,
            start_new_session=True,
        )  # fmt: skip
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.server.poll() is not None:
                raise RuntimeError(f"rabbitmq exited: {self.log_tail()}")
            if _port_open(self.port):
                return
            time.sleep(0.25)
        raise RuntimeError(f"rabbitmq did not open its port: {self.log_tail()}")

    def stop(self, timeout_s: float = 60) -> None:
        """Stop the node (the wrapper script's beam child, by its PID) and wait."""
        if self.server is None:
            return
        with contextlib.suppress(FileNotFoundError, ValueError, ProcessLookupError):
            beam = int((self.root / "rabbit.pid").read_text().strip())
            os.kill(beam, signal.SIGTERM)
        _stop(self.server, timeout_s)
        self.server = None

    def close(self) -> None:
        """Stop the node and its epmd."""
        self.stop()
        _stop(self.epmd, 10)
        self.epmd = None

    def log_tail(self) -> str:
        return (self.root / "broker.log").read_text(errors="replace")[-3000:]


@dataclass
class Worker:
    """One `runner worker` subprocess bound to one engine through DOCKER_HOST."""

    host: str
    docker_host: str
    config: Path
    log: Path
    slots: int = 2
    proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("RUNNER_")}
        env["DOCKER_HOST"] = self.docker_host
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [str(RUNNER), "--config", str(self.config), "worker", "--host", self.host,
                 "--slots", str(self.slots)],
                stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True,
            )  # fmt: skip

    def kill(self) -> None:
        """kill -9, as a crash would."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)
        self.proc = None

    def stop(self) -> None:
        # SIGQUIT: Celery's cold shutdown, running jobs are not waited for (they requeue).
        _stop(self.proc, 20, signal.SIGQUIT)
        self.proc = None

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_tail(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]


def worker_config(
    path: Path, instance: str, state_dir: Path, broker_url: str, **celery: object
) -> Path:
    """A runner.toml for a worker: its owner label, caches, broker and local repositories."""
    lines = [
        'log_level = "info"',
        "[engine]",
        f'instance = "{instance}"',
        "[paths]",
        f'state_dir = "{state_dir}"',
        "[service]",
        "allow_local_repos = true",
        *celery_section(broker_url, **celery),
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def celery_section(broker_url: str, **options: object) -> list[str]:
    """The [celery] lines the service and the workers share."""
    values = {"broker_url": broker_url, "affinity_wait_s": 5.0, "cancel_wait_s": 10.0, **options}
    return ["[celery]", *(f"{k} = {_toml(v)}" for k, v in values.items())]


def _toml(value: object) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, str):
        return f'"{value}"'
    return str(value)
