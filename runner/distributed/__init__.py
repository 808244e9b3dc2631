"""Past one machine: Celery workers beside their own Docker engines, behind the service.

Modules: ``broker`` (the Celery app, queues and worker → service events),
``executor`` (the service side: publish, consume events, cancel, route, metrics),
``engines`` (private local Docker engines and copying images between engines).
The worker itself is :mod:`runner.distributed.worker`. Importing this package imports none of them.
"""

from __future__ import annotations

__all__: list[str] = []
