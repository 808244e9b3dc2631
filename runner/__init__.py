"""fixrunner: prove or disprove a candidate fix in a hardened Docker sandbox."""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
