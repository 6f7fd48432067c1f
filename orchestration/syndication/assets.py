"""Per event (partition), per platform (asset): the published event and its registrations.

One multi-asset publishes to the selected platforms concurrently (asyncio + httpx); the
platforms that succeed materialize with their metadata (platform id, URL, latency,
attempts) even when another fails, and the failure is raised after them so the run
shows red. There is no Dagster RetryPolicy: each platform call has one retry budget
(policy.py), and a failed channel records when to try again, which the publication
sensor reads (a new run, under a new run key, once the back-off is over).
"""

import asyncio

import httpx
from dagster import (
    AssetExecutionContext,
    AssetKey,
    AssetSpec,
    Failure,
    MaterializeResult,
    MetadataValue,
    multi_asset,
)
from sqlalchemy import select

from hub.db import events as events_table
from hub.events import get_event
from hub.models import SYNDICATED_PLATFORMS
from orchestration.resources import HubDatabase, PlatformAdapters
from orchestration.syndication.leases import lease_owner_for_run
from orchestration.syndication.partitions import events_partitions
from orchestration.syndication.publisher import sync_channel
from orchestration.syndication.puller import pull_registrations

PLATFORMS = [p.value for p in SYNDICATED_PLATFORMS]


def published_key(platform: str) -> AssetKey:
    return AssetKey(["syndication", f"{platform}_event"])


def registrations_key(platform: str) -> AssetKey:
    return AssetKey(["syndication", f"{platform}_registrations"])


def _event_for(context: AssetExecutionContext, hub_db: HubDatabase):
    with hub_db.engine().connect() as conn:
        event_id = conn.scalar(
            select(events_table.c.id).where(events_table.c.slug == context.partition_key)
        )
        if event_id is None:
            raise Failure(f"no event with slug {context.partition_key!r}")
        return get_event(conn, event_id)


def _selected(context: AssetExecutionContext, key_for) -> list[str]:
    keys = context.selected_asset_keys
    return [p for p in PLATFORMS if key_for(p) in keys]


@multi_asset(
    specs=[
        AssetSpec(
            published_key(p),
            deps=[AssetKey(["app", "events"])],
            description=f"The event as published on {p}",
            group_name="syndication",
            kinds={p},
            skippable=True,
        )
        for p in PLATFORMS
    ],
    partitions_def=events_partitions,
    can_subset=True,
)
def published_events(
    context: AssetExecutionContext, hub_db: HubDatabase, adapters: PlatformAdapters
):
    event = _event_for(context, hub_db)
    platforms = _selected(context, published_key)
    engine = hub_db.engine()
    actor = f"dagster:run:{context.run_id[:8]}"
    owner = lease_owner_for_run(context.run_id)

    async def run():
        async with httpx.AsyncClient(timeout=30) as client:
            built = {p: adapters.build(p, client) for p in platforms}
            return await asyncio.gather(
                *(
                    sync_channel(engine, event, p, built[p], actor=actor, lease_owner=owner)
                    for p in platforms
                )
            )

    outcomes = asyncio.run(run())
    failed = []
    for outcome in outcomes:
        if outcome.orphan_error:
            context.log.warning(f"{outcome.platform}: orphan sweep: {outcome.orphan_error}")
        if outcome.action == "busy":  # another run is publishing it: nothing to do here
            context.log.info(outcome.error or f"{outcome.platform}: busy")
            continue
        if not outcome.ok:
            failed.append(outcome)
            context.log.error(f"{outcome.platform}: {outcome.error}")
            continue
        yield MaterializeResult(
            asset_key=published_key(outcome.platform),
            metadata={
                "action": outcome.action,
                "platform_event_id": outcome.platform_event_id or "",
                "url": MetadataValue.url(outcome.url) if outcome.url else "",
                "latency_ms": round(outcome.latency_ms, 1),
                "attempts": outcome.attempts,
                "event_version": event.version,
                "orphans_closed": ", ".join(outcome.orphans_closed),
            },
        )
    if failed:
        raise Failure(
            description="; ".join(f"{o.platform}: {o.error}" for o in failed),
            metadata={"failed_platforms": ", ".join(o.platform for o in failed)},
        )


@multi_asset(
    specs=[
        AssetSpec(
            registrations_key(p),
            deps=[published_key(p)],
            description=f"Registrations pulled from {p} into app.registrations",
            group_name="syndication",
            kinds={p, "postgres"},
            skippable=True,
        )
        for p in PLATFORMS
    ],
    partitions_def=events_partitions,
    can_subset=True,
)
def pulled_registrations(
    context: AssetExecutionContext, hub_db: HubDatabase, adapters: PlatformAdapters
):
    event = _event_for(context, hub_db)
    platforms = _selected(context, registrations_key)
    engine = hub_db.engine()
    actor = f"dagster:run:{context.run_id[:8]}"
    full = context.run.tags.get("hub/full_rescan") == "true"

    async def run():
        async with httpx.AsyncClient(timeout=60) as client:
            built = {p: adapters.build(p, client) for p in platforms}
            return await asyncio.gather(
                *(
                    pull_registrations(engine, event, p, built[p], actor=actor, full=full)
                    for p in platforms
                ),
                return_exceptions=True,
            )

    results = asyncio.run(run())
    errors = []
    for platform, result in zip(platforms, results, strict=True):
        if isinstance(result, BaseException):
            errors.append(f"{platform}: {result}")
            context.log.error(f"{platform}: {result}")
            continue
        counts = result.counts
        yield MaterializeResult(
            asset_key=registrations_key(platform),
            metadata={
                "pages": result.pages,
                "items": result.items,
                "inserted": counts.inserted if counts else 0,
                "updated": counts.updated if counts else 0,
                "unchanged": counts.unchanged if counts else 0,
                "seconds": round(result.seconds, 2),
                "full_rescan": full,
            },
        )
    if errors:
        raise Failure(description="; ".join(errors))
