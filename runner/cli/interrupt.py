"""Ctrl-C and SIGTERM for a command that runs a job: cancel it, let it stop and remove its
containers, sweep what is left by label, and exit 130 or 143 with one line."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

from runner.cli.common import terminate_as_interrupt

if TYPE_CHECKING:
    from runner.verify.pipeline import Progress, Runtime

T = TypeVar("T")

__all__ = ["STOP_GRACE_S", "interruptible", "until_cancelled"]


# After Ctrl-C or SIGTERM, how long the cancelled job may take to stop itself: each
# sandbox kills its container within a fraction of a second and removes it, which under
# load takes a few seconds. What is left after that is removed by label; a host-side step
# that cannot be cancelled (a wheel download) is not waited for longer than this.
STOP_GRACE_S = 10.0


def interruptible(
    work: Callable[[threading.Event], T], runtime: Runtime, job_id: str, *, prefix: bool = False
) -> T:
    """Run the job in a thread; Ctrl-C or SIGTERM cancels it, waits for it to stop and remove
    its containers, removes any left by label, then re-raises.

    The containers swept carry this runner's owner label and ``job_id`` as their job label,
    or, with ``prefix``, a job label that starts with it (a fix's attempts).
    """
    terminate_as_interrupt()
    cancel = threading.Event()
    box: dict[str, T] = {}
    failed: list[BaseException] = []

    def target() -> None:
        try:
            box["result"] = work(cancel)
        except BaseException as exc:  # handed to the main thread, which raises it
            failed.append(exc)

    # daemon: a job that does not stop within the grace (a hung engine) does not hold the exit
    worker = threading.Thread(target=target, name=f"job-{job_id}", daemon=True)
    worker.start()
    try:
        while worker.is_alive():
            worker.join(0.2)
    except KeyboardInterrupt:
        cancel.set()
        _wait_stopped(worker)
        _remove_job_containers(runtime, job_id, prefix)
        raise
    if failed:
        raise failed[0]
    return box["result"]


def _wait_stopped(worker: threading.Thread) -> None:
    """Wait up to STOP_GRACE_S for the cancelled job to end; another signal ends the wait."""
    import signal
    import time

    hurry = threading.Event()
    # Left in place: a further Ctrl-C while the command exits must not print a traceback.
    for signum in (signal.SIGINT, signal.SIGTERM):
        if signal.getsignal(signum) is not signal.SIG_IGN:
            signal.signal(signum, lambda signum, frame: hurry.set())
    end = time.monotonic() + STOP_GRACE_S
    while worker.is_alive() and not hurry.is_set() and time.monotonic() < end:
        worker.join(0.1)


def until_cancelled(progress: Callable[[str, str], None], cancel: threading.Event) -> Progress:
    """The job's progress lines until it is cancelled: the command's last line is its own."""

    def emit(phase: str, message: str) -> None:
        if not cancel.is_set():
            progress(phase, message)

    return emit


def _remove_job_containers(runtime: Runtime, job_id: str, prefix: bool) -> None:
    """Remove what the interrupted job still has: its containers, by owner and job label."""
    from runner.sandbox.engine import remove_job_containers

    remove_job_containers(runtime.client, runtime.settings.engine.instance, job_id, prefix=prefix)
