"""The outbox relay on real PostgreSQL (LISTEN/NOTIFY, SKIP LOCKED) delivering the capacity
mirror to the three sandboxes over real HTTP: within a second of the commit, a burst
coalesced into few deliveries, a row made due again in flight sent again, a platform's
faults retried with back-off, a killed relay's lease reclaimed, dead after N tries."""

from __future__ import annotations

import time

import httpx
import pytest
from sqlalchemy import text

from hub.db import get_engine, transaction
from hub.outbox import enqueue_capacity_mirror, mirror_key
from hub.outbox_relay import RelayPolicy, claim_due, mark_delivered, safe_error
from hub.seat_counts import seat_counts
from tests.mirror_world import (
    all_delivered,
    insert_seats,
    outbox_rows,
    published_event,
    relay_thread,
    release_seats,
    states,
    take_seats,
    wait_until,
)
from tests.sandboxes import PLATFORMS, running_sandboxes

ALL = {"native": None, "meetup": None, "eventbrite": None, "luma": None}
FAST = RelayPolicy(base_delay=0.1, max_delay=0.5, poll_seconds=1.0, lease_seconds=5.0)


@pytest.fixture()
def boxes(clean_db, tmp_path):
    with running_sandboxes(tmp_path) as sandboxes:
        yield sandboxes


def _allowance(event_id, platform="luma"):
    with transaction() as conn:
        return seat_counts(conn, event_id).platform_allowance(platform)


def _capacities(boxes, ids):
    return {p: s.capacity for p, s in states(boxes, ids).items()}


def _deliveries(relay, row_ids):
    return [o for o in relay.outcomes if o.id in row_ids and o.status in ("delivered", "repended")]


def test_delivered_within_a_second_of_the_commit(boxes, clean_db):
    event, ids = published_event(boxes)
    with relay_thread(boxes.settings, FAST) as relay:
        take_seats(event.id, 1)  # warm-up: first connections, Meetup token
        wait_until(lambda: all_delivered(clean_db, event.id))
        for _ in range(3):
            take_seats(event.id, 1)
            committed = time.monotonic()
            wait_until(lambda: all_delivered(clean_db, event.id), timeout=5, every=0.01)
            assert time.monotonic() - committed < 1.0
        assert _capacities(boxes, ids) == {p: _allowance(event.id) for p in PLATFORMS}
        assert {o.status for o in relay.outcomes} <= {"delivered", "repended"}


def test_woken_by_notify_not_by_the_poll(boxes, clean_db):
    """With a 30 s poll, only LISTEN/NOTIFY can deliver within a second."""
    event, _ = published_event(boxes)
    slow_poll = RelayPolicy(poll_seconds=30.0, lease_seconds=5.0)
    with relay_thread(boxes.settings, slow_poll):
        take_seats(event.id, 1)
        wait_until(lambda: all_delivered(clean_db, event.id))  # warm-up
        time.sleep(1.5)  # the relay is asleep on its 30 s wait now
        take_seats(event.id, 1)
        committed = time.monotonic()
        wait_until(lambda: all_delivered(clean_db, event.id), timeout=5, every=0.01)
        assert time.monotonic() - committed < 1.0


def test_sold_out_closes_every_platform_and_freed_seats_reopen(boxes, clean_db):
    event, ids = published_event(boxes)
    insert_seats(event.id, 8, pool="quota")
    with relay_thread(boxes.settings, FAST):
        keys = take_seats(event.id, 12)
        wait_until(lambda: all(s.closed for s in states(boxes, ids).values()))
        release_seats(event.id, keys[:3])
        wait_until(lambda: _capacities(boxes, ids) == {p: 3 for p in PLATFORMS})
        assert not any(s.closed for s in states(boxes, ids).values())


def test_burst_of_100_seats_coalesces_into_few_deliveries(boxes, clean_db):
    event, ids = published_event(boxes, total_capacity=200, channels={**ALL, "native": 40})
    httpx.post(f"{boxes.url('eventbrite')}/_sandbox/config", json={"latency_ms": 100})
    with relay_thread(boxes.settings, FAST) as relay:
        for _ in range(100):
            take_seats(event.id, 1)  # 100 commits, each enqueueing the three rows
        wait_until(lambda: all_delivered(clean_db, event.id), timeout=30)
        rows = outbox_rows(clean_db, event.id)
        per_platform = {p: len(_deliveries(relay, {rows[p].id})) for p in PLATFORMS}
    assert all(1 <= n <= 25 for n in per_platform.values()), per_platform
    assert sum(per_platform.values()) < 100
    assert _capacities(boxes, ids) == {p: 200 - 40 - 100 for p in PLATFORMS}


def test_enqueued_while_in_flight_is_sent_again(boxes, clean_db):
    event, ids = published_event(boxes)
    httpx.post(f"{boxes.url('luma')}/_sandbox/config", json={"latency_ms": 600})
    with relay_thread(boxes.settings, FAST) as relay:
        take_seats(event.id, 1)
        key = mirror_key(event.id, "luma")

        def in_flight():
            with clean_db.connect() as conn:
                return (
                    conn.execute(
                        text("select status from app.outbox where idempotency_key = :k"), {"k": key}
                    ).scalar()
                    == "in_flight"
                )

        wait_until(in_flight, every=0.005)
        take_seats(event.id, 2)  # while Luma's call is on the wire
        wait_until(lambda: all_delivered(clean_db, event.id), timeout=15)
        luma_row = outbox_rows(clean_db, event.id)["luma"].id
        assert len(_deliveries(relay, {luma_row})) >= 2
    assert _capacities(boxes, ids)["luma"] == 12 - 3


def test_platform_fault_is_retried_with_backoff_then_delivered(boxes, clean_db):
    event, ids = published_event(boxes)
    httpx.post(
        f"{boxes.url('luma')}/_sandbox/config", json={"fail_next": {"count": 2, "status": 503}}
    )
    with relay_thread(boxes.settings, FAST) as relay:
        take_seats(event.id, 1)
        wait_until(lambda: all_delivered(clean_db, event.id), timeout=15)
        row = outbox_rows(clean_db, event.id)["luma"]
        tries = [o for o in relay.outcomes if o.id == row.id]
    assert [o.status for o in tries] == ["retry", "retry", "delivered"]
    assert "503" in (tries[0].error or "")
    assert row.attempts == 3 and row.last_error is None
    assert _capacities(boxes, ids)["luma"] == 11


def test_killed_relay_in_flight_rows_are_reclaimed_after_the_lease(boxes, clean_db):
    event, ids = published_event(boxes)
    take_seats(event.id, 1)
    # a relay claims the three rows and dies before delivering them
    dead = claim_due(clean_db, ["capacity.mirror"], limit=10, lease_seconds=1.5)
    assert len(dead) == 3
    claimed_at = time.monotonic()
    with relay_thread(boxes.settings, FAST) as relay:
        wait_until(lambda: all_delivered(clean_db, event.id), timeout=10)
        assert time.monotonic() - claimed_at >= 1.4  # not before the lease ran out
        assert {o.status for o in relay.outcomes} == {"delivered"}
    # the dead relay's late report changes nothing: its claim stamp is gone
    assert mark_delivered(clean_db, dead[0], {"stale": True}) == "lost"
    assert all(r.result.get("stale") is None for r in outbox_rows(clean_db, event.id).values())
    assert _capacities(boxes, ids) == {p: 11 for p in PLATFORMS}


def test_dead_after_max_attempts_with_a_safe_error(boxes, clean_db):
    event, _ = published_event(boxes)
    boxes.servers["eventbrite"].stop()  # connection refused: retryable, never succeeds
    policy = RelayPolicy(base_delay=0.05, max_delay=0.1, max_attempts=3, lease_seconds=5.0)
    with relay_thread(boxes.settings, policy) as relay:
        take_seats(event.id, 1)

        def dead_row():
            row = outbox_rows(clean_db, event.id)["eventbrite"]
            return row if row.status == "dead" else None

        row = wait_until(dead_row, timeout=15)
        others = outbox_rows(clean_db, event.id)
        assert others["luma"].status == others["meetup"].status == "delivered"
    assert row.attempts == 3
    assert "eventbrite" in row.last_error and "Bearer" not in row.last_error
    assert [o.status for o in relay.outcomes if o.id == row.id] == ["retry", "retry", "dead"]
    # a new decision revives it (attempts start again) once the platform is back
    boxes.restart("eventbrite")
    with relay_thread(boxes.settings, policy):
        take_seats(event.id, 1)
        wait_until(lambda: all_delivered(clean_db, event.id), timeout=15)


def test_two_relays_never_deliver_one_row_twice_at_once(boxes, clean_db):
    event, ids = published_event(boxes, total_capacity=100, channels={**ALL, "native": 10})
    with relay_thread(boxes.settings, FAST) as one, relay_thread(boxes.settings, FAST) as two:
        for _ in range(30):
            take_seats(event.id, 1)
        wait_until(lambda: all_delivered(clean_db, event.id), timeout=30)
        outcomes = one.outcomes + two.outcomes
    assert {o.status for o in outcomes} <= {"delivered", "repended"}
    assert _capacities(boxes, ids) == {p: 100 - 10 - 30 for p in PLATFORMS}


def test_enqueue_keeps_a_retry_backoff_and_the_flight_lease(clean_db):
    """A failing platform is not called once per seat: an enqueue leaves a scheduled
    retry's time alone; an in-flight row keeps its lease as its due time."""
    with clean_db.begin() as conn:
        conn.execute(
            text(
                "insert into app.outbox (kind, idempotency_key, payload, status, "
                "next_attempt_at, last_error) values ('capacity.mirror', 'k1', '{}', 'pending', "
                "now() + interval '1 minute', 'luma: server error 503')"
            )
        )
        conn.execute(
            text(
                "insert into app.outbox (kind, idempotency_key, payload, status, "
                "next_attempt_at) values ('capacity.mirror', 'k2', '{\"_claim\": \"t\"}', "
                "'in_flight', "
                "now() + interval '30 seconds')"
            )
        )
    from hub.outbox import enqueue

    with clean_db.begin() as conn:
        enqueue(conn, "capacity.mirror", "k1", {"x": 1})
        enqueue(conn, "capacity.mirror", "k2", {"x": 1})
    with clean_db.connect() as conn:
        due = dict(
            conn.execute(
                text(
                    "select idempotency_key, next_attempt_at > now() + interval '20 seconds' "
                    "from app.outbox"
                )
            ).all()
        )
        statuses = set(conn.scalars(text("select status from app.outbox")))
    assert due == {"k1": True, "k2": True} and statuses == {"pending"}


def test_safe_error_masks_credentials():
    text_ = safe_error(
        "refused: Authorization: Bearer abc.DEF-123 api_key=secret1 sk_live_zzzzzzzz"
    )
    assert "abc.DEF" not in text_ and "secret1" not in text_ and "sk_live_zz" not in text_


def test_enqueue_without_platforms_makes_no_row(clean_db):
    from hub.events import create_event, parse_spec
    from tests.mirror_world import EVENT

    with transaction() as conn:
        event = create_event(conn, parse_spec(EVENT), actor="test")
        assert enqueue_capacity_mirror(conn, event.id) == 0
    assert get_engine() is clean_db


def test_seat_ledger_decisions_close_and_reopen_every_platform(boxes, clean_db):
    """End to end with the seat ledger (hub.capacity): native holds and confirmations and
    a platform sale enqueue the mirror in their own transactions; the relay closes every
    platform when the room is full and reopens exactly the freed seats."""
    capacity = pytest.importorskip("hub.capacity")
    event, ids = published_event(boxes, total_capacity=6, channels={**ALL, "native": 2})
    ledger = capacity.SeatLedger.from_settings(boxes.settings)
    with relay_thread(boxes.settings, FAST):
        for i in range(5):
            with ledger.begin() as tx:
                tx.hold(event.id, f"order-{i}", ttl_seconds=600)
                tx.confirm(event.id, f"order-{i}")
        wait_until(lambda: _capacities(boxes, ids) == {p: 1 for p in PLATFORMS})
        with ledger.begin() as tx:  # the last seat, sold on Luma
            assert tx.consume(event.id, "luma", "luma:guest-1") == "confirmed"
        wait_until(lambda: all(s.closed for s in states(boxes, ids).values()))
        with ledger.begin() as tx:  # a native quota seat: the platforms gain nothing
            assert tx.release(event.id, "order-0")
        with ledger.begin() as tx:  # a shared seat: every platform sells one more
            assert tx.release(event.id, "order-4")
        wait_until(lambda: not states(boxes, ids)["meetup"].closed)
        wait_until(lambda: all_delivered(clean_db, event.id))
        seen = states(boxes, ids)
    # one seat free: Meetup and Eventbrite may sell 1; Luma sold 1 and may sell 1 more
    assert {p: (s.capacity, s.closed) for p, s in seen.items() if p != "luma"} == {
        "meetup": (1, False),
        "eventbrite": (1, False),
    }
    assert seen["luma"].capacity == 2


def test_hub_serve_outbox_runs_the_relay_until_sigterm(boxes, clean_db, tmp_path):
    """``hub serve outbox`` as its own process (as ``make up`` starts it): LISTENs,
    delivers, and stops cleanly on SIGTERM."""
    import os
    import signal
    import subprocess
    import sys

    event, ids = published_event(boxes)
    log = tmp_path / "relay.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "hub_cli.main", "serve", "outbox"],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=os.environ.copy(),  # the session's database and the sandboxes' URLs
        )
    try:
        wait_until(lambda: b"listening on hub_outbox" in log.read_bytes(), timeout=60)
        take_seats(event.id, 3)
        wait_until(lambda: all_delivered(clean_db, event.id), timeout=15)
        assert _capacities(boxes, ids) == {p: 9 for p in PLATFORMS}
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0
    assert b"stopped" in log.read_bytes()
