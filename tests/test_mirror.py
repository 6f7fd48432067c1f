"""hub.mirror.push_allowance against the three sandboxes over real HTTP: each platform's
capacity (read back through the platform's own API) equals the ledger's allowance, a full
room closes every platform, a freed seat reopens them, and an unpublished channel is
skipped."""

from __future__ import annotations

import pytest
from sqlalchemy import update

from hub.db import event_channels, get_engine, transaction
from hub.mirror import event_lock_key, last_pushed, push_allowance, read_truth
from hub.seat_counts import seat_counts
from tests.mirror_world import insert_seats, published_event, release_seats, states, take_seats
from tests.sandboxes import PLATFORMS, running_sandboxes


@pytest.fixture()
def boxes(clean_db, tmp_path):
    with running_sandboxes(tmp_path) as sandboxes:
        yield sandboxes


def _push_all(boxes, event_id, previous=None):
    return {
        p: push_allowance(
            get_engine(), boxes.settings, event_id, p, previous=(previous or {}).get(p)
        )
        for p in PLATFORMS
    }


def test_capacity_on_every_platform_equals_the_allowance(boxes):
    event, ids = published_event(boxes)  # 20 seats, 8 native quota, 12 shared
    insert_seats(event.id, 3, pool="quota")
    insert_seats(event.id, 2, pool="shared")  # native seats taken from the shared pool
    with transaction() as conn:
        counts = seat_counts(conn, event.id)
    assert counts.available("luma") == 10 and counts.platform_allowance("luma") == 10
    results = _push_all(boxes, event.id)
    assert {p: (r.action, r.allowance) for p, r in results.items()} == {
        p: ("capacity", 10) for p in PLATFORMS
    }
    seen = states(boxes, ids)
    assert {p: s.capacity for p, s in seen.items()} == {p: 10 for p in PLATFORMS}
    assert not any(s.closed for s in seen.values())


def test_sold_out_closes_every_platform_and_a_freed_seat_reopens_them(boxes):
    event, ids = published_event(boxes)
    insert_seats(event.id, 8, pool="quota")
    keys = take_seats(event.id, 12)  # the whole room: native quota + the shared pool
    closed = _push_all(boxes, event.id)
    assert {r.action for r in closed.values()} == {"closed"}
    assert all(r.available == 0 for r in closed.values())
    seen = states(boxes, ids)
    assert all(s.closed for s in seen.values()), seen
    # two seats free again: every platform sells exactly those two
    release_seats(event.id, keys[:2])
    reopened = _push_all(boxes, event.id, {p: r.as_json() for p, r in closed.items()})
    assert {p: (r.action, r.allowance) for p, r in reopened.items()} == {
        p: ("reopened", 2) for p in PLATFORMS
    }
    seen = states(boxes, ids)
    assert {p: (s.capacity, s.closed) for p, s in seen.items()} == {
        p: (2, False) for p in PLATFORMS
    }


def test_meetup_full_with_its_own_rsvps_pins_the_limit_for_its_waitlist(boxes):
    event, ids = published_event(boxes)
    insert_seats(event.id, 2, pool="shared", channel="meetup")
    insert_seats(event.id, 8, pool="quota")
    insert_seats(event.id, 10, pool="shared")
    result = push_allowance(get_engine(), boxes.settings, event.id, "meetup")
    assert (result.action, result.allowance, result.sold) == ("pinned", 2, 2)
    # the sandbox has no RSVPs for those two seats (written straight into the ledger), so
    # Meetup still lets two people in; the limit is what the hub says Meetup sold
    assert states(boxes, {"meetup": ids["meetup"]})["meetup"].capacity == 2


def test_unpublished_platform_is_skipped(boxes):
    event, _ = published_event(boxes)
    with transaction() as conn:
        conn.execute(
            update(event_channels)
            .where(event_channels.c.event_id == event.id, event_channels.c.platform == "luma")
            .values(platform_event_id=None)
        )
    result = push_allowance(get_engine(), boxes.settings, event.id, "luma")
    assert result.action == "skipped" and result.pushes == 0


def test_read_truth_waits_for_seat_decisions_holding_the_shared_lock(boxes, clean_db):
    """A decision holds the event's advisory lock shared until it commits; the mirror's
    read takes it exclusive, so it sees the decision (none is missed in flight)."""
    import threading
    import time

    from sqlalchemy import text

    event, _ = published_event(boxes)
    seen = {}
    with clean_db.begin() as conn:
        lock_class, lock_id = event_lock_key(event.id)
        conn.execute(
            text("select pg_advisory_xact_lock_shared(:c, :k)"), {"c": lock_class, "k": lock_id}
        )
        conn.execute(
            text(
                "insert into app.seat_holds (event_id, hold_key, channel, pool, status) "
                "values (:e, 'in-flight', 'native', 'shared', 'confirmed')"
            ),
            {"e": event.id},
        )
        reader = threading.Thread(
            target=lambda: seen.update(t=read_truth(clean_db, event.id, "luma"))
        )
        reader.start()
        time.sleep(0.3)
        assert "t" not in seen  # waiting for the decision
    reader.join(5)
    assert seen["t"].available == 11


def test_last_pushed_is_kept_per_platform(boxes, clean_db):
    from hub.outbox_relay import deliver_due

    event, _ = published_event(boxes)
    take_seats(event.id, 1)
    outcomes = deliver_due(clean_db, boxes.settings)
    assert {o.status for o in outcomes} == {"delivered"}
    with clean_db.connect() as conn:
        pushed = last_pushed(conn, event.id)
    assert set(pushed) == set(PLATFORMS)
    assert {p: v["result"]["allowance"] for p, v in pushed.items()} == {p: 11 for p in PLATFORMS}


def test_lock_key_is_the_seat_ledgers():
    capacity = pytest.importorskip("hub.capacity")
    event_id = "0b0e2a8e-8a59-4b8e-9d7e-3f1c2b4a5d6e"
    assert event_lock_key(event_id) == (
        capacity.EVENT_LOCK_CLASS,
        capacity._lock_id(event_id),
    )
