"""Reactions: publish new and changed events; poll Meetup (it sends no webhooks)."""

from datetime import UTC, datetime, timedelta

from dagster import (
    DefaultSensorStatus,
    RunRequest,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    define_asset_job,
    sensor,
)
from sqlalchemy import and_, or_, select

from hub.db import event_channels, events
from orchestration.resources import HubDatabase
from orchestration.syndication.assets import (
    PLATFORMS,
    published_events,
    published_key,
    pulled_registrations,
    registrations_key,
)
from orchestration.syndication.partitions import events_partitions

publish_events_job = define_asset_job(
    "publish_events_job",
    selection=[published_events],
    partitions_def=events_partitions,
    description="Publish or update one event (partition) on the selected platforms.",
)
pull_registrations_job = define_asset_job(
    "pull_registrations_job",
    selection=[pulled_registrations],
    partitions_def=events_partitions,
    description="Pull one event's registrations from the selected platforms.",
)

# A failed channel is retried by the sensor after this long (the step has its own retries).
FAILED_RETRY_AFTER = timedelta(minutes=2)


def channels_needing_work(engine, now: datetime) -> dict[tuple[str, int], list[str]]:
    """{(slug, version): ["platform@attempts"]} for pending, failed-and-due and outdated
    channels."""
    query = (
        select(
            events.c.slug, events.c.version, event_channels.c.platform, event_channels.c.attempts
        )
        .join(event_channels, event_channels.c.event_id == events.c.id)
        .where(
            events.c.status == "scheduled",
            event_channels.c.platform.in_(PLATFORMS),
            or_(
                event_channels.c.status == "pending",
                and_(
                    event_channels.c.status == "failed",
                    or_(
                        event_channels.c.synced_at.is_(None),
                        event_channels.c.synced_at < now - FAILED_RETRY_AFTER,
                    ),
                ),
                and_(
                    event_channels.c.platform_event_id.isnot(None),
                    event_channels.c.published_version < events.c.version,
                ),
            ),
        )
    )
    work: dict[tuple[str, int], list[str]] = {}
    with engine.connect() as conn:
        for slug, version, platform, attempts in conn.execute(query):
            # the attempt count is part of the tag so a retry gets a new run key
            work.setdefault((slug, version), []).append(f"{platform}@{attempts}")
    return work


@sensor(
    job=publish_events_job, minimum_interval_seconds=30, default_status=DefaultSensorStatus.RUNNING
)
def event_publication_sensor(context: SensorEvaluationContext, hub_db: HubDatabase):
    """New event, changed title/time/capacity, or a failed platform: publish."""
    work = channels_needing_work(hub_db.engine(), datetime.now(UTC))
    if not work:
        return SkipReason("every event is up to date on every platform")
    slugs = sorted({slug for slug, _ in work})
    existing = set(context.instance.get_dynamic_partitions(events_partitions.name))
    requests = []
    for (slug, version), tagged in sorted(work.items()):
        platforms = sorted({t.split("@")[0] for t in tagged})
        requests.append(
            RunRequest(
                run_key=f"publish:{slug}:v{version}:{'+'.join(sorted(tagged))}",
                partition_key=slug,
                asset_selection=[published_key(p) for p in platforms],
                tags={"hub/event": slug, "hub/version": str(version)},
            )
        )
    return SensorResult(
        run_requests=requests,
        dynamic_partitions_requests=[
            events_partitions.build_add_request([s for s in slugs if s not in existing])
        ],
    )


def events_on_sale(engine, now: datetime, platform: str) -> list[str]:
    """Slugs of events not yet ended whose channel on ``platform`` is live."""
    with engine.connect() as conn:
        return list(
            conn.scalars(
                select(events.c.slug)
                .join(event_channels, event_channels.c.event_id == events.c.id)
                .where(
                    events.c.status == "scheduled",
                    events.c.ends_at > now,
                    event_channels.c.platform == platform,
                    event_channels.c.platform_event_id.isnot(None),
                )
                .order_by(events.c.starts_at)
            )
        )


MEETUP_POLL_SECONDS = 120


@sensor(
    job=pull_registrations_job,
    minimum_interval_seconds=MEETUP_POLL_SECONDS,
    default_status=DefaultSensorStatus.RUNNING,
)
def meetup_rsvp_poll_sensor(context: SensorEvaluationContext, hub_db: HubDatabase):
    """Meetup has no webhooks: poll RSVPs of events on sale every couple of minutes."""
    now = datetime.now(UTC)
    slugs = events_on_sale(hub_db.engine(), now, "meetup")
    if not slugs:
        return SkipReason("no Meetup event on sale")
    bucket = int(now.timestamp()) // MEETUP_POLL_SECONDS
    return [
        RunRequest(
            run_key=f"meetup-poll:{slug}:{bucket}",
            partition_key=slug,
            asset_selection=[registrations_key("meetup")],
            tags={"hub/event": slug},
        )
        for slug in slugs
    ]
