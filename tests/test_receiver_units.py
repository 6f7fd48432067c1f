"""The receiver's pure helpers: signatures, e-mail decoding, raw store (real PostgreSQL/Redis)."""

from __future__ import annotations

import json
import time
import uuid

import pytest
import stripe
from test_receiver_support import TURKISH, hub_signature, mailgun_signature, rows, stripe_event

from hub.raw import redact_headers, store_raw
from integrations.inbound_email import (
    decode_sendgrid_fields,
    mailgun_message_id,
    message_id_from_header_block,
    parse_raw_mime,
)
from integrations.webhook_signatures import (
    PayloadError,
    WebhookVerificationError,
    verify_mailgun,
    verify_stripe_event,
    verify_whatsapp_signature,
)
from webhook_receiver.body import FormError, parse_form, read_body
from webhook_receiver.logs import safe_path

SECRET = "whsec_unit_test_secret"


def _signed(event: dict, ts: int) -> tuple[bytes, str]:
    body = json.dumps(event).encode()
    return body, stripe.WebhookSignature.generate_signature_header(body.decode(), SECRET, ts)


def test_stripe_verification_outcomes():
    now = int(time.time())
    body, header = _signed(stripe_event(), now)
    assert verify_stripe_event(body, header, SECRET)["type"] == "checkout.session.completed"
    # The SDK alone lets a future timestamp through; ours does not.
    body, future = _signed(stripe_event(), now + 3600)
    stripe.Webhook.construct_event(body.decode(), future, SECRET, tolerance=300)
    cases = {
        "future_timestamp": (body, future),
        "stale_timestamp": _signed(stripe_event(), now - 3600),
        "missing_signature": (body, None),
        "bad_signature": (body, header),  # header signs another body
    }
    for reason, (payload, sig) in cases.items():
        with pytest.raises(WebhookVerificationError) as err:
            verify_stripe_event(payload, sig, SECRET)
        assert err.value.reason == reason
        assert SECRET not in str(err.value)
    # A stale header over a forged body is "bad", not "stale".
    _, stale = _signed(stripe_event(), now - 3600)
    with pytest.raises(WebhookVerificationError) as err:
        verify_stripe_event(b"{}", stale, SECRET)
    assert err.value.reason == "bad_signature"
    # Rotation: a second v1 with the right secret passes.
    body, header = _signed(stripe_event(), now)
    assert verify_stripe_event(body, header.replace("v1=", "v1=" + "0" * 64 + ",v1="), SECRET)
    with pytest.raises(PayloadError):
        verify_stripe_event(b"\xff\xfe", header, SECRET)


def test_mailgun_verification(redis_client, hub_settings):
    key = "key-unit"
    prefix = f"{hub_settings.redis_namespace}:unit-mailgun:"
    now = time.time()
    token = uuid.uuid4().hex
    ts = str(int(now))
    sig = mailgun_signature(key, ts, token)
    verify_mailgun(key, ts, token, sig, redis_client=redis_client, replay_prefix=prefix)
    assert redis_client.ttl(next(iter(redis_client.scan_iter(f"{prefix}*")))) > 120
    expectations = [
        ((ts, token, sig), "replayed_token"),
        ((ts, token, "0" * 64), "bad_signature"),
        ((ts, token, None), "missing_signature"),
    ]
    for offset, reason in ((-121, "stale_timestamp"), (121, "future_timestamp")):
        t2, tok2 = str(int(now) + offset), uuid.uuid4().hex
        expectations.append(((t2, tok2, mailgun_signature(key, t2, tok2)), reason))
    for (t, tok, s), reason in expectations:
        with pytest.raises(WebhookVerificationError) as err:
            verify_mailgun(key, t, tok, s, redis_client=redis_client, replay_prefix=prefix, now=now)
        assert err.value.reason == reason


def test_whatsapp_signatures():
    body = b'{"object":"whatsapp_business_account"}'
    assert verify_whatsapp_signature("s", body, hub_signature("s", body))
    assert not verify_whatsapp_signature("s", body, hub_signature("t", body))
    assert not verify_whatsapp_signature("s", body, hub_signature("s", body)[7:])
    assert not verify_whatsapp_signature("s", body, None)


@pytest.mark.parametrize("charset", ["windows-1254", "iso-8859-9"])
def test_decode_sendgrid_fields(charset):
    raw = TURKISH.encode(charset)
    with pytest.raises(UnicodeDecodeError):
        raw.decode("utf-8")
    form = {
        "subject": raw,
        "text": raw,
        "from": "Ayşe <a@b.example>".encode(charset),
        "charsets": json.dumps({"subject": charset, "text": charset, "from": charset}).encode(),
    }
    decoded = decode_sendgrid_fields(form)
    assert decoded["subject"] == decoded["text"] == TURKISH
    assert decoded["from"] == "Ayşe <a@b.example>"
    # Explicit charsets; unknown charset names fall back to UTF-8 with replacement.
    assert decode_sendgrid_fields({"text": raw}, {"text": charset})["text"] == TURKISH
    assert decode_sendgrid_fields({"text": b"ok"}, {"text": "x-nope"})["text"] == "ok"


def test_message_ids_and_raw_mime():
    assert message_id_from_header_block(b"From: a\nMessage-ID: <x@y>\nSubject: s\n") == "<x@y>"
    assert message_id_from_header_block(b"From: a\n") is None
    assert mailgun_message_id(json.dumps([["From", "a"], ["Message-Id", "<m@n>"]])) == "<m@n>"
    assert mailgun_message_id("not json") is None
    mime = (
        b"From: a@b.example\r\nSubject: =?iso-8859-9?B?"
        + __import__("base64").b64encode("Ödeme alındı".encode("iso-8859-9"))
        + b"?=\r\nContent-Type: text/plain; charset=windows-1254\r\n\r\n"
        + TURKISH.encode("windows-1254")
    )
    parsed = parse_raw_mime(mime)
    assert parsed["subject"] == "Ödeme alındı" and parsed["text"] == TURKISH


def test_read_body_caps_the_stream():
    import io

    body = read_body(io.BytesIO(b"x" * 100), None, 50)
    assert body.truncated and body.size == 51 and len(body.data) == 51
    big = read_body(io.BytesIO(b"y" * 200_000), 200_000, 1000)
    assert big.truncated and big.size == 200_000 and len(big.data) == 64 * 1024
    small = read_body(io.BytesIO(b"abc"), 3, 1000)
    assert not small.truncated and small.data == b"abc"


def test_parse_form_keeps_raw_bytes():
    form = parse_form(b"a=%FD%FE&b=x+y", "application/x-www-form-urlencoded")
    assert form.fields == {"a": b"\xfd\xfe", "b": b"x y"}
    with pytest.raises(FormError):
        parse_form(b"--b\r\nbroken", "multipart/form-data; boundary=b")
    with pytest.raises(FormError):
        parse_form(b"{}", "application/json")


def test_safe_path():
    assert safe_path("/inbound/email/sendgrid/abc123") == "/inbound/email/sendgrid/***"
    assert safe_path("/x/SuperSecret", ["SuperSecret"]) == "/x/***"


def test_redact_headers():
    out = redact_headers(
        [
            ("Authorization", "Bearer sk_live_x"),
            ("Cookie", "session=1"),
            ("Stripe-Signature", "t=1,v1=ab"),
            ("X-Hub-Signature-256", "sha256=cd"),
            ("X-Multi", "a"),
            ("X-Multi", "b"),
            ("X-Nul", "a\x00b"),
        ]
    )
    assert out["Authorization"] == "***" and out["Cookie"] == "***"
    assert out["Stripe-Signature"] == "t=1,v1=ab" and out["X-Hub-Signature-256"] == "sha256=cd"
    assert out["X-Multi"] == "a, b" and "\x00" not in out["X-Nul"]


def test_store_raw_dedupes_only_keyed_rows(clean_db):
    common = {"source": "unit", "headers": {}, "verified": True, "flag": None}
    with clean_db.begin() as conn:
        first = store_raw(
            conn,
            "webhook_events",
            body=b"1",
            dedupe_key="k",
            status="received",
            event_type="t",
            **common,
        )
        second = store_raw(
            conn, "raw.webhook_events", body=b"2", dedupe_key="k", status="received", **common
        )
        flagged = [
            store_raw(
                conn, "webhook_events", body=b"3", dedupe_key=None, status="flagged", **common
            )
            for _ in range(2)
        ]
        long_key = store_raw(
            conn,
            "inbound_emails",
            body=b"4",
            dedupe_key="m" * 5000,
            status="received",
            sender="a\x00b",
            subject="s",
            **common,
        )
        with pytest.raises(ValueError):
            store_raw(
                conn,
                "inbound_emails",
                body=b"5",
                dedupe_key=None,
                status="received",
                event_type="x",
                **common,
            )
    assert not first.duplicate and second.duplicate and second.id == first.id
    assert flagged[0].id != flagged[1].id and not any(f.duplicate for f in flagged)
    assert not long_key.duplicate
    with clean_db.connect() as conn:
        key = conn.exec_driver_sql(
            "select dedupe_key, sender from raw.inbound_emails where id = %s", (long_key.id,)
        ).one()
    assert key[0].startswith("sha256:") and key[1] == "a\ufffdb"


def test_a_group_commit_with_one_refused_row_commits_the_others(hub_settings, clean_db):
    """The batch is one pipelined transaction; a row PostgreSQL refuses (here a status
    the CHECK constraint rejects) rolls it back, then each row is committed on its own:
    the good rows are stored and answered, the bad one gets its error."""
    import psycopg

    from hub.raw import raw_values
    from webhook_receiver.store import RawStore, _Item

    store = RawStore(hub_settings)
    try:
        conn, _ = store._connection()

        def item(key: str, status: str) -> _Item:
            fields = {"source": "stripe", "headers": {}, "body": b"{}", "dedupe_key": key,
                      "verified": True, "flag": None, "status": status}  # fmt: skip
            return _Item("webhook_events", raw_values("webhook_events", fields))

        batch = [item("evt_a", "received"), item("evt_b", "bogus"), item("evt_c", "received")]
        store._grouped(conn, batch)
        assert [i.done.is_set() for i in batch] == [True, True, True]
        assert isinstance(batch[1].error, psycopg.errors.CheckViolation)
        assert batch[0].result is not None and batch[2].result is not None
        assert {r["dedupe_key"] for r in rows(clean_db, "webhook_events")} == {"evt_a", "evt_c"}
        store._grouped(conn, [item("evt_a", "received"), item("evt_d", "received")])
        keys = [r["dedupe_key"] for r in rows(clean_db, "webhook_events")]
        assert sorted(keys) == ["evt_a", "evt_c", "evt_d"]  # the connection still works
    finally:
        store.close()
