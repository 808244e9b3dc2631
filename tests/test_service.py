"""`runner serve` as a real subprocess on loopback, with the real engine and git repos."""

from __future__ import annotations

import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from service_support import (
    BREAKS_OTHER,
    GOOD,
    NOT_APPLYING,
    Receiver,
    Server,
    make_calc_repo,
    serving,
    wait_for,
)

from runner.client import (
    AuthError,
    ConflictError,
    PayloadTooLargeError,
    RunnerClient,
    ValidationError,
    verify_signature,
)
from runner.environments.images import BaseImage
from runner.models import FixJob
from runner.service.models import CallbackBody

pytestmark = pytest.mark.docker

MAX_PATCH = 4096
MAX_BODY = 65536


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, base_image: BaseImage) -> Iterator[Server]:
    with serving(
        tmp_path_factory,
        "svc-main",
        concurrency=3,
        max_patch_bytes=MAX_PATCH,
        max_body_bytes=MAX_BODY,
    ) as srv:
        yield srv


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_calc_repo(tmp_path_factory.mktemp("calc") / "repo")


@pytest.fixture
def client(server: Server) -> Iterator[RunnerClient]:
    with server.client() as c:
        yield c


def _job(repo: Path, patch: str = GOOD, **extra: object) -> FixJob:
    return FixJob.model_validate({"repo": str(repo), "patch": patch, **extra})


def test_ten_jobs_at_once_get_the_right_verdicts_and_their_logs(
    client: RunnerClient, repo: Path
) -> None:
    patches = [GOOD] * 4 + [BREAKS_OTHER] * 3 + [NOT_APPLYING] * 3
    with ThreadPoolExecutor(max_workers=10) as pool:
        refs = list(pool.map(lambda p: client.submit(_job(repo, p)), patches))
    assert {r.status for r in refs} == {"queued"}
    assert len({r.id for r in refs}) == 10
    verdicts = [client.wait(r.id, timeout=240) for r in refs]
    for patch, ref, verdict in zip(patches, refs, verdicts, strict=True):
        assert verdict.job_id == ref.id
        if patch is GOOD:
            assert verdict.status == "verified", verdict.summary
            assert verdict.tests.fail_to_pass == ["tests/test_calc.py::test_add"]
        elif patch is BREAKS_OTHER:
            assert verdict.status == "rejected", verdict.summary
            assert verdict.tests.pass_to_fail == ["tests/test_calc.py::test_mul"]
        else:
            assert verdict.status == "rejected", verdict.summary
            assert not next(c for c in verdict.checks if c.name == "applies").passed
        text = client.logs(ref.id)
        assert "started (attempt 1)" in text
        assert f"done: {verdict.summary}" in text
        if patch is not NOT_APPLYING:
            assert "--- candidate ---" in text and "--- end of candidate ---" in text
    views = {v.id: v for v in client.list(status="done", limit=100)}
    assert all(views[r.id].verdict is not None for r in refs)


def test_logs_follow_a_running_job_until_it_ends(client: RunnerClient, repo: Path) -> None:
    ref = client.submit(_job(repo))
    chunks = list(client.iter_logs(ref.id, follow=True))
    text = "".join(chunks)
    assert "checking the patch" in text
    assert text.rstrip().endswith("--- end of " + text.rstrip().rsplit("--- end of ", 1)[1])
    assert client.get(ref.id).status == "done"


def test_the_job_log_carries_the_early_answer_of_the_affected_tests(
    client: RunnerClient, tmp_path_factory: pytest.TempPathFactory
) -> None:
    # the fix is inside add(): test_add is its one affected test of three (not mul's, not
    # a module that never runs calc.py)
    three = make_calc_repo(tmp_path_factory.mktemp("calc-three") / "repo", slow_seconds=0)
    first = client.submit(_job(three))
    recorded = client.wait(first.id, timeout=240).early
    assert " early     none (no per-test map for this commit yet" in client.logs(first.id)
    # the service's jobs record the map ([affected] record_map = "auto"), the CLI's would not
    assert recorded is not None and recorded.testmap is not None and recorded.testmap.recorded
    second = client.submit(_job(three))
    verdict = client.wait(second.id, timeout=240)
    assert verdict.status == "verified", verdict.summary
    assert verdict.early is not None and verdict.early.ids == ["tests/test_calc.py::test_add"]
    assert " early     1 affected tests pass; full suite running\n" in client.logs(second.id)


def test_the_same_idempotency_key_returns_the_existing_job(
    client: RunnerClient, repo: Path
) -> None:
    first = client.submit(_job(repo), idempotency_key="error-4711")
    again = client.submit(_job(repo), idempotency_key="error-4711")
    assert again.id == first.id
    with pytest.raises(ConflictError):
        client.submit(_job(repo, BREAKS_OTHER), idempotency_key="error-4711")
    client.wait(first.id, timeout=120)


def test_listing_is_newest_first(client: RunnerClient, repo: Path) -> None:
    refs = [client.submit(_job(repo)) for _ in range(2)]
    for ref in refs:
        client.wait(ref.id, timeout=120)
    listed = [v.id for v in client.list(limit=2)]
    assert listed == [refs[1].id, refs[0].id]


def test_missing_and_wrong_tokens_get_401(server: Server) -> None:
    assert httpx.get(f"{server.url}/v1/jobs").status_code == 401
    wrong = httpx.get(f"{server.url}/v1/jobs", headers={"Authorization": "Bearer frt_nope"})
    assert wrong.status_code == 401
    assert wrong.headers["WWW-Authenticate"] == "Bearer"
    assert httpx.get(f"{server.url}/metrics").status_code == 401
    with server.client("frt_wrong") as bad, pytest.raises(AuthError):
        bad.list()


def test_a_revoked_token_gets_401_at_once(server: Server) -> None:
    created = server.runner("token", "create", "--name", "temporary")
    assert created.returncode == 0, created.stderr
    token = created.stdout.strip()
    assert token.startswith("frt_") and token not in created.stderr
    with server.client(token) as temp:
        assert temp.list() == []
        revoked = server.runner("token", "revoke", "temporary")
        assert revoked.returncode == 0, revoked.stderr
        with pytest.raises(AuthError):
            temp.list()
    listing = server.runner("token", "list").stdout
    assert "temporary" in listing and "revoked" in listing and token not in listing


def test_health_endpoints_need_no_token(server: Server) -> None:
    assert httpx.get(f"{server.url}/healthz").json() == {"status": "ok"}
    ready = httpx.get(f"{server.url}/readyz")
    assert ready.status_code == 200, ready.text
    assert ready.json()["checks"] == {
        "engine": "ok",
        "base_image": "ok",
        "store": "ok",
        "accepting": "ok",
    }


def test_an_oversized_patch_or_body_is_413(
    client: RunnerClient, server: Server, repo: Path
) -> None:
    big_patch = GOOD + "+" + "x" * MAX_PATCH + "\n"
    with pytest.raises(PayloadTooLargeError, match="patch"):
        client.submit(_job(repo, big_patch))
    body = json.dumps({"repo": str(repo), "patch": "y" * (MAX_BODY + 1)})
    response = httpx.post(
        f"{server.url}/v1/jobs",
        content=body,
        headers={"Authorization": f"Bearer {server.token}", "Content-Type": "application/json"},
    )
    assert response.status_code == 413


def test_a_repository_outside_the_allowlist_is_422_with_the_reason(client: RunnerClient) -> None:
    job = FixJob(repo="https://evil.example.com/acme/app.git", patch=GOOD)
    with pytest.raises(ValidationError) as caught:
        client.submit(job)
    (error,) = caught.value.errors
    assert error.loc == ["body", "repo"]
    assert "'evil.example.com' is not in [service] repo_allowlist" in error.msg
    with pytest.raises(ValidationError, match="git option"):
        client.submit(FixJob(repo="--upload-pack=touch", patch=GOOD))


def test_malformed_json_and_invalid_fields_are_422(server: Server, repo: Path) -> None:
    headers = {"Authorization": f"Bearer {server.token}", "Content-Type": "application/json"}
    broken = httpx.post(f"{server.url}/v1/jobs", content=b'{"repo": ', headers=headers)
    assert broken.status_code == 422
    assert broken.json()["detail"][0]["type"] == "json_invalid"
    bad = {"repo": str(repo), "patch": GOOD, "base": "main branch", "surprise": 1}
    invalid = httpx.post(f"{server.url}/v1/jobs", json=bad, headers=headers)
    assert invalid.status_code == 422
    locs = {tuple(e["loc"]) for e in invalid.json()["detail"]}
    assert locs == {("body", "base"), ("body", "surprise")}
    assert all("input" not in e for e in invalid.json()["detail"])


def test_a_callback_carries_the_verdict_with_a_valid_signature(
    client: RunnerClient, server: Server, repo: Path
) -> None:
    with Receiver() as receiver:
        ref = client.submit(_job(repo), callback_url=receiver.url)
        verdict = client.wait(ref.id, timeout=120)
        wait_for(lambda: receiver.requests, 30, "the callback")
    headers, body, _ = receiver.requests[0]
    assert verify_signature(body, headers["X-Runner-Signature"], server.callback_secret)
    assert not verify_signature(body + b" ", headers["X-Runner-Signature"], server.callback_secret)
    assert not verify_signature(body, headers["X-Runner-Signature"], "another secret")
    delivered = CallbackBody.model_validate_json(body)
    assert (delivered.id, delivered.status, delivered.verdict) == (ref.id, "done", verdict)
    view = wait_for(lambda: (v := client.get(ref.id)).callback_state == "delivered" and v, 10, "")
    assert [(d.attempt, d.ok) for d in view.deliveries] == [(1, True)]


def test_a_receiver_failing_twice_gets_the_verdict_on_the_third_try(
    client: RunnerClient, repo: Path
) -> None:
    with Receiver(fail_first=2) as receiver:
        ref = client.submit(_job(repo, BREAKS_OTHER), callback_url=receiver.url)
        client.wait(ref.id, timeout=120)
        view = wait_for(
            lambda: (v := client.get(ref.id)).callback_state == "delivered" and v, 30, "delivery"
        )
    assert [code for _, _, code in receiver.requests] == [500, 500, 200]
    assert [(d.attempt, d.ok, d.status_code) for d in view.deliveries] == [
        (1, False, 500),
        (2, False, 500),
        (3, True, 200),
    ]
    assert [h["X-Runner-Delivery"] for h, _, _ in receiver.requests] == ["1", "2", "3"]
    assert CallbackBody.model_validate_json(receiver.requests[2][1]).verdict.status == "rejected"


def test_metrics_count_verdicts_and_queue(server: Server) -> None:
    text = httpx.get(
        f"{server.url}/metrics", headers={"Authorization": f"Bearer {server.token}"}
    ).text
    assert "fixrunner_queue_depth 0.0" in text
    assert "fixrunner_running_jobs 0.0" in text
    assert 'fixrunner_verdicts_total{status="verified"}' in text
    assert 'fixrunner_phase_duration_seconds_count{phase="candidate"}' in text
    assert 'fixrunner_callback_deliveries_total{outcome="failed"} 2.0' in text


def test_secrets_never_appear_in_the_service_log(server: Server) -> None:
    text = server.log.read_text()
    assert '"event": "http.request"' in text
    assert server.token not in text
    assert server.callback_secret not in text
    assert "Bearer" not in text
