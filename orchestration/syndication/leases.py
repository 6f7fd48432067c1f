"""One publish per (event, platform) at a time: a lease on the channel row.

``claim`` takes the row only when nobody holds it or the holder's lease has run out
(one UPDATE ... WHERE, so two runners racing cannot both win); ``held`` renews it while
the platform call runs. A runner that dies stops renewing: its lease expires and the
next claim (the sensor's next run) takes the channel over, adopting whatever the dead
runner created through ``find_existing``. Time is the database's ``now()``, so runners
on several machines agree on it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from sqlalchemy import case, func, or_, text, update
from sqlalchemy.engine import Engine

from hub.db import event_channels

DAGSTER_RUN_PREFIX = "dagster-run:"


def lease_owner_for_run(run_id: str) -> str:
    """The owner a Dagster run's publishes write (the sensor maps it back to the run)."""
    return f"{DAGSTER_RUN_PREFIX}{run_id}"


def run_id_of(owner: str | None) -> str | None:
    if owner and owner.startswith(DAGSTER_RUN_PREFIX):
        return owner[len(DAGSTER_RUN_PREFIX) :]
    return None


def process_owner(actor: str) -> str:
    """An owner naming this process, for runners outside Dagster (CLI, demo, bench)."""
    return f"{actor}@{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def _interval(seconds: float):
    return text("make_interval(secs => :lease_secs)").bindparams(lease_secs=float(seconds))


def lease_is_free():
    """SQL: nobody holds the channel, or the holder's lease has run out."""
    return or_(
        event_channels.c.lease_owner.is_(None),
        event_channels.c.lease_expires_at < func.now(),
    )


def claim(engine: Engine, channel_id: int, owner: str, seconds: float) -> dict[str, Any] | None:
    """Take the channel for ``owner`` (counting one attempt) and return the row as it is
    now; None when another runner holds a live lease."""
    with engine.begin() as conn:
        row = (
            conn.execute(
                update(event_channels)
                .where(event_channels.c.id == channel_id, lease_is_free())
                .values(
                    lease_owner=owner,
                    lease_expires_at=func.now() + _interval(seconds),
                    attempts=event_channels.c.attempts + 1,
                    # a live channel being updated stays published (the event is up)
                    status=case(
                        (
                            event_channels.c.status.in_(["published", "closed"]),
                            event_channels.c.status,
                        ),
                        else_="publishing",
                    ),
                )
                .returning(*event_channels.c)
            )
            .mappings()
            .one_or_none()
        )
    return dict(row) if row else None


def renew(engine: Engine, channel_id: int, owner: str, seconds: float) -> bool:
    """Extend ``owner``'s lease; False when it is no longer theirs."""
    with engine.begin() as conn:
        result = conn.execute(
            update(event_channels)
            .where(event_channels.c.id == channel_id, event_channels.c.lease_owner == owner)
            .values(lease_expires_at=func.now() + _interval(seconds))
        )
    return result.rowcount == 1


def release(engine: Engine, channel_id: int, owner: str) -> None:
    """Give the lease back without recording an outcome (nothing was attempted)."""
    with engine.begin() as conn:
        conn.execute(
            update(event_channels)
            .where(event_channels.c.id == channel_id, event_channels.c.lease_owner == owner)
            .values(
                lease_owner=None,
                lease_expires_at=None,
                attempts=func.greatest(event_channels.c.attempts - 1, 0),
            )
        )


@dataclass
class Lease:
    channel_id: int
    owner: str
    seconds: float
    lost: bool = False


@contextlib.asynccontextmanager
async def held(engine: Engine, lease: Lease) -> AsyncIterator[Lease]:
    """Renew ``lease`` every third of its length while the body runs; ``lease.lost``
    turns True if a renewal finds it taken (the body's result must then not be stored)."""

    async def heartbeat() -> None:
        while True:
            await asyncio.sleep(lease.seconds / 3)
            try:
                still = await asyncio.to_thread(
                    renew, engine, lease.channel_id, lease.owner, lease.seconds
                )
            except Exception:  # database unreachable: try again; expiry decides
                continue
            if not still:
                lease.lost = True
                return

    task = asyncio.create_task(heartbeat())
    try:
        yield lease
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
