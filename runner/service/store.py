"""The durable job store: SQLite in WAL mode behind a small protocol.

A job is accepted only once its row is committed (synchronous=FULL), so a 202 is
never lost. Running jobs found at start-up were interrupted by a crash: they are
requeued once, and a second crash makes them ``done`` with an error verdict.
Fix jobs (/v1/fixes) are rows of the same table with ``kind = 'fix'``: the same states,
queue, recovery and callbacks; their outcome is a FixResult instead of a Verdict.
"""

from __future__ import annotations

import builtins
import sqlite3
import threading
from datetime import datetime
from pathlib import Path

from runner.fix.result import FixResult
from runner.models import Verdict
from runner.service.models import (
    CallbackState,
    Delivery,
    FixSubmission,
    JobKind,
    JobStatus,
    JobSubmission,
)
from runner.service.records import (
    MAX_CRASHES,
    JobRecord,
    Outcome,
    QueueLimitReached,
    Recovery,
    ResultFor,
    Submission,
    VerdictFor,
    fix_error,
    now,
)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    token TEXT NOT NULL,
    idem_key TEXT,
    request_hash TEXT NOT NULL,
    submission TEXT NOT NULL,
    status TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    crashes INTEGER NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL,
    started_at TEXT,
    finished_at TEXT,
    verdict TEXT,
    callback_state TEXT NOT NULL DEFAULT 'none',
    kind TEXT NOT NULL DEFAULT 'verify',
    UNIQUE (token, idem_key)
);
CREATE INDEX IF NOT EXISTS jobs_status ON jobs (status, seq);
CREATE TABLE IF NOT EXISTS deliveries (
    job_id TEXT NOT NULL,
    attempt INTEGER NOT NULL,
    at TEXT NOT NULL,
    ok INTEGER NOT NULL,
    status_code INTEGER,
    error TEXT,
    PRIMARY KEY (job_id, attempt)
);
"""


class SqliteStore:
    """JobStore on one SQLite file in WAL mode; one connection guarded by a lock."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        # FULL: a 202 means the row survives a power cut, not only a process crash.
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute("PRAGMA busy_timeout=5000")
        self._db.executescript(_SCHEMA)
        columns = {row[1] for row in self._db.execute("PRAGMA table_info(jobs)")}
        if "kind" not in columns:  # a store made before fix jobs: every row is a verify job
            self._db.execute("ALTER TABLE jobs ADD COLUMN kind TEXT NOT NULL DEFAULT 'verify'")

    # ------------------------------------------------------------------ jobs

    def add(
        self,
        job_id: str,
        token: str,
        idem_key: str | None,
        request_hash: str,
        sub: Submission,
        queue_limit: int | None = None,
    ) -> tuple[JobRecord, bool]:
        """Insert a queued job, or return the one with the same token and key (created=False).

        With ``queue_limit``, the count of queued jobs and the insert share one write
        transaction, so concurrent submissions never push the queue past the limit.
        """
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                record, created = self._add(job_id, token, idem_key, request_hash, sub, queue_limit)
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return record, created

    def _add(
        self,
        job_id: str,
        token: str,
        idem_key: str | None,
        request_hash: str,
        sub: Submission,
        queue_limit: int | None,
    ) -> tuple[JobRecord, bool]:
        if idem_key is not None:
            row = self._db.execute(
                "SELECT * FROM jobs WHERE token = ? AND idem_key = ?", (token, idem_key)
            ).fetchone()
            if row is not None:
                return _record(row), False
        if queue_limit is not None:
            queued = self._db.execute("SELECT COUNT(*) FROM jobs WHERE status = 'queued'")
            count = int(queued.fetchone()[0])
            if count >= queue_limit:
                raise QueueLimitReached(count)
        self._db.execute(
            "INSERT INTO jobs (id, token, idem_key, request_hash, submission, status, "
            "created_at, callback_state, kind) VALUES (?, ?, ?, ?, ?, 'queued', ?, ?, ?)",
            (
                job_id,
                token,
                idem_key,
                request_hash,
                sub.model_dump_json(),
                now().isoformat(),
                "pending" if sub.callback_url else "none",
                "fix" if isinstance(sub, FixSubmission) else "verify",
            ),
        )
        row = self._db.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return _record(row), True

    def find(self, token: str, idem_key: str) -> JobRecord | None:
        """The job this token submitted under this idempotency key, or None."""
        with self._lock:
            row = self._db.execute(
                "SELECT * FROM jobs WHERE token = ? AND idem_key = ?", (token, idem_key)
            ).fetchone()
        return _record(row) if row is not None else None

    def get(self, job_id: str) -> JobRecord | None:
        """The job, or None."""
        with self._lock:
            row = self._db.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return _record(row) if row is not None else None

    def list(
        self, token: str | None, status: JobStatus | None, limit: int, kind: JobKind = "verify"
    ) -> list[JobRecord]:
        """Jobs of one kind newest first, optionally only one token's and one status."""
        sql = "SELECT * FROM jobs WHERE kind = ?"
        args: list[object] = [kind]
        if token is not None:
            sql += " AND token = ?"
            args.append(token)
        if status is not None:
            sql += " AND status = ?"
            args.append(status)
        sql += " ORDER BY seq DESC LIMIT ?"
        args.append(limit)
        with self._lock:
            rows = self._db.execute(sql, args).fetchall()
        return [_record(r) for r in rows]

    def counts(self) -> dict[str, int]:
        """Number of jobs per status."""
        with self._lock:
            rows = self._db.execute("SELECT status, COUNT(*) FROM jobs GROUP BY status").fetchall()
        return {row[0]: row[1] for row in rows}

    def claim_next(self) -> JobRecord | None:
        """Oldest queued job → running (FIFO), or None."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                row = self._db.execute(
                    "SELECT id FROM jobs WHERE status = 'queued' ORDER BY seq LIMIT 1"
                ).fetchone()
                if row is None:
                    self._db.execute("COMMIT")
                    return None
                self._db.execute(
                    "UPDATE jobs SET status = 'running', attempts = attempts + 1, started_at = ? "
                    "WHERE id = ?",
                    (now().isoformat(), row[0]),
                )
                claimed = self._db.execute("SELECT * FROM jobs WHERE id = ?", (row[0],)).fetchone()
                self._db.execute("COMMIT")
            except sqlite3.Error:
                self._db.execute("ROLLBACK")
                raise
        return _record(claimed)

    def start(self, job_id: str) -> JobRecord | None:
        """A queued or running job (re)started by a remote worker → running; None if finished."""
        with self._lock:
            cursor = self._db.execute(
                "UPDATE jobs SET status = 'running', attempts = attempts + 1, started_at = ? "
                "WHERE id = ? AND status IN ('queued', 'running')",
                (now().isoformat(), job_id),
            )
            if cursor.rowcount == 0:
                return None
            row = self._db.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return _record(row)

    def finish(self, job_id: str, status: JobStatus, verdict: Outcome) -> JobRecord | None:
        """Record a running job's end; None if it was not running (already finished)."""
        with self._lock:
            cursor = self._db.execute(
                "UPDATE jobs SET status = ?, verdict = ?, finished_at = ? "
                "WHERE id = ? AND status = 'running'",
                (status, verdict.model_dump_json(), now().isoformat(), job_id),
            )
            if cursor.rowcount == 0:
                return None
            row = self._db.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return _record(row)

    def requeue(self, job_id: str) -> None:
        """A running job goes back to the queue's front (a shutdown, not a crash)."""
        with self._lock:
            self._db.execute(
                "UPDATE jobs SET status = 'queued', started_at = NULL WHERE id = ? "
                "AND status = 'running'",
                (job_id,),
            )

    def cancel_queued(self, job_id: str, verdict: Outcome) -> bool:
        """Cancel a job still waiting in the queue; False if it is not queued."""
        with self._lock:
            cursor = self._db.execute(
                "UPDATE jobs SET status = 'cancelled', verdict = ?, finished_at = ? "
                "WHERE id = ? AND status = 'queued'",
                (verdict.model_dump_json(), now().isoformat(), job_id),
            )
        return cursor.rowcount == 1

    def recover(self, verdict_for: VerdictFor, result_for: ResultFor = fix_error) -> Recovery:
        """Requeue jobs a crash left running; a job's second crash makes it done (error)."""
        requeued: list[str] = []
        failed: list[str] = []
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                rows = self._db.execute(
                    "SELECT id, crashes, kind, submission FROM jobs WHERE status = 'running' "
                    "ORDER BY seq"
                ).fetchall()
                for job_id, crashes, kind, submission in rows:
                    if crashes + 1 >= MAX_CRASHES:
                        reason = (
                            f"the service stopped unexpectedly {crashes + 1} times while "
                            "running this job; not retried again"
                        )
                        outcome: Outcome = (
                            result_for(
                                job_id, FixSubmission.model_validate_json(submission), reason
                            )
                            if kind == "fix"
                            else verdict_for(job_id, reason)
                        )
                        self._db.execute(
                            "UPDATE jobs SET status = 'done', crashes = crashes + 1, "
                            "verdict = ?, finished_at = ? WHERE id = ?",
                            (outcome.model_dump_json(), now().isoformat(), job_id),
                        )
                        failed.append(job_id)
                    else:
                        self._db.execute(
                            "UPDATE jobs SET status = 'queued', crashes = crashes + 1, "
                            "started_at = NULL WHERE id = ?",
                            (job_id,),
                        )
                        requeued.append(job_id)
                self._db.execute("COMMIT")
            except sqlite3.Error:
                self._db.execute("ROLLBACK")
                raise
        return Recovery(requeued=requeued, failed=failed)

    # ------------------------------------------------------------------ callbacks

    def add_delivery(self, job_id: str, delivery: Delivery) -> None:
        """Store one delivery attempt."""
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO deliveries (job_id, attempt, at, ok, status_code, error) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (
                    job_id,
                    delivery.attempt,
                    delivery.at.isoformat(),
                    int(delivery.ok),
                    delivery.status_code,
                    delivery.error,
                ),
            )

    def deliveries(self, job_id: str) -> builtins.list[Delivery]:
        """A job's delivery attempts, in order."""
        with self._lock:
            rows = self._db.execute(
                "SELECT * FROM deliveries WHERE job_id = ? ORDER BY attempt", (job_id,)
            ).fetchall()
        return [
            Delivery(
                attempt=r["attempt"],
                at=datetime.fromisoformat(r["at"]),
                ok=bool(r["ok"]),
                status_code=r["status_code"],
                error=r["error"],
            )
            for r in rows
        ]

    def set_callback_state(self, job_id: str, state: CallbackState) -> None:
        """Mark a job's callback pending, delivered or failed."""
        with self._lock:
            self._db.execute("UPDATE jobs SET callback_state = ? WHERE id = ?", (state, job_id))

    def pending_callbacks(self) -> builtins.list[str]:
        """Finished jobs whose callback has not been delivered nor given up on."""
        with self._lock:
            rows = self._db.execute(
                "SELECT id FROM jobs WHERE callback_state = 'pending' "
                "AND status IN ('done', 'cancelled') ORDER BY seq"
            ).fetchall()
        return [r[0] for r in rows]

    # ------------------------------------------------------------------ health

    def check_writable(self) -> None:
        """Raise sqlite3.Error unless a write transaction can be taken."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.execute("ROLLBACK")

    def close(self) -> None:
        """Close the connection."""
        with self._lock:
            self._db.close()


def _time(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def _record(row: sqlite3.Row) -> JobRecord:
    verdict = row["verdict"]
    created = datetime.fromisoformat(row["created_at"])
    if row["kind"] == "fix":
        fix = FixSubmission.model_validate_json(row["submission"])
        return JobRecord(
            id=row["id"],
            token=row["token"],
            idem_key=row["idem_key"],
            request_hash=row["request_hash"],
            submission=fix,
            status=row["status"],
            attempts=row["attempts"],
            crashes=row["crashes"],
            created_at=created,
            started_at=_time(row["started_at"]),
            finished_at=_time(row["finished_at"]),
            verdict=None,
            callback_state=row["callback_state"],
            kind="fix",
            result=FixResult.model_validate_json(verdict) if verdict else None,
        )
    return JobRecord(
        id=row["id"],
        token=row["token"],
        idem_key=row["idem_key"],
        request_hash=row["request_hash"],
        submission=JobSubmission.model_validate_json(row["submission"]),
        status=row["status"],
        attempts=row["attempts"],
        crashes=row["crashes"],
        created_at=created,
        started_at=_time(row["started_at"]),
        finished_at=_time(row["finished_at"]),
        verdict=Verdict.model_validate_json(verdict) if verdict else None,
        callback_state=row["callback_state"],
    )
