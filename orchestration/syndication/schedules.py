"""Routines: catch-up pulls for events on sale, and rare full re-scans of past events.

They keep the data correct when a webhook is missed, so they start RUNNING (a new
deployment needs no click in the UI)."""

from datetime import UTC, timedelta

from dagster import (
    DefaultScheduleStatus,
    RunRequest,
    ScheduleEvaluationContext,
    SkipReason,
    schedule,
)
from sqlalchemy import select

from hub.db import event_channels, events
from orchestration.resources import HubDatabase
from orchestration.syndication.assets import PLATFORMS, registrations_key
from orchestration.syndication.sensors import pull_registrations_job


@schedule(
    job=pull_registrations_job,
    cron_schedule="*/15 * * * *",
    execution_timezone="Europe/Istanbul",
    default_status=DefaultScheduleStatus.RUNNING,
)
def registrations_catch_up_schedule(context: ScheduleEvaluationContext, hub_db: HubDatabase):
    """Webhooks bring Eventbrite and Luma changes at once; this catches any they missed
    (Eventbrite's changed_since and Luma's cursor keep each pull small)."""
    now = context.scheduled_execution_time.astimezone(UTC)
    with hub_db.engine().connect() as conn:
        rows = conn.execute(
            select(events.c.slug, event_channels.c.platform)
            .join(event_channels, event_channels.c.event_id == events.c.id)
            .where(
                events.c.status == "scheduled",
                events.c.ends_at > now,
                event_channels.c.platform.in_(["eventbrite", "luma"]),
                event_channels.c.platform_event_id.isnot(None),
            )
        ).all()
    if not rows:
        return SkipReason("no Eventbrite or Luma event on sale")
    by_slug: dict[str, list[str]] = {}
    for slug, platform in rows:
        by_slug.setdefault(slug, []).append(platform)
    stamp = now.strftime("%Y%m%d%H%M")
    return [
        RunRequest(
            run_key=f"catch-up:{slug}:{stamp}",
            partition_key=slug,
            asset_selection=[registrations_key(p) for p in sorted(platforms)],
        )
        for slug, platforms in by_slug.items()
    ]


@schedule(
    job=pull_registrations_job,
    cron_schedule="30 4 * * *",
    execution_timezone="Europe/Istanbul",
    default_status=DefaultScheduleStatus.RUNNING,
)
def past_events_rescan_schedule(context: ScheduleEvaluationContext, hub_db: HubDatabase):
    """Once a day, a full re-scan of events that ended in the last 30 days (attendance,
    late cancellations, and Meetup status changes its offset cursor cannot see)."""
    now = context.scheduled_execution_time.astimezone(UTC)
    with hub_db.engine().connect() as conn:
        slugs = conn.scalars(
            select(events.c.slug).where(
                events.c.ends_at <= now, events.c.ends_at > now - timedelta(days=30)
            )
        ).all()
    if not slugs:
        return SkipReason("no event ended in the last 30 days")
    stamp = now.strftime("%Y%m%d")
    return [
        RunRequest(
            run_key=f"rescan:{slug}:{stamp}",
            partition_key=slug,
            asset_selection=[registrations_key(p) for p in PLATFORMS],
            tags={"hub/full_rescan": "true"},
        )
        for slug in slugs
    ]


@schedule(
    job=pull_registrations_job,
    cron_schedule="7 * * * *",
    execution_timezone="Europe/Istanbul",
    default_status=DefaultScheduleStatus.RUNNING,
)
def meetup_upcoming_rescan_schedule(context: ScheduleEvaluationContext, hub_db: HubDatabase):
    """Hourly full re-scan of Meetup events on sale: its offset cursor only brings new
    RSVPs, so a YES that turns NO (a freed seat) is caught here, within the hour."""
    from orchestration.syndication.sensors import events_on_sale

    now = context.scheduled_execution_time.astimezone(UTC)
    slugs = events_on_sale(hub_db.engine(), now, "meetup")
    if not slugs:
        return SkipReason("no Meetup event on sale")
    stamp = now.strftime("%Y%m%d%H")
    return [
        RunRequest(
            run_key=f"meetup-rescan:{slug}:{stamp}",
            partition_key=slug,
            asset_selection=[registrations_key("meetup")],
            tags={"hub/full_rescan": "true"},
        )
        for slug in slugs
    ]
