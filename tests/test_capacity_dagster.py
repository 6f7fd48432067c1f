"""The capacity domain in Dagster: the expired-holds sensor (Dagster's testing API on a
real instance, real PostgreSQL and Redis), the seat ledger asset with its overbooked
registrations, and its checks (gate agrees with PostgreSQL; nothing oversold)."""

from __future__ import annotations

import time

from dagster import (
    DagsterInstance,
    DefaultSensorStatus,
    Definitions,
    RunRequest,
    build_sensor_context,
    materialize,
)
from sqlalchemy import text

from hub.capacity import SeatLedger
from hub.db import transaction
from hub.events import create_event, parse_spec
from orchestration.capacity.definitions import (
    defs,
    expired_holds_sensor,
    seat_ledger,
    seat_ledger_no_event_oversold,
    seat_ledger_redis_matches_postgres,
)
from orchestration.resources import HubDatabase, HubRedis

RESOURCES = {"hub_db": HubDatabase(), "hub_redis": HubRedis()}


def _event(slug: str, total: int, channels: dict):
    spec = parse_spec(
        {
            "title": f"Dagster ledger {slug}",
            "slug": slug,
            "starts_at": "2027-04-01T19:00:00",
            "ends_at": "2027-04-01T21:00:00",
            "total_capacity": total,
            "channels": channels,
        }
    )
    with transaction() as conn:
        return create_event(conn, spec, actor="test")


def test_definitions_load_and_the_sensor_runs_by_default():
    d = Definitions.merge(Definitions(resources=RESOURCES), defs())
    Definitions.validate_loadable(d)
    sensor = d.resolve_sensor_def("expired_holds_sensor")
    assert sensor.default_status == DefaultSensorStatus.RUNNING
    assert sensor.minimum_interval_seconds == 60
    assert {j.name for j in d.resolve_all_job_defs()} >= {"seat_ledger_job"}


def test_sensor_releases_expired_holds_and_reports_new_overbookings(clean_db, hub_settings):
    ledger = SeatLedger.from_settings(hub_settings)
    event = _event("dagster-expiry", 3, {"native": 1, "luma": None})
    with ledger.begin() as tx:
        tx.hold(event.id, "short", ttl_seconds=0.1)
        tx.hold(event.id, "long", ttl_seconds=600)
    time.sleep(0.25)
    instance = DagsterInstance.ephemeral()
    context = build_sensor_context(instance=instance, resources=RESOURCES)
    first = expired_holds_sensor.evaluate_tick(context)
    assert first.skip_message and "released 1 expired hold" in first.skip_message
    with ledger.engine.connect() as conn:
        rows = dict(conn.execute(text("select hold_key, status from app.seat_holds")).all())
    assert rows == {"short": "expired", "long": "held"}
    # an overbooking since the last tick: the ledger view is materialized again
    with ledger.begin() as tx:
        assert tx.consume(event.id, "luma", "luma:1") == "confirmed"
        assert tx.consume(event.id, "luma", "luma:2") == "overbooked"
    context = build_sensor_context(instance=instance, resources=RESOURCES, cursor=first.cursor)
    second = expired_holds_sensor.evaluate_tick(context)
    assert len(second.run_requests) == 1 and isinstance(second.run_requests[0], RunRequest)
    assert second.cursor == "1"
    context = build_sensor_context(instance=instance, resources=RESOURCES, cursor=second.cursor)
    third = expired_holds_sensor.evaluate_tick(context)
    assert not third.run_requests and "released 0" in third.skip_message


def test_asset_lists_overbooked_registrations_and_checks_pass_then_fail(clean_db, hub_settings):
    ledger = SeatLedger.from_settings(hub_settings)
    event = _event("dagster-ledger", 2, {"native": None, "eventbrite": None})
    with ledger.begin() as tx:
        tx.hold(event.id, "n1", ttl_seconds=600)
        tx.consume(event.id, "eventbrite", "eventbrite:7")
        assert tx.consume(event.id, "eventbrite", "eventbrite:8") == "overbooked"
    assets = [seat_ledger, seat_ledger_redis_matches_postgres, seat_ledger_no_event_oversold]
    result = materialize(assets, resources=RESOURCES, instance=DagsterInstance.ephemeral())
    assert result.success
    metadata = result.asset_materializations_for_node("capacity__seat_ledger")[0].metadata
    assert metadata["overbooked"].value == 1
    assert "eventbrite:8" in metadata["overbooked_registrations"].value
    checks = {c.check_name: c.passed for c in result.get_asset_check_evaluations()}
    assert checks == {
        "seat_ledger_redis_matches_postgres": True,
        "seat_ledger_no_event_oversold": True,
    }
    # drift: a row written behind the gate's back (never do this) is caught by both
    with transaction() as conn:
        conn.execute(
            text(
                "insert into app.seat_holds (event_id, hold_key, channel, pool, status) "
                "values (:e, 'rogue', 'native', 'shared', 'confirmed')"
            ),
            {"e": event.id},
        )
    result = materialize(assets, resources=RESOURCES, instance=DagsterInstance.ephemeral())
    checks = {c.check_name: c.passed for c in result.get_asset_check_evaluations()}
    assert checks == {
        "seat_ledger_redis_matches_postgres": False,
        "seat_ledger_no_event_oversold": False,
    }
    ledger.rebuild(event.id)  # the repair: the gate follows PostgreSQL again
    with ledger.engine.connect() as conn:
        assert ledger.compare(conn, event.id) == []


def test_sensor_skips_cleanly_when_nothing_expired(clean_db):
    context = build_sensor_context(instance=DagsterInstance.ephemeral(), resources=RESOURCES)
    data = expired_holds_sensor.evaluate_tick(context)
    assert isinstance(data.skip_message, str) and "released 0" in data.skip_message
