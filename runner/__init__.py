"""fixrunner: prove or disprove a candidate fix in a hardened Docker sandbox.

The public API, imported lazily so that ``import runner`` (and the CLI's start-up)
pulls in neither the Docker SDK nor the web framework::

    from runner import FixJob, Runtime, verify
    verdict = verify(FixJob(...), Runtime.start(settings))
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# name -> module that defines it; resolved on first use.
_PUBLIC = {
    "verify": "runner.verify.pipeline",
    "Runtime": "runner.verify.pipeline",
    "FixJob": "runner.models",
    "Verdict": "runner.models",
    "Limits": "runner.models",
    "RunnerError": "runner.errors",
    "RunnerClient": "runner.client",
    "Settings": "runner.config",
    "load_settings": "runner.config",
}

__all__ = [
    "FixJob",
    "Limits",
    "RunnerClient",
    "RunnerError",
    "Runtime",
    "Settings",
    "Verdict",
    "__version__",
    "load_settings",
    "verify",
]

if TYPE_CHECKING:
    from runner.client import RunnerClient
    from runner.config import Settings, load_settings
    from runner.errors import RunnerError
    from runner.models import FixJob, Limits, Verdict
    from runner.verify.pipeline import Runtime, verify


def __getattr__(name: str) -> Any:
    module = _PUBLIC.get(name)
    if module is None:
        raise AttributeError(f"module 'runner' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
