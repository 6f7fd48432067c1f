"""Demo step: exactly once under faults, through the real sensor and the real runs.

A second event is published while Eventbrite answers 500: the publication sensor's tick
launches a run, Meetup and Luma are published, Eventbrite fails and backs off (the next
tick says so instead of piling up runs); Eventbrite recovers, the next due tick publishes
it, and every platform holds exactly one event. The back-off is compressed to seconds
(HUB_PUBLISH_* for this step only); nothing else differs from `make up`.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

import httpx
from dagster import RunsFilter
from sqlalchemy import select

from hub.db import event_channels
from hub.events import create_event, parse_spec
from hub.settings import environment
from orchestration.ticks import RUN_KEY_TAG, evaluate_sensor_tick, run_key_used

SENSOR = "event_publication_sensor"
COMPRESSED = {
    "HUB_PUBLISH_BACKOFF_BASE_SECONDS": "2",
    "HUB_PUBLISH_BACKOFF_MAX_SECONDS": "4",
    "HUB_PUBLISH_CALL_ATTEMPTS": "2",
    "HUB_PUBLISH_CALL_BASE_DELAY": "0.2",
    "HUB_PUBLISH_CALL_BUDGET_SECONDS": "10",
}


def _tick(defs: Any, instance: Any) -> Any:
    return evaluate_sensor_tick(defs, instance, SENSOR)


def _launch(defs: Any, instance: Any, data: Any, run_job: Any, slug: str) -> list[str]:
    """Run this event's requested runs in-process, skipping run keys already used."""
    ran = []
    for request in data.run_requests or []:
        if request.partition_key != slug:
            continue
        if run_key_used(instance, request.run_key):
            continue
        run_job(
            defs,
            instance,
            "publish_events_job",
            request.partition_key,
            asset_selection=list(request.asset_selection or []) or None,
            tags={**(request.tags or {}), RUN_KEY_TAG: request.run_key},
        )
        ran.append(request.run_key)
    return ran


def _channels(engine: Any, event_id: Any) -> dict[str, Any]:
    with engine.connect() as conn:
        return {
            r.platform: r
            for r in conn.execute(
                select(event_channels).where(event_channels.c.event_id == event_id)
            )
        }


def run_step(
    out: Any, engine: Any, defs: Any, instance: Any, sandbox_url: Any, run_job: Any
) -> None:
    out.step("Exactly once under faults: Eventbrite answers 500, then recovers")
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    spec = parse_spec(
        {
            "title": f"Hata Toleransı Buluşması {stamp[-6:]}",
            "slug": f"hata-toleransi-demo-{stamp}",
            "starts_at": "2027-03-11T19:00:00",
            "ends_at": "2027-03-11T21:00:00",
            "total_capacity": 30,
            "currency": "TRY",
            "price": "0",
            "channels": {"meetup": None, "eventbrite": None, "luma": None},
        }
    )
    with engine.begin() as conn:
        event = create_event(conn, spec, actor="demo")
    eventbrite = f"{sandbox_url('eventbrite')}/_sandbox/config"
    rows = []
    with environment(COMPRESSED):
        httpx.post(
            eventbrite, json={"fail_next": {"count": 10_000, "status": 500}}, timeout=10
        ).raise_for_status()
        try:
            first = _tick(defs, instance)
            launched = _launch(defs, instance, first, run_job, event.slug)
            channels = _channels(engine, event.id)
            rows.append(["tick 1 (Eventbrite down)", len(launched), _states(channels), "-"])
            second = _tick(defs, instance)
            mine = [r for r in second.run_requests or [] if r.partition_key == event.slug]
            rows.append(
                [
                    "tick 2 (at once)",
                    len(mine),
                    _states(_channels(engine, event.id)),
                    (second.skip_message or "")[:100] if not mine else "-",
                ]
            )
        finally:
            httpx.post(eventbrite, json={"fail_next": None}, timeout=10).raise_for_status()
        due = _channels(engine, event.id)["eventbrite"].next_attempt_at
        if due is not None:  # the back-off the failure set; the sensor waits for it
            time.sleep(max((due - datetime.now(UTC)).total_seconds(), 0) + 0.5)
        third = _tick(defs, instance)
        launched = _launch(defs, instance, third, run_job, event.slug)
        rows.append(
            ["tick 3 (recovered, due)", len(launched), _states(_channels(engine, event.id)), "-"]
        )
        fourth = _tick(defs, instance)
        mine = [r for r in fourth.run_requests or [] if r.partition_key == event.slug]
        rows.append(
            ["tick 4", len(mine), _states(_channels(engine, event.id)), "up to date" if not mine
             else "-"]
        )  # fmt: skip
    out.table(["sensor tick", "runs launched", "channels", "skip reason"], rows)
    in_progress = instance.get_runs(
        RunsFilter(tags={"hub/event": event.slug}, statuses=_in_progress()), limit=10
    )
    on_eventbrite = _eventbrite_events_named(sandbox_url("eventbrite"), event.title)
    out.line(
        f"Eventbrite holds {on_eventbrite} event(s) named {event.title!r} (read through its "
        f"API); publish runs still in progress: {len(in_progress)}"
    )


def _eventbrite_events_named(base_url: str, title: str) -> int:
    """Events of the sandbox organization with this name, every page, every status."""
    from integrations.sandbox.credentials import EVENTBRITE_ORGANIZATION_ID, EVENTBRITE_TOKEN

    count, continuation = 0, None
    while True:
        params = {"status": "all", **({"continuation": continuation} if continuation else {})}
        response = httpx.get(
            f"{base_url}/v3/organizations/{EVENTBRITE_ORGANIZATION_ID}/events/",
            params=params,
            headers={"Authorization": f"Bearer {EVENTBRITE_TOKEN}"},
            timeout=10,
        )
        response.raise_for_status()
        page = response.json()
        count += sum(1 for e in page.get("events", []) if e["name"]["text"] == title)
        pagination = page.get("pagination") or {}
        continuation = pagination.get("continuation")
        if not pagination.get("has_more_items") or not continuation:
            return count


def _states(channels: dict[str, Any]) -> str:
    return " ".join(f"{p}:{c.status}" for p, c in sorted(channels.items()))


def _in_progress() -> list[Any]:
    from dagster._core.storage.dagster_run import IN_PROGRESS_RUN_STATUSES

    return list(IN_PROGRESS_RUN_STATUSES)
