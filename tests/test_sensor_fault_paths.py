"""The sensors and schedules under faults, through Dagster's own testing APIs on a
PostgreSQL-backed instance: evaluate real ticks, execute the runs they ask for, against
the emulators over real HTTP with their fault injection.

Clocks are compressed (a back-off of tenths of a second instead of minutes, set through
the HUB_PUBLISH_* policy); nothing else is faked.
"""

from __future__ import annotations

import time

import httpx
import pytest
from dagster import DefaultScheduleStatus, DefaultSensorStatus
from sqlalchemy import func, select, update

from hub.db import event_channels, transaction, webhook_events
from hub.events import create_event, parse_spec
from orchestration.definitions import defs
from tests.dagster_fixtures import (  # noqa: F401 - fixtures
    Daemon,
    dagster_instance,
    dagster_pg_instance,
    spawn_publish_run,
)
from tests.sandboxes import PLATFORMS, running_sandboxes

PUBLISH = "event_publication_sensor"
EVENT = {
    "title": "Hata Toleransı Buluşması",
    "starts_at": "2027-02-11T19:00:00",
    "ends_at": "2027-02-11T21:00:00",
    "total_capacity": 40,
    "currency": "TRY",
    "price": "0",
    "channels": {"meetup": None, "eventbrite": None, "luma": None},
}


@pytest.fixture()
def world(clean_db, tmp_path, dagster_instance, monkeypatch):  # noqa: F811
    # compressed clock: seconds of back-off become tenths, one call's budget is short
    for name, value in {
        "HUB_PUBLISH_BACKOFF_BASE_SECONDS": "0.3",
        "HUB_PUBLISH_BACKOFF_MAX_SECONDS": "0.6",
        "HUB_PUBLISH_CALL_ATTEMPTS": "2",
        "HUB_PUBLISH_CALL_BASE_DELAY": "0.05",
        "HUB_PUBLISH_CALL_BUDGET_SECONDS": "5",
        "HUB_PUBLISH_LEASE_SECONDS": "1.5",
    }.items():
        monkeypatch.setenv(name, value)
    with running_sandboxes(tmp_path) as boxes:
        yield boxes, Daemon(dagster_instance)


def _event(**changes):
    with transaction() as conn:
        return create_event(conn, parse_spec({**EVENT, **changes}), actor="test")


def _fault(boxes, platform: str, **config) -> None:
    httpx.post(f"{boxes.url(platform)}/_sandbox/config", json=config).raise_for_status()


def _channels(engine, event_id) -> dict:
    with engine.connect() as conn:
        return {
            r.platform: r
            for r in conn.execute(
                select(event_channels).where(event_channels.c.event_id == event_id)
            )
        }


def _platform_events(boxes) -> dict[str, int]:
    return {p: boxes.sandbox(p).store.count("event") for p in PLATFORMS}


def _selected(request) -> set[str]:
    return {k.path[-1].removesuffix("_event") for k in request.asset_selection}


def _drain(daemon: Daemon, ticks: int = 12, pause: float = 0.35) -> list:
    """Tick and run until the sensor has nothing left to do."""
    launched = []
    for _ in range(ticks):
        tick = daemon.tick(PUBLISH)
        if not tick.run_requests and "waiting for their back-off" not in (tick.skip_message or ""):
            return launched
        for request in tick.run_requests:
            if daemon.execute("publish_events_job", request) is not None:
                launched.append(request)
        time.sleep(pause)
    raise AssertionError(f"the sensor never settled: {daemon.tick(PUBLISH).skip_message}")


def test_data_keeping_schedules_and_sensors_start_running():
    assert {s.name: s.default_status for s in defs.schedules} == {
        "registrations_catch_up_schedule": DefaultScheduleStatus.RUNNING,
        "past_events_rescan_schedule": DefaultScheduleStatus.RUNNING,
        "meetup_upcoming_rescan_schedule": DefaultScheduleStatus.RUNNING,
    }
    assert all(s.default_status == DefaultSensorStatus.RUNNING for s in defs.sensors)


def test_eventbrite_down_then_back_ends_with_one_event_per_platform_and_no_backlog(world, clean_db):
    """The issue's 'done when', on a compressed clock: Eventbrite answers 500 for a
    while (6 s standing for three minutes), then recovers."""
    boxes, daemon = world
    _fault(boxes, "eventbrite", fail_next={"count": 100_000, "status": 500})
    event = _event()
    launched, skips = [], []
    outage_ends = time.monotonic() + 6
    while time.monotonic() < outage_ends:
        tick = daemon.tick(PUBLISH)
        assert len(tick.run_requests) <= 1  # one run per event, never one per tick
        for request in tick.run_requests:
            result = daemon.execute("publish_events_job", request)
            assert result is not None, f"a tick asked again for a run key it used: {request}"
            launched.append(request)
        if tick.skip_message:
            skips.append(tick.skip_message)
        assert not daemon.in_progress("publish_events_job")  # no backlog
        time.sleep(0.1)

    assert _selected(launched[0]) == set(PLATFORMS)
    assert all(_selected(r) == {"eventbrite"} for r in launched[1:])  # only the failed one
    # The back-off paced the retries (0.3 s then 0.6 s, plus each run's own time), and
    # the ticks in between said why nothing ran.
    assert 3 <= len(launched) <= 6 / 0.3
    assert any("waiting for their back-off" in s for s in skips)
    down = _channels(clean_db, event.id)["eventbrite"]
    assert down.status == "failed" and "500" in down.last_error
    assert down.next_attempt_at is not None and down.lease_owner is None

    _fault(boxes, "eventbrite", fail_next=None)  # Eventbrite recovers
    recovered = _drain(daemon)
    assert [_selected(r) for r in recovered] == [{"eventbrite"}]
    assert _platform_events(boxes) == {p: 1 for p in PLATFORMS}
    channels = _channels(clean_db, event.id)
    assert {p: channels[p].status for p in PLATFORMS} == {p: "published" for p in PLATFORMS}
    assert not daemon.in_progress("publish_events_job")
    assert daemon.tick(PUBLISH).skip_message == "every event is up to date on every platform"


def test_overlapping_runs_on_a_slow_platform_create_one_platform_event(
    world,
    clean_db,
    dagster_instance,  # noqa: F811
):
    """A run in another process is mid-call on a slow Eventbrite: the next tick asks for
    nothing, and a manual run of the same event at the same time sends nothing there."""
    boxes, daemon = world
    _fault(boxes, "eventbrite", latency_ms=1500)  # the child holds the lease for seconds
    event = _event()
    first = daemon.tick(PUBLISH).run_requests
    assert len(first) == 1
    child = spawn_publish_run(dagster_instance, event.slug, PLATFORMS)
    try:
        deadline = time.monotonic() + 60
        while not (_channels(clean_db, event.id)["eventbrite"].lease_owner or "").startswith(
            "dagster-run:"
        ):
            assert time.monotonic() < deadline and child.poll() is None, "child never claimed"
            time.sleep(0.05)
        overlap = daemon.tick(PUBLISH)
        assert not overlap.run_requests
        # held back by the lease or by the run in progress, whichever the tick sees first
        assert (
            "being published now" in overlap.skip_message
            or "publish run is still in progress" in overlap.skip_message
        )
        # a manual run (UI, CLI) of the same event while the first still works
        manual = defs.resolve_job_def("publish_events_job").execute_in_process(
            instance=dagster_instance, partition_key=event.slug, raise_on_error=False
        )
        assert child.wait(timeout=90) == 0
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    materialized = {
        m.event_specific_data.materialization.asset_key.path[-1]: {
            k: v.value for k, v in m.event_specific_data.materialization.metadata.items()
        }
        for m in manual.get_asset_materialization_events()
    }
    # it held no lease, so it sent nothing: busy while the child worked, or (on a loaded
    # machine, when the child finished first) "unchanged"; never created or adopted
    assert materialized.get("eventbrite_event", {}).get("action") in (None, "unchanged")
    assert _platform_events(boxes) == {p: 1 for p in PLATFORMS}
    assert _drain(daemon) == []


def _eventbrite_order_row(boxes, platform_event_id: str) -> int:
    """A verified order.placed delivery for a real order, as the receiver stores it."""
    order_id = boxes.sandbox("eventbrite").simulate_registrations(platform_event_id, 1, seed=7)[0]
    body = (
        '{"config": {"action": "order.placed", "endpoint_url": "http://hub/webhooks/eventbrite"},'
        f' "api_url": "{boxes.url("eventbrite")}/v3/orders/{order_id}/"}}'
    ).encode()
    with transaction() as conn:
        return conn.scalar(
            webhook_events.insert()
            .values(
                source="eventbrite",
                event_type="order.placed",
                dedupe_key=f"order.placed:{order_id}",
                headers={"X-Eventbrite-Event": "order.placed"},
                body=body,
                body_size=len(body),
                verified=True,
            )
            .returning(webhook_events.c.id)
        )


def test_a_retry_row_coming_due_is_ingested_with_no_other_traffic(world, clean_db):
    boxes, daemon = world
    event = _event()
    _drain(daemon)
    eventbrite_id = _channels(clean_db, event.id)["eventbrite"].platform_event_id
    row_id = _eventbrite_order_row(boxes, eventbrite_id)

    _fault(boxes, "eventbrite", fail_next={"count": 100_000, "status": 500})
    first = daemon.tick("raw_ingest_sensor")
    assert len(first.run_requests) == 1
    assert daemon.execute("ingest_raw_job", first.run_requests[0]).success
    with clean_db.connect() as conn:
        row = conn.execute(select(webhook_events).where(webhook_events.c.id == row_id)).one()
    assert row.status == "retry" and row.next_attempt_at is not None

    waiting = daemon.tick("raw_ingest_sensor")
    assert not waiting.run_requests
    assert "1 in retry, the next due at" in waiting.skip_message

    # compressed clock: the row's back-off (30 s) ends in a second; nothing else arrives
    _fault(boxes, "eventbrite", fail_next=None)
    with transaction() as conn:
        conn.execute(
            update(webhook_events)
            .where(webhook_events.c.id == row_id)
            .values(next_attempt_at=webhook_events.c.received_at)
        )
    due = daemon.tick("raw_ingest_sensor")
    assert len(due.run_requests) == 1
    assert due.run_requests[0].run_key != first.run_requests[0].run_key
    assert daemon.execute("ingest_raw_job", due.run_requests[0]).success
    with clean_db.connect() as conn:
        status = conn.scalar(select(webhook_events.c.status).where(webhook_events.c.id == row_id))
    assert status == "processed"
    assert daemon.tick("raw_ingest_sensor").skip_message.startswith("no raw row due")


def test_catch_up_schedule_tick_pulls_the_events_on_sale(world, clean_db):
    from datetime import UTC, datetime

    from hub.db import registrations

    boxes, daemon = world
    event = _event()
    _drain(daemon)
    eventbrite_id = _channels(clean_db, event.id)["eventbrite"].platform_event_id
    boxes.sandbox("eventbrite").simulate_registrations(eventbrite_id, 3, seed=11)
    tick = daemon.schedule_tick(
        "registrations_catch_up_schedule", datetime(2027, 1, 5, 9, 15, tzinfo=UTC)
    )
    assert [r.partition_key for r in tick.run_requests] == [event.slug]
    request = tick.run_requests[0]
    assert {k.path[-1] for k in request.asset_selection} == {
        "eventbrite_registrations",
        "luma_registrations",
    }
    assert daemon.execute("pull_registrations_job", request).success
    with clean_db.connect() as conn:
        pulled = conn.scalar(select(func.count()).where(registrations.c.platform == "eventbrite"))
    assert pulled == boxes.sandbox("eventbrite").store.count("attendee") >= 3
    # the same scheduled time asks for the same run: the daemon runs it once
    again = daemon.schedule_tick(
        "registrations_catch_up_schedule", datetime(2027, 1, 5, 9, 15, tzinfo=UTC)
    )
    assert daemon.execute("pull_registrations_job", again.run_requests[0]) is None
