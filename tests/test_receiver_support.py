"""Shared builders for the receiver tests (signed payloads, multipart bodies, row reads)."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import uuid
from typing import Any

import stripe
from sqlalchemy import select
from sqlalchemy.engine import Engine

from hub import db as hub_db

SECRETS = {
    "stripe_webhook_secret": "whsec_test_Str1peS3cretValue",
    "mailgun_signing_key": "key-mailgunS1gningKeyValue",
    "sendgrid_inbound_token": "sgTok3nUrlSecretValue",
    "whatsapp_app_secret": "waAppS3cretValue",
    "whatsapp_verify_token": "waVerifyT0kenValue",
    "luma_webhook_secret": "lumaWebh00kSecretValue",
    "netgsm_report_token": "netgsmRep0rtTokenValue",
}

TURKISH = "Sayın Ayşe Öztürk, 1.250,00 TL ödemeniz alındı"


def stripe_event(event_type: str = "checkout.session.completed", **obj: Any) -> dict[str, Any]:
    return {
        "id": f"evt_{uuid.uuid4().hex[:24]}",
        "object": "event",
        "api_version": "2026-10-28.endive",
        "created": int(time.time()),
        "livemode": False,
        "pending_webhooks": 1,
        "type": event_type,
        "data": {
            "object": {
                "id": "cs_test_1",
                "object": "checkout.session",
                "payment_status": "paid",
                "amount_total": 125000,
                "currency": "try",
                **obj,
            }
        },
    }


def stripe_headers(body: bytes, secret: str, timestamp: int | None = None) -> dict[str, str]:
    header = stripe.WebhookSignature.generate_signature_header(
        body.decode("utf-8"), secret, timestamp=timestamp or int(time.time())
    )
    return {"Stripe-Signature": header, "Content-Type": "application/json"}


def mailgun_signature(key: str, timestamp: str, token: str) -> str:
    return hmac.new(key.encode(), f"{timestamp}{token}".encode(), hashlib.sha256).hexdigest()


def mailgun_form(
    key: str,
    *,
    message_id: str | None = "<m1@mail.example>",
    timestamp: int | None = None,
    token: str | None = None,
    subject: str = "Ödeme alındı",
) -> dict[str, str]:
    ts = str(timestamp if timestamp is not None else int(time.time()))
    token = token or uuid.uuid4().hex * 2
    headers = [["From", "Ayşe Öztürk <ayse@example.com>"], ["Subject", subject]]
    if message_id:
        headers.append(["Message-Id", message_id])
    return {
        "recipient": "odeme@hub.example",
        "sender": "ayse@example.com",
        "from": "Ayşe Öztürk <ayse@example.com>",
        "subject": subject,
        "body-plain": TURKISH,
        "message-headers": json.dumps(headers),
        "timestamp": ts,
        "token": token,
        "signature": mailgun_signature(key, ts, token),
    }


def whatsapp_body() -> bytes:
    return json.dumps(
        {
            "object": "whatsapp_business_account",
            "entry": [
                {
                    "id": "WABA1",
                    "changes": [
                        {
                            "field": "messages",
                            "value": {
                                "messaging_product": "whatsapp",
                                "metadata": {"phone_number_id": "123"},
                                "statuses": [
                                    {
                                        "id": f"wamid.{uuid.uuid4().hex}",
                                        "status": "delivered",
                                        "timestamp": str(int(time.time())),
                                        "recipient_id": "905321112233",
                                    }
                                ],
                            },
                        }
                    ],
                }
            ],
        }
    ).encode()


def hub_signature(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def multipart(fields: list[tuple[str, bytes]], boundary: str = "xYzZY") -> tuple[bytes, str]:
    """A multipart/form-data body with exactly the given bytes per field."""
    out = bytearray()
    for name, value in fields:
        out += f"--{boundary}\r\n".encode()
        out += f'Content-Disposition: form-data; name="{name}"\r\n\r\n'.encode()
        out += value + b"\r\n"
    out += f"--{boundary}--\r\n".encode()
    return bytes(out), f"multipart/form-data; boundary={boundary}"


def sendgrid_body(
    charset: str, *, message_id: str | None = "<sg1@bank.example>", boundary: str = "xYzZY"
) -> tuple[bytes, str]:
    headers = "From: Ayşe Öztürk <ayse@example.com>\nSubject: x\n"
    if message_id:
        headers += f"Message-ID: {message_id}\n"
    return multipart(
        [
            ("headers", headers.encode("utf-8")),
            ("from", "Ayşe Öztürk <ayse@example.com>".encode(charset)),
            ("to", b"odeme@hub.example"),
            ("subject", TURKISH.encode(charset)),
            ("text", TURKISH.encode(charset)),
            ("envelope", b'{"to":["odeme@hub.example"],"from":"ayse@example.com"}'),
            (
                "charsets",
                json.dumps(
                    {"from": charset, "subject": charset, "text": charset, "to": "UTF-8"}
                ).encode(),
            ),
        ],
        boundary,
    )


def rows(engine: Engine, table: str, source: str | None = None) -> list[dict[str, Any]]:
    t = {"webhook_events": hub_db.webhook_events, "inbound_emails": hub_db.inbound_emails}[table]
    query = select(t).order_by(t.c.id)
    if source is not None:
        query = query.where(t.c.source == source)
    with engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(query)]
