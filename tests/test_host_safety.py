"""The host never runs code from a repository or a downloaded package; secrets reach no
subprocess; host-side reads never follow a link. Real git, uv, pip, engine and a real
package index on loopback: the hostile package writes a marker and dumps its environment
when anything builds it."""

from __future__ import annotations

import io
import os
import secrets
import subprocess
import tarfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import docker
import httpx
import pytest
from conftest import TEST_INSTANCE, make_settings
from service_support import Server, make_server

from runner.common.hostenv import host_env
from runner.config import Settings
from runner.core.policy import POLICY_MAX_BYTES, load_policy
from runner.environments import hosttools
from runner.environments.dependencies import detect, resolve
from runner.environments.images import BaseImage
from runner.environments.requirements import MANIFEST_MAX_BYTES
from runner.environments.wheels import ensure_wheels
from runner.errors import ConfigError, ResolutionError
from runner.models import FixJob
from runner.verify.pipeline import Runtime, verify

SECRET_NAMES = ("ANTHROPIC_API_KEY", "RUNNER_SERVICE_TOKEN", "GITHUB_TOKEN")
PATCH = """\
diff --git a/notes.txt b/notes.txt
new file mode 100644
--- /dev/null
+++ b/notes.txt
@@ -0,0 +1 @@
+hello
"""


@dataclass
class Evil:
    """A source distribution whose build writes ``marker`` with its whole environment."""

    sdist: Path
    marker: Path


@dataclass
class Index:
    """A PEP 503 simple index on loopback; ``environs`` holds, per request, the
    environment of every process this test process had started at that moment."""

    url: str
    environs: list[dict[str, str]] = field(default_factory=list)


@pytest.fixture
def secret(monkeypatch: pytest.MonkeyPatch) -> str:
    """A secret in the runner's environment under names a runner really holds."""
    value = f"sekrit-{secrets.token_hex(8)}"
    for name in SECRET_NAMES:
        monkeypatch.setenv(name, value)
    return value


@pytest.fixture
def evil(tmp_path: Path) -> Evil:
    marker = tmp_path / "MARKER-built-on-host"
    setup = (
        "import json, os\n"
        f"open({str(marker)!r}, 'w').write(json.dumps(dict(os.environ)))\n"
        "from setuptools import setup\n"
        "setup(name='evilpkg', version='1.0')\n"
    )
    files = {
        "evilpkg-1.0/setup.py": setup,
        # Metadata 2.1: nothing static to trust, a resolver must build it to know more.
        "evilpkg-1.0/PKG-INFO": "Metadata-Version: 2.1\nName: evilpkg\nVersion: 1.0\n",
    }
    folder = tmp_path / "index" / "evilpkg"
    folder.mkdir(parents=True)
    sdist = folder / "evilpkg-1.0.tar.gz"
    with tarfile.open(sdist, "w:gz") as tar:
        for name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    (folder / "index.html").write_text('<a href="evilpkg-1.0.tar.gz">evilpkg-1.0.tar.gz</a>\n')
    (tmp_path / "index" / "index.html").write_text('<a href="evilpkg/">evilpkg</a>\n')
    return Evil(sdist=sdist, marker=marker)


def _descendants_environ() -> list[dict[str, str]]:
    me = str(os.getpid())
    parents: dict[str, str] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            parents[entry.name] = fields[1]
    out = []
    for pid in parents:
        ancestor, hops = parents.get(pid), 0
        while ancestor not in (None, "0", "1", me) and hops < 50:
            ancestor, hops = parents.get(ancestor), hops + 1
        if ancestor == me and pid != me:
            try:
                raw = (Path("/proc") / pid / "environ").read_bytes()
            except OSError:
                continue
            pairs = [item.split(b"=", 1) for item in raw.split(b"\0") if b"=" in item]
            out.append({k.decode(): v.decode(errors="replace") for k, v in pairs})
    return out


@pytest.fixture
def index(tmp_path: Path, evil: Evil, monkeypatch: pytest.MonkeyPatch) -> Iterator[Index]:
    """The loopback index, added to the host's pip configuration for this test."""
    record = Index(url="")

    class Handler(SimpleHTTPRequestHandler):
        def do_GET(self) -> None:
            record.environs += _descendants_environ()
            super().do_GET()

        def log_message(self, format: str, *args: object) -> None:
            return

    server = ThreadingHTTPServer(
        ("127.0.0.1", 0), partial(Handler, directory=str(tmp_path / "index"))
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    record.url = f"http://127.0.0.1:{server.server_address[1]}/"
    hosttools.pip_config.cache_clear()
    extra = hosttools.pip_config().get("extra-index-url", "")
    monkeypatch.setenv("PIP_EXTRA_INDEX_URL", f"{extra} {record.url}".strip())
    hosttools.pip_config.cache_clear()
    try:
        yield record
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
        monkeypatch.undo()
        hosttools.pip_config.cache_clear()


def make_repo(root: Path, files: dict[str, str], links: dict[str, Path] | None = None) -> Path:
    """A git repository with ``files`` and symbolic ``links`` in one commit."""
    root.mkdir(parents=True)
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    for name, target in (links or {}).items():
        (root / name).symlink_to(target)
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@example.invalid",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@example.invalid",
    }
    for argv in (["git", "init", "-q"], ["git", "add", "-A"], ["git", "commit", "-qm", "c"]):
        subprocess.run(argv, cwd=root, env=env, check=True, timeout=30, capture_output=True)
    return root


@pytest.fixture
def plain(tmp_path: Path) -> Settings:
    return Settings.model_validate({"paths": {"state_dir": str(tmp_path / "state")}})


# --------------------------------------------------------------------------- the environment


def test_host_env_passes_the_allowlist_and_nothing_else() -> None:
    source = {
        "PATH": "/usr/bin",
        "HOME": "/root",
        "PIP_INDEX_URL": "https://index.example/simple",
        "https_proxy": "http://proxy.example:3128",
        "UV_CACHE_DIR": "/var/cache/uv",
        "ANTHROPIC_API_KEY": "k",
        "RUNNER_SERVICE_TOKEN": "t",
        "UV_INDEX_URL": "https://other.example/simple",
        "PYTHONPATH": "/evil",
        "LD_PRELOAD": "/evil.so",
    }
    env = host_env({"UV_NO_PROGRESS": "1"}, source=source)
    assert env == {
        "PATH": "/usr/bin",
        "HOME": "/root",
        "LANG": "C.UTF-8",
        "PIP_INDEX_URL": "https://index.example/simple",
        "https_proxy": "http://proxy.example:3128",
        "UV_CACHE_DIR": "/var/cache/uv",
        "UV_NO_PROGRESS": "1",
    }


# --------------------------------------------------------------------------- resolution


@pytest.mark.parametrize(
    "line",
    [
        "evilpkg @ file://{sdist}",
        "evilpkg @ https://files.example/evilpkg-1.0.tar.gz",
        "git+https://github.example/evil/evilpkg.git#egg=evilpkg",
        "./vendor/evilpkg",
    ],
)
def test_direct_reference_is_refused_by_name(
    tmp_path: Path, plain: Settings, evil: Evil, secret: str, line: str
) -> None:
    line = line.format(sdist=evil.sdist)
    repo = make_repo(tmp_path / "repo", {"requirements-dev.txt": f"pytest\n{line}\n"})
    plan = detect(repo, plain)
    with pytest.raises(ResolutionError) as caught:
        resolve(plan, plain, "3.11", None)
    assert "direct reference" in str(caught.value)
    assert line in str(caught.value)
    assert not evil.marker.exists()


def test_sdist_only_package_on_the_index_is_refused_never_built(
    tmp_path: Path, evil: Evil, index: Index, secret: str
) -> None:
    # "latest": a flat loopback index has no upload dates for an as-of cut-off to keep.
    latest = Settings.model_validate(
        {"paths": {"state_dir": str(tmp_path / "state")}, "tools": {"resolution": "latest"}}
    )
    repo = make_repo(tmp_path / "repo", {"requirements-dev.txt": "pytest\nevilpkg==1.0\n"})
    with pytest.raises(ResolutionError) as caught:
        resolve(detect(repo, latest), latest, "3.11", None)
    assert "evilpkg" in str(caught.value)
    assert "wheels only" in str(caught.value)
    assert not evil.marker.exists()
    # uv asked the index: its environment at that moment held no secret.
    assert index.environs, "the resolver never reached the loopback index"
    assert not [env for env in index.environs if secret in "".join(env.values())]


def test_wheel_download_never_builds_a_source_distribution(
    tmp_path: Path, evil: Evil, index: Index, secret: str
) -> None:
    with pytest.raises(ResolutionError) as caught:
        ensure_wheels(["evilpkg==1.0"], tmp_path / "state", "3.11")
    assert "evilpkg" in str(caught.value)
    assert not evil.marker.exists()
    assert index.environs, "pip never reached the loopback index"
    assert not [env for env in index.environs if secret in "".join(env.values())]


# --------------------------------------------------------------------------- a whole job


@pytest.fixture
def git_spy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A `git` first on PATH that appends its environment to a file, then runs git."""
    real = subprocess.run(["which", "git"], capture_output=True, text=True, check=True)
    shims = tmp_path / "shims"
    shims.mkdir()
    dump = tmp_path / "git-environments.txt"
    script = shims / "git"
    script.write_text(
        f'#!/bin/sh\necho "ARGV $*" >> "{dump}"\nenv >> "{dump}"\nexec {real.stdout.strip()} "$@"\n'
    )
    script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{shims}:{os.environ['PATH']}")
    return dump


@pytest.mark.docker
def test_job_naming_a_hostile_package_ends_in_error_with_nothing_run_on_the_host(
    tmp_path: Path,
    evil: Evil,
    secret: str,
    git_spy: Path,
    base_image: BaseImage,
    docker_client: docker.DockerClient,
) -> None:
    repo = make_repo(
        tmp_path / "repo",
        {
            "requirements-dev.txt": f"pytest\nevilpkg @ file://{evil.sdist}\n",
            "test_it.py": "def test_ok():\n    assert True\n",
        },
    )
    settings = make_settings(tmp_path / "state", f"{TEST_INSTANCE}-hostsafe")
    git_spy.write_text("")  # only the runner's own git from here on
    verdict = verify(FixJob(repo=str(repo), patch=PATCH), Runtime.start(settings))
    assert verdict.status == "error"
    assert "evilpkg" in verdict.summary and "direct reference" in verdict.summary
    assert not evil.marker.exists()
    assert secret not in verdict.model_dump_json()
    dumps = git_spy.read_text()
    assert "GIT_DIR" in dumps or "GIT_CONFIG_GLOBAL" in dumps  # the runner's git ran
    assert secret not in dumps


# --------------------------------------------------------------------------- policies


def test_a_policy_is_never_read_through_a_link_a_fifo_or_past_its_cap(tmp_path: Path) -> None:
    (tmp_path / "secret.txt").write_text('name = "x"\nsecret = "host file"\n')
    (tmp_path / "link.toml").symlink_to(tmp_path / "secret.txt")
    os.mkfifo(tmp_path / "fifo.toml")
    (tmp_path / "huge.toml").write_bytes(b"#" * (POLICY_MAX_BYTES + 1))
    for name, reason in [
        ("link.toml", "not a regular file"),
        ("fifo.toml", "not a regular file"),
        ("huge.toml", "larger than"),
    ]:
        with pytest.raises(ConfigError, match=reason) as caught:
            load_policy(str(tmp_path / name), tmp_path)
        assert "host file" not in str(caught.value)


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory, base_image: BaseImage) -> Iterator[Server]:
    folder = tmp_path_factory.mktemp("svc-hostsafe")
    srv = make_server(folder, folder / "state", "svc-hostsafe", policies=["default", "strict"])
    srv.start()
    yield srv
    assert srv.stop() == 0, srv.log.read_text()[-3000:]


@pytest.mark.docker
@pytest.mark.parametrize(
    ("policy", "says"),
    [
        ("/etc/passwd", "by name"),
        ("../policies/default", "by name"),
        ("/dev/zero", "by name"),
        ("default.toml", "by name"),
        ("lenient", "not offered by this service"),
    ],
)
def test_the_service_takes_policies_by_name_from_its_allowlist_only(
    service: Server, tmp_path: Path, policy: str, says: str
) -> None:
    headers = {"Authorization": f"Bearer {service.token}"}
    body = {"repo": str(tmp_path), "patch": PATCH, "policy": policy}
    response = httpx.post(f"{service.url}/v1/jobs", json=body, headers=headers, timeout=30)
    assert response.status_code == 422
    (error,) = response.json()["detail"]
    assert error["loc"] == ["body", "policy"]
    assert says in error["msg"]
    assert "root:" not in response.text


# --------------------------------------------------------------------------- host-side reads

HOST_FILE = 'name = "leaked"\n[project]\nname = "host-secret-content-4242"\n'


@pytest.mark.parametrize("name", ["pyproject.toml", "requirements.txt", "setup.cfg", "tox.ini"])
def test_a_manifest_linking_out_of_the_checkout_is_refused_unread(
    tmp_path: Path, plain: Settings, name: str
) -> None:
    host = tmp_path / "host-file.toml"
    host.write_text(HOST_FILE)
    repo = make_repo(tmp_path / "repo", {"test_it.py": "def test_ok(): pass\n"}, {name: host})
    with pytest.raises(ResolutionError, match="link out of the checkout") as caught:
        detect(repo, plain)
    assert "host-secret-content" not in str(caught.value)


def test_a_fifo_manifest_is_refused_without_waiting(tmp_path: Path, plain: Settings) -> None:
    repo = make_repo(tmp_path / "repo", {"test_it.py": "def test_ok(): pass\n"})
    os.mkfifo(repo / "setup.cfg")
    with pytest.raises(ResolutionError, match="not a regular file"):
        detect(repo, plain)


def test_a_link_inside_the_checkout_is_still_read(tmp_path: Path, plain: Settings) -> None:
    repo = make_repo(
        tmp_path / "repo",
        {"requirements/test.txt": "pytest==8.3.3\n"},
        {"requirements-dev.txt": Path("requirements/test.txt")},
    )
    plan = detect(repo, plain)
    assert plan.requirements == ["pytest==8.3.3"]


def test_an_oversized_lock_file_is_refused(tmp_path: Path, plain: Settings) -> None:
    repo = make_repo(tmp_path / "repo", {"pyproject.toml": '[project]\nname = "x"\n'})
    with (repo / "poetry.lock").open("wb") as handle:
        handle.truncate(MANIFEST_MAX_BYTES + 1)
    with pytest.raises(ResolutionError, match="larger than"):
        detect(repo, plain)


@pytest.mark.docker
def test_a_job_whose_pyproject_links_to_a_host_file_never_shows_its_content(
    tmp_path: Path, base_image: BaseImage, docker_client: docker.DockerClient
) -> None:
    host = tmp_path / "host-file.toml"
    host.write_text(HOST_FILE)
    repo = make_repo(
        tmp_path / "repo", {"test_it.py": "def test_ok(): pass\n"}, {"pyproject.toml": host}
    )
    settings = make_settings(tmp_path / "state", f"{TEST_INSTANCE}-hostsafe")
    verdict = verify(FixJob(repo=str(repo), patch=PATCH), Runtime.start(settings))
    assert verdict.status == "error"
    assert "pyproject.toml is a link out of the checkout" in verdict.summary
    folder = settings.paths.root / "jobs" / verdict.job_id
    written = "".join(p.read_text(errors="replace") for p in folder.rglob("*") if p.is_file())
    assert "host-secret-content" not in verdict.model_dump_json() + written


def test_the_lint_config_probe_reads_only_the_tree_and_only_its_cap(tmp_path: Path) -> None:
    # The candidate's tree is writable by the candidate's run, which runs beside lint.
    from runner.verify.lint import LINT_CONFIG_MAX_BYTES, _has_flake8_config

    tree = tmp_path / "tree"
    tree.mkdir()
    host = tmp_path / "host.cfg"
    host.write_text("[flake8]\n")
    os.mkfifo(tree / "setup.cfg")
    (tree / "tox.ini").symlink_to(host)
    assert not _has_flake8_config(tree)
    (tree / "tox.ini").unlink()
    with (tree / "tox.ini").open("wb") as handle:
        handle.seek(LINT_CONFIG_MAX_BYTES + 10)
        handle.write(b"[flake8]\n")
    assert not _has_flake8_config(tree)
    (tree / "tox.ini").write_text("[flake8]\nmax-line-length = 100\n")
    assert _has_flake8_config(tree)
