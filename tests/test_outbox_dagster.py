"""The outbox's Dagster domain through Dagster's testing APIs on real PostgreSQL and the
sandboxes: the sensor takes over rows the relay left (overdue, expired lease) and
delivers them, reports once per change; the asset shows the outbox per event with the
last pushed allowance; the checks fail on a dead row, a row pending too long, and drift."""

from __future__ import annotations

from dagster import DagsterInstance, RunRequest, SkipReason, build_sensor_context, materialize
from sqlalchemy import text

from orchestration.outbox.definitions import (
    outbox,
    outbox_mirror_matches_ledger,
    outbox_no_dead_rows,
    outbox_nothing_pending_too_long,
    outbox_watch_sensor,
)
from orchestration.resources import HubDatabase
from tests.mirror_world import insert_seats, outbox_rows, published_event, states, take_seats
from tests.sandboxes import PLATFORMS, running_sandboxes


def _tick(instance, cursor=None):
    context = build_sensor_context(
        instance=instance, cursor=cursor, resources={"hub_db": HubDatabase()}
    )
    return outbox_watch_sensor(context), context.cursor


def _materialize():
    return materialize(
        [
            outbox,
            outbox_no_dead_rows,
            outbox_nothing_pending_too_long,
            outbox_mirror_matches_ledger,
        ],
        resources={"hub_db": HubDatabase()},
    )


def _checks(result):
    return {c.check_name: c for c in result.get_asset_check_evaluations()}


def test_outbox_domain_is_in_the_code_location():
    from orchestration.definitions import defs

    assert "outbox_watch_sensor" in {s.name for s in defs.sensors}
    assert "outbox_report_job" in {j.name for j in defs.resolve_all_job_defs()}
    keys = {k.to_user_string() for k in defs.resolve_asset_graph().get_all_asset_keys()}
    assert "outbox" in keys


def test_sensor_takes_over_rows_the_relay_left_and_reports_once(clean_db, tmp_path):
    instance = DagsterInstance.ephemeral()
    first, cursor = _tick(instance)
    assert isinstance(first, SkipReason) and "healthy" in first.skip_message
    with running_sandboxes(tmp_path) as boxes:
        event, ids = published_event(boxes)
        take_seats(event.id, 2)
        with clean_db.begin() as conn:  # no relay ran: due for two minutes; one lease expired
            conn.execute(
                text(
                    "update app.outbox set next_attempt_at = now() - interval '2 minutes', "
                    "status = case when payload ->> 'platform' = 'luma' then 'in_flight' "
                    "else status end where event_id = :e"
                ),
                {"e": event.id},
            )
        request, cursor = _tick(instance, cursor)
        assert isinstance(request, RunRequest)
        assert "took over 3" in request.tags["hub/outbox"]
        assert {r.status for r in outbox_rows(clean_db, event.id).values()} == {"delivered"}
        assert {p: s.capacity for p, s in states(boxes, ids).items()} == {p: 10 for p in PLATFORMS}
        again, _ = _tick(instance, cursor)
        assert isinstance(again, SkipReason) and "unchanged" in again.skip_message


def test_asset_shows_the_outbox_per_event_and_checks_pass(clean_db, tmp_path):
    from hub.outbox_relay import deliver_due

    with running_sandboxes(tmp_path) as boxes:
        event, _ = published_event(boxes)
        take_seats(event.id, 1)
        deliver_due(clean_db, boxes.settings)
        result = _materialize()
    assert result.success
    (mat,) = result.asset_materializations_for_node("outbox")
    metadata = mat.metadata
    assert metadata["delivered"].value == 3 and metadata["dead"].value == 0
    by_event = metadata["events"].value[str(event.id)]
    assert {p: v["pushed"] for p, v in by_event["platforms"].items()} == {p: 11 for p in PLATFORMS}
    assert "Kapasite" in metadata["by_event"].value
    assert all(c.passed for c in _checks(result).values())


def test_checks_fail_on_dead_overdue_and_drift(clean_db, tmp_path):
    from hub.outbox_relay import deliver_due

    with running_sandboxes(tmp_path) as boxes:
        event, _ = published_event(boxes)
        take_seats(event.id, 1)
        deliver_due(clean_db, boxes.settings)
    insert_seats(event.id, 2, pool="shared")  # a decision that escaped the mirror: drift
    with clean_db.begin() as conn:
        conn.execute(
            text(
                "update app.outbox set status = 'dead', last_error = 'luma: server error 503' "
                "where payload ->> 'platform' = 'luma'"
            )
        )
        conn.execute(
            text(
                "insert into app.outbox (kind, idempotency_key, payload, next_attempt_at) "
                "values ('sms.send', 'sms:1', '{}', now() - interval '10 minutes')"
            )
        )
    checks = _checks(_materialize())
    assert not checks["outbox_no_dead_rows"].passed
    assert not checks["outbox_nothing_pending_too_long"].passed
    assert not checks["outbox_mirror_matches_ledger"].passed
    assert checks["outbox_mirror_matches_ledger"].metadata["drift"].value == 2


def test_requeue_job_makes_dead_rows_due_again(clean_db):
    from orchestration.outbox.definitions import outbox_requeue_dead_job

    with clean_db.begin() as conn:
        conn.execute(
            text(
                "insert into app.outbox (kind, idempotency_key, payload, status, attempts, "
                "last_error) values ('capacity.mirror', 'k-dead', '{}', 'dead', 8, 'luma: 503'), "
                "('capacity.mirror', 'k-other', '{}', 'dead', 8, 'luma: 503')"
            )
        )
        dead_id = conn.execute(
            text("select id from app.outbox where idempotency_key = 'k-dead'")
        ).scalar()
    result = outbox_requeue_dead_job.execute_in_process(
        run_config={"ops": {"requeue_dead_rows": {"config": {"ids": [dead_id]}}}},
        resources={"hub_db": HubDatabase()},
    )
    assert result.success and result.output_for_node("requeue_dead_rows") == [dead_id]
    with clean_db.connect() as conn:
        rows = dict(conn.execute(text("select idempotency_key, status from app.outbox")).all())
    assert rows == {"k-dead": "pending", "k-other": "dead"}
