"""Eventbrite webhook deliveries and the sender that makes them.

A delivery carries no data and no signature ([E1] webhooks, [E5] ``webhook_to_object``):
``{"config": {"action", "user_id", "endpoint_url", "webhook_id"}, "api_url"}`` with the
``X-Eventbrite-Event`` and ``X-Eventbrite-Delivery`` headers. The receiver reads the object
back through ``api_url`` with its own token.

They are sent by the shared :class:`~integrations.sandbox.common.WebhookSender` (one
worker per endpoint, so an endpoint that hangs delays only its own deliveries; the
duplicate and out-of-order faults; retries with backoff). Eventbrite does not document its
retry schedule (CONTRACTS.md, Uncertain 4): a few retries with backoff.
"""

from __future__ import annotations

import json
from typing import Any

from integrations.sandbox.common import WebhookDelivery, new_delivery_id

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
