import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlencode

import pytest
from domain_world import T0, insert_raw, make_event, raw_row, reg, registration
from sqlalchemy import text

from hub.ingest import process_pending
from hub.registrations import upsert_registrations
from integrations.base import RateLimited, ServerError, ValidationFailed
from integrations.ingest_handlers import build_handlers

NOW = datetime(2025, 3, 20, 10, 0, tzinfo=UTC)
FIXTURES = Path(__file__).parent / "fixtures" / "emails"
EB = "https://www.eventbriteapi.com/v3"


class FakeEventbrite:
    """The injected Eventbrite fetcher: api_url -> registrations (or an error)."""

    def __init__(self):
        self.calls: list[str] = []
        self.pages: dict[str, list] = {}
        self.errors: dict[str, Exception] = {}

    def __call__(self, api_url):
        self.calls.append(api_url)
        if api_url in self.errors:
            raise self.errors[api_url]
        if "eventbriteapi.com" not in api_url:
            raise ValidationFailed("eventbrite", "foreign host", code="FOREIGN_HOST")
        return self.pages.get(api_url, [])


class FakeLuma:
    """An async fetcher, like LumaAdapter.get_registration."""

    def __init__(self):
        self.calls: list[tuple[str, str]] = []
        self.guests: dict[str, object] = {}

    async def __call__(self, event_id, guest_id):
        self.calls.append((event_id, guest_id))
        return self.guests[guest_id]


@pytest.fixture()
def world(clean_db):
    with clean_db.begin() as conn:
        event_id = make_event(
            conn, price_minor=25000, channels={"eventbrite": "eb-1", "luma": "evt-1"}
        )
    eventbrite, luma = FakeEventbrite(), FakeLuma()
    handlers = build_handlers({"eventbrite": eventbrite, "luma": luma})
    return clean_db, event_id, eventbrite, luma, handlers


def eb_hook(action, api_url):
    return {"config": {"action": action, "user_id": "1", "webhook_id": "9"}, "api_url": api_url}


def stripe_event(evt_id, kind, obj):
    return {"id": evt_id, "object": "event", "type": kind, "created": 1742464800,
            "data": {"object": obj}}  # fmt: skip


def session(ref=None, payment_status="paid", pi="pi_1", email="ayse@example.com"):
    return {
        "object": "checkout.session", "id": "cs_1", "payment_intent": pi,
        "payment_status": payment_status, "status": "complete", "amount_total": 25000,
        "currency": "try", "client_reference_id": ref,
        "customer_details": {"email": email, "name": "Ayşe Kaya"}, "metadata": {},
    }  # fmt: skip


def count(conn, table):
    return conn.execute(text(f"select count(*) from {table}")).scalar_one()


def test_eventbrite_and_luma_rows_become_registrations(world):
    engine, _, eventbrite, luma, handlers = world
    url = f"{EB}/orders/1/"
    eventbrite.pages[url] = [reg("att-1", email="A@x.com"), reg("att-2", status="approved")]
    # the payload claims "approved"; the API (the truth) says pending_approval -> pending
    luma.guests["gst-1"] = reg("gst-1", platform="luma", event="evt-1", status="pending")
    luma_payload = {"type": "guest.updated",
                    "data": {"api_id": "gst-1", "approval_status": "approved",
                             "event": {"api_id": "evt-1"}}}  # fmt: skip
    with engine.begin() as conn:
        insert_raw(conn, "webhook_events", source="eventbrite", body=eb_hook("order.placed", url))
        insert_raw(conn, "webhook_events", source="luma", body=luma_payload)
    report = process_pending(engine, handlers=handlers, now=NOW)
    with engine.begin() as conn:
        guest = registration(conn, "luma", "gst-1")
        rows = conn.execute(text("select status, attempts, processed_at from raw.webhook_events"))
        states = {(r.status, r.attempts, r.processed_at) for r in rows}
    assert report.processed == 2 and report.by_source["luma"]["processed"] == 1
    assert eventbrite.calls == [url] and luma.calls == [("evt-1", "gst-1")]
    assert guest.status == "pending"
    assert states == {("processed", 1, NOW)}


def test_poison_row_retries_then_fails_while_others_pass(world):
    engine, _, eventbrite, _, handlers = world
    bad = f"{EB}/orders/666/?token=SECRET123"
    eventbrite.errors[bad] = ServerError("eventbrite", f"server error 500 on {bad}")
    with engine.begin() as conn:
        poison = insert_raw(conn, "webhook_events", source="eventbrite",
                            body=eb_hook("order.placed", bad))  # fmt: skip
        good = [
            insert_raw(conn, "webhook_events", source="eventbrite",
                       body=eb_hook("order.updated", f"{EB}/orders/{i}/"))
            for i in range(3)
        ]  # fmt: skip
    for i in range(3):
        eventbrite.pages[f"{EB}/orders/{i}/"] = [reg(f"att-{i}", email=f"p{i}@x.com")]
    first = process_pending(engine, handlers=handlers, now=NOW, max_attempts=3)
    with engine.begin() as conn:
        row = raw_row(conn, "webhook_events", poison)
        others = {raw_row(conn, "webhook_events", i).status for i in good}
    assert first.retried == 1 and first.processed == 3
    assert others == {"processed"}
    assert row.status == "retry" and row.attempts == 1
    assert row.next_attempt_at == NOW + timedelta(seconds=30)
    assert "SECRET123" not in row.last_error and "ServerError" in row.last_error

    # not due yet: untouched
    assert process_pending(engine, handlers=handlers, now=NOW, max_attempts=3).total == 0
    second = process_pending(engine, handlers=handlers, now=NOW + timedelta(hours=1),
                             max_attempts=3)  # fmt: skip
    with engine.begin() as conn:
        row = raw_row(conn, "webhook_events", poison)
    assert second.retried == 1 and row.attempts == 2
    assert row.next_attempt_at == NOW + timedelta(hours=1, minutes=1)
    third = process_pending(engine, handlers=handlers, now=NOW + timedelta(days=1),
                            max_attempts=3)  # fmt: skip
    with engine.begin() as conn:
        row = raw_row(conn, "webhook_events", poison)
    assert third.failed == 1
    assert row.status == "failed" and row.attempts == 3
    assert "gave up after 3 attempts" in row.last_error and "SECRET123" not in row.last_error


def test_rate_limit_waits_at_least_retry_after(world):
    engine, _, eventbrite, _, handlers = world
    url = f"{EB}/orders/7/"
    eventbrite.errors[url] = RateLimited("eventbrite", "HIT_RATE_LIMIT", retry_after=3600)
    with engine.begin() as conn:
        rid = insert_raw(conn, "webhook_events", source="eventbrite",
                         body=eb_hook("order.placed", url))  # fmt: skip
    report = process_pending(engine, handlers=handlers, now=NOW)
    with engine.begin() as conn:
        row = raw_row(conn, "webhook_events", rid)
    assert report.retried == 1
    assert row.status == "retry" and row.next_attempt_at == NOW + timedelta(hours=1)
    assert row.next_attempt_at > NOW


def test_non_retryable_error_fails_at_once(world):
    engine, _, _, _, handlers = world
    with engine.begin() as conn:
        rid = insert_raw(conn, "webhook_events", source="luma", body=b"{not json")
    report = process_pending(engine, handlers=handlers, now=NOW)
    with engine.begin() as conn:
        row = raw_row(conn, "webhook_events", rid)
    assert report.failed == 1 and row.status == "failed" and row.attempts == 1
    assert "JSONDecodeError" in row.last_error


def test_eventbrite_foreign_host_and_test_ping_are_ignored_without_fetch(world):
    engine, _, eventbrite, _, _ = world
    handlers = build_handlers({"eventbrite": eventbrite},
                              eventbrite_hosts={"www.eventbriteapi.com"})  # fmt: skip
    with engine.begin() as conn:
        foreign = insert_raw(
            conn,
            "webhook_events",
            source="eventbrite",
            body=eb_hook("order.placed", "https://evil.example/v3/orders/1/"),
        )
        ping = insert_raw(
            conn,
            "webhook_events",
            source="eventbrite",
            body=eb_hook("test", "{api-endpoint-to-fetch-object-details}"),
        )
    report = process_pending(engine, handlers=handlers, now=NOW)
    with engine.begin() as conn:
        foreign_row = raw_row(conn, "webhook_events", foreign)
        ping_row = raw_row(conn, "webhook_events", ping)
    assert report.ignored == 2 and eventbrite.calls == []
    assert foreign_row.status == "ignored" and foreign_row.last_error.startswith("FOREIGN_HOST")
    assert ping_row.status == "ignored" and ping_row.last_error.startswith("TEST_PING")


def test_eventbrite_foreign_host_refused_by_the_adapter_is_ignored(world):
    engine, _, _, _, handlers = world  # no allowed_hosts: the fetcher decides
    with engine.begin() as conn:
        rid = insert_raw(
            conn,
            "webhook_events",
            source="eventbrite",
            body=eb_hook("order.placed", "https://evil.example/v3/orders/1/"),
        )
    report = process_pending(engine, handlers=handlers, now=NOW)
    with engine.begin() as conn:
        row = raw_row(conn, "webhook_events", rid)
    assert report.ignored == 1
    assert row.status == "ignored" and row.last_error == "FOREIGN_HOST: evil.example"


def test_unknown_event_is_ignored(world):
    engine, _, eventbrite, _, handlers = world
    url = f"{EB}/orders/2/"
    eventbrite.pages[url] = [reg("att-9", event="eb-other")]
    with engine.begin() as conn:
        rid = insert_raw(
            conn, "webhook_events", source="eventbrite", body=eb_hook("attendee.updated", url)
        )
    process_pending(engine, handlers=handlers, now=NOW)
    with engine.begin() as conn:
        row = raw_row(conn, "webhook_events", rid)
    assert row.status == "ignored" and row.last_error.startswith("UNKNOWN_EVENT")


def test_duplicate_stripe_events_make_one_payment(world):
    engine, _, _, _, handlers = world
    with engine.begin() as conn:
        upsert_registrations(conn, [reg("att-1", email="ayse@example.com")], actor="t")
        target = registration(conn, "eventbrite", "att-1")
        ref = f"REG-{target.id}"
        completed = stripe_event("evt_1", "checkout.session.completed", session(ref))
        insert_raw(conn, "webhook_events", source="stripe", body=completed, dedupe_key="evt_1")
        # the same event again under another delivery key, and the PaymentIntent's own event
        insert_raw(conn, "webhook_events", source="stripe", body=completed, dedupe_key="evt_1b")
        intent = {"object": "payment_intent", "id": "pi_1", "amount_received": 25000,
                  "currency": "try", "metadata": {"registration_ref": ref}}  # fmt: skip
        insert_raw(
            conn,
            "webhook_events",
            source="stripe",
            body=stripe_event("evt_2", "payment_intent.succeeded", intent),
        )
    report = process_pending(engine, handlers=handlers, now=NOW)
    again = process_pending(engine, handlers=handlers, now=NOW)
    with engine.begin() as conn:
        payments = conn.execute(text("select * from app.payments")).all()
        after = registration(conn, "eventbrite", "att-1")
    assert report.processed == 3 and again.total == 0
    assert len(payments) == 1
    assert payments[0].provider_payment_id == "pi_1" and payments[0].currency == "TRY"
    assert payments[0].status == "paid" and payments[0].registration_id == target.id
    assert after.payment_status == "paid"


def test_unpaid_checkout_is_ignored_and_refund_is_applied(world):
    engine, _, _, _, handlers = world
    with engine.begin() as conn:
        upsert_registrations(conn, [reg("att-1", email="ayse@example.com")], actor="t")
        unpaid = stripe_event("evt_u", "checkout.session.completed",
                              session(payment_status="unpaid", pi="pi_2"))  # fmt: skip
        rid = insert_raw(conn, "webhook_events", source="stripe", body=unpaid)
    report = process_pending(engine, handlers=handlers, now=NOW)
    with engine.begin() as conn:
        row = raw_row(conn, "webhook_events", rid)
        assert count(conn, "app.payments") == 0
    assert report.ignored == 1
    assert row.status == "ignored" and row.last_error.startswith("UNPAID")

    with engine.begin() as conn:  # paid by e-mail+amount, then refunded
        insert_raw(
            conn,
            "webhook_events",
            source="stripe",
            body=stripe_event(
                "evt_p", "checkout.session.async_payment_succeeded", session(pi="pi_3")
            ),
        )
        charge = {
            "object": "charge",
            "id": "ch_1",
            "payment_intent": "pi_3",
            "amount_refunded": 25000,
            "refunded": True,
            "currency": "try",
        }
        insert_raw(
            conn,
            "webhook_events",
            source="stripe",
            body=stripe_event("evt_r", "charge.refunded", charge),
        )
    report = process_pending(engine, handlers=handlers, now=NOW)
    with engine.begin() as conn:
        after = registration(conn, "eventbrite", "att-1")
    assert report.processed == 2
    assert after.payment_status == "refunded"


def test_inbound_emails_become_payments(world):
    engine, _, _, _, handlers = world
    with engine.begin() as conn:
        upsert_registrations(conn, [reg("att-1", name="Ahmet Yılmaz")], actor="t")
        target = registration(conn, "eventbrite", "att-1")
        sendgrid = (FIXTURES / "enpara_sendgrid_iso88599.form").read_bytes()
        sendgrid_headers = json.loads(
            (FIXTURES / "enpara_sendgrid_iso88599.headers.json").read_text()
        )
        first = insert_raw(
            conn,
            "inbound_emails",
            source="sendgrid",
            body=sendgrid,
            headers=sendgrid_headers,
            dedupe_key="a",
        )
        insert_raw(
            conn,
            "inbound_emails",
            source="sendgrid",
            body=sendgrid,
            headers=sendgrid_headers,
            dedupe_key="b",
        )  # the same mail twice
        sms = (
            f"Hesabiniza 15.03.2025 11:42'de AHMET YILMAZ tarafindan 250,00 TL tutarinda "
            f"FAST gonderilmistir. Aciklama: REG-{target.id}"
        )
        form = urlencode(
            {
                "body-plain": sms,
                "subject": "Fwd: SMS",
                "message-headers": json.dumps([["Message-Id", "<m-1@x>"]]),
            }
        ).encode()
        mailgun = insert_raw(
            conn,
            "inbound_emails",
            source="mailgun",
            body=form,
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        news = insert_raw(
            conn,
            "inbound_emails",
            source="mailgun",
            body=(FIXTURES / "newsletter_no_payment.eml").read_bytes(),
            headers={"Content-Type": "message/rfc822"},
        )
    report = process_pending(engine, handlers=handlers, now=NOW)
    with engine.begin() as conn:
        payments = conn.execute(text("select * from app.payments order by id")).all()
        after = registration(conn, "eventbrite", "att-1")
        statuses = {i: raw_row(conn, "inbound_emails", i).status for i in (first, mailgun, news)}
    assert report.by_source["sendgrid"]["processed"] == 2
    assert statuses == {first: "processed", mailgun: "processed", news: "ignored"}
    assert len(payments) == 2  # the repeated SendGrid mail is one payment
    enpara, garanti = payments
    assert enpara.provider == "email" and enpara.amount_minor == 25050
    assert enpara.payer_name == "İSMAİL IŞIK" and enpara.status == "unmatched"
    assert garanti.status == "paid" and garanti.registration_id == target.id
    assert after.payment_status == "paid"


def test_delivery_statuses_wait_unprocessed_and_other_rows_untouched(world):
    """No message table yet: a delivery report is kept 'received', never 'processed' with
    nothing stored (the messaging issue gives them their handler)."""
    engine, _, _, _, handlers = world
    with engine.begin() as conn:
        wa = insert_raw(conn, "webhook_events", source="whatsapp", body={"object": "x"})
        sms = insert_raw(conn, "webhook_events", source="netgsm", body={"jobid": "1"})
        flagged = insert_raw(
            conn,
            "webhook_events",
            source="stripe",
            body={},
            status="flagged",
            flag="bad_signature",
            verified=False,
        )
        unverified = insert_raw(conn, "webhook_events", source="stripe", body={}, verified=False)
        unknown = insert_raw(conn, "webhook_events", source="meetup", body={})
    report = process_pending(engine, handlers=handlers, now=NOW)
    with engine.begin() as conn:
        status = {i: raw_row(conn, "webhook_events", i) for i in (wa, sms, flagged, unverified,
                                                                  unknown)}  # fmt: skip
    assert report.total == 0
    assert status[wa].status == status[sms].status == "received"
    assert status[wa].attempts == status[sms].attempts == 0
    assert status[flagged].status == "flagged" and status[flagged].attempts == 0
    assert status[unverified].status == "received" and status[unverified].attempts == 0
    assert status[unknown].status == "received"


def test_batch_size_bounds_the_work(world):
    engine, _, _, _, handlers = world
    with engine.begin() as conn:
        for i in range(5):
            insert_raw(conn, "webhook_events", source="stripe", body={"type": "ping", "n": i})
    assert process_pending(engine, handlers=handlers, batch_size=2, now=NOW).ignored == 2
    assert process_pending(engine, handlers=handlers, batch_size=10, now=NOW).ignored == 3
    assert T0 < NOW


# --------------------------------------------------------------------------- real adapter


def _luma_event():
    import uuid

    from hub.models import Event

    return Event(
        id=uuid.uuid4(), slug="pyistanbul-42", title="PyIstanbul #42", description="",
        starts_at=datetime(2026, 6, 1, 15, 30, tzinfo=UTC),
        ends_at=datetime(2026, 6, 1, 18, tzinfo=UTC), timezone="Europe/Istanbul",
        venue_name="Kadıköy", total_capacity=50, price_minor=0, currency="TRY",
        status="scheduled", version=1,
    )  # fmt: skip


def test_real_luma_adapter_shared_across_calls(clean_db):
    """LumaAdapter over real HTTP (the Luma emulator), one client reused by two runs."""
    from hub.ingest import run_async
    from integrations.luma import LumaAdapter
    from integrations.sandbox.common import serve_in_thread
    from integrations.sandbox.credentials import LUMA_API_KEY
    from integrations.sandbox.luma import create_app

    server = serve_in_thread(create_app(None))
    adapter = LumaAdapter(server.url, api_key=LUMA_API_KEY)
    try:
        sandbox = server.app.extensions["sandbox"]
        publication = run_async(adapter.publish_event(_luma_event(), 50))
        luma_event_id = publication.platform_event_id
        guest_ids = sandbox.simulate_registrations(luma_event_id, 2, seed=3)
        with clean_db.begin() as conn:
            make_event(conn, channels={"luma": luma_event_id})
            for guest_id in guest_ids:
                insert_raw(conn, "webhook_events", source="luma",
                           body={"type": "guest.registered",
                                 "data": {"api_id": guest_id,
                                          "event": {"api_id": luma_event_id}}})  # fmt: skip
        handlers = build_handlers({"luma": adapter})
        first = process_pending(clean_db, handlers=handlers, batch_size=1, now=NOW)
        second = process_pending(clean_db, handlers=handlers, batch_size=1, now=NOW)
        with clean_db.begin() as conn:
            stored = conn.execute(
                text("select platform_registration_id, status from app.registrations")
            ).all()
    finally:
        run_async(adapter.aclose())
        server.stop()
    assert first.processed == 1 and second.processed == 1
    assert sorted(r.platform_registration_id for r in stored) == sorted(guest_ids)
    assert {r.status for r in stored} <= {"pending", "approved", "waitlist"}


def test_eventbrite_hint_the_platform_cannot_back_is_ignored_not_processed(world):
    """A hint whose re-read names nothing (a path that is no order or attendee) or an order
    the platform does not have was marked 'processed' with nothing done."""
    from hub.errors import NotFound

    engine, _, eventbrite, _, handlers = world
    eventbrite.errors[f"{EB}/orders/404404/"] = NotFound("eventbrite", "no such order")
    with engine.begin() as conn:
        missing = insert_raw(
            conn,
            "webhook_events",
            source="eventbrite",
            body=eb_hook("order.placed", f"{EB}/orders/404404/"),
        )
        nothing = insert_raw(conn, "webhook_events", source="eventbrite",
                             body=eb_hook("order.placed", f"{EB}/users/me/"))  # fmt: skip
    report = process_pending(engine, handlers=handlers, now=NOW)
    with engine.begin() as conn:
        missing_row = raw_row(conn, "webhook_events", missing)
        nothing_row = raw_row(conn, "webhook_events", nothing)
        assert count(conn, "app.registrations") == 0
    assert report.ignored == 2 and report.processed == 0
    assert missing_row.last_error.startswith("NOT_ON_PLATFORM")
    assert nothing_row.last_error.startswith("NOTHING_TO_FETCH")
