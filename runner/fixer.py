"""Deprecated import path: the fix loop now lives in ``runner.fix.loop``.

Kept for one release so that code written against README's old examples still runs.
"""

from __future__ import annotations

import warnings

from runner.fix.loop import make_client, run_fix, write_outputs

warnings.warn(
    "runner.fixer is deprecated; import from runner.fix.loop instead",
    DeprecationWarning,
    stacklevel=2,
)

__all__ = ["make_client", "run_fix", "write_outputs"]
