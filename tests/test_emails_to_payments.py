"""Forwarded "payment received" e-mails in both providers' real formats, each delivered
twice through the receiver (real HTTP), end as exactly one matched payment each."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from pathlib import Path
from urllib.parse import parse_qsl, urlencode

import httpx
import pytest
from sqlalchemy import func, select

from hub.db import get_engine, inbound_emails, payments, registrations, transaction
from hub.ingest import process_pending
from hub.registrations import upsert_registrations
from hub.settings import load_settings
from integrations.ingest_handlers import build_handlers
from integrations.sandbox.common import serve_in_thread
from tests.domain_world import make_event, reg
from webhook_receiver.app import create_app

FIXTURES = Path(__file__).parent / "fixtures" / "emails"
SENDGRID_TOKEN = "test-inbound-token-5b2e"
MAILGUN_KEY = "key-test-mailgun-0c1f"


@pytest.fixture()
def receiver(clean_db, monkeypatch):
    monkeypatch.setenv("HUB_SENDGRID_INBOUND_TOKEN", SENDGRID_TOKEN)
    monkeypatch.setenv("HUB_MAILGUN_SIGNING_KEY", MAILGUN_KEY)
    server = serve_in_thread(create_app(load_settings()))
    try:
        yield server
    finally:
        server.stop()


def _registrations():
    """Two unpaid Luma registrations: 250,50 TRY (İsmail Işık) and 1.250 TRY (Ahmet)."""
    with transaction() as conn:
        make_event(conn, price_minor=25050, channels={"luma": "evt-mail-1"})
        make_event(conn, price_minor=125000, channels={"luma": "evt-mail-2"})
        upsert_registrations(
            conn,
            [
                reg(
                    "gst-ismail",
                    platform="luma",
                    event="evt-mail-1",
                    name="İsmail Işık",
                    amount=25050,
                    currency="TRY",
                    payment_status="unpaid",
                ),
                reg(
                    "gst-ahmet",
                    platform="luma",
                    event="evt-mail-2",
                    name="Ahmet Yılmaz",
                    amount=125000,
                    currency="TRY",
                    payment_status="unpaid",
                ),
            ],
            actor="test",
        )
        ids = dict(
            conn.execute(select(registrations.c.platform_registration_id, registrations.c.id)).all()
        )
    return ids["gst-ismail"], ids["gst-ahmet"]


def _mailgun_body(ref_id: int) -> bytes:
    """The real Mailgun fixture, re-signed now (its stored signature is a placeholder)."""
    fields = dict(
        parse_qsl((FIXTURES / "garanti_sms_mailgun.form").read_text(), keep_blank_values=True)
    )
    for key in ("body-plain", "stripped-text"):
        fields[key] = fields[key].replace("REG-15", f"REG-{ref_id}")
    fields["timestamp"] = str(int(time.time()))
    fields["token"] = hashlib.sha256(str(time.time_ns()).encode()).hexdigest()[:50]
    fields["signature"] = hmac.new(
        MAILGUN_KEY.encode(), (fields["timestamp"] + fields["token"]).encode(), hashlib.sha256
    ).hexdigest()
    return urlencode(fields).encode("ascii")


def test_sendgrid_and_mailgun_emails_delivered_twice_end_as_one_payment_each(receiver):
    ismail, ahmet = _registrations()
    sendgrid = (
        (FIXTURES / "enpara_sendgrid_iso88599.form")
        .read_bytes()
        .replace(b"ref reg-7", f"ref reg-{ismail}".encode())
    )
    sendgrid_headers = json.loads((FIXTURES / "enpara_sendgrid_iso88599.headers.json").read_text())
    sendgrid_headers.pop("Content-Length")
    statuses = []
    with httpx.Client(base_url=receiver.url, timeout=10) as client:
        for _ in range(2):  # SendGrid retries a delivery it thinks failed
            statuses.append(
                client.post(
                    f"/inbound/email/sendgrid/{SENDGRID_TOKEN}",
                    content=sendgrid,
                    headers=sendgrid_headers,
                ).status_code
            )
        first = _mailgun_body(ahmet)
        statuses.append(
            client.post(
                "/inbound/email/mailgun",
                content=first,
                headers={"Content-Type": "application/x-www-form-urlencoded"},
            ).status_code
        )
        # Mailgun re-signs each retry (new token) but the Message-Id is the same.
        statuses.append(
            client.post(
                "/inbound/email/mailgun",
                content=_mailgun_body(ahmet),
                headers={"Content-Type": "application/x-www-form-urlencoded"},
            ).status_code
        )
        replay = client.post(
            "/inbound/email/mailgun",
            content=first,
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
    assert statuses == [200, 200, 200, 200]
    assert replay.status_code == 401  # a reused token is refused (and kept, flagged)

    engine = get_engine()
    with engine.connect() as conn:
        stored = dict(
            conn.execute(
                select(inbound_emails.c.source, func.count())
                .where(inbound_emails.c.status == "received")
                .group_by(inbound_emails.c.source)
            ).all()
        )
        subject = conn.scalar(
            select(inbound_emails.c.sender).where(inbound_emails.c.source == "sendgrid")
        )
    assert stored == {"sendgrid": 1, "mailgun": 1}
    assert subject and "enpara" in subject.lower()

    report = process_pending(engine, handlers=build_handlers({}))
    assert report.processed == 2 and report.failed == 0
    assert process_pending(engine, handlers=build_handlers({})).total == 0
    with engine.connect() as conn:
        rows = conn.execute(
            select(
                payments.c.provider,
                payments.c.status,
                payments.c.amount_minor,
                payments.c.registration_id,
                payments.c.payer_name,
            ).order_by(payments.c.amount_minor)
        ).all()
        paid = dict(conn.execute(select(registrations.c.id, registrations.c.payment_status)).all())
    assert [(r.provider, r.status, r.amount_minor, r.registration_id) for r in rows] == [
        ("email", "paid", 25050, ismail),
        ("email", "paid", 125000, ahmet),
    ]
    assert "IŞIK" in rows[0].payer_name.upper() or "ISIK" in rows[0].payer_name.upper()
    assert paid == {ismail: "paid", ahmet: "paid"}
