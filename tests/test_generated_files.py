"""Files a project makes when it is built (issue 17, class 5), end to end.

A setuptools-scm project imports its version from ``_version.py``, which only its
build writes: the runner builds each job tree in place before the tests, so a real fix
is verified instead of every test module failing to import on both sides.
Real engine, real git repository, real diffs (test_pipeline's runner and helpers).
"""

from __future__ import annotations

import docker
import pytest
from conftest import TEST_INSTANCE, make_settings
from test_pipeline import Project, Verify, validated

from runner.environments.images import BaseImage
from runner.models import FixJob, Verdict
from runner.verify.pipeline import Runtime, verify

pytestmark = pytest.mark.docker

SCM_PROJECT = {
    "pyproject.toml": """\
[build-system]
requires = ["setuptools>=64", "setuptools-scm>=8"]
build-backend = "setuptools.build_meta"

[project]
name = "scm-pkg"
dynamic = ["version"]

[tool.setuptools]
packages = ["scmpkg"]

[tool.setuptools_scm]
version_file = "scmpkg/_version.py"
""",
    "scmpkg/__init__.py": "from scmpkg._version import version as __version__\n",
    "scmpkg/calc.py": "def double(x):\n    return x + x + 1\n",
    "tests/test_calc.py": (
        "import scmpkg\nfrom scmpkg.calc import double\n\n\n"
        "def test_version_is_generated():\n    assert scmpkg.__version__\n\n\n"
        "def test_double():\n    assert double(2) == 4\n"
    ),
    "requirements-test.txt": "pytest==8.3.5\nflake8==7.1.2\n",
    ".gitignore": "scmpkg/_version.py\n",
}
SCM_FIX = {"scmpkg/calc.py": "def double(x):\n    return x + x\n"}


@pytest.fixture(scope="module")
def runtime(
    tmp_path_factory: pytest.TempPathFactory,
    base_image: BaseImage,
    docker_client: docker.DockerClient,
) -> Runtime:
    state = tmp_path_factory.mktemp("state")
    return Runtime.start(make_settings(state, f"{TEST_INSTANCE}-generated"))


@pytest.fixture(scope="module")
def scm_project(tmp_path_factory: pytest.TempPathFactory) -> Project:
    root = tmp_path_factory.mktemp("scm")
    return Project.create(root, "scmpkg", SCM_PROJECT, "double is off by one")


@pytest.fixture
def run(runtime: Runtime) -> Verify:
    def go(patch: str, **job: object) -> Verdict:
        verdict = verify(FixJob(patch=patch, **job), runtime)  # type: ignore[arg-type]
        return validated(verdict, runtime)

    return go


def test_scm_version_file_is_built_in_each_tree(run: Verify, scm_project: Project) -> None:
    verdict = run(
        scm_project.diff(SCM_FIX),
        repo=str(scm_project.repo),
        fail_to_pass=["tests/test_calc.py::test_double"],
    )
    assert verdict.status == "verified", verdict.summary
    assert verdict.tests.fail_to_pass == ["tests/test_calc.py::test_double"]
    assert verdict.tests.baseline.passed == 1  # the version test imports in the baseline
    notes = verdict.images.environment.notes
    assert any("version file written at build time" in note for note in notes), notes
    for tree in ("baseline", "candidate"):
        assert any(
            note.startswith(f"project built in the {tree} tree") and "_version.py" in note
            for note in notes
        ), notes


SPEED_C = r"""#define PY_SSIZE_T_CLEAN
#include <Python.h>

static PyObject *add(PyObject *self, PyObject *args) {
    long a, b;
    if (!PyArg_ParseTuple(args, "ll", &a, &b)) return NULL;
    return PyLong_FromLong(a - b);
}

static PyMethodDef methods[] = {{"add", add, METH_VARARGS, "Add."}, {NULL, NULL, 0, NULL}};
static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_speed", NULL, -1, methods};

PyMODINIT_FUNC PyInit__speed(void) { return PyModule_Create(&module); }
"""
C_PROJECT = {
    "setup.py": (
        "from setuptools import Extension, setup\n\n"
        'setup(name="cext", version="1.0", packages=["cext"],\n'
        '      ext_modules=[Extension("cext._speed", ["cext/_speed.c"])])\n'
    ),
    "cext/__init__.py": "from cext._speed import add\n",
    "cext/_speed.c": SPEED_C,
    "tests/test_speed.py": (
        "from cext import add\n\n\ndef test_add():\n    assert add(2, 3) == 5\n\n\n"
        "def test_add_zero():\n    assert add(2, 0) == 2\n"
    ),
    "requirements-test.txt": "pytest==8.3.5\nflake8==7.1.2\n",
}
C_FIX = {"cext/_speed.c": SPEED_C.replace("a - b", "a + b")}


@pytest.fixture(scope="module")
def c_project(tmp_path_factory: pytest.TempPathFactory) -> Project:
    root = tmp_path_factory.mktemp("cext")
    return Project.create(root, "cext", C_PROJECT, "add subtracts")


def test_fix_in_a_c_extension_is_compiled_and_verified(run: Verify, c_project: Project) -> None:
    verdict = run(
        c_project.diff(C_FIX),
        repo=str(c_project.repo),
        fail_to_pass=["tests/test_speed.py::test_add"],
    )
    assert verdict.status == "verified", verdict.summary
    assert verdict.tests.fail_to_pass == ["tests/test_speed.py::test_add"]
    assert verdict.tests.baseline.passed == 1 and verdict.tests.candidate.passed == 2
    notes = verdict.images.environment.notes
    assert any("builder image" in note for note in notes), notes
    for tree in ("baseline", "candidate"):
        assert any(
            note.startswith(f"project built in the {tree} tree") and "_speed.cpython" in note
            for note in notes
        ), notes


# --------------------------------------------------------------------------- class 8

UNUSABLE_PROJECT = {
    "calc/__init__.py": "def double(x):\n    return x + x + 1\n",
    # A dependency the project never declared: no test module imports in either tree.
    "tests/test_calc.py": (
        "import fixrunner_never_installed\nfrom calc import double\n\n\n"
        "def test_double():\n    assert double(2) == 4\n"
    ),
    "requirements-test.txt": "pytest==8.3.5\nflake8==7.1.2\n",
}


def test_suite_that_imports_in_neither_tree_is_an_error_quoting_the_import_error(
    run: Verify, tmp_path_factory: pytest.TempPathFactory
) -> None:
    project = Project.create(
        tmp_path_factory.mktemp("unusable"), "calc", UNUSABLE_PROJECT, "double is off by one"
    )
    verdict = run(
        project.diff({"calc/__init__.py": "def double(x):\n    return x + x\n"}),
        repo=str(project.repo),
    )
    assert verdict.status == "error", verdict.summary
    assert "no test could be collected in either tree" in verdict.summary
    assert "fixrunner_never_installed" in verdict.summary


# A project its own test environment depends on (python-dateutil depends on six): the
# released wheel arrives with the requirements and, ahead of the tree's .pth line on
# sys.path, would be imported in place of the tree under test.
SELF_DEPENDENCY = {
    "setup.cfg": "[metadata]\nname = six\nversion = 0.0.1\n",
    "six.py": "def double(x):\n    return x + x + 1\n",
    "tests/test_six.py": (
        "from six import double\n\n\ndef test_double():\n    assert double(2) == 4\n"
    ),
    "requirements-test.txt": "pytest==8.3.5\nflake8==7.1.2\npython-dateutil==2.9.0.post0\n",
}


@pytest.fixture(scope="module")
def self_dependency(tmp_path_factory: pytest.TempPathFactory) -> Project:
    root = tmp_path_factory.mktemp("selfdep")
    return Project.create(root, "six", SELF_DEPENDENCY, "double is off by one")


def test_tree_wins_over_its_own_release_pulled_in_by_the_requirements(
    run: Verify, self_dependency: Project
) -> None:
    fix = {"six.py": "def double(x):\n    return x + x\n"}
    verdict = run(
        self_dependency.diff(fix),
        repo=str(self_dependency.repo),
        fail_to_pass=["tests/test_six.py::test_double"],
    )
    notes = verdict.images.environment.notes
    assert verdict.status == "verified", (verdict.summary, notes)
    assert verdict.tests.fail_to_pass == ["tests/test_six.py::test_double"]
    assert any("six 1.17.0 came in as a dependency" in n and "removed" in n for n in notes), notes
