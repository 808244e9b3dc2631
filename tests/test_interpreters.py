"""The per-commit Python chooser: pure rules over the tree's texts (no engine, no git)."""

from __future__ import annotations

from datetime import date

import pytest

from runner.config import ImageSettings, Settings
from runner.environments.images import (
    available_pythons,
    base_tag,
    fixed_python,
    for_python,
    wheel_platform,
)
from runner.environments.interpreters import (
    broken_pins,
    choose_python,
    declared_versions,
    requires_python,
)
from runner.environments.wheels import target_args
from runner.errors import ConfigError
from runner.verify.runs import test_command

OFFLINE = ("3.9", "3.11", "3.13")
RECENT = date(2026, 1, 5)


def test_nothing_in_the_tree_takes_the_newest() -> None:
    choice = choose_python(OFFLINE, {}, commit_date=RECENT)
    assert choice.python == "3.13"
    assert choice.reason == "the newest available; nothing in the tree rules it out"
    assert choice.fallbacks == ["3.11", "3.9"]


def test_requires_python_upper_bound_in_setup_py_picks_39() -> None:
    files = {"setup.py": "setup(name='x', python_requires='>=3.6, <3.10')\n"}
    choice = choose_python(OFFLINE, files, commit_date=RECENT)
    assert choice.python == "3.9"
    assert "python_requires in setup.py" in choice.reason
    assert "<3.10" in choice.reason


def test_requires_python_lower_bound_beats_the_commit_date() -> None:
    files = {"pyproject.toml": '[project]\nname = "x"\nrequires-python = ">=3.10"\n'}
    choice = choose_python(OFFLINE, files, commit_date=date(2022, 3, 1))
    # 3.11 came out after the commit, but 3.9 is not allowed at all.
    assert choice.python == "3.11"
    assert choice.fallbacks == []


def test_setup_cfg_and_poetry_requires_python() -> None:
    cfg = {"setup.cfg": "[options]\npython_requires = >=3.7,<3.12\n"}
    assert choose_python(OFFLINE, cfg, commit_date=RECENT).python == "3.11"
    poetry = {"pyproject.toml": '[tool.poetry.dependencies]\npython = "~3.9"\n'}
    assert choose_python(OFFLINE, poetry, commit_date=RECENT).python == "3.9"
    caret = {"pyproject.toml": '[tool.poetry.dependencies]\npython = "^3.10"\n'}
    assert choose_python(OFFLINE, caret, commit_date=RECENT).python == "3.13"


def test_a_pinned_old_pytest_picks_a_python_it_starts_on() -> None:
    choice = choose_python(
        OFFLINE, {}, ["pytest==5.4.1", "flake8==3.7.9"], "requirements.txt", RECENT
    )
    assert choice.python == "3.9"
    assert "pytest==5.4.1 in requirements.txt cannot start on Python 3.10+" in choice.reason


def test_a_range_that_admits_a_fixed_pytest_is_no_evidence() -> None:
    assert broken_pins(["pytest>=5"], "3.13") == []
    assert broken_pins(["pytest~=6.2.0"], "3.11") == []
    assert broken_pins(["pytest<6"], "3.11")
    assert broken_pins(["pytest~=5.4"], "3.11")
    assert broken_pins(["pytest==6.1.*"], "3.11")
    assert broken_pins(["pytest==8.3.2"], "3.13") == []
    assert broken_pins(["pytest==6.2.*"], "3.11") == []
    assert broken_pins(["pytest==6.2.4"], "3.9") == []
    # a pin that only applies to another Python says nothing about this one
    assert broken_pins(['pytest==4.6.11; python_version < "3"'], "3.11") == []


def test_classifiers_cap_the_python() -> None:
    setup = (
        "classifiers=[\n"
        "  'Programming Language :: Python :: 3.7',\n"
        "  'Programming Language :: Python :: 3.8',\n"
        "]\n"
    )
    choice = choose_python(OFFLINE, {"setup.py": setup}, commit_date=RECENT)
    assert choice.python == "3.9"
    assert "names Python 3.8 at most (classifiers)" in choice.reason


def test_tox_envlist_braces_and_ci_matrix_are_read() -> None:
    tox = {"tox.ini": "[tox]\nenvlist = py3{8,9,10,11}-django{32,40}, lint\n"}
    assert set(declared_versions(tox)) == {"3.8", "3.9", "3.10", "3.11"}
    workflow = (
        "jobs:\n  test:\n    strategy:\n      matrix:\n"
        "        python-version: [3.8, 3.9, 3.10, pypy-3.9]\n"
        "    steps:\n      - uses: actions/setup-python@v5\n"
        "        with:\n          python-version: ${{ matrix.python-version }}\n"
    )
    found = declared_versions({".github/workflows/ci.yml": workflow})
    # an unquoted 3.10 is 3.10, not the float 3.1
    assert set(found) == {"3.8", "3.9", "3.10"}
    travis = {".travis.yml": "language: python\npython:\n  - '3.6'\n  - '3.7-dev'\n  - nightly\n"}
    assert set(declared_versions(travis)) == {"3.6", "3.7"}
    choice = choose_python(OFFLINE, {**tox, ".github/workflows/ci.yml": workflow}, [], "", RECENT)
    assert choice.python == "3.11"


def test_the_commit_date_rules_out_later_pythons() -> None:
    choice = choose_python(OFFLINE, {}, commit_date=date(2021, 6, 4))
    assert choice.python == "3.9"
    assert "predates Python 3.11 (2022-10-24)" in choice.reason
    # a commit older than every base still gets the oldest, never the newest
    assert choose_python(OFFLINE, {}, commit_date=date(2018, 5, 27)).python == "3.9"
    assert choose_python(OFFLINE, {}, commit_date=date(2023, 5, 1)).python == "3.11"


def test_unsatisfiable_requires_python_takes_the_nearest() -> None:
    old = {"setup.py": "setup(python_requires='<3.8')"}
    choice = choose_python(OFFLINE, old, commit_date=RECENT)
    assert choice.python == "3.9"
    assert "admits no available Python" in choice.reason
    new = {"pyproject.toml": '[project]\nrequires-python = ">=3.14"\n'}
    assert choose_python(OFFLINE, new, commit_date=RECENT).python == "3.13"


def test_runner_toml_wins() -> None:
    files = {"setup.py": "setup(python_requires='>=3.11')"}
    choice = choose_python(OFFLINE, files, commit_date=RECENT, fixed=("3.9", "[images] python"))
    assert choice.python == "3.9"
    assert choice.reason == "set in runner.toml ([images] python)"


def test_requires_python_readers_ignore_what_they_cannot_parse() -> None:
    files = {
        "pyproject.toml": "not = [valid toml",
        "setup.cfg": "[options\nbroken",
        "setup.py": "python_requires=REQUIRES",
    }
    assert requires_python(files) == []
    assert choose_python(OFFLINE, files, commit_date=RECENT).python == "3.13"


def test_image_settings_per_python() -> None:
    default = ImageSettings()
    assert fixed_python(default) is None
    assert available_pythons(default) == ("3.9", "3.11", "3.13")
    assert for_python(default).debian_suite == "bookworm"
    assert for_python(default, "3.9").debian_suite == "bullseye"
    assert base_tag(for_python(default, "3.9")).startswith("fixrunner-base:py3.9-")
    assert wheel_platform(default, "3.9") == "2_31"
    assert wheel_platform(default, "3.11") == "2_36"
    assert available_pythons(ImageSettings(python="3.9")) == ("3.9",)
    assert available_pythons(ImageSettings(debian_suite="trixie")) == ("3.13",)
    with pytest.raises(ConfigError, match=r"no offline base has Python 3\.10"):
        for_python(default, "3.10")
    with pytest.raises(ConfigError, match=r"fixes Python 3\.11"):
        for_python(ImageSettings(debian_suite="bookworm"), "3.9")
    with pytest.raises(ConfigError, match="set \\[images\\] python too"):
        fixed_python(ImageSettings(debian_suite="sid"))
    registry = ImageSettings(recipe="registry")
    assert "3.10" in available_pythons(registry)
    assert for_python(registry, "3.10").python == "3.10"


def test_wheel_target_lists_every_older_manylinux_level() -> None:
    args = target_args("3.9", "2_31")
    platforms = [args[i + 1] for i, a in enumerate(args) if a == "--platform"]
    assert platforms[0] == "manylinux_2_31_x86_64"
    assert "manylinux_2_17_x86_64" in platforms
    assert "manylinux2014_x86_64" in platforms
    assert "manylinux_2_32_x86_64" not in platforms
    assert args[:4] == ["--python-version", "3.9", "--implementation", "cp"]


def test_the_preferred_python_wins_unless_the_tree_asks_for_another() -> None:
    choice = choose_python(OFFLINE, {}, commit_date=RECENT, preferred="3.11")
    assert choice.python == "3.11"
    assert choice.reason == "the default; nothing in the tree rules it out"
    assert choice.fallbacks == ["3.9"]
    newer = {"pyproject.toml": '[project]\nrequires-python = ">=3.12"\n'}
    assert choose_python(OFFLINE, newer, commit_date=RECENT, preferred="3.11").python == "3.13"
    classifiers = "".join(
        f"'Programming Language :: Python :: 3.{minor}',\n" for minor in (12, 13, 14)
    )
    choice = choose_python(OFFLINE, {"setup.py": classifiers}, commit_date=RECENT, preferred="3.11")
    assert choice.python == "3.13"
    assert "names Python 3.12 at least (classifiers)" in choice.reason
    # the date rules out 3.13, but the default was the pick anyway: not a reason
    summer = choose_python(OFFLINE, {}, commit_date=date(2024, 8, 3), preferred="3.11")
    assert summer.reason == "the default; nothing in the tree rules it out"
    old = ["pytest==6.2.4"]
    assert choose_python(OFFLINE, {}, old, "tox.ini", RECENT, preferred="3.11").python == "3.9"


def test_pytest_starts_without_the_tree_on_sys_path_before_311_too() -> None:
    settings = Settings()
    assert test_command(settings, "repo", "3.11.2") == ["python", "-P", "-m", "pytest"]
    older = test_command(settings, "repo", "3.9.2")
    # -P does not exist before 3.11: the same effect through runpy
    assert "-P" not in older and older[0] == "python" and older[1] == "-c"
    assert "sys.path.pop(0)" in older[2] and older[3:] == ["pytest"]
