"""The harness shipped into the sandbox: a pytest plugin, mounted read-only, never imported here.

The folder is mounted at :data:`MOUNT` and put on ``PYTHONPATH``; pytest loads the plugin
with ``-p fixrunner_harness``. Its module runs only inside the sandbox.
"""

from __future__ import annotations

from pathlib import Path

from runner.core.harness import PLUGIN

__all__ = ["HARNESS_SOURCE", "MOUNT", "PLUGIN"]

HARNESS_SOURCE = Path(__file__).resolve().parent
MOUNT = "/opt/fixrunner-harness"
