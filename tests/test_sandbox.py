"""The hardened sandbox against the real engine: each containment rule, for real."""

from __future__ import annotations

import os
import resource
import subprocess
import threading
import time
from pathlib import Path

import docker
import pytest

from runner.config import Settings
from runner.environments.images import BaseImage
from runner.errors import SandboxError
from runner.models import Limits, Mount, RunSpec
from runner.sandbox.docker import DockerSandbox, hand_over
from runner.sandbox.labels import LABEL_OWNER

pytestmark = pytest.mark.docker


@pytest.fixture
def sandbox(docker_client: docker.DockerClient, settings: Settings) -> DockerSandbox:
    return DockerSandbox(docker_client, settings.engine)


def spec(image: BaseImage, *command: str, **limits: float) -> RunSpec:
    return RunSpec(image=image.id, command=list(command), workdir="/tmp", limits=Limits(**limits))


def test_exit_code_and_output_are_reported(sandbox: DockerSandbox, base_image: BaseImage) -> None:
    result = sandbox.run(spec(base_image, "sh", "-c", "echo out; echo err >&2; exit 3"))
    assert result.exit_code == 3
    assert "out" in result.output and "err" in result.output
    assert not result.timed_out and not result.oom_killed


def test_memory_hog_is_oom_killed(sandbox: DockerSandbox, base_image: BaseImage) -> None:
    hog = "x = bytearray(512 * 2**20); print('survived')"
    result = sandbox.run(spec(base_image, "python3", "-c", hog, memory_mb=128))
    assert result.oom_killed
    assert result.exit_code == 137
    assert "survived" not in result.output


def test_fork_bomb_is_stopped_at_once_when_the_pids_limit_refuses_a_fork(
    sandbox: DockerSandbox, base_image: BaseImage
) -> None:
    # Fork until the kernel refuses; every child sleeps so processes pile up. The
    # refused fork climbs the cgroup's pids.events counter and the watchdog ends it.
    bomb = (
        "import os, time\n"
        "while True:\n"
        "    try:\n"
        "        if os.fork() == 0:\n"
        "            time.sleep(600)\n"
        "            os._exit(0)\n"
        "    except OSError:\n"
        "        time.sleep(1)\n"
    )
    result = sandbox.run(spec(base_image, "python3", "-c", bomb, pids=64, timeout_s=120))
    assert result.pids_limited
    assert not result.timed_out and result.exit_code is None
    assert not result.ok
    # The host still starts processes while and after the bomb ran.
    assert subprocess.run(["true"], check=False).returncode == 0


def test_shell_fork_bomb_is_stopped_at_the_process_limit_and_host_stays_usable(
    sandbox: DockerSandbox, base_image: BaseImage
) -> None:
    result = sandbox.run(
        spec(base_image, "bash", "-c", "b() { b | b & }; b; sleep 100", pids=64, timeout_s=120)
    )
    assert result.pids_limited
    assert subprocess.run(["true"], check=False).returncode == 0


def test_a_run_under_its_process_limit_is_not_stopped(
    sandbox: DockerSandbox, base_image: BaseImage
) -> None:
    many = "for i in $(seq 20); do sleep 1 & done; wait; echo done"
    result = sandbox.run(spec(base_image, "sh", "-c", many, pids=64))
    assert result.ok and "done" in result.output
    assert not result.pids_limited


def test_a_deadline_learned_while_it_runs_shortens_the_timeout(
    sandbox: DockerSandbox, base_image: BaseImage
) -> None:
    learned: list[float] = []

    def deadline() -> float:
        return learned[0] if learned else float("inf")

    threading.Timer(1.0, lambda: learned.append(2.0)).start()
    result = sandbox.run(spec(base_image, "sleep", "1000", timeout_s=300), deadline=deadline)
    assert result.timed_out
    assert result.timeout_s == 2.0


def test_a_learned_deadline_never_lengthens_the_timeout(
    sandbox: DockerSandbox, base_image: BaseImage
) -> None:
    result = sandbox.run(spec(base_image, "sleep", "1000", timeout_s=2), deadline=lambda: 600.0)
    assert result.timed_out
    assert result.timeout_s == 2.0


def test_sleep_is_killed_at_the_timeout(sandbox: DockerSandbox, base_image: BaseImage) -> None:
    result = sandbox.run(spec(base_image, "sleep", "1000", timeout_s=2))
    assert result.timed_out
    assert result.exit_code is None
    assert result.duration_s < 1000


def test_output_flood_is_truncated_and_runner_memory_stays_bounded(
    sandbox: DockerSandbox, base_image: BaseImage
) -> None:
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    result = sandbox.run(
        spec(
            base_image,
            "sh",
            "-c",
            "echo START; head -c 1000000000 /dev/zero | tr '\\0' x; echo; echo END",
            output_bytes=64_000,
            timeout_s=120,
        )
    )
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    assert result.output_bytes > 1_000_000_000
    assert result.output_truncated
    assert result.output.startswith("START")
    assert result.output.rstrip().endswith("END")
    assert len(result.output) < 70_000
    assert (after - before) * 1024 < 200 * 2**20  # ru_maxrss is in KiB on Linux


def test_network_is_absent(sandbox: DockerSandbox, base_image: BaseImage) -> None:
    probe = (
        "import os, socket\n"
        "print('ifaces', sorted(os.listdir('/sys/class/net')))\n"
        "try:\n"
        "    socket.getaddrinfo('pypi.org', 443)\n"
        "    print('dns ok')\n"
        "except OSError as e:\n"
        "    print('dns failed', type(e).__name__)\n"
    )
    result = sandbox.run(spec(base_image, "python3", "-c", probe))
    assert "ifaces ['lo']" in result.output
    assert "dns failed" in result.output


def test_writes_outside_workspace_and_tmp_fail(
    sandbox: DockerSandbox, base_image: BaseImage, tmp_path: Path
) -> None:
    work = tmp_path / "work"
    work.mkdir()
    hand_over(work, sandbox._user)
    script = (
        "for p in /etc/x /usr/x /x /opt/x /results/x; do "
        "  (echo hi > $p) 2>/dev/null && echo WROTE $p || echo DENIED $p; done; "
        "echo hi > /tmp/ok && echo WROTE /tmp/ok; echo hi > /work/ok && echo WROTE /work/ok"
    )
    run = RunSpec(
        image=base_image.id,
        command=["sh", "-c", script],
        mounts=[Mount(source=work, target="/work", read_only=False)],
    )
    result = sandbox.run(run)
    for path in ("/etc/x", "/usr/x", "/x", "/opt/x", "/results/x"):
        assert f"DENIED {path}" in result.output
    assert "WROTE /tmp/ok" in result.output
    assert "WROTE /work/ok" in result.output
    assert (work / "ok").read_text() == "hi\n"


def test_read_only_mount_cannot_be_written(
    sandbox: DockerSandbox, base_image: BaseImage, tmp_path: Path
) -> None:
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "f").write_text("original")
    run = RunSpec(
        image=base_image.id,
        command=["sh", "-c", "echo changed > /src/f; cat /src/f"],
        mounts=[Mount(source=tmp_path / "src", target="/src", read_only=True)],
    )
    result = sandbox.run(run)
    assert result.exit_code == 0
    assert (tmp_path / "src" / "f").read_text() == "original"
    assert "Read-only file system" in result.output


def test_process_is_non_root_without_capabilities(
    sandbox: DockerSandbox, base_image: BaseImage
) -> None:
    result = sandbox.run(
        spec(
            base_image,
            "sh",
            "-c",
            "id -u; grep -E '^(CapEff|NoNewPrivs|Seccomp):' /proc/self/status",
        )
    )
    lines = result.output.split()
    assert lines[0] != "0"
    assert "CapEff:" in result.output and "0000000000000000" in result.output
    assert "NoNewPrivs:\t1" in result.output.replace("NoNewPrivs: ", "NoNewPrivs:\t")


def test_tmp_is_capped_in_size_and_inodes(sandbox: DockerSandbox, base_image: BaseImage) -> None:
    script = (
        "dd if=/dev/zero of=/tmp/a bs=1M count=10 2>/dev/null; "
        "dd if=/dev/zero of=/tmp/b bs=1M count=10 2>&1; rm -f /tmp/a /tmp/b; "
        "for i in $(seq 2000); do touch /tmp/f$i 2>/dev/null || { echo INODES_OUT $i; break; }; "
        "done"
    )
    result = sandbox.run(spec(base_image, "sh", "-c", script, tmpfs_mb=16, tmpfs_inodes=500))
    assert "No space left on device" in result.output
    assert "INODES_OUT" in result.output


def test_one_file_may_not_exceed_the_size_cap(
    sandbox: DockerSandbox, base_image: BaseImage
) -> None:
    result = sandbox.run(
        spec(base_image, "sh", "-c", "dd if=/dev/zero of=/tmp/big bs=1M count=64", tmpfs_mb=16)
    )
    assert result.exit_code != 0
    assert "File size limit exceeded" in result.output


def test_host_environment_does_not_leak(
    sandbox: DockerSandbox, base_image: BaseImage, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FIXRUNNER_TEST_SECRET", "s3cr3t")
    result = sandbox.run(spec(base_image, "env"))
    assert "s3cr3t" not in result.output
    assert "TZ=UTC" in result.output
    assert "PYTHONHASHSEED=0" in result.output


def test_zombies_are_reaped_by_an_init(sandbox: DockerSandbox, base_image: BaseImage) -> None:
    result = sandbox.run(spec(base_image, "sh", "-c", "cat /proc/1/cmdline | tr '\\0' ' '"))
    assert "init" in result.output


def test_cancel_stops_and_removes_the_container(
    sandbox: DockerSandbox,
    base_image: BaseImage,
    docker_client: docker.DockerClient,
    settings: Settings,
) -> None:
    cancel = threading.Event()
    timer = threading.Timer(1.0, cancel.set)
    timer.start()
    started = time.monotonic()
    result = sandbox.run(spec(base_image, "sleep", "600", timeout_s=300), cancel=cancel)
    assert time.monotonic() - started < 60
    assert not result.timed_out
    assert result.exit_code != 0
    assert not docker_client.containers.list(
        all=True,
        ignore_removed=True,
        filters={"label": f"{LABEL_OWNER}={settings.engine.instance}"},
    )


def test_missing_image_is_a_sandbox_error_not_a_result(sandbox: DockerSandbox) -> None:
    with pytest.raises(SandboxError, match="not present"):
        sandbox.run(RunSpec(image="fixrunner-no-such-image:0", command=["true"]))


def test_hand_over_never_follows_symlinks(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("chown needs root")
    outside = tmp_path / "outside"
    outside.write_text("keep")
    work = tmp_path / "work"
    work.mkdir()
    (work / "link").symlink_to(outside)
    hand_over(work, "10001:10001")
    assert outside.stat().st_uid == 0
    assert (work / "link").lstat().st_uid == 10001
