"""`runner serve`: the HTTP API in front of the pipeline.

Modules: ``models`` (request and response bodies, shared with ``runner.client``),
``store`` (durable SQLite job store), ``workers`` (in-process worker pool),
``callbacks`` (signed deliveries), ``auth`` (tokens), ``metrics``, ``core`` (the
service that wires them), ``app`` (FastAPI routes) and ``cli`` (`runner serve`,
`runner token …`). Importing this package imports none of them, so the CLI stays fast.
"""

from __future__ import annotations

__all__: list[str] = []
