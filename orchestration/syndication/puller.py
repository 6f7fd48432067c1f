"""Pull registrations from a platform incrementally, page by page, raw first.

Each page lands in ``raw.platform_pulls`` and is upserted into ``app.registrations`` in
the same transaction as the stored cursor moves, so a crash mid-pull resumes at the last
committed page and memory stays flat whatever the event's size.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.engine import Engine

from hub.db import event_channels, platform_pulls, sync_cursors
from hub.models import Event, RegistrationPage
from hub.registrations import UpsertCounts, upsert_registrations
from integrations.base import ChannelAdapter, RetryBudget, with_retries

# One page request: at most 6 tries within 2 minutes (Retry-After waits included); the
# schedules and the Meetup poll bring the next pull, so Dagster adds no retries.
PAGE_BUDGET = RetryBudget(attempts=6, seconds=120.0)


@dataclass
class PullOutcome:
    platform: str
    platform_event_id: str | None
    pages: int = 0
    items: int = 0
    counts: UpsertCounts | None = None
    cursor: str | None = None
    seconds: float = 0.0

    @property
    def inserted(self) -> int:
        return self.counts.inserted if self.counts else 0

    @property
    def updated(self) -> int:
        return self.counts.updated if self.counts else 0


def load_cursor(engine: Engine, platform: str, scope: str) -> str | None:
    with engine.connect() as conn:
        return conn.scalar(
            select(sync_cursors.c.cursor).where(
                sync_cursors.c.platform == platform, sync_cursors.c.scope == scope
            )
        )


def _page_body(page: RegistrationPage) -> bytes:
    payload = page.raw or {"items": [item.raw for item in page.items]}
    return json.dumps(payload, default=str, separators=(",", ":")).encode()


async def pull_registrations(
    engine: Engine,
    event: Event,
    platform: str,
    adapter: ChannelAdapter,
    *,
    actor: str,
    page_size: int = 100,
    full: bool = False,
    budget: RetryBudget = PAGE_BUDGET,
) -> PullOutcome:
    """Pull what is new since the stored cursor (``full``: from the beginning)."""
    started = time.perf_counter()
    with engine.connect() as conn:
        platform_event_id = conn.scalar(
            select(event_channels.c.platform_event_id).where(
                event_channels.c.event_id == event.id, event_channels.c.platform == platform
            )
        )
    outcome = PullOutcome(platform, platform_event_id, counts=UpsertCounts())
    if not platform_event_id:
        return outcome
    cursor = None if full else load_cursor(engine, platform, platform_event_id)
    while True:
        cursor_in = cursor
        page: RegistrationPage = await with_retries(
            lambda c=cursor_in: adapter.list_registrations(platform_event_id, c, page_size),
            budget=budget,
        )
        body = _page_body(page)
        with engine.begin() as conn:
            conn.execute(
                platform_pulls.insert().values(
                    source=platform,
                    headers={},
                    body=body,
                    body_size=len(body),
                    verified=True,
                    status="processed",
                    processed_at=func.now(),
                    platform_event_id=platform_event_id,
                    cursor_in=cursor_in,
                    cursor_out=page.next_cursor,
                    item_count=len(page.items),
                )
            )
            outcome.counts += upsert_registrations(
                conn, page.items, actor=actor, reason=f"pull {platform}"
            )
            next_cursor = page.next_cursor or cursor_in
            conn.execute(
                pg_insert(sync_cursors)
                .values(
                    platform=platform,
                    scope=platform_event_id,
                    cursor=next_cursor,
                    last_pulled_at=func.now(),
                    last_count=len(page.items),
                )
                .on_conflict_do_update(
                    index_elements=["platform", "scope"],
                    set_={
                        "cursor": next_cursor,
                        "last_pulled_at": func.now(),
                        "last_count": len(page.items),
                    },
                )
            )
        outcome.pages += 1
        outcome.items += len(page.items)
        outcome.cursor = next_cursor
        if not page.has_more or not page.next_cursor or page.next_cursor == cursor_in:
            break
        cursor = page.next_cursor
    outcome.seconds = time.perf_counter() - started
    return outcome
