"""Webhook subscriptions (current API: ``/v2/webhooks/create``, ``/v2/webhooks/get``,
``/v1/webhooks/list``, ``/v1/webhooks/delete``) and deliveries.

Payloads are ``{"type", "data"}`` as the current document's ``webhooks`` section describes
them (current names: ``id``, ``event_id``; a guest payload carries its ``event``); each one
is projected onto and validated against that schema before it is queued.

Luma returns a ``secret`` per webhook but documents no signature header or algorithm
(contract Uncertain #6), so deliveries carry no signature: a receiver must treat them as
hints and re-read the guest through the API. Nothing here is shared with the hub's code.
"""

from __future__ import annotations

import json
import logging
import secrets
import string
from collections.abc import Callable
from typing import Any

from integrations.sandbox.common import SandboxStore, WebhookDelivery, WebhookSender
from integrations.sandbox.luma.openapi import contract, project, schema_errors

log = logging.getLogger("sandbox.luma.webhooks")

_ALNUM = string.ascii_letters + string.digits
USER_AGENT = "Luma-Webhooks (sandbox)"


class InvalidWebhookPayload(RuntimeError):
    """The emulator built a payload its own contract refuses (an emulator bug)."""


def subscribed(types: list[str], event_type: str) -> bool:
    return any(t == "*" or t == event_type for t in types)


class LumaWebhooks:
    """Subscriptions of one calendar and the payloads sent to them.

    ``render_event(event)`` and ``render_guest(guest)`` give the current-API views (set by
    the app, which knows the sandbox's public URL)."""

    def __init__(self, store: SandboxStore, sender: WebhookSender, *, calendar_id: str) -> None:
        self.store = store
        self.sender = sender
        self.calendar_id = calendar_id
        self.render_event: Callable[[dict[str, Any]], dict[str, Any]] = dict
        self.render_guest: Callable[[dict[str, Any]], dict[str, Any]] = dict

    # -- subscriptions -------------------------------------------------------------
    def create(self, url: str, event_types: list[str], now: str) -> dict[str, Any]:
        hook = {
            "id": "whk-" + "".join(secrets.choice(_ALNUM) for _ in range(15)),
            "url": url,
            "event_types": list(dict.fromkeys(event_types)),
            "status": "active",
            "secret": "whsec_" + "".join(secrets.choice(_ALNUM) for _ in range(32)),
            "created_at": now,
        }
        self.store.insert("webhook", hook["id"], hook, scope=self.calendar_id)
        return hook

    def all(self) -> list[dict[str, Any]]:
        return self.store.all("webhook", scope=self.calendar_id)

    def get(self, hook_id: str) -> dict[str, Any] | None:
        hook = self.store.get("webhook", hook_id)
        return hook if hook is not None and hook in self.all() else None

    def delete(self, hook_id: str) -> bool:
        return self.get(hook_id) is not None and self.store.delete("webhook", hook_id)

    # -- deliveries ----------------------------------------------------------------
    def event_changed(self, event_type: str, event: dict[str, Any]) -> None:
        self.dispatch(event_type, [self.render_event(event)])

    def guests_changed(
        self, event_type: str, event: dict[str, Any], guests: list[dict[str, Any]]
    ) -> None:
        shown_event = self.render_event(event)
        self.dispatch(event_type, [{**self.render_guest(g), "event": shown_event} for g in guests])

    def dispatch(self, event_type: str, payloads: list[dict[str, Any]]) -> None:
        """Queue one delivery per (payload, subscribed webhook) as one batch (so the
        out-of-order fault reverses it)."""
        hooks = [h for h in self.all() if h["status"] == "active"]
        hooks = [h for h in hooks if subscribed(h["event_types"], event_type)]
        if not payloads or not hooks:
            return
        schema = contract().webhook_schema(event_type)
        deliveries: list[WebhookDelivery] = []
        for data in payloads:
            message = project({"type": event_type, "data": data}, schema)
            problems = schema_errors(schema, message) if schema else []
            if problems:
                raise InvalidWebhookPayload(
                    f"{event_type} payload does not match the contract: "
                    + "; ".join(map(str, problems[:5]))
                )
            body = json.dumps(message).encode()
            for hook in hooks:
                deliveries.append(
                    WebhookDelivery(
                        url=hook["url"],
                        body=body,
                        headers={"content-type": "application/json", "user-agent": USER_AGENT},
                    )
                )
        self.sender.send(deliveries)
