"""What a tree's build may bring back into the job's tree (no Docker: files only)."""

from __future__ import annotations

import shutil
from pathlib import Path

from runner.environments.treebuild import bring_back, build_reasons


def test_only_added_regular_non_harness_files_come_back(tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    (tree / "pkg").mkdir(parents=True)
    (tree / "pkg" / "__init__.py").write_text("from pkg._version import version\n")
    (tree / "tests").mkdir()
    (tree / "tests" / "test_x.py").write_text("def test_x():\n    assert 1 == 1\n")
    scratch = tmp_path / "scratch"
    shutil.copytree(tree, scratch)
    (scratch / "pkg" / "_version.py").write_text("version = '1.0'\n")
    (scratch / "pkg" / "_speed.cpython-311-x86_64-linux-gnu.so").write_bytes(b"\x7fELF")
    (scratch / "tests" / "test_x.py").write_text("def test_x():\n    pass\n")
    (scratch / "tests" / "conftest.py").write_text("def pytest_runtest_logreport(r): ...\n")
    (scratch / "sitecustomize.py").write_text("import os\n")
    (scratch / "pkg" / "evil.pth").write_text("import os\n")
    (scratch / "pkg" / "link.py").symlink_to("/etc/passwd")
    (scratch / "build" / "lib").mkdir(parents=True)
    (scratch / "build" / "lib" / "copy.py").write_text("")
    (scratch / "pkg.egg-info").mkdir()
    (scratch / "pkg.egg-info" / "PKG-INFO").write_text("")

    kept, refused = bring_back(scratch, tree)

    assert kept == ["pkg/_speed.cpython-311-x86_64-linux-gnu.so", "pkg/_version.py"]
    assert refused == ["pkg/evil.pth", "sitecustomize.py", "tests/conftest.py"]
    assert (tree / "pkg" / "_version.py").read_text() == "version = '1.0'\n"
    assert "assert 1 == 1" in (tree / "tests" / "test_x.py").read_text()
    assert not (tree / "pkg" / "link.py").exists() and not (tree / "build").exists()
    assert not (tree / "pkg.egg-info").exists()


def test_a_link_in_the_tree_never_leads_a_file_out(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    tree = tmp_path / "tree"
    tree.mkdir()
    (tree / "gen").symlink_to(outside, target_is_directory=True)
    scratch = tmp_path / "scratch"
    (scratch / "gen" / "deep").mkdir(parents=True)
    (scratch / "gen" / "deep" / "x.py").write_text("x = 1\n")
    kept, refused = bring_back(scratch, tree)
    assert kept == [] and refused == ["gen/deep/x.py"]
    assert not any(outside.iterdir())


def test_build_reasons_read_the_projects_configuration(tmp_path: Path) -> None:
    hatch = tmp_path / "hatch"
    hatch.mkdir()
    (hatch / "pyproject.toml").write_text(
        '[tool.hatch]\nbuild.hooks.vcs.version-file = "src/p/_version.py"\n'
    )
    assert build_reasons(hatch) == [
        "a version file written at build time (setuptools-scm or hatch-vcs)"
    ]
    cext = tmp_path / "cext"
    cext.mkdir()
    (cext / "setup.py").write_text(
        "from setuptools import Extension, setup\n"
        "setup(ext_modules=[Extension('p._s', ['p/_s.c'])])\n"
    )
    assert build_reasons(cext) == ["a C extension"]
    plain = tmp_path / "plain"
    plain.mkdir()
    (plain / "pyproject.toml").write_text("[project]\nname = 'p'\n")
    assert build_reasons(plain) == []
