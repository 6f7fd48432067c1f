"""Webhook notifications as the Cloud API sends them (CONTRACTS.md Part 2 §4):

``POST <callback URL>`` with ``X-Hub-Signature-256: sha256=<hex HMAC-SHA256(app secret,
raw body)>`` and a body ``{"object": "whatsapp_business_account", "entry": [{"id": <WABA
id>, "changes": [{"field": "messages", "value": {"messaging_product": "whatsapp",
"metadata": {"display_phone_number", "phone_number_id"}, "statuses": [...]}}]}]}``; an
inbound message carries ``contacts`` and ``messages`` instead of ``statuses`` (shapes of
pywa's ``tests/data/updates``). Retried with backoff until a 2xx (Meta's own retry window
is unconfirmed: CONTRACTS.md Uncertainties #4). The subscription handshake (``GET
?hub.mode=subscribe&hub.verify_token&hub.challenge``) is :func:`verify_subscription`.
"""

from __future__ import annotations

import hashlib
import heapq
import hmac
import itertools
import json
import secrets
import threading
import time
from dataclasses import dataclass
from typing import Any

import httpx

from integrations.sandbox.common import SandboxControls, WebhookDelivery, WebhookSender
from integrations.sandbox.whatsapp.errors import status_error
from integrations.sandbox.whatsapp.keys import (
    WHATSAPP_BUSINESS_ACCOUNT_ID,
    WHATSAPP_DISPLAY_PHONE_NUMBER,
)

USER_AGENT = "facebookexternalua"


def hub_signature(app_secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(app_secret.encode(), body, hashlib.sha256).hexdigest()


def envelope(phone_number_id: str, value: dict[str, Any]) -> dict[str, Any]:
    return {
        "object": "whatsapp_business_account",
        "entry": [
            {
                "id": WHATSAPP_BUSINESS_ACCOUNT_ID,
                "changes": [
                    {
                        "value": {
                            "messaging_product": "whatsapp",
                            "metadata": {
                                "display_phone_number": WHATSAPP_DISPLAY_PHONE_NUMBER,
                                "phone_number_id": phone_number_id,
                            },
                            **value,
                        },
                        "field": "messages",
                    }
                ],
            }
        ],
    }


def status_object(
    message: dict[str, Any], status: str, *, error: dict[str, Any] | None = None
) -> dict[str, Any]:
    """One ``statuses[]`` item (pywa ``tests/data/updates/message_status.json``)."""
    item: dict[str, Any] = {
        "id": message["id"],
        "status": status,
        "timestamp": str(int(time.time())),
        "recipient_id": message["wa_id"],
    }
    if message.get("biz_opaque_callback_data"):
        item["biz_opaque_callback_data"] = message["biz_opaque_callback_data"]
    if status in ("sent", "delivered", "read"):
        category = "service" if message["type"] == "text" else "utility"
        item["conversation"] = {
            "id": hashlib.sha1(message["wa_id"].encode()).hexdigest()[:30],
            "origin": {"type": category},
        }
        if status == "sent":
            item["conversation"]["expiration_timestamp"] = str(int(time.time()) + 86400)
        item["pricing"] = {"billable": True, "pricing_model": "CBP", "category": category}
    if status == "failed":
        err = error or {"code": 131000}
        item["errors"] = [status_error(int(err["code"]), err.get("details"))]
    return item


def inbound_value(wa_id: str, name: str, text: str, at: float) -> tuple[dict[str, Any], str]:
    wamid = "wamid." + secrets.token_urlsafe(30)
    value = {
        "contacts": [{"profile": {"name": name}, "wa_id": wa_id}],
        "messages": [
            {
                "from": wa_id,
                "id": wamid,
                "timestamp": str(int(at)),
                "text": {"body": text},
                "type": "text",
            }
        ],
    }
    return value, wamid


@dataclass
class Endpoint:
    url: str | None
    app_secret: str
    verify_token: str


class SignedSender:
    """Signs each body once (the HMAC covers only the body) and hands it to the shared
    at-least-once :class:`WebhookSender` (per-URL order, retries with backoff)."""

    def __init__(self, controls: SandboxControls, endpoint: Endpoint, attempts: int) -> None:
        self.endpoint = endpoint
        self.sender = WebhookSender(controls, attempts=attempts)
        self.sent: list[dict[str, Any]] = []  # every queued notification (inspection)
        self._lock = threading.Lock()

    def send(self, payload: dict[str, Any]) -> bool:
        url = self.endpoint.url
        if not url:
            return False
        body = json.dumps(payload, ensure_ascii=False).encode("utf-8")
        headers = {
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            "X-Hub-Signature-256": hub_signature(self.endpoint.app_secret, body),
        }
        with self._lock:
            self.sent.append({"url": url, "payload": payload, "at": time.time()})
        self.sender.send([WebhookDelivery(url, body, headers)])
        return True

    def wait_idle(self, timeout: float) -> bool:
        return self.sender.wait_idle(timeout)

    def attempts(self) -> list[tuple[str, int]]:
        return list(self.sender.delivered)


class StatusScheduler:
    """Emits each accepted message's statuses one after another (``step_seconds`` apart)
    on one thread: ``sent``, ``delivered``, ``read`` by default, or ``sent`` then
    ``failed`` with the error Meta would report late (131047, 131026)."""

    def __init__(self, emit: Any, *, steps: list[str], step_seconds: float) -> None:
        self.emit = emit  # (wamid, status, error|None) -> None
        self.steps = steps
        self.step_seconds = step_seconds
        self._heap: list[tuple[float, int, str, str, dict | None]] = []
        self._seq = itertools.count()
        self._cond = threading.Condition()
        self._busy = 0
        self._stopped = False
        self._thread = threading.Thread(target=self._run, name="wa-statuses", daemon=True)
        self._thread.start()

    def schedule(self, wamid: str, error: dict | None) -> None:
        steps = ["failed"] if error else list(self.steps)
        now = time.monotonic()
        with self._cond:
            for index, status in enumerate(steps):
                due = now + index * self.step_seconds
                heapq.heappush(self._heap, (due, next(self._seq), wamid, status, error))
            self._cond.notify_all()

    def pending(self) -> int:
        with self._cond:
            return len(self._heap) + self._busy

    def wait_idle(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._heap or self._busy:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._cond.wait(remaining)
        return True

    def clear(self) -> None:
        with self._cond:
            self._heap.clear()
            self._cond.notify_all()

    def stop(self) -> None:
        with self._cond:
            self._stopped = True
            self._cond.notify_all()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._stopped:
                    if self._heap and self._heap[0][0] <= time.monotonic():
                        _, _, wamid, status, error = heapq.heappop(self._heap)
                        self._busy += 1
                        break
                    wait = self._heap[0][0] - time.monotonic() if self._heap else None
                    self._cond.wait(wait)
                else:
                    return
            try:
                self.emit(wamid, status, error)
            except Exception:  # a vanished message (reset) is skipped
                pass
            finally:
                with self._cond:
                    self._busy -= 1
                    self._cond.notify_all()


def verify_subscription(url: str, verify_token: str, timeout: float = 10.0) -> dict[str, Any]:
    """Meta's handshake against ``url``: GET with a random challenge; verified when the
    endpoint answers 200 with exactly the challenge."""
    challenge = str(secrets.randbelow(10**9))
    params = {"hub.mode": "subscribe", "hub.verify_token": verify_token,
              "hub.challenge": challenge}  # fmt: skip
    try:
        response = httpx.get(url, params=params, timeout=timeout)
    except httpx.HTTPError as exc:
        return {"verified": False, "status": 0, "error": type(exc).__name__}
    ok = response.status_code == 200 and response.text == challenge
    return {"verified": ok, "status": response.status_code}
