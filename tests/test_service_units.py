"""The service's pure parts: store, tokens, allowlist, signatures, backoff, OpenAPI."""

from __future__ import annotations

import json
import os
import sqlite3
import stat
from pathlib import Path

import pytest
from pydantic import SecretStr
from pydantic import ValidationError as PydanticValidationError

from runner.client import verify_signature
from runner.config import (
    ServiceSettings,
    ServiceToken,
    Settings,
    load_settings,
)
from runner.distributed.executor import celery_executor
from runner.errors import UsageError
from runner.service.admission import FixesNotSupported, fixer_key_configured, repo_refusal
from runner.service.app import openapi_text
from runner.service.auth import (
    TokenBook,
    create_token,
    hash_token,
    read_tokens_file,
    revoke_token,
)
from runner.service.callbacks import backoff, sign
from runner.service.core import Service, error_verdict, service_settings
from runner.service.models import Delivery, FixSubmission, JobSubmission
from runner.service.records import now
from runner.service.store import _SCHEMA, SqliteStore

REPO_ROOT = Path(__file__).resolve().parent.parent


def _sub(repo: str = "https://github.com/acme/app.git") -> JobSubmission:
    return JobSubmission(repo=repo, patch="--- a/x\n+++ b/x\n")


@pytest.fixture
def store(tmp_path: Path) -> SqliteStore:
    return SqliteStore(tmp_path / "service.db")


# ----------------------------------------------------------------------------- store


def test_the_store_is_wal_and_hands_out_jobs_fifo(store: SqliteStore) -> None:
    mode = store._db.execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"
    for job_id in ("a", "b", "c"):
        store.add(job_id, "ingest", None, "h", _sub())
    claimed = [store.claim_next() for _ in range(4)]
    assert [c.id if c else None for c in claimed] == ["a", "b", "c", None]
    assert claimed[0] is not None and claimed[0].status == "running"
    assert claimed[0].attempts == 1


def test_an_idempotency_key_is_scoped_to_its_token(store: SqliteStore) -> None:
    first, created = store.add("a", "ingest", "k", "h", _sub())
    again, created_again = store.add("b", "ingest", "k", "h", _sub())
    other, created_other = store.add("c", "ci", "k", "h", _sub())
    assert (created, created_again, created_other) == (True, False, True)
    assert again.id == first.id == "a" and other.id == "c"
    assert store.find("ingest", "k") is not None and store.find("ingest", "x") is None


def test_a_job_crashing_twice_ends_as_an_error_verdict(store: SqliteStore) -> None:
    store.add("a", "ingest", None, "h", _sub())
    store.claim_next()
    first = store.recover(error_verdict)
    assert (first.requeued, first.failed) == (["a"], [])
    record = store.get("a")
    assert record is not None and (record.status, record.crashes) == ("queued", 1)
    store.claim_next()
    second = store.recover(error_verdict)
    assert (second.requeued, second.failed) == ([], ["a"])
    record = store.get("a")
    assert record is not None and record.status == "done" and record.verdict is not None
    assert record.verdict.status == "error"
    assert "stopped unexpectedly 2 times" in record.verdict.summary


def test_a_shutdown_requeue_is_not_a_crash(store: SqliteStore) -> None:
    store.add("a", "ingest", None, "h", _sub())
    store.claim_next()
    store.requeue("a")
    record = store.claim_next()
    assert record is not None and record.id == "a"
    assert (record.attempts, record.crashes) == (2, 0)


def test_cancel_reaches_only_queued_jobs(store: SqliteStore) -> None:
    store.add("a", "ingest", None, "h", _sub())
    store.add("b", "ingest", None, "h", _sub())
    store.claim_next()
    assert not store.cancel_queued("a", error_verdict("a", "cancelled"))
    assert store.cancel_queued("b", error_verdict("b", "cancelled"))
    record = store.get("b")
    assert record is not None and record.status == "cancelled"
    assert store.finish("b", "done", error_verdict("b", "x")) is None


def test_deliveries_and_pending_callbacks_are_kept(store: SqliteStore) -> None:
    sub = JobSubmission(repo="/r", patch="p", callback_url="http://127.0.0.1:1/hook")
    store.add("a", "ingest", None, "h", sub)
    store.claim_next()
    store.finish("a", "done", error_verdict("a", "x"))
    assert store.pending_callbacks() == ["a"]
    store.add_delivery("a", Delivery(attempt=1, at=now(), ok=False, error="HTTP 500"))
    store.set_callback_state("a", "delivered")
    assert store.pending_callbacks() == []
    assert [d.error for d in store.deliveries("a")] == ["HTTP 500"]


def test_listing_is_newest_first_per_token(store: SqliteStore) -> None:
    for job_id, token in (("a", "x"), ("b", "y"), ("c", "x")):
        store.add(job_id, token, None, "h", _sub())
    assert [r.id for r in store.list("x", None, 10)] == ["c", "a"]
    assert [r.id for r in store.list(None, "queued", 2)] == ["c", "b"]


# ----------------------------------------------------------------------------- tokens


def _settings(tmp_path: Path, **service: object) -> Settings:
    return Settings(
        paths={"state_dir": tmp_path},  # type: ignore[arg-type]
        service=ServiceSettings(**service),  # type: ignore[arg-type]
    )


def test_a_created_token_is_stored_only_as_its_hash(tmp_path: Path) -> None:
    path = tmp_path / "tokens.json"
    token, record = create_token(path, "ingest")
    assert token not in path.read_text()
    assert record.sha256 == hash_token(token)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    with pytest.raises(UsageError, match="already exists"):
        create_token(path, "ingest")


def test_the_token_book_sees_revocations_without_a_restart(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    book = TokenBook(settings)
    token, _ = create_token(tmp_path / "tokens.json", "ingest")
    assert book.authenticate(token) == "ingest"
    assert book.authenticate(token + "x") is None
    assert revoke_token(tmp_path / "tokens.json", "ingest")
    assert book.authenticate(token) is None
    assert not revoke_token(tmp_path / "tokens.json", "ingest")
    assert read_tokens_file(tmp_path / "tokens.json").tokens[0].revoked_at is not None


def test_tokens_from_runner_toml_and_secrets_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOOK_SECRET", "s3cret")
    configured = ServiceToken(
        name="ci", sha256=hash_token("frt_ci"), callback_secret_env="HOOK_SECRET"
    )
    book = TokenBook(_settings(tmp_path, tokens=[configured]))
    assert book.authenticate("frt_ci") == "ci"
    assert book.callback_secret("ci") == "s3cret"
    assert book.callback_secret("nobody") is None


# ----------------------------------------------------------------------------- config


def test_the_service_runs_without_local_repositories_unless_told(tmp_path: Path) -> None:
    settings = load_settings(REPO_ROOT / "runner.toml", environ={})
    assert settings.security.allow_local_repos is True
    assert service_settings(settings).security.allow_local_repos is False
    env = {"RUNNER_SERVICE__ALLOW_LOCAL_REPOS": "true"}
    allowed = load_settings(REPO_ROOT / "runner.toml", environ=env)
    assert service_settings(allowed).security.allow_local_repos is True
    assert settings.service.concurrency == (os.cpu_count() or 1)
    assert (settings.service.host, settings.service.port) == ("127.0.0.1", 8088)


# ----------------------------------------------------------------------------- allowlist


@pytest.mark.parametrize(
    ("url", "refused"),
    [
        ("https://github.com/acme/app.git", None),
        ("git@github.com:acme/app.git", None),
        ("https://GitHub.com/acme/app", None),
        ("https://git.example.com/team/app.git", None),
        ("https://git.example.com/team", None),
        ("https://git.example.com/teamster/app.git", "not in [service] repo_allowlist"),
        ("https://github.com@evil.example.com/acme/app", "not in [service] repo_allowlist"),
        ("ssh://evil.example.com/acme/app", "not in [service] repo_allowlist"),
        ("/srv/repos/app", "local paths are not allowed"),
        ("file:///srv/repos/app", "file"),
        ("--upload-pack=touch", "git option"),
        ("https://github.com/a b", "whitespace"),
    ],
)
def test_the_allowlist_takes_hosts_and_prefixes(url: str, refused: str | None) -> None:
    service = ServiceSettings(repo_allowlist=["github.com", "https://git.example.com/team/"])
    reason = repo_refusal(url, service)
    if refused is None:
        assert reason is None
    else:
        assert reason is not None and refused in reason


def test_an_empty_allowlist_allows_no_remote_and_local_needs_the_switch(tmp_path: Path) -> None:
    assert "repo_allowlist is empty" in (
        repo_refusal("https://github.com/a/b", ServiceSettings()) or ""
    )
    repo = tmp_path / "repo"
    (repo / ".git").mkdir(parents=True)
    assert repo_refusal(str(repo), ServiceSettings(allow_local_repos=True)) is None
    assert repo_refusal(str(repo), ServiceSettings()) is not None


# ----------------------------------------------------------------------------- callbacks


def test_signatures_verify_only_the_exact_body_and_secret() -> None:
    body = b'{"id": "x"}'
    header = sign(body, "secret")
    assert header.startswith("sha256=") and len(header) == 7 + 64
    assert verify_signature(body, header, "secret")
    assert not verify_signature(body + b" ", header, "secret")
    assert not verify_signature(body, header, "other")
    assert not verify_signature(body, None, "secret")
    assert not verify_signature(body, header.replace("sha256=", "sha1="), "secret")


def test_backoff_doubles_up_to_its_cap() -> None:
    assert [backoff(n, 1.0, 5.0) for n in range(1, 6)] == [1.0, 2.0, 4.0, 5.0, 5.0]


def test_a_callback_url_must_be_http() -> None:
    with pytest.raises(ValueError, match="http"):
        JobSubmission(repo="/r", patch="p", callback_url="file:///etc/passwd")


# ----------------------------------------------------------------------------- openapi


def test_the_committed_openapi_document_is_the_generated_one() -> None:
    committed = (REPO_ROOT / "docs" / "openapi.json").read_text(encoding="utf-8")
    assert committed == openapi_text(), "regenerate: .venv/bin/runner openapi > docs/openapi.json"
    paths = json.loads(committed)["paths"]
    assert set(paths) >= {"/v1/jobs", "/v1/jobs/{job_id}", "/v1/jobs/{job_id}/logs", "/healthz"}


def test_a_submission_may_not_choose_its_job_id() -> None:
    with pytest.raises(ValueError, match="assigns job ids"):
        JobSubmission(repo="/r", patch="p", job_id="mine")
    assert JobSubmission(repo="/r", patch="p").fix_job("x1").job_id == "x1"


# ----------------------------------------------------------------------------- fix jobs

_TRACEBACK = (
    "Traceback (most recent call last):\n"
    '  File "/app/app/seed.py", line 29, in seed_database\n'
    "    db.create_all()\n"
    "RuntimeError: Working outside of application context.\n"
)


def _fix(**extra: object) -> FixSubmission:
    return FixSubmission.model_validate(
        {"repo": "https://github.com/acme/app.git", "error": {"traceback": _TRACEBACK}, **extra}
    )


def test_fix_jobs_share_the_queue_but_not_the_listings(store: SqliteStore) -> None:
    store.add("j", "ingest", None, "h", _sub())
    store.add("f", "ingest", None, "h", _fix())
    assert [r.id for r in store.list("ingest", None, 10)] == ["j"]
    assert [r.id for r in store.list("ingest", None, 10, kind="fix")] == ["f"]
    claimed = [store.claim_next(), store.claim_next()]
    assert [(c.id, c.kind) for c in claimed if c] == [("j", "verify"), ("f", "fix")]
    result = _fix().error_result("f", "x", "claude-sonnet-5")
    finished = store.finish("f", "done", result)
    assert finished is not None and finished.result == result and finished.verdict is None
    assert finished.outcome == result
    view = finished.fix_view([])
    assert view.error == "RuntimeError: Working outside of application context."


def test_a_fix_crashing_twice_ends_as_an_error_result(store: SqliteStore) -> None:
    store.add("f", "ingest", None, "h", _fix())
    for _ in range(2):
        store.claim_next()
        store.recover(error_verdict)
    record = store.get("f")
    assert record is not None and record.status == "done" and record.result is not None
    assert record.result.status == "error"
    assert "stopped unexpectedly 2 times" in record.result.summary
    store.add("g", "ingest", None, "h", _fix())
    assert store.cancel_queued("g", _fix().error_result("g", "cancelled by request"))
    cancelled = store.get("g")
    assert cancelled is not None and cancelled.status == "cancelled"
    assert cancelled.result is not None and "cancelled" in cancelled.result.summary


def test_a_store_from_before_fix_jobs_gains_the_kind_column(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    old = sqlite3.connect(path)
    old.executescript(
        _SCHEMA.replace("    kind TEXT NOT NULL DEFAULT 'verify',\n", "")
    )  # the schema as it was
    old.execute(
        "INSERT INTO jobs (id, token, request_hash, submission, status, created_at) "
        "VALUES ('a', 'ingest', 'h', ?, 'queued', ?)",
        (_sub().model_dump_json(), now().isoformat()),
    )
    old.commit()
    old.close()
    store = SqliteStore(path)
    record = store.get("a")
    assert record is not None and record.kind == "verify"
    assert [r.id for r in store.list(None, None, 10)] == ["a"]


def test_a_fix_submission_never_carries_an_api_key() -> None:
    with pytest.raises(PydanticValidationError, match="api_key"):
        _fix(api_key="sk-ant-from-the-request")
    with pytest.raises(PydanticValidationError, match="traceback"):
        FixSubmission.model_validate({"repo": "/r", "error": {"traceback": "no trace here"}})
    with pytest.raises(PydanticValidationError, match="http"):
        _fix(callback_url="ftp://example.com/hook")


def test_the_fix_key_comes_from_settings_or_the_environment(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    assert not fixer_key_configured(settings, {})
    assert fixer_key_configured(settings, {"ANTHROPIC_API_KEY": "k"})
    configured = settings.model_copy(
        update={"fixer": settings.fixer.model_copy(update={"api_key": SecretStr("k")})}
    )
    assert fixer_key_configured(configured, {})


def test_a_celery_service_answers_fixes_with_501(tmp_path: Path) -> None:
    settings = _settings(tmp_path, executor="celery")
    service = Service(
        settings=settings,
        runtime=None,
        store=SqliteStore(tmp_path / "service.db"),
        tokens=TokenBook(settings),
        remote_executor=celery_executor,
    )
    with pytest.raises(FixesNotSupported, match="local executor only") as refused:
        service.submit_fix("ingest", None, _fix())
    assert refused.value.status == 501 and refused.value.code == "fixes_not_supported"
    service.store.close()
