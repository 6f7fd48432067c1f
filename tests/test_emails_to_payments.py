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
from sqlalchemy import func, select, text

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


# --------------------------------------------------------------------------- trust


class _Lines:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def line(self, text: str) -> None:
        self.lines.append(text)

    def table(self, headers, rows) -> None:
        self.lines += [" | ".join(str(c) for c in row) for row in rows]


def test_demo_step_confirms_one_ignores_two_and_queues_one_with_candidates(receiver):
    from types import SimpleNamespace

    from hub.payments import review_queue
    from integrations.email_parsing.record import list_classified
    from orchestration.demo_payment_emails import run_step

    with transaction() as conn:
        event_id = make_event(conn, price_minor=25000, channels={"eventbrite": "eb-mail"})
        upsert_registrations(
            conn,
            [
                reg(f"o-{n}", event="eb-mail", name=name, amount=25000, currency="TRY",
                    payment_status="unpaid")
                for n, name in enumerate(["Ayşe Kaya", "Serkan Polat", "Serap Polatlı"])
            ],
            actor="test",
        )  # fmt: skip
        ids = dict(conn.execute(select(registrations.c.full_name, registrations.c.id)).all())
    out = _Lines()
    run_step(
        out,
        load_settings(),
        get_engine(),
        SimpleNamespace(id=event_id, price_minor=25000),
        {"sendgrid_inbound_token": SENDGRID_TOKEN},
        receiver=receiver.url,
    )
    engine = get_engine()
    with engine.connect() as conn:
        listed = sorted(list_classified(conn), key=lambda c: c["raw_id"])
        kinds = [(c["kind"], c["status"]) for c in listed]
        paid = dict(conn.execute(select(registrations.c.id, registrations.c.payment_status)).all())
        count = conn.scalar(select(func.count()).select_from(payments))
        [queued] = review_queue(conn)
    assert kinds == [
        ("incoming_transfer", "processed"),
        ("outgoing_transfer", "ignored"),
        ("marketing", "ignored"),
        ("incoming_transfer", "processed"),
    ]
    assert "Alıcı" in " ".join(listed[1]["reasons"])
    assert paid == {
        ids["Ayşe Kaya"]: "paid",
        ids["Serkan Polat"]: "unpaid",
        ids["Serap Polatlı"]: "unpaid",
    }
    assert count == 2  # the outgoing notice and the marketing mail are no payments
    assert queued["reference"] == f"REG-{ids['Serkan Polat']}"
    assert {c["registration_id"] for c in queued["candidates"]} == {
        ids["Serkan Polat"],
        ids["Serap Polatlı"],
    }
    assert any("review queue" in line for line in out.lines)


def test_one_transfer_forwarded_twice_under_other_message_ids_and_formats_is_one_payment(receiver):
    from bench.emails import CORPUS, deliver, load_manifest

    files = {m["id"]: m["file"] for m in load_manifest()["mails"]}
    with transaction() as conn:
        make_event(conn, price_minor=25000, channels={"eventbrite": "eb-dup"})
        upsert_registrations(
            conn,
            [reg("o-can", event="eb-dup", name="Can Aydın", amount=25000, currency="TRY",
                 payment_status="unpaid")],
            actor="test",
        )  # fmt: skip
        can = conn.scalar(select(registrations.c.id))
    original = (
        (CORPUS / files["ablative-den"]).read_bytes().replace(b"REG-10", f"REG-{can}".encode())
    )
    forward = (
        (CORPUS / files["dup-inline-forward"])
        .read_bytes()
        .replace(b"REG-10", f"REG-{can}".encode())
    )
    with httpx.Client(base_url=receiver.url, timeout=10) as client:
        for raw in (original, forward):
            body, headers = deliver(raw, "sendgrid-parsed")
            r = client.post(
                f"/inbound/email/sendgrid/{SENDGRID_TOKEN}", content=body, headers=headers
            )
            assert r.status_code == 200 and r.json()["status"] == "accepted"
    engine = get_engine()
    report = process_pending(engine, handlers=build_handlers({}))
    assert report.processed == 2
    with engine.connect() as conn:
        rows = conn.execute(select(payments.c.status, payments.c.registration_id)).all()
        copies = conn.scalar(
            text("select count(*) from app.audit_log where action = 'copy_received'")
        )
    assert rows == [("paid", can)] and copies == 1


def test_a_large_forwarded_mail_with_a_photo_goes_through_receiver_and_ingest(
    receiver, monkeypatch, tmp_path
):
    import os
    from email.message import EmailMessage

    from bench.emails import deliver
    from hub.settings import reset_settings_cache

    monkeypatch.setenv("HUB_DATA_DIR", str(tmp_path))  # receiver and ingest: files in tmp_path
    reset_settings_cache()
    server = serve_in_thread(create_app(load_settings()))
    with transaction() as conn:
        make_event(conn, price_minor=125000, channels={"eventbrite": "eb-big"})
        upsert_registrations(
            conn,
            [reg("o-ebru", event="eb-big", name="Ebru Yalçın", amount=125000, currency="TRY",
                 payment_status="unpaid")],
            actor="test",
        )  # fmt: skip
        ebru = conn.scalar(select(registrations.c.id))
    bank = EmailMessage()
    bank["From"] = "Akbank <bilgi@akbank.com>"
    bank["Subject"] = "Gelen EFT"
    bank["Message-ID"] = "<big-bank@akbank.com>"
    bank.set_content(
        "Hesabınıza EFT gelmiştir.\nGönderen: EBRU YALÇIN\nTutar: 1.250,00 TL\n"
        f"Açıklama: REG-{ebru}\n",
        charset="windows-1254",
    )
    outer = EmailMessage()
    outer["From"] = "Ebru <ebru@mail.example>"
    outer["Subject"] = "Fwd: Gelen EFT"
    outer["Message-ID"] = "<fwd-big@mail.example>"
    outer.set_content("Ödeme yaptım, dekont ve banka e-postası ekte.")
    outer.add_attachment(
        b"\xff\xd8" + os.urandom(3 * 1024 * 1024),
        maintype="image",
        subtype="jpeg",
        filename="dekont.jpg",
    )
    outer.add_attachment(bank, filename="banka.eml")
    try:
        for fmt, path in (("sendgrid-parsed", f"/inbound/email/sendgrid/{SENDGRID_TOKEN}"),):
            body, headers = deliver(bytes(outer), fmt)
            assert len(body) > 1024 * 1024
            r = httpx.post(server.url + path, content=body, headers=headers, timeout=30)
            assert r.status_code == 200, r.text
        report = process_pending(get_engine(), handlers=build_handlers({}))
    finally:
        server.stop()
        reset_settings_cache()  # the next reader sees the environment without tmp_path
    assert report.processed == 1 and report.failed == 0
    with get_engine().connect() as conn:
        row = conn.execute(
            select(payments.c.status, payments.c.registration_id, payments.c.amount_minor)
        ).one()
        attachments = conn.execute(
            text("select filename, size from app.email_attachments order by filename")
        ).all()
        body_size = conn.scalar(select(func.max(func.length(inbound_emails.c.body))))
    assert tuple(row) == ("paid", ebru, 125000)
    assert ("dekont.jpg", 3 * 1024 * 1024 + 2) in [tuple(a) for a in attachments]
    assert body_size < 64 * 1024
