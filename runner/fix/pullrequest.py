"""A verified fix as a pull request: one commit on a new branch, pushed, and a draft PR.

The commit (fix and regression test) is made with real git in a throw-away checkout of the
failing commit; it is pushed to the project's remote, with the configured token for
https remotes passed to git through its environment (never on a command line, in a log
or in a result). The draft PR goes through GitHub's REST API with PyGithub; a group's
open PR is updated instead of opening a second one. Nothing is retried: a failure is a
``failed`` record with the reason, for the fix job to show.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
import subprocess
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path

import structlog
from github import Auth, Github, GithubException
from github.PullRequest import PullRequest
from github.Repository import Repository
from pydantic import Field

from runner.config import GitHubSettings
from runner.errors import RunnerError
from runner.fix.errorreport import ErrorReport
from runner.fix.result import FixResult, PullRequestRecord
from runner.models import Model, Verdict
from runner.workspace.mirrors import MirrorCache
from runner.workspace.trees import apply_patch, checkout, remove_tree

__all__ = ["GITHUB_REPO", "PullRequestTarget", "branch_name", "open_pull_request", "report_group"]

log = structlog.get_logger(__name__)

_GIT_TIMEOUT_S = 120
_SLUG = re.compile(r"[^a-z0-9]+")
GITHUB_REPO = r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$"


class PullRequestTarget(Model):
    """Where a verified fix goes: the remote, the GitHub repository, the group it fixes."""

    github_repo: str = Field(pattern=GITHUB_REPO, description="owner/name on GitHub.")
    base_branch: str = Field(description="The branch the PR merges into.")
    push_url: str = Field(description="Remote the branch is pushed to (URL or path).")
    group: str = Field(description="The error group's id (the branch and PR carry it).")
    group_url: str | None = Field(default=None, description="Link back to the error group.")
    labels: list[str] = Field(default_factory=list, description="Labels put on the PR.")
    first_event_at: float | None = Field(
        default=None, description="Epoch seconds of the group's first event, to time the PR."
    )


class _PushError(RunnerError):
    """git could not commit or push."""


def report_group(report: ErrorReport) -> str:
    """A group id for a report with no tracker behind it: type and frames, no line numbers."""
    info = report.exception
    parts = [report.exception_type, *(f"{Path(f.path).name}:{f.function}" for f in info.frames)]
    return hashlib.sha256("\n".join(parts).encode("utf-8")).hexdigest()[:16]


def branch_name(group: str, fix_id: str) -> str:
    """``fixrunner/<group>-<short id>``: the group first, so a group's branches sort together."""
    short = _SLUG.sub("", fix_id.rsplit("-", 1)[-1].lower())[:8] or "fix"
    return f"fixrunner/{_SLUG.sub('-', group.lower()).strip('-')}-{short}"


def _token(settings: GitHubSettings, environ: Mapping[str, str]) -> str:
    if settings.token is not None:
        return settings.token.get_secret_value()
    return environ.get("GITHUB_TOKEN", "")


def _redact(text: str, secret: str) -> str:
    return text.replace(secret, "[redacted]") if secret else text


def _git_env(settings: GitHubSettings, push_url: str, token: str) -> dict[str, str]:
    """git's environment: no user or system config, no prompts, the token as a header."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": tempfile.gettempdir(),
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_GLOBAL": os.devnull,
        "GIT_TERMINAL_PROMPT": "0",
        "GIT_ALLOW_PROTOCOL": "https:ssh:file",  # never ext:: or plain http (the header)
        "GIT_ASKPASS": "",
        "GIT_SSH_COMMAND": "ssh -o BatchMode=yes",
        "GIT_AUTHOR_NAME": settings.author_name,
        "GIT_AUTHOR_EMAIL": settings.author_email,
        "GIT_COMMITTER_NAME": settings.author_name,
        "GIT_COMMITTER_EMAIL": settings.author_email,
    }
    config = {"core.hooksPath": os.devnull, "commit.gpgsign": "false"}
    if token and push_url.startswith("https://"):
        basic = base64.b64encode(f"x-access-token:{token}".encode()).decode()
        config["http.extraHeader"] = f"Authorization: Basic {basic}"
    env["GIT_CONFIG_COUNT"] = str(len(config))
    for n, (key, value) in enumerate(config.items()):
        env[f"GIT_CONFIG_KEY_{n}"] = key
        env[f"GIT_CONFIG_VALUE_{n}"] = value
    return env


def _git(tree: Path, env: dict[str, str], secret: str, *args: str) -> str:
    try:
        done = subprocess.run(
            ["git", *args],
            cwd=tree,
            env=env,
            capture_output=True,
            text=True,
            timeout=_GIT_TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise _PushError(f"git {args[0]} timed out after {_GIT_TIMEOUT_S}s") from None
    if done.returncode != 0:
        lines = (done.stderr or done.stdout).strip().splitlines()
        why = _redact(lines[-1] if lines else "no output", secret)
        raise _PushError(f"git {args[0]} failed: {why}")
    return done.stdout.strip()


def commit_message(result: FixResult, settings: GitHubSettings) -> str:
    """First line from the error; the evidence summary; the co-author trailer if configured."""
    subject = f"Fix {result.error}"[:72]
    lines = [subject, "", result.summary, "", f"fixrunner fix job {result.fix_id}."]
    if settings.co_author:
        lines += ["", f"Co-authored-by: {settings.co_author}"]
    return "\n".join(lines) + "\n"


def _commit_and_push(
    result: FixResult,
    target: PullRequestTarget,
    branch: str,
    mirrors: MirrorCache,
    settings: GitHubSettings,
    token: str,
) -> str:
    """The fix commit on ``branch`` in the remote; returns its id."""
    assert result.commit and result.patch
    mirror = mirrors.ensure(result.repo, result.commit)
    tree = Path(tempfile.mkdtemp(prefix="fixrunner-pr-")) / "tree"
    env = _git_env(settings, target.push_url, token)
    try:
        checkout(mirror, result.commit, tree)
        apply_patch(tree, result.patch, False, "fix")
        if result.test_patch and result.test_patch.strip():
            apply_patch(tree, result.test_patch, False, "regression test")
        message = tree / ".git" / "FIXRUNNER_MSG"
        message.write_text(commit_message(result, settings), encoding="utf-8")
        _git(tree, env, token, "commit", "--quiet", "--no-verify", "-F", str(message))
        sha = _git(tree, env, token, "rev-parse", "HEAD")
        # Force: the branch is the runner's own; a group's newer fix replaces the older one.
        _git(
            tree,
            env,
            token,
            "push",
            "--quiet",
            "--force",
            "--",
            target.push_url,
            f"HEAD:refs/heads/{branch}",
        )
        return sha
    finally:
        remove_tree(tree.parent)


def checks_table(verdict: Verdict | None) -> str:
    """The verdict's checks as a Markdown table."""
    if verdict is None or not verdict.checks:
        return ""
    rows = ["| Check | Result | Detail |", "| --- | --- | --- |"]
    for check in verdict.checks:
        detail = check.detail.replace("|", "\\|").replace("\n", " ")[:200]
        rows.append(f"| `{check.name}` | {'pass' if check.passed else 'fail'} | {detail} |")
    return "\n".join(rows)


def pr_body(result: FixResult, target: PullRequestTarget) -> str:
    """PR.md, the checks table and the link back to the error group."""
    verdict = result.attempts[-1].verdict if result.attempts else None
    parts = [(result.pull_request or f"# Fix {result.error}\n").rstrip()]
    table = checks_table(verdict)
    if table:
        parts.append("## Checks\n\n" + table)
    link = f"[{target.group}]({target.group_url})" if target.group_url else f"`{target.group}`"
    parts.append(f"Error group: {link} · fix job `{result.fix_id}`")
    parts.append(f"<!-- fixrunner-group: {target.group} -->")
    return "\n\n".join(parts) + "\n"


def _group_pull(repo: Repository, target: PullRequestTarget) -> PullRequest | None:
    """The group's open PR (its branch starts with ``fixrunner/<group>-``), if any."""
    prefix = branch_name(target.group, "x").rsplit("-", 1)[0] + "-"
    for pull in repo.get_pulls(state="open", base=target.base_branch):
        if pull.head.ref.startswith(prefix):
            return pull
    return None


def _failed(branch: str, why: str, token: str, commit: str | None = None) -> PullRequestRecord:
    return PullRequestRecord(
        state="failed", branch=branch, commit=commit, error=_redact(why, token)
    )


def open_pull_request(
    result: FixResult,
    target: PullRequestTarget,
    mirrors: MirrorCache,
    settings: GitHubSettings,
    environ: Mapping[str, str] | None = None,
) -> PullRequestRecord:
    """Commit, push and open (or update) the draft PR of a verified result; never raises."""
    env = os.environ if environ is None else environ
    token = _token(settings, env)
    branch = branch_name(target.group, result.fix_id)
    if result.status != "verified" or not result.patch or not result.commit:
        return _failed(branch, "only a verified fix becomes a pull request", token)
    if not token:
        return _failed(branch, "no GitHub token: set GITHUB_TOKEN (or [github] token)", token)
    title = f"Fix {result.error}"[:120]
    body = pr_body(result, target)
    client = Github(
        base_url=settings.api_url.rstrip("/"),
        auth=Auth.Token(token),
        timeout=int(settings.timeout_s),
        retry=None,  # a failed PR is reported on the job, never retried blindly
        lazy=True,
    )
    sha: str | None = None
    try:
        repo = client.get_repo(target.github_repo)
        existing = _group_pull(repo, target)
        if existing is not None:
            branch = existing.head.ref  # the group's PR: its branch gets the newer fix
        sha = _commit_and_push(result, target, branch, mirrors, settings, token)
        if existing is not None:
            existing.edit(title=title, body=body)
            pull = existing
        else:
            pull = repo.create_pull(
                base=target.base_branch, head=branch, title=title, body=body, draft=True
            )
        if target.labels:
            pull.add_to_labels(*target.labels)
    except GithubException as exc:
        message = exc.data.get("message") if isinstance(exc.data, dict) else None
        why = f"GitHub answered {exc.status}: {message or 'no message'}"
        log.warning("pr.api_failed", fix_id=result.fix_id, branch=branch, error=_redact(why, token))
        return _failed(branch, why, token, sha)
    except (RunnerError, OSError) as exc:
        log.warning(
            "pr.push_failed", fix_id=result.fix_id, branch=branch, error=_redact(str(exc), token)
        )
        return _failed(branch, f"push: {exc}", token, sha)
    finally:
        client.close()
    started = target.first_event_at
    record = PullRequestRecord(
        state="updated" if existing is not None else "opened",
        branch=branch,
        commit=sha,
        url=pull.html_url,
        number=pull.number,
        seconds_from_first_event=round(time.time() - started, 3) if started else None,
    )
    log.info("pr.done", fix_id=result.fix_id, state=record.state, url=record.url)
    return record
