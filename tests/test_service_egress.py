"""The service's pure edges: callback address checks, pinned delivery, allowlist prefixes, queue.

No engine needed: a real HTTP receiver on loopback and a real SQLite file.
"""

from __future__ import annotations

import ipaddress
import threading
from pathlib import Path

import httpx
import pytest
from service_support import Receiver

from runner.config import ServiceSettings
from runner.service.admission import repo_refusal
from runner.service.callbacks import _post_pinned
from runner.service.core import error_verdict
from runner.service.egress import CallbackRefused, CallbackTarget, resolve_callback
from runner.service.models import JobSubmission
from runner.service.records import QueueLimitReached
from runner.service.store import SqliteStore


@pytest.mark.parametrize(
    ("url", "kind"),
    [
        ("http://127.1/", "loopback"),
        ("http://2130706433/", "loopback"),
        ("http://0x7f000001/", "loopback"),
        ("http://017700000001/", "loopback"),
        ("http://[::1]/", "loopback"),
        ("http://[::ffff:127.0.0.1]/", "loopback"),
        ("http://[::ffff:a9fe:a9fe]/", "link-local"),
        ("http://[64:ff9b::a9fe:a9fe]/", "link-local"),
        ("http://[2002:7f00:1::1]/", "loopback"),
        ("http://169.254.169.254/", "link-local"),
        ("http://10.1.2.3/", "private"),
        ("http://[fd00::1]/", "private"),
        ("http://224.0.0.251/", "multicast"),
        ("http://0.0.0.0/", "unspecified"),
        ("http://240.0.0.1/", "reserved"),
        ("http://user@93.184.216.34/", "user information"),
        ("ftp://93.184.216.34/", "http"),
    ],
)
def test_internal_callback_addresses_are_refused(url: str, kind: str) -> None:
    with pytest.raises(CallbackRefused, match=kind):
        resolve_callback(url, [])


def test_the_allowlist_names_a_host_an_address_or_a_network() -> None:
    assert resolve_callback("http://127.1:9/x", ["127.0.0.0/8"]).addresses == (
        ipaddress.ip_address("127.0.0.1"),
    )
    assert resolve_callback("http://[::1]:9/x", ["::1"]).port == 9
    with pytest.raises(CallbackRefused):
        resolve_callback("http://127.0.0.1/x", ["127.0.0.2", "10.0.0.0/8"])


def test_a_public_address_is_accepted_without_an_allowlist() -> None:
    target = resolve_callback("https://93.184.216.34/hook", [])
    assert (target.scheme, target.port, target.host_header) == ("https", 443, "93.184.216.34")


def test_delivery_connects_to_the_checked_address_not_a_fresh_lookup() -> None:
    # The name does not resolve at all: the request can only arrive through the pin.
    with Receiver() as receiver, httpx.Client(trust_env=False) as client:
        port = int(receiver.url.split(":")[2].split("/")[0])
        target = CallbackTarget(
            url=f"http://rebound.invalid:{port}/hook",
            scheme="http",
            host="rebound.invalid",
            port=port,
            addresses=(ipaddress.ip_address("127.0.0.1"),),
        )
        response = _post_pinned(client, target, b"{}", {})
    assert response is not None and response.status_code == 200
    headers, _, _ = receiver.requests[0]
    assert headers["Host"] == f"rebound.invalid:{port}"


@pytest.mark.parametrize(
    ("url", "allowed"),
    [
        ("https://git.example.com/team/app.git", True),
        ("HTTPS://GIT.EXAMPLE.COM:443/team//app", True),
        ("https://git.example.com./team/./app.git", True),
        ("https://git.example.com/team/../other/app.git", False),
        ("https://git.example.com/team/%2e%2e/other/app.git", False),
        ("https://git.example.com/team/..%2Fother/app.git", False),
        ("https://git.example.com/Team/app.git", False),
        ("https://git.example.com:444/team/app.git", False),
        ("ssh://git.example.com/team/app.git", False),
    ],
)
def test_allowlist_prefixes_compare_normalised_urls(url: str, allowed: bool) -> None:
    service = ServiceSettings(repo_allowlist=["https://git.example.com/team/"])
    assert (repo_refusal(url, service) is None) is allowed


def test_the_queue_limit_is_checked_in_the_insert_transaction(tmp_path: Path) -> None:
    # Two connections to one file, as two processes would have: the lock alone cannot help.
    stores = [SqliteStore(tmp_path / "service.db") for _ in range(2)]
    for round_no in range(5):
        accepted, refused = _burst(stores, f"r{round_no}", limit=5)
        assert (len(accepted), len(refused)) == (5, 45), round_no
        assert set(refused) == {5}
        for job_id in accepted:
            assert stores[0].cancel_queued(job_id, error_verdict(job_id, "cancelled by the test"))
    for store in stores:
        store.close()


def _burst(stores: list[SqliteStore], prefix: str, limit: int) -> tuple[list[str], list[int]]:
    """50 inserts released at once over the stores; the accepted ids and refused counts."""
    sub = JobSubmission(repo="/r", patch="p")
    accepted: list[str] = []
    refused: list[int] = []
    barrier = threading.Barrier(50)

    def submit(n: int) -> None:
        barrier.wait()
        try:
            record, _ = stores[n % len(stores)].add(f"{prefix}-{n}", "t", None, "h", sub, limit)
            accepted.append(record.id)
        except QueueLimitReached as full:
            refused.append(full.queued)

    threads = [threading.Thread(target=submit, args=(n,)) for n in range(50)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return accepted, refused
