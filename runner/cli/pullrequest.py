"""`runner fix --open-pr`: the verified fix as a branch and a draft PR, from the command line.

The GitHub repository, base branch and push remote come from the flags, else from the
``[projects.<id>]`` entry whose ``repo`` is the one being fixed. Everything a PR needs is
checked before the fix loop starts, so a missing token costs no tokens.
"""

from __future__ import annotations

import argparse
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runner.errors import UsageError

if TYPE_CHECKING:  # PyGithub and the fix loop load only when --open-pr runs
    from runner.config import ProjectSettings, Settings
    from runner.fix.errorreport import ErrorReport
    from runner.fix.pullrequest import PullRequestTarget
    from runner.fix.result import FixResult
    from runner.workspace.mirrors import MirrorCache

__all__ = ["add_pr_arguments", "pr_target", "publish"]


def add_pr_arguments(fix: Any) -> None:
    """Add --open-pr and its options to the `runner fix` parser."""
    fix.add_argument(
        "--open-pr",
        action="store_true",
        help="when verified: commit fix + test on a new branch, push it, open a draft PR",
    )
    fix.add_argument("--github-repo", default=None, help="owner/name (default: [projects])")
    fix.add_argument("--pr-base", default=None, help="branch the PR targets (default: main)")
    fix.add_argument("--push-url", default=None, help="remote to push to (default: --repo)")


def _project_for(settings: Settings, repo: str) -> ProjectSettings | None:
    for project in settings.projects.values():
        configured = project.repo
        if "://" not in configured and Path(configured).exists():
            configured = str(Path(configured).resolve())
        if configured == repo:
            return project
    return None


def pr_target(args: argparse.Namespace, settings: Settings, repo: str) -> PullRequestTarget | None:
    """What --open-pr needs, checked before any work; None without --open-pr."""
    if not args.open_pr:
        return None
    from runner.fix.pullrequest import GITHUB_REPO, PullRequestTarget

    project = _project_for(settings, repo)
    github_repo = args.github_repo or (project.github_repo if project else None)
    if not github_repo:
        raise UsageError(
            "runner fix --open-pr: name the GitHub repository with --github-repo OWNER/NAME "
            "(or github_repo in the [projects.<id>] entry for this repository)"
        )
    if not re.fullmatch(GITHUB_REPO, github_repo):
        raise UsageError(
            f"runner fix --open-pr: the GitHub repository must be OWNER/NAME, got {github_repo!r}"
        )
    if settings.github.token is None and not os.environ.get("GITHUB_TOKEN"):
        raise UsageError(
            "runner fix --open-pr: no GitHub token: set GITHUB_TOKEN (or token in [github])"
        )
    return PullRequestTarget(
        github_repo=github_repo,
        base_branch=args.pr_base or (project.branch if project else "main"),
        push_url=args.push_url or (project.push_url if project else None) or repo,
        group="pending",  # the report's, once the fix verifies
        labels=project.labels if project else ["fixrunner"],
    )


def publish(
    target: PullRequestTarget,
    result: FixResult,
    report: ErrorReport,
    settings: Settings,
    mirrors: MirrorCache,
) -> FixResult:
    """The result with its PR record; a result that did not verify is returned as it is."""
    if result.status != "verified":
        return result
    from runner.fix.pullrequest import open_pull_request, report_group

    target = target.model_copy(update={"group": report_group(report)})
    record = open_pull_request(result, target, mirrors, settings.github)
    return result.model_copy(update={"pr": record})
