"""Syndication against the three sandboxes over real HTTP: publish concurrently, store
ids, re-run creates nothing, changes become updates, one failure blocks no one, a lost
reply is adopted instead of duplicated, and pulls bring registrations back."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from sqlalchemy import func, select

from hub.db import (
    event_channels,
    get_engine,
    platform_pulls,
    registrations,
    sync_cursors,
    transaction,
)
from hub.events import create_event, get_event, parse_spec, update_event
from hub.vault import Vault
from integrations.factory import build_adapter
from orchestration.syndication.publisher import sync_event
from orchestration.syndication.puller import pull_registrations
from tests.sandboxes import PLATFORMS, running_sandboxes

EVENT = {
    "title": "Veri Günü İstanbul",
    "description": "Dagster & dbt",
    "starts_at": "2026-12-12T14:00:00",
    "ends_at": "2026-12-12T17:00:00",
    "venue": {"name": "Kolektif House", "address": "Levent, İstanbul"},
    "total_capacity": 80,
    "price": "150",
    "currency": "TRY",
    "channels": {"native": 20, "meetup": None, "eventbrite": None, "luma": None},
}


@pytest.fixture()
def boxes(clean_db, tmp_path):
    with running_sandboxes(tmp_path) as sandboxes:
        yield sandboxes


def _event(**changes):
    with transaction() as conn:
        return create_event(conn, parse_spec({**EVENT, **changes}), actor="test")


async def _sync(boxes, event_id, platforms=PLATFORMS, attempts=3):
    vault = Vault(settings=boxes.settings)
    async with httpx.AsyncClient(timeout=10) as client:
        adapters = {p: build_adapter(p, boxes.settings, vault, client) for p in platforms}
        outcomes = await sync_event(
            get_engine(), event_id, adapters, actor="test", attempts=attempts, base_delay=0.05
        )
    return {o.platform: o for o in outcomes}


def _channels(engine, event_id):
    with engine.connect() as conn:
        return {
            r.platform: r
            for r in conn.execute(
                select(event_channels).where(event_channels.c.event_id == event_id)
            )
        }


def _platform_event_count(boxes, platform):
    return boxes.sandbox(platform).store.count("event")


def test_publish_everywhere_then_rerun_creates_nothing(boxes, clean_db):
    event = _event()
    outcomes = asyncio.run(_sync(boxes, event.id))
    assert {p: o.action for p, o in outcomes.items()} == {p: "created" for p in PLATFORMS}
    channels = _channels(clean_db, event.id)
    for platform in PLATFORMS:
        row = channels[platform]
        assert row.status == "published" and row.platform_event_id and row.url
        assert row.published_version == 1 and row.raw_response
    again = asyncio.run(_sync(boxes, event.id))
    assert {o.action for o in again.values()} == {"unchanged"}
    assert [_platform_event_count(boxes, p) for p in PLATFORMS] == [1, 1, 1]


def test_title_time_capacity_change_becomes_update_on_each_platform(boxes, clean_db):
    event = _event()
    asyncio.run(_sync(boxes, event.id))
    with transaction() as conn:
        update_event(
            conn,
            event.id,
            {"title": "Veri Günü İstanbul (salon değişti)", "total_capacity": 120},
            actor="test",
        )
    outcomes = asyncio.run(_sync(boxes, event.id))
    assert {o.action for o in outcomes.values()} == {"updated"}
    assert {
        r.published_version
        for r in _channels(clean_db, event.id).values()
        if r.platform != "native"
    } == {2}
    assert [_platform_event_count(boxes, p) for p in PLATFORMS] == [1, 1, 1]


def test_one_platform_down_does_not_block_others_and_retry_publishes_once(boxes, clean_db):
    event = _event()
    boxes.servers["eventbrite"].stop()
    outcomes = asyncio.run(_sync(boxes, event.id, attempts=2))
    assert outcomes["eventbrite"].action == "failed"
    assert "eventbrite" in outcomes["eventbrite"].error
    assert outcomes["meetup"].action == outcomes["luma"].action == "created"
    assert _channels(clean_db, event.id)["eventbrite"].status == "failed"
    boxes.restart("eventbrite")
    outcomes = asyncio.run(_sync(boxes, event.id))
    assert outcomes["eventbrite"].action == "created"
    assert outcomes["meetup"].action == outcomes["luma"].action == "unchanged"
    assert [_platform_event_count(boxes, p) for p in PLATFORMS] == [1, 1, 1]


def test_rate_limit_is_honoured_and_transient_5xx_retried(boxes, clean_db):
    event = _event()
    httpx.post(
        f"{boxes.url('luma')}/_sandbox/config", json={"fail_next": {"count": 2, "status": 503}}
    )
    httpx.post(
        f"{boxes.url('eventbrite')}/_sandbox/config",
        json={"rate_limit": {"limit": 2, "window_seconds": 1}},
    )
    outcomes = asyncio.run(_sync(boxes, event.id, attempts=6))
    assert all(o.ok for o in outcomes.values()), outcomes
    assert outcomes["luma"].attempts >= 3  # two 503s, then success
    # Eventbrite's 429s are waited out request by request (Retry-After): ~6 calls at 2/s
    assert outcomes["eventbrite"].latency_ms > 1500
    assert [_platform_event_count(boxes, p) for p in PLATFORMS] == [1, 1, 1]


def test_lost_reply_is_adopted_not_duplicated(boxes, clean_db):
    """The platform created the event but our commit never happened (crash, lost reply)."""
    event = _event()
    vault = Vault(settings=boxes.settings)

    async def create_behind_our_back():
        async with httpx.AsyncClient(timeout=10) as client:
            for platform in PLATFORMS:
                adapter = build_adapter(platform, boxes.settings, vault, client)
                await adapter.publish_event(event, 60)

    asyncio.run(create_behind_our_back())
    outcomes = asyncio.run(_sync(boxes, event.id))
    assert {o.action for o in outcomes.values()} == {"adopted"}
    assert [_platform_event_count(boxes, p) for p in PLATFORMS] == [1, 1, 1]


def test_pull_registrations_incrementally_into_postgres(boxes, clean_db):
    event = _event()
    asyncio.run(_sync(boxes, event.id))
    channels = _channels(clean_db, event.id)
    counts = {"meetup": 30, "eventbrite": 25, "luma": 20}
    for platform, count in counts.items():
        boxes.sandbox(platform).simulate_registrations(
            channels[platform].platform_event_id, count, seed=7
        )

    async def pull(platform):
        vault = Vault(settings=boxes.settings)
        async with httpx.AsyncClient(timeout=10) as client:
            adapter = build_adapter(platform, boxes.settings, vault, client)
            with get_engine().connect() as conn:
                ev = get_event(conn, event.id)
            return await pull_registrations(
                get_engine(), ev, platform, adapter, actor="test", page_size=10
            )

    first = {p: asyncio.run(pull(p)) for p in PLATFORMS}
    # An Eventbrite order holds one or more attendees; each attendee is a registration.
    counts["eventbrite"] = boxes.sandbox("eventbrite").store.count("attendee")
    with clean_db.connect() as conn:
        stored = dict(
            conn.execute(
                select(registrations.c.platform, func.count()).group_by(registrations.c.platform)
            ).all()
        )
        pages = conn.scalar(select(func.count()).select_from(platform_pulls))
        cursors = conn.scalar(select(func.count()).select_from(sync_cursors))
    assert stored == counts
    assert {p: first[p].inserted for p in PLATFORMS} == counts
    # every page fetched is kept raw (Eventbrite pages by 50 whatever we ask)
    assert pages == sum(first[p].pages for p in PLATFORMS)
    assert first["meetup"].pages >= 3 and first["luma"].pages >= 2
    assert cursors == 3
    # More people register: the stored cursors fetch only what is new.
    for platform in PLATFORMS:
        boxes.sandbox(platform).simulate_registrations(
            channels[platform].platform_event_id, 5, seed=8
        )
    second = {p: asyncio.run(pull(p)) for p in PLATFORMS}
    new_attendees = boxes.sandbox("eventbrite").store.count("attendee") - counts["eventbrite"]
    assert {p: second[p].inserted for p in PLATFORMS} == {
        "meetup": 5,
        "eventbrite": new_attendees,
        "luma": 5,
    }
    for platform in PLATFORMS:
        assert second[platform].items < counts[platform], platform
    with clean_db.connect() as conn:
        emails = conn.scalars(
            select(registrations.c.email_normalized).where(registrations.c.platform == "eventbrite")
        ).all()
    assert all(e == e.strip().lower() for e in emails if e)


def test_two_events_with_same_title_and_time_get_their_own_platform_events(boxes, clean_db):
    """find_existing matches by title and time; a platform event already linked to another
    hub event must not be adopted (it broke the second `make demo` run)."""
    first = _event(slug="veri-gunu-a")
    second = _event(slug="veri-gunu-b")
    asyncio.run(_sync(boxes, first.id))
    outcomes = asyncio.run(_sync(boxes, second.id))
    assert {o.action for o in outcomes.values()} == {"created"}
    assert [_platform_event_count(boxes, p) for p in PLATFORMS] == [2, 2, 2]
    ids_first = {p: r.platform_event_id for p, r in _channels(clean_db, first.id).items()}
    ids_second = {p: r.platform_event_id for p, r in _channels(clean_db, second.id).items()}
    for platform in PLATFORMS:
        assert ids_first[platform] != ids_second[platform]
