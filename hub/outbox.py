"""The outbox: actions on outside systems, written in the transaction of the decision
that needs them and delivered afterwards by the relay (``hub serve outbox``).

A row is one action with a stable idempotency key. Rows that must coalesce (the capacity
mirror: a burst of 100 native seats is a few platform updates, not 100) share one key per
target and carry no value: the relay reads the current truth when it delivers, so what it
sends is always absolute and a row made due again while in flight is simply sent again.
A row waiting out a retry's back-off keeps its wait when enqueued again (a failing
platform is not called once per seat); a row a relay holds keeps its lease (below).
The relay is ``hub.outbox_relay``.
"""

from __future__ import annotations

import json
from typing import Any
from uuid import UUID

from sqlalchemy import text
from sqlalchemy.engine import Connection

CAPACITY_MIRROR = "capacity.mirror"

# A row a relay holds carries its claim stamp (payload._claim): in flight, or made pending
# again during the flight. Such a row keeps the stamp and its lease as due time: the
# holder sends it again the moment its delivery ends (anyone may after the lease), so one
# target never has two deliveries racing (an older value landing last).
_ENQUEUE_SQL = text(
    """
    insert into app.outbox (kind, idempotency_key, payload, event_id, status, next_attempt_at)
    values (:kind, :key, cast(:payload as jsonb), :event_id, 'pending', now())
    on conflict (idempotency_key) do update
       set payload = case when app.outbox.payload ? '_claim'
                          then excluded.payload
                               || jsonb_build_object('_claim', app.outbox.payload -> '_claim')
                          else excluded.payload end,
           status = 'pending',
           attempts = case when app.outbox.status in ('delivered', 'dead', 'failed')
                           then 0 else app.outbox.attempts end,
           next_attempt_at = case when app.outbox.payload ? '_claim'
                                  then app.outbox.next_attempt_at  -- held: the lease
                                  when app.outbox.status = 'pending'
                                   and app.outbox.last_error is not null
                                  then app.outbox.next_attempt_at  -- a retry's back-off
                                  when app.outbox.status = 'pending'
                                  then least(app.outbox.next_attempt_at, now())
                                  else now() end,
           last_error = case when app.outbox.status = 'pending'
                             then app.outbox.last_error else null end
    """
)


def enqueue(
    conn: Connection,
    kind: str,
    idempotency_key: str,
    payload: dict[str, Any],
    *,
    event_id: UUID | None = None,
) -> None:
    """Make the action ``idempotency_key`` due now, in the caller's transaction.

    A new key inserts a row; an existing one is made pending again with the new payload
    (coalescing). The trigger of migration 0006 NOTIFYs ``hub_outbox`` on commit.
    """
    conn.execute(
        _ENQUEUE_SQL,
        {
            "kind": kind,
            "key": idempotency_key,
            "payload": json.dumps(payload, default=str),
            "event_id": event_id,
        },
    )


def mirror_key(event_id: UUID | str, platform: str) -> str:
    return f"{CAPACITY_MIRROR}:{event_id}:{platform}"


def enqueue_capacity_mirror(conn: Connection, event_id: UUID) -> int:
    """Ask the relay to push the event's current allowance to every platform it is
    published on (one coalescing row per platform). Returns how many rows were made due."""
    platforms = conn.scalars(
        text(
            """
            select platform from app.event_channels
            where event_id = :event_id and platform <> 'native'
              and platform_event_id is not null
            order by platform
            """
        ),
        {"event_id": event_id},
    ).all()
    for platform in platforms:
        enqueue(
            conn,
            CAPACITY_MIRROR,
            mirror_key(event_id, platform),
            {"event_id": str(event_id), "platform": platform},
            event_id=event_id,
        )
    return len(platforms)
