"""runner.client.RunnerClient against a real `runner serve` on loopback."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from service_support import GOOD, Server, make_calc_repo, serving

from runner.client import (
    AuthError,
    NotFoundError,
    PayloadTooLargeError,
    RunnerClient,
    ServiceError,
    ValidationError,
    WaitTimeoutError,
    verify_signature,
)
from runner.environments.images import BaseImage
from runner.errors import RunnerError
from runner.models import FixJob
from runner.service.callbacks import sign

pytestmark = pytest.mark.docker


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, base_image: BaseImage) -> Iterator[Server]:
    with serving(tmp_path_factory, "svc-client", concurrency=1, max_patch_bytes=2048) as srv:
        yield srv


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_calc_repo(tmp_path_factory.mktemp("client-calc") / "repo")


@pytest.fixture
def client(server: Server) -> Iterator[RunnerClient]:
    with server.client() as c:
        yield c


def test_submit_wait_get_logs_round_trip(client: RunnerClient, repo: Path) -> None:
    ref = client.submit(FixJob(repo=str(repo), patch=GOOD))
    verdict = client.wait(ref.id, timeout=120)
    assert verdict.status == "verified"
    view = client.get(ref.id)
    assert (view.id, view.status, view.repo, view.verdict) == (ref.id, "done", str(repo), verdict)
    assert "running the tests with the fix" in client.logs(ref.id)
    assert client.cancel(ref.id).status == "done"  # cancelling a finished job changes nothing


def test_errors_are_typed_and_all_runner_errors(
    client: RunnerClient, server: Server, repo: Path
) -> None:
    with pytest.raises(NotFoundError) as missing:
        client.get("no-such-job")
    assert missing.value.status_code == 404
    with pytest.raises(NotFoundError):
        client.logs("no-such-job")
    with server.client("frt_not_a_token") as stranger, pytest.raises(AuthError):
        stranger.submit(FixJob(repo=str(repo), patch=GOOD))
    with pytest.raises(PayloadTooLargeError):
        client.submit(FixJob(repo=str(repo), patch="+" * 4096))
    with pytest.raises(ValidationError) as invalid:
        client.submit(FixJob(repo="https://gitlab.example.com/a/b", patch=GOOD))
    assert invalid.value.errors[0].loc == ["body", "repo"]
    assert isinstance(invalid.value, ValueError | RunnerError)
    for error in (missing.value, invalid.value):
        assert isinstance(error, ServiceError) and isinstance(error, RunnerError)


def test_a_job_is_invisible_to_another_token(
    client: RunnerClient, server: Server, repo: Path
) -> None:
    ref = client.submit(FixJob(repo=str(repo), patch=GOOD))
    other = server.runner("token", "create", "--name", "other-team").stdout.strip()
    with server.client(other) as theirs:
        with pytest.raises(NotFoundError):
            theirs.get(ref.id)
        assert theirs.list() == []
    client.wait(ref.id, timeout=120)


def test_wait_gives_up_with_a_timeout_error(client: RunnerClient, repo: Path) -> None:
    ref = client.submit(FixJob(repo=str(repo), patch=GOOD))
    with pytest.raises(WaitTimeoutError):
        client.wait(ref.id, timeout=0.01)
    client.wait(ref.id, timeout=120)


def test_an_unreachable_service_is_a_service_error() -> None:
    with (
        RunnerClient("http://127.0.0.1:9", "frt_x", timeout=2) as nowhere,
        pytest.raises(ServiceError),
    ):
        nowhere.list()


@pytest.mark.parametrize("header", [None, "", "sha256=", "md5=abc", "sha256=" + "0" * 64])
def test_verify_signature_refuses_anything_but_the_right_hmac(header: str | None) -> None:
    assert not verify_signature(b"{}", header, "secret")
    assert verify_signature(b"{}", sign(b"{}", "secret"), "secret")
