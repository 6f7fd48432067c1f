"""Read-only views of ``app.outbox`` for the Dagster UI: counts per event and status,
the rows that are stuck, and the last allowance pushed to each platform."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import Engine

from hub.outbox import CAPACITY_MIRROR
from hub.seat_counts import seat_counts_many

STATUSES = ("pending", "in_flight", "delivered", "failed", "dead")
OVERDUE_SECONDS = 60.0  # due this long and nobody took it: the relay is not delivering
PENDING_LIMIT_SECONDS = 120.0  # the asset check's limit for a pending row


@dataclass(frozen=True)
class Stuck:
    """Rows needing attention now."""

    overdue_pending: int = 0  # pending, due for more than OVERDUE_SECONDS
    expired_leases: int = 0  # in_flight whose lease ran out (a relay died mid-delivery)
    dead: int = 0
    oldest_due_seconds: float = 0.0  # how long the longest-waiting due row has waited
    dead_ids: list[int] = field(default_factory=list)

    @property
    def any(self) -> bool:
        return bool(self.overdue_pending or self.expired_leases or self.dead)

    def digest(self) -> str:
        """Changes when the set of problems changes (not with the clock)."""
        data = {
            "overdue": self.overdue_pending,
            "leases": self.expired_leases,
            "dead": sorted(self.dead_ids),
        }
        return hashlib.sha256(json.dumps(data).encode()).hexdigest()[:16]

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


_STUCK_SQL = text(
    """
    select count(*) filter (where status = 'pending'
                            and next_attempt_at <= now() - make_interval(secs => :overdue))
             as overdue_pending,
           count(*) filter (where status = 'in_flight' and next_attempt_at <= now())
             as expired_leases,
           count(*) filter (where status = 'dead') as dead,
           coalesce(extract(epoch from now() - min(next_attempt_at)
                    filter (where status in ('pending', 'in_flight')
                            and next_attempt_at <= now())), 0) as oldest_due_seconds,
           coalesce(array_agg(id order by id) filter (where status = 'dead'), '{}') as dead_ids
      from app.outbox
    """
)


def stuck_rows(engine: Engine, overdue_seconds: float = OVERDUE_SECONDS) -> Stuck:
    with engine.connect() as conn:
        row = conn.execute(_STUCK_SQL, {"overdue": overdue_seconds}).one()
    return Stuck(
        overdue_pending=int(row.overdue_pending),
        expired_leases=int(row.expired_leases),
        dead=int(row.dead),
        oldest_due_seconds=round(float(row.oldest_due_seconds), 1),
        dead_ids=list(row.dead_ids)[:100],
    )


_PER_EVENT_SQL = text(
    """
    select o.event_id, e.title, o.status, count(*) as n
      from app.outbox o left join app.events e on e.id = o.event_id
     group by o.event_id, e.title, o.status
    """
)

_MIRROR_SQL = text(
    """
    select event_id, payload ->> 'platform' as platform, status, result, last_error,
           attempts, extract(epoch from now() - next_attempt_at) as due_for
      from app.outbox where kind = :kind and event_id is not null
    """
)


def outbox_by_event(engine: Engine) -> dict[str, dict[str, Any]]:
    """Per event: counts by status and, per platform, the last pushed allowance next to
    what the ledger says now (``drift`` when they differ and the row is not pending)."""
    events: dict[str, dict[str, Any]] = {}
    with engine.connect() as conn:
        for row in conn.execute(_PER_EVENT_SQL):
            key = str(row.event_id) if row.event_id else "-"
            entry = events.setdefault(
                key, {"title": row.title or "-", **dict.fromkeys(STATUSES, 0), "platforms": {}}
            )
            entry[row.status] = int(row.n)
        mirror_rows = conn.execute(_MIRROR_SQL, {"kind": CAPACITY_MIRROR}).all()
        counts = seat_counts_many(conn, {r.event_id for r in mirror_rows})
    for row in mirror_rows:
        entry = events[str(row.event_id)]
        result = row.result or {}
        truth = counts.get(row.event_id)
        now_allowance = truth.platform_allowance(row.platform) if truth else None
        pushed = result.get("allowance")
        entry["platforms"][row.platform] = {
            "status": row.status,
            "pushed": pushed,
            "action": result.get("action"),
            "pushed_at": result.get("pushed_at"),
            "allowance_now": now_allowance,
            "drift": row.status == "delivered"
            and pushed is not None
            and now_allowance is not None
            and pushed != now_allowance,
            "attempts": row.attempts,
            "last_error": row.last_error,
        }
    return events


def markdown(events: dict[str, dict[str, Any]]) -> str:
    if not events:
        return "the outbox is empty"
    lines = [
        "| event | pending | in flight | delivered | dead | last pushed (now) per platform |",
        "|---|---|---|---|---|---|",
    ]
    for event_id, e in sorted(events.items(), key=lambda kv: kv[1]["title"]):
        pushed = ", ".join(
            f"{p}: {v['action'] or '-'} {v['pushed'] if v['pushed'] is not None else '-'}"
            f" ({v['allowance_now']}){' DRIFT' if v['drift'] else ''}"
            f"{' ERR ' + (v['last_error'] or '')[:60].replace('|', '/') if v['last_error'] else ''}"
            for p, v in sorted(e["platforms"].items())
        )
        lines.append(
            f"| {e['title'].replace('|', '/')} (`{event_id[:8]}`) | {e['pending']} | "
            f"{e['in_flight']} | {e['delivered']} | {e['dead']} | {pushed or '-'} |"
        )
    return "\n".join(lines)
