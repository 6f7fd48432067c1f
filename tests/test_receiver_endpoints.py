"""The receiver's endpoints over the Flask test client, on the real test PostgreSQL + Redis."""

from __future__ import annotations

import hashlib
import json
import logging
import time
import uuid

import pytest
from pydantic import SecretStr
from sqlalchemy.engine import Engine
from test_receiver_support import (
    SECRETS,
    TURKISH,
    hub_signature,
    mailgun_form,
    mailgun_signature,
    multipart,
    rows,
    sendgrid_body,
    stripe_event,
    stripe_headers,
    whatsapp_body,
)

from hub.settings import Settings
from webhook_receiver.app import create_app
from webhook_receiver.logs import ACCESS_LOGGER, JsonFormatter

STRIPE = SECRETS["stripe_webhook_secret"]
MAILGUN = SECRETS["mailgun_signing_key"]
SENDGRID = SECRETS["sendgrid_inbound_token"]
WA_SECRET = SECRETS["whatsapp_app_secret"]
WA_VERIFY = SECRETS["whatsapp_verify_token"]
NETGSM = SECRETS["netgsm_report_token"]
MAX = 4096  # a small body cap keeps the oversize tests cheap


def _settings(base: Settings, **overrides) -> Settings:
    update = {name: SecretStr(value) for name, value in SECRETS.items()}
    update["receiver_max_body_bytes"] = MAX
    update.update(overrides)
    return base.model_copy(update=update)


@pytest.fixture()
def settings(hub_settings: Settings) -> Settings:
    return _settings(hub_settings)


@pytest.fixture()
def client(settings: Settings, clean_db: Engine):
    return create_app(settings).test_client()


class LogCapture(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.setFormatter(JsonFormatter())
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


@pytest.fixture()
def access_log():
    handler = LogCapture()
    logger = logging.getLogger(ACCESS_LOGGER)
    logger.addHandler(handler)
    yield handler
    logger.removeHandler(handler)


def _only(engine: Engine, table: str, source: str) -> dict:
    found = rows(engine, table, source)
    assert len(found) == 1, found
    return found[0]


def _flagged(engine: Engine, table: str, source: str, flag: str) -> dict:
    row = _only(engine, table, source)
    assert row["status"] == "flagged"
    assert row["flag"] == flag
    assert row["dedupe_key"] is None
    return row


# --------------------------------------------------------------------------- Eventbrite


def _eventbrite(action: str = "order.placed", api_url: str | None = None) -> bytes:
    body: dict = {
        "config": {
            "action": action,
            "user_id": "1001",
            "endpoint_url": "http://127.0.0.1:5000/webhooks/eventbrite",
            "webhook_id": "55",
        }
    }
    body["api_url"] = api_url or "http://127.0.0.1:8102/v3/orders/123/"
    return json.dumps(body).encode()


def test_eventbrite_accepted_then_duplicate(client, clean_db):
    headers = {"X-Eventbrite-Event": "order.placed", "X-Eventbrite-Delivery": "d-1"}
    first = client.post("/webhooks/eventbrite", data=_eventbrite(), headers=headers)
    assert first.status_code == 200, first.json
    assert first.json["status"] == "accepted"
    again = client.post("/webhooks/eventbrite", data=_eventbrite(), headers=headers)
    assert again.status_code == 200
    assert again.json == {"status": "duplicate", "id": first.json["id"]}
    row = _only(clean_db, "webhook_events", "eventbrite")
    assert row["status"] == "received" and row["verified"] is True and row["flag"] is None
    assert row["dedupe_key"].startswith("delivery:d-1:")
    assert row["event_type"] == "order.placed"
    assert bytes(row["body"]) == _eventbrite()
    assert row["headers"]["X-Eventbrite-Delivery"] == "d-1"


def test_eventbrite_test_ping_is_ignored(client, clean_db):
    body = _eventbrite(
        "test", "https://www.eventbriteapi.com/{api-endpoint-to-fetch-object-details}/"
    )
    resp = client.post("/webhooks/eventbrite", data=body)
    assert resp.status_code == 200 and resp.json["status"] == "ignored"
    assert _only(clean_db, "webhook_events", "eventbrite")["status"] == "ignored"


def test_eventbrite_foreign_api_url_is_flagged_never_fetched(client, clean_db):
    for url in (
        "https://evil.example/v3/orders/1/",
        "http://127.0.0.1:8102@evil.example/v3/orders/1/",
        "http://127.0.0.1:9999/v3/orders/1/",
    ):
        resp = client.post("/webhooks/eventbrite", data=_eventbrite(api_url=url))
        assert resp.status_code == 400
        assert resp.json["error"] == "foreign_api_url" and resp.json["field"] == "api_url"
    found = rows(clean_db, "webhook_events", "eventbrite")
    assert len(found) == 3
    assert all(r["flag"] == "foreign_api_url" and r["status"] == "flagged" for r in found)
    assert all(r["verified"] is True and r["dedupe_key"] is None for r in found)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"config": {"action": "order.placed"}}, "api_url"),
        ({"api_url": "http://127.0.0.1:8102/v3/orders/1/", "config": {}}, "config.action"),
        ([1, 2], "body"),
    ],
)
def test_eventbrite_malformed(client, clean_db, body, field):
    resp = client.post("/webhooks/eventbrite", json=body)
    assert resp.status_code == 400
    assert resp.json["error"] == "malformed" and resp.json["field"] == field
    _flagged(clean_db, "webhook_events", "eventbrite", "malformed")


def test_eventbrite_dedupe_key_without_delivery_header():
    from webhook_receiver.routes import eventbrite_dedupe_key

    url = "https://www.eventbriteapi.com/v3/orders/1/"
    t = 1_800_000_000 - 1_800_000_000 % 600
    same = eventbrite_dedupe_key("order.updated", url, None, now=t + 1)
    assert same == eventbrite_dedupe_key("order.updated", url, None, now=t + 500)
    assert same != eventbrite_dedupe_key("order.updated", url, None, now=t + 601)
    assert same != eventbrite_dedupe_key("order.placed", url, None, now=t + 1)
    keyed = eventbrite_dedupe_key("order.updated", url, " d9 ")
    assert keyed.startswith("delivery:d9:")
    assert keyed == eventbrite_dedupe_key("order.updated", url, "d9", now=t + 9999)
    assert keyed != eventbrite_dedupe_key("order.updated", url.replace("1", "2"), "d9")


# --------------------------------------------------------------------------- Luma


def _luma_body() -> bytes:
    return json.dumps(
        {"type": "guest.registered", "data": {"api_id": "gst-1", "event": {"api_id": "evt-1"}}}
    ).encode()


def test_luma_hint_accepted_then_duplicate(client, clean_db):
    """Luma documents no signature scheme: a delivery is kept as an unverified hint
    (accepted for ingest, ``:auth = none``), whatever signature-like header it carries."""
    body = _luma_body()
    first = client.post("/webhooks/luma", data=body, headers={"x-luma-signature": "00"})
    assert first.status_code == 200 and first.json["status"] == "accepted"
    again = client.post("/webhooks/luma", data=body)
    assert again.json["status"] == "duplicate"
    row = _only(clean_db, "webhook_events", "luma")
    assert row["verified"] is True and row["flag"] is None  # the ingest picks it up
    assert row["event_type"] == "guest.registered"
    assert row["headers"][":auth"] == "none"
    assert row["dedupe_key"] == "sha256:" + hashlib.sha256(body).hexdigest()


def test_luma_reads_no_secret(settings, clean_db, monkeypatch):
    """No invented check, and no secret read for it: the route never consults the vault
    (whose failure used to turn an unsigned delivery into a "verified" one)."""
    import hub.vault

    def unreadable(*_args, **_kwargs):
        raise AssertionError("the Luma route must not read the vault")

    monkeypatch.setattr(hub.vault.Vault, "get", unreadable)
    unsigned = create_app(settings.model_copy(update={"luma_webhook_secret": None}))
    resp = unsigned.test_client().post("/webhooks/luma", data=_luma_body())
    assert resp.status_code == 200
    row = _only(clean_db, "webhook_events", "luma")
    assert row["status"] == "received" and row["headers"][":auth"] == "none"


def test_luma_malformed(client, clean_db):
    body = json.dumps({"data": {}}).encode()
    resp = client.post("/webhooks/luma", data=body)
    assert resp.status_code == 400 and resp.json["field"] == "type"
    _flagged(clean_db, "webhook_events", "luma", "malformed")


# --------------------------------------------------------------------------- Stripe


def test_stripe_accepted_then_duplicate(client, clean_db):
    event = stripe_event()
    body = json.dumps(event).encode()
    first = client.post("/webhooks/stripe", data=body, headers=stripe_headers(body, STRIPE))
    assert first.status_code == 200 and first.json["status"] == "accepted"
    # Stripe re-signs a retry: new timestamp, same event id.
    retry = stripe_headers(body, STRIPE, int(time.time()) - 5)
    again = client.post("/webhooks/stripe", data=body, headers=retry)
    assert again.status_code == 200 and again.json["status"] == "duplicate"
    row = _only(clean_db, "webhook_events", "stripe")
    assert row["dedupe_key"] == event["id"]
    assert row["event_type"] == "checkout.session.completed"
    assert row["verified"] is True and row["status"] == "received"
    assert row["headers"]["Stripe-Signature"].startswith("t=")


@pytest.mark.parametrize(
    ("offset", "flag"),
    [(-301 - 60, "stale_timestamp"), (+301 + 60, "future_timestamp")],
)
def test_stripe_stale_and_future_timestamps_refused(client, clean_db, offset, flag):
    body = json.dumps(stripe_event()).encode()
    headers = stripe_headers(body, STRIPE, int(time.time()) + offset)
    resp = client.post("/webhooks/stripe", data=body, headers=headers)
    assert resp.status_code == 401 and resp.json["error"] == "bad_signature"
    _flagged(clean_db, "webhook_events", "stripe", flag)


@pytest.mark.parametrize(
    ("headers", "flag"),
    [({}, "missing_signature"), ({"Stripe-Signature": "t=1,v1=00"}, "bad_signature")],
)
def test_stripe_bad_signature(client, clean_db, headers, flag):
    body = json.dumps(stripe_event()).encode()
    if flag == "bad_signature":
        headers = stripe_headers(body, "whsec_wrong")
    resp = client.post("/webhooks/stripe", data=body, headers=headers)
    assert resp.status_code == 401
    _flagged(clean_db, "webhook_events", "stripe", flag)


def test_stripe_malformed_json_and_missing_id(client, clean_db):
    body = b'{"id": "evt_1", "type": '
    resp = client.post("/webhooks/stripe", data=body, headers=stripe_headers(body, STRIPE))
    assert resp.status_code == 400 and resp.json["field"] == "body"
    body = json.dumps({"object": "event", "type": "charge.refunded"}).encode()
    resp = client.post("/webhooks/stripe", data=body, headers=stripe_headers(body, STRIPE))
    assert resp.status_code == 400 and resp.json["field"] == "id"
    found = rows(clean_db, "webhook_events", "stripe")
    assert [r["flag"] for r in found] == ["malformed", "malformed"]


def test_stripe_not_configured(settings, clean_db):
    app = create_app(settings.model_copy(update={"stripe_webhook_secret": None}))
    body = json.dumps(stripe_event()).encode()
    resp = app.test_client().post("/webhooks/stripe", data=body)
    assert resp.status_code == 503 and resp.json["error"] == "not_configured"
    assert resp.headers["Retry-After"]
    _flagged(clean_db, "webhook_events", "stripe", "not_configured")


# --------------------------------------------------------------------------- WhatsApp


def test_whatsapp_verify_handshake(client):
    ok = client.get(
        "/webhooks/whatsapp",
        query_string={
            "hub.mode": "subscribe",
            "hub.verify_token": WA_VERIFY,
            "hub.challenge": "1158201444",
        },
    )
    assert ok.status_code == 200 and ok.data == b"1158201444"
    assert ok.mimetype == "text/plain"
    bad = client.get(
        "/webhooks/whatsapp",
        query_string={"hub.mode": "subscribe", "hub.verify_token": "nope", "hub.challenge": "1"},
    )
    assert bad.status_code == 403 and bad.json["error"] == "forbidden"


def test_whatsapp_post_accepted_duplicate_bad_signature(client, clean_db):
    body = whatsapp_body()
    headers = {"X-Hub-Signature-256": hub_signature(WA_SECRET, body)}
    assert client.post("/webhooks/whatsapp", data=body, headers=headers).json["status"] == (
        "accepted"
    )
    assert client.post("/webhooks/whatsapp", data=body, headers=headers).json["status"] == (
        "duplicate"
    )
    bad = {"X-Hub-Signature-256": hub_signature("other", body)}
    resp = client.post("/webhooks/whatsapp", data=body, headers=bad)
    assert resp.status_code == 401
    found = rows(clean_db, "webhook_events", "whatsapp")
    assert [(r["status"], r["flag"]) for r in found] == [
        ("received", None),
        ("flagged", "bad_signature"),
    ]
    assert found[0]["event_type"] == "messages"
    assert found[0]["dedupe_key"] == "sha256:" + hashlib.sha256(body).hexdigest()


def test_whatsapp_malformed(client, clean_db):
    body = json.dumps({"object": "whatsapp_business_account"}).encode()
    headers = {"X-Hub-Signature-256": hub_signature(WA_SECRET, body)}
    resp = client.post("/webhooks/whatsapp", data=body, headers=headers)
    assert resp.status_code == 400 and resp.json["field"] == "entry"
    _flagged(clean_db, "webhook_events", "whatsapp", "malformed")


# --------------------------------------------------------------------------- Netgsm


def test_netgsm_json_and_form_reports(client, clean_db):
    url = f"/webhooks/netgsm?token={NETGSM}"
    report = {"jobid": "17370001", "number": "905321112233", "status": "1"}
    assert client.post(url, json=report).json["status"] == "accepted"
    assert client.post(url, json=report).json["status"] == "duplicate"
    changed = client.post(url, data={**report, "status": "3"})  # urlencoded form
    assert changed.json["status"] == "accepted"
    found = rows(clean_db, "webhook_events", "netgsm")
    assert len(found) == 2
    assert all(r["event_type"] == "delivery_report" and r["verified"] for r in found)
    assert all(NETGSM not in json.dumps(r["headers"]) for r in found)


def test_netgsm_wrong_token_and_malformed(client, clean_db):
    resp = client.post("/webhooks/netgsm?token=wrong", json={"jobid": "1", "status": "1"})
    assert resp.status_code == 401 and resp.json["error"] == "bad_token"
    resp = client.post(f"/webhooks/netgsm?token={NETGSM}", json={"number": "90532", "status": "1"})
    assert resp.status_code == 400 and resp.json["field"] == "jobid"
    flags = [r["flag"] for r in rows(clean_db, "webhook_events", "netgsm")]
    assert flags == ["bad_token", "malformed"]


# --------------------------------------------------------------------------- SendGrid


@pytest.mark.parametrize("charset", ["windows-1254", "iso-8859-9"])
def test_sendgrid_turkish_charsets(client, clean_db, charset):
    body, content_type = sendgrid_body(charset, message_id=f"<{charset}@bank.example>")
    assert TURKISH.encode("utf-8") not in body  # really not UTF-8 on the wire
    resp = client.post(
        f"/inbound/email/sendgrid/{SENDGRID}", data=body, headers={"Content-Type": content_type}
    )
    assert resp.status_code == 200, resp.json
    row = _only(clean_db, "inbound_emails", "sendgrid")
    assert row["subject"] == TURKISH
    assert row["sender"] == "Ayşe Öztürk <ayse@example.com>"
    assert bytes(row["body"]) == body  # stored unchanged
    assert row["dedupe_key"] == f"message-id:<{charset}@bank.example>"
    assert SENDGRID not in json.dumps(row["headers"])


def test_sendgrid_duplicate_with_another_boundary(client, clean_db):
    for boundary in ("b1", "b2"):
        body, ct = sendgrid_body("iso-8859-9", message_id=None, boundary=boundary)
        resp = client.post(
            f"/inbound/email/sendgrid/{SENDGRID}", data=body, headers={"Content-Type": ct}
        )
        assert resp.status_code == 200
    assert resp.json["status"] == "duplicate"
    assert _only(clean_db, "inbound_emails", "sendgrid")["dedupe_key"].startswith("sha256:")


def test_sendgrid_bad_token_and_malformed(client, clean_db):
    body, ct = sendgrid_body("windows-1254")
    for path in ("/inbound/email/sendgrid/wrong", "/inbound/email/sendgrid"):
        resp = client.post(path, data=body, headers={"Content-Type": ct})
        assert resp.status_code == 401 and resp.json["error"] == "bad_token"
    no_from, ct = multipart([("subject", b"x"), ("text", b"y")])
    resp = client.post(
        f"/inbound/email/sendgrid/{SENDGRID}", data=no_from, headers={"Content-Type": ct}
    )
    assert resp.status_code == 400 and resp.json["field"] == "from"
    flags = [r["flag"] for r in rows(clean_db, "inbound_emails", "sendgrid")]
    assert flags == ["bad_token", "bad_token", "malformed"]


def test_sendgrid_raw_mime_mode(client, clean_db):
    mime = (
        b"From: =?iso-8859-9?Q?Ay=FEe_=D6zt=FCrk?= <ayse@example.com>\r\n"
        b"To: odeme@hub.example\r\n"
        b"Subject: =?windows-1254?Q?=D6deme_al=FDnd=FD?=\r\n"
        b"Message-ID: <raw1@bank.example>\r\n"
        b"MIME-Version: 1.0\r\n"
        b'Content-Type: text/plain; charset="iso-8859-9"\r\n'
        b"Content-Transfer-Encoding: 8bit\r\n\r\n"
    ) + TURKISH.encode("iso-8859-9")
    body, ct = multipart([("email", mime), ("to", b"odeme@hub.example")])
    resp = client.post(
        f"/inbound/email/sendgrid/{SENDGRID}", data=body, headers={"Content-Type": ct}
    )
    assert resp.status_code == 200, resp.json
    row = _only(clean_db, "inbound_emails", "sendgrid")
    assert row["subject"] == "Ödeme alındı"
    assert row["sender"] == "Ayşe Öztürk <ayse@example.com>"
    assert row["dedupe_key"] == "message-id:<raw1@bank.example>"


# --------------------------------------------------------------------------- Mailgun


def test_mailgun_accepted_then_duplicate_multipart(client, clean_db):
    form = mailgun_form(MAILGUN)
    assert client.post("/inbound/email/mailgun", data=form).json["status"] == "accepted"
    # Mailgun's retry: same message, fresh timestamp/token/signature, here as multipart.
    retry = mailgun_form(MAILGUN)
    body, ct = multipart([(k, v.encode()) for k, v in retry.items()])
    resp = client.post("/inbound/email/mailgun", data=body, headers={"Content-Type": ct})
    assert resp.status_code == 200 and resp.json["status"] == "duplicate"
    row = _only(clean_db, "inbound_emails", "mailgun")
    assert row["dedupe_key"] == "message-id:<m1@mail.example>"
    assert row["subject"] == "Ödeme alındı" and row["sender"].startswith("Ayşe Öztürk")


def test_mailgun_stale_future_replayed_and_bad(client, clean_db):
    now = int(time.time())
    stale = mailgun_form(MAILGUN, timestamp=now - 121 - 30, message_id="<s@x>")
    future = mailgun_form(MAILGUN, timestamp=now + 121 + 30, message_id="<f@x>")
    forged = {**mailgun_form(MAILGUN, message_id="<b@x>"), "signature": "0" * 64}
    ok = mailgun_form(MAILGUN, message_id="<r@x>")
    replay = {**ok, "message-headers": json.dumps([["Message-Id", "<r2@x>"]])}
    assert client.post("/inbound/email/mailgun", data=ok).status_code == 200
    for form in (stale, future, forged, replay):
        resp = client.post("/inbound/email/mailgun", data=form)
        assert resp.status_code == 401, resp.json
        assert resp.json["error"] == "bad_signature"
    flags = [r["flag"] for r in rows(clean_db, "inbound_emails", "mailgun")]
    assert flags == [None, "stale_timestamp", "future_timestamp", "bad_signature", "replayed_token"]


def test_mailgun_malformed(client, clean_db):
    ts, token = str(int(time.time())), uuid.uuid4().hex
    form = {"timestamp": ts, "token": token, "signature": mailgun_signature(MAILGUN, ts, token)}
    resp = client.post("/inbound/email/mailgun", data=form)
    assert resp.status_code == 400 and resp.json["field"] == "from"
    resp = client.post("/inbound/email/mailgun", data=b"{}", content_type="application/json")
    assert resp.status_code == 400 and resp.json["field"] == "body"
    flags = [r["flag"] for r in rows(clean_db, "inbound_emails", "mailgun")]
    assert flags == ["malformed", "malformed"]


# --------------------------------------------------------------------------- shared rules


@pytest.mark.parametrize(
    ("path", "table", "source"),
    [
        ("/webhooks/eventbrite", "webhook_events", "eventbrite"),
        ("/webhooks/luma", "webhook_events", "luma"),
        ("/webhooks/stripe", "webhook_events", "stripe"),
        ("/webhooks/whatsapp", "webhook_events", "whatsapp"),
        (f"/webhooks/netgsm?token={NETGSM}", "webhook_events", "netgsm"),
        ("/webhooks/nosuch", "webhook_events", "nosuch"),
    ],  # inbound e-mail has its own 40 MiB limit: tests/test_inbound_large.py
)
def test_oversize_is_kept_truncated(client, clean_db, path, table, source):
    body = b"{" + b"x" * (MAX + 100_000) + b"}"
    resp = client.post(path, data=body, content_type="application/json")
    assert resp.status_code == 413 and resp.json["error"] == "too_large"
    row = _flagged(clean_db, table, source, "oversize")
    assert row["body_truncated"] is True
    assert row["body_size"] == len(body)
    assert bytes(row["body"]) == body[: 64 * 1024]


def test_unknown_sources_are_kept(client, clean_db):
    resp = client.post("/webhooks/paypal/ipn", data=b"a=1")
    assert resp.status_code == 404 and resp.json["error"] == "unknown_source"
    resp = client.post("/inbound/email/postmark", data=b"{}")
    assert resp.status_code == 404
    row = _flagged(clean_db, "webhook_events", "paypal", "unknown_source")
    assert row["headers"][":path"] == "/webhooks/paypal/ipn"
    _flagged(clean_db, "inbound_emails", "postmark", "unknown_source")
    wrong_method = client.get("/webhooks/stripe")
    assert wrong_method.status_code == 405 and wrong_method.json["error"] == "method_not_allowed"
    assert client.get("/nothing-here").status_code == 404


def test_health_ok(client):
    resp = client.get("/health")
    assert resp.status_code == 200
    assert resp.json == {"status": "ok", "postgresql": "ok", "redis": "ok"}


def test_postgresql_down_health_and_webhook(settings, clean_db):
    bad = settings.model_copy(
        update={"database_url": "postgresql://hub:pgPassw0rdValue@127.0.0.1:1/hub"}
    )
    client = create_app(bad).test_client()
    health = client.get("/health")
    assert health.status_code == 503
    assert health.json == {"status": "unavailable", "postgresql": "unavailable", "redis": "ok"}
    assert b"pgPassw0rdValue" not in health.data and b"127.0.0.1" not in health.data

    event = stripe_event()
    body = json.dumps(event).encode()
    resp = client.post("/webhooks/stripe", data=body, headers=stripe_headers(body, STRIPE))
    assert resp.status_code == 503 and resp.json["error"] == "unavailable"
    assert int(resp.headers["Retry-After"]) > 0
    assert rows(clean_db, "webhook_events") == []


def test_redis_down_health(settings):
    bad = settings.model_copy(update={"redis_url": "redis://:redisPw@127.0.0.1:1/0"})
    health = create_app(bad).test_client().get("/health")
    assert health.status_code == 503
    assert health.json["redis"] == "unavailable" and health.json["postgresql"] == "ok"


def test_logs_are_json_and_secret_free(settings, clean_db, access_log):
    client = create_app(settings).test_client()
    bodies: list[bytes] = []
    sg_body, sg_ct = sendgrid_body("windows-1254")
    for path in (f"/inbound/email/sendgrid/{SENDGRID}", "/inbound/email/sendgrid/wrong"):
        bodies.append(client.post(path, data=sg_body, headers={"Content-Type": sg_ct}).data)
    bodies.append(client.post(f"/webhooks/netgsm?token={NETGSM}", json={"jobid": "1"}).data)
    bodies.append(client.post(f"/inbound/email/sendgrid/{SENDGRID}/x", data=b"1").data)
    event = json.dumps(stripe_event()).encode()
    bodies.append(
        client.post("/webhooks/stripe", data=event, headers={"Stripe-Signature": "t=1,v1=2"}).data
    )
    bodies.append(client.post("/inbound/email/mailgun", data=mailgun_form(MAILGUN)).data)
    bodies.append(
        client.get(
            "/webhooks/whatsapp",
            query_string={
                "hub.mode": "subscribe",
                "hub.verify_token": WA_VERIFY,
                "hub.challenge": "c",
            },
        ).data
    )
    bad_db = settings.model_copy(
        update={"database_url": "postgresql://hub:pgPassw0rdValue@127.0.0.1:1/hub"}
    )
    bodies.append(
        create_app(bad_db)
        .test_client()
        .post("/webhooks/stripe", data=event, headers=stripe_headers(event, STRIPE))
        .data
    )
    assert len(access_log.lines) == len(bodies)
    secrets = [*SECRETS.values(), "pgPassw0rdValue"]
    for text in access_log.lines + [b.decode("utf-8", "replace") for b in bodies]:
        for secret in secrets:
            assert secret not in text, (secret, text)
    records = [json.loads(line) for line in access_log.lines]
    for record in records:
        for key in (
            "timestamp",
            "method",
            "path",
            "status",
            "source",
            "outcome",
            "duration_ms",
            "raw_id",
        ):
            assert key in record
    assert records[0]["path"] == "/inbound/email/sendgrid/***"
    assert records[0]["outcome"] == "accepted" and records[0]["raw_id"]
    assert records[-1]["outcome"] == "unavailable" and records[-1]["status"] == 503


def test_metrics_single_process(client):
    body = json.dumps(stripe_event()).encode()
    client.post("/webhooks/stripe", data=body, headers=stripe_headers(body, STRIPE))
    client.post("/webhooks/nowhere", data=b"x")
    text = client.get("/metrics").data.decode()
    assert 'hub_receiver_requests_total{outcome="accepted",source="stripe"}' in text
    assert 'hub_receiver_requests_total{outcome="unknown_source",source="unknown"}' in text
    assert "hub_receiver_request_duration_seconds_bucket" in text


def test_mailgun_redis_down_is_503_and_kept(settings, clean_db):
    bad = settings.model_copy(update={"redis_url": "redis://127.0.0.1:1/0"})
    resp = create_app(bad).test_client().post("/inbound/email/mailgun", data=mailgun_form(MAILGUN))
    assert resp.status_code == 503 and resp.json["error"] == "unavailable"
    assert resp.headers["Retry-After"]
    _flagged(clean_db, "inbound_emails", "mailgun", "unverified")


def test_unmigrated_database_is_503(settings, server_database_url):
    import psycopg
    from sqlalchemy.engine import make_url

    from hub import db as hub_db

    name = f"hub_unmigrated_{uuid.uuid4().hex[:8]}"
    admin = make_url(server_database_url).set(drivername="postgresql", database="postgres")
    admin_dsn = admin.render_as_string(hide_password=False)
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        conn.execute(f'create database "{name}"')
    try:
        url = make_url(server_database_url).set(database=name)
        app = create_app(settings.model_copy(update={"database_url": url.render_as_string(False)}))
        body = json.dumps(stripe_event()).encode()
        resp = app.test_client().post(
            "/webhooks/stripe", data=body, headers=stripe_headers(body, STRIPE)
        )
        assert resp.status_code == 503 and resp.json["error"] == "unavailable"
    finally:
        hub_db.dispose_engines()
        with psycopg.connect(admin_dsn, autocommit=True) as conn:
            conn.execute(f'drop database if exists "{name}" with (force)')
