"""Publish an event to every platform at once, and push its changes.

Plain asyncio + SQLAlchemy (no Dagster), so the Dagster assets, the demo and the
benchmarks call the same code. Each platform runs concurrently; one failing neither
blocks nor undoes the others. Re-running creates nothing twice: the stored platform id
turns a second run into an update (or nothing), and before creating, the adapter looks
for an event a lost reply may have hidden (``find_existing``).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from sqlalchemy import func, select, update
from sqlalchemy.engine import Engine

from hub import audit
from hub.db import event_channels, events
from hub.events import get_event
from hub.models import ChannelPublication, Event
from integrations.base import AdapterError, ChannelAdapter, with_retries


@dataclass
class ChannelOutcome:
    platform: str
    action: str  # created | adopted | updated | unchanged | failed | skipped
    platform_event_id: str | None = None
    url: str | None = None
    latency_ms: float = 0.0
    attempts: int = 0
    error: str | None = None
    retry_after: float | None = None
    raw: dict[str, Any] = field(default_factory=dict)

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


def _mark_attempt(engine: Engine, channel_id: int) -> None:
    with engine.begin() as conn:
        conn.execute(
            update(event_channels)
            .where(event_channels.c.id == channel_id)
            .values(
                attempts=event_channels.c.attempts + 1,
                status=func.coalesce(
                    # a published channel being updated stays published
                    func.nullif(event_channels.c.status, "failed"),
                    "publishing",
                ),
            )
        )


def _store_success(
    engine: Engine,
    channel: dict,
    event: Event,
    pub: ChannelPublication,
    outcome: ChannelOutcome,
    actor: str,
) -> None:
    with engine.begin() as conn:
        conn.execute(
            update(event_channels)
            .where(event_channels.c.id == channel["id"])
            .values(
                platform_event_id=pub.platform_event_id,
                url=pub.url,
                status="published",
                published_version=event.version,
                raw_response=pub.raw,
                last_error=None,
                synced_at=func.now(),
            )
        )
        audit.record(
            conn,
            entity="event_channel",
            entity_id=channel["id"],
            action=f"syndication.{outcome.action}",
            actor=actor,
            data={
                "platform": outcome.platform,
                "platform_event_id": pub.platform_event_id,
                "version": event.version,
                "attempts": outcome.attempts,
                "latency_ms": round(outcome.latency_ms, 1),
            },
        )


def _store_failure(engine: Engine, channel: dict, outcome: ChannelOutcome, actor: str) -> None:
    with engine.begin() as conn:
        conn.execute(
            update(event_channels)
            .where(event_channels.c.id == channel["id"])
            .values(
                # a channel already live keeps 'published' (its update failed, the event is up)
                status="published" if channel["platform_event_id"] else "failed",
                last_error=outcome.error,
            )
        )
        audit.record(
            conn,
            entity="event_channel",
            entity_id=channel["id"],
            action="syndication.failed",
            actor=actor,
            reason=outcome.error,
            data={"platform": outcome.platform, "attempts": outcome.attempts},
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


async def sync_channel(
    engine: Engine,
    event: Event,
    platform: str,
    adapter: ChannelAdapter,
    *,
    actor: str,
    attempts: int = 5,
    base_delay: float = 0.5,
    max_delay: float = 30.0,
) -> ChannelOutcome:
    """Create, adopt or update the event on one platform; never raises AdapterError."""
    channel = _channel(engine, event.id, platform)
    if channel is None:
        return ChannelOutcome(platform, "skipped")
    if channel["platform_event_id"] and channel["published_version"] == event.version:
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
    _mark_attempt(engine, channel["id"])
    started = time.perf_counter()
    try:
        pub = await with_retries(
            push if channel["platform_event_id"] else create,
            attempts=attempts,
            base_delay=base_delay,
            max_delay=max_delay,
        )
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
        _store_failure(engine, channel, outcome, actor)
        return outcome
    outcome.latency_ms = (time.perf_counter() - started) * 1000
    outcome.attempts = tries
    outcome.platform_event_id = pub.platform_event_id
    outcome.url = pub.url
    outcome.raw = pub.raw
    _store_success(engine, channel, event, pub, outcome, actor)
    return outcome


async def sync_event(
    engine: Engine,
    event_id: UUID | str,
    adapters: Mapping[str, ChannelAdapter],
    *,
    actor: str,
    attempts: int = 5,
    base_delay: float = 0.5,
) -> list[ChannelOutcome]:
    """Bring the event up to date on every platform in ``adapters``, concurrently."""
    with engine.connect() as conn:
        event = get_event(conn, event_id)
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
                )
                for platform, adapter in adapters.items()
            )
        )
    )
