"""The benchmark's workloads: git repositories made in a temp dir, each with two fixes.

``flask``: the bundled Flask example (12 tests; the fix adds one regression test).
``synthetic``: a generated pure-Python project with many small test modules whose
suite takes about 5 s on the host. Each workload has a base commit with a bug and two
candidate fixes that share the same regression test, so the second candidate's
baseline (base + test hunks) is the first one's: the baseline cache applies.
"""

from __future__ import annotations

import os
import subprocess
import textwrap
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FLASK_EXAMPLE = ROOT / "examples" / "flask-app-context"
DATE = "2026-11-01T12:00:00+00:00"
PINS = "pytest==8.3.5\nflake8==7.1.2\n"
# Size of the synthetic suite: modules x tests per module, each test doing a sieve of
# SIEVE_N numbers; chosen so the suite takes about 5 s with Debian's python3.11 here.
MODULES = 80
TESTS_PER_MODULE = 12
SIEVE_N = 65_000


@dataclass(frozen=True)
class Workload:
    """A repository and its two candidate fixes (diff text)."""

    name: str
    repo: Path
    first: str
    second: str
    tests: int
    # a module the suite imports, where bench/costs.py puts its hostile candidates' code
    imported: str = ""
    # the CPU-seconds target for `second`, where it sets one
    cpu_target: float | None = None


def _git(repo: Path, *args: str) -> str:
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "bench",
        "GIT_AUTHOR_EMAIL": "bench@example.invalid",
        "GIT_COMMITTER_NAME": "bench",
        "GIT_COMMITTER_EMAIL": "bench@example.invalid",
        "GIT_AUTHOR_DATE": DATE,
        "GIT_COMMITTER_DATE": DATE,
        "GIT_CONFIG_GLOBAL": "/dev/null",
        "GIT_CONFIG_NOSYSTEM": "1",
    }
    argv = ["git", "-C", str(repo), "-c", "core.hooksPath=/dev/null", *args]
    return subprocess.run(argv, env=env, check=True, capture_output=True, text=True).stdout


def _diff_of(repo: Path, edits: dict[str, str]) -> str:
    """The diff that turns the committed tree into one with ``edits`` (path → text)."""
    for name, text in edits.items():
        path = repo / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    _git(repo, "add", "-A")
    diff = _git(repo, "diff", "--cached", "--no-color")
    _git(repo, "reset", "-q", "--hard", "HEAD")
    return diff


def flask_workload(folder: Path) -> Workload:
    """The bundled Flask example; the second candidate is the same fix worded differently."""
    repo = folder / "flask-repo"
    script = FLASK_EXAMPLE / "make-repo.sh"
    subprocess.run(["bash", str(script), str(repo)], check=True, capture_output=True)
    first = (FLASK_EXAMPLE / "candidates" / "good.diff").read_text(encoding="utf-8")
    second = first.replace(
        "# db.session and db.create_all() need the application context that Flask only",
        "# Flask pushes an application context only while it handles requests and CLI",
    ).replace(
        "# pushes during requests and CLI commands; a plain script must push it itself.",
        "# commands; a script that uses db.session must push one before it seeds.",
    )
    assert second != first
    return Workload("flask", repo, first, second, tests=13, imported="app/seed.py", cpu_target=2.0)


def hostile_patch(workload: Workload, code: str) -> str:
    """A candidate that appends ``code`` to the module the workload's suite imports."""
    base = (workload.repo / workload.imported).read_text(encoding="utf-8")
    return _diff_of(workload.repo, {workload.imported: base + code})


STATS_BUGGY = '''\
"""Small statistics helpers."""


def mean(data):
    """Arithmetic mean of a non-empty sequence."""
    return sum(data) / len(data)


def median(data):
    """Median of a non-empty sequence."""
    ordered = sorted(data)
    return ordered[len(ordered) // 2]
'''

STATS_FIX_1 = STATS_BUGGY.replace(
    "    return ordered[len(ordered) // 2]\n",
    "    middle = len(ordered) // 2\n"
    "    if len(ordered) % 2:\n"
    "        return ordered[middle]\n"
    "    return (ordered[middle - 1] + ordered[middle]) / 2\n",
)

STATS_FIX_2 = STATS_BUGGY.replace(
    "    return ordered[len(ordered) // 2]\n",
    "    half, odd = divmod(len(ordered), 2)\n"
    "    # An even count has two middle values: the median is their mean.\n"
    "    return ordered[half] if odd else mean(ordered[half - 1 : half + 1])\n",
)

PRIMES = '''\
"""Prime numbers."""


def sieve(limit):
    """All primes below ``limit`` (Eratosthenes)."""
    flags = [True] * limit
    flags[0:2] = [False, False]
    for n in range(2, int(limit**0.5) + 1):
        if flags[n]:
            for multiple in range(n * n, limit, n):
                flags[multiple] = False
    return [n for n, prime in enumerate(flags) if prime]


def is_prime(n):
    """Trial division."""
    if n < 2:
        return False
    k = 2
    while k * k <= n:
        if n % k == 0:
            return False
        k += 1
    return True
'''

TEXT = '''\
"""Text helpers."""

import re


def slugify(text):
    """Lower-case words joined by dashes."""
    return "-".join(re.findall(r"[a-z0-9]+", text.lower()))
'''

REGRESSION_TEST = """\
from mathkit.stats import median


def test_median_of_an_even_count_is_the_mean_of_the_middle_pair():
    assert median([4, 1, 3, 2]) == 2.5


def test_median_of_an_odd_count_is_the_middle_value():
    assert median([5, 1, 3]) == 3
"""


def _test_module(index: int) -> str:
    tests = []
    for t in range(TESTS_PER_MODULE):
        limit = SIEVE_N + 37 * index + t
        kind = t % 3
        if kind == 0:
            body = f"""\
            def test_sieve_{t}():
                primes = sieve({limit})
                assert primes[:5] == [2, 3, 5, 7, 11]
                assert all(is_prime(p) for p in primes[-10:])
            """
        elif kind == 1:
            body = f"""\
            def test_median_odd_{t}():
                primes = sieve({limit})
                data = primes[: len(primes) // 2 * 2 - 1]
                assert median(data) == data[len(data) // 2]
                assert mean([1, 2, 3]) == 2
            """
        else:
            body = f"""\
            def test_slug_{t}():
                count = len(sieve({limit}))
                assert slugify(f"Module {index} Test {t}: {{count}} primes!") == (
                    f"module-{index}-test-{t}-{{count}}-primes"
                )
            """
        tests.append(textwrap.dedent(body))
    header = (
        "from mathkit.primes import is_prime, sieve\n"
        "from mathkit.stats import mean, median\n"
        "from mathkit.text import slugify\n"
    )
    return header + "\n\n" + "\n\n".join(tests)


def synthetic_workload(folder: Path) -> Workload:
    """A generated project: the bug is ``median`` of an even count; two fixes."""
    repo = folder / "synthetic-repo"
    files = {
        "mathkit/__init__.py": '"""Generated benchmark project."""\n',
        "mathkit/stats.py": STATS_BUGGY,
        "mathkit/primes.py": PRIMES,
        "mathkit/text.py": TEXT,
        "tests/__init__.py": "",
        "requirements-test.txt": PINS,
        "setup.cfg": "[tool:pytest]\ntestpaths = tests\npythonpath = .\n",
        **{f"tests/test_gen_{i:03d}.py": _test_module(i) for i in range(MODULES)},
    }
    for name, text in files.items():
        path = repo / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    _git(repo, "init", "-q", "-b", "main", "--template=")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "-m", "generated project with a median bug")
    test = {"tests/test_regression.py": REGRESSION_TEST}
    first = _diff_of(repo, {"mathkit/stats.py": STATS_FIX_1, **test})
    second = _diff_of(repo, {"mathkit/stats.py": STATS_FIX_2, **test})
    return Workload("synthetic", repo, first, second, tests=MODULES * TESTS_PER_MODULE + 2)
