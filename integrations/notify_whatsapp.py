"""Relay handler of outbox kind ``notify.whatsapp`` (register it in
``hub.outbox_relay.default_handlers``).

Payload (JSON)::

    {"to": "+905321234567",                       # E.164
     "template": "odeme_alindi", "language": "tr", # an approved template ...
     "params": ["1.250,00 TL"], "header_params": [],
     # ... or free-form text, only inside the 24-hour window:
     "text": "...", "last_inbound_at": "2026-12-03T10:00:00Z"}

The effect key is the row's idempotency key; it goes out as
``biz_opaque_callback_data``. WhatsApp has no idempotency key, so before sending the
handler looks for a verified status webhook (``raw.webhook_events``, source whatsapp)
naming that key with sent/delivered/read: if one is there, an earlier attempt (a relay
killed after Meta accepted) went out and nothing is sent again. A kill in the short gap
before the first status arrives can still resend (at-least-once); stated, not hidden.
Refusals (template, parameters, window, recipient, credentials) make the row dead at
once; rate limits and Meta's transient errors are retried after the back-off.
"""

from __future__ import annotations

import asyncio
import json
from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field, ValidationError, model_validator
from sqlalchemy import text

from hub.outbox_relay import ClaimedRow, DeliveryContext, PermanentFailure
from integrations.whatsapp import WhatsAppCloud, parse_status_webhook

KIND = "notify.whatsapp"
WENT_OUT = ("sent", "delivered", "read")


class WhatsAppPayload(BaseModel):
    to: str
    template: str | None = None
    language: str = "tr"
    params: list[str] = Field(default_factory=list)
    header_params: list[str] = Field(default_factory=list)
    text: str | None = None
    last_inbound_at: datetime | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> WhatsAppPayload:
        if (self.template is None) == (self.text is None):
            raise ValueError("exactly one of template or text")
        return self


_SEEN_SQL = text(
    """
    select body from raw.webhook_events
     where source = 'whatsapp' and verified and flag is null
       and position(convert_to(:needle, 'UTF8') in body) > 0
     order by id desc limit 50
    """
)


def already_sent(engine: Any, effect_key: str) -> str | None:
    """The wamid of a status webhook that shows this effect went out, if any."""
    needle = json.dumps(effect_key)[1:-1]
    with engine.connect() as conn:
        bodies = conn.scalars(_SEEN_SQL, {"needle": needle}).all()
    for body in bodies:
        try:
            payload = json.loads(bytes(body))
        except ValueError:
            continue
        for update in parse_status_webhook(payload) if isinstance(payload, dict) else []:
            if update.effect_key == effect_key and update.status in WENT_OUT:
                return update.wamid
    return None


def _mask(number: str) -> str:
    return number[:4] + "*" * max(len(number) - 6, 0) + number[-2:]


async def whatsapp_handler(ctx: DeliveryContext, row: ClaimedRow) -> dict[str, Any]:
    try:
        payload = WhatsAppPayload.model_validate(row.payload)
    except ValidationError as exc:
        raise PermanentFailure(
            f"bad notify.whatsapp payload: {exc.error_count()} error(s)"
        ) from None
    key = row.idempotency_key
    if row.result and row.result.get("message_id"):
        return row.result
    seen = await asyncio.to_thread(already_sent, ctx.engine, key)
    if seen:
        return {"channel": "whatsapp", "message_id": seen, "deduplicated": True}
    if ctx.adapter_factory is not None:
        adapter = ctx.adapter_factory("whatsapp")
    else:
        from hub.vault import Vault

        vault = await asyncio.to_thread(Vault, ctx.engine, ctx.settings)
        adapter = WhatsAppCloud.from_vault(ctx.settings, vault, client=ctx.client)
    if payload.template is not None:
        wamid = await adapter.send_template(
            payload.to, payload.template, payload.language, payload.params,
            effect_key=key, header_params=payload.header_params or None,
        )  # fmt: skip
    else:
        wamid = await adapter.send_text(
            payload.to, payload.text or "", effect_key=key,
            last_inbound_at=payload.last_inbound_at,
        )  # fmt: skip
    return {
        "channel": "whatsapp",
        "message_id": wamid,
        "to": _mask(payload.to),
        "template": payload.template,
        "language": payload.language if payload.template else None,
    }
