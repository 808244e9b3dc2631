"""The Celery executor's own rows beside the job store: where each job went, and affinity."""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

_SCHEMA = """
CREATE TABLE IF NOT EXISTS celery_jobs (
    job_id TEXT PRIMARY KEY,
    queue TEXT NOT NULL,
    published_at REAL NOT NULL,
    host TEXT,
    run_id TEXT,
    runs INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS celery_affinity (
    repo TEXT NOT NULL,
    base TEXT NOT NULL,
    env_image TEXT NOT NULL,
    host TEXT NOT NULL,
    at REAL NOT NULL,
    PRIMARY KEY (repo, base)
);
"""


class Dispatch:
    """The executor's own rows beside the store: where each job went, and affinity."""

    def __init__(self, path: Path) -> None:
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA busy_timeout=5000")
        self._db.executescript(_SCHEMA)

    def published(self, job_id: str) -> bool:
        with self._lock:
            row = self._db.execute("SELECT 1 FROM celery_jobs WHERE job_id = ?", (job_id,))
            return row.fetchone() is not None

    def mark_published(self, job_id: str, queue: str) -> None:
        with self._lock:
            self._db.execute(
                "INSERT OR IGNORE INTO celery_jobs (job_id, queue, published_at) VALUES (?, ?, ?)",
                (job_id, queue, time.time()),
            )

    def mark_started(self, job_id: str, host: str, run_id: str) -> None:
        with self._lock:
            self._db.execute(
                "UPDATE celery_jobs SET host = ?, run_id = ?, runs = runs + 1 WHERE job_id = ?",
                (host, run_id, job_id),
            )

    def host_of(self, job_id: str) -> str | None:
        with self._lock:
            row = self._db.execute(
                "SELECT host FROM celery_jobs WHERE job_id = ?", (job_id,)
            ).fetchone()
        return row[0] if row else None

    def load(self, running: list[str], queued: list[str]) -> dict[str, int]:
        """Per host: jobs running there, plus queued jobs pinned to its queue."""
        counts: dict[str, int] = {}
        with self._lock:
            for job_id in running:
                row = self._db.execute(
                    "SELECT host FROM celery_jobs WHERE job_id = ?", (job_id,)
                ).fetchone()
                if row and row[0]:
                    counts[row[0]] = counts.get(row[0], 0) + 1
            for job_id in queued:
                row = self._db.execute(
                    "SELECT queue FROM celery_jobs WHERE job_id = ?", (job_id,)
                ).fetchone()
                if row:
                    counts[f"queue:{row[0]}"] = counts.get(f"queue:{row[0]}", 0) + 1
        return counts

    def remember(self, repo: str, base: str, env_image: str, host: str) -> None:
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO celery_affinity (repo, base, env_image, host, at) "
                "VALUES (?, ?, ?, ?, ?)",
                (repo, base, env_image, host, time.time()),
            )

    def env_image(self, repo: str, base: str) -> str | None:
        """The environment image a job of this repository and base last used."""
        with self._lock:
            row = self._db.execute(
                "SELECT env_image FROM celery_affinity WHERE repo = ? ORDER BY (base = ?) DESC, "
                "at DESC LIMIT 1",
                (repo, base),
            ).fetchone()
        return row[0] if row else None

    def finished_by_host(self) -> dict[str, int]:
        with self._lock:
            rows = self._db.execute(
                "SELECT host, COUNT(*) FROM celery_jobs WHERE host IS NOT NULL GROUP BY host"
            ).fetchall()
        return {r[0]: r[1] for r in rows}

    def close(self) -> None:
        with self._lock:
            self._db.close()
