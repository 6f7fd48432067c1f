"""Paid native checkout over real HTTP: the receiver (pages + webhooks) on a loopback port,
the Stripe emulator on another, the real seat ledger, PostgreSQL and Redis.

The emulator's signed webhooks land in raw.webhook_events through the receiver; the
ingest (hub.ingest.process_pending with the standard handlers) turns them into order
decisions, as the Dagster sensor does in production."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from checkout_site import checkout_site
from sqlalchemy import text
from sqlalchemy.engine import Engine
from stripe_sandbox import StripeBox

from hub.capacity import SeatLedger, release_expired_holds
from hub.events import create_event, parse_spec
from hub.ingest import process_pending
from hub.models import Event
from hub.settings import Settings
from integrations.ingest_handlers import build_handlers
from integrations.sandbox.common import ServerHandle
from integrations.stripe_checkout import StripeCheckout


@dataclass
class Stack:
    box: StripeBox
    receiver: ServerHandle
    http: httpx.Client
    engine: Engine
    settings: Settings

    def checkout(self, event: Event, **who: str) -> httpx.Response:
        body = {
            "event": event.slug,
            "full_name": "Mehmet Yılmaz",
            "email": f"mehmet.{uuid.uuid4().hex[:8]}@example.com",
            "phone": f"0533 {uuid.uuid4().int % 900 + 100} 12 34",
            "consent": True,
        } | who
        return self.http.post("/checkout", json=body, headers={"Idempotency-Key": uuid.uuid4().hex})

    def ingest(self) -> Any:
        """Wait until the emulator has delivered everything, then run the ingest."""
        self.box.deliveries(wait=10)
        return process_pending(self.engine, handlers=build_handlers())

    def order(self, order_no: str) -> dict[str, Any]:
        response = self.http.get(f"/orders/{order_no}", headers={"Accept": "application/json"})
        assert response.status_code == 200
        return response.json()

    def row(self, sql: str, **params: Any) -> Any:
        with self.engine.connect() as conn:
            return conn.execute(text(sql), params).first()


@pytest.fixture()
def stack(tmp_path, hub_settings: Settings, clean_db: Engine) -> Iterator[Stack]:
    with (
        checkout_site(tmp_path) as site,
        httpx.Client(base_url=site.url, timeout=20) as http,
    ):
        yield Stack(site.box, site.server, http, clean_db, site.settings)


def paid_event(engine: Engine, **overrides: Any) -> Event:
    start = datetime.now(UTC) + timedelta(days=10)
    spec = {
        "title": "Django Atölyesi",
        "starts_at": start.isoformat(),
        "ends_at": (start + timedelta(hours=4)).isoformat(),
        "capacity": 5,
        "channels": {"native": 2, "luma": None},
        "price": 250,
        "slug": f"dj-{uuid.uuid4().hex[:10]}",
    } | overrides
    with engine.begin() as conn:
        return create_event(conn, parse_spec(spec), actor="test")


def session_id_of(order: dict[str, Any]) -> str:
    return order["payment_url"].rstrip("/").rsplit("/", 1)[-1]


def events_of(order: dict[str, Any]) -> list[str]:
    return [entry["event"] for entry in order["timeline"]]


def assert_paid_once(stack: Stack, order_no: str) -> None:
    order = stack.order(order_no)
    assert order["status"] == "confirmed"
    assert events_of(order).count("confirmed") == 1 and events_of(order).count("paid") == 1
    count = stack.row(
        "select count(*) as n from app.registrations where order_no = :o", o=order_no
    ).n
    assert count == 1
    reg = stack.row("select * from app.registrations where order_no = :o", o=order_no)
    assert reg.platform == "native" and reg.status == "approved"
    assert reg.payment_status == "paid" and reg.amount_minor == 25000
    hold = stack.row("select * from app.seat_holds where order_no = :o", o=order_no)
    assert hold.status == "confirmed" and hold.registration_id == reg.id


def test_paid_webhook_first_then_success_page_twice(stack: Stack) -> None:
    event = paid_event(stack.engine)
    created = stack.checkout(event, ref="newsletter")
    assert created.status_code == 201, created.text
    order = created.json()
    assert order["status"] == "awaiting_payment"
    assert events_of(order) == ["created", "held", "redirected"]
    assert order["payment_url"].startswith(stack.box.url + "/pay/cs_")
    session_id = session_id_of(order)
    session = StripeCheckout.from_settings(stack.settings).retrieve_session(session_id)
    assert session.client_reference_id == order["order_no"]
    assert session.metadata["order_no"] == order["order_no"]
    assert session.metadata["event_id"] == str(event.id)
    hold = stack.row("select * from app.seat_holds where order_no = :o", o=order["order_no"])
    assert abs((session.expires_at - hold.expires_at).total_seconds()) < 1  # tied
    assert session.expires_at >= datetime.now(UTC) + timedelta(minutes=30)

    stack.box.complete(session_id, email="mehmet@example.com", name="Mehmet Yılmaz")
    report = stack.ingest()
    assert report.failed == 0
    assert_paid_once(stack, order["order_no"])
    for _ in range(2):
        back = stack.http.get(f"/checkout/success?session_id={session_id}")
        assert back.status_code == 303
        assert back.headers["location"].startswith(f"/orders/{order['order_no']}")
    assert_paid_once(stack, order["order_no"])
    page = stack.http.get(f"/orders/{order['order_no']}?lang=en")
    assert "Your registration is confirmed" in page.text
    payment = stack.row("select * from app.payments where provider = 'stripe'")
    reg = stack.row("select id from app.registrations where order_no = :o", o=order["order_no"])
    assert payment.registration_id == reg.id and payment.status == "paid"


def test_success_page_first_then_webhook_redelivered(stack: Stack) -> None:
    event = paid_event(stack.engine, approval_required=True)
    order = stack.checkout(event).json()
    session_id = session_id_of(order)
    stack.box.complete(session_id)
    back = stack.http.get(f"/checkout/success?session_id={session_id}", follow_redirects=True)
    assert back.status_code == 200
    assert "onay bekliyor" in back.text  # approval required: registered, pending
    first = stack.order(order["order_no"])
    assert first["status"] == "confirmed" and first["registration_status"] == "pending"
    stack.ingest()  # the webhook arrives afterwards
    deliveries = stack.box.deliveries()["deliveries"]
    completed = [d for d in deliveries if d.get("type") == "checkout.session.completed"]
    if completed:
        stack.box.control(f"/events/{completed[0]['event_id']}/resend")
    stack.ingest()
    again = stack.order(order["order_no"])
    assert again["timeline"] == first["timeline"]  # nothing happened twice
    count = stack.row(
        "select count(*) as n from app.registrations where order_no = :o", o=order["order_no"]
    ).n
    assert count == 1


def test_expired_session_releases_the_seat(stack: Stack) -> None:
    event = paid_event(stack.engine, capacity=1, channels={"native": 1})
    order = stack.checkout(event).json()
    assert "Sold out" in stack.http.get(f"/e/{event.slug}?lang=en").text  # held
    sold_out = stack.checkout(event)
    assert sold_out.status_code == 409 and sold_out.json()["error"] == "sold_out"
    stack.box.expire_now(session_id_of(order))
    stack.ingest()
    expired = stack.order(order["order_no"])
    assert expired["status"] == "expired" and "expired" in events_of(expired)
    hold = stack.row("select status from app.seat_holds where order_no = :o", o=order["order_no"])
    assert hold.status in ("released", "expired")
    assert "1 seats left" in stack.http.get(f"/e/{event.slug}?lang=en").text or (
        "Last seat left" in stack.http.get(f"/e/{event.slug}?lang=en").text
    )
    assert stack.checkout(event).status_code == 201  # the seat sells again


def _expire_hold_now(stack: Stack, order_no: str) -> None:
    with stack.engine.begin() as conn:
        conn.execute(
            text(
                "update app.seat_holds set expires_at = now() - interval '1 second' "
                "where order_no = :o"
            ),
            {"o": order_no},
        )
    assert release_expired_holds(SeatLedger.from_settings(stack.settings)) == 1


def test_late_payment_retakes_a_free_seat(stack: Stack) -> None:
    event = paid_event(stack.engine, capacity=2, channels={"native": 2})
    order = stack.checkout(event).json()
    session_id = session_id_of(order)
    stack.box.complete(session_id)  # paid in the last second ...
    _expire_hold_now(stack, order["order_no"])  # ... while the expiry job ran
    expired = stack.order(order["order_no"])
    assert expired["status"] == "expired"
    assert "paid_after_expiry" in events_of(expired)
    stack.ingest()
    late = stack.order(order["order_no"])
    assert late["status"] == "confirmed"
    assert events_of(late)[-3:] == ["seat_retaken", "confirmed", "approved"]
    assert_paid_once(stack, order["order_no"])


def test_late_payment_without_a_seat_is_refunded(stack: Stack) -> None:
    event = paid_event(stack.engine, capacity=1, channels={"native": 1})
    order = stack.checkout(event).json()
    stack.box.complete(session_id_of(order))
    _expire_hold_now(stack, order["order_no"])
    other = stack.checkout(event)  # someone else takes the freed seat
    assert other.status_code == 201, other.text
    stack.ingest()
    refunded = stack.order(order["order_no"])
    assert refunded["status"] == "refunded"
    assert events_of(refunded)[-2:] == ["no_seat", "refunded"]
    row = stack.row("select * from app.orders where order_no = :o", o=order["order_no"])
    assert row.stripe_refund_id and row.stripe_refund_id.startswith("re_")
    refund = httpx.get(
        f"{stack.box.url}/v1/refunds/{row.stripe_refund_id}",
        headers={"Authorization": f"Bearer {stack.settings.secret('stripe_secret_key')}"},
    ).json()
    assert refund["amount"] == 25000 and refund["payment_intent"] == row.stripe_payment_intent
    notice = stack.row(
        "select * from app.outbox where kind = 'notify.email' and event_id = :e", e=event.id
    )
    assert notice.payload["template"] == "late_payment_refunded"
    assert notice.payload["order_no"] == order["order_no"]
    assert (
        stack.row(
            "select count(*) as n from app.registrations where order_no = :o", o=order["order_no"]
        ).n
        == 0
    )
    page = stack.http.get(f"/orders/{order['order_no']}?lang=en")
    assert "it has been refunded" in page.text
    stack.ingest()  # charge.refunded and any redelivery: still one refund, same state
    assert stack.order(order["order_no"])["timeline"] == refunded["timeline"]


def test_stripe_down_sells_nothing_and_the_key_can_be_retried(stack: Stack) -> None:
    event = paid_event(stack.engine, capacity=1, channels={"native": 1})
    key = uuid.uuid4().hex
    body = {"event": event.slug, "full_name": "Elif Demir", "email": "elif@example.com",
            "phone": "0532 987 65 43", "consent": True}  # fmt: skip
    stack.box.faults(fail_next=3, status=500)  # the SDK's request and both its retries
    down = stack.http.post("/checkout", json=body, headers={"Idempotency-Key": key})
    assert down.status_code == 503 and down.headers["Retry-After"]
    assert down.json()["error"] == "payment_unavailable"
    failed = stack.row("select * from app.orders")
    assert failed.status == "failed"
    hold = stack.row("select status from app.seat_holds where order_no = :o", o=failed.order_no)
    assert hold.status == "released"
    assert "1 seats left" in stack.http.get(f"/e/{event.slug}?lang=en").text or (
        "Last seat left" in stack.http.get(f"/e/{event.slug}?lang=en").text
    )
    again = stack.http.post("/checkout", json=body, headers={"Idempotency-Key": key})
    assert again.status_code == 201 and again.json()["status"] == "awaiting_payment"
    assert again.json()["order_no"] != failed.order_no


def test_order_page_ends_an_order_whose_hold_passed(stack: Stack) -> None:
    event = paid_event(stack.engine)
    order = stack.checkout(event).json()
    with stack.engine.begin() as conn:
        conn.execute(
            text(
                "update app.orders set hold_expires_at = now() - interval '1 second' "
                "where order_no = :o"
            ),
            {"o": order["order_no"]},
        )
        conn.execute(
            text(
                "update app.seat_holds set expires_at = now() - interval '1 second' "
                "where order_no = :o"
            ),
            {"o": order["order_no"]},
        )
    shown = stack.order(order["order_no"])
    assert shown["status"] == "expired" and shown["payment_url"] is None
    session = StripeCheckout.from_settings(stack.settings).retrieve_session(session_id_of(order))
    assert session.status == "expired"  # expired through the API: nobody can pay it now
