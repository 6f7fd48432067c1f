"""Event delivery as Stripe does it: a POST of the event JSON to the webhook endpoint
with ``Stripe-Signature: t=<unix>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>``
(CONTRACTS.md "1. Stripe", Webhooks), signed afresh on every attempt, at least once,
unordered, retried with backoff until a 2xx (a retry waits on a schedule while later
events go out, so order is not kept: the receiver must not rely on it).

One endpoint (the receiver's ``/webhooks/stripe`` unless set otherwise) with the
receiver's sandbox secret; the duplicate and out-of-order faults of
:class:`~integrations.sandbox.common.SandboxControls` apply (as with the shared
``WebhookSender``, which keeps per-endpoint order and so is not used here). Every
attempt is recorded (``GET /_sandbox/deliveries``).
"""

from __future__ import annotations

import hashlib
import heapq
import hmac
import itertools
import json
import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import httpx

from integrations.sandbox.common import SandboxControls, WebhookDelivery

log = logging.getLogger("sandbox.stripe.webhooks")

USER_AGENT = "Stripe/1.0 (+https://stripe.com/docs/webhooks)"


def signature_header(body: bytes, secret: str, timestamp: int | None = None) -> str:
    """``t=...,v1=...`` exactly as Stripe computes it (key: the whole ``whsec_`` string)."""
    t = int(time.time()) if timestamp is None else timestamp
    signed = f"{t}.".encode() + body
    digest = hmac.new(secret.encode("utf-8"), signed, hashlib.sha256).hexdigest()
    return f"t={t},v1={digest}"


@dataclass
class Endpoint:
    url: str | None
    secret: str
    enabled_events: list[str] = field(default_factory=lambda: ["*"])
    attempts: int = 5
    backoff_seconds: float = 0.5
    max_backoff_seconds: float = 8.0

    def wants(self, event_type: str) -> bool:
        return any(
            t == "*" or t == event_type or (t.endswith(".*") and event_type.startswith(t[:-1]))
            for t in self.enabled_events
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "url": self.url,
            "enabled_events": list(self.enabled_events),
            "attempts": self.attempts,
            "backoff_seconds": self.backoff_seconds,
            "max_backoff_seconds": self.max_backoff_seconds,
        }


class StripeWebhookSender:
    """Deliveries on one background thread with a schedule: a failed attempt (non-2xx or
    no answer) is retried after a backoff (``backoff_seconds`` doubling up to
    ``max_backoff_seconds``, ``attempts`` in all) while later events go out in the
    meantime, so a retried event arrives after newer ones, as with Stripe. Each attempt
    is signed with the current time and recorded."""

    def __init__(self, controls: SandboxControls, endpoint: Endpoint) -> None:
        self.controls = controls
        self.endpoint = endpoint
        self.attempt_log: list[dict[str, Any]] = []
        self._cond = threading.Condition()
        self._queue: list[tuple[float, int, WebhookDelivery, int]] = []  # heap
        self._seq = itertools.count()
        self._busy = 0
        self._thread: threading.Thread | None = None

    def dispatch(self, events: list[dict[str, Any]]) -> int:
        """Queue the events of one change as one batch (the out-of-order fault reverses
        it, the duplicate fault sends each twice); returns how many events were queued
        (none without an endpoint, or when the endpoint does not want them)."""
        endpoint = self.endpoint
        if not endpoint.url:
            return 0
        headers = {
            "Content-Type": "application/json; charset=utf-8",
            "User-Agent": USER_AGENT,
            "Cache-Control": "no-cache",
            "Accept": "*/*; q=0.5, application/xml",
        }
        batch = [
            WebhookDelivery(endpoint.url, json.dumps(event, indent=2).encode("utf-8"), headers)
            for event in events
            if endpoint.wants(event["type"])
        ]
        queued = len(batch)
        if self.controls.out_of_order_webhooks:
            batch.reverse()
        if self.controls.duplicate_webhooks:
            batch = [d for d in batch for _ in (0, 1)]
        now = time.monotonic()
        with self._cond:
            for item in batch:
                heapq.heappush(self._queue, (now, next(self._seq), item, 1))
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._run, name="stripe-webhooks", daemon=True
                )
                self._thread.start()
            self._cond.notify_all()
        return queued

    def _run(self) -> None:
        with httpx.Client(timeout=10.0) as client:
            while True:
                with self._cond:
                    while True:
                        if not self._queue:
                            self._thread = None  # a later dispatch starts a new one
                            self._cond.notify_all()
                            return
                        due, _, item, attempt = self._queue[0]
                        wait = due - time.monotonic()
                        if wait <= 0:
                            heapq.heappop(self._queue)
                            self._busy += 1
                            break
                        self._cond.wait(wait)
                try:
                    ok = self._attempt(client, item, attempt)
                finally:
                    with self._cond:
                        self._busy -= 1
                        if not ok and attempt < self.endpoint.attempts:
                            delay = min(
                                self.endpoint.backoff_seconds * 2 ** (attempt - 1),
                                self.endpoint.max_backoff_seconds,
                            )
                            heapq.heappush(
                                self._queue,
                                (time.monotonic() + delay, next(self._seq), item, attempt + 1),
                            )
                        self._cond.notify_all()

    def _attempt(self, client: httpx.Client, item: WebhookDelivery, attempt: int) -> bool:
        headers = {
            **item.headers,
            "Stripe-Signature": signature_header(item.body, self.endpoint.secret),
        }
        error = None
        try:
            status = client.post(item.url, content=item.body, headers=headers).status_code
        except httpx.HTTPError as exc:
            status, error = 0, type(exc).__name__
            log.warning("stripe webhook to %s failed: %s", item.url, error)
        event = json.loads(item.body)
        with self._cond:
            self.attempt_log.append(
                {
                    "event_id": event["id"],
                    "type": event["type"],
                    "url": item.url,
                    "attempt": attempt,
                    "status": status,
                    "error": error,
                    "ok": 200 <= status < 300,
                    "at": time.time(),
                }
            )
        return 200 <= status < 300

    def attempt_records(self, event_id: str | None = None) -> list[dict[str, Any]]:
        with self._cond:
            rows = list(self.attempt_log)
        return [r for r in rows if event_id is None or r["event_id"] == event_id]

    def pending(self) -> int:
        """Deliveries not finished yet (queued, in flight, or waiting for a retry)."""
        with self._cond:
            return len(self._queue) + self._busy

    def wait_idle(self, timeout: float = 30.0) -> bool:
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._queue or self._busy:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._cond.wait(remaining)
        return True

    def clear(self) -> None:
        """Forget queued retries and the attempt log (test reset)."""
        with self._cond:
            self._queue.clear()
            self.attempt_log.clear()
            self._cond.notify_all()
