"""The seat arithmetic of one event, read from PostgreSQL's ledger (``app.seat_holds``).

One truth for every reader that needs numbers rather than a decision: ``hub capacity
show``, the capacity mirror (what each platform may still sell), the landing page when
Redis is being rebuilt, and the rebuild itself.

The rules (DESIGN: the hub is the master of capacity):

* ``total`` seats; each channel with an allocation has that many seats of its own
  (its *quota*); the *shared* pool is ``total - sum(allocations)``.
* A channel takes a seat from its own quota first, then from the shared pool.
* A seat is *taken* when its row is ``confirmed``, or ``held`` with an expiry in the
  future. ``overbooked`` rows are platform sales that found the room full: they hold
  no seat of the ledger but the platform counts them as sold.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from uuid import UUID

from sqlalchemy import text
from sqlalchemy.engine import Connection

CHANNELS = ("native", "meetup", "eventbrite", "luma")


@dataclass(frozen=True)
class ChannelCounts:
    channel: str
    quota: int  # seats reserved for this channel (0 = sells from the shared pool only)
    held: int  # active holds (native checkouts not yet paid / confirmed)
    confirmed: int
    overbooked: int
    quota_used: int  # of held + confirmed, how many came from the channel's quota
    shared_used: int  # ... and how many from the shared pool

    @property
    def quota_free(self) -> int:
        return max(self.quota - self.quota_used, 0)


@dataclass(frozen=True)
class SeatCounts:
    event_id: UUID
    total: int
    shared: int  # size of the shared pool
    channels: Mapping[str, ChannelCounts] = field(default_factory=dict)

    @property
    def shared_used(self) -> int:
        return sum(c.shared_used for c in self.channels.values())

    @property
    def shared_free(self) -> int:
        return max(self.shared - self.shared_used, 0)

    @property
    def taken(self) -> int:
        return sum(c.held + c.confirmed for c in self.channels.values())

    @property
    def free(self) -> int:
        """Seats nobody holds: every quota's free seats plus the shared pool's."""
        return sum(c.quota_free for c in self.channels.values()) + self.shared_free

    def available(self, channel: str) -> int:
        """Seats ``channel`` may still take now: its free quota, then the shared pool."""
        counts = self.channels.get(channel)
        own = counts.quota_free if counts else 0
        return own + self.shared_free

    def platform_allowance(self, platform: str) -> int:
        """The absolute capacity to set on ``platform``: what it has already sold
        (confirmed and overbooked, as the platform counts them) plus what it may still
        sell. Equal to what it sold when :meth:`available` is 0 (then: close sales)."""
        counts = self.channels.get(platform)
        sold = (counts.confirmed + counts.overbooked) if counts else 0
        return sold + self.available(platform)


_CHANNELS_SQL = text(
    """
    select e.id as event_id, e.total_capacity as total,
           coalesce((select sum(allocation) from app.event_channels c
                      where c.event_id = e.id and c.allocation is not null), 0) as reserved
      from app.events e where e.id = any(:ids)
    """
)

_ALLOCATIONS_SQL = text(
    """
    select event_id, platform, coalesce(allocation, 0) as quota
      from app.event_channels where event_id = any(:ids)
    """
)

_USAGE_SQL = text(
    """
    select event_id, channel,
           count(*) filter (where status = 'held' and expires_at > now()) as held,
           count(*) filter (where status = 'confirmed') as confirmed,
           count(*) filter (where status = 'overbooked') as overbooked,
           count(*) filter (where pool = 'quota' and (status = 'confirmed'
                            or (status = 'held' and expires_at > now()))) as quota_used,
           count(*) filter (where pool = 'shared' and (status = 'confirmed'
                            or (status = 'held' and expires_at > now()))) as shared_used
      from app.seat_holds
     where event_id = any(:ids) and status in ('held', 'confirmed', 'overbooked')
     group by event_id, channel
    """
)


def seat_counts_many(conn: Connection, event_ids: Iterable[UUID]) -> dict[UUID, SeatCounts]:
    """The counts of several events in three statements (in the caller's transaction)."""
    ids = list(dict.fromkeys(event_ids))
    if not ids:
        return {}
    heads = {r.event_id: r for r in conn.execute(_CHANNELS_SQL, {"ids": ids})}
    quotas: dict[UUID, dict[str, int]] = {}
    for row in conn.execute(_ALLOCATIONS_SQL, {"ids": ids}):
        quotas.setdefault(row.event_id, {})[row.platform] = int(row.quota)
    usage: dict[UUID, dict[str, tuple[int, ...]]] = {}
    for row in conn.execute(_USAGE_SQL, {"ids": ids}):
        usage.setdefault(row.event_id, {})[row.channel] = (
            row.held,
            row.confirmed,
            row.overbooked,
            row.quota_used,
            row.shared_used,
        )
    result: dict[UUID, SeatCounts] = {}
    for event_id, head in heads.items():
        channel_quota = quotas.get(event_id, {})
        channel_usage = usage.get(event_id, {})
        channels = {}
        for channel in sorted(set(channel_quota) | set(channel_usage), key=CHANNELS.index):
            held, confirmed, overbooked, quota_used, shared_used = channel_usage.get(
                channel, (0, 0, 0, 0, 0)
            )
            channels[channel] = ChannelCounts(
                channel=channel,
                quota=channel_quota.get(channel, 0),
                held=int(held),
                confirmed=int(confirmed),
                overbooked=int(overbooked),
                quota_used=int(quota_used),
                shared_used=int(shared_used),
            )
        result[event_id] = SeatCounts(
            event_id=event_id,
            total=int(head.total),
            shared=max(int(head.total) - int(head.reserved), 0),
            channels=channels,
        )
    return result


def seat_counts(conn: Connection, event_id: UUID) -> SeatCounts:
    """The counts of one event; ``LookupError`` when there is no such event."""
    counts = seat_counts_many(conn, [event_id]).get(event_id)
    if counts is None:
        raise LookupError(f"no event {event_id}")
    return counts
