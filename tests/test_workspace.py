"""runner.workspace (git, urls, mirrors, trees) against real git repositories in a temp dir."""

from __future__ import annotations

import hashlib
import os
import re
import stat
import threading
from pathlib import Path

import git
import pytest

from runner.errors import JobInputError, PatchError, WorkspaceError
from runner.workspace.git import private_dir, run_git
from runner.workspace.mirrors import MirrorCache
from runner.workspace.trees import (
    apply_patch,
    check_paths_against_tree,
    checkout,
    copy_tree,
    remove_tree,
    tree_id,
)
from runner.workspace.urls import RepoUrl, validate_repo_url, validate_revision

OTHER_UID = 12345


@pytest.fixture(autouse=True)
def _git_identity(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fixed identity and no user or system config for the tests' own git calls."""
    for who in ("AUTHOR", "COMMITTER"):
        monkeypatch.setenv(f"GIT_{who}_NAME", "Test")
        monkeypatch.setenv(f"GIT_{who}_EMAIL", "test@example.invalid")
        monkeypatch.setenv(f"GIT_{who}_DATE", "2024-01-01T00:00:00Z")
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", os.devnull)


def tgit(repo: Path, *args: str) -> str:
    """The test's own git (not the runner's): trusts every directory, like a fixture author."""
    cmd = ["git", "-c", "safe.directory=*", "-c", "protocol.file.allow=always", *args]
    return str(git.Git(str(repo)).execute(cmd))


def make_repo(path: Path, files: dict[str, str], message: str = "init") -> str:
    """A non-bare repository with one commit of ``files``; returns the commit id."""
    path.mkdir(parents=True)
    tgit(path, "init", "-q", "-b", "main")
    return commit(path, files, message)


def commit(repo: Path, files: dict[str, str], message: str) -> str:
    for name, text in files.items():
        target = repo / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
    tgit(repo, "add", "-A")
    tgit(repo, "commit", "-q", "--allow-empty", "-m", message)
    return tgit(repo, "rev-parse", "HEAD")


def lines(n: int, changed: dict[int, str] | None = None) -> str:
    changed = changed or {}
    return "".join(f"{changed.get(i, f'line {i}')}\n" for i in range(1, n + 1))


@pytest.fixture
def src(tmp_path: Path) -> Path:
    repo = tmp_path / "src"
    make_repo(repo, {"pkg/mod.py": lines(10), "README": "hello\n"})
    return repo


@pytest.fixture
def cache(tmp_path: Path) -> MirrorCache:
    return MirrorCache(tmp_path / "cache", allow_local=True)


@pytest.fixture
def tree(src: Path, cache: MirrorCache, tmp_path: Path) -> Path:
    mirror, sha = cache.resolve(str(src), "HEAD")
    return checkout(mirror, sha, tmp_path / "job")


def diff_of(repo: Path, base: str, changes: dict[str, str]) -> str:
    """A `git diff` patch from ``base`` to ``base`` + changes (made on a side branch)."""
    tgit(repo, "checkout", "-q", "-b", f"side-{len(changes)}-{base[:7]}", base)
    side = commit(repo, changes, "side")
    tgit(repo, "checkout", "-q", "main")
    return tgit(repo, "diff", base, side) + "\n"


# --------------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    "url",
    [
        "https://github.com/pallets/flask.git",
        "https://user:token@example.com/org/repo",
        "ssh://git@example.com/org/repo.git",
        "ssh://git@example.com:2222/org/repo.git",
        "git@github.com:pallets/flask.git",
    ],
)
def test_remote_urls_are_accepted(url: str) -> None:
    assert validate_repo_url(url, allow_local=False) == url


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("--upload-pack=touch /tmp/x", "whitespace"),
        ("--upload-pack=touch", "starts with '-'"),
        ("-u", "starts with '-'"),
        ("https://example.com/x--upload-pack=evil", "--upload-pack"),
        ("ext::sh -c touch% /tmp/pwned", "whitespace"),
        ("ext::sh", "remote helper"),
        ("fd::17", "remote helper"),
        ("-oProxyCommand=touch", "starts with '-'"),
        ("ssh://-oProxyCommand=touch/x", "-oproxycommand"),
        ("ssh://-host/x", "starts with '-'"),
        ("git@-host:org/repo", "starts with '-'"),
        ("host:-path", "starts with '-'"),
        ("http://example.com/repo", "http:// transport"),
        ("git://example.com/repo", "git:// transport"),
        ("ftp://example.com/repo", "ftp:// transport"),
        ("file:///tmp/repo", "file:// is not allowed"),
        ("/tmp", "local paths are not allowed"),
        ("./repo", "local paths are not allowed"),
        ("https://example.com/a\nb", "control"),
        ("https://example.com/a\x00b", "control"),
        ("", "empty"),
        ("https:///path-only", "no host"),
        ("https://" + "a" * 3000, "longer than"),
    ],
)
def test_unsafe_or_unknown_urls_are_refused_with_a_reason(url: str, why: str) -> None:
    with pytest.raises(JobInputError, match="(?i)" + re.escape(why)):
        validate_repo_url(url, allow_local=False)


@pytest.mark.parametrize(
    ("url", "kind", "host"),
    [
        ("https://GitHub.com/acme/app.git", "https", "github.com"),
        ("ssh://git@Git.Example.com:2222/acme/app", "ssh", "git.example.com"),
        ("git@github.com:acme/app.git", "scp", "github.com"),
        ("deploy@Host.Example:acme/app", "scp", "host.example"),
    ],
)
def test_one_grammar_names_the_kind_and_host(url: str, kind: str, host: str) -> None:
    repo = RepoUrl.parse(url, allow_local=False)
    assert (repo.source, repo.kind, repo.host) == (url, kind, host)


def test_a_local_repository_has_no_host(src: Path) -> None:
    repo = RepoUrl.parse(f"file://{src}", allow_local=True)
    assert (repo.source, repo.kind, repo.host) == (str(src.resolve()), "local", "")


def test_refused_url_does_not_echo_its_token() -> None:
    with pytest.raises(JobInputError) as info:
        validate_repo_url("http://user:s3cret@example.com/repo", allow_local=False)
    assert "s3cret" not in str(info.value)


def test_file_transport_is_blocked_below_validation_too(src: Path, tmp_path: Path) -> None:
    """Defence in depth: even a call that skipped validation cannot use a local path."""
    args = ["clone", "--mirror", "--", str(src), str(tmp_path / "m")]
    result = run_git(args, cwd=tmp_path, allow_file=False, trust=[src])
    assert result.status != 0
    assert "transport 'file' not allowed" in result.stderr


def test_local_paths_and_file_urls_need_allow_local(src: Path) -> None:
    assert validate_repo_url(str(src), allow_local=True) == str(src.resolve())
    assert validate_repo_url(f"file://{src}", allow_local=True) == str(src.resolve())
    with pytest.raises(JobInputError, match="no such directory"):
        validate_repo_url(str(src / "missing"), allow_local=True)
    with pytest.raises(JobInputError, match="must not name a host"):
        validate_repo_url(f"file://evil.example{src}", allow_local=True)


@pytest.mark.parametrize(
    "rev", ["HEAD", "main", "v1.2.3", "HEAD~2", "abc1234", "feature/x^", "a" * 40]
)
def test_single_commit_revisions_are_accepted(rev: str) -> None:
    assert validate_revision(rev) == rev


@pytest.mark.parametrize(
    ("rev", "why"),
    [
        ("--output=/tmp/x", "starts with '-'"),
        ("-n", "starts with '-'"),
        ("main..evil", "range"),
        ("HEAD@{1}", "reflog"),
        ("HEAD:setup.py", "':'"),
        ("main\n", "control"),
        ("ma in", "whitespace"),
        ("HEAD^{tree}", "only letters"),
        ("x" * 300, "longer than"),
        ("", "empty"),
    ],
)
def test_unsafe_revisions_are_refused_with_a_reason(rev: str, why: str) -> None:
    with pytest.raises(JobInputError, match=re.escape(why)):
        validate_revision(rev)


# --------------------------------------------------------------------------- mirrors


def test_mirror_is_cloned_once_and_fetched_only_for_a_new_commit(
    src: Path, cache: MirrorCache
) -> None:
    first = tgit(src, "rev-parse", "HEAD")
    mirror, sha = cache.resolve(str(src), first)
    assert sha == first
    assert (cache.clone_count, cache.fetch_count) == (1, 0)
    assert mirror.name == hashlib.sha256(str(src.resolve()).encode()).hexdigest()
    assert (mirror / "source.txt").read_text().strip() == str(src.resolve())

    assert cache.resolve(str(src), first) == (mirror, first)
    assert (cache.clone_count, cache.fetch_count) == (1, 0)

    second = commit(src, {"new.txt": "new\n"}, "second")
    assert cache.resolve(str(src), second) == (mirror, second)
    assert (cache.clone_count, cache.fetch_count) == (1, 1)
    assert cache.resolve(str(src), second[:12]) == (mirror, second)
    assert (cache.clone_count, cache.fetch_count) == (1, 1)


def test_symbolic_revisions_follow_the_source(src: Path, cache: MirrorCache) -> None:
    cache.resolve(str(src), "HEAD")
    newer = commit(src, {"new.txt": "new\n"}, "second")
    assert cache.resolve(str(src), "HEAD")[1] == newer
    assert cache.resolve(str(src), "main")[1] == newer
    tgit(src, "checkout", "-q", "--detach", "HEAD~1")
    assert cache.resolve(str(src), "HEAD")[1] == tgit(src, "rev-parse", "HEAD")


def test_unknown_revision_is_a_job_input_error(src: Path, cache: MirrorCache) -> None:
    with pytest.raises(JobInputError, match="not a commit"):
        cache.resolve(str(src), "no-such-branch")
    with pytest.raises(JobInputError, match="not a commit"):
        cache.resolve(str(src), "0" * 40)


def test_concurrent_jobs_for_one_repository_clone_it_once(src: Path, cache: MirrorCache) -> None:
    results: list[tuple[Path, str]] = []
    threads = [
        threading.Thread(target=lambda: results.append(cache.resolve(str(src), "main")))
        for _ in range(4)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(results)) == 1
    assert cache.clone_count == 1


def test_local_mirror_is_a_real_copy(src: Path, cache: MirrorCache) -> None:
    mirror, sha = cache.resolve(str(src), "HEAD")
    assert not (mirror / "objects" / "info" / "alternates").exists()
    objects = [p for p in (mirror / "objects").rglob("*") if p.is_file()]
    assert objects
    assert all(p.stat().st_nlink == 1 for p in objects)
    commit(src, {"README": "changed\n"}, "later")
    tgit(src, "gc", "-q", "--prune=now")
    assert tgit(mirror, "--git-dir", str(mirror), "rev-parse", "refs/heads/main") == sha
    assert tgit(mirror, "--git-dir", str(mirror), "cat-file", "-p", f"{sha}:README") == "hello"


def test_remote_is_refused_when_local_not_allowed(src: Path, tmp_path: Path) -> None:
    service = MirrorCache(tmp_path / "svc", allow_local=False)
    with pytest.raises(JobInputError, match="local paths are not allowed"):
        service.resolve(str(src), "HEAD")


@pytest.mark.skipif(os.geteuid() != 0, reason="chown to another uid needs root")
def test_dubious_ownership_never_fails_a_job(src: Path, cache: MirrorCache, tmp_path: Path) -> None:
    first = tgit(src, "rev-parse", "HEAD")
    for path in [src, *src.rglob("*")]:
        os.lchown(path, OTHER_UID, OTHER_UID)
    mirror, sha = cache.resolve(str(src), "HEAD")
    newer = commit(src, {"pkg/mod.py": lines(10, {9: "changed"})}, "second")
    assert cache.resolve(str(src), newer)[1] == newer
    assert cache.fetch_count == 1
    # The mirror and the job's tree owned by someone else must not matter either.
    for path in [mirror, *mirror.rglob("*")]:
        os.lchown(path, OTHER_UID, OTHER_UID)
    dest = checkout(mirror, first, tmp_path / "job")
    for path in [dest, *dest.rglob("*")]:
        os.lchown(path, OTHER_UID, OTHER_UID)
    patch = diff_of(src, first, {"pkg/mod.py": lines(10, {2: "fixed"})})
    assert apply_patch(dest, patch, allow_3way=False, label="candidate") == "clean"
    assert sha == first
    assert tree_id(dest)


def test_inherited_git_dir_and_index_do_not_redirect_git(
    src: Path, cache: MirrorCache, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As inside a git hook, where GIT_DIR and GIT_INDEX_FILE point at the user's repo."""
    other = tmp_path / "other"
    make_repo(other, {"a.txt": "a\n"})
    base = tgit(src, "rev-parse", "HEAD")
    patch = diff_of(src, base, {"README": "bye\n"})
    before = (other / ".git" / "index").read_bytes()
    monkeypatch.setenv("GIT_DIR", str(other / ".git"))
    monkeypatch.setenv("GIT_INDEX_FILE", str(other / ".git" / "index"))
    mirror, sha = cache.resolve(str(src), "HEAD")
    dest = checkout(mirror, sha, tmp_path / "job")
    assert apply_patch(dest, patch, allow_3way=False, label="candidate") == "clean"
    assert tree_id(dest) != tgit(src, "rev-parse", "HEAD^{tree}")
    assert (dest / "README").read_text() == "bye\n"
    assert (other / ".git" / "index").read_bytes() == before


@pytest.mark.parametrize("var", ["GIT_WORK_TREE", "GIT_OBJECT_DIRECTORY", "GIT_COMMON_DIR"])
def test_inherited_git_variables_never_reach_git(
    src: Path, cache: MirrorCache, monkeypatch: pytest.MonkeyPatch, var: str, tmp_path: Path
) -> None:
    monkeypatch.setenv(var, "/nonexistent")
    mirror, sha = cache.resolve(str(src), "HEAD")
    dest = checkout(mirror, sha, tmp_path / "job")
    assert (dest / "README").is_file()


# --------------------------------------------------------------------------- hooks


def _trap(tmp_path: Path, name: str) -> tuple[Path, Path]:
    """An executable that leaves a marker file when git runs it."""
    marker = tmp_path / f"{name}.ran"
    script = tmp_path / f"{name}.sh"
    script.write_text(f"#!/bin/sh\ntouch {marker}\n")
    script.chmod(0o755)
    return script, marker


def test_hooks_in_the_source_and_mirror_never_run(
    src: Path, cache: MirrorCache, tmp_path: Path
) -> None:
    script, marker = _trap(tmp_path, "hook")
    for hook in ("post-checkout", "reference-transaction", "pre-auto-gc"):
        (src / ".git" / "hooks" / hook).symlink_to(script)
    tgit(src, "config", "core.hooksPath", str(src / ".git" / "hooks"))
    mirror, _ = cache.resolve(str(src), "HEAD")
    for hook in ("post-checkout", "reference-transaction"):
        (mirror / "hooks" / hook).symlink_to(script)
    newer = commit(src, {"x.txt": "x\n"}, "second")
    marker.unlink(missing_ok=True)  # the test's own commit ran the source's hooks
    cache.resolve(str(src), newer)
    dest = checkout(mirror, newer, tmp_path / "job")
    assert cache.fetch_count == 1
    assert not marker.exists()
    assert not (dest / ".git" / "hooks" / "post-checkout").exists()
    # Control: plain git in the mirror does run the hook we planted.
    tgit(mirror, "--git-dir", str(mirror), "update-ref", "refs/heads/probe", newer)
    assert marker.exists()


def test_runner_options_win_over_the_checkouts_own_config(tree: Path, tmp_path: Path) -> None:
    script, marker = _trap(tmp_path, "fsmonitor")
    hooks = tmp_path / "evil-hooks"
    hooks.mkdir()
    (hooks / "post-checkout").symlink_to(script)
    tgit(tree, "config", "core.fsmonitor", str(script))
    tgit(tree, "config", "core.hooksPath", str(hooks))
    patch = "--- a/README\n+++ b/README\n@@ -1 +1 @@\n-hello\n+bye\n"
    assert apply_patch(tree, patch, allow_3way=False, label="candidate") == "clean"
    tree_id(tree)
    assert not marker.exists()
    # Control: the same tree's config does run the trap under plain git.
    tgit(tree, "apply", "--check", "--index", "-R", "--", str(_write(tmp_path, patch)))
    assert marker.exists()


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "patch.diff"
    path.write_text(text)
    return path


def test_submodules_are_not_cloned(tmp_path: Path, cache: MirrorCache) -> None:
    sub = tmp_path / "sub"
    make_repo(sub, {"secret.txt": "from the submodule\n"})
    repo = tmp_path / "withsub"
    make_repo(repo, {"main.py": "print(1)\n"})
    tgit(repo, "submodule", "add", "-q", str(sub), "vendor/sub")
    commit(repo, {}, "add submodule")
    mirror, sha = cache.resolve(str(repo), "HEAD")
    dest = checkout(mirror, sha, tmp_path / "job")
    assert (dest / ".gitmodules").is_file()
    assert (dest / "vendor" / "sub").is_dir()
    assert list((dest / "vendor" / "sub").iterdir()) == []
    assert not (dest / ".git" / "modules").exists()
    assert not (mirror / "modules").exists()


# --------------------------------------------------------------------------- apply


def test_clean_patch_applies_to_tree_and_index(src: Path, tree: Path) -> None:
    base = tgit(src, "rev-parse", "HEAD")
    patch = diff_of(src, base, {"pkg/mod.py": lines(10, {5: "fixed"}), "pkg/new.py": "x = 1\n"})
    assert apply_patch(tree, patch, allow_3way=False, label="candidate") == "clean"
    assert "fixed" in (tree / "pkg" / "mod.py").read_text()
    assert "pkg/new.py" in tgit(tree, "ls-files")


def test_patch_applied_twice_is_already_applied(src: Path, tree: Path) -> None:
    base = tgit(src, "rev-parse", "HEAD")
    patch = diff_of(src, base, {"pkg/mod.py": lines(10, {5: "fixed"})})
    assert apply_patch(tree, patch, allow_3way=False, label="candidate") == "clean"
    before = tree_id(tree)
    assert apply_patch(tree, patch, allow_3way=False, label="candidate") == "already_applied"
    assert tree_id(tree) == before


def test_patch_without_final_newline_still_applies(tree: Path) -> None:
    patch = "--- a/README\n+++ b/README\n@@ -1 +1 @@\n-hello\n+bye"
    assert apply_patch(tree, patch, allow_3way=False, label="candidate") == "clean"
    assert (tree / "README").read_text() == "bye\n"


def test_patch_that_does_not_apply_carries_gits_reason(tree: Path) -> None:
    patch = "--- a/README\n+++ b/README\n@@ -1 +1 @@\n-goodbye\n+bye\n"
    with pytest.raises(PatchError, match=r"the test patch does not apply: .*README") as info:
        apply_patch(tree, patch, allow_3way=True, label="test patch")
    assert info.value.check == "applies"
    assert str(tree) not in str(info.value)


@pytest.mark.parametrize("text", ["", "   \n", "just some words\n"])
def test_empty_or_non_patch_is_refused(tree: Path, text: str) -> None:
    with pytest.raises(PatchError, match="candidate"):
        apply_patch(tree, text, allow_3way=False, label="candidate")


def _drifted(src: Path, tmp_path: Path, cache: MirrorCache, change: str) -> tuple[Path, str]:
    """A tree at a commit that moved line 3, and a patch written against its parent."""
    old = tgit(src, "rev-parse", "HEAD")
    new = commit(src, {"pkg/mod.py": lines(10, {3: "moved on"})}, "drift")
    patch = diff_of(src, old, {"pkg/mod.py": lines(10, change_map(change))})
    mirror, sha = cache.resolve(str(src), new)
    return checkout(mirror, sha, tmp_path / "drifted"), patch


def change_map(change: str) -> dict[int, str]:
    return {6: "fixed"} if change == "line6" else {3: "conflicting"}


def test_three_way_merge_rescues_a_drifted_patch_only_when_allowed(
    src: Path, cache: MirrorCache, tmp_path: Path
) -> None:
    dest, patch = _drifted(src, tmp_path, cache, "line6")
    with pytest.raises(PatchError, match="does not apply"):
        apply_patch(dest, patch, allow_3way=False, label="candidate")
    assert apply_patch(dest, patch, allow_3way=True, label="candidate") == "3way"
    text = (dest / "pkg" / "mod.py").read_text()
    assert "moved on" in text and "fixed" in text
    assert tgit(dest, "ls-files", "--unmerged") == ""


def test_conflicting_three_way_merge_is_refused_and_rolled_back(
    src: Path, cache: MirrorCache, tmp_path: Path
) -> None:
    dest, patch = _drifted(src, tmp_path, cache, "line3")
    before = tree_id(dest)
    with pytest.raises(PatchError, match="3-way merge also failed"):
        apply_patch(dest, patch, allow_3way=True, label="candidate test part")
    assert tgit(dest, "ls-files", "--unmerged") == ""
    assert tree_id(dest) == before
    assert "<<<<<<<" not in (dest / "pkg" / "mod.py").read_text()


# --------------------------------------------------------------------------- path safety


@pytest.fixture
def linked(tmp_path: Path, cache: MirrorCache) -> tuple[Path, Path]:
    """A tree with a committed symlink ``link`` to a directory outside it (stands in for /etc)."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "passwd").write_text("root:x:0:0\n")
    repo = tmp_path / "linked-src"
    make_repo(repo, {"README": "hi\n"})
    (repo / "link").symlink_to(outside)
    (repo / "filelink").symlink_to(outside / "passwd")
    commit(repo, {}, "links")
    mirror, sha = cache.resolve(str(repo), "HEAD")
    return checkout(mirror, sha, tmp_path / "job"), outside


@pytest.mark.parametrize(
    ("path", "why"),
    [
        ("link/passwd", "symlink link"),
        ("filelink", "symlink filelink"),
        ("../outside/passwd", "climbs out"),
        ("/etc/passwd", "absolute"),
        (".git/hooks/post-checkout", ".git"),
    ],
)
def test_paths_through_symlinks_or_out_of_the_tree_are_refused(
    linked: tuple[Path, Path], path: str, why: str
) -> None:
    dest, _ = linked
    with pytest.raises(PatchError, match=why):
        check_paths_against_tree(dest, [path])


def test_ordinary_paths_pass_the_tree_check(linked: tuple[Path, Path]) -> None:
    dest, _ = linked
    check_paths_against_tree(dest, ["README", "new/dir/file.py"])


def test_git_apply_itself_refuses_writes_through_a_symlink(linked: tuple[Path, Path]) -> None:
    dest, outside = linked
    patch = "--- a/link/passwd\n+++ b/link/passwd\n@@ -1 +1 @@\n-root:x:0:0\n+evil::0:0\n"
    with pytest.raises(PatchError, match=r"beyond a symbolic link|does not exist in index"):
        apply_patch(dest, patch, allow_3way=True, label="candidate")
    create = "--- /dev/null\n+++ b/link/shadow\n@@ -0,0 +1 @@\n+evil\n"
    with pytest.raises(PatchError, match="beyond a symbolic link"):
        apply_patch(dest, create, allow_3way=True, label="candidate")
    assert (outside / "passwd").read_text() == "root:x:0:0\n"
    assert not (outside / "shadow").exists()


def test_git_apply_itself_refuses_writes_into_dot_git(tree: Path) -> None:
    patch = "--- /dev/null\n+++ b/.git/hooks/post-checkout\n@@ -0,0 +1 @@\n+#!/bin/sh\n"
    with pytest.raises(PatchError, match="invalid path"):
        apply_patch(tree, patch, allow_3way=True, label="candidate")
    assert not (tree / ".git" / "hooks" / "post-checkout").exists()


# --------------------------------------------------------------------------- tree ids


def test_tree_id_is_stable_and_follows_content(
    src: Path, cache: MirrorCache, tree: Path, tmp_path: Path
) -> None:
    mirror, sha = cache.resolve(str(src), "HEAD")
    twin = checkout(mirror, sha, tmp_path / "twin")
    base = tree_id(tree)
    assert base == tree_id(twin) == tgit(src, "rev-parse", "HEAD^{tree}")
    (tree / "pkg" / "new.py").write_text("x = 1\n")
    changed = tree_id(tree)
    assert changed != base
    (tree / "pkg" / "new.py").unlink()
    assert tree_id(tree) == base
    assert tgit(tree, "status", "--porcelain") == ""


# --------------------------------------------------------------------------- trees on disk


def test_checkout_refuses_a_non_empty_destination(
    tree: Path, cache: MirrorCache, src: Path
) -> None:
    mirror, sha = cache.resolve(str(src), "HEAD")
    with pytest.raises(WorkspaceError, match="not empty"):
        checkout(mirror, sha, tree)


def test_remove_tree_never_follows_symlinks(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep.txt").write_text("keep\n")
    job = tmp_path / "job"
    (job / "ro" / "deep").mkdir(parents=True)
    (job / "ro" / "deep" / "f").write_text("x")
    (job / "link").symlink_to(outside)
    (job / "ro" / "filelink").symlink_to(outside / "keep.txt")
    (job / "ro" / "deep").chmod(0o500)
    (job / "ro").chmod(0o500)
    remove_tree(job)
    assert not job.exists()
    assert (outside / "keep.txt").read_text() == "keep\n"
    remove_tree(job)  # missing is fine
    top = tmp_path / "toplink"
    top.symlink_to(outside)
    remove_tree(top)
    assert not top.is_symlink() and (outside / "keep.txt").exists()


def test_copy_tree_keeps_symlinks_as_symlinks(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_text("s")
    src = tmp_path / "a"
    (src / "d").mkdir(parents=True)
    (src / "d" / "f.txt").write_text("f")
    (src / "abs").symlink_to(outside / "secret")
    (src / "rel").symlink_to("d/f.txt")
    (src / "dirlink").symlink_to(outside)
    os.mkfifo(src / "fifo")
    dst = copy_tree(src, tmp_path / "b")
    assert (dst / "d" / "f.txt").read_text() == "f"
    assert os.readlink(dst / "abs") == str(outside / "secret")
    assert os.readlink(dst / "rel") == "d/f.txt"
    assert (dst / "dirlink").is_symlink()
    assert not (dst / "fifo").exists()


def test_private_git_home_has_an_empty_read_only_hooks_dir() -> None:
    private = private_dir()
    assert list((private / "hooks").iterdir()) == []
    assert stat.S_IMODE((private / "hooks").stat().st_mode) & 0o222 == 0
