"""POST /v1/fixes: the fix loop behind the service, a real `runner serve` on loopback.

The service's SDK talks to the scripted Messages API server of tests/anthropic_fake.py,
run in this process (ANTHROPIC_BASE_URL points at it; the key is a distinctive fake in
the service's environment only). The repository is the bundled Flask example; the
engine is real. The key must never reach the store, the job folders or the service log.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import docker
import httpx
import pytest
from anthropic_fake import FakeAnthropic, load_script, tool_use
from service_support import (
    Receiver,
    Server,
    job_containers,
    make_server,
    serving,
    shared_state,
    wait_for,
)

from runner.client import (
    AuthError,
    FixesUnavailableError,
    NotFoundError,
    PayloadTooLargeError,
    RunnerClient,
    ValidationError,
    verify_signature,
)
from runner.environments.images import BaseImage
from runner.fix.errorreport import ErrorReport
from runner.service.models import FixCallbackBody

pytestmark = pytest.mark.docker

REPO_ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = REPO_ROOT / "examples" / "flask-app-context"
DEMO_SCRIPT = EXAMPLE / "fix-demo" / "replies.json"
KEY = "sk-ant-test-FAKE-SERVICE-KEY-4b1e8d0c-never-store-me"
MAX_PATCH = 16384
# A regression test that sleeps: the candidate's sandbox run lasts until it is cancelled.
SLOW_TEST = """\
diff --git a/tests/test_slow_regression.py b/tests/test_slow_regression.py
new file mode 100644
--- /dev/null
+++ b/tests/test_slow_regression.py
@@ -0,0 +1,5 @@
+import time
+
+
+def test_waits_for_the_cancel():
+    time.sleep(300)
"""


def report() -> ErrorReport:
    return ErrorReport.from_text((EXAMPLE / "error-report.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeAnthropic]:
    """One scripted Messages API for the module; each test appends its replies."""
    with FakeAnthropic([], api_key=KEY) as server:
        yield server


def _fixer_section(server: Server) -> None:
    with server.config.open("a", encoding="utf-8") as handle:
        handle.write("[fixer]\nmax_retries = 1\ntimeout_s = 60\nmax_attempts = 3\n")


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, base_image: BaseImage, fake: FakeAnthropic
) -> Iterator[Server]:
    def configure(srv: Server) -> None:
        _fixer_section(srv)
        srv.env = {"ANTHROPIC_API_KEY": KEY, "ANTHROPIC_BASE_URL": fake.base_url}

    with serving(
        tmp_path_factory, "svc-fixes", configure, concurrency=2, max_patch_bytes=MAX_PATCH
    ) as srv:
        yield srv


@pytest.fixture(scope="module")
def flask_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    repo = tmp_path_factory.mktemp("flask") / "repo"
    subprocess.run(
        ["bash", str(EXAMPLE / "make-repo.sh"), str(repo)], check=True, capture_output=True
    )
    return repo


@pytest.fixture
def client(server: Server) -> Iterator[RunnerClient]:
    with server.client() as c:
        yield c


def _state_dir(server: Server) -> Path:
    text = server.config.read_text(encoding="utf-8")
    line = next(x for x in text.splitlines() if x.startswith("state_dir = "))
    return Path(json.loads(line.split("=", 1)[1]))


def _files_text(*roots: Path) -> str:
    out = []
    for root in roots:
        paths = [root] if root.is_file() else list(root.rglob("*"))
        for path in paths:
            if path.is_file() and not path.is_symlink():
                out.append(path.read_bytes().decode("utf-8", errors="replace"))
    return "\n".join(out)


def test_a_scripted_fix_over_http_is_verified_with_logs_callback_and_no_key_anywhere(
    server: Server, client: RunnerClient, fake: FakeAnthropic, flask_repo: Path
) -> None:
    fake.script.extend(load_script(DEMO_SCRIPT))  # attempt 1 breaks a test, attempt 2 fixes
    with Receiver() as receiver:
        ref = client.submit_fix(
            report(), str(flask_repo), callback_url=receiver.url, idempotency_key="err-42"
        )
        assert ref.status == "queued" and ref.id.startswith("fix-")
        again = client.submit_fix(
            report(), str(flask_repo), callback_url=receiver.url, idempotency_key="err-42"
        )
        assert again.id == ref.id

        result = client.wait_fix(ref.id, timeout=150, poll_s=0.5, max_poll_s=2)
        assert fake.problems == [], fake.problems
        assert result.status == "verified", result.summary
        assert [a.status for a in result.attempts] == ["rejected", "verified"], [
            (a.status, a.reasons) for a in result.attempts
        ]
        demo = EXAMPLE / "fix-demo"
        assert result.patch == (demo / "attempt-2.fix.diff").read_text(encoding="utf-8")
        assert result.test_patch == (demo / "attempt-2.test.diff").read_text(encoding="utf-8")
        assert result.fix_id == ref.id and result.pull_request

        view = client.get_fix(ref.id)
        assert view.status == "done" and view.result == result
        assert view.error.startswith("RuntimeError: Working outside of application context")
        assert ref.id in [f.id for f in client.list_fixes(status="done")]
        assert ref.id not in [j.id for j in client.list(limit=1000)]
        with pytest.raises(NotFoundError):
            client.get(ref.id)  # a fix is not a /v1/jobs job

        logs = client.fix_logs(ref.id)
        assert "attempt 1: rejected" in logs and "attempt 2: verified" in logs
        assert "verifying the candidate in the sandbox" in logs
        assert f"--- {ref.id}-a1 " in logs  # the attempts' phase logs follow

        wait_for(lambda: receiver.requests, 20, "the fix's callback")
        headers, body, code = receiver.requests[0]
        assert code == 200
        assert verify_signature(body, headers.get("X-Runner-Signature"), server.callback_secret)
        assert headers.get("X-Runner-Kind") == "fix"
        delivered = FixCallbackBody.model_validate_json(body)
        assert delivered.id == ref.id and delivered.status == "done"
        assert delivered.result.status == "verified" and delivered.result.patch == result.patch

    # The key went to the SDK only: not in the store, any folder of the fix, or the log.
    state = _state_dir(server)
    store = [p for p in server.folder.glob("service.db*") if p.is_file()]
    assert store
    folders = [state / "fixes" / ref.id, *state.joinpath("jobs").glob(f"{ref.id}*")]
    everything = _files_text(*store, *folders, server.log)
    assert ref.id in _files_text(server.log)  # the log was read, and mentions the fix
    assert KEY not in everything
    assert KEY not in receiver.requests[0][1].decode()


def test_a_running_fix_is_cancelled_and_its_container_removed(
    server: Server,
    client: RunnerClient,
    fake: FakeAnthropic,
    flask_repo: Path,
    docker_client: docker.DockerClient,
) -> None:
    source = (EXAMPLE / "fix-demo" / "attempt-2.fix.diff").read_text(encoding="utf-8")
    fake.script.append(tool_use(source, SLOW_TEST, "push an app context"))
    ref = client.submit_fix(report(), str(flask_repo), max_attempts=1)
    attempt = f"{ref.id}-a1"
    wait_for(
        lambda: job_containers(docker_client, server.instance, attempt),
        90,
        "the candidate's sandbox container",
    )
    view = client.cancel_fix(ref.id)
    assert view.status in ("running", "cancelled")
    wait_for(
        lambda: not job_containers(docker_client, server.instance, attempt),
        20,
        "the cancelled fix's container to be removed",
    )
    result = client.wait_fix(ref.id, timeout=30, poll_s=0.2, max_poll_s=1)
    final = client.get_fix(ref.id)
    assert final.status == "cancelled"
    assert result.status == "error" and "cancelled" in result.summary
    assert "cancelled" in client.fix_logs(ref.id)


def test_fix_requests_are_authenticated_and_checked_like_jobs(
    server: Server, client: RunnerClient, flask_repo: Path
) -> None:
    body = {"repo": str(flask_repo), "error": report().model_dump(mode="json")}
    for headers in ({}, {"Authorization": "Bearer not-a-token"}):
        response = httpx.post(f"{server.url}/v1/fixes", json=body, headers=headers, timeout=10)
        assert response.status_code == 401, response.text
    with RunnerClient(server.url, "wrong-token") as stranger, pytest.raises(AuthError):
        stranger.list_fixes()
    with pytest.raises(ValidationError) as refused:
        client.submit_fix(report(), "https://git.example.com/team/app.git")
    assert refused.value.errors[0].loc == ["body", "repo"]
    with pytest.raises(ValidationError) as too_many:
        client.submit_fix(report(), str(flask_repo), max_attempts=5)
    assert too_many.value.errors[0].loc == ["body", "max_attempts"]
    huge = report().model_copy(update={"traceback": report().traceback + "#" * MAX_PATCH})
    with pytest.raises(PayloadTooLargeError):
        client.submit_fix(huge, str(flask_repo))
    # The API key is the service's own: a request cannot bring one.
    response = httpx.post(
        f"{server.url}/v1/fixes",
        json={**body, "api_key": "sk-ant-from-the-request"},
        headers={"Authorization": f"Bearer {server.token}"},
        timeout=10,
    )
    assert response.status_code == 422
    assert ["body", "api_key"] in [e["loc"] for e in response.json()["detail"]]
    assert client.list_fixes(status="queued") == []


def test_a_service_without_an_api_key_refuses_fixes_with_503_and_stays_ready(
    tmp_path_factory: pytest.TempPathFactory, base_image: BaseImage, flask_repo: Path
) -> None:
    srv = make_server(
        tmp_path_factory.mktemp("svc-nokey"),
        shared_state(tmp_path_factory.getbasetemp()),
        "svc-nokey",
        concurrency=1,
    )
    srv.start()  # service_support drops the machine's ANTHROPIC_* variables
    try:
        body = {"repo": str(flask_repo), "error": report().model_dump(mode="json")}
        auth = {"Authorization": f"Bearer {srv.token}"}
        response = httpx.post(f"{srv.url}/v1/fixes", json=body, headers=auth, timeout=10)
        assert response.status_code == 503, response.text
        assert response.headers["X-Runner-Refusal"] == "fixer_not_configured"
        assert "ANTHROPIC_API_KEY" in response.json()["detail"]
        with srv.client() as client, pytest.raises(FixesUnavailableError) as unavailable:
            client.submit_fix(report(), str(flask_repo))
        assert unavailable.value.reason == "fixer_not_configured"
        ready = httpx.get(f"{srv.url}/readyz", timeout=30)
        assert ready.status_code == 200 and ready.json()["ready"] is True
    finally:
        assert srv.stop() == 0, srv.log.read_text()[-3000:]
