"""The HTTP API: FastAPI routes over a :class:`~runner.service.core.Service`.

Bearer-token auth on everything but the health checks and the OpenAPI document.
Refusals map to status codes here: 401, 404, 409, 413, 422 (with field errors), 429
(with Retry-After), 501 and 503 (fixes unavailable: X-Runner-Refusal names why).
/v1/fixes mirrors /v1/jobs for fix jobs: an error report in, a FixResult out.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Any

import anyio.to_thread
import structlog
from fastapi import Depends, FastAPI, Header, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from runner import __version__
from runner.service.admission import NotAllowed, QueueFull, ServiceRefusal
from runner.service.auth import BearerFirst
from runner.service.core import Service
from runner.service.joblogs import follow_logs
from runner.service.metrics import CONTENT_TYPE
from runner.service.models import (
    FINISHED,
    ErrorBody,
    FixList,
    FixSubmission,
    FixView,
    JobList,
    JobRef,
    JobStatus,
    JobSubmission,
    JobView,
    Readiness,
)
from runner.service.sentry import attach_groups, ingest_router

log = structlog.get_logger(__name__)

_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {
        "model": ErrorBody,
        "description": "Missing, unknown or revoked token (checked before the body is read).",
    },
    404: {"model": ErrorBody, "description": "No such job for this token."},
}
_SUBMIT_ERRORS: dict[int | str, dict[str, Any]] = {
    **_ERRORS,
    200: {"model": JobRef, "description": "Existing job with this Idempotency-Key."},
    409: {"model": ErrorBody, "description": "Idempotency-Key reused for a different job."},
    413: {"model": ErrorBody, "description": "Body or patch too large."},
    422: {
        "model": ErrorBody,
        "description": "Invalid fields, repository not allowed, or a callback_url that "
        "resolves to a non-public address not in callback_allowlist.",
    },
    429: {"model": ErrorBody, "description": "Queue full; see Retry-After."},
    503: {"model": ErrorBody, "description": "Shutting down."},
}
_FIX_SUBMIT_ERRORS: dict[int | str, dict[str, Any]] = {
    **_SUBMIT_ERRORS,
    200: {"model": JobRef, "description": "Existing fix with this Idempotency-Key."},
    413: {"model": ErrorBody, "description": "Body or traceback too large."},
    422: {
        "model": ErrorBody,
        "description": "Invalid fields, repository or callback_url not allowed, "
        "max_attempts over the limit.",
    },
    501: {
        "model": ErrorBody,
        "description": "Fixes run on the local executor only (X-Runner-Refusal: "
        "fixes_not_supported).",
    },
    503: {
        "model": ErrorBody,
        "description": "Shutting down, or no Anthropic API key configured (X-Runner-Refusal: "
        "fixer_not_configured).",
    },
}
_FIX_ERRORS: dict[int | str, dict[str, Any]] = {
    **_ERRORS,
    404: {"model": ErrorBody, "description": "No such fix for this token."},
}

_bearer = HTTPBearer(auto_error=False, description="A token from `runner token create`.")


def _service(request: Request) -> Service:
    service: Service = request.app.state.service
    return service


def _token(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> str:
    if credentials is None:
        raise _Unauthorized("missing bearer token")
    name = _service(request).tokens.authenticate(credentials.credentials)
    if name is None:
        raise _Unauthorized("unknown or revoked token")
    request.scope.setdefault("state", {})["token"] = name
    return name


Token = Annotated[str, Depends(_token)]
ServiceDep = Annotated[Service, Depends(_service)]


class _Unauthorized(Exception):
    pass


def create_app(service: Service | None = None) -> FastAPI:
    """The ASGI app; ``service`` is started and stopped with the app's lifespan."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if service is not None:
            await anyio.to_thread.run_sync(service.start)
        yield
        if service is not None:
            await anyio.to_thread.run_sync(service.stop)

    app = FastAPI(
        title="fixrunner",
        version=__version__,
        summary="Verify candidate fixes in a sandbox: jobs in, verdicts out.",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
    )
    app.state.service = service
    _handlers(app)
    _routes(app)
    app.include_router(ingest_router(_token))
    if service is not None:
        attach_groups(app, service)
    if service is not None:
        app.add_middleware(BodyLimit, max_bytes=service.settings.service.max_body_bytes)
        # Outside BodyLimit and the routes: no token, no body read, no 413 nor 422.
        app.add_middleware(BearerFirst, tokens=service.tokens)
    app.add_middleware(RequestLog)
    return app


def _handlers(app: FastAPI) -> None:
    @app.exception_handler(_Unauthorized)
    async def unauthorized(request: Request, exc: _Unauthorized) -> JSONResponse:
        return JSONResponse(
            {"detail": str(exc)}, status_code=401, headers={"WWW-Authenticate": "Bearer"}
        )

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        # pydantic's errors without 'input' (it may hold the whole patch) and 'ctx'.
        errors = [
            {"loc": list(e.get("loc", ())), "msg": str(e.get("msg")), "type": str(e.get("type"))}
            for e in exc.errors()
        ]
        return JSONResponse({"detail": errors}, status_code=422)

    @app.exception_handler(ServiceRefusal)
    async def refused(request: Request, exc: ServiceRefusal) -> JSONResponse:
        headers = {}
        detail: Any = str(exc)
        if isinstance(exc, QueueFull):
            headers["Retry-After"] = str(exc.retry_after)
        if exc.code:
            headers["X-Runner-Refusal"] = exc.code
        if isinstance(exc, NotAllowed) and exc.field_name:
            detail = [{"loc": ["body", exc.field_name], "msg": str(exc), "type": "not_allowed"}]
        return JSONResponse({"detail": detail}, status_code=exc.status, headers=headers)


def _routes(app: FastAPI) -> None:
    @app.post("/v1/jobs", status_code=202, response_model=JobRef, responses=_SUBMIT_ERRORS)
    def submit(
        submission: JobSubmission,
        response: Response,
        service: ServiceDep,
        token: Token,
        idempotency_key: Annotated[
            str | None, Header(max_length=200, description="Same key → the same job.")
        ] = None,
    ) -> JobRef:
        """Queue a fix job; 202 with its id (200 with the existing job for a reused key)."""
        record, created = service.submit(token, idempotency_key, submission)
        if not created:
            response.status_code = 200
        return JobRef(id=record.id, status=record.status)

    @app.get("/v1/jobs", response_model=JobList, responses=_ERRORS)
    def list_jobs(
        service: ServiceDep,
        token: Token,
        status: JobStatus | None = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    ) -> JobList:
        """This token's jobs, newest first."""
        return JobList(jobs=service.list(token, status, limit))

    @app.get("/v1/jobs/{job_id}", response_model=JobView, responses=_ERRORS)
    def get_job(job_id: str, service: ServiceDep, token: Token) -> JobView:
        """A job's status, callback deliveries and, once finished, its verdict."""
        return service.view(service.job(token, job_id))

    @app.get(
        "/v1/jobs/{job_id}/logs",
        response_class=StreamingResponse,
        responses={**_ERRORS, 200: {"content": {"text/plain": {}}, "description": "Log text."}},
    )
    def job_logs(
        job_id: str,
        service: ServiceDep,
        token: Token,
        follow: Annotated[bool, Query(description="Keep streaming until the job ends.")] = True,
    ) -> StreamingResponse:
        """The job's progress lines and phase logs; streamed while it runs."""
        service.job(token, job_id)
        folder = service.jobs_dir / job_id

        def finished() -> bool:
            record = service.store.get(job_id)
            return record is None or record.status in FINISHED or not service.accepting

        return StreamingResponse(
            follow_logs(folder, finished, follow), media_type="text/plain; charset=utf-8"
        )

    @app.delete("/v1/jobs/{job_id}", response_model=JobView, responses=_ERRORS)
    def cancel_job(job_id: str, service: ServiceDep, token: Token) -> JobView:
        """Cancel a job: a queued one at once; a running one's container is killed."""
        return service.view(service.cancel(token, job_id))

    @app.post("/v1/fixes", status_code=202, response_model=JobRef, responses=_FIX_SUBMIT_ERRORS)
    def submit_fix(
        submission: FixSubmission,
        response: Response,
        service: ServiceDep,
        token: Token,
        idempotency_key: Annotated[
            str | None, Header(max_length=200, description="Same key → the same fix.")
        ] = None,
    ) -> JobRef:
        """Queue a fix job (error report → Claude → verified patch); 202 with its id."""
        record, created = service.submit_fix(token, idempotency_key, submission)
        if not created:
            response.status_code = 200
        return JobRef(id=record.id, status=record.status)

    @app.get("/v1/fixes", response_model=FixList, responses=_ERRORS)
    def list_fixes(
        service: ServiceDep,
        token: Token,
        status: JobStatus | None = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    ) -> FixList:
        """This token's fix jobs, newest first."""
        return FixList(fixes=service.list_fixes(token, status, limit))

    @app.get("/v1/fixes/{fix_id}", response_model=FixView, responses=_FIX_ERRORS)
    def get_fix(fix_id: str, service: ServiceDep, token: Token) -> FixView:
        """A fix job's status, callback deliveries and, once finished, its FixResult."""
        return service.fix_view(service.job(token, fix_id, "fix"))

    @app.get(
        "/v1/fixes/{fix_id}/logs",
        response_class=StreamingResponse,
        responses={**_FIX_ERRORS, 200: {"content": {"text/plain": {}}, "description": "Log text."}},
    )
    def fix_logs(
        fix_id: str,
        service: ServiceDep,
        token: Token,
        follow: Annotated[bool, Query(description="Keep streaming until the fix ends.")] = True,
    ) -> StreamingResponse:
        """The fix's progress lines, attempt outcomes and its attempts' phase logs."""
        service.job(token, fix_id, "fix")
        jobs_dir = service.jobs_dir

        def finished() -> bool:
            record = service.store.get(fix_id)
            return record is None or record.status in FINISHED or not service.accepting

        def attempt_logs() -> list[Path]:
            return sorted(p / "logs" for p in jobs_dir.glob(f"{fix_id}-a*"))

        return StreamingResponse(
            follow_logs(jobs_dir / fix_id, finished, follow, log_dirs=attempt_logs),
            media_type="text/plain; charset=utf-8",
        )

    @app.delete("/v1/fixes/{fix_id}", response_model=FixView, responses=_FIX_ERRORS)
    def cancel_fix(fix_id: str, service: ServiceDep, token: Token) -> FixView:
        """Cancel a fix job: a queued one at once; a running one's sandbox is killed."""
        return service.fix_view(service.cancel(token, fix_id, "fix"))

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        """The process is up."""
        return {"status": "ok"}

    @app.get("/readyz", response_model=Readiness, responses={503: {"model": Readiness}})
    def readyz(service: ServiceDep, response: Response) -> Readiness:
        """Engine reachable, base image present, store writable."""
        readiness = service.readiness()
        if not readiness.ready:
            response.status_code = 503
        return readiness

    @app.get(
        "/metrics",
        response_class=Response,
        responses={**_ERRORS, 200: {"content": {"text/plain": {}}, "description": "Metrics."}},
    )
    def metrics(service: ServiceDep, token: Token) -> Response:
        """Prometheus text: queue depth, running jobs, verdicts, durations."""
        return Response(service.metrics.render(), media_type=CONTENT_TYPE)


class BodyLimit:
    """413 for a request body over ``max_bytes``, declared or streamed."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "DELETE"):
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers", []))
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await _too_large(send, self.max_bytes)
            return
        # Read the body here (bounded), then replay it: a chunked body has no length.
        chunks: list[bytes] = []
        total = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                break
            chunks.append(message.get("body", b""))
            total += len(chunks[-1])
            if total > self.max_bytes:
                await _too_large(send, self.max_bytes)
                return
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


async def _too_large(send: Send, limit: int) -> None:
    body = json.dumps({"detail": f"request body is larger than {limit} bytes"}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [(b"content-type", b"application/json"), (b"connection", b"close")],
        }
    )
    await send({"type": "http.response.body", "body": body})


class RequestLog:
    """One log line per request: method, path, status, milliseconds, token name. No headers."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.monotonic()
        status = 500

        async def capture(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, capture)
        finally:
            log.info(
                "http.request",
                method=scope["method"],
                path=scope["path"],
                status=status,
                ms=round((time.monotonic() - started) * 1000, 1),
                token=scope.get("state", {}).get("token"),
            )


def openapi_document() -> dict[str, Any]:
    """The OpenAPI document of the API (as committed in docs/openapi.json)."""
    return create_app().openapi()


def openapi_text() -> str:
    """The exact text of docs/openapi.json."""
    return json.dumps(openapi_document(), indent=2, sort_keys=True) + "\n"
