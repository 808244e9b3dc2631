"""Python client of the runner service, for ingest services.

    with RunnerClient("http://127.0.0.1:8088", token) as client:
        ref = client.submit(FixJob(repo=..., patch=...), idempotency_key="err-123")
        verdict = client.wait(ref.id, timeout=600)
        fix = client.submit_fix(ErrorReport.from_text(text), repo=..., base="abc123")
        result = client.wait_fix(fix.id, timeout=1800)  # a FixResult

Errors are typed and all derive from :class:`runner.errors.RunnerError`. Callback
receivers check a delivery with :func:`verify_signature`.
"""

from __future__ import annotations

import builtins
import hashlib
import hmac
import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import httpx

from runner.errors import RunnerError
from runner.fix.errorreport import ErrorReport
from runner.fix.result import FixResult
from runner.models import FixJob, Verdict
from runner.service.models import (
    FINISHED,
    FieldError,
    FixList,
    FixSubmission,
    FixView,
    JobList,
    JobRef,
    JobStatus,
    JobSubmission,
    JobView,
)

__all__ = [
    "AuthError",
    "ConflictError",
    "FixesUnavailableError",
    "NotFoundError",
    "OverloadedError",
    "PayloadTooLargeError",
    "RunnerClient",
    "ServiceError",
    "ValidationError",
    "WaitTimeoutError",
    "verify_signature",
]


_View = TypeVar("_View", JobView, FixView)


class ServiceError(RunnerError):
    """The service answered with an error; ``status_code`` and ``detail`` say which."""

    def __init__(self, message: str, status_code: int | None = None, detail: Any = None) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.detail = detail


class AuthError(ServiceError, PermissionError):
    """401: the token is missing, unknown or revoked."""


class NotFoundError(ServiceError, LookupError):
    """404: no such job (for this token)."""


class ConflictError(ServiceError):
    """409: the Idempotency-Key was used for a different job."""


class PayloadTooLargeError(ServiceError, ValueError):
    """413: the request body or the patch is over the service's limit."""


class ValidationError(ServiceError, ValueError):
    """422: invalid fields or a refused repository; ``errors`` has one entry per field."""

    def __init__(self, message: str, errors: list[FieldError]) -> None:
        super().__init__(message, 422, [e.model_dump() for e in errors])
        self.errors = errors


class OverloadedError(ServiceError):
    """429 (queue full) or 503 (shutting down); retry after ``retry_after`` seconds."""

    def __init__(self, message: str, status_code: int, retry_after: float | None) -> None:
        super().__init__(message, status_code)
        self.retry_after = retry_after


class FixesUnavailableError(ServiceError):
    """501/503 on /v1/fixes: the service cannot run fixes (no API key, Celery executor).

    ``reason`` is the service's X-Runner-Refusal: ``fixer_not_configured`` or
    ``fixes_not_supported``. Retrying does not help until the service is reconfigured.
    """

    def __init__(self, message: str, status_code: int, reason: str) -> None:
        super().__init__(message, status_code)
        self.reason = reason


class WaitTimeoutError(RunnerError, TimeoutError):
    """wait() ran out of time before the job finished."""


def verify_signature(body: bytes, header: str | None, secret: str) -> bool:
    """True when ``header`` (X-Runner-Signature) is the HMAC-SHA256 of ``body`` under ``secret``."""
    if not header or not header.startswith("sha256="):
        return False
    expected = hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(header[len("sha256=") :].encode(), expected.encode())


class RunnerClient:
    """A synchronous client of the runner service's /v1 API."""

    def __init__(
        self,
        base_url: str,
        token: str,
        timeout: float = 30.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self._http = httpx.Client(
            base_url=base_url.rstrip("/"),
            headers={"Authorization": f"Bearer {token}"},
            timeout=timeout,
            transport=transport,
        )

    def __enter__(self) -> RunnerClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    def submit(
        self, job: FixJob, callback_url: str | None = None, idempotency_key: str | None = None
    ) -> JobRef:
        """Queue a job; the same ``idempotency_key`` returns the job it first made."""
        body = JobSubmission.model_validate({**job.model_dump(), "callback_url": callback_url})
        return self._submit("/v1/jobs", body, idempotency_key)

    def get(self, job_id: str) -> JobView:
        """The job's status, deliveries and (when finished) verdict."""
        return JobView.model_validate_json(self._request("GET", f"/v1/jobs/{job_id}").content)

    def list(self, status: JobStatus | None = None, limit: int = 50) -> list[JobView]:
        """This token's jobs, newest first."""
        params: dict[str, Any] = {"limit": limit}
        if status:
            params["status"] = status
        response = self._request("GET", "/v1/jobs", params=params)
        return JobList.model_validate_json(response.content).jobs

    def wait(
        self, job_id: str, timeout: float = 900.0, poll_s: float = 0.5, max_poll_s: float = 5.0
    ) -> Verdict:
        """Poll (backing off from ``poll_s`` to ``max_poll_s``) until the job has a verdict."""
        view = self._poll(
            lambda: self.get(job_id),
            lambda v: v.verdict,
            f"job {job_id}",
            timeout,
            poll_s,
            max_poll_s,
        )
        assert view.verdict is not None
        return view.verdict

    def _submit(self, path: str, body: Any, idempotency_key: str | None) -> JobRef:
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        response = self._request(
            "POST",
            path,
            content=body.model_dump_json(exclude_none=True),
            headers={**headers, "Content-Type": "application/json"},
        )
        return JobRef.model_validate_json(response.content)

    @staticmethod
    def _poll(
        fetch: Callable[[], _View],
        outcome: Callable[[_View], object],
        what: str,
        timeout: float,
        poll_s: float,
        max_poll_s: float,
    ) -> _View:
        # Back off from poll_s to max_poll_s until the view is finished with an outcome.
        deadline = time.monotonic() + timeout
        delay = poll_s
        while True:
            view = fetch()
            if view.status in FINISHED and outcome(view) is not None:
                return view
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise WaitTimeoutError(f"{what} is still {view.status} after {timeout}s")
            time.sleep(min(delay, remaining))
            delay = min(max_poll_s, delay * 1.5)

    def logs(self, job_id: str, follow: bool = False) -> str:
        """The job's log text; with ``follow``, read until the job ends."""
        return "".join(self.iter_logs(job_id, follow=follow))

    def iter_logs(self, job_id: str, follow: bool = True) -> Iterator[str]:
        """The job's log as it is written, until the job ends."""
        return self._stream(f"/v1/jobs/{job_id}/logs", follow)

    def _stream(self, path: str, follow: bool) -> Iterator[str]:
        params = {"follow": "true" if follow else "false"}
        with self._http.stream("GET", path, params=params, timeout=None) as response:
            if response.status_code >= 400:
                response.read()
                _raise_for(response)
            yield from response.iter_text()

    def cancel(self, job_id: str) -> JobView:
        """Cancel the job (a running job's container is killed); returns its state."""
        return JobView.model_validate_json(self._request("DELETE", f"/v1/jobs/{job_id}").content)

    # ------------------------------------------------------------------ fixes

    def submit_fix(
        self,
        report: ErrorReport,
        repo: str,
        base: str = "HEAD",
        *,
        max_attempts: int | None = None,
        callback_url: str | None = None,
        idempotency_key: str | None = None,
    ) -> JobRef:
        """Queue a fix job for an error report; the service's own API key is used."""
        body = FixSubmission(
            repo=repo,
            base=base,
            error=report,
            max_attempts=max_attempts,
            callback_url=callback_url,
        )
        return self._submit("/v1/fixes", body, idempotency_key)

    def get_fix(self, fix_id: str) -> FixView:
        """The fix job's status, deliveries and (when finished) FixResult."""
        return FixView.model_validate_json(self._request("GET", f"/v1/fixes/{fix_id}").content)

    def list_fixes(
        self, status: JobStatus | None = None, limit: int = 50
    ) -> builtins.list[FixView]:
        """This token's fix jobs, newest first."""
        params: dict[str, Any] = {"limit": limit}
        if status:
            params["status"] = status
        response = self._request("GET", "/v1/fixes", params=params)
        return FixList.model_validate_json(response.content).fixes

    def wait_fix(
        self, fix_id: str, timeout: float = 1800.0, poll_s: float = 1.0, max_poll_s: float = 10.0
    ) -> FixResult:
        """Poll (backing off) until the fix job has its FixResult."""
        view = self._poll(
            lambda: self.get_fix(fix_id),
            lambda v: v.result,
            f"fix {fix_id}",
            timeout,
            poll_s,
            max_poll_s,
        )
        assert view.result is not None
        return view.result

    def fix_logs(self, fix_id: str, follow: bool = False) -> str:
        """The fix's log text (progress, attempt outcomes, phase logs)."""
        return "".join(self._stream(f"/v1/fixes/{fix_id}/logs", follow))

    def cancel_fix(self, fix_id: str) -> FixView:
        """Cancel the fix job (a running sandbox is killed); returns its state."""
        return FixView.model_validate_json(self._request("DELETE", f"/v1/fixes/{fix_id}").content)

    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise ServiceError(f"{method} {path}: {exc}") from exc
        if response.status_code >= 400:
            _raise_for(response)
        return response


def _raise_for(response: httpx.Response) -> None:
    code = response.status_code
    try:
        detail = response.json().get("detail")
    except ValueError:
        detail = response.text
    message = detail if isinstance(detail, str) else f"HTTP {code}"
    if code == 401:
        raise AuthError(str(message), code, detail)
    if code == 404:
        raise NotFoundError(str(message), code, detail)
    if code == 409:
        raise ConflictError(str(message), code, detail)
    if code == 413:
        raise PayloadTooLargeError(str(message), code, detail)
    refusal = response.headers.get("X-Runner-Refusal")
    if code in (501, 503) and refusal:
        raise FixesUnavailableError(str(message), code, refusal)
    if code == 422:
        errors = [FieldError.model_validate(e) for e in detail] if isinstance(detail, list) else []
        summary = "; ".join(f"{'.'.join(map(str, e.loc))}: {e.msg}" for e in errors)
        raise ValidationError(summary or str(message), errors)
    if code in (429, 503):
        retry = response.headers.get("Retry-After")
        retry_after = float(retry) if retry and retry.replace(".", "", 1).isdigit() else None
        raise OverloadedError(str(message), code, retry_after)
    raise ServiceError(str(message), code, detail)
