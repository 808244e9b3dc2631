"""From a production error to a pull request: the real Sentry SDK → `runner serve` → PR.

The parsing units read what the real SDK builds (its own Envelope and event_from_exception).
The scene: the bundled Flask example run on the host, unmodified, with the real SDK
initialised at start-up (tests/sentry_site) and its DSN pointed at a real `runner serve`
on loopback; the fix loop answered by the loopback Messages API; a real bare repository
as the remote; GitHub's REST API served by tests/github_fake.py for PyGithub.
"""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import sentry_sdk
from anthropic_fake import FakeAnthropic, load_script
from github_fake import FakeGitHub
from sentry_sdk.envelope import Envelope, Item, PayloadRef
from sentry_sdk.utils import event_from_exception
from service_support import Server, make_calc_repo, make_server, shared_state, wait_for

from runner.environments.images import BaseImage
from runner.ingest import (
    EnvelopeError,
    fingerprint,
    parse_auth,
    parse_envelope,
    to_error_report,
)
from runner.ingest.envelope import decompress
from runner.ingest.events import SentryEvent

REPO_ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = REPO_ROOT / "examples" / "flask-app-context"
SITE = Path(__file__).resolve().parent / "sentry_site"
ANTHROPIC_KEY = "sk-ant-test-FAKE-INGEST-KEY-never-store-me"
GITHUB_TOKEN = "ghp_FAKEingestToken-never-log-me"
DSN_KEY = "0123456789abcdef0123456789abcdef"
GH_REPO = "acme/orders"
EVENTS = 20


# ----------------------------------------------------------------------------- units


def _captured(exc: BaseException, **extra: Any) -> dict[str, Any]:
    event, _ = event_from_exception(exc)
    event.update(extra)
    return dict(event)


def _raise_chain() -> None:
    try:
        {}["missing"]
    except KeyError as exc:
        raise RuntimeError("lookup failed") from exc


def test_an_sdk_event_becomes_an_error_report_with_frames_chain_and_no_credentials() -> None:
    with pytest.raises(RuntimeError) as info:
        _raise_chain()
    payload = _captured(
        info.value,
        request={
            "method": "POST",
            "url": "https://orders.example/api/orders?token=s3cret",
            "headers": {"Authorization": "Bearer s3cret", "Cookie": "a=b", "Accept": "*/*"},
        },
        release="v1",
    )
    event = SentryEvent.model_validate(payload)
    report = to_error_report(event)
    assert report is not None
    assert report.exception_type == "RuntimeError" and report.message == "lookup failed"
    assert f'File "{__file__}"' in report.traceback
    assert "in _raise_chain" in report.traceback and '{}["missing"]' in report.traceback
    assert "The above exception was the direct cause" in report.traceback
    assert [c.type for c in report.exception.chain] == ["KeyError"]
    assert report.request is not None
    assert report.request.method == "POST" and report.request.path == "/api/orders"
    assert report.request.headers == {"Accept": "*/*"}


def test_the_sdks_envelope_is_parsed_and_its_other_items_are_dropped() -> None:
    with pytest.raises(RuntimeError) as info:
        _raise_chain()
    envelope = Envelope(headers={"event_id": "e1"})
    envelope.add_event(_captured(info.value, event_id="e1"))
    envelope.add_item(Item(PayloadRef(json={"sid": "x"}), type="session"))
    envelope.add_item(Item(PayloadRef(bytes=b"\x00\x01\n\n"), type="attachment"))
    events = parse_envelope(envelope.serialize())
    assert [e.event_id for e in events] == ["e1"]
    assert events[0].exceptions[-1].type == "RuntimeError"


@pytest.mark.parametrize(
    "body",
    [b"", b"not json\n", b'{}\n{"type":"event","length":999}\n{}', b'{}\n{"type":"event"}\n[1]'],
)
def test_malformed_envelopes_are_refused_with_400(body: bytes) -> None:
    with pytest.raises(EnvelopeError) as info:
        parse_envelope(body)
    assert info.value.status == 400


def test_bodies_inflate_within_the_cap_and_bombs_are_413() -> None:
    assert decompress(gzip.compress(b"x" * 100), "gzip", 1000) == b"x" * 100
    assert decompress(zlib.compress(b"y" * 10), "deflate", 1000) == b"y" * 10
    with pytest.raises(EnvelopeError) as bomb:
        decompress(gzip.compress(b"\0" * 50_000), "gzip", 10_000)
    assert bomb.value.status == 413
    with pytest.raises(EnvelopeError) as corrupt:
        decompress(b"not gzip", "gzip", 1000)
    assert corrupt.value.status == 400
    with pytest.raises(EnvelopeError, match="unsupported Content-Encoding 'zstd'"):
        decompress(b"x", "zstd", 1000)


def test_the_key_comes_from_the_auth_header_or_the_query() -> None:
    header = "Sentry sentry_key=abc, sentry_version=7, sentry_client=sentry.python/2.0"
    assert parse_auth(header, {}) == "abc"
    assert parse_auth(None, {"sentry_key": "def"}) == "def"
    assert parse_auth("Sentry sentry_version=7", {}) is None


def test_one_error_is_one_group_whatever_its_message_and_line() -> None:
    def fail(n: int) -> None:
        raise ValueError(f"bad order {n}")

    events = []
    for n in range(2):
        with pytest.raises(ValueError) as info:
            fail(n)
        events.append(SentryEvent.model_validate(_captured(info.value)))
    with pytest.raises(RuntimeError) as other:
        _raise_chain()
    different = SentryEvent.model_validate(_captured(other.value))
    assert fingerprint("1", events[0]) == fingerprint("1", events[1])
    assert fingerprint("1", events[0]) != fingerprint("1", different)
    assert fingerprint("1", events[0]) != fingerprint("2", events[0])
    own = events[0].model_copy(update={"fingerprint": ["checkout-timeout"]})
    same_own = different.model_copy(update={"fingerprint": ["checkout-timeout"]})
    assert fingerprint("1", own) == fingerprint("1", same_own)


# ----------------------------------------------------------------------------- the scene


@pytest.fixture(scope="module")
def flask_repo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The Flask example as a repository, and a bare clone of it as its remote."""
    base = tmp_path_factory.mktemp("orders")
    repo = base / "repo"
    subprocess.run(
        ["bash", str(EXAMPLE / "make-repo.sh"), str(repo)], check=True, capture_output=True
    )
    bare = base / "remote.git"
    subprocess.run(["git", "clone", "-q", "--bare", str(repo), str(bare)], check=True)
    return repo, bare


@pytest.fixture(scope="module")
def history_repo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, str]:
    """A repository with a commit on 2026-11-01 and one on 2026-11-20; returns both ids."""
    repo = make_calc_repo(tmp_path_factory.mktemp("history") / "repo")
    subprocess.run(["git", "branch", "-M", "main"], cwd=repo, check=True)
    first = _rev(repo)
    (repo / "notes.txt").write_text("later\n", encoding="utf-8")
    later = "2026-11-20T12:00:00+00:00"
    env = {**os.environ, "GIT_AUTHOR_DATE": later, "GIT_COMMITTER_DATE": later}
    identity = ["-c", "user.name=t", "-c", "user.email=t@example.invalid"]
    subprocess.run(["git", "add", "-A"], cwd=repo, check=True)
    subprocess.run(["git", *identity, "commit", "-qm", "later"], cwd=repo, env=env, check=True)
    return repo, first, _rev(repo)


def _rev(repo: Path) -> str:
    done = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True, check=True
    )
    return done.stdout.strip()


@pytest.fixture(scope="module")
def anthropic() -> Iterator[FakeAnthropic]:
    with FakeAnthropic([], api_key=ANTHROPIC_KEY) as server:
        yield server


@pytest.fixture(scope="module")
def github(flask_repo: tuple[Path, Path]) -> Iterator[FakeGitHub]:
    with FakeGitHub(GH_REPO, flask_repo[1], GITHUB_TOKEN) as fake:
        yield fake


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory,
    base_image: BaseImage,
    anthropic: FakeAnthropic,
    github: FakeGitHub,
    flask_repo: tuple[Path, Path],
    history_repo: tuple[Path, str, str],
) -> Iterator[Server]:
    repo, bare = flask_repo
    srv = make_server(
        tmp_path_factory.mktemp("svc-ingest"),
        shared_state(tmp_path_factory.getbasetemp()),
        "svc-ingest",
        max_body_bytes=64 * 1024,
    )
    lines = [
        "[fixer]",
        "max_retries = 1\ntimeout_s = 60\nmax_attempts = 1",
        "[github]",
        f"api_url = {json.dumps(github.base_url)}",
        'co_author = "On Call <oncall@example.invalid>"',
        '[projects."1"]',
        f'key = "{DSN_KEY}"',
        f"repo = {json.dumps(str(repo))}",
        f"push_url = {json.dumps(str(bare))}",
        'branch = "main"\nopen_pr = true',
        f'github_repo = "{GH_REPO}"',
        'labels = ["fixrunner", "production-error"]',
        '[projects."2"]',  # a repository the service may not use: refusals show the count
        f'key = "{DSN_KEY[::-1]}"',
        'repo = "https://example.invalid/orders.git"',
        "fix_after_events = 3",
        '[projects."3"]',  # groups only: no fix jobs
        f'key = "{DSN_KEY.upper()}"',
        f"repo = {json.dumps(str(history_repo[0]))}",
        'branch = "main"\nfix = false',
    ]
    with srv.config.open("a", encoding="utf-8") as handle:
        handle.write("\n".join(lines) + "\n")
    srv.env = {
        "ANTHROPIC_API_KEY": ANTHROPIC_KEY,
        "ANTHROPIC_BASE_URL": anthropic.base_url,
        "GITHUB_TOKEN": GITHUB_TOKEN,
    }
    srv.start()
    yield srv
    assert srv.stop() == 0, srv.log.read_text()[-3000:]


def _dsn(server: Server, project: str = "1", key: str = DSN_KEY) -> str:
    return server.url.replace("http://", f"http://{key}@") + f"/{project}"


def run_app(repo: Path, dsn: str, count: int) -> None:
    """Run the example's seed script ``count`` times, the SDK reporting each crash."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SENTRY_", "RUNNER_"))}
    env.update({"SENTRY_DSN": dsn, "PYTHONPATH": str(SITE)})
    for start in range(0, count, 5):
        procs = [
            subprocess.Popen(
                [sys.executable, "scripts/seed_db.py"],
                cwd=repo,
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
            )
            for _ in range(min(5, count - start))
        ]
        for proc in procs:
            _, err = proc.communicate(timeout=120)
            assert b"RuntimeError: Working outside of application context" in err


def _groups(server: Server) -> list[dict[str, Any]]:
    answer = httpx.get(f"{server.url}/v1/groups", headers=_auth(server), timeout=10)
    assert answer.status_code == 200, answer.text
    groups: list[dict[str, Any]] = answer.json()["groups"]
    return groups


def _auth(server: Server) -> dict[str, str]:
    return {"Authorization": f"Bearer {server.token}"}


@pytest.mark.docker
def test_twenty_crashes_of_the_flask_app_are_one_group_one_fix_and_one_draft_pr(
    server: Server, anthropic: FakeAnthropic, github: FakeGitHub, flask_repo: tuple[Path, Path]
) -> None:
    repo, bare = flask_repo
    anthropic.script.extend(load_script(EXAMPLE / "fix-demo" / "replies.json")[1:])
    run_app(repo, _dsn(server), EVENTS)

    group = wait_for(lambda: [g for g in _groups(server) if g["events"] == EVENTS], 30, "events")[0]
    assert [g["id"] for g in _groups(server) if g["project"] == "1"] == [group["id"]]
    assert group["title"].startswith("RuntimeError: Working outside of application context")
    commit = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True, check=True
    ).stdout.strip()
    assert group["base"] == commit  # the SDK's release: the commit the app ran

    url = f"{server.url}/v1/groups/{group['id']}"

    def finished() -> dict[str, Any] | None:
        view: dict[str, Any] = httpx.get(url, headers=_auth(server), timeout=10).json()
        return view if view["fix"] and view["fix"]["status"] == "done" else None

    view = wait_for(finished, 240, "the group's fix job", poll_s=1)
    result = view["fix"]["result"]
    assert anthropic.problems == [], anthropic.problems
    assert len(anthropic.requests) == 1  # one fix job, one attempt, for twenty events
    assert result["status"] == "verified", result["summary"]
    pr = result["pr"]
    assert pr["state"] == "opened", pr
    assert view["pr_url"] == pr["url"] == f"https://github.com/{GH_REPO}/pull/1"
    assert view["seconds_to_pr"] and view["seconds_to_pr"] > 0

    branch = pr["branch"]
    assert branch.startswith(f"fixrunner/{group['id']}-")
    pushed = subprocess.run(
        ["git", "--git-dir", str(bare), "log", "-1", "--format=%P%n%an%n%B", branch],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    parent, author, subject = pushed.splitlines()[:3]
    assert (parent, author) == (commit, "fixrunner")
    assert subject.startswith("Fix RuntimeError: Working outside of application context")
    assert "Co-authored-by: On Call <oncall@example.invalid>" in pushed

    creates = [r for r in github.requests if r.method == "POST" and r.path.endswith("/pulls")]
    assert len(creates) == 1 and creates[0].body["draft"] is True
    body = creates[0].body["body"]
    assert body.startswith(result["pull_request"].rstrip())
    assert "| Check | Result | Detail |" in body and url in body
    assert [label["name"] for label in github.pulls[0]["labels"]] == [
        "fixrunner",
        "production-error",
    ]

    everything = server.log.read_text() + "".join(
        p.read_bytes().decode("utf-8", "replace") for p in server.folder.glob("service.db*")
    )
    assert GITHUB_TOKEN not in everything and ANTHROPIC_KEY not in everything


def _envelope(event: dict[str, Any]) -> bytes:
    envelope = Envelope(headers={"event_id": event.get("event_id", "x")})
    envelope.add_event(event)
    return envelope.serialize()


def _post(server: Server, project: str, body: bytes, **headers: str) -> httpx.Response:
    auth = {"X-Sentry-Auth": f"Sentry sentry_key={DSN_KEY}, sentry_version=7"}
    return httpx.post(
        f"{server.url}/api/{project}/envelope/", content=body, headers={**auth, **headers}
    )


@pytest.mark.docker
def test_refusals_are_sentrys_answers_and_a_group_starts_its_fix_at_the_configured_count(
    server: Server,
) -> None:
    with pytest.raises(ValueError) as info:
        raise ValueError("bad order")
    body = _envelope(_captured(info.value, event_id="f" * 32))

    assert httpx.post(f"{server.url}/api/1/envelope/", content=body).status_code == 401
    wrong = {"X-Sentry-Auth": "Sentry sentry_key=ffffffffffffffffffffffffffffffff"}
    assert (
        httpx.post(f"{server.url}/api/1/envelope/", content=body, headers=wrong).status_code == 401
    )
    assert _post(server, "9", body).status_code == 401  # no such project
    assert _post(server, "1", b"garbage\n").status_code == 400
    assert _post(server, "1", b"garbage", **{"Content-Encoding": "gzip"}).status_code == 400
    bomb = gzip.compress(b"{}\n" + b" " * (30 * 2**20))
    assert _post(server, "1", bomb, **{"Content-Encoding": "gzip"}).status_code == 413
    assert _post(server, "1", b"{}\n" + b" " * 70_000).status_code == 413  # max_body_bytes
    assert httpx.get(f"{server.url}/v1/groups").status_code == 401
    missing = httpx.get(f"{server.url}/v1/groups/nope", headers=_auth(server))
    assert missing.status_code == 404

    # Store endpoint, key in the query: counted in project 2's group; the third starts it.
    reversed_key = DSN_KEY[::-1]
    store = f"{server.url}/api/2/store/?sentry_key={reversed_key}"
    event = _captured(info.value, event_id="a" * 32)
    refusals = []
    for _ in range(3):
        answer = httpx.post(store, content=gzip.compress(json.dumps(event).encode()),
                            headers={"Content-Encoding": "gzip"})  # fmt: skip
        assert answer.status_code == 200 and answer.json() == {"id": "a" * 32}
        group = next(g for g in _groups(server) if g["project"] == "2")
        refusals.append(group["fix_refusal"])
    assert refusals[:2] == [None, None]
    assert refusals[2] and "not in [service] repo_allowlist" in refusals[2]

    # A message without an exception is accepted and groups nothing.
    before = len(_groups(server))
    client = sentry_sdk.Client(dsn=_dsn(server))
    with sentry_sdk.new_scope() as scope:
        scope.set_client(client)
        sentry_sdk.capture_message("deploy finished")
    client.flush(timeout=10)
    client.close()
    assert len(_groups(server)) == before


@pytest.mark.docker
def test_without_a_commit_release_a_group_starts_from_the_branch_head_at_the_event(
    server: Server, history_repo: tuple[Path, str, str]
) -> None:
    _, first, later = history_repo
    assert first != later
    with pytest.raises(KeyError) as info:
        {}["sku"]
    event = _captured(info.value, event_id="b" * 32, timestamp="2026-11-10T08:00:00Z")
    event["release"] = "orders@1.4.2"  # a version, not a commit
    auth = {"X-Sentry-Auth": f"Sentry sentry_key={DSN_KEY.upper()}, sentry_version=7"}
    answer = httpx.post(
        f"{server.url}/api/3/envelope/", content=_envelope(event), headers=auth, timeout=30
    )
    assert answer.status_code == 200, answer.text
    group = next(g for g in _groups(server) if g["project"] == "3")
    assert group["base"] == first  # the head on 2026-11-10, not today's
    assert group["fix_id"] is None and group["fix_refusal"] is None  # fix = false
