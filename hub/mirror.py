"""The capacity mirror: push what each platform may still sell, as an absolute value.

``push_allowance`` reads the ledger's truth (``hub.seat_counts``) when it delivers, never
a value written at enqueue time, so a burst of seat decisions coalesced into one outbox
row still ends with the platform showing the latest number:

* seats left for the platform (``available``) -> ``update_capacity(allowance)``, where
  the allowance is what the platform sold plus what it may still sell;
* nothing left -> the platform stops selling: Eventbrite's admission class pinned to
  what it sold, Luma's capacity pinned to its guests holding a seat (both through the
  adapters' ``close_sales``); Meetup's RSVP limit pinned to its current count so
  newcomers join Meetup's waitlist (``update_capacity``), or RSVPs closed when Meetup
  sold nothing (a limit of 0 means "no limit" there);
* seats free again after a close -> ``update_capacity`` raises the capacity (Eventbrite
  shows its class again, Luma raises ``max_capacity``); Meetup's closed RSVPs are
  reopened with the adapter's ``open_sales`` (Meetup-only; the port has no reopen).

The read runs under the event's exclusive advisory lock (:func:`event_lock_key`): seat
decisions hold the shared one for their transaction, so the read waits for decisions in
flight and sees them committed (a decision that skipped the enqueue because the row
looked pending is then never missed). After the push the truth is read again and pushed
again if it moved meanwhile.

Adapters come from an ``adapter_factory`` (platform -> adapter); the default builds them
with ``integrations.factory.build_adapter`` and the vault, imported when first needed
(the composition default: ``hub`` itself defines no wire format).
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from uuid import UUID

from sqlalchemy import text
from sqlalchemy.engine import Connection, Engine

from hub.outbox import CAPACITY_MIRROR
from hub.seat_counts import SeatCounts, seat_counts
from hub.settings import Settings

if TYPE_CHECKING:
    from hub.outbox_relay import ClaimedRow, DeliveryContext

# Platforms whose "sold out" is a capacity pinned to what they sold, not close_sales.
PIN_WHEN_FULL = frozenset({"meetup"})
MAX_REPUSHES = 3


EVENT_LOCK_CLASS = 0x48554231  # "HUB1": the seat ledger's (hub.capacity) event lock class


def event_lock_key(event_id: UUID | str) -> tuple[int, int]:
    """The event's advisory lock as ``(class, id)`` for the two-int lock functions, the
    same key the seat ledger (``hub.capacity``) takes shared around each decision: a
    signed 32-bit blake2b hash of the event id under class ``HUB1``."""
    digest = hashlib.blake2b(str(UUID(str(event_id))).encode(), digest_size=4).digest()
    return EVENT_LOCK_CLASS, int.from_bytes(digest, "big", signed=True)


@dataclass(frozen=True)
class Truth:
    """What the ledger says one platform may sell now."""

    platform_event_id: str | None
    available: int
    allowance: int
    sold: int
    total: int
    free: int

    @property
    def closed(self) -> bool:
        return self.available == 0

    def same_push(self, other: Truth) -> bool:
        return (self.closed, self.allowance) == (other.closed, other.allowance)


@dataclass(frozen=True)
class MirrorResult:
    event_id: UUID
    platform: str
    platform_event_id: str | None
    action: str  # capacity | reopened | pinned | closed | skipped
    allowance: int  # the absolute capacity the platform was given (or pinned to)
    available: int  # what the platform may still sell
    sold: int  # what the ledger counts the platform as having sold
    pushes: int  # platform pushes made (a truth that moved mid-push is pushed again)
    pushed_at: datetime
    reason: str | None = None

    def as_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["event_id"] = str(self.event_id)
        data["pushed_at"] = self.pushed_at.isoformat()
        return data


_CHANNEL_SQL = text(
    """
    select platform_event_id from app.event_channels
     where event_id = :event_id and platform = :platform
    """
)


def _truth_in(conn: Connection, event_id: UUID, platform: str) -> Truth:
    counts: SeatCounts = seat_counts(conn, event_id)
    platform_event_id = conn.execute(
        _CHANNEL_SQL, {"event_id": event_id, "platform": platform}
    ).scalar()
    channel = counts.channels.get(platform)
    return Truth(
        platform_event_id=platform_event_id,
        available=counts.available(platform),
        allowance=counts.platform_allowance(platform),
        sold=(channel.confirmed + channel.overbooked) if channel else 0,
        total=counts.total,
        free=counts.free,
    )


def read_truth(engine_or_conn: Engine | Connection, event_id: UUID, platform: str) -> Truth:
    """The platform's allowance now. With an engine: in a transaction of its own under the
    event's exclusive advisory lock (see the module docstring); with a connection: in the
    caller's transaction, as it stands."""
    if isinstance(engine_or_conn, Connection):
        return _truth_in(engine_or_conn, event_id, platform)
    with engine_or_conn.begin() as conn:
        lock_class, lock_id = event_lock_key(event_id)
        conn.execute(text("select pg_advisory_xact_lock(:c, :k)"), {"c": lock_class, "k": lock_id})
        return _truth_in(conn, event_id, platform)


def default_adapter_factory(settings: Settings, client: Any = None) -> Callable[[str], Any]:
    """platform -> a ready adapter (sandbox or live per settings), credentials from the
    vault; one shared ``httpx.AsyncClient`` when given."""
    from hub.vault import Vault
    from integrations.factory import build_adapter

    vault = Vault(settings=settings)

    def build(platform: str) -> Any:
        return build_adapter(platform, settings, vault, client=client)

    return build


async def _push(adapter: Any, platform: str, truth: Truth, previous: dict | None) -> str:
    """One platform call (or two, for a Meetup reopen); the action taken."""
    pid = truth.platform_event_id
    assert pid is not None
    if truth.closed:
        if platform in PIN_WHEN_FULL and truth.allowance > 0:
            await adapter.update_capacity(pid, truth.allowance)
            return "pinned"
        await adapter.close_sales(pid)
        return "closed"
    await adapter.update_capacity(pid, truth.allowance)
    was_closed = (previous or {}).get("action") == "closed"
    if was_closed and hasattr(adapter, "open_sales"):
        await adapter.open_sales(pid)
        return "reopened"
    return "reopened" if was_closed else "capacity"


async def push_allowance_async(
    engine_or_conn: Engine | Connection,
    settings: Settings,
    event_id: UUID | str,
    platform: str,
    *,
    adapter_factory: Callable[[str], Any] | None = None,
    previous: dict[str, Any] | None = None,
    budget: Any = None,
) -> MirrorResult:
    """Push ``platform``'s current allowance for the event (see the module docstring).

    ``previous`` is the last result pushed for this (event, platform) (the outbox row's
    ``result``): it tells whether the platform was closed and must be reopened.
    ``budget`` (an ``integrations.base.RetryBudget``) bounds each platform call; the
    relay retries the row itself, so one try with 429 waits inside the budget is enough.
    """
    from integrations.base import RetryBudget, with_retries

    event_id = UUID(str(event_id))
    budget = budget or RetryBudget(attempts=1, seconds=20.0)
    truth = await asyncio.to_thread(read_truth, engine_or_conn, event_id, platform)
    if truth.platform_event_id is None:
        return MirrorResult(
            event_id,
            platform,
            None,
            "skipped",
            truth.allowance,
            truth.available,
            truth.sold,
            0,
            datetime.now(UTC),
            reason="not published on this platform",
        )
    factory = adapter_factory or default_adapter_factory(settings)
    adapter = factory(platform)
    pushes = 0
    action = "capacity"
    last = previous
    while True:
        pushes += 1
        action = await with_retries(
            lambda t=truth, p=last: _push(adapter, platform, t, p), budget=budget
        )
        last = {"action": action}
        if isinstance(engine_or_conn, Connection) or pushes >= MAX_REPUSHES:
            break
        again = await asyncio.to_thread(read_truth, engine_or_conn, event_id, platform)
        if again.same_push(truth):
            break
        truth = again
    return MirrorResult(
        event_id,
        platform,
        truth.platform_event_id,
        action,
        truth.sold if truth.closed else truth.allowance,
        truth.available,
        truth.sold,
        pushes,
        datetime.now(UTC),
    )


def push_allowance(
    engine_or_conn: Engine | Connection,
    settings: Settings,
    event_id: UUID | str,
    platform: str,
    *,
    adapter_factory: Callable[[str], Any] | None = None,
    previous: dict[str, Any] | None = None,
) -> MirrorResult:
    """Synchronous :func:`push_allowance_async` (its own event loop and HTTP client);
    for the CLI, Dagster and tests. The relay calls the async one."""
    import httpx

    async def run() -> MirrorResult:
        async with httpx.AsyncClient(timeout=15) as client:
            factory = adapter_factory or default_adapter_factory(settings, client)
            return await push_allowance_async(
                engine_or_conn,
                settings,
                event_id,
                platform,
                adapter_factory=factory,
                previous=previous,
            )

    return asyncio.run(run())


async def mirror_handler(ctx: DeliveryContext, row: ClaimedRow) -> dict[str, Any]:
    """The relay's handler for ``capacity.mirror`` rows: payload ``{event_id, platform}``."""
    from integrations.base import RetryBudget

    factory = ctx.adapter_factory or default_adapter_factory(ctx.settings, ctx.client)
    result = await push_allowance_async(
        ctx.engine,
        ctx.settings,
        row.payload["event_id"],
        row.payload["platform"],
        adapter_factory=factory,
        previous=row.result,
        budget=RetryBudget(attempts=1, seconds=max(ctx.policy.lease_seconds * 0.6, 1.0)),
    )
    return result.as_json()


_LAST_PUSHED_SQL = text(
    """
    select payload ->> 'platform' as platform, status, result, last_error, attempts,
           next_attempt_at, delivered_at
      from app.outbox where event_id = :event_id and kind = :kind
    """
)


def last_pushed(conn: Connection, event_id: UUID) -> dict[str, dict[str, Any]]:
    """Per platform: the last allowance pushed (``result``) and the mirror row's state,
    for the UI (Dagster's outbox asset, ``hub capacity show``)."""
    found = {}
    for row in conn.execute(_LAST_PUSHED_SQL, {"event_id": event_id, "kind": CAPACITY_MIRROR}):
        found[row.platform] = {
            "status": row.status,
            "result": row.result,
            "last_error": row.last_error,
            "attempts": row.attempts,
            "next_attempt_at": row.next_attempt_at,
            "delivered_at": row.delivered_at,
        }
    return found
