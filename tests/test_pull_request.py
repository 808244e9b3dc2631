"""A verified fix as a branch and a draft PR: real git, a real bare remote, PyGithub.

GitHub's REST API is the loopback server of tests/github_fake.py (it checks the token, the
request shapes, and that a PR's head branch really is in the bare remote). The fix result
is the input here; the fix loop that produces one is tested in test_fixer.py and, end to
end with a PR, in test_sentry_ingest.py.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog
from conftest import TEST_INSTANCE
from github_fake import FakeGitHub
from service_support import GOOD, make_calc_repo

from runner.config import GitHubSettings
from runner.fix.pullrequest import PullRequestTarget, branch_name, open_pull_request
from runner.fix.result import FixResult
from runner.workspace.mirrors import MirrorCache

TOKEN = "ghp_FAKEtoken0123456789never-log-me"
REPO = "acme/calc"
REGRESSION = """\
diff --git a/tests/test_add_regression.py b/tests/test_add_regression.py
new file mode 100644
--- /dev/null
+++ b/tests/test_add_regression.py
@@ -0,0 +1,5 @@
+from calc import add
+
+
+def test_add_adds_negative_numbers():
+    assert add(-2, -3) == -5
"""


def _git(*args: str, cwd: Path | None = None) -> str:
    done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=True)
    return done.stdout.strip()


@pytest.fixture
def remote(tmp_path: Path) -> tuple[Path, Path, str]:
    """The project (one commit on main) and its bare remote; returns (repo, remote, commit)."""
    repo = make_calc_repo(tmp_path / "calc")
    _git("branch", "-M", "main", cwd=repo)
    bare = tmp_path / "remote.git"
    _git("clone", "--quiet", "--bare", str(repo), str(bare))
    return repo, bare, _git("rev-parse", "HEAD", cwd=repo)


@pytest.fixture
def github(remote: tuple[Path, Path, str]) -> Iterator[FakeGitHub]:
    with FakeGitHub(REPO, remote[1], TOKEN) as fake:
        yield fake


def _result(repo: Path, commit: str, fix_id: str = "fix-20261130T120000-abc123") -> FixResult:
    return FixResult(
        fix_id=fix_id,
        status="verified",
        summary="attempt 1: verified: 1 fail-to-pass, no regression",
        repo=str(repo),
        base="main",
        commit=commit,
        error="AssertionError: add(2, 3) returned -1",
        model="claude-test",
        patch=GOOD,
        test_patch=REGRESSION,
        pull_request="# Fix AssertionError\n\nThe evidence.\n",
    )


def _target(bare: Path, group: str = "0123abcd4567ef89") -> PullRequestTarget:
    return PullRequestTarget(
        github_repo=REPO,
        base_branch="main",
        push_url=str(bare),
        group=group,
        group_url=f"http://127.0.0.1:1/v1/groups/{group}",
        labels=["fixrunner", "bug"],
        first_event_at=None,
    )


def _settings(github: FakeGitHub, token: str = TOKEN) -> GitHubSettings:
    return GitHubSettings.model_validate(
        {
            "api_url": github.base_url,
            "token": token,
            "co_author": "Ada Reviewer <ada@example.invalid>",
        }
    )


def test_a_verified_fix_becomes_one_commit_on_a_new_branch_and_a_draft_pr(
    tmp_path: Path, remote: tuple[Path, Path, str], github: FakeGitHub
) -> None:
    repo, bare, commit = remote
    mirrors = MirrorCache(tmp_path / "mirrors", allow_local=True)
    with structlog.testing.capture_logs() as logs:
        record = open_pull_request(
            _result(repo, commit), _target(bare), mirrors, _settings(github), environ={}
        )
    assert record.state == "opened", record.error
    branch = "fixrunner/0123abcd4567ef89-abc123"
    assert record.branch == branch == branch_name("0123abcd4567ef89", "fix-2026-abc123")
    assert record.url == f"https://github.com/{REPO}/pull/1" and record.number == 1

    # One commit on top of the failing one, with the fix and its regression test.
    pushed = _git("--git-dir", str(bare), "rev-parse", f"refs/heads/{branch}")
    assert pushed == record.commit
    assert _git("--git-dir", str(bare), "rev-parse", f"{pushed}^") == commit
    files = _git("--git-dir", str(bare), "diff", "--name-only", commit, pushed).splitlines()
    assert sorted(files) == ["calc.py", "tests/test_add_regression.py"]
    message = _git("--git-dir", str(bare), "log", "-1", "--format=%an <%ae>%n%B", pushed)
    assert message.startswith("fixrunner <fixrunner@users.noreply.github.com>\nFix AssertionError")
    assert "attempt 1: verified" in message
    assert "Co-authored-by: Ada Reviewer <ada@example.invalid>" in message
    assert _git("--git-dir", str(bare), "rev-parse", "refs/heads/main") == commit  # untouched

    create = next(r for r in github.requests if r.method == "POST" and r.path.endswith("/pulls"))
    assert create.body["draft"] is True
    assert create.body["head"] == branch and create.body["base"] == "main"
    assert create.body["title"] == "Fix AssertionError: add(2, 3) returned -1"
    assert create.body["body"].startswith("# Fix AssertionError\n\nThe evidence.")
    assert "http://127.0.0.1:1/v1/groups/0123abcd4567ef89" in create.body["body"]
    assert create.headers["authorization"].endswith(TOKEN)
    assert [label["name"] for label in github.pulls[0]["labels"]] == ["fixrunner", "bug"]
    assert TOKEN not in record.model_dump_json() and TOKEN not in repr(logs)


def test_a_second_fix_of_the_group_updates_its_open_pr(
    tmp_path: Path, remote: tuple[Path, Path, str], github: FakeGitHub
) -> None:
    repo, bare, commit = remote
    mirrors = MirrorCache(tmp_path / "mirrors", allow_local=True)
    first = open_pull_request(_result(repo, commit), _target(bare), mirrors, _settings(github))
    later = _result(repo, commit, "fix-20261130T130000-def456").model_copy(
        update={"pull_request": "# Fix AssertionError\n\nNewer evidence.\n"}
    )
    second = open_pull_request(later, _target(bare), mirrors, _settings(github))
    assert (first.state, second.state) == ("opened", "updated"), second.error
    assert second.number == first.number and second.branch == first.branch
    assert len(github.pulls) == 1 and "Newer evidence" in github.pulls[0]["body"]
    branches = _git("--git-dir", str(bare), "branch", "--list", "fixrunner/*").split()
    assert branches == [first.branch]


def test_a_rejected_fix_never_pushes_or_opens_a_pr(
    tmp_path: Path, remote: tuple[Path, Path, str], github: FakeGitHub
) -> None:
    repo, bare, commit = remote
    rejected = _result(repo, commit).model_copy(update={"status": "not_verified"})
    mirrors = MirrorCache(tmp_path / "mirrors", allow_local=True)
    record = open_pull_request(rejected, _target(bare), mirrors, _settings(github))
    assert record.state == "failed" and "only a verified fix" in (record.error or "")
    assert github.requests == []
    assert _git("--git-dir", str(bare), "branch", "--list", "fixrunner/*") == ""


def test_a_github_failure_is_reported_once_and_not_retried(
    tmp_path: Path, remote: tuple[Path, Path, str], github: FakeGitHub
) -> None:
    repo, bare, commit = remote
    github.fail_next = [("POST", 502, "Server Error")]  # the listing answers; the create fails
    mirrors = MirrorCache(tmp_path / "mirrors", allow_local=True)
    record = open_pull_request(_result(repo, commit), _target(bare), mirrors, _settings(github))
    assert record.state == "failed"
    assert record.error == "GitHub answered 502: Server Error"
    assert record.commit  # the branch was pushed; the PR could not be opened
    assert [r.method for r in github.requests].count("POST") == 1
    assert github.pulls == []


def test_bad_credentials_and_a_missing_remote_are_reported_without_the_token(
    tmp_path: Path, remote: tuple[Path, Path, str], github: FakeGitHub
) -> None:
    repo, bare, commit = remote
    mirrors = MirrorCache(tmp_path / "mirrors", allow_local=True)
    wrong = "ghp_WRONGtoken-also-secret"
    denied = open_pull_request(
        _result(repo, commit), _target(bare), mirrors, _settings(github, wrong)
    )
    assert denied.state == "failed" and denied.error == "GitHub answered 401: Bad credentials"
    assert wrong not in denied.model_dump_json()

    gone = _target(tmp_path / "no-such-remote.git")
    lost = open_pull_request(_result(repo, commit), gone, mirrors, _settings(github))
    assert lost.state == "failed" and (lost.error or "").startswith("push: git push failed")
    assert TOKEN not in (lost.error or "")
    assert github.pulls == []


# ----------------------------------------------------------------------------- runner fix --open-pr

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "flask-app-context"
ANTHROPIC_KEY = "sk-ant-test-FAKE-CLI-PR-KEY"


@pytest.mark.parametrize(
    ("extra", "env", "says"),
    [
        (["--github-repo", REPO], {}, "no GitHub token: set GITHUB_TOKEN"),
        ([], {"GITHUB_TOKEN": TOKEN}, "name the GitHub repository with --github-repo"),
        (["--github-repo", "not a repo"], {"GITHUB_TOKEN": TOKEN}, "must be OWNER/NAME"),
    ],
)
def test_open_pr_refusals_are_one_line_exit_2_before_any_work(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    extra: list[str],
    env: dict[str, str],
    says: str,
) -> None:
    from runner.cli.main import runner_main

    monkeypatch.delenv("GITHUB_TOKEN", raising=False)
    monkeypatch.setenv("ANTHROPIC_API_KEY", ANTHROPIC_KEY)
    monkeypatch.setenv("ANTHROPIC_BASE_URL", "http://127.0.0.1:9")  # never asked
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    config = tmp_path / "runner.toml"
    config.write_text(f'[paths]\nstate_dir = "{tmp_path / "state"}"\n', encoding="utf-8")
    report = EXAMPLE / "error-report.json"
    argv = ["--config", str(config), "fix", "--repo", str(tmp_path), "--error", str(report)]
    code = runner_main([*argv, "--open-pr", *extra])
    err = capsys.readouterr().err
    assert code == 2
    assert says in err and "Traceback" not in err
    assert not (tmp_path / "state" / "fixes").exists()  # nothing started


def test_a_push_url_with_the_ext_transport_runs_nothing(
    tmp_path: Path, remote: tuple[Path, Path, str], github: FakeGitHub
) -> None:
    repo, _, commit = remote
    marker = tmp_path / "ran"
    target = _target(tmp_path).model_copy(update={"push_url": f"ext::sh -c touch% {marker}"})
    mirrors = MirrorCache(tmp_path / "mirrors", allow_local=True)
    record = open_pull_request(_result(repo, commit), target, mirrors, _settings(github))
    assert record.state == "failed" and (record.error or "").startswith("push: git push failed")
    assert not marker.exists()
    assert github.pulls == []


@pytest.mark.docker
def test_runner_fix_open_pr_pushes_the_verified_fix_and_opens_a_draft_pr(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    base_image: object,
) -> None:
    from anthropic_fake import FakeAnthropic, load_script

    from runner.cli.main import runner_main

    repo = tmp_path / "orders"
    subprocess.run(
        ["bash", str(EXAMPLE / "make-repo.sh"), str(repo)], check=True, capture_output=True
    )
    bare = tmp_path / "orders.git"
    _git("clone", "--quiet", "--bare", str(repo), str(bare))
    replies = load_script(EXAMPLE / "fix-demo" / "replies.json")[1:]  # the verified attempt
    with (
        FakeAnthropic(replies, api_key=ANTHROPIC_KEY) as anthropic,
        FakeGitHub("acme/orders", bare, TOKEN) as github,
    ):
        config = tmp_path / "runner.toml"
        config.write_text(
            f'[paths]\nstate_dir = "{tmp_path / "state"}"\n'
            f'[engine]\ninstance = "{TEST_INSTANCE}"\n'
            f'[fixer]\nmax_retries = 1\n[github]\napi_url = "{github.base_url}"\n',
            encoding="utf-8",
        )
        monkeypatch.setenv("ANTHROPIC_API_KEY", ANTHROPIC_KEY)
        monkeypatch.setenv("ANTHROPIC_BASE_URL", anthropic.base_url)
        monkeypatch.setenv("GITHUB_TOKEN", TOKEN)
        argv = ["--config", str(config), "fix", "--repo", str(repo)]
        argv += ["--error", str(EXAMPLE / "error-report.json"), "--json"]
        code = runner_main(
            [*argv, "--open-pr", "--github-repo", "acme/orders", "--push-url", str(bare)]
        )
        out = capsys.readouterr().out
    result = FixResult.model_validate_json(out)
    assert code == 0, result.summary
    assert result.pr is not None and result.pr.state == "opened", result.pr
    assert result.pr.url == "https://github.com/acme/orders/pull/1"
    assert _git("--git-dir", str(bare), "rev-parse", result.pr.branch) == result.pr.commit
    assert github.pulls[0]["draft"] is True and github.pulls[0]["head"]["ref"] == result.pr.branch
    assert TOKEN not in out and ANTHROPIC_KEY not in out
