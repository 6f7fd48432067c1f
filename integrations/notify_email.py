"""Relay handler of outbox kind ``notify.email`` (register it in
``hub.outbox_relay.default_handlers``).

Payload (JSON), one of:

- a template the hub knows, e.g. what ``hub.checkout`` enqueues::

    {"template": "late_payment_refunded", "order_no", "to", "full_name", "locale",
     "event_id", "amount_minor", "currency"}

  (the event title is read from ``app.events``; ``locale`` tr or en, default tr);
- a ready message: ``{"to", "subject", "text", "html"?, "full_name"?, "locale"?}``.

The Message-ID is derived from the row's idempotency key (a resend is the same message).
SMTP settings come from the vault entry ``smtp`` (fail closed).
"""

from __future__ import annotations

import asyncio
import html as html_lib
from typing import Any

from pydantic import BaseModel, ValidationError
from sqlalchemy import text

from hub.outbox_relay import ClaimedRow, DeliveryContext, PermanentFailure
from integrations.email_sender import SmtpMailer, build_message

KIND = "notify.email"


class EmailPayload(BaseModel):
    to: str
    template: str | None = None
    full_name: str | None = None
    locale: str | None = None
    subject: str | None = None
    text: str | None = None
    html: str | None = None
    order_no: str | None = None
    event_id: str | None = None
    amount_minor: int | None = None
    currency: str | None = None


def format_money(amount_minor: int, currency: str, language: str) -> str:
    """1.250,00 TL (tr) / TRY 1,250.00 (en); two-decimal currencies."""
    whole, cents = divmod(abs(amount_minor), 100)
    sign = "-" if amount_minor < 0 else ""
    grouped = f"{whole:,}"
    if language == "tr":
        symbol = "TL" if currency.upper() == "TRY" else currency.upper()
        return f"{sign}{grouped.replace(',', '.')},{cents:02d} {symbol}"
    return f"{sign}{currency.upper()} {grouped}.{cents:02d}"


def _event_title(engine: Any, event_id: str | None) -> str | None:
    if not event_id:
        return None
    with engine.connect() as conn:
        return conn.scalar(text("select title from app.events where id = cast(:id as uuid)"),
                           {"id": event_id})  # fmt: skip


def render(payload: EmailPayload, event_title: str | None) -> tuple[str, str, str, str]:
    """(subject, text, html, language) of the payload."""
    language = "en" if (payload.locale or "tr").lower().startswith("en") else "tr"
    if payload.template is None:
        if not payload.subject or not payload.text:
            raise PermanentFailure("notify.email without a template needs subject and text")
        body_html = payload.html or f"<p>{html_lib.escape(payload.text)}</p>"
        return payload.subject, payload.text, body_html, language
    if payload.template != "late_payment_refunded":
        raise PermanentFailure(f"unknown e-mail template {payload.template!r}")
    if payload.amount_minor is None or not payload.currency:
        raise PermanentFailure("late_payment_refunded needs amount_minor and currency")
    amount = format_money(payload.amount_minor, payload.currency, language)
    title = event_title or ("etkinlik" if language == "tr" else "the event")
    name = payload.full_name or ("Merhaba" if language == "tr" else "Hello")
    order = payload.order_no or ""
    if language == "tr":
        subject = f"Ödemeniz iade edildi: {title}"
        lines = [
            f"Merhaba {name},",
            "",
            f"{title} için yaptığınız {amount} tutarındaki ödeme, ayırdığınız yerin süresi "
            "dolduktan sonra ulaştı ve etkinlikte boş yer kalmadı. Ödemenizin tamamı iade "
            "edildi; bankanıza göre hesabınıza geçmesi birkaç iş günü sürebilir.",
            "",
            f"Sipariş numarası: {order}",
            "",
            "Anlayışınız için teşekkür ederiz.",
        ]
    else:
        subject = f"Your payment was refunded: {title}"
        lines = [
            f"Hello {name},",
            "",
            f"Your payment of {amount} for {title} arrived after your seat hold had expired, "
            "and the event is now full. The full amount has been refunded; it may take a "
            "few business days to reach your account.",
            "",
            f"Order number: {order}",
            "",
            "Thank you for your understanding.",
        ]
    body_text = "\n".join(lines)
    body_html = "".join(
        f"<p>{html_lib.escape(line)}</p>" for line in lines if line
    )  # the same words, escaped
    return subject, body_text, f"<html><body>{body_html}</body></html>", language


async def email_handler(ctx: DeliveryContext, row: ClaimedRow) -> dict[str, Any]:
    try:
        payload = EmailPayload.model_validate(row.payload)
    except ValidationError as exc:
        raise PermanentFailure(f"bad notify.email payload: {exc.error_count()} error(s)") from None
    if row.result and row.result.get("message_id"):
        return row.result  # this effect was already accepted by the SMTP server
    title = await asyncio.to_thread(_event_title, ctx.engine, payload.event_id)
    subject, body_text, body_html, language = render(payload, title)
    if ctx.adapter_factory is not None:
        mailer = ctx.adapter_factory("smtp")
    else:
        from hub.vault import Vault

        vault = await asyncio.to_thread(Vault, ctx.engine, ctx.settings)
        mailer = SmtpMailer.from_vault(vault)
    message = build_message(
        to=payload.to.strip(), to_name=payload.full_name, subject=subject, text=body_text,
        html=body_html, effect_key=row.idempotency_key,
        from_address=mailer.config.from_address, from_name=mailer.config.from_name,
        language=language,
    )  # fmt: skip
    sent = await asyncio.to_thread(mailer.send, message)
    return {
        "channel": "email",
        "message_id": sent["message_id"],
        "template": payload.template,
        "language": language,
        "accepted": len(sent["accepted"]),
    }
