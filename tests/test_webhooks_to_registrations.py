"""The platforms' real webhooks, delivered twice and out of order, through the receiver
(real HTTP) and the ingest (re-reading through the adapters), end as exactly one
registration each."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from sqlalchemy import func, select

from hub.db import get_engine, registrations, transaction, webhook_events
from hub.events import create_event, parse_spec
from hub.ingest import process_pending
from hub.vault import Vault
from integrations.factory import build_adapter
from integrations.ingest_handlers import build_handlers
from integrations.sandbox.common import serve_in_thread
from orchestration.syndication.publisher import sync_event
from tests.sandboxes import running_sandboxes
from webhook_receiver.app import create_app

EVENT = {
    "title": "Webhook Günü",
    "starts_at": "2026-12-20T18:00:00",
    "ends_at": "2026-12-20T20:00:00",
    "total_capacity": 200,
    "price": "0",
    "currency": "TRY",
    "channels": {"meetup": None, "eventbrite": None, "luma": None},
}


@pytest.fixture()
def world(clean_db, tmp_path):
    with running_sandboxes(tmp_path) as boxes:
        receiver = serve_in_thread(create_app(boxes.settings))
        try:
            yield boxes, receiver
        finally:
            receiver.stop()


def _count(engine, table, **where):
    query = select(func.count()).select_from(table)
    for column, value in where.items():
        query = query.where(table.c[column] == value)
    with engine.connect() as conn:
        return conn.scalar(query)


def _ingest(boxes):
    async def build():
        client = httpx.AsyncClient(timeout=10)
        vault = Vault(settings=boxes.settings)
        return {p: build_adapter(p, boxes.settings, vault, client) for p in ("eventbrite", "luma")}

    adapters = asyncio.run(build())
    return process_pending(get_engine(), handlers=build_handlers(adapters), batch_size=500)


def test_duplicate_and_out_of_order_webhooks_end_as_one_registration_each(world):
    boxes, receiver = world
    engine = get_engine()
    with transaction() as conn:
        event = create_event(conn, parse_spec(EVENT), actor="test")

    async def setup():
        vault = Vault(settings=boxes.settings)
        async with httpx.AsyncClient(timeout=10) as client:
            adapters = {
                p: build_adapter(p, boxes.settings, vault, client) for p in ("eventbrite", "luma")
            }
            outcomes = await sync_event(engine, event.id, adapters, actor="test")
            await adapters["eventbrite"].register_webhook(
                f"{receiver.url}/webhooks/eventbrite", ["order.placed", "order.refunded"]
            )
            await adapters["luma"].register_webhook(
                f"{receiver.url}/webhooks/luma", ["guest.registered", "guest.updated"]
            )
            return {o.platform: o.platform_event_id for o in outcomes}

    ids = asyncio.run(setup())
    for platform in ("eventbrite", "luma"):
        httpx.post(
            f"{boxes.url(platform)}/_sandbox/config",
            json={"webhooks": {"duplicate": True, "out_of_order": True}},
        )
    orders = boxes.sandbox("eventbrite").simulate_registrations(ids["eventbrite"], 12, seed=3)
    guests = boxes.sandbox("luma").simulate_registrations(ids["luma"], 10, seed=3)
    for platform in ("eventbrite", "luma"):
        assert boxes.sandbox(platform).sender.wait_idle(30)

    # Every delivery arrived twice; each is stored once.
    assert _count(engine, webhook_events, source="luma") == len(guests)
    placed = (
        select(func.count())
        .select_from(webhook_events)
        .where(
            webhook_events.c.source == "eventbrite", webhook_events.c.event_type == "order.placed"
        )
    )
    with engine.connect() as conn:
        assert conn.scalar(placed) == len(orders)

    report = _ingest(boxes)
    assert report.failed == 0 and report.retried == 0
    attendees = boxes.sandbox("eventbrite").store.count("attendee")
    assert _count(engine, registrations, platform="eventbrite") == attendees
    assert _count(engine, registrations, platform="luma") == len(guests)
    with engine.connect() as conn:
        statuses = set(
            conn.scalars(select(registrations.c.status).where(registrations.c.platform == "luma"))
        )
    assert statuses == {"pending"}  # Luma requires approval: the API's word, re-read

    # Nothing is processed twice.
    again = _ingest(boxes)
    assert again.total == 0
    assert _count(engine, registrations) == attendees + len(guests)

    # A refund arrives as a webhook too and updates the same registrations.
    httpx.post(f"{boxes.url('eventbrite')}/_sandbox/config", json={"webhooks": None})
    httpx.post(
        f"{boxes.url('eventbrite')}/_sandbox/simulate/refund", json={"order_id": orders[0]}
    ).raise_for_status()
    assert boxes.sandbox("eventbrite").sender.wait_idle(30)
    _ingest(boxes)
    assert _count(engine, registrations, platform="eventbrite") == attendees
    assert _count(engine, registrations, platform="eventbrite", status="cancelled") >= 1


def test_luma_hints_are_reread_and_forged_ones_create_nothing(world):
    """Luma documents no signature scheme, so a delivery is an unverified hint: any header
    (or none) is accepted, no secret is consulted (the vault holds a wrong one here), and
    the ingest stores only what the API returns for the ids named. A forged hint for a
    guest Luma does not have creates nothing; one that lies about a real guest's status and
    e-mail is stored as the API has the guest."""
    boxes, receiver = world
    engine = get_engine()
    with transaction() as conn:
        event = create_event(conn, parse_spec(EVENT), actor="test")

    async def setup():
        vault = Vault(settings=boxes.settings)
        async with httpx.AsyncClient(timeout=10) as client:
            luma = build_adapter("luma", boxes.settings, vault, client)
            outcomes = await sync_event(engine, event.id, {"luma": luma}, actor="test")
            await luma.register_webhook(f"{receiver.url}/webhooks/luma", ["guest.registered"])
        vault.set("luma_webhook", {"secret": "not-the-secret", "id": "whk-x"})
        return outcomes[0].platform_event_id

    luma_event = asyncio.run(setup())
    guests = boxes.sandbox("luma").simulate_registrations(luma_event, 3, seed=5)
    assert boxes.sandbox("luma").sender.wait_idle(30)
    assert _count(engine, webhook_events, source="luma", status="received") == len(guests)
    forged = [
        {"type": "guest.registered", "data": {"api_id": "gst-x", "event": {"api_id": luma_event}}},
        # a real guest claimed for an event Luma does not have them in
        {"type": "guest.updated", "data": {"id": guests[1], "event": {"id": "evt-elsewhere00000"}}},
        {
            "type": "guest.updated",
            "data": {
                "api_id": guests[0],
                "approval_status": "approved",
                "user_email": "attacker@example.com",
                "event": {"api_id": luma_event},
            },
        },
    ]
    for payload in forged:
        resp = httpx.post(
            f"{receiver.url}/webhooks/luma", json=payload, headers={"x-luma-signature": "0" * 64}
        )
        assert resp.status_code == 200, resp.text
    _ingest(boxes)
    assert _count(engine, registrations, platform="luma") == len(guests)
    assert _count(engine, webhook_events, source="luma", status="ignored") == 2
    with engine.connect() as conn:
        row = conn.execute(
            select(registrations.c.status, registrations.c.email).where(
                registrations.c.platform_registration_id == guests[0]
            )
        ).one()
    api_guest = boxes.sandbox("luma").find_guest(luma_event, guest_id=guests[0])
    assert row.email == api_guest["user_email"] != "attacker@example.com"
    assert row.status == "pending"
