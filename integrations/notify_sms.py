"""The relay's handler for ``notify.sms`` outbox rows: one SMS through Netgsm, at most once
per row (the row's idempotency key is the effect key, so at most once per effect).

Payload: ``{to (E.164), text, commercial (bool), effect_key, registration_id}``.

Netgsm has no idempotency key, so "never two messages for one effect, even with the relay
killed mid-send" is kept by a marker on the row itself: before the call the handler
writes ``result = {"sms": {"state": "sending", "started_at", "number", "msglen"}}`` under
its claim stamp (the relay's ``mark_failed`` leaves ``result`` alone). A later attempt that
finds that marker (the relay died during the call, or the answer was lost:
``SendOutcomeUnknown``) first asks Netgsm's report for a job to that number of that length
since the marker's time; if there is one the effect is done (``reconciled: true``), and
only if there is none is the message sent again. A send refused for certain (a Netgsm
code, no connection) clears the marker to ``not_sent`` so the retry sends normally.
Limits: Netgsm's send takes no client reference, so the match is by number and length;
another message of the same length to the same number in that window counts as this
one (at most once rather than at least once), and reconciling assumes an accepted job
shows in the report query at once (the emulator does; unconfirmed for live Netgsm).

Errors go to the relay typed: Netgsm's permanent refusals (bad credentials, unknown
header, bad text or number, IYS) make the row dead at once; rate limits and system errors
are retried with back-off; missing credentials are a PermanentFailure (fail closed, the
operator fixes the vault and requeues the dead rows).
"""

from __future__ import annotations

import asyncio
import json
import time
from datetime import datetime
from typing import Any

from sqlalchemy import text as sql

from hub.errors import AdapterError, ServerError
from hub.outbox_relay import ClaimedRow, DeliveryContext, PermanentFailure
from integrations.netgsm import (
    ISTANBUL,
    ConfigurationError,
    NetgsmSms,
    SendOutcomeUnknown,
    national_number,
    plan_message,
)

KIND = "notify.sms"
CREDENTIALS_TTL_SECONDS = 30.0
_credentials: dict[str, tuple[float, dict[str, Any]]] = {}

_MARK_SQL = sql(
    """
    update app.outbox set result = cast(:result as jsonb)
     where id = :id and status in ('in_flight', 'pending') and payload ->> '_claim' = :token
    """
)


class ClaimLost(ServerError):
    """Another relay holds the row now (this one's lease ran out): do nothing."""


def _vault_credentials(ctx: DeliveryContext) -> dict[str, Any] | None:
    """The vault entry ``netgsm``, cached briefly per database (read on a thread)."""
    key = str(ctx.engine.url)
    cached = _credentials.get(key)
    if cached and cached[0] > time.monotonic():
        return cached[1]
    from hub.vault import Vault

    creds = Vault(ctx.engine, ctx.settings).get("netgsm")
    if creds:
        _credentials[key] = (time.monotonic() + CREDENTIALS_TTL_SECONDS, creds)
    return creds


class _Vault:
    def __init__(self, creds: dict[str, Any] | None) -> None:
        self._creds = creds

    def get(self, _name: str) -> dict[str, Any] | None:
        return self._creds


async def _adapter(ctx: DeliveryContext) -> NetgsmSms:
    if ctx.adapter_factory is not None:
        return ctx.adapter_factory("netgsm")
    try:
        creds = await asyncio.to_thread(_vault_credentials, ctx)
    except Exception as exc:
        raise ConfigurationError(
            f"Netgsm: the vault entry cannot be read ({type(exc).__name__})"
        ) from None
    return NetgsmSms.from_vault(ctx.settings, _Vault(creds), client=ctx.client)


def _mark(ctx: DeliveryContext, row: ClaimedRow, sms: dict[str, Any]) -> None:
    with ctx.engine.begin() as conn:
        found = conn.execute(
            _MARK_SQL, {"id": row.id, "token": row.token, "result": json.dumps({"sms": sms})}
        ).rowcount
    if not found:
        raise ClaimLost("netgsm", "the outbox row is held by another relay now")


async def sms_handler(ctx: DeliveryContext, row: ClaimedRow) -> dict[str, Any]:
    """Send the row's SMS (or find that it was sent); the result stored on the row."""
    payload = row.payload
    try:
        to, text = str(payload["to"]), str(payload["text"])
    except KeyError as exc:
        raise PermanentFailure(f"notify.sms payload lacks {exc.args[0]}") from None
    commercial = bool(payload.get("commercial", False))
    effect_key = str(payload.get("effect_key") or row.idempotency_key)
    try:
        number = national_number(to)
        planned = plan_message(text)
    except AdapterError as exc:
        raise PermanentFailure(str(exc)) from None
    try:
        sms = await _adapter(ctx)
    except ConfigurationError as exc:
        raise PermanentFailure(str(exc)) from None

    base = {
        "effect_key": effect_key,
        "registration_id": payload.get("registration_id"),
        "commercial": commercial,
        "number": number,
        "msglen": len(text),
    }
    previous = (row.result or {}).get("sms") if isinstance(row.result, dict) else None
    if isinstance(previous, dict) and previous.get("state") == "accepted":
        return dict(row.result or {})  # already done (the row should not come back)
    if isinstance(previous, dict) and previous.get("state") == "sending":
        since = datetime.fromisoformat(previous["started_at"])
        found = await sms.find_sent(number, len(text), since)
        if found is not None:
            return {
                "sms": {
                    **base,
                    "state": "accepted",
                    "job_id": found.job_id,
                    "segments": planned.segments,
                    "encoding": str(planned.encoding),
                    "cost_units": planned.cost_units,
                    "iysfilter": "11" if commercial else "0",
                    "reconciled": True,
                    "accepted_at": previous["started_at"],
                }
            }

    started = datetime.now(ISTANBUL).isoformat()
    await asyncio.to_thread(_mark, ctx, row, {**base, "state": "sending", "started_at": started})
    try:
        sent = await sms.send(to, text, commercial=commercial, effect_key=effect_key)
    except SendOutcomeUnknown:
        raise  # the marker stays: the next attempt reconciles before sending
    except AdapterError as exc:
        await asyncio.to_thread(
            _mark, ctx, row, {**base, "state": "not_sent", "error": str(exc)[:200]}
        )
        raise
    return {
        "sms": {
            **base,
            **sent.as_json(),
            "state": "accepted",
            "reconciled": False,
            "accepted_at": started,
        }
    }


def handlers() -> dict[str, Any]:
    """``{KIND: sms_handler}``, to merge into the relay's registry."""
    return {KIND: sms_handler}
