"""The README's examples run as written: its fenced commands are read from README.md."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest
from conftest import TEST_INSTANCE

REPO_ROOT = Path(__file__).resolve().parent.parent
FENCE = re.compile(r"^```[a-z]*\n(.*?)^```$", re.DOTALL | re.MULTILINE)


def readme_block(first_line: str) -> str:
    """The README's fenced block that starts with first_line (exactly one must)."""
    text = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    blocks = [b for b in FENCE.findall(text) if b.startswith(first_line)]
    assert len(blocks) == 1, f"README has {len(blocks)} blocks starting {first_line!r}"
    return blocks[0]


def test_readme_blocks_are_found() -> None:
    assert "verify-patch" in readme_block("bash examples/flask-app-context/make-repo.sh")


@pytest.mark.docker
@pytest.mark.timeout(900)
def test_readme_verify_patch_example_runs_as_written(tmp_path: Path, base_image) -> None:
    block = readme_block("bash examples/flask-app-context/make-repo.sh")
    # the one substitution: the README's scratch path becomes this test's own
    script = block.replace("/tmp/flask-demo", str(tmp_path / "flask-demo"))
    env = {
        **os.environ,
        "RUNNER_PATHS__STATE_DIR": str(tmp_path / "state"),
        "RUNNER_ENGINE__INSTANCE": f"{TEST_INSTANCE}-readme",
    }
    done = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=880,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    assert re.search(r"^VERIFIED  ", done.stdout, re.MULTILINE), done.stdout
    # the before/after of the repro command, and the end names the job and its folder
    assert "RuntimeError: Working outside of application context" in done.stdout
    named = re.search(r"^job \S+: (\S+/jobs/\S+)$", done.stdout, re.MULTILINE)
    assert named, done.stdout
    folder = Path(named.group(1))
    # no internal marker reaches what a user reads: the verdict (summary, log tails), logs
    for path in [folder / "verdict.json", *(folder / "logs").glob("*.log")]:
        assert "::fixrunner-candidate::" not in path.read_text(encoding="utf-8"), path
    assert (folder / "logs" / "lint.log").is_file()


def _free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.mark.docker
@pytest.mark.timeout(900)
def test_readme_service_example_runs_as_written(tmp_path: Path, base_image) -> None:
    block = readme_block("export RUNNER_SERVICE__ALLOW_LOCAL_REPOS=true")
    # substitutions: a free loopback port and this test's scratch folder
    port = _free_port()
    script = block.replace("127.0.0.1:8088", f"127.0.0.1:{port}").replace("/tmp/", f"{tmp_path}/")
    assert "8088" not in script.replace(f"127.0.0.1:{port}", "")
    # the README leaves the service running in the background; the test stops it after
    script = f"{script}\nkill %1; wait\n"
    env = {
        **os.environ,
        "RUNNER_PATHS__STATE_DIR": str(tmp_path / "state"),
        "RUNNER_ENGINE__INSTANCE": f"{TEST_INSTANCE}-readme-service",
        "RUNNER_SERVICE__PORT": str(port),
    }
    done = subprocess.run(
        ["bash", "-c", script],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=880,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Traceback" not in done.stdout + done.stderr
    assert re.search(r"^done · verified: ", done.stdout, re.MULTILINE), done.stdout + done.stderr


@pytest.mark.docker
@pytest.mark.timeout(900)
def test_readme_fix_loop_example_runs_as_written(tmp_path: Path, base_image) -> None:
    import sys
    import time

    block = readme_block("export ANTHROPIC_API_KEY=sk-ant-…\nbash examples/flask-app-context")
    example = REPO_ROOT / "examples" / "flask-app-context"
    key = "test-key-not-a-real-one"
    # the Messages API is out of reach here: the scripted loopback stand-in of `make
    # demo-fix` answers, through the real SDK (ANTHROPIC_BASE_URL, as the README says)
    port_file = tmp_path / "port"
    fake = subprocess.Popen(
        [
            sys.executable,
            str(REPO_ROOT / "tests" / "anthropic_fake.py"),
            "--script",
            str(example / "fix-demo" / "replies.json"),
            "--api-key",
            key,
            "--port-file",
            str(port_file),
        ]
    )
    try:
        for _ in range(100):
            if port_file.exists() and port_file.read_text().strip():
                break
            time.sleep(0.1)
        port = port_file.read_text().strip()
        script = (
            block.replace("sk-ant-…", key)
            .replace("/tmp/flask-demo", str(tmp_path / "flask-demo"))
            .replace("/tmp/fix-out", str(tmp_path / "fix-out"))
        )
        env = {
            **os.environ,
            "ANTHROPIC_BASE_URL": f"http://127.0.0.1:{port}",
            "RUNNER_PATHS__STATE_DIR": str(tmp_path / "state"),
            "RUNNER_ENGINE__INSTANCE": f"{TEST_INSTANCE}-readme-fix",
        }
        done = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", script],
            cwd=REPO_ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=880,
        )
    finally:
        fake.terminate()
        fake.wait(timeout=10)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    assert re.search(r"^VERIFIED: ", done.stdout, re.MULTILINE), done.stdout
    assert (tmp_path / "fix-out" / "PR.md").is_file()
    assert key not in done.stdout + done.stderr
