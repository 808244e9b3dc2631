"""The runner's own pytest plugin: every report's node id, phase and outcome, recorded.

Shipped into the sandbox read-only and loaded with ``-p fixrunner_harness`` from a
directory on ``PYTHONPATH`` (the tree cannot shadow it: pytest runs with ``-P``). It is
imported while pytest parses its arguments, before any conftest or project module, and
then:

- reads this run's key from the harness folder and deletes the file, so only this
  process holds it; every record it writes carries an HMAC chained over the previous
  one, so a line written by anyone else breaks the chain;
- installs an audit hook (PEP 578; it cannot be removed) that refuses any open, rename,
  delete or listing of the harness folder and any subprocess that names it, and records
  as alerts ``ctypes`` imported by the tree's code and harness modules (pytest, _pytest,
  pluggy, this plugin) imported by the tree's non-test code;
- writes JSON lines: ``start`` (rootdir, config file), ``collected`` (every node id with
  its function and position), ``collect_error``, ``report`` (nodeid, when, outcome,
  longrepr head and tail, crash line), ``alert`` and ``finish`` (exit status).

It runs inside the sandbox with only the standard library and pytest: no runner import.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import hmac
import json
import os
import signal
import sys
import threading
from collections.abc import Iterator
from typing import IO, Any

import pytest

HARNESS_DIR = os.environ.pop("FIXRUNNER_HARNESS_DIR", "/fixrunner")
RUN = os.environ.pop("FIXRUNNER_RUN", "0")
WORK = os.path.realpath(os.environ.pop("FIXRUNNER_WORK", os.getcwd()))
LONGREPR_HEAD = 2000
LONGREPR_TAIL = 4000
# Seconds a test phase may run before it fails as timed out (0: no limit; the runner's
# limits.test_item_timeout_s).
try:
    ITEM_TIMEOUT = max(0.0, float(os.environ.pop("FIXRUNNER_TEST_TIMEOUT", "") or 0))
except ValueError:
    ITEM_TIMEOUT = 0.0
_HARNESS_MODULES = (
    "pytest",
    "_pytest",
    "pluggy",
    "py",
    "fixrunner_harness",
    "fixrunner_trace",
    "fixrunner_testmap",
)
TESTMAP_OPTION = "--fixrunner-testmap"
# The runner's own additions to python_files are absolute paths of the tree's test files
# that only unittest discovery finds (a test.py): test code, like test_*.py.
_ADDED_TEST_FILES: set[str] = set()
_PATH_EVENTS = frozenset(
    {
        "open",
        "os.rename",
        "os.remove",
        "os.rmdir",
        "os.mkdir",
        "os.symlink",
        "os.link",
        "os.chmod",
        "os.chown",
        "os.truncate",
        "os.utime",
        "os.listdir",
        "os.scandir",
        "shutil.rmtree",
        "shutil.copyfile",
        "shutil.move",
    }
)
_TWO_PATHS = frozenset({"os.rename", "os.link", "os.symlink", "shutil.copyfile", "shutil.move"})
_SPAWN_EVENTS = frozenset(
    {"subprocess.Popen", "os.system", "os.exec", "os.posix_spawn", "os.spawn"}
)


class _Stream:
    """The results file, opened once; each line is chained to the last by an HMAC."""

    def __init__(self, folder: str, run: str) -> None:
        key_path = os.path.join(folder, f"key-{run}")
        with open(key_path, "rb") as handle:
            key = handle.read()
        os.unlink(key_path)
        self._mac = hmac.new(key, digestmod=hashlib.sha256)
        self._file: IO[str] = open(  # noqa: SIM115  # held open for the whole session
            os.path.join(folder, f"stream-{run}.jsonl"), "x", encoding="utf-8"
        )
        # reentrant: an alert raised while a record is being written must not deadlock
        self._lock = threading.RLock()
        self._seq = 0
        self._last = ""

    def write(self, kind: str, **data: Any) -> None:
        with self._lock:
            record = {"seq": self._seq, "kind": kind, **data}
            body = json.dumps(record, sort_keys=True, default=str)
            mac = self._mac.copy()
            mac.update((self._last + body).encode())
            self._last = mac.hexdigest()
            self._file.write(json.dumps({"record": record, "mac": self._last}) + "\n")
            self._file.flush()
            self._seq += 1


def _open_stream() -> _Stream | None:
    # An xdist worker records nothing: the controller's plugin sees every report the
    # workers relay. The audit hook still guards the folder in the worker.
    if "PYTEST_XDIST_WORKER" in os.environ:
        return None
    return _Stream(HARNESS_DIR, RUN)


_STREAM = _open_stream()


def _write(kind: str, **data: Any) -> None:
    if _STREAM is not None:
        _STREAM.write(kind, **data)


def _open_tracer() -> Any:
    """The line tracer over the files the runner names, started now; None when not asked."""
    files = os.environ.pop("FIXRUNNER_TRACE", "")
    if not files or _STREAM is None:
        return None
    # imported from beside this plugin now, before any folder of the tree is on sys.path
    from fixrunner_trace import LineTracer  # type: ignore[import-not-found]  # the sandbox path

    tracer = LineTracer(WORK, [str(f) for f in json.loads(files)])
    tracer.start()
    return tracer


_TRACER = _open_tracer()


_GUARD = os.path.realpath(HARNESS_DIR)
_inside = threading.local()


def _frames() -> Iterator[str]:
    """File names of the calling frames, innermost first, past this plugin's own."""
    frame = sys._getframe(1)
    while frame is not None:
        if frame.f_code.co_filename != __file__:
            yield frame.f_code.co_filename
        frame = frame.f_back  # type: ignore[assignment]


def _tree_file() -> str | None:
    """The tree's file that made this call directly (through importlib), if any."""
    # Only the direct caller counts: a dependency the fix imports may load ctypes itself.
    for name in _frames():
        if name.startswith("<") or f"{os.sep}importlib{os.sep}" in name:
            continue
        if name.startswith(WORK + os.sep):
            return os.path.relpath(name, WORK)
        return None
    return None


def _is_test_file(rel: str) -> bool:
    base = os.path.basename(rel)
    parts = rel.split(os.sep)
    return (
        base.startswith("test_")
        or base.endswith("_test.py")
        or base == "conftest.py"
        or any(p in ("tests", "test", "testing") for p in parts[:-1])
        or os.path.join(WORK, rel) in _ADDED_TEST_FILES
    )


def _names_guard(value: object) -> bool:
    if isinstance(value, int):
        return False
    if isinstance(value, bytes):
        value = value.decode(errors="replace")
    if isinstance(value, os.PathLike):
        value = os.fspath(value)
    if not isinstance(value, str):
        return False
    return value.startswith(HARNESS_DIR) or os.path.realpath(value).startswith(_GUARD)


def _mentions_guard(value: object) -> bool:
    if isinstance(value, (list, tuple)):
        return any(_mentions_guard(v) for v in value)
    if isinstance(value, bytes):
        value = value.decode(errors="replace")
    return isinstance(value, str) and (HARNESS_DIR in value or _GUARD in value)


def _audit(event: str, args: tuple[Any, ...]) -> None:
    if getattr(_inside, "active", False):
        return
    if event in _PATH_EVENTS:
        # rename, link, symlink, copy and move name a second path: either may be ours
        for path in args[:2] if event in _TWO_PATHS else args[:1]:
            if _names_guard(path):
                _refuse(event, str(path))
    elif event in _SPAWN_EVENTS:
        if any(_mentions_guard(a) for a in args[:2]):
            _refuse(event, repr(args[:2])[:200])
    elif event == "import":
        _check_import(str(args[0]))
    elif event == "gc.get_objects" or event == "gc.get_referrers":
        _alert_from_tree("introspection", event)


def _refuse(event: str, detail: str) -> None:
    _inside.active = True
    try:
        _write("alert", what="results-access", event=event, detail=detail)
    finally:
        _inside.active = False
    raise PermissionError(f"fixrunner: the harness's results folder is off limits ({event})")


def _check_import(module: str) -> None:
    top = module.partition(".")[0]
    if top == "ctypes":
        _alert_from_tree("ctypes", module)
    elif top in _HARNESS_MODULES:
        _inside.active = True
        try:
            where = _tree_file()
            if where is not None and not _is_test_file(where):
                _write("alert", what="harness-reach", module=module, file=where)
        finally:
            _inside.active = False


def _alert_from_tree(what: str, detail: str) -> None:
    _inside.active = True
    try:
        where = _tree_file()
        if where is not None:
            _write("alert", what=what, detail=detail, file=where)
    finally:
        _inside.active = False


sys.addaudithook(_audit)


def _longrepr(report: pytest.TestReport | pytest.CollectReport) -> str:
    if isinstance(report.longrepr, tuple):  # a skip: (path, line, reason)
        return str(report.longrepr[2])
    text = report.longreprtext or ""
    if len(text) > LONGREPR_HEAD + LONGREPR_TAIL:
        text = text[:LONGREPR_HEAD] + "\n…\n" + text[-LONGREPR_TAIL:]
    return text


def _crash(report: pytest.TestReport | pytest.CollectReport) -> dict[str, Any] | None:
    crash = getattr(report.longrepr, "reprcrash", None)
    if crash is None:
        return None
    return {"path": crash.path, "lineno": crash.lineno, "message": str(crash.message)[:2000]}


def pytest_addoption(parser: pytest.Parser) -> None:
    """The runner's switch for the per-test map of executed files (the baseline run)."""
    parser.addoption(TESTMAP_OPTION, action="store_true", help=argparse.SUPPRESS)


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    """Leave sys.modules once registered: reaching this module again means importing it."""
    # pytest keeps the registered module; code that imports it anew fires an audit
    # "import" event (an alert) and finds its key already gone.
    sys.modules.pop(__name__, None)
    _ADDED_TEST_FILES.update(str(p) for p in config.getini("python_files") if os.path.isabs(p))
    if config.getoption(TESTMAP_OPTION) and _STREAM is not None:
        import fixrunner_testmap  # type: ignore[import-not-found]  # beside this file

        config.pluginmanager.register(fixrunner_testmap.TestMap(WORK, _write), "fixrunner-testmap")


def pytest_sessionstart(session: pytest.Session) -> None:
    """Record where pytest stands: its rootdir and the config file it chose."""
    config = session.config
    inipath = getattr(config, "inipath", None) or getattr(config, "inifile", None)
    _write(
        "start",
        rootdir=str(getattr(config, "rootpath", None) or getattr(config, "rootdir", "")),
        inifile=str(inipath) if inipath else None,
        pytest=pytest.__version__,
        args=[str(a) for a in config.args],
    )


def pytest_collectreport(report: pytest.CollectReport) -> None:
    """Record a module (or class) that failed to collect."""
    if report.failed:
        _write(
            "collect_error", nodeid=report.nodeid, longrepr=_longrepr(report), crash=_crash(report)
        )


def pytest_collection_finish(session: pytest.Session) -> None:
    """Record every collected id with its function (the id before ``[``) and position."""
    _write("collected", items=_items([(i.nodeid, i.location[1]) for i in session.items]))


_XDIST_COLLECTED = threading.Event()


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_node_collection_finished(node: object, ids: list[str]) -> None:
    """Under xdist the workers collect: record the first worker's ids (all collect the same)."""
    if not _XDIST_COLLECTED.is_set():
        _XDIST_COLLECTED.set()
        _write("collected", items=_items([(i, None) for i in ids]))


def _items(ids: list[tuple[str, int | None]]) -> list[list[Any]]:
    seen: dict[str, int] = {}
    items = []
    for nodeid, line in ids:
        function = nodeid.split("[", 1)[0]
        position = seen.get(function, 0)
        seen[function] = position + 1
        items.append([nodeid, function, position, line])
    return items


_FAILED = pytest.fail.Exception


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """Name the exception a phase raised on its report (it travels with it under xdist)."""
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    excinfo = call.excinfo
    if excinfo is not None and report.failed:
        report.fixrunner_exc = excinfo.type.__name__
        # pytest.fail and a pytest.raises that saw nothing raise pytest's Failed: a check
        report.fixrunner_assertion = isinstance(excinfo.value, (AssertionError, _FAILED))


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """Record one phase of one test: nodeid, when, outcome, why and what it raised."""
    fields: dict[str, Any] = {
        "wasxfail": hasattr(report, "wasxfail") or None,
        "longrepr": _longrepr(report) if report.outcome != "passed" else "",
        "crash": _crash(report) if report.outcome == "failed" else None,
        "exc": getattr(report, "fixrunner_exc", None),
        "assertion": getattr(report, "fixrunner_assertion", None),
    }
    # A passing phase says only that: the runner reads an absent field as its default,
    # and a suite of 60,000 tests writes three of these per test.
    _write(
        "report",
        nodeid=report.nodeid,
        when=report.when,
        outcome=report.outcome,
        duration=round(report.duration, 6),
        location=[report.location[0], report.location[1]],
        **{k: v for k, v in fields.items() if v is not None and v != ""},
    )


def _on_alarm(signum: int, frame: object) -> None:
    pytest.fail(
        f"Timeout: this test phase ran past {ITEM_TIMEOUT:g} s (fixrunner's per-test limit, "
        "limits.test_item_timeout_s); stopped where the traceback shows"
    )


@contextlib.contextmanager
def _time_limit() -> Iterator[None]:
    """Fail the phase inside once it runs past ``ITEM_TIMEOUT`` (SIGALRM, main thread only).

    Left alone when a handler is already set (pytest-timeout's, the suite's own): the
    project's limit then applies, and two alarms would fight over one signal.
    """
    usable = (
        ITEM_TIMEOUT > 0
        and hasattr(signal, "setitimer")
        and threading.current_thread() is threading.main_thread()
        and signal.getsignal(signal.SIGALRM) in (signal.SIG_DFL, None)
    )
    if not usable:
        yield
        return
    signal.signal(signal.SIGALRM, _on_alarm)
    signal.setitimer(signal.ITIMER_REAL, ITEM_TIMEOUT)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, signal.SIG_DFL)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_setup(item: pytest.Item) -> Iterator[None]:
    """Set-up under the per-test limit."""
    with _time_limit():
        yield


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    """The test under the per-test limit."""
    with _time_limit():
        yield


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
    """Teardown under the per-test limit."""
    with _time_limit():
        yield


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
    """When tracing: the changed files' lines each test executed, set-up to teardown."""
    if _TRACER is None:
        yield
        return
    # what ran between tests (collection, imports) belongs to no test: recorded as ""
    _write("lines", nodeid="", files=_TRACER.take())
    yield
    _write("lines", nodeid=item.nodeid, files=_TRACER.take())


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Record the exit status pytest will return: the runner checks it against the process."""
    if _TRACER is not None:
        _TRACER.stop()
        _write("lines", nodeid="", files=_TRACER.take())
    _write("finish", exitstatus=int(exitstatus), testscollected=session.testscollected)
