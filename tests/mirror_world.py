"""Helpers for the capacity-mirror tests: an event published to the three sandboxes over
real HTTP, seats written straight into the ledger, the platforms read back through their
own APIs (integrations.sandbox.probes, not the adapters), and a relay in a thread."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import httpx
from sqlalchemy import text
from sqlalchemy.engine import Engine

from bench.mirror import platform_ids, take_native_seat
from hub.db import get_engine, transaction
from hub.events import create_event, parse_spec
from hub.outbox_relay import Relay, RelayPolicy
from hub.vault import Vault
from integrations.factory import build_adapter
from integrations.sandbox.probes import PlatformState, platform_state
from orchestration.syndication.publisher import sync_event
from tests.sandboxes import PLATFORMS, Sandboxes

EVENT = {
    "title": "Kapasite Aynası",
    "description": "Mirror test",
    "starts_at": "2027-02-11T19:00:00",
    "ends_at": "2027-02-11T21:00:00",
    "venue": {"name": "Kolektif House", "address": "Levent, İstanbul"},
    "total_capacity": 20,
    "price": "0",
    "currency": "TRY",
    "channels": {"native": 8, "meetup": None, "eventbrite": None, "luma": None},
}


def published_event(boxes: Sandboxes, **changes: Any) -> tuple[Any, dict[str, str]]:
    """Create the event and publish it to every sandbox; (event, platform ids)."""
    with transaction() as conn:
        event = create_event(conn, parse_spec({**EVENT, **changes}), actor="test")

    async def publish() -> None:
        vault = Vault(settings=boxes.settings)
        async with httpx.AsyncClient(timeout=10) as client:
            adapters = {p: build_adapter(p, boxes.settings, vault, client) for p in PLATFORMS}
            outcomes = await sync_event(get_engine(), event.id, adapters, actor="test")
        assert all(o.ok for o in outcomes), outcomes

    asyncio.run(publish())
    return event, platform_ids(get_engine(), event.id)


def take_seats(event_id: UUID, count: int, *, pool: str = "shared") -> list[str]:
    """``count`` confirmed native seats and the mirror's outbox rows, in one commit."""
    with transaction() as conn:
        return [take_native_seat(conn, event_id, pool=pool) for _ in range(count)]


def insert_seats(event_id: UUID, count: int, *, pool: str, channel: str = "native") -> None:
    """Seats without any outbox row (the state before the test's enqueue)."""
    with transaction() as conn:
        for i in range(count):
            conn.execute(
                text(
                    "insert into app.seat_holds (event_id, hold_key, channel, pool, status) "
                    "values (:e, :k, :c, :p, 'confirmed')"
                ),
                {"e": event_id, "k": f"t-{pool}-{time.time_ns()}-{i}", "c": channel, "p": pool},
            )


def release_seats(event_id: UUID, keys: list[str]) -> None:
    from hub.outbox import enqueue_capacity_mirror

    with transaction() as conn:
        conn.execute(
            text(
                "update app.seat_holds set status = 'released' "
                "where event_id = :e and hold_key = any(:k)"
            ),
            {"e": event_id, "k": keys},
        )
        enqueue_capacity_mirror(conn, event_id)


def states(boxes: Sandboxes, ids: dict[str, str]) -> dict[str, PlatformState]:
    urls = {p: boxes.url(p) for p in PLATFORMS}
    return platform_state(urls, Vault(settings=boxes.settings), ids, boxes.state_dir)


def wait_until(check: Callable[[], Any], timeout: float = 10.0, every: float = 0.02) -> Any:
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(every)
    raise AssertionError(f"not reached within {timeout} s (last: {last!r})")


def outbox_rows(engine: Engine, event_id: UUID) -> dict[str, Any]:
    with engine.connect() as conn:
        rows = conn.execute(
            text("select * from app.outbox where event_id = :e order by id"), {"e": event_id}
        ).all()
    return {r.payload["platform"]: r for r in rows}


def all_delivered(engine: Engine, event_id: UUID) -> bool:
    rows = outbox_rows(engine, event_id)
    return bool(rows) and all(r.status == "delivered" for r in rows.values())


@dataclass
class RunningRelay:
    relay: Relay
    thread: threading.Thread
    stop: threading.Event


@contextmanager
def relay_thread(settings: Any, policy: RelayPolicy | None = None, **kw: Any) -> Iterator[Relay]:
    relay = Relay(get_engine(settings), settings, policy=policy, **kw)
    stop = threading.Event()
    thread = threading.Thread(target=relay.run, args=(stop,), daemon=True)
    thread.start()
    assert relay.listening.wait(15), "relay did not start listening"
    try:
        yield relay
    finally:
        stop.set()
        thread.join(30)
        assert not thread.is_alive(), "relay did not stop"
