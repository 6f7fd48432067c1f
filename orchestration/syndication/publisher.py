"""Publish an event to every platform at once, and push its changes.

Plain asyncio + SQLAlchemy (no Dagster), so the Dagster assets, the demo and the
benchmarks call the same code. Each platform runs concurrently; one failing neither
blocks nor undoes the others. Re-running creates nothing twice: the stored platform id
turns a second run into an update (or nothing), and before creating, the adapter looks
for an event a lost reply may have hidden (``find_existing``).

Runs side by side are kept apart by a lease on the channel row (leases.py): whoever
launches a publish (sensor, schedule, manual run, CLI, demo), only the lease holder
talks to the platform; another runner gets ``busy`` and does nothing. A failure records
when the channel may be tried again (``next_attempt_at``, the back-off the sensor reads).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from sqlalchemy import func, select, text, update
from sqlalchemy.engine import Engine

from hub import audit
from hub.db import event_channels, events
from hub.events import get_event
from hub.models import ChannelPublication, Event
from integrations.base import AdapterError, ChannelAdapter, RetryBudget, with_retries
from orchestration.syndication import leases
from orchestration.syndication.policy import PublishPolicy, publish_policy


@dataclass
class ChannelOutcome:
    platform: str
    action: str  # created | adopted | updated | unchanged | failed | skipped | busy
    platform_event_id: str | None = None
    url: str | None = None
    latency_ms: float = 0.0
    attempts: int = 0
    error: str | None = None
    retry_after: float | None = None
    raw: dict[str, Any] = field(default_factory=dict)
    orphans_closed: list[str] = field(default_factory=list)  # duplicates taken off sale
    orphan_error: str | None = None

    @property
    def ok(self) -> bool:
        return self.action != "failed"


def _channel(engine: Engine, event_id: UUID, platform: str) -> dict[str, Any] | None:
    with engine.connect() as conn:
        row = (
            conn.execute(
                select(event_channels).where(
                    event_channels.c.event_id == event_id, event_channels.c.platform == platform
                )
            )
            .mappings()
            .one_or_none()
        )
    return dict(row) if row else None


def _store_success(
    engine: Engine,
    lease: leases.Lease,
    event: Event,
    pub: ChannelPublication,
    outcome: ChannelOutcome,
    actor: str,
) -> bool:
    """Record the publication and give the lease back; False when the lease was lost
    (another runner took the channel over: it finds this event through find_existing)."""
    with engine.begin() as conn:
        stored = conn.execute(
            update(event_channels)
            .where(
                event_channels.c.id == lease.channel_id,
                event_channels.c.lease_owner == lease.owner,
            )
            .values(
                platform_event_id=pub.platform_event_id,
                url=pub.url,
                status="published",
                published_version=event.version,
                raw_response=pub.raw,
                last_error=None,
                synced_at=func.now(),
                attempts=0,  # attempts since the last success: the back-off counts them
                next_attempt_at=None,
                lease_owner=None,
                lease_expires_at=None,
            )
        ).rowcount
        if not stored:
            return False
        audit.record(
            conn,
            entity="event_channel",
            entity_id=lease.channel_id,
            action=f"syndication.{outcome.action}",
            actor=actor,
            data={
                "platform": outcome.platform,
                "platform_event_id": pub.platform_event_id,
                "version": event.version,
                "attempts": outcome.attempts,
                "latency_ms": round(outcome.latency_ms, 1),
                "orphans_closed": outcome.orphans_closed,
                "orphan_error": outcome.orphan_error,
            },
        )
    return True


def _store_failure(
    engine: Engine,
    lease: leases.Lease,
    channel: dict,
    outcome: ChannelOutcome,
    actor: str,
    policy: PublishPolicy,
) -> None:
    """Record the error and when to try again, and give the lease back."""
    wait = policy.backoff(channel["attempts"], outcome.retry_after)
    with engine.begin() as conn:
        conn.execute(
            update(event_channels)
            .where(
                event_channels.c.id == lease.channel_id,
                event_channels.c.lease_owner == lease.owner,
            )
            .values(
                # a channel already live keeps 'published' (its update failed, the event is up)
                status="published" if channel["platform_event_id"] else "failed",
                last_error=outcome.error,
                next_attempt_at=func.now()
                + text("make_interval(secs => :wait_secs)").bindparams(
                    wait_secs=wait.total_seconds()
                ),
                lease_owner=None,
                lease_expires_at=None,
            )
        )
        audit.record(
            conn,
            entity="event_channel",
            entity_id=lease.channel_id,
            action="syndication.failed",
            actor=actor,
            reason=outcome.error,
            data={
                "platform": outcome.platform,
                "attempts": outcome.attempts,
                "retry_in_seconds": round(wait.total_seconds(), 1),
            },
        )


def _taken_ids(engine: Engine, channel: dict, event: Event) -> set[str]:
    """Platform ids of other hub events starting at the same moment: find_existing must
    not adopt them (two hub events may share a title and a time; each gets its own)."""
    with engine.connect() as conn:
        return set(
            conn.scalars(
                select(event_channels.c.platform_event_id)
                .join(events, events.c.id == event_channels.c.event_id)
                .where(
                    event_channels.c.platform == channel["platform"],
                    event_channels.c.id != channel["id"],
                    event_channels.c.platform_event_id.isnot(None),
                    events.c.starts_at == event.starts_at,
                )
            )
        )


MAX_ORPHANS = 5


async def _close_orphans(
    adapter: ChannelAdapter,
    event: Event,
    kept: ChannelPublication,
    taken: set[str],
    outcome: ChannelOutcome,
    budget: RetryBudget,
) -> None:
    """Take off sale any other platform event made for this hub event (by overlapping
    runs before leases, or a runner whose lease ran out mid-call): the adapters'
    find_existing, excluding the one kept and other hub events' ids, finds them;
    close_sales stops them selling. Best effort: a failure here is reported on the
    outcome and audited with the success, never undoes the publication."""
    exclude = set(taken) | {kept.platform_event_id}
    try:
        for _ in range(MAX_ORPHANS):
            orphan = await with_retries(
                lambda: adapter.find_existing(event, exclude=exclude), budget=budget
            )
            if orphan is None:
                return
            orphan_id = orphan.platform_event_id
            await with_retries(lambda i=orphan_id: adapter.close_sales(i), budget=budget)
            outcome.orphans_closed.append(orphan_id)
            exclude.add(orphan_id)
    except AdapterError as exc:
        outcome.orphan_error = str(exc)


async def sync_channel(
    engine: Engine,
    event: Event,
    platform: str,
    adapter: ChannelAdapter,
    *,
    actor: str,
    attempts: int | None = None,
    base_delay: float | None = None,
    max_delay: float | None = None,
    budget: RetryBudget | None = None,
    lease_owner: str | None = None,
    policy: PublishPolicy | None = None,
) -> ChannelOutcome:
    """Create, adopt or update the event on one platform; never raises AdapterError.

    The platform call spends one retry budget (``budget``, or the policy's with
    ``attempts``/``base_delay``/``max_delay`` overriding it) and runs under the channel's
    lease, held by ``lease_owner`` (this process by default); when another runner holds
    the lease the outcome is ``busy`` and nothing is sent.
    """
    policy = policy or publish_policy()
    if budget is None:
        default = policy.budget()
        budget = RetryBudget(
            attempts=attempts or default.attempts,
            seconds=default.seconds,
            base_delay=default.base_delay if base_delay is None else base_delay,
            max_delay=default.max_delay if max_delay is None else max_delay,
        )
    channel = _channel(engine, event.id, platform)
    if channel is None:
        return ChannelOutcome(platform, "skipped")
    if channel["platform_event_id"] and channel["published_version"] == event.version:
        return ChannelOutcome(platform, "unchanged", channel["platform_event_id"], channel["url"])
    lease = leases.Lease(
        channel["id"], lease_owner or leases.process_owner(actor), policy.lease_seconds
    )
    claimed = leases.claim(engine, lease.channel_id, lease.owner, lease.seconds)
    if claimed is None:
        holder = _channel(engine, event.id, platform) or {}
        return ChannelOutcome(
            platform,
            "busy",
            error=f"{platform}: another runner holds the publish lease "
            f"({holder.get('lease_owner')}, until {holder.get('lease_expires_at')})",
        )
    channel = claimed  # read under the lease: a runner that finished before us shows here
    if channel["platform_event_id"] and channel["published_version"] == event.version:
        leases.release(engine, lease.channel_id, lease.owner)
        return ChannelOutcome(platform, "unchanged", channel["platform_event_id"], channel["url"])
    capacity = event.capacity_for(platform)
    outcome = ChannelOutcome(platform, "failed")
    tries = 0

    async def create() -> ChannelPublication:
        nonlocal tries
        tries += 1
        existing = await adapter.find_existing(event, exclude=taken)
        if existing is not None:
            outcome.action = "adopted"
            return await adapter.adopt_existing(event, existing, capacity)
        outcome.action = "created"
        return await adapter.publish_event(event, capacity)

    async def push() -> ChannelPublication:
        nonlocal tries
        tries += 1
        outcome.action = "updated"
        return await adapter.update_event(event, channel["platform_event_id"], capacity)

    taken = _taken_ids(engine, channel, event)
    started = time.perf_counter()
    try:
        async with leases.held(engine, lease):
            pub = await with_retries(
                push if channel["platform_event_id"] else create, budget=budget
            )
            if outcome.action in ("created", "adopted"):
                await _close_orphans(adapter, event, pub, taken, outcome, budget)
    except Exception as exc:  # one platform's failure, whatever it is, stays its own
        outcome.action = "failed"
        outcome.error = (
            str(exc)
            if isinstance(exc, AdapterError)
            else (f"{platform}: unexpected {type(exc).__name__}: {str(exc)[:300]}")
        )
        outcome.retry_after = getattr(exc, "retry_after", None)
        outcome.attempts = tries
        outcome.latency_ms = (time.perf_counter() - started) * 1000
        _store_failure(engine, lease, channel, outcome, actor, policy)
        return outcome
    outcome.latency_ms = (time.perf_counter() - started) * 1000
    outcome.attempts = tries
    outcome.platform_event_id = pub.platform_event_id
    outcome.url = pub.url
    outcome.raw = pub.raw
    if lease.lost or not _store_success(engine, lease, event, pub, outcome, actor):
        # Another runner took the channel over after our lease ran out; it adopts this
        # platform event through find_existing instead of creating a second one.
        outcome.action = "failed"
        outcome.error = f"{platform}: publish lease lost before the result was stored"
    return outcome


async def sync_event(
    engine: Engine,
    event_id: UUID | str,
    adapters: Mapping[str, ChannelAdapter],
    *,
    actor: str,
    attempts: int | None = None,
    base_delay: float | None = None,
    lease_owner: str | None = None,
    policy: PublishPolicy | None = None,
) -> list[ChannelOutcome]:
    """Bring the event up to date on every platform in ``adapters``, concurrently."""
    with engine.connect() as conn:
        event = get_event(conn, event_id)
    owner = lease_owner or leases.process_owner(actor)
    return list(
        await asyncio.gather(
            *(
                sync_channel(
                    engine,
                    event,
                    platform,
                    adapter,
                    actor=actor,
                    attempts=attempts,
                    base_delay=base_delay,
                    lease_owner=owner,
                    policy=policy,
                )
                for platform, adapter in adapters.items()
            )
        )
    )
