"""Which files describe a checkout's environment: a patch that changes one needs its own.

Pure: paths in, the ones the environment's description reads out. Every file detection,
resolution and the Python chooser read is here (the project's manifests, requirement and
lock files, tool configurations, CI workflows), so a patch that adds a test dependency is
verified in an environment that has it.
"""

from __future__ import annotations

from collections.abc import Iterable

from runner.core.paths import glob_match
from runner.environments.interpreters import EVIDENCE_FILES, WORKFLOWS_DIR

__all__ = ["ENVIRONMENT_GLOBS", "environment_files"]

# Root files (anchored: a nested setup.py of a fixture describes nothing), then requirement
# and constraint files at any depth (tests/requirements.txt, requirements/test.in).
ENVIRONMENT_GLOBS: tuple[str, ...] = (
    *(f"/{name}" for name in EVIDENCE_FILES),
    "/hatch.toml",
    "/Pipfile",
    "/Pipfile.lock",
    "/poetry.lock",
    "/pdm.lock",
    "/uv.lock",
    f"/{WORKFLOWS_DIR}/*",
    "*requirements*.txt",
    "*requirements*.in",
    "/requirements/**",
    "constraints*.txt",
)


def environment_files(paths: Iterable[str]) -> list[str]:
    """The paths among ``paths`` that the environment's description reads, sorted."""
    return sorted({p for p in paths if glob_match(p, ENVIRONMENT_GLOBS)})
