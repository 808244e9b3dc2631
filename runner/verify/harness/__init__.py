"""The harness shipped into the sandbox: a pytest plugin, mounted read-only, never imported here.

The folder is mounted at :data:`MOUNT` and put on ``PYTHONPATH``; pytest loads the plugin
with ``-p fixrunner_harness``. Its module runs only inside the sandbox.
"""

from __future__ import annotations

import hashlib
from functools import cache
from pathlib import Path

from runner.core.harness import PLUGIN

__all__ = ["HARNESS_SOURCE", "MOUNT", "PLUGIN", "harness_digest"]

HARNESS_SOURCE = Path(__file__).resolve().parent
MOUNT = "/opt/fixrunner-harness"


@cache
def harness_digest() -> str:
    """A digest of the harness's files: a run recorded by another harness is not reused."""
    digest = hashlib.sha256()
    for path in sorted(HARNESS_SOURCE.glob("*.py")):
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()
