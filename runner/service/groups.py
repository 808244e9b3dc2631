"""Error groups: events counted per fingerprint, one fix job per group, its pull request.

Stored beside the jobs, in the service's SQLite file (tables of their own). A group
starts a fix job when it has seen ``fix_after_events`` events within ``fix_window_s``
(default: its first event), and only once: later events are counted and start nothing,
so a burst of one error never turns into a burst of fix jobs. The fix job is an ordinary
one (``runner-sentry-<project>`` holds it); when it verifies and the project asks for
it, its branch and draft PR are made before the job ends, and the outcome is on the job.
"""

from __future__ import annotations

import re
import sqlite3
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import structlog
from pydantic import Field

from runner.config import ProjectSettings
from runner.errors import RunnerError
from runner.fix.errorreport import ErrorReport
from runner.fix.pullrequest import PullRequestTarget, open_pull_request
from runner.fix.result import FixResult, PullRequestRecord
from runner.ingest import SentryEvent, fingerprint, group_title, to_error_report
from runner.models import Model
from runner.service.admission import ServiceRefusal
from runner.service.core import Service
from runner.service.models import FixSubmission, FixView
from runner.workspace.mirrors import commit_before

__all__ = ["GroupDesk", "GroupList", "GroupStore", "GroupView", "Ingested"]

log = structlog.get_logger(__name__)

_COMMIT = re.compile(r"^[0-9a-f]{7,40}$")
_SCHEMA = """
CREATE TABLE IF NOT EXISTS error_groups (
    id TEXT PRIMARY KEY,
    project TEXT NOT NULL,
    title TEXT NOT NULL,
    report TEXT NOT NULL,
    base TEXT NOT NULL,
    first_seen REAL NOT NULL,
    last_seen REAL NOT NULL,
    events INTEGER NOT NULL,
    fix_id TEXT,
    fix_refusal TEXT
);
CREATE TABLE IF NOT EXISTS error_events (
    group_id TEXT NOT NULL,
    event_id TEXT,
    received REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS error_events_group ON error_events (group_id, received);
"""


class GroupView(Model):
    """GET /v1/groups/{id}: an error group, its fix job and its pull request."""

    id: str = Field(description="The group's fingerprint id.")
    project: str = Field(description="The project (DSN project id).")
    title: str = Field(description="'Type: first message line' of the error.")
    events: int = Field(description="Events seen.")
    first_seen: datetime
    last_seen: datetime
    base: str = Field(
        description="The revision the fix starts from: the release when it is a commit id, "
        "else the branch's head at the first event."
    )
    fix_id: str | None = Field(default=None, description="The group's fix job, once started.")
    fix_refusal: str | None = Field(default=None, description="Why no fix job could start.")
    fix: FixView | None = Field(default=None, description="The fix job's state and result.")
    pr_url: str | None = Field(default=None, description="The pull request, once opened.")
    pr_state: str | None = Field(default=None, description="opened, updated or failed.")
    seconds_to_pr: float | None = Field(default=None, description="First event → PR opened.")


class GroupList(Model):
    """GET /v1/groups."""

    groups: list[GroupView]


class Ingested(Model):
    """What one event did: its group, and the fix job it started, if any."""

    group_id: str
    fix_started: str | None = None


class GroupStore:
    """The groups and their events in SQLite; one connection guarded by a lock."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.lock = threading.RLock()
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA busy_timeout=5000")
        self._db.executescript(_SCHEMA)

    def add_event(
        self, group_id: str, project: str, title: str, report: ErrorReport, base: str, event_id: str
    ) -> sqlite3.Row:
        """Count one event (creating the group on its first); returns the group's row."""
        stamp = time.time()
        with self.lock:
            self._db.execute(
                "INSERT INTO error_groups (id, project, title, report, base, first_seen, "
                "last_seen, events) VALUES (?, ?, ?, ?, ?, ?, ?, 1) ON CONFLICT(id) DO UPDATE "
                "SET last_seen = excluded.last_seen, events = events + 1",
                (group_id, project, title, report.model_dump_json(), base, stamp, stamp),
            )
            self._db.execute(
                "INSERT INTO error_events (group_id, event_id, received) VALUES (?, ?, ?)",
                (group_id, event_id, stamp),
            )
            return self.get(group_id)  # type: ignore[return-value]  # just written

    def recent(self, group_id: str, window_s: float) -> int:
        """Events of the group received in the last ``window_s`` seconds."""
        with self.lock:
            row = self._db.execute(
                "SELECT COUNT(*) FROM error_events WHERE group_id = ? AND received >= ?",
                (group_id, time.time() - window_s),
            ).fetchone()
        return int(row[0])

    def set_fix(self, group_id: str, fix_id: str | None, refusal: str | None) -> None:
        """Record the group's fix job, or why none could start."""
        with self.lock:
            self._db.execute(
                "UPDATE error_groups SET fix_id = ?, fix_refusal = ? WHERE id = ?",
                (fix_id, refusal, group_id),
            )

    def get(self, group_id: str) -> sqlite3.Row | None:
        """The group's row."""
        with self.lock:
            row: sqlite3.Row | None = self._db.execute(
                "SELECT * FROM error_groups WHERE id = ?", (group_id,)
            ).fetchone()
        return row

    def by_fix(self, fix_id: str) -> sqlite3.Row | None:
        """The group whose fix job this is."""
        with self.lock:
            row: sqlite3.Row | None = self._db.execute(
                "SELECT * FROM error_groups WHERE fix_id = ?", (fix_id,)
            ).fetchone()
        return row

    def list(self, limit: int) -> list[sqlite3.Row]:
        """Groups, most recently seen first."""
        with self.lock:
            return list(
                self._db.execute(
                    "SELECT * FROM error_groups ORDER BY last_seen DESC LIMIT ?", (limit,)
                )
            )

    def close(self) -> None:
        """Close the connection."""
        with self.lock:
            self._db.close()


def _when(stamp: float) -> datetime:
    return datetime.fromtimestamp(stamp, UTC)


def fix_token(project: str) -> str:
    """The job-store owner of a project's fix jobs."""
    return f"runner-sentry-{project}"


class GroupDesk:
    """Takes events, keeps groups, starts fix jobs, and turns verified fixes into PRs."""

    def __init__(self, service: Service, store: GroupStore) -> None:
        self.service = service
        self.store = store
        self.projects = service.settings.projects

    def project(self, project_id: str) -> ProjectSettings | None:
        """The configured project, or None."""
        return self.projects.get(project_id)

    def ingest(self, project_id: str, event: SentryEvent) -> Ingested | None:
        """Count an event in its group and start the group's fix when due; None: no exception."""
        project = self.projects[project_id]
        report = to_error_report(event)
        if report is None:
            return None  # a message or a log record: nothing for a fix to start from
        group_id = fingerprint(project_id, event)
        base = project.branch
        if self.store.get(group_id) is None:  # a new group: find the commit it ran once
            base = self._base(project, event)
        with self.store.lock:  # count and start as one step: never two fix jobs at once
            row = self.store.add_event(
                group_id, project_id, group_title(event), report, base, event.event_id or ""
            )
            started = None
            due = self.store.recent(group_id, project.fix_window_s) >= project.fix_after_events
            if project.fix and row["fix_id"] is None and due:
                started = self._start_fix(group_id, project_id, report, row["base"])
        return Ingested(group_id=group_id, fix_started=started)

    def _base(self, project: ProjectSettings, event: SentryEvent) -> str:
        """The event's release when it is a commit id, else the branch's head at its time."""
        release = (event.release or "").strip().lower()
        if _COMMIT.fullmatch(release):
            return release
        runtime = self.service.runtime
        if runtime is None or event.timestamp is None:
            return project.branch
        try:
            mirror, head = runtime.mirrors.resolve(project.repo, project.branch)
            return commit_before(mirror, head, event.timestamp) or head
        except RunnerError as exc:
            # The fix job resolves the branch again and reports what is wrong with it.
            log.warning("group.base_unresolved", repo=project.repo, error=str(exc))
            return project.branch

    def _start_fix(
        self, group_id: str, project_id: str, report: ErrorReport, base: str
    ) -> str | None:
        submission = FixSubmission(repo=self.projects[project_id].repo, base=base, error=report)
        token = fix_token(project_id)
        try:
            record, _ = self.service.submit_fix(token, f"group-{group_id}", submission)
        except ServiceRefusal as exc:
            self.store.set_fix(group_id, None, str(exc))
            log.warning("group.fix_refused", group=group_id, reason=str(exc))
            return None
        self.store.set_fix(group_id, record.id, None)
        log.info("group.fix_started", group=group_id, fix_id=record.id)
        return record.id

    def after_fix(self, fix_id: str, submission: FixSubmission, result: FixResult) -> FixResult:
        """A group's verified fix becomes a branch and a draft PR (if its project says so)."""
        row = self.store.by_fix(fix_id)
        if row is None or result.status != "verified":
            return result  # not a group's fix, or nothing to propose: never a PR
        project = self.projects.get(row["project"])
        if project is None or not project.open_pr:
            return result
        record = self._publish(row, project, result)
        return result.model_copy(update={"pr": record})

    def _publish(
        self, row: sqlite3.Row, project: ProjectSettings, result: FixResult
    ) -> PullRequestRecord:
        if not project.github_repo:
            return PullRequestRecord(
                state="failed",
                branch="",
                error=f"[projects.{row['project']}] has no github_repo to open the PR in",
            )
        github = self.service.settings.github
        listen = self.service.settings.service
        public = github.public_url or f"http://{listen.host}:{listen.port}"
        target = PullRequestTarget(
            github_repo=project.github_repo,
            base_branch=project.branch,
            push_url=project.push_url or project.repo,
            group=row["id"],
            group_url=f"{public.rstrip('/')}/v1/groups/{row['id']}",
            labels=project.labels,
            first_event_at=row["first_seen"],
        )
        runtime = self.service.runtime
        assert runtime is not None  # fix jobs run on the local executor only
        return open_pull_request(result, target, runtime.mirrors, github)

    def view(self, row: sqlite3.Row) -> GroupView:
        """The group as the API shows it, with its fix job."""
        fix = None
        if row["fix_id"] and (record := self.service.store.get(row["fix_id"])) is not None:
            fix = self.service.fix_view(record)
        pr = fix.result.pr if fix and fix.result else None
        return GroupView(
            id=row["id"],
            project=row["project"],
            title=row["title"],
            events=row["events"],
            first_seen=_when(row["first_seen"]),
            last_seen=_when(row["last_seen"]),
            base=row["base"],
            fix_id=row["fix_id"],
            fix_refusal=row["fix_refusal"],
            fix=fix,
            pr_url=pr.url if pr else None,
            pr_state=pr.state if pr else None,
            seconds_to_pr=pr.seconds_from_first_event if pr else None,
        )
