"""The Dagster code location: the asset graph (snapshot), the publication sensor's
decisions, and the publish job run in-process against the sandboxes."""

from __future__ import annotations

import os
from pathlib import Path

from dagster import DagsterInstance, build_sensor_context
from sqlalchemy import update

from hub.db import event_channels, transaction
from hub.events import create_event, parse_spec, update_event
from orchestration.definitions import defs
from orchestration.resources import HubDatabase
from orchestration.syndication.partitions import events_partitions
from orchestration.syndication.sensors import event_publication_sensor
from tests.dagster_fixtures import (  # noqa: F401 - fixtures
    Daemon,
    dagster_instance,
    dagster_pg_instance,
)
from tests.sandboxes import running_sandboxes

SNAPSHOT = Path(__file__).parent / "snapshots" / "asset_graph.txt"
EVENT = {
    "title": "Dagster Akşamı",
    "starts_at": "2027-01-14T19:00:00",
    "ends_at": "2027-01-14T21:00:00",
    "total_capacity": 60,
    "currency": "TRY",
    "price": "100",
}


def _graph_lines() -> list[str]:
    graph = defs.resolve_asset_graph()
    lines = []
    for key in sorted(graph.get_all_asset_keys(), key=lambda k: k.to_user_string()):
        parents = sorted(p.to_user_string() for p in graph.get(key).parent_keys)
        lines.append(f"{key.to_user_string()} <- {', '.join(parents) or '-'}")
    return lines


def test_asset_graph_matches_snapshot():
    """A change of lineage shows in review: update the snapshot with UPDATE_SNAPSHOTS=1."""
    lines = _graph_lines()
    if os.environ.get("UPDATE_SNAPSHOTS") or not SNAPSHOT.exists():
        SNAPSHOT.write_text("\n".join(lines) + "\n")
    assert lines == SNAPSHOT.read_text().splitlines()


def test_jobs_sensors_and_schedules_are_defined():
    assert {j.name for j in defs.resolve_all_job_defs()} >= {
        "publish_events_job",
        "pull_registrations_job",
        "ingest_raw_job",
        "analytics_build_job",
    }
    assert {s.name for s in defs.sensors} >= {
        "event_publication_sensor",
        "meetup_rsvp_poll_sensor",
        "raw_ingest_sensor",
    }
    assert {s.name for s in defs.schedules} >= {
        "registrations_catch_up_schedule",
        "past_events_rescan_schedule",
        "meetup_upcoming_rescan_schedule",
    }


def _evaluate(instance):
    context = build_sensor_context(instance=instance, resources={"hub_db": HubDatabase()})
    return event_publication_sensor(context)


def test_publication_sensor_requests_new_changed_and_failed_events(clean_db):
    instance = DagsterInstance.ephemeral()
    with transaction() as conn:
        event = create_event(conn, parse_spec(EVENT), actor="test")
    result = _evaluate(instance)
    assert len(result.run_requests) == 1
    request = result.run_requests[0]
    assert request.partition_key == event.slug
    assert {k.path[-1] for k in request.asset_selection} == {
        "meetup_event",
        "eventbrite_event",
        "luma_event",
    }
    assert result.dynamic_partitions_requests[0].partition_keys == [event.slug]

    # All published at version 1: nothing to do.
    with transaction() as conn:
        conn.execute(
            update(event_channels)
            .where(event_channels.c.platform != "native")
            .values(
                status="published",
                platform_event_id=event_channels.c.platform + "-1",
                published_version=1,
            )
        )
    assert not getattr(_evaluate(instance), "run_requests", None)

    # A capacity change: every platform needs an update, under a new run key.
    with transaction() as conn:
        update_event(conn, event.id, {"total_capacity": 80}, actor="test")
    changed = _evaluate(instance).run_requests
    assert len(changed) == 1 and ":v2:" in changed[0].run_key
    assert request.run_key != changed[0].run_key


def test_publish_job_materializes_each_platform_with_metadata(clean_db, tmp_path):
    with running_sandboxes(tmp_path):
        with transaction() as conn:
            event = create_event(conn, parse_spec(EVENT), actor="test")
        instance = DagsterInstance.ephemeral()
        instance.add_dynamic_partitions(events_partitions.name, [event.slug])
        job = defs.resolve_job_def("publish_events_job")
        result = job.execute_in_process(instance=instance, partition_key=event.slug)
        assert result.success
        metadata = {}
        for materialization in result.get_asset_materialization_events():
            mat = materialization.event_specific_data.materialization
            metadata[mat.asset_key.path[-1]] = {k: v.value for k, v in mat.metadata.items()}
        assert set(metadata) == {"meetup_event", "eventbrite_event", "luma_event"}
        for values in metadata.values():
            assert values["action"] == "created" and values["platform_event_id"]
            assert values["url"].startswith(("https://", "http://"))
            assert values["latency_ms"] > 0 and values["attempts"] == 1


def _launched_publish_run(instance, slug: str):
    from dagster import DagsterRunStatus
    from dagster._core.test_utils import create_run_for_test

    return create_run_for_test(
        instance,
        job_name="publish_events_job",
        status=DagsterRunStatus.STARTING,  # launched, no lease taken yet
        tags={"hub/event": slug, "hub/lane": "publish"},
    )


def test_publication_sensor_waits_for_an_event_run_in_progress_and_keeps_to_its_slots(
    clean_db,
    dagster_instance,  # noqa: F811
    monkeypatch,
):
    """A run launched for an event (its lease not yet taken) holds that event back, and
    publishing never takes more than its run slots, whatever else needs publishing."""
    monkeypatch.setenv("HUB_PUBLISH_RUN_SLOTS", "2")
    daemon = Daemon(dagster_instance)
    with transaction() as conn:
        slugs = [
            create_event(conn, parse_spec({**EVENT, "title": f"Slot Testi {n}"}), actor="test").slug
            for n in range(4)
        ]
    first = daemon.tick("event_publication_sensor")
    assert [r.partition_key for r in first.run_requests] == sorted(slugs)[:2]  # 2 slots
    assert all(r.tags["hub/lane"] == "publish" for r in first.run_requests)

    for request in first.run_requests:  # launched, still starting
        _launched_publish_run(dagster_instance, request.partition_key)
    full = daemon.tick("event_publication_sensor")
    assert not full.run_requests
    assert "its publish run is still in progress" in full.skip_message
    assert "publish run slots full: 2" in full.skip_message

    monkeypatch.setenv("HUB_PUBLISH_RUN_SLOTS", "3")
    more = daemon.tick("event_publication_sensor")
    # the two launched events stay held back; one more slot brings one more event
    assert [r.partition_key for r in more.run_requests] == [sorted(slugs)[2]]
    # a repeated tick before that run starts asks for the same run key (de-duplicated)
    assert daemon.tick("event_publication_sensor").run_requests[0].run_key == (
        more.run_requests[0].run_key
    )
