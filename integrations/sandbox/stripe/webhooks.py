"""Event delivery as Stripe does it: a POST of the event JSON to the webhook endpoint
with ``Stripe-Signature: t=<unix>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>``
(CONTRACTS.md "1. Stripe", Webhooks), signed afresh on every attempt, at least once,
unordered, retried with backoff until a 2xx.

One endpoint (the receiver's ``/webhooks/stripe`` unless set otherwise) with the
receiver's sandbox secret; the duplicate and out-of-order faults of
:class:`~integrations.sandbox.common.SandboxControls` apply. Every attempt is recorded
(``GET /_sandbox/deliveries``).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import httpx

from integrations.sandbox.common import SandboxControls, WebhookDelivery, WebhookSender

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


class StripeWebhookSender(WebhookSender):
    """The shared sender (one worker per URL, duplicates, reversal), but signing each
    attempt with the current time and recording every attempt."""

    def __init__(self, controls: SandboxControls, endpoint: Endpoint) -> None:
        super().__init__(controls, attempts=endpoint.attempts, timeout=10.0)
        self.endpoint = endpoint
        self.attempt_log: list[dict[str, Any]] = []
        self._log_lock = threading.Lock()

    def dispatch(self, events: list[dict[str, Any]]) -> int:
        """Queue the events of one change as one batch (the out-of-order fault reverses
        it); returns how many were queued (none without an endpoint, or unwanted)."""
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
        self.send(batch)
        return len(batch)

    def _deliver(self, client: httpx.Client, item: WebhookDelivery) -> int:
        endpoint = self.endpoint
        event = json.loads(item.body)
        status = 0
        for attempt in range(1, endpoint.attempts + 1):
            headers = {
                **item.headers,
                "Stripe-Signature": signature_header(item.body, endpoint.secret),
            }
            error = None
            try:
                status = client.post(item.url, content=item.body, headers=headers).status_code
            except httpx.HTTPError as exc:
                status, error = 0, type(exc).__name__
                log.warning("stripe webhook to %s failed: %s", item.url, error)
            self._record(event, item.url, attempt, status, error)
            if 200 <= status < 300:
                return status
            if attempt < endpoint.attempts:
                delay = endpoint.backoff_seconds * 2 ** (attempt - 1)
                time.sleep(min(delay, endpoint.max_backoff_seconds))
        return status

    def _record(
        self, event: dict[str, Any], url: str, attempt: int, status: int, error: str | None
    ) -> None:
        with self._log_lock:
            self.attempt_log.append(
                {
                    "event_id": event["id"],
                    "type": event["type"],
                    "url": url,
                    "attempt": attempt,
                    "status": status,
                    "error": error,
                    "ok": 200 <= status < 300,
                    "at": time.time(),
                }
            )

    def attempt_records(self, event_id: str | None = None) -> list[dict[str, Any]]:
        with self._log_lock:
            rows = list(self.attempt_log)
        return [r for r in rows if event_id is None or r["event_id"] == event_id]

    def pending(self) -> int:
        with self._cond:
            return self._pending

    def clear(self) -> None:
        with self._log_lock:
            self.attempt_log.clear()
