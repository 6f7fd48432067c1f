"""The seat ledger in Dagster: expired holds released, the ledger and the overbooked
platform registrations shown per event, and checked. Not the decision path (that is
hub.capacity, in the request).

* ``expired_holds_sensor`` (running by default, every minute) releases holds whose
  expiry passed (``hub.capacity.release_expired_holds``: the rows become ``expired``,
  the checkout's hooks expire the order and its Stripe session), then gives seats freed
  since to overbooked platform registrations of policy ``keep``
  (``hub.capacity.settle_overbooked``). It does the work in
  the tick, like the outbox watch: a run per minute would flood the run list. When the
  number of overbooked seats changes it launches ``seat_ledger_job`` so the asset shows
  them.
* asset ``capacity/seat_ledger``: per upcoming event, the ledger per channel (quota,
  held, confirmed, overbooked, free) and the overbooked platform registrations (ids
  only: no personal data in Dagster).
* checks: the Redis gate agrees with PostgreSQL; no event is oversold (held + confirmed
  never above total capacity).
"""

import time
from typing import Any

from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetExecutionContext,
    AssetKey,
    DefaultSensorStatus,
    Definitions,
    MaterializeResult,
    MetadataValue,
    RunRequest,
    SensorEvaluationContext,
    SkipReason,
    asset,
    asset_check,
    define_asset_job,
    sensor,
)
from sqlalchemy import text

from hub import checkout as hub_checkout  # registers the order-expiry hook of the ledger
from hub.capacity import (
    LedgerUnavailable,
    SeatLedger,
    release_expired_holds,
    settle_overbooked,
)
from hub.seat_counts import seat_counts_many
from hub.settings import get_settings
from integrations.stripe_checkout import StripeCheckout
from orchestration.resources import HubDatabase, HubRedis

# An expired hold of a paid order also expires its Stripe Checkout Session, through the
# API, when the job releases it (the client is built only when one is needed).
hub_checkout.configure_payments(lambda: StripeCheckout.from_settings(get_settings()))

SEAT_LEDGER = AssetKey(["capacity", "seat_ledger"])
EXPIRE_LIMIT = 5000  # holds released per tick at most


def ledger_for(hub_db: HubDatabase, hub_redis: HubRedis) -> SeatLedger:
    return SeatLedger(hub_db.engine(), hub_redis.client(), get_settings().redis_namespace)


def _upcoming(conn) -> list[Any]:
    return conn.execute(
        text(
            """
            select id, slug, total_capacity, overbooking_policy from app.events
             where status <> 'cancelled' and ends_at > now() - interval '1 day'
             order by starts_at
            """
        )
    ).all()


def _overbooked(conn, event_ids: list) -> list[Any]:
    return conn.execute(
        text(
            """
            select s.event_id, s.channel, s.hold_key, s.created_at, r.id as registration_id,
                   r.status as registration_status
              from app.seat_holds s
              left join app.registrations r
                on r.platform || ':' || r.platform_registration_id = s.hold_key
               and r.event_id = s.event_id
             where s.status = 'overbooked' and s.event_id = any(:ids)
             order by s.event_id, s.created_at
            """
        ),
        {"ids": event_ids},
    ).all()


def ledger_by_event(engine) -> dict[str, dict[str, Any]]:
    """Per upcoming event (by slug): totals, channels and overbooked registrations."""
    with engine.connect() as conn:
        events = _upcoming(conn)
        ids = [e.id for e in events]
        counts = seat_counts_many(conn, ids)
        overbooked = _overbooked(conn, ids)
    by_id: dict[Any, list[dict[str, Any]]] = {}
    for row in overbooked:
        by_id.setdefault(row.event_id, []).append(
            {
                "channel": row.channel,
                "hold_key": row.hold_key,
                "registration_id": row.registration_id,
                "registration_status": row.registration_status,
                "since": row.created_at.isoformat(),
            }
        )
    result = {}
    for e in events:
        c = counts[e.id]
        result[e.slug] = {
            "event_id": str(e.id),
            "total": c.total,
            "shared": c.shared,
            "taken": c.taken,
            "free": c.free,
            "policy": e.overbooking_policy,
            "channels": {
                name: {
                    "quota": ch.quota,
                    "held": ch.held,
                    "confirmed": ch.confirmed,
                    "overbooked": ch.overbooked,
                    "free": c.available(name),
                }
                for name, ch in c.channels.items()
            },
            "overbooked": by_id.get(e.id, []),
        }
    return result


def markdown(ledger: dict[str, dict[str, Any]]) -> str:
    lines = [
        "| event | channel | quota | held | confirmed | overbooked | free |",
        "|---|---|---|---|---|---|---|",
    ]
    for slug, e in ledger.items():
        for name, c in e["channels"].items():
            lines.append(
                f"| {slug} | {name} | {c['quota']} | {c['held']} | {c['confirmed']} | "
                f"{c['overbooked']} | {c['free']} |"
            )
        lines.append(f"| {slug} | **total {e['total']}** | | | | | **{e['free']}** |")
    return "\n".join(lines) if len(lines) > 2 else "no upcoming event"


def overbooked_markdown(ledger: dict[str, dict[str, Any]]) -> str:
    lines = ["| event | policy | channel | key | registration | status | since |"]
    lines.append("|---|---|---|---|---|---|---|")
    for slug, e in ledger.items():
        for o in e["overbooked"]:
            lines.append(
                f"| {slug} | {e['policy']} | {o['channel']} | `{o['hold_key']}` | "
                f"{o['registration_id'] or '-'} | {o['registration_status'] or '-'} | "
                f"{o['since'][:19]} |"
            )
    return "\n".join(lines) if len(lines) > 2 else "no overbooked registration"


@asset(
    key=SEAT_LEDGER,
    group_name="capacity",
    kinds={"postgres", "redis"},
    description=(
        "The seat ledger per upcoming event and channel (quota, held, confirmed, "
        "overbooked, free) and the platform registrations sold into a full room."
    ),
)
def seat_ledger(context: AssetExecutionContext, hub_db: HubDatabase) -> MaterializeResult:
    ledger = ledger_by_event(hub_db.engine())
    overbooked = sum(len(e["overbooked"]) for e in ledger.values())
    context.log.info(f"seat ledger: {len(ledger)} events, {overbooked} overbooked")
    return MaterializeResult(
        metadata={
            "events": len(ledger),
            "taken": sum(e["taken"] for e in ledger.values()),
            "free": sum(e["free"] for e in ledger.values()),
            "overbooked": overbooked,
            "by_event": MetadataValue.md(markdown(ledger)),
            "overbooked_registrations": MetadataValue.md(overbooked_markdown(ledger)),
            "ledger": MetadataValue.json(ledger),
        }
    )


@asset_check(
    asset=SEAT_LEDGER,
    description="The Redis gate's counters equal PostgreSQL's for every upcoming event.",
)
def seat_ledger_redis_matches_postgres(
    hub_db: HubDatabase, hub_redis: HubRedis
) -> AssetCheckResult:
    ledger = ledger_for(hub_db, hub_redis)
    problems: list[str] = []
    unbuilt = 0
    try:
        with hub_db.engine().connect() as conn:
            for e in _upcoming(conn):
                diff = ledger.compare(conn, e.id)
                if diff and diff[0].startswith("gate not built"):
                    unbuilt += 1  # rebuilt from PostgreSQL on its next decision
                    continue
                problems += [f"- {e.slug}: {d}" for d in diff]
    except LedgerUnavailable as exc:
        return AssetCheckResult(
            passed=False,
            severity=AssetCheckSeverity.ERROR,
            metadata={"error": str(exc)},
        )
    return AssetCheckResult(
        passed=not problems,
        severity=AssetCheckSeverity.ERROR,
        metadata={
            "differences": len(problems),
            "not_built": unbuilt,
            "rows": MetadataValue.md("\n".join(problems[:50]) or "none"),
            "repair": "hub capacity rebuild EVENT",
        },
    )


@asset_check(
    asset=SEAT_LEDGER,
    description="No event has more seats held and confirmed than its total capacity.",
)
def seat_ledger_no_event_oversold(hub_db: HubDatabase) -> AssetCheckResult:
    with hub_db.engine().connect() as conn:
        events = conn.execute(text("select id, slug from app.events")).all()
        counts = seat_counts_many(conn, [e.id for e in events])
    oversold = [
        f"- {e.slug}: {counts[e.id].taken} taken of {counts[e.id].total}"
        for e in events
        if counts[e.id].taken > counts[e.id].total
    ]
    return AssetCheckResult(
        passed=not oversold,
        severity=AssetCheckSeverity.ERROR,
        metadata={
            "oversold": len(oversold),
            "rows": MetadataValue.md("\n".join(oversold) or "none"),
        },
    )


seat_ledger_job = define_asset_job(
    "seat_ledger_job",
    selection=[SEAT_LEDGER],
    description="Materialize the seat ledger view (and run its checks).",
)


def _overbooked_total(engine) -> int:
    with engine.connect() as conn:
        return int(
            conn.scalar(text("select count(*) from app.seat_holds where status = 'overbooked'"))
        )


@sensor(
    job=seat_ledger_job,
    minimum_interval_seconds=60,
    default_status=DefaultSensorStatus.RUNNING,
)
def expired_holds_sensor(
    context: SensorEvaluationContext, hub_db: HubDatabase, hub_redis: HubRedis
):
    """Every minute: release the holds whose expiry passed; show the ledger again when
    the number of overbooked seats changed."""
    ledger = ledger_for(hub_db, hub_redis)
    try:
        released = release_expired_holds(ledger, limit=EXPIRE_LIMIT)
        upgraded = settle_overbooked(ledger).upgraded
    except LedgerUnavailable as exc:
        return SkipReason(f"Redis unreachable, no hold released this minute: {exc}")
    overbooked = _overbooked_total(hub_db.engine())
    previous = context.cursor
    context.update_cursor(str(overbooked))
    note = (
        f"released {released} expired hold(s); {upgraded} overbooked seat(s) took a freed "
        f"seat; {overbooked} overbooked seat(s)"
    )
    context.log.info(note)
    if previous is not None and previous != str(overbooked):
        return RunRequest(
            run_key=f"overbooked:{previous}->{overbooked}:{int(time.time())}",
            tags={"hub/overbooked": str(overbooked)},
        )
    return SkipReason(note)


def defs() -> Definitions:
    return Definitions(
        assets=[seat_ledger],
        asset_checks=[seat_ledger_redis_matches_postgres, seat_ledger_no_event_oversold],
        jobs=[seat_ledger_job],
        sensors=[expired_holds_sensor],
    )
