from __future__ import annotations

from pathlib import Path

import docker
import pytest

from runner.cli.main import runner_main
from runner.config import ImageSettings, Settings
from runner.environments.images import (
    LABEL_RECIPE_HASH,
    BaseImage,
    base_tag,
    ensure_base_image,
    host_debian_mirror,
    recipe_hash,
)


def test_recipe_hash_changes_with_the_recipe_settings() -> None:
    offline = ImageSettings()
    assert recipe_hash(offline) != recipe_hash(ImageSettings(debian_suite="trixie"))
    assert recipe_hash(offline) == recipe_hash(ImageSettings())
    assert recipe_hash(ImageSettings(recipe="registry", python="3.12")) != recipe_hash(
        ImageSettings(recipe="registry", python="3.11")
    )


def test_base_tag_names_python_and_hash() -> None:
    assert base_tag(ImageSettings()).startswith("fixrunner-base:py3.11-")


def test_host_mirror_read_from_deb822_sources(tmp_path: Path) -> None:
    sources = tmp_path / "debian.sources"
    sources.write_text(
        "Types: deb\nURIs: http://mirror.example/debian\nSuites: bookworm bookworm-updates\n\n"
        "Types: deb\nURIs: http://mirror.example/debian-security\nSuites: bookworm-security\n"
    )
    assert host_debian_mirror([sources]) == "http://mirror.example/debian"


def test_host_mirror_read_from_one_line_sources(tmp_path: Path) -> None:
    sources = tmp_path / "sources.list"
    sources.write_text("# comment\ndeb [arch=amd64] http://m.example/debian bookworm main\n")
    assert host_debian_mirror([sources]) == "http://m.example/debian"


@pytest.mark.docker
def test_second_build_builds_nothing(
    docker_client: docker.DockerClient, base_image: BaseImage, settings: Settings
) -> None:
    again = ensure_base_image(docker_client, settings)
    assert not again.built
    assert again.id == base_image.id
    labels = docker_client.images.get(again.tag).labels
    assert labels[LABEL_RECIPE_HASH] == recipe_hash(settings.images)


@pytest.mark.docker
def test_images_build_command_twice_reports_nothing_built(
    base_image: BaseImage, capsys: pytest.CaptureFixture[str]
) -> None:
    assert runner_main(["images", "build", "--quiet"]) == 0
    assert runner_main(["images", "build", "--quiet"]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert out[-1].endswith("up to date, nothing built")
    assert base_image.tag in out[-1]
