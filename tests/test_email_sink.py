"""E-mail over real SMTP into the sandbox sink: Turkish text intact, the Message-ID tied
to the effect key, SMTP refusals typed, and the notify.email relay handler with the
payload hub.checkout enqueues (late_payment_refunded)."""

from __future__ import annotations

import httpx
import pytest

from hub.errors import ServerError, ValidationFailed
from hub.outbox import enqueue
from hub.outbox_relay import deliver_due
from integrations.email_sender import SmtpConfig, SmtpMailer, build_message, message_id_for
from integrations.notify_email import KIND, email_handler, format_money
from integrations.sandbox.smtp_sink import start_sink

TURKISH = "Çağrı Işıkoğlu — İstanbul'da şölen: ğüşıöç ĞÜŞİÖÇ ₺"


@pytest.fixture()
def sink(tmp_path):
    handle = start_sink(str(tmp_path / "smtp.sqlite"))
    try:
        yield handle
    finally:
        handle.stop()


def mailer(sink) -> SmtpMailer:
    return SmtpMailer(SmtpConfig(host=sink.smtp_host, port=sink.smtp_port, security="none",
                                 from_address="bilgi@topluluk.example",
                                 from_name="Topluluk Hub"))  # fmt: skip


def inbox(sink, to: str | None = None) -> list[dict]:
    params = {"to": to} if to else {}
    return httpx.get(f"{sink.url}/_sandbox/messages", params=params, timeout=10).json()["messages"]


def test_turkish_mail_arrives_intact(sink):
    msg = build_message(
        to="cagri@example.com", to_name="Çağrı Işıkoğlu", subject=f"Onay: {TURKISH}",
        text=f"Merhaba,\n{TURKISH}\n.satır başında nokta", html=f"<p>{TURKISH}</p>",
        effect_key="notify.email:test:1", from_address="bilgi@topluluk.example",
        from_name="Topluluk Hub", language="tr",
    )  # fmt: skip
    result = mailer(sink).send(msg)
    assert result["accepted"] == ["cagri@example.com"]
    (got,) = inbox(sink, "cagri@example.com")
    assert got["subject"] == f"Onay: {TURKISH}"
    assert got["to"] == "Çağrı Işıkoğlu <cagri@example.com>"
    assert got["text"].replace("\r\n", "\n") == f"Merhaba,\n{TURKISH}\n.satır başında nokta\n"
    assert TURKISH in got["html"]
    assert got["message_id"] == message_id_for("notify.email:test:1", "topluluk.example")
    raw = httpx.get(f"{sink.url}/_sandbox/messages/{got['id']}/raw").content
    assert b"notify.email:test:1" not in raw  # the effect key never shows, only its hash


def test_same_effect_same_message_id(sink):
    kwargs = dict(to="a@example.com", subject="s", text="t", html=None,
                  from_address="bilgi@topluluk.example")  # fmt: skip
    one = build_message(effect_key="k:1", **kwargs)
    two = build_message(effect_key="k:1", **kwargs)
    other = build_message(effect_key="k:2", **kwargs)
    assert one["Message-ID"] == two["Message-ID"] != other["Message-ID"]


def test_refusals_are_typed(sink):
    msg = build_message(to="b@example.com", subject="s", text="t", html=None,
                        effect_key="k", from_address="bilgi@topluluk.example")  # fmt: skip
    httpx.post(f"{sink.url}/_sandbox/faults", json={"reject_next": 1, "code": 451})
    with pytest.raises(ServerError):
        mailer(sink).send(msg)
    httpx.post(f"{sink.url}/_sandbox/faults", json={"reject_next": 1, "code": 554})
    with pytest.raises(ValidationFailed):
        mailer(sink).send(msg)
    httpx.post(f"{sink.url}/_sandbox/faults", json={"reject_rcpt": ["b@example.com"]})
    with pytest.raises(ValidationFailed):
        mailer(sink).send(msg)
    assert inbox(sink) == []
    with pytest.raises(ServerError):  # nobody listening
        SmtpMailer(SmtpConfig(host="127.0.0.1", port=1, security="none",
                              from_address="x@y.example", timeout=2)).send(msg)  # fmt: skip


def test_money_format():
    assert format_money(125000, "TRY", "tr") == "1.250,00 TL"
    assert format_money(125000, "TRY", "en") == "TRY 1,250.00"


def test_relay_handler_late_payment_refunded(sink, hub_settings, clean_db):
    payload = {  # what hub.checkout enqueues
        "template": "late_payment_refunded", "order_no": "ord_AAAAAAAAAAAAAAAAAAAAAAAA",
        "to": "seyma@example.com", "full_name": "Şeyma Güneş", "locale": "tr",
        "event_id": None, "amount_minor": 125000, "currency": "TRY",
    }  # fmt: skip
    key = "notify.email:late-refund:ord_AAAAAAAAAAAAAAAAAAAAAAAA"
    with clean_db.begin() as conn:
        enqueue(conn, KIND, key, payload)
        enqueue(conn, KIND, "notify.email:bad", {"to": "x@example.com", "template": "nope"})
    outcomes = deliver_due(clean_db, hub_settings, {KIND: email_handler},
                           adapter_factory=lambda name: mailer(sink))  # fmt: skip
    assert sorted(o.status for o in outcomes) == ["dead", "delivered"]
    (got,) = inbox(sink, "seyma@example.com")
    assert got["subject"].startswith("Ödemeniz iade edildi")
    assert "Merhaba Şeyma Güneş," in got["text"] and "1.250,00 TL" in got["text"]
    assert got["content_language"] == "tr"
    assert got["message_id"] == message_id_for(key, "topluluk.example")
