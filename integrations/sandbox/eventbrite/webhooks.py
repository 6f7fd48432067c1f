"""Eventbrite webhook deliveries and the sender that makes them.

A delivery carries no data and no signature ([E1] webhooks, [E5] ``webhook_to_object``):
``{"config": {"action", "user_id", "endpoint_url", "webhook_id"}, "api_url"}`` with the
``X-Eventbrite-Event`` and ``X-Eventbrite-Delivery`` headers. The receiver reads the object
back through ``api_url`` with its own token.

Deliveries to different endpoints go out concurrently, one worker per endpoint, so an
endpoint that hangs or is down delays only its own deliveries; deliveries to one endpoint
keep their order (what the ``out_of_order`` fault then reverses on purpose). The duplicate
and out-of-order faults and the retries with backoff are those of
:class:`~integrations.sandbox.common.WebhookSender`, whose interface this sender keeps
(``send``, ``wait_idle``, ``delivered``). Eventbrite does not document its retry schedule
(CONTRACTS.md, Uncertain 4): a few retries with backoff, as the shared sender does.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import deque
from typing import Any

import httpx

from integrations.sandbox.common import SandboxControls, WebhookDelivery, new_delivery_id

log = logging.getLogger("hub.sandbox.eventbrite")

USER_AGENT = "Eventbrite Hookshot 12345"
# The test ping's api_url placeholder ([E3] n8n's EventbriteTrigger test, [E1] webhooks).
TEST_PING_PATH = "{api-endpoint-to-fetch-object-details}/"


def delivery(hook: dict[str, Any], action: str, api_url: str) -> WebhookDelivery:
    body = {
        "config": {
            "action": action,
            "user_id": hook["user_id"],
            "endpoint_url": hook["endpoint_url"],
            "webhook_id": hook["id"],
        },
        "api_url": api_url,
    }
    headers = {
        "Content-Type": "application/json",
        "X-Eventbrite-Event": action,
        "X-Eventbrite-Delivery": new_delivery_id(),
        "User-Agent": USER_AGENT,
    }
    return WebhookDelivery(hook["endpoint_url"], json.dumps(body).encode(), headers)


def matches(hook: dict[str, Any], action: str, event_id: str | None) -> bool:
    """A webhook fires for its actions, and for its event only when it names one."""
    if action not in hook["actions"]:
        return False
    return not (hook.get("event_id") and event_id and hook["event_id"] != event_id)


class ConcurrentWebhookSender:
    """At-least-once delivery with one worker thread per endpoint URL."""

    def __init__(
        self, controls: SandboxControls, *, attempts: int = 4, timeout: float = 10.0
    ) -> None:
        self.controls = controls
        self.attempts = attempts
        self.timeout = timeout
        self._cond = threading.Condition()
        self._queues: dict[str, deque[WebhookDelivery]] = {}
        self._workers: dict[str, threading.Thread] = {}
        self._pending = 0
        self.delivered: list[tuple[str, int]] = []  # (url, status) for inspection

    def send(self, deliveries: list[WebhookDelivery]) -> None:
        if not deliveries:
            return
        batch = list(deliveries)
        if self.controls.out_of_order_webhooks:
            batch.reverse()
        if self.controls.duplicate_webhooks:
            batch = [d for d in batch for _ in (0, 1)]
        with self._cond:
            for item in batch:
                self._queues.setdefault(item.url, deque()).append(item)
                self._pending += 1
                worker = self._workers.get(item.url)
                if worker is None or not worker.is_alive():
                    worker = threading.Thread(
                        target=self._run, args=(item.url,), name="eventbrite-webhook", daemon=True
                    )
                    self._workers[item.url] = worker
                    worker.start()
            self._cond.notify_all()

    def wait_idle(self, timeout: float = 30.0) -> bool:
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._pending:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._cond.wait(remaining)
        return True

    def _run(self, url: str) -> None:
        with httpx.Client(timeout=self.timeout) as client:
            while True:
                with self._cond:
                    queue = self._queues.get(url)
                    if not queue:
                        # Nothing left: this worker ends (a later send starts a new one).
                        self._workers.pop(url, None)
                        self._queues.pop(url, None)
                        return
                    item = queue.popleft()
                status = self._deliver(client, item)
                with self._cond:
                    self.delivered.append((item.url, status))
                    self._pending -= 1
                    self._cond.notify_all()

    def _deliver(self, client: httpx.Client, item: WebhookDelivery) -> int:
        status = 0
        for attempt in range(self.attempts):
            try:
                status = client.post(item.url, content=item.body, headers=item.headers).status_code
            except httpx.HTTPError as exc:
                log.warning("webhook to %s failed: %s", item.url, type(exc).__name__)
                status = 0
            if 200 <= status < 300:
                return status
            if attempt < self.attempts - 1:
                time.sleep(min(0.2 * 2**attempt, 2.0))
        return status
