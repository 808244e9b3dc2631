"""The bare check: the truth about a case before the runner sees it.

The upstream test part must fail without the source part and pass with it. Both runs
happen in a throw-away, network-less container of the project's base image (wheels
downloaded on the host, nothing from the repository executes on the host), with pytest
on the test part's files and our recorder plugin giving each test's node id.
"""

from __future__ import annotations

import hashlib
import subprocess
import tarfile
import tempfile
import uuid
from pathlib import Path

from corpus import VERSION_FILE, Case, fail_to_pass, generated_version_files, outcomes

HERE = Path(__file__).resolve().parent
# Test tools, the test-only libraries the corpus's suites import, and runtime dependencies
# of corpus projects; wheels only. A project on PYTHONPATH shadows its own wheel.
WHEELS = [
    "pytest==8.3.5",
    "hypothesis",
    "pretend",
    "freezegun",
    "pytz",
    "simplejson",
    "python-dateutil",
    "typing-extensions",
    "tomli",
    "exceptiongroup",  # pytest and hypothesis before Python 3.11 (the runner may choose 3.9)
    "sortedcontainers",
    "pytest-mock",
    "pytest-timeout",  # a test that hangs without the fix fails instead (TEST_TIMEOUT_S)
    "pytest-cov",  # --cov in semver's addopts, no_cover in python-dateutil's conftest
    "mock",  # installer (2021)
    "markupsafe",  # jinja's one runtime dependency
    "setuptools",
    "six",  # python-dateutil
    "appdirs",  # platformdirs compares itself with it
    "attrs",  # jsonschema (2022)
    "pyrsistent",  # jsonschema (2022)
    "crashtest",  # cleo
    "rapidfuzz",  # cleo
    "text-unidecode",  # python-slugify
]
TIMEOUT_S = 600
TEST_TIMEOUT_S = 120  # per test: an endless loop is a failure, not a stuck check


def _run(cmd: list[str], **kw: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, capture_output=True, text=True, check=False, **kw)  # type: ignore[call-overload, no-any-return]


def base_image(python: str = "3.11") -> str:
    """The newest fixrunner base image for `python` (a case's `python`) on this engine."""
    out = _run(["docker", "images", "--format", "{{.Repository}}:{{.Tag}}", "fixrunner-base"])
    tags = [t for t in out.stdout.split() if f":py{python}-" in t]
    if not tags:
        raise RuntimeError(
            f"no fixrunner-base:py{python}-* image: build the base for Python {python} "
            "(`make images`) or set the case's python to one that exists"
        )
    return tags[0]


def bare_wheels(state: Path, python: str) -> Path:
    """The bare wheels for `python`, downloaded on the host again when WHEELS changed."""
    wheels = state / "wheels" / f"py{python}"
    wheels.mkdir(parents=True, exist_ok=True)
    stamp = wheels / "requested.txt"
    wanted = "\n".join(WHEELS) + "\n"
    if not stamp.exists() or stamp.read_text() != wanted:
        for old in wheels.glob("*.whl"):  # two releases of one project would both install
            old.unlink()
        got = _run([
            "pip", "download", "-q", "--only-binary", ":all:", "--python-version", python,
            "-d", str(wheels), *WHEELS,
        ])  # fmt: skip
        if got.returncode != 0:
            raise RuntimeError(f"downloading the bare wheels failed: {got.stderr[-2000:]}")
        stamp.write_text(wanted)
    return wheels


def bare_image(state: Path, python: str = "3.11") -> str:
    """Base image + a venv with the bare wheels, built once in a network-less build."""
    wheels = bare_wheels(state, python)
    base = base_image(python)
    names = sorted(p.name for p in wheels.glob("*.whl"))
    tag = hashlib.sha256("\n".join([base, *names]).encode()).hexdigest()[:16]
    image = f"fixrunner-accuracy-bare:{tag}"
    if _run(["docker", "image", "inspect", image]).returncode == 0:
        return image
    (wheels / "Dockerfile").write_text(
        f"FROM {base}\nCOPY *.whl /wheels/\n"
        "RUN python3 -m venv /opt/bare && "
        "/opt/bare/bin/pip install -q --no-index --find-links /wheels /wheels/*.whl\n"
    )
    built = _run(
        ["docker", "build", "-q", "--force-rm", "--network", "none", "-t", image, str(wheels)]
    )
    if built.returncode != 0:
        raise RuntimeError(f"building {image} failed: {built.stderr[-2000:]}")
    return image


def export_tree(repo: Path, rev: str, dest: Path) -> None:
    """Write the tree of `rev` to `dest` (git archive; no checkout, no hooks)."""
    dest.mkdir(parents=True)
    archive = dest.parent / f"{dest.name}.tar"
    got = _run(["git", "-C", str(repo), "archive", "-o", str(archive), rev])
    if got.returncode != 0:
        raise RuntimeError(f"git archive {rev} failed: {got.stderr}")
    with tarfile.open(archive) as tar:
        tar.extractall(dest, filter="data")
    archive.unlink()


def without_source(repo: Path, case: Case, tree: Path) -> None:
    """Turn the fix tree into base + test part: the source part's files as of base."""
    for path in case.source:
        shown = _run(["git", "-C", str(repo), "show", f"{case.base}:{path}"])
        target = tree / path
        if shown.returncode != 0:
            target.unlink(missing_ok=True)
        else:
            target.write_text(shown.stdout)


def add_version_files(tree: Path) -> None:
    """Write the version module a VCS version plugin would generate at install time."""
    pyproject = tree / "pyproject.toml"
    if not pyproject.is_file():
        return
    for path in generated_version_files(pyproject.read_text()):
        target = tree / path
        if not target.exists() and target.parent.is_dir():
            target.write_text(VERSION_FILE)


def pytest_in_container(image: str, case: Case, tree: Path, out: Path) -> str:
    """Run pytest on the test part's files in `tree`; return the tail of its output."""
    tests = [t for t in case.tests if (tree / t).is_file() and not t.endswith("conftest.py")]
    pythonpath = f"/src/{case.python_path}".rstrip("/.") or "/src"
    name = f"acc-bare-{case.id}-{uuid.uuid4().hex[:8]}"
    cmd = [
        "docker", "run", "--rm", "--name", name, "--network", "none", "--user", "10001:10001",
        "--memory", "2g", "--pids-limit", "512", "--tmpfs", "/tmp:rw,size=512m",
        "-v", f"{tree}:/src", "-v", f"{HERE}:/acc:ro", "-v", f"{out.parent}:/out",
        "-w", "/src", "-e", f"PYTHONPATH={pythonpath}:/acc", "-e", "PYTHONDONTWRITEBYTECODE=1",
        "-e", f"ACCURACY_OUT=/out/{out.name}", "-e", "TZ=UTC", "-e", "PYTHONHASHSEED=0",
        "-e", "HOME=/tmp", image,
        "/opt/bare/bin/python", "-m", "pytest", "--rootdir=/src", "-p", "outcomes_plugin",
        "-p", "no:cacheprovider", f"--timeout={TEST_TIMEOUT_S}", "-q", *tests,
    ]  # fmt: skip
    try:
        got = _run(cmd, timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        _run(["docker", "kill", name])  # killing the client leaves the container running
        raise RuntimeError(f"the bare run of {case.id} took over {TIMEOUT_S} s") from None
    return (got.stdout + got.stderr)[-1500:]


def check(case: Case, repo: Path, state: Path) -> tuple[list[str], str]:
    """Fail-to-pass ids of the case found bare, and the log tail of the run without the fix."""
    image = bare_image(state, case.python)
    with tempfile.TemporaryDirectory(prefix=f"acc-{case.id}-") as tmp:
        root = Path(tmp)
        root.chmod(0o755)
        out = root / "out"
        out.mkdir()
        out.chmod(0o777)
        before, after = root / "before", root / "after"
        export_tree(repo, case.fix, before)
        without_source(repo, case, before)
        export_tree(repo, case.fix, after)
        for tree in (before, after):
            add_version_files(tree)
            _run(["chmod", "-R", "a+rwX", str(tree)])
        log = pytest_in_container(image, case, before, out / "before.jsonl")
        pytest_in_container(image, case, after, out / "after.jsonl")
        runs = [
            (out / n).read_text() if (out / n).exists() else ""
            for n in ("before.jsonl", "after.jsonl")
        ]
        was, broken = outcomes(runs[0].splitlines())
        now, _ = outcomes(runs[1].splitlines())
        return fail_to_pass(was, broken, now), log
