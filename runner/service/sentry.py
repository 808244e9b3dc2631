"""The Sentry-compatible ingest endpoints and the error-group API, as one router.

``POST /api/{project}/envelope/`` and ``/store/`` take what the Sentry SDK sends to a DSN
``http://KEY@host:port/PROJECT``: the key (``X-Sentry-Auth`` or ``?sentry_key=``) is the
project's credential, bodies may be gzip or deflate, and answers follow Sentry's (200
with the event id; 400 for a malformed body; 401 for an unknown project or key; 413
past the caps). ``GET /v1/groups`` and ``/v1/groups/{id}`` take a bearer token like
the rest of the API.
"""

from __future__ import annotations

import hmac
from typing import Annotated, Any

import anyio.to_thread
from fastapi import APIRouter, Depends, FastAPI, HTTPException, Path, Query, Request
from fastapi.responses import JSONResponse

from runner.ingest import EnvelopeError, SentryEvent, parse_auth, parse_envelope, parse_store_body
from runner.ingest.envelope import decompress
from runner.service.core import Service, store_path
from runner.service.groups import GroupDesk, GroupList, GroupStore, GroupView

__all__ = ["MAX_INFLATED_BYTES", "attach_groups", "ingest_router"]

MAX_INFLATED_BYTES = 20 * 2**20  # Sentry's own cap on a decompressed envelope
_PROJECT = r"^[A-Za-z0-9_-]{1,64}$"


def _desk(request: Request) -> GroupDesk:
    desk: GroupDesk | None = getattr(request.app.state, "groups", None)
    if desk is None:
        raise HTTPException(503, "error ingest is not running")
    return desk


def attach_groups(app: FastAPI, service: Service) -> None:
    """Open the group store beside the jobs and hook verified group fixes to their PRs."""
    desk = GroupDesk(service, GroupStore(store_path(service.settings)))
    app.state.groups = desk
    service.fix_hook = desk.after_fix


def _sentry_error(status: int, detail: str) -> JSONResponse:
    return JSONResponse({"detail": detail}, status_code=status)


async def _events(
    request: Request, project: str, kind: str
) -> tuple[GroupDesk, list[SentryEvent]] | JSONResponse:
    """Authenticate the project's key, inflate and parse the body."""
    desk = _desk(request)
    key = parse_auth(request.headers.get("x-sentry-auth"), request.query_params)
    settings = desk.project(project)
    if key is None:
        return _sentry_error(401, "missing authorization information")
    if settings is None or not hmac.compare_digest(
        key.encode(), settings.key.get_secret_value().encode()
    ):
        return _sentry_error(401, "unknown public key or project")
    body = await request.body()
    try:
        data = decompress(body, request.headers.get("content-encoding"), MAX_INFLATED_BYTES)
        events = parse_envelope(data) if kind == "envelope" else [parse_store_body(data)]
    except EnvelopeError as exc:
        return _sentry_error(exc.status, str(exc))
    return desk, events


async def _ingest(request: Request, project: str, kind: str) -> Any:
    parsed = await _events(request, project, kind)
    if isinstance(parsed, JSONResponse):
        return parsed
    desk, events = parsed
    for event in events:
        await anyio.to_thread.run_sync(desk.ingest, project, event)
    ids = [e.event_id for e in events if e.event_id]
    return {"id": ids[0]} if ids else {}


_INGEST_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {"description": "Malformed body, unsupported encoding."},
    401: {"description": "Missing credentials, unknown project or key."},
    413: {"description": "Body too large, inflated or not."},
}
_GROUP_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {"description": "Missing, unknown or revoked token."},
    404: {"description": "No such group."},
}

ProjectId = Annotated[str, Path(pattern=_PROJECT, description="The DSN's project id.")]


def ingest_router(token: Any) -> APIRouter:
    """The ingest and group routes; ``token`` is the API's bearer-token dependency."""
    router = APIRouter()

    @router.post("/api/{project}/envelope/", responses=_INGEST_RESPONSES, tags=["ingest"])
    async def envelope(request: Request, project: ProjectId) -> Any:
        """Sentry envelope endpoint: error events are grouped; other items are accepted."""
        return await _ingest(request, project, "envelope")

    @router.post("/api/{project}/store/", responses=_INGEST_RESPONSES, tags=["ingest"])
    async def store(request: Request, project: ProjectId) -> Any:
        """Sentry store endpoint (older SDKs): one event as JSON."""
        return await _ingest(request, project, "store")

    auth = [Depends(token)]

    @router.get(
        "/v1/groups", response_model=GroupList, responses=_GROUP_RESPONSES, dependencies=auth
    )
    def list_groups(
        request: Request, limit: Annotated[int, Query(ge=1, le=1000)] = 50
    ) -> GroupList:
        """Error groups, most recently seen first, with their fix jobs and PRs."""
        desk = _desk(request)
        return GroupList(groups=[desk.view(row) for row in desk.store.list(limit)])

    @router.get(
        "/v1/groups/{group_id}",
        response_model=GroupView,
        responses=_GROUP_RESPONSES,
        dependencies=auth,
    )
    def get_group(request: Request, group_id: str) -> GroupView:
        """One error group: events seen, its fix job, the PR's URL and state."""
        desk = _desk(request)
        row = desk.store.get(group_id)
        if row is None:
            raise HTTPException(404, f"no group {group_id}")
        return desk.view(row)

    return router
