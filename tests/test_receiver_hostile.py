"""Issue 8: hostile input at the receiver. One test per finding (reproduced first, then
the class fixed): never a 500, every refusal under /webhooks and /inbound kept and
flagged, no row that can stop the ingest, no secret stored."""

from __future__ import annotations

import json
import time

import pytest
from pydantic import SecretStr
from sqlalchemy import text
from sqlalchemy.engine import Engine
from test_receiver_support import (
    SECRETS,
    hub_signature,
    mailgun_form,
    mailgun_signature,
    multipart,
    rows,
    stripe_event,
    stripe_headers,
)

from hub.ingest import process_pending
from hub.settings import Settings
from integrations.ingest_handlers import build_handlers
from webhook_receiver.app import create_app

STRIPE = SECRETS["stripe_webhook_secret"]
MAILGUN = SECRETS["mailgun_signing_key"]
SENDGRID = SECRETS["sendgrid_inbound_token"]
WA_SECRET = SECRETS["whatsapp_app_secret"]
NETGSM = SECRETS["netgsm_report_token"]
EVENTBRITE_API = "http://127.0.0.1:8102/v3"
DEEP = 1200


@pytest.fixture()
def settings(hub_settings: Settings) -> Settings:
    update = {name: SecretStr(value) for name, value in SECRETS.items()}
    return hub_settings.model_copy(update=update)


@pytest.fixture()
def client(settings: Settings, clean_db: Engine):
    return create_app(settings).test_client()


def deep_json(depth: int = DEEP) -> str:
    return "[" * depth + "]" * depth


def eventbrite_hint(action: str = "order.placed", order: str = "123") -> bytes:
    return json.dumps(
        {
            "config": {"action": action, "webhook_id": "55"},
            "api_url": f"{EVENTBRITE_API}/orders/{order}/",
        }
    ).encode()


def signed_mailgun(**overrides: str) -> tuple[bytes, str]:
    form = mailgun_form(MAILGUN)
    form.update(overrides)
    if "timestamp" in overrides:
        form["signature"] = mailgun_signature(MAILGUN, form["timestamp"], form["token"])
    return multipart([(k, v.encode()) for k, v in form.items()])


def only_row(engine: Engine, table: str, source: str) -> dict:
    found = rows(engine, table, source)
    assert len(found) == 1, found
    return found[0]


def assert_kept_refusal(engine: Engine, table: str, source: str, resp) -> dict:
    assert resp.status_code != 500, resp.data
    assert 400 <= resp.status_code < 500, (resp.status_code, resp.data)
    row = only_row(engine, table, source)
    assert row["status"] == "flagged" and row["flag"], row
    assert row["dedupe_key"] is None
    return row


# --------------------------------------------------------------------------- finding 1


def test_nul_in_an_unauthenticated_hint_does_not_stop_the_ingest(client, clean_db):
    """A hint whose config.action holds NUL was accepted, then the ingest failed writing
    the ignore reason, and the row stayed first in the queue for ever."""
    poison = eventbrite_hint(action="order\u0000.placed")
    assert client.post("/webhooks/eventbrite", data=poison).status_code == 200
    body = json.dumps(stripe_event()).encode()
    ok = client.post("/webhooks/stripe", data=body, headers=stripe_headers(body, STRIPE))
    assert ok.status_code == 200
    fetched: list[str] = []
    handlers = build_handlers({"eventbrite": lambda url: fetched.append(url) or []})
    process_pending(clean_db, handlers=handlers, now=None)
    poisoned = only_row(clean_db, "webhook_events", "eventbrite")
    assert poisoned["status"] in ("ignored", "failed") and "\x00" not in poisoned["last_error"]
    assert fetched == []
    assert only_row(clean_db, "webhook_events", "stripe")["status"] == "processed"


def test_a_row_whose_bookkeeping_fails_leaves_the_queue(client, clean_db):
    """Whatever breaks the row's own transaction (here: its connection dies inside the
    handler, so its state cannot be written), the row is marked failed in a separate
    transaction and the rows behind it are processed in the same run."""
    for n in range(2):
        body = json.dumps(stripe_event(id=f"cs_{n}")).encode()
        assert (
            client.post(
                "/webhooks/stripe", data=body, headers=stripe_headers(body, STRIPE)
            ).status_code
            == 200
        )
    handlers = build_handlers()
    first_id = rows(clean_db, "webhook_events", "stripe")[0]["id"]

    def poison_first(ctx):
        if ctx.row.id == first_id:
            ctx.conn.execute(text("select pg_terminate_backend(pg_backend_pid())"))
        return handlers["stripe"](ctx)

    report = process_pending(clean_db, handlers={**handlers, "stripe": poison_first})
    first, second = rows(clean_db, "webhook_events", "stripe")
    assert first["status"] == "failed" and first["last_error"].startswith("BOOKKEEPING")
    assert second["status"] == "processed"
    assert report.failed == 1 and report.processed == 1
    again = process_pending(clean_db, handlers={**handlers, "stripe": poison_first})
    assert again.total == 0  # failed rows are not claimed again


# --------------------------------------------------------------------------- finding 2


@pytest.mark.parametrize("path", ["/webhooks/eventbrite", "/webhooks/luma"])
def test_deep_json_without_credentials_is_a_kept_400(client, clean_db, path):
    body = ('{"config": {"action": "order.placed"}, "api_url": ' + deep_json() + "}").encode()
    if path.endswith("luma"):
        body = ('{"type": "guest.created", "data": ' + deep_json() + "}").encode()
    resp = client.post(path, data=body, content_type="application/json")
    assert resp.status_code == 400, resp.data
    assert_kept_refusal(clean_db, "webhook_events", path.rsplit("/", 1)[1], resp)


@pytest.mark.parametrize("charset", ["base64", "zlib", "rot13", "idna", "hex", "uu", "bz2"])
def test_mailgun_part_charset_naming_a_non_text_codec(client, clean_db, charset):
    """The part's charset was used as a codec before the signature check: 500."""
    body, content_type = multipart([("timestamp", b"1"), ("token", b"t"), ("signature", b"s")])
    body = body.replace(
        b'name="timestamp"\r\n',
        f'name="timestamp"\r\nContent-Type: text/plain; charset={charset}\r\n'.encode(),
    )
    resp = client.post("/inbound/email/mailgun", data=body, content_type=content_type)
    assert_kept_refusal(clean_db, "inbound_emails", "mailgun", resp)


def test_nul_in_path_and_query_is_kept_cleaned(client, clean_db):
    resp = client.post("/webhooks/no%00such?x=%00y", data=b"{}")
    assert resp.status_code == 404
    row = only_row(clean_db, "webhook_events", "no_such")
    assert "\x00" not in json.dumps(row["headers"]) and row["flag"] == "unknown_source"
    resp = client.post("/webhooks/netgsm?token=%00&jobid=%00", data=b"")
    assert resp.status_code == 401
    assert "\x00" not in json.dumps(only_row(clean_db, "webhook_events", "netgsm")["headers"])


# --------------------------------------------------------------------------- finding 3


def test_deep_json_with_a_valid_signature_is_a_kept_400(client, clean_db):
    stripe = ('{"id": "evt_deep", "type": "x", "data": ' + deep_json() + "}").encode()
    resp = client.post("/webhooks/stripe", data=stripe, headers=stripe_headers(stripe, STRIPE))
    assert_kept_refusal(clean_db, "webhook_events", "stripe", resp)

    whatsapp = ('{"object": "whatsapp_business_account", "entry": ' + deep_json() + "}").encode()
    resp = client.post("/webhooks/whatsapp", data=whatsapp,
                       headers={"X-Hub-Signature-256": hub_signature(WA_SECRET, whatsapp),
                                "Content-Type": "application/json"})  # fmt: skip
    assert resp.status_code != 500 and resp.status_code < 500
    assert len(rows(clean_db, "webhook_events", "whatsapp")) == 1

    netgsm = ('{"jobid": "1", "status": ' + deep_json() + "}").encode()
    resp = client.post(f"/webhooks/netgsm?token={NETGSM}", data=netgsm,
                       content_type="application/json")  # fmt: skip
    assert_kept_refusal(clean_db, "webhook_events", "netgsm", resp)


@pytest.mark.parametrize("codec", ["base64", "zlib", "rot13", "idna", "punycode", "nonesuch"])
def test_sendgrid_charsets_naming_a_non_text_codec(client, clean_db, codec):
    body, content_type = multipart(
        [
            ("from", b"ayse@example.com"),
            ("subject", b"\xff\xfe odeme"),
            ("charsets", json.dumps({"from": codec, "subject": codec}).encode()),
        ]
    )
    resp = client.post(f"/inbound/email/sendgrid/{SENDGRID}", data=body,
                       content_type=content_type)  # fmt: skip
    assert resp.status_code in (200, 400), resp.data
    assert len(rows(clean_db, "inbound_emails", "sendgrid")) == 1


def test_sendgrid_raw_mail_with_a_message_id_of_thousands_of_brackets(client, clean_db):
    mail = b"From: a@example.com\r\nSubject: x\r\nMessage-ID: " + b"<" * 5000 + b"\r\n\r\nhi\r\n"
    body, content_type = multipart([("email", mail)])
    started = time.monotonic()
    resp = client.post(f"/inbound/email/sendgrid/{SENDGRID}", data=body,
                       content_type=content_type)  # fmt: skip
    assert resp.status_code in (200, 400), resp.data
    assert time.monotonic() - started < 5
    assert len(rows(clean_db, "inbound_emails", "sendgrid")) == 1


@pytest.mark.parametrize("timestamp", ["inf", "1e400", "-inf", "nan", "1" * 500])
def test_mailgun_signed_timestamp_out_of_range(client, clean_db, timestamp):
    body, content_type = signed_mailgun(timestamp=timestamp)
    resp = client.post("/inbound/email/mailgun", data=body, content_type=content_type)
    assert_kept_refusal(clean_db, "inbound_emails", "mailgun", resp)


def test_mailgun_signed_deep_message_headers(client, clean_db):
    body, content_type = signed_mailgun(**{"message-headers": deep_json()})
    resp = client.post("/inbound/email/mailgun", data=body, content_type=content_type)
    assert resp.status_code in (200, 400), resp.data
    assert len(rows(clean_db, "inbound_emails", "mailgun")) == 1


# --------------------------------------------------------------------------- finding 4


def test_a_forged_delivery_id_cannot_pre_empt_the_genuine_delivery(client, clean_db):
    headers = {"X-Eventbrite-Delivery": "d-42", "X-Eventbrite-Event": "order.placed"}
    forged = client.post("/webhooks/eventbrite", data=eventbrite_hint(order="999"),
                         headers=headers)  # fmt: skip
    genuine = client.post("/webhooks/eventbrite", data=eventbrite_hint(order="123"),
                          headers=headers)  # fmt: skip
    assert forged.json["status"] == "accepted" and genuine.json["status"] == "accepted"
    retry = client.post("/webhooks/eventbrite", data=eventbrite_hint(order="123"),
                        headers=headers)  # fmt: skip
    assert retry.json == {"status": "duplicate", "id": genuine.json["id"]}
    urls = [json.loads(bytes(r["body"]))["api_url"] for r in rows(clean_db, "webhook_events")]
    assert f"{EVENTBRITE_API}/orders/123/" in urls


# --------------------------------------------------------------------------- finding 8


@pytest.mark.parametrize("name", ["token", "Token", "TOKEN", "token[]", "tOkEn[0]"])
def test_netgsm_token_is_never_stored(client, clean_db, name):
    resp = client.post(f"/webhooks/netgsm?{name}={NETGSM}&jobid=7&status=1", data=b"")
    assert resp.status_code in (200, 401)
    row = only_row(clean_db, "webhook_events", "netgsm")
    stored = json.dumps(row["headers"]) + bytes(row["body"]).decode()
    assert NETGSM not in stored
    assert "jobid=7" in row["headers"][":query"]


def test_a_configured_secret_echoed_in_any_header_is_masked(client, clean_db):
    resp = client.post("/webhooks/stripe", data=b"{}",
                       headers={"Referer": f"https://x.example/?k={STRIPE}"})  # fmt: skip
    assert resp.status_code == 401
    assert STRIPE not in json.dumps(only_row(clean_db, "webhook_events", "stripe")["headers"])


# --------------------------------------------------------------------------- finding 9


@pytest.mark.parametrize(
    ("method", "path", "status", "source", "flag"),
    [
        ("PUT", "/webhooks/stripe", 405, "stripe", "method_not_allowed"),
        ("DELETE", "/inbound/email/mailgun", 405, "mailgun", "method_not_allowed"),
        ("OPTIONS", "/webhooks/stripe", 405, "stripe", "method_not_allowed"),
        ("HEAD", "/webhooks/whatsapp", 405, "whatsapp", "method_not_allowed"),
        ("HEAD", "/webhooks/nosuch", 404, "nosuch", "unknown_source"),
        ("PROPFIND", "/webhooks/stripe", 405, "stripe", "method_not_allowed"),
        # merged to /webhooks/stripe by the router (or redirected 308): kept either way
        ("POST", "//webhooks/stripe", None, "stripe", None),
        ("GET", "/webhooks", 404, "unknown", "unknown_source"),
    ],
)
def test_every_refusal_under_webhooks_and_inbound_is_kept(
    client, clean_db, method, path, status, source, flag
):
    # PATH_INFO as the server passes it (the test client would read "//x" as a host)
    resp = client.open("/", method=method, data=b"evidence", environ_overrides={"PATH_INFO": path})
    assert resp.status_code == status or (status is None and 300 <= resp.status_code < 500)
    table = "inbound_emails" if "inbound" in path else "webhook_events"
    row = only_row(clean_db, table, source)
    assert row["status"] == "flagged" and row["flag"] == (flag or row["flag"])
    assert row["headers"][":method"] == method


def test_whatsapp_handshakes_are_kept_without_the_verify_token(client, clean_db):
    token = SECRETS["whatsapp_verify_token"]
    ok = client.get(
        f"/webhooks/whatsapp?hub.mode=subscribe&hub.challenge=42&hub.verify_token={token}"
    )
    bad = client.get("/webhooks/whatsapp?hub.mode=subscribe&hub.challenge=42&hub.verify_token=no")
    assert ok.status_code == 200 and ok.data == b"42" and bad.status_code == 403
    kept = rows(clean_db, "webhook_events", "whatsapp")
    assert [r["status"] for r in kept] == ["ignored", "flagged"]
    assert all(token not in json.dumps(r["headers"]) for r in kept)


def test_requests_elsewhere_are_counted(client, clean_db):
    from webhook_receiver import metrics

    before = metrics.OTHER.labels(status="404")._value.get()
    assert client.get("/nothing-here").status_code == 404
    assert client.post("/admin/../etc").status_code in (404, 405)
    assert metrics.OTHER.labels(status="404")._value.get() >= before + 1
    assert rows(clean_db, "webhook_events") == [] and rows(clean_db, "inbound_emails") == []


def test_an_unexpected_error_logs_a_masked_traceback_and_keeps_the_row(
    client, clean_db, monkeypatch
):
    """Issue 7: a 500 logged only the exception's class name."""
    import logging

    import webhook_receiver.routes as routes
    from webhook_receiver.logs import ACCESS_LOGGER, JsonFormatter

    lines: list[str] = []
    handler = logging.Handler()
    handler.setFormatter(JsonFormatter())
    handler.emit = lambda record: lines.append(handler.format(record))  # type: ignore[method-assign]
    logging.getLogger(ACCESS_LOGGER).addHandler(handler)

    def broken(*args, **kwargs):
        raise RuntimeError(f"boom with {STRIPE} in the message")

    monkeypatch.setattr(routes, "verify_stripe_event", broken)
    resp = client.post("/webhooks/stripe", data=b"{}", headers={"Stripe-Signature": "t=1,v1=x"})
    assert resp.status_code == 500
    row = only_row(clean_db, "webhook_events", "stripe")
    assert row["flag"] == "receiver_error"
    logging.getLogger(ACCESS_LOGGER).removeHandler(handler)
    line = next(json.loads(x) for x in lines if '"traceback"' in x)
    assert "RuntimeError" in line["traceback"] and "routes.py" in line["traceback"]
    assert all(STRIPE not in x for x in lines)
