"""Hostile repositories, remotes and candidates are bounded by number (issue 16, item 3).

One test per vector, against real git repositories, real loopback servers and the real
engine. Each asserts the outcome, the bound that stopped it, and that nothing is left:
no git process, no container of this session, no file outside the job's folder.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest
from conftest import REPO_ROOT, TEST_INSTANCE, make_settings

from runner.config import Settings
from runner.environments.builds import commit_date, ensure_env_image
from runner.environments.images import BaseImage
from runner.errors import ImageBuildError, JobInputError, WorkspaceError
from runner.models import FixJob, Limits, Mount, RunSpec, Verdict
from runner.sandbox.docker import QUOTA_EXIT, DockerSandbox, hand_over
from runner.sandbox.labels import LABEL_TARGET
from runner.verify.pipeline import Runtime, verify
from runner.workspace.git import NetworkLimits
from runner.workspace.mirrors import MirrorCache
from runner.workspace.trees import CheckoutLimits, checkout

SHORT = NetworkLimits(connect_timeout_s=1, low_speed_bytes=1000, low_speed_time_s=1)


@pytest.fixture(autouse=True)
def _git_identity(monkeypatch: pytest.MonkeyPatch) -> None:
    for who in ("AUTHOR", "COMMITTER"):
        monkeypatch.setenv(f"GIT_{who}_NAME", "Test")
        monkeypatch.setenv(f"GIT_{who}_EMAIL", "test@example.invalid")
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", os.devnull)


def tgit(repo: Path, *args: str, stdin: str = "") -> str:
    """The test's own git, to build repositories (never the runner's)."""
    cmd = ["git", "-c", "safe.directory=*", *args]
    done = subprocess.run(cmd, cwd=repo, input=stdin, capture_output=True, text=True, check=True)
    return done.stdout.strip()


def git_bomb(path: Path, fanout: int, depth: int) -> str:
    """A repository of a few kilobytes whose one commit names ``fanout ** depth`` files."""
    path.mkdir(parents=True)
    tgit(path, "init", "-q", "-b", "main")
    blob = tgit(path, "hash-object", "-w", "--stdin", stdin="boom\n")
    entries = "".join(f"100644 blob {blob}\tf{i}\n" for i in range(fanout))
    tree = tgit(path, "mktree", stdin=entries)
    for _ in range(depth - 1):
        tree = tgit(
            path, "mktree", stdin="".join(f"040000 tree {tree}\td{i}\n" for i in range(fanout))
        )
    sha = tgit(path, "commit-tree", tree, "-m", "bomb")
    tgit(path, "update-ref", "refs/heads/main", sha)
    return sha


def git_children() -> list[int]:
    """Processes of this test run that are git or one of its helpers."""
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            cmdline = Path(entry.path, "cmdline").read_bytes().split(b"\0")
            stat = Path(entry.path, "stat").read_text()
        except OSError:
            continue
        parent = int(stat.rsplit(") ", 1)[1].split()[1])
        name = Path(cmdline[0].decode(errors="replace")).name
        if name.startswith(("git", "ssh")) and parent == os.getpid():
            found.append(int(entry.name))
    return found


class HangingServer:
    """A loopback TCP server that accepts connections and never answers."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.accepted = threading.Event()
        self._conns: list[socket.socket] = []
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self._conns.append(conn)
            self.accepted.set()

    def close(self) -> None:
        # shutdown wakes the thread blocked in accept(); close alone leaves the listening
        # socket alive in the kernel for as long as that call lasts.
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()
        self._thread.join(timeout=5)
        for conn in self._conns:
            conn.close()


@pytest.fixture
def hanging() -> Iterator[HangingServer]:
    server = HangingServer()
    yield server
    server.close()


def leftovers(root: Path) -> list[str]:
    """What a refused or stopped clone left in the mirror cache (lock files aside)."""
    return sorted(p.name for p in root.iterdir() if not p.name.endswith(".lock"))


# --------------------------------------------------------------------------- checkouts


def test_a_git_bomb_is_refused_before_its_files_exist(tmp_path: Path) -> None:
    """A million paths in a few kilobytes: refused at the default file cap, nothing written."""
    src = tmp_path / "bomb"
    git_bomb(src, fanout=10, depth=6)
    cache = MirrorCache(tmp_path / "cache", allow_local=True)
    mirror, sha = cache.resolve(str(src), "HEAD")
    dest = tmp_path / "job" / "tree"
    with pytest.raises(JobInputError, match=r"more than 200000 files .*checkout_max_files"):
        checkout(mirror, sha, dest, CheckoutLimits())
    assert not dest.exists()
    assert not git_children()


def test_a_tree_over_the_byte_cap_is_refused_and_one_under_it_checks_out(
    tmp_path: Path,
) -> None:
    src = tmp_path / "big"
    src.mkdir()
    tgit(src, "init", "-q", "-b", "main")
    for i in range(3):
        (src / f"blob{i}.bin").write_bytes(os.urandom(400_000))
    tgit(src, "add", "-A")
    tgit(src, "commit", "-q", "-m", "big")
    cache = MirrorCache(tmp_path / "cache", allow_local=True)
    mirror, sha = cache.resolve(str(src), "HEAD")
    with pytest.raises(JobInputError, match=r"more than 1000000 bytes .*checkout_max_bytes"):
        checkout(mirror, sha, tmp_path / "refused", CheckoutLimits(max_bytes=1_000_000))
    assert not (tmp_path / "refused").exists()
    dest = checkout(mirror, sha, tmp_path / "fits", CheckoutLimits(max_bytes=1_200_000))
    assert sum(p.stat().st_size for p in dest.glob("*.bin")) == 1_200_000


# --------------------------------------------------------------------------- remotes


def test_an_https_remote_that_accepts_and_hangs_is_dropped(
    tmp_path: Path, hanging: HangingServer
) -> None:
    cache = MirrorCache(tmp_path / "cache", allow_local=False, network=SHORT)
    with pytest.raises(WorkspaceError, match=r"sent nothing for 1s .*git_connect_timeout_s"):
        cache.resolve(f"https://127.0.0.1:{hanging.port}/acme/app.git", "HEAD")
    assert hanging.accepted.is_set()
    assert leftovers(cache.root) == []
    assert not git_children()


def test_an_ssh_remote_that_accepts_and_hangs_is_dropped(
    tmp_path: Path, hanging: HangingServer
) -> None:
    cache = MirrorCache(tmp_path / "cache", allow_local=False, network=SHORT)
    with pytest.raises(WorkspaceError, match=r"clone of .* failed"):
        cache.resolve(f"ssh://git@127.0.0.1:{hanging.port}/acme/app.git", "main")
    assert hanging.accepted.is_set()
    assert leftovers(cache.root) == []
    assert not git_children()


def test_cancelling_a_hung_clone_kills_git(tmp_path: Path, hanging: HangingServer) -> None:
    """The job's cancel event reaches git: the clone ends as cancelled, its processes gone."""
    cache = MirrorCache(tmp_path / "cache", allow_local=False)  # default 60 s limits
    cancel = threading.Event()
    errors: list[BaseException] = []

    def clone() -> None:
        try:
            cache.resolve(f"https://127.0.0.1:{hanging.port}/acme/app.git", "main", cancel)
        except BaseException as exc:  # handed to the test thread
            errors.append(exc)

    worker = threading.Thread(target=clone)
    worker.start()
    assert hanging.accepted.wait(30)
    cancel.set()
    worker.join(30)
    assert not worker.is_alive()
    assert len(errors) == 1 and isinstance(errors[0], WorkspaceError)
    assert "cancelled" in str(errors[0])
    assert leftovers(cache.root) == []
    assert not git_children()


# --------------------------------------------------------------------------- candidates


@pytest.fixture
def sandbox(docker_client: docker.DockerClient, settings: Settings) -> DockerSandbox:
    return DockerSandbox(docker_client, settings.engine)


def tree_on_host(tmp_path: Path) -> Path:
    """A small per-job tree handed to the sandbox user, as the pipeline does."""
    tree = tmp_path / "job" / "trees" / "candidate"
    (tree / "pkg").mkdir(parents=True)
    (tree / "pkg" / "mod.py").write_text("x = 1\n")
    (tree / "README").write_text("hello\n")
    return tree


def snapshot(tree: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(tree)): p.read_bytes() if p.is_file() else b""
        for p in sorted(tree.rglob("*"))
    }


def flood(image: BaseImage, tree: Path, script: str, sandbox_user: str, **limits: int) -> RunSpec:
    hand_over(tree, sandbox_user)
    return RunSpec(
        image=image.id,
        command=["python3", "-c", script],
        workdir="/work",
        mounts=[Mount(source=tree, target="/work", read_only=False, quota=True)],
        limits=Limits(timeout_s=120, **limits),
        job_id="hostile",
        phase="candidate",
    )


# Writes until the filesystem refuses, then prints how far it got.
DISK_FLOOD = """
import errno
chunk = b"x" * (8 << 20)
written = 0
try:
    for i in range(10 * 2**30 // len(chunk)):  # 10 GiB in files of 8 MiB
        with open(f"/work/flood{i}", "wb") as f:
            f.write(chunk)
        written += len(chunk)
except OSError as e:
    print("stopped", errno.errorcode[e.errno], "after", written, flush=True)
"""
INODE_FLOOD = """
import errno, os
made = 0
try:
    for i in range(1_000_000):
        os.close(os.open(f"/work/f{i}", os.O_CREAT | os.O_WRONLY))
        made += 1
except OSError as e:
    print("stopped", errno.errorcode[e.errno], "after", made, flush=True)
"""


@pytest.mark.docker
def test_a_candidate_writing_10_gb_stops_at_the_workspace_quota(
    sandbox: DockerSandbox, base_image: BaseImage, tmp_path: Path, settings: Settings
) -> None:
    tree = tree_on_host(tmp_path)
    before = snapshot(tree)
    result = sandbox.run(flood(base_image, tree, DISK_FLOOD, sandbox.user, workspace_mb=64))
    assert "stopped ENOSPC" in result.output, result.output
    written = int(result.output.split("after")[1].split()[0])
    assert 0 < written <= 64 * 2**20
    assert snapshot(tree) == before  # the host tree was never written
    assert [p.name for p in (tmp_path / "job" / "trees").iterdir()] == ["candidate"]


@pytest.mark.docker
def test_a_candidate_making_a_million_files_stops_at_the_inode_quota(
    sandbox: DockerSandbox, base_image: BaseImage, tmp_path: Path
) -> None:
    tree = tree_on_host(tmp_path)
    before = snapshot(tree)
    spec = flood(base_image, tree, INODE_FLOOD, sandbox.user, workspace_inodes=2000)
    result = sandbox.run(spec)
    assert "stopped ENOSPC" in result.output, result.output
    made = int(result.output.split("after")[1].split()[0])
    assert 0 < made < 2000
    assert snapshot(tree) == before


@pytest.mark.docker
def test_the_container_sees_the_tree_and_its_writes_stay_inside(
    sandbox: DockerSandbox, base_image: BaseImage, tmp_path: Path
) -> None:
    tree = tree_on_host(tmp_path)
    before = snapshot(tree)
    script = (
        "import os; print(open('/work/pkg/mod.py').read().strip());"
        "open('/work/pkg/mod.py', 'w').write('x = 2\\n'); os.mkdir('/work/new');"
        "print(sorted(os.listdir('/work')))"
    )
    result = sandbox.run(flood(base_image, tree, script, sandbox.user))
    assert result.exit_code == 0, result.output
    assert "x = 1" in result.output and "'new'" in result.output
    assert snapshot(tree) == before


@pytest.mark.docker
def test_a_tree_larger_than_the_quota_is_an_error_not_a_test_result(
    sandbox: DockerSandbox, base_image: BaseImage, tmp_path: Path
) -> None:
    tree = tree_on_host(tmp_path)
    (tree / "big.bin").write_bytes(os.urandom(20 * 2**20))
    result = sandbox.run(flood(base_image, tree, "print('ran')", sandbox.user, workspace_mb=16))
    assert result.exit_code == QUOTA_EXIT
    assert "does not fit the workspace quota" in result.output
    assert "ran" not in result.output


# --------------------------------------------------------------------------- env builds


@pytest.mark.docker
def test_cancelling_an_environment_build_stops_it_and_removes_its_container(
    docker_client: docker.DockerClient, base_image: BaseImage, tmp_path: Path
) -> None:
    """Cancel as soon as the build container exists: the build ends, nothing is left."""
    repository = f"fixrunner-cancel-{secrets.token_hex(3)}"
    settings = Settings.model_validate(
        {
            "paths": {"state_dir": str(tmp_path / "state")},
            "images": {"repository": repository},
            "engine": {"instance": f"{TEST_INSTANCE}-cancel"},
        }
    )
    repo = tmp_path / "proj"
    (repo / "proj").mkdir(parents=True)
    (repo / "proj" / "__init__.py").write_text("VALUE = 1\n")
    (repo / "pyproject.toml").write_text(
        '[build-system]\nrequires = ["setuptools>=61"]\n'
        'build-backend = "setuptools.build_meta"\n\n'
        '[project]\nname = "proj"\nversion = "0.1.0"\n'
    )
    tgit(repo, "init", "-q", "-b", "main")
    tgit(repo, "add", "-A")
    tgit(repo, "commit", "-q", "-m", "proj")

    def builders() -> list[str]:
        found = docker_client.containers.list(
            all=True, ignore_removed=True, filters={"label": LABEL_TARGET}
        )
        return [c.name for c in found if c.labels[LABEL_TARGET].startswith(repository)]

    cancel = threading.Event()
    seen: list[str] = []

    def cancel_when_building() -> None:
        while not cancel.is_set():
            if names := builders():
                seen.extend(names)
                cancel.set()
            time.sleep(0.05)

    watcher = threading.Thread(target=cancel_when_building, daemon=True)
    watcher.start()
    try:
        with pytest.raises(ImageBuildError, match="cancelled"):
            ensure_env_image(
                docker_client,
                base_image,
                repo,
                settings,
                str(repo),
                commit_date(repo),
                cancel=cancel,
            )
    finally:
        cancel.set()
        watcher.join(10)
    assert seen  # the build had started when it was cancelled
    assert builders() == []
    assert docker_client.images.list(name=f"{repository}-env") == []


# --------------------------------------------------------------------------- whole jobs

PATCH = "--- a/README\n+++ b/README\n@@ -1 +1 @@\n-hello\n+bye\n"


@pytest.fixture
def job_runtime(settings: Settings) -> Runtime:
    tight = settings.workspace.model_copy(update={"checkout_max_files": 5000})
    return Runtime.start(settings.model_copy(update={"workspace": tight}))


def job_files_outside(runtime: Runtime, verdict: Verdict) -> list[str]:
    """Anything the job left on disk besides its own folder's records."""
    folder = runtime.jobs_dir / verdict.job_id
    return [str(p.relative_to(folder)) for p in folder.rglob("*") if "trees" in p.parts]


@pytest.mark.docker
def test_a_job_on_a_git_bomb_is_an_error_naming_the_cap(
    job_runtime: Runtime, tmp_path: Path
) -> None:
    src = tmp_path / "bomb"
    git_bomb(src, fanout=10, depth=5)  # 100,000 files, over the job's cap of 5,000
    verdict = verify(FixJob(repo=str(src), patch=PATCH), job_runtime)
    assert verdict.status == "error"
    assert "more than 5000 files" in verdict.summary
    assert "checkout_max_files" in verdict.summary
    assert job_files_outside(job_runtime, verdict) == []
    assert not git_children()


@pytest.mark.docker
def test_a_job_cancelled_during_checkout_ends_cancelled_and_leaves_nothing(
    job_runtime: Runtime, hanging: HangingServer
) -> None:
    cancel = threading.Event()
    verdicts: list[Verdict] = []
    job = FixJob(repo=f"https://127.0.0.1:{hanging.port}/acme/app.git", base="main", patch=PATCH)
    worker = threading.Thread(
        target=lambda: verdicts.append(verify(job, job_runtime, cancel=cancel))
    )
    worker.start()
    assert hanging.accepted.wait(30)
    cancel.set()
    worker.join(60)
    assert not worker.is_alive()
    (verdict,) = verdicts
    assert verdict.status == "error"
    assert "cancelled" in verdict.summary
    assert job_files_outside(job_runtime, verdict) == []
    assert leftovers(job_runtime.mirrors.root) == []
    assert not git_children()


CALC = "def add(a, b):\n    return a + b\n"
CALC_TEST = "from calc import add\n\n\ndef test_add():\n    assert add(1, 2) == 3\n"


@pytest.fixture(scope="module")
def calc_runtime(tmp_path_factory: pytest.TempPathFactory, base_image: BaseImage) -> Runtime:
    """One runtime and state dir for the module's whole jobs (the environment is built once)."""
    return Runtime.start(make_settings(tmp_path_factory.mktemp("state"), f"{TEST_INSTANCE}-jobs"))


@pytest.fixture(scope="module")
def calc_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    repo = tmp_path_factory.mktemp("calc") / "calc"
    (repo / "tests").mkdir(parents=True)
    (repo / "calc.py").write_text(CALC)
    (repo / "tests" / "test_calc.py").write_text(CALC_TEST)
    tgit(repo, "init", "-q", "-b", "main")
    tgit(repo, "add", "-A")
    tgit(repo, "commit", "-q", "-m", "calc")
    return repo


@pytest.fixture(scope="module")
def quota_policy(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The default policy with a 64 MiB / 4,096-inode workspace, so floods end in seconds."""
    text = (REPO_ROOT / "policies" / "default.toml").read_text(encoding="utf-8")
    text = re.sub(r"(?m)^workspace_mb = \d+", "workspace_mb = 64", text)
    text = re.sub(r"(?m)^workspace_inodes = \d+", "workspace_inodes = 4096", text)
    text = re.sub(r'(?m)^name = ".*"', 'name = "quota"', text)
    path = tmp_path_factory.mktemp("policy") / "quota.toml"
    path.write_text(text, encoding="utf-8")
    return str(path)


def flood_patch(body: str) -> str:
    """A candidate whose calc.py floods the workspace when imported, then works."""
    lines = [f"+{line}" for line in (body + CALC).splitlines()]
    header = f"--- a/calc.py\n+++ b/calc.py\n@@ -1,2 +1,{len(lines)} @@\n"
    return header + "-def add(a, b):\n-    return a + b\n" + "\n".join(lines) + "\n"


@pytest.mark.docker
@pytest.mark.parametrize(
    "flood",
    [
        # 10 GiB in 8 MiB files
        "import os\nfor i in range(1280):\n    with open(f'flood{i}', 'wb') as f:\n"
        "        f.write(bytes(8 << 20))\n",
        # a million empty files
        "import os\nfor i in range(1_000_000):\n    os.close(os.open(f'f{i}', os.O_CREAT))\n",
    ],
    ids=["10GB", "million-files"],
)
def test_a_flooding_candidate_is_rejected_at_the_quota_and_the_host_disk_is_untouched(
    calc_runtime: Runtime, calc_repo: Path, quota_policy: str, flood: str
) -> None:
    verdict = verify(
        FixJob(repo=str(calc_repo), patch=flood_patch(flood), policy=quota_policy), calc_runtime
    )
    assert verdict.status == "rejected", verdict.summary
    assert "tests/test_calc.py::test_add" in verdict.tests.pass_to_fail
    assert (verdict.resources.limits.workspace_mb, verdict.resources.limits.workspace_inodes) == (
        64,
        4096,
    )
    logs = calc_runtime.jobs_dir / verdict.job_id
    assert any(
        "No space left on device" in p.read_text(errors="replace") for p in logs.rglob("*.log")
    )
    assert job_files_outside(calc_runtime, verdict) == []
    assert not (calc_repo / "flood0").exists() and not (calc_repo / "f0").exists()
