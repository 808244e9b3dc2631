"""When the baseline records the per-test map: one-shot verify-patch not, the rest yes.

Real engine, the real ``verify-patch`` command and the pipeline as the fix loop calls it
(``caller="fix-loop"``), on test_affected's two-module project in a state directory of
its own, so the commit starts with neither a cached baseline nor a map.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import docker
import pytest
from conftest import TEST_INSTANCE, make_settings
from test_affected import AREA, FILES, _recorded_map, _verify
from test_pipeline import (
    Project,
    cli_env,  # noqa: F401  # a fixture this module's CLI tests use
    validated,
    verify_patch,
)

from runner.config import Settings
from runner.environments.images import BaseImage
from runner.models import Verdict
from runner.verify.pipeline import Runtime

pytestmark = pytest.mark.docker

INSTANCE = f"{TEST_INSTANCE}-testmap"
SWAPPED = {"shapes/area.py": AREA.replace("a * b", "b * a")}


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Project:
    return Project.create(tmp_path_factory.mktemp("shapes"), "shapes", FILES, "shapes")


@pytest.fixture(scope="module")
def module_settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return make_settings(tmp_path_factory.mktemp("state"), INSTANCE)


@pytest.fixture(scope="module")
def runtime(
    module_settings: Settings, base_image: BaseImage, docker_client: docker.DockerClient
) -> Runtime:
    return Runtime.start(module_settings)


def _cli(
    env: dict[str, str], runtime: Runtime, project: Project, patch: Path, *extra: str
) -> Verdict:
    """One ``verify-patch`` process on the module's state directory."""
    job_id = f"testmap-{os.urandom(4).hex()}"
    proc = verify_patch(
        env,
        *("--repo", str(project.repo), "--patch", str(patch), "--job-id", job_id),
        *("--policy", "lenient", "--json", *extra),
    )
    assert proc.returncode == 0, proc.stderr
    verdict = validated(Verdict.model_validate(json.loads(proc.stdout)), runtime)
    assert verdict.early is not None
    return verdict


def _maps(runtime: Runtime) -> list[Path]:
    return sorted(runtime.baseline_cache.glob("*.testmap.json"))


@pytest.fixture(scope="module")
def one_shot(
    runtime: Runtime,
    project: Project,
    cli_env: dict[str, str],  # noqa: F811  # the fixture imported above
    tmp_path_factory: pytest.TempPathFactory,
) -> Verdict:
    """The commit's first job: a plain ``verify-patch`` (auto: no map)."""
    patch = tmp_path_factory.mktemp("patch") / "fix.diff"
    patch.write_text(project.diff(SWAPPED), encoding="utf-8")
    return _cli(cli_env, runtime, project, patch)


def test_verify_patch_by_default_records_no_map(one_shot: Verdict, runtime: Runtime) -> None:
    assert one_shot.status == "verified", one_shot.summary
    assert "baseline_cached" not in one_shot.timings  # the baseline ran …
    assert not _recorded_map(runtime, one_shot)  # … without the map's hook
    assert _maps(runtime) == []
    note = one_shot.early.testmap if one_shot.early else None
    assert note is not None and not note.recorded
    assert "one-shot" in note.reason and "--record-map" in note.reason


def test_a_cached_baseline_without_the_map_is_reused_while_no_one_wants_the_map(
    one_shot: Verdict, runtime: Runtime, project: Project
) -> None:
    verdict = _verify(runtime, project, SWAPPED, caller="one-shot")
    assert verdict.status == "verified", verdict.summary
    assert verdict.timings.get("baseline_cached") == 1.0  # from the cache, not run again
    assert _maps(runtime) == []


def test_the_fix_loop_records_the_map_running_the_cached_baseline_again(
    one_shot: Verdict, runtime: Runtime, project: Project
) -> None:
    verdict = _verify(runtime, project, SWAPPED, caller="fix-loop")
    assert verdict.status == "verified", verdict.summary
    assert "baseline_cached" not in verdict.timings and _recorded_map(runtime, verdict)
    assert len(_maps(runtime)) == 1
    note = verdict.early.testmap if verdict.early else None
    assert note is not None and note.recorded
    assert "fix loop" in note.reason and "ran again" in note.reason
    # a later one-shot job on the commit uses the map: its affected tests run first
    later = _verify(runtime, project, {"shapes/area.py": AREA.replace("side * side", "side**2")})
    assert later.early is not None and later.early.selection == "affected"
    assert later.early.ids == ["tests/test_area.py::test_square_area"]
    assert later.early.testmap is not None and not later.early.testmap.recorded
    assert later.early.testmap.reason.startswith("not needed")


def test_record_map_asks_verify_patch_for_the_map(
    runtime: Runtime,
    cli_env: dict[str, str],  # noqa: F811  # the fixture imported above
    tmp_path: Path,
) -> None:
    # a commit of its own, so no earlier job has recorded its map
    other = Project.create(tmp_path, "metres", {**FILES, "shapes/units.py": 'NAME = "m"\n'}, "m")
    patch = tmp_path / "fix.diff"
    patch.write_text(other.diff(SWAPPED), encoding="utf-8")
    before = len(_maps(runtime))
    verdict = _cli(cli_env, runtime, other, patch, "--record-map")
    assert verdict.status == "verified", verdict.summary
    assert _recorded_map(runtime, verdict) and len(_maps(runtime)) == before + 1
    note = verdict.early.testmap if verdict.early else None
    assert note is not None and note.recorded and "--record-map" in note.reason


PROFILED = (
    "import cProfile\n\nfrom shapes.area import square\n\n\n"
    "def test_profiled_square():\n    assert cProfile.Profile().runcall(square, 2) == 4\n"
)


def test_a_test_that_replaces_the_profile_function_is_left_out_and_always_selected(
    runtime: Runtime, tmp_path: Path
) -> None:
    # its own profiler replaces the map's hook (Pythons before 3.12): what it ran is unknown
    files = {**FILES, "tests/test_profiled.py": PROFILED}
    other = Project.create(tmp_path, "profiled", files, "a suite that profiles itself")
    first = _verify(runtime, other, SWAPPED)
    assert first.early is not None and first.early.testmap is not None
    assert first.early.testmap.recorded, first.early.testmap.reason
    perimeter = {"shapes/perimeter.py": "def square(side):\n    return side * 4\n"}
    verdict = _verify(runtime, other, perimeter, caller="one-shot")
    assert verdict.status == "verified", verdict.summary
    early = verdict.early
    assert early is not None and early.selection == "affected", early
    ran_perimeter = {
        "tests/test_perimeter.py::test_square_perimeter",
        "tests/test_perimeter.py::test_zero",
    }
    # from 3.12 the map uses sys.monitoring, which a profiler leaves alone
    own_hook = tuple(int(p) for p in verdict.images.environment.python.split(".")) < (3, 12)
    unknown = {"tests/test_profiled.py::test_profiled_square"} if own_hook else set()
    assert set(early.ids) == ran_perimeter | unknown
