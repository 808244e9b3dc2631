"""Signed callback deliveries: POST the verdict, retry with exponential backoff.

A fix job's callback carries its FixResult instead (:class:`FixCallbackBody`), signed
and retried the same way.

The body is signed with HMAC-SHA256 under the submitting token's callback secret
(header ``X-Runner-Signature: sha256=<hex>``). Every attempt is stored with the job;
a delivery still pending when the service stops resumes at the next start.

Each delivery resolves and checks the URL again (:mod:`runner.service.egress`) and
connects to a checked address. A failed attempt is recorded as one generic message,
so the delivery log never tells a closed port from a filtered one.
"""

from __future__ import annotations

import hashlib
import hmac
import threading
from collections.abc import Callable

import httpx
import structlog

from runner import __version__
from runner.config import ServiceSettings
from runner.service.egress import CallbackRefused, CallbackTarget, resolve_callback
from runner.service.metrics import ServiceMetrics
from runner.service.models import CallbackBody, Delivery, FixCallbackBody
from runner.service.records import JobStore, now

log = structlog.get_logger(__name__)

SIGNATURE_HEADER = "X-Runner-Signature"
# The one message of an attempt that got no HTTP answer, whatever the cause.
DELIVERY_FAILED = "delivery failed: no HTTP response from the callback URL"


def sign(body: bytes, secret: str) -> str:
    """The signature header's value for ``body``: ``sha256=<hex hmac>``."""
    digest = hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def backoff(attempt: int, base_s: float, max_s: float) -> float:
    """Delay before attempt ``attempt + 1``: base, 2·base, 4·base … capped at max."""
    return float(min(max_s, base_s * 2 ** (attempt - 1)))


class CallbackSender:
    """Delivers finished jobs' verdicts, one thread per delivery."""

    def __init__(
        self,
        store: JobStore,
        settings: ServiceSettings,
        secret_for: Callable[[str], str | None],
        metrics: ServiceMetrics,
    ) -> None:
        self._store = store
        self._settings = settings
        self._secret_for = secret_for
        self._metrics = metrics
        self._stop = threading.Event()
        self._threads: set[threading.Thread] = set()
        self._lock = threading.Lock()

    def deliver(self, job_id: str) -> None:
        """Start delivering the job's verdict in the background."""
        if self._stop.is_set():
            return  # left pending; the next start resumes it
        thread = threading.Thread(
            target=self._run, args=(job_id,), name=f"callback-{job_id}", daemon=True
        )
        with self._lock:
            self._threads.add(thread)
        thread.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        """Stop retrying; unfinished deliveries stay pending for the next start."""
        self._stop.set()
        with self._lock:
            threads = list(self._threads)
        for thread in threads:
            thread.join(timeout_s)

    def _run(self, job_id: str) -> None:
        try:
            structlog.contextvars.bind_contextvars(job_id=job_id)
            self._deliver(job_id)
        finally:
            with self._lock:
                self._threads.discard(threading.current_thread())

    def _deliver(self, job_id: str) -> None:
        record = self._store.get(job_id)
        if record is None or record.outcome is None or not record.submission.callback_url:
            return
        url = record.submission.callback_url
        body: CallbackBody | FixCallbackBody
        if record.result is not None:
            body = FixCallbackBody(id=record.id, status=record.status, result=record.result)
        else:
            assert record.verdict is not None
            body = CallbackBody(id=record.id, status=record.status, verdict=record.verdict)
        payload = body.model_dump_json().encode("utf-8")
        secret = self._secret_for(record.token)
        headers = {
            "Content-Type": "application/json",
            "User-Agent": f"fixrunner/{__version__}",
            "X-Runner-Job": record.id,
            "X-Runner-Kind": record.kind,
        }
        if secret:
            headers[SIGNATURE_HEADER] = sign(payload, secret)
        done = len(self._store.deliveries(job_id))
        limit = self._settings.callback_attempts
        # No proxies from the environment: the connection must go to the checked address.
        with httpx.Client(
            timeout=self._settings.callback_timeout_s, trust_env=False, follow_redirects=False
        ) as client:
            for attempt in range(done + 1, limit + 1):
                delivery = self._attempt(client, url, payload, headers, attempt)
                self._store.add_delivery(job_id, delivery)
                self._metrics.deliveries.labels(outcome="ok" if delivery.ok else "failed").inc()
                log.info(
                    "callback.attempt",
                    attempt=attempt,
                    ok=delivery.ok,
                    status_code=delivery.status_code,
                    error=delivery.error,
                )
                if delivery.ok:
                    self._store.set_callback_state(job_id, "delivered")
                    return
                if attempt < limit:
                    delay = backoff(
                        attempt,
                        self._settings.callback_backoff_s,
                        self._settings.callback_backoff_max_s,
                    )
                    if self._stop.wait(delay):
                        return  # shutting down: stays pending
        self._store.set_callback_state(job_id, "failed")
        log.warning("callback.gave_up", attempts=limit)

    def _attempt(
        self,
        client: httpx.Client,
        url: str,
        payload: bytes,
        headers: dict[str, str],
        attempt: int,
    ) -> Delivery:
        at = now()
        try:
            target = resolve_callback(url, self._settings.callback_allowlist)
        except CallbackRefused as exc:
            return Delivery(attempt=attempt, at=at, ok=False, error=f"delivery refused: {exc}")
        response = _post_pinned(
            client, target, payload, {**headers, "X-Runner-Delivery": str(attempt)}
        )
        if response is None:
            return Delivery(attempt=attempt, at=at, ok=False, error=DELIVERY_FAILED)
        ok = 200 <= response.status_code < 300
        return Delivery(
            attempt=attempt,
            at=at,
            ok=ok,
            status_code=response.status_code,
            error=None if ok else f"HTTP {response.status_code}",
        )


def _post_pinned(
    client: httpx.Client, target: CallbackTarget, payload: bytes, headers: dict[str, str]
) -> httpx.Response | None:
    """POST to the first checked address that answers; None when none does."""
    for address in target.addresses:
        try:
            return client.post(
                target.pinned_url(address),
                content=payload,
                headers={**headers, "Host": target.host_header},
                # TLS: the certificate is checked against the name, not the address.
                extensions={"sni_hostname": target.host},
            )
        except httpx.HTTPError as exc:
            # Only the operator's log tells why; the job's delivery record stays generic.
            log.info("callback.unreachable", address=str(address), error=type(exc).__name__)
    return None
