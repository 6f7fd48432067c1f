"""Reactions: publish new, changed, failed-and-due and stranded channels; poll Meetup
(it sends no webhooks)."""

from dataclasses import dataclass, field
from datetime import UTC, datetime

from dagster import (
    DefaultSensorStatus,
    RunRequest,
    RunsFilter,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    define_asset_job,
    sensor,
)
from dagster._core.storage.dagster_run import IN_PROGRESS_RUN_STATUSES
from sqlalchemy import and_, func, or_, select

from hub.db import event_channels, events
from orchestration.resources import HubDatabase
from orchestration.syndication.assets import (
    PLATFORMS,
    published_events,
    published_key,
    pulled_registrations,
    registrations_key,
)
from orchestration.syndication.leases import run_id_of
from orchestration.syndication.partitions import events_partitions
from orchestration.syndication.policy import publish_policy

PUBLISH_JOB_TAGS = {"hub/lane": "publish"}  # dagster.yaml caps runs with this tag

publish_events_job = define_asset_job(
    "publish_events_job",
    selection=[published_events],
    partitions_def=events_partitions,
    tags=PUBLISH_JOB_TAGS,
    description="Publish or update one event (partition) on the selected platforms.",
)
pull_registrations_job = define_asset_job(
    "pull_registrations_job",
    selection=[pulled_registrations],
    partitions_def=events_partitions,
    description="Pull one event's registrations from the selected platforms.",
)


@dataclass
class PublicationState:
    """What the publication sensor sees in one read of the channels."""

    # {(slug, version): ["platform@attempts"]}: channels to publish now
    work: dict[tuple[str, int], list[str]] = field(default_factory=dict)
    # channels whose lease is live: a runner is publishing them
    leased: list[str] = field(default_factory=list)
    # {run_id: ["slug/platform"]}: expired leases held by a Dagster run (it died)
    dead_runs: dict[str, list[str]] = field(default_factory=dict)
    # the earliest back-off end among failed channels not yet due
    next_due: datetime | None = None
    waiting: int = 0


def publication_state(engine) -> PublicationState:
    """Channels needing work: pending, stranded in 'publishing' (lease run out), failed
    and due, or published at an older version (and due); none whose lease is live."""
    lease_free = or_(
        event_channels.c.lease_owner.is_(None), event_channels.c.lease_expires_at < func.now()
    )
    due = or_(
        event_channels.c.next_attempt_at.is_(None), event_channels.c.next_attempt_at <= func.now()
    )
    wants = or_(
        event_channels.c.status.in_(["pending", "publishing"]),
        event_channels.c.status == "failed",
        and_(
            event_channels.c.platform_event_id.isnot(None),
            event_channels.c.published_version < events.c.version,
        ),
    )
    query = (
        select(
            events.c.slug,
            events.c.version,
            event_channels.c.platform,
            event_channels.c.attempts,
            event_channels.c.status,
            event_channels.c.lease_owner,
            event_channels.c.next_attempt_at,
            lease_free.label("lease_free"),
            due.label("due"),
            wants.label("wants"),
        )
        .join(event_channels, event_channels.c.event_id == events.c.id)
        .where(
            events.c.status == "scheduled",
            event_channels.c.platform.in_(PLATFORMS),
            event_channels.c.status != "closed",
            or_(wants, event_channels.c.lease_owner.isnot(None)),
        )
    )
    state = PublicationState()
    with engine.connect() as conn:
        for row in conn.execute(query):
            name = f"{row.slug}/{row.platform}"
            if not row.lease_free:
                state.leased.append(name)
                continue
            run_id = run_id_of(row.lease_owner)
            if run_id:
                state.dead_runs.setdefault(run_id, []).append(name)
            if not row.wants:
                continue
            # a stranded channel (its runner died mid-call) is retried at once
            if not row.due and row.status != "publishing":
                state.waiting += 1
                if state.next_due is None or row.next_attempt_at < state.next_due:
                    state.next_due = row.next_attempt_at
                continue
            # the attempt count is in the run key: a retry is a new run, a repeated tick
            # before the run starts is the same run (Dagster de-duplicates it)
            state.work.setdefault((row.slug, row.version), []).append(
                f"{row.platform}@{row.attempts}"
            )
    return state


def channels_needing_work(engine) -> dict[tuple[str, int], list[str]]:
    """{(slug, version): ["platform@attempts"]} (the database's clock decides what is due)."""
    return publication_state(engine).work


def _publish_runs_in_progress(instance) -> list:
    return list(
        instance.get_runs(
            filters=RunsFilter(
                job_name=publish_events_job.name, statuses=list(IN_PROGRESS_RUN_STATUSES)
            )
        )
    )


@sensor(
    job=publish_events_job, minimum_interval_seconds=30, default_status=DefaultSensorStatus.RUNNING
)
def event_publication_sensor(context: SensorEvaluationContext, hub_db: HubDatabase):
    """New event, changed title/time/capacity, a failed platform whose back-off is over,
    or a channel a dead run left in 'publishing': publish. One run per event at a time,
    and publishing never takes more than its run slots."""
    policy = publish_policy()
    state = publication_state(hub_db.engine())
    runs = _publish_runs_in_progress(context.instance)
    for run in runs:
        if run.run_id in state.dead_runs:
            # Its lease ran out while Dagster still shows it running: its process died.
            context.instance.report_run_failed(
                run,
                f"its publish lease ran out ({', '.join(state.dead_runs[run.run_id])}): "
                "the run's process is gone; the channels are published again",
            )
    live = [r for r in runs if r.run_id not in state.dead_runs]
    busy_events = {r.tags.get("hub/event") for r in live}
    if not state.work:
        reasons = []
        if state.leased:
            reasons.append(f"{len(state.leased)} channel(s) being published now")
        if state.waiting:
            reasons.append(
                f"{state.waiting} failed channel(s) waiting for their back-off "
                f"(next at {state.next_due:%Y-%m-%d %H:%M:%S} UTC)"
            )
        return SkipReason("; ".join(reasons) or "every event is up to date on every platform")
    slugs = sorted({slug for slug, _ in state.work})
    existing = set(context.instance.get_dynamic_partitions(events_partitions.name))
    free_slots = max(policy.run_slots - len(live), 0)
    requests, held_back = [], []
    for (slug, version), tagged in sorted(state.work.items()):
        if slug in busy_events:
            held_back.append(f"{slug} (its publish run is still in progress)")
            continue
        if len(requests) >= free_slots:
            held_back.append(f"{slug} (publish run slots full: {policy.run_slots})")
            continue
        platforms = sorted({t.split("@")[0] for t in tagged})
        requests.append(
            RunRequest(
                run_key=f"publish:{slug}:v{version}:{'+'.join(sorted(tagged))}",
                partition_key=slug,
                asset_selection=[published_key(p) for p in platforms],
                tags={"hub/event": slug, "hub/version": str(version), **PUBLISH_JOB_TAGS},
            )
        )
    new_slugs = [s for s in slugs if s not in existing]
    if not requests:
        return SensorResult(
            skip_reason=SkipReason("waiting: " + "; ".join(held_back)),
            dynamic_partitions_requests=(
                [events_partitions.build_add_request(new_slugs)] if new_slugs else []
            ),
        )
    if held_back:
        context.log.info("held back: " + "; ".join(held_back))
    return SensorResult(
        run_requests=requests,
        dynamic_partitions_requests=(
            [events_partitions.build_add_request(new_slugs)] if new_slugs else []
        ),
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
