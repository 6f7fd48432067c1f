"""The demo's receiver step: what platforms, payment providers and strangers send.

Real shapes: a Stripe ``checkout.session.completed`` signed like Stripe signs it, a bank's
"payment received" e-mail forwarded through SendGrid Inbound Parse in windows-1254, an
SMS-style notice through a signed Mailgun route; and requests the receiver must refuse
(forged, malformed, oversize, unknown source, a foreign Eventbrite api_url), each kept.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import time
import uuid
from typing import Any

import httpx
from sqlalchemy import select

from hub.db import registrations
from hub.settings import Settings


def _stripe_header(secret: str, body: bytes, timestamp: int | None = None) -> str:
    t = int(timestamp or time.time())
    sig = hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={t},v1={sig}"


def _outcome(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        body = {}
    label = body.get("error") or body.get("status") or ""
    field = f" field={body['field']}" if body.get("field") else ""
    return f"{response.status_code} {label}{field}".strip()


def post_bad_requests(receiver: str, secrets_: dict[str, str]) -> list[str]:
    """Requests the receiver must refuse, and keep flagged; one line each."""
    lines = []
    with httpx.Client(base_url=receiver, timeout=10) as client:
        body = json.dumps(
            {
                "id": f"evt_forged_{uuid.uuid4().hex[:8]}",
                "type": "checkout.session.completed",
                "data": {"object": {}},
            }
        ).encode()
        forged = _stripe_header("whsec_not_the_real_secret", body)
        r = client.post(
            "/webhooks/stripe",
            content=body,
            headers={"Stripe-Signature": forged, "Content-Type": "application/json"},
        )
        lines.append(f"forged Stripe signature        -> {_outcome(r)}")
        r = client.post(
            "/webhooks/eventbrite",
            json={"config": {"action": "order.placed"}},
            headers={"X-Eventbrite-Event": "order.placed"},
        )
        lines.append(f"Eventbrite hint without api_url -> {_outcome(r)}")
        r = client.post(
            "/webhooks/eventbrite",
            json={
                "config": {"action": "order.placed", "webhook_id": "1"},
                "api_url": "http://169.254.169.254/latest/meta-data/",
            },
            headers={"X-Eventbrite-Event": "order.placed"},
        )
        lines.append(f"Eventbrite api_url on a foreign host -> {_outcome(r)} (never fetched)")
        r = client.post(
            "/webhooks/luma",
            content=b"x" * (1024 * 1024 + 512 * 1024),
            headers={"Content-Type": "application/json"},
        )
        lines.append(f"1.5 MiB body                   -> {_outcome(r)} (first 64 KiB kept)")
        r = client.post("/webhooks/paypal", json={"hello": "world"})
        lines.append(f"unknown source /webhooks/paypal -> {_outcome(r)}")
        r = client.post(
            "/webhooks/stripe",
            content=b"{not json",
            headers={
                "Stripe-Signature": _stripe_header(secrets_["stripe_webhook_secret"], b"{not json")
            },
        )
        lines.append(f"signed Stripe body, broken JSON -> {_outcome(r)}")
        # hostile input: none of these may answer 500 or block the ingest behind them
        deep = ("[" * 1200 + "]" * 1200).encode()
        r = client.post(
            "/webhooks/stripe",
            content=deep,
            headers={"Stripe-Signature": _stripe_header(secrets_["stripe_webhook_secret"], deep)},
        )
        lines.append(f"signed Stripe JSON 1,200 deep  -> {_outcome(r)}")
        from hub.settings import get_settings

        eventbrite_api = get_settings().base_url("eventbrite").rstrip("/")
        r = client.post(
            "/webhooks/eventbrite",
            json={
                "config": {"action": "order.placed\u0000\u0000", "webhook_id": "1"},
                "api_url": f"{eventbrite_api}/v3/orders/999999999/",
            },
            headers={"X-Eventbrite-Event": "order.placed"},
        )
        lines.append(f"Eventbrite hint, NUL in action -> {_outcome(r)} (stored; blocks no row)")
        r = client.request("PATCH", "/webhooks/stripe", content=b"{}")
        lines.append(f"PATCH /webhooks/stripe          -> {_outcome(r)}")
        r = client.get("/inbound/mailgun", params={"token[]": "a-secret-in-the-query"})
        lines.append(f"GET /inbound/mailgun           -> {_outcome(r)} (query secret not stored)")
    return [
        "refused and kept (flagged, never processed), or stored for the ingest:",
        *(f"  {x}" for x in lines),
    ]


def _payment_targets(engine: Any, event_id: Any) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        rows = (
            conn.execute(
                select(
                    registrations.c.id,
                    registrations.c.full_name,
                    registrations.c.email,
                    registrations.c.platform,
                )
                .where(registrations.c.event_id == event_id, registrations.c.platform == "luma")
                .order_by(registrations.c.id)
                .limit(3)
            )
            .mappings()
            .all()
        )
    return [dict(r) for r in rows]


def _sendgrid_form(to: str, payer: str, amount: str, ref: str) -> tuple[bytes, str]:
    text = (
        "---------- Forwarded message ---------\n"
        "Kimden: VakifBank <bilgilendirme@vakifbank.com.tr>\n"
        "Subject: Hesabınıza para girişi\n\n"
        "Sayın TOPLULUK DERNEĞİ,\n\n"
        "Hesabınıza aşağıdaki havale/EFT işlemi gerçekleşmiştir.\n\n"
        f"İŞLEM TARİHİ      : {time.strftime('%d.%m.%Y %H:%M')}\n"
        f"GONDEREN AD SOYAD : {payer.upper()}\n"
        "ALICI AD SOYAD    : TOPLULUK DERNEĞİ\n"
        f"İŞLEM TUTARI      : {amount} TL\n"
        f"AÇIKLAMA          : {ref} İstanbul Python buluşması\n"
    )
    message_id = f"<demo-{uuid.uuid4().hex[:12]}@mail.gmail.com>"
    fields: dict[str, bytes] = {
        "headers": (
            f"Message-ID: {message_id}\nFrom: Hazine <hazine@topluluk.org>\n"
            "Content-Type: text/plain; charset=windows-1254"
        ).encode(),
        "from": b"Hazine <hazine@topluluk.org>",
        "to": to.encode(),
        "subject": "Fwd: Hesabınıza para girişi".encode("windows-1254"),
        "text": text.encode("windows-1254"),
        "envelope": json.dumps({"to": [to], "from": "hazine@topluluk.org"}).encode(),
        "charsets": json.dumps(
            {"to": "UTF-8", "from": "UTF-8", "subject": "windows-1254", "text": "windows-1254"}
        ).encode(),
        "SPF": b"pass",
        "dkim": b"{@gmail.com : pass}",
    }
    boundary = f"xYzZY{uuid.uuid4().hex}"
    parts = []
    for name, value in fields.items():
        parts.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'.encode()
            + value
            + b"\r\n"
        )
    body = b"".join(parts) + f"--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"


def post_payment_emails(
    settings: Settings, receiver: str, engine: Any, event: Any, secrets_: dict[str, str]
) -> list[str]:
    """A Stripe payment and two forwarded bank e-mails for Luma registrants."""
    targets = _payment_targets(engine, event.id)
    if len(targets) < 3:
        return ["(not enough Luma registrations to pay for)"]
    lines = ["payments sent for three Luma registrants:"]
    amount_minor = event.price_minor
    amount_tr = f"{amount_minor // 100:,}".replace(",", ".") + f",{amount_minor % 100:02d}"
    with httpx.Client(base_url=receiver, timeout=10) as client:
        # 1. Stripe Checkout, paid, with the registration's ref code; delivered twice.
        first = targets[0]
        event_body = json.dumps(
            {
                "id": f"evt_{secrets.token_hex(12)}",
                "object": "event",
                "api_version": "2026-10-28.endive",
                "created": int(time.time()),
                "livemode": False,
                "pending_webhooks": 1,
                "type": "checkout.session.completed",
                "data": {
                    "object": {
                        "id": f"cs_test_{secrets.token_hex(12)}",
                        "object": "checkout.session",
                        "payment_status": "paid",
                        "status": "complete",
                        "amount_total": amount_minor,
                        "currency": event.currency.lower(),
                        "payment_intent": f"pi_{secrets.token_hex(12)}",
                        "client_reference_id": f"REG-{first['id']}",
                        "customer_details": {"email": first["email"], "name": first["full_name"]},
                        "metadata": {"event_id": str(event.id)},
                    }
                },
            }
        ).encode()
        for attempt in ("", " (redelivered)"):
            r = client.post(
                "/webhooks/stripe",
                content=event_body,
                headers={
                    "Stripe-Signature": _stripe_header(
                        secrets_["stripe_webhook_secret"], event_body
                    ),
                    "Content-Type": "application/json",
                },
            )
            lines.append(
                f"  Stripe checkout.session.completed REG-{first['id']}{attempt} -> {_outcome(r)}"
            )
        # 2. A bank dekont forwarded through SendGrid, in windows-1254, with a ref code.
        second = targets[1]
        body, content_type = _sendgrid_form(
            "odemeler@inbound.topluluk.org",
            second["full_name"] or "",
            amount_tr,
            f"REG-{second['id']}",
        )
        r = client.post(
            f"/inbound/email/sendgrid/{secrets_['sendgrid_inbound_token']}",
            content=body,
            headers={"Content-Type": content_type},
        )
        lines.append(
            f"  SendGrid e-mail (windows-1254) {amount_tr} TL REG-{second['id']} -> {_outcome(r)}"
        )
        # 3. A bank notice through a signed Mailgun route, name only: a person decides.
        third = targets[2]
        timestamp, token = str(int(time.time())), secrets.token_hex(25)
        signature = hmac.new(
            secrets_["mailgun_signing_key"].encode(), (timestamp + token).encode(), hashlib.sha256
        ).hexdigest()
        form = {
            "recipient": "odemeler@mg.topluluk.org",
            "sender": "hazine@topluluk.org",
            "from": "Hazine <hazine@topluluk.org>",
            "subject": "Fwd: Gelen havale",
            "body-plain": (
                f"Gelen Transfer, {(third['full_name'] or '').upper()}, "
                f"{amount_tr} TL hesabiniza gecmistir. Aciklama: bilet"
            ),
            "message-headers": json.dumps(
                [["Message-Id", f"<mg-{token[:16]}@mail>"], ["From", "hazine@topluluk.org"]]
            ),
            "timestamp": timestamp,
            "token": token,
            "signature": signature,
        }
        r = client.post("/inbound/email/mailgun", data=form)
        lines.append(f"  Mailgun e-mail, payer name only ({third['full_name']}) -> {_outcome(r)}")
    return lines
