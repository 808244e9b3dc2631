"""The service's edges against a real `runner serve` on loopback: callbacks, allowlist, queue, auth.

The server here allowlists only 127.0.0.2 for callbacks, so every spelling of
127.0.0.1 (and every private, link-local, metadata, multicast, reserved or
unspecified address) must be refused with 422 and leave no job behind.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from service_support import (
    GOOD,
    Receiver,
    Server,
    make_calc_repo,
    serving,
    wait_for,
)

from runner.environments.images import BaseImage
from runner.service.callbacks import DELIVERY_FAILED

pytestmark = pytest.mark.docker

ALLOWED_HOST = "127.0.0.2"
QUEUE_LIMIT = 5

REFUSED_CALLBACKS = [
    "http://127.0.0.1/hook",
    "http://127.1/hook",
    "http://2130706433/hook",
    "http://0x7f000001/hook",
    "http://017700000001/hook",
    "http://0x7f.1/hook",
    "http://[::1]/hook",
    "http://[::ffff:127.0.0.1]/hook",
    "http://[0:0:0:0:0:ffff:7f00:1]/hook",
    "http://user@127.0.0.1/hook",
    "http://user:pw@example.com@127.0.0.1/hook",
    "http://localhost/hook",
    "http://localhost./hook",
    "http://LOCALHOST:8080/hook",
    "https://127.0.0.1:443/hook",
    "http://0.0.0.0/hook",
    "http://0/hook",
    "http://[::]/hook",
    "http://10.0.0.1/hook",
    "http://172.16.0.1/hook",
    "http://192.168.1.1/hook",
    "http://100.64.0.1/hook",
    "http://169.254.169.254/latest/meta-data/",
    "http://[fe80::1]/hook",
    "http://[fc00::1]/hook",
    "http://224.0.0.1/hook",
    "http://[ff02::1]/hook",
    "http://240.0.0.1/hook",
    "http://does-not-resolve.invalid/hook",
]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, base_image: BaseImage) -> Iterator[Server]:
    with serving(
        tmp_path_factory,
        "svc-edges",
        concurrency=1,
        queue_limit=QUEUE_LIMIT,
        repo_allowlist=["127.0.0.1", "https://git.example.com/team/"],
        callback_allowlist=[ALLOWED_HOST],
        callback_attempts=1,
        callback_timeout_s=1.0,
        max_body_bytes=4096,
    ) as srv:
        yield srv


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_calc_repo(tmp_path_factory.mktemp("edges-calc") / "repo")


def _post(server: Server, body: object, token: str | None = None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token if token is not None else server.token}"}
    return httpx.post(f"{server.url}/v1/jobs", json=body, headers=headers, timeout=30)


def _jobs(server: Server) -> list[dict[str, object]]:
    response = httpx.get(
        f"{server.url}/v1/jobs",
        params={"limit": 1000},
        headers={"Authorization": f"Bearer {server.token}"},
        timeout=30,
    )
    assert response.status_code == 200
    jobs: list[dict[str, object]] = response.json()["jobs"]
    return jobs


# ----------------------------------------------------------------------------- callbacks


@pytest.mark.parametrize("url", REFUSED_CALLBACKS)
def test_a_callback_to_an_internal_address_is_refused_in_every_spelling(
    server: Server, repo: Path, url: str
) -> None:
    before = len(_jobs(server))
    response = _post(server, {"repo": str(repo), "patch": GOOD, "callback_url": url})
    assert response.status_code == 422, response.text
    assert "callback_url" in response.text
    assert len(_jobs(server)) == before


def test_a_callback_to_an_allowlisted_address_is_accepted_and_delivered(
    server: Server, repo: Path
) -> None:
    with Receiver(host=ALLOWED_HOST) as receiver:
        body = {
            "repo": str(repo),
            "patch": GOOD,
            "base": "no-such-ref",
            "callback_url": receiver.url,
        }
        response = _post(server, body)
        assert response.status_code == 202, response.text
        job_id = response.json()["id"]
        wait_for(lambda: receiver.requests, 60, "the callback")
    headers, _, code = receiver.requests[0]
    assert code == 200 and headers["X-Runner-Job"] == job_id
    assert headers["Host"] == receiver.url.split("/")[2]


def test_a_failed_delivery_does_not_tell_a_closed_port_from_a_silent_one(
    server: Server, repo: Path
) -> None:
    closed = socket.socket()
    closed.bind((ALLOWED_HOST, 0))
    closed_port = closed.getsockname()[1]
    closed.close()  # nothing listens there now: connection refused
    silent, held = _silent_listener(ALLOWED_HOST)
    urls = {
        "closed": f"http://{ALLOWED_HOST}:{closed_port}/hook",
        "silent": f"http://{ALLOWED_HOST}:{silent.getsockname()[1]}/hook",
    }
    try:
        ids = {}
        for name, url in urls.items():
            body = {"repo": str(repo), "patch": GOOD, "base": "no-such-ref", "callback_url": url}
            response = _post(server, body)
            assert response.status_code == 202, response.text
            ids[name] = response.json()["id"]
        errors = {}
        for name, job_id in ids.items():
            view = wait_for(
                lambda job_id=job_id: _delivered(server, job_id), 60, f"the {name} delivery"
            )
            errors[name] = view["deliveries"][0]["error"]
            assert view["callback_state"] == "failed"
    finally:
        silent.close()
        for conn in held:
            conn.close()
    assert errors == {"closed": DELIVERY_FAILED, "silent": DELIVERY_FAILED}


def _delivered(server: Server, job_id: str) -> dict[str, object] | None:
    response = httpx.get(
        f"{server.url}/v1/jobs/{job_id}",
        headers={"Authorization": f"Bearer {server.token}"},
        timeout=30,
    )
    view: dict[str, object] = response.json()
    return view if view["deliveries"] else None


def _silent_listener(host: str) -> tuple[socket.socket, list[socket.socket]]:
    """A listener that accepts connections and never answers (until closed)."""
    sock = socket.socket()
    sock.bind((host, 0))
    sock.listen(8)
    held: list[socket.socket] = []

    def accept() -> None:
        while True:
            try:
                conn, _ = sock.accept()
            except OSError:
                return
            held.append(conn)

    threading.Thread(target=accept, daemon=True).start()
    return sock, held


# ----------------------------------------------------------------------------- allowlist


@pytest.mark.parametrize(
    "url",
    [
        "https://git.example.com/team/../other/app.git",
        "https://git.example.com/team/%2e%2e/other/app.git",
        "https://git.example.com/team/%2E%2E%2Fother/app.git",
        "https://git.example.com//team/..//other/app.git",
        "https://git.example.com:8443/team/app.git",
        "https://git.example.com.evil.example/team/app.git",
    ],
)
def test_an_allowlist_prefix_is_not_bypassed(server: Server, url: str) -> None:
    before = len(_jobs(server))
    response = _post(server, {"repo": url, "patch": GOOD})
    assert response.status_code == 422, response.text
    assert "repo_allowlist" in response.text
    assert len(_jobs(server)) == before


# ----------------------------------------------------------------------------- auth


@pytest.mark.parametrize("token", [None, "not-a-token"])
@pytest.mark.parametrize("body", [b"{not json", b'{"repo": 1}', b"x" * 10_000])
def test_without_a_valid_token_the_body_is_never_parsed(
    server: Server, token: str | None, body: bytes
) -> None:
    headers = {"Content-Type": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    for path in ("/v1/jobs", "/v1/fixes"):
        response = httpx.post(f"{server.url}{path}", content=body, headers=headers, timeout=30)
        assert response.status_code == 401, (path, response.text)
        assert response.headers["WWW-Authenticate"] == "Bearer"
    # With the token, the same body reaches the parser.
    response = httpx.post(
        f"{server.url}/v1/jobs",
        content=body,
        headers={**headers, "Authorization": f"Bearer {server.token}"},
        timeout=30,
    )
    assert response.status_code in (413, 422)


# ----------------------------------------------------------------------------- queue


class _HangingGit:
    """An https "git server" on loopback that accepts and answers nothing until released."""

    def __init__(self) -> None:
        self.sock, self.held = _silent_listener("127.0.0.1")

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.sock.getsockname()[1]}/blocker.git"

    def release(self) -> None:
        self.sock.close()
        for conn in self.held:
            conn.close()


def test_the_queue_limit_holds_under_50_concurrent_submissions(server: Server, repo: Path) -> None:
    blocker = _HangingGit()
    try:
        # The only worker hangs in checkout, so every job accepted below stays queued.
        response = _post(server, {"repo": blocker.url, "patch": GOOD})
        assert response.status_code == 202, response.text
        blocker_id = response.json()["id"]
        wait_for(lambda: blocker.held, 60, "the worker to reach the hanging server")
        job = {"repo": str(repo), "patch": GOOD}
        for round_no in range(5):
            with ThreadPoolExecutor(max_workers=50) as pool:
                codes = list(pool.map(lambda _: _post(server, job), range(50)))
            accepted = [r.json()["id"] for r in codes if r.status_code == 202]
            statuses = sorted({r.status_code for r in codes})
            assert statuses == [202, 429], (round_no, statuses)
            assert len(accepted) == QUEUE_LIMIT, (round_no, len(accepted))
            queued = [j for j in _jobs(server) if j["status"] == "queued"]
            assert len(queued) == QUEUE_LIMIT
            for job_id in accepted:
                cancelled = httpx.delete(
                    f"{server.url}/v1/jobs/{job_id}",
                    headers={"Authorization": f"Bearer {server.token}"},
                    timeout=30,
                )
                assert cancelled.json()["status"] == "cancelled"
    finally:
        blocker.release()
    wait_for(lambda: _finished(server, blocker_id), 120, "the blocked job to end once released")


def _finished(server: Server, job_id: str) -> bool:
    response = httpx.get(
        f"{server.url}/v1/jobs/{job_id}",
        headers={"Authorization": f"Bearer {server.token}"},
        timeout=30,
    )
    return bool(response.json()["status"] in ("done", "cancelled"))
