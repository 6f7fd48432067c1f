"""The outbox in Dagster: watched, shown per event, checked. Not the low-latency path.

The relay (``hub serve outbox``, LISTEN/NOTIFY) delivers within a second; a 30-second
sensor is far too slow for sold-out. This domain is the safety net and the window:

* ``outbox_watch_sensor`` (running by default) takes over what the relay did not: rows
  due for more than a minute, and in-flight rows whose lease ran out (a relay killed
  mid-delivery) are claimed and delivered by the sensor itself, through the same code
  (``hub.outbox_relay.deliver_due``), so the platforms close even when only Dagster runs.
  When the set of problems changes (or rows go dead), it launches ``outbox_report_job``
  so the asset and its checks show the new state.
* asset ``outbox``: per event, the rows by status and, per platform, the last allowance
  pushed next to what the ledger says now.
* checks: no dead row; nothing pending longer than two minutes; no delivered mirror that
  disagrees with the ledger (drift: a decision that escaped the mirror).
* ``outbox_requeue_dead_job``: the operator's "try again" for dead rows (all, or ids).
"""

import time

from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetExecutionContext,
    AssetKey,
    Config,
    DefaultSensorStatus,
    Definitions,
    MaterializeResult,
    MetadataValue,
    OpExecutionContext,
    RunRequest,
    SensorEvaluationContext,
    SkipReason,
    asset,
    asset_check,
    define_asset_job,
    job,
    op,
    sensor,
)
from sqlalchemy import text

from hub.outbox_relay import RelayPolicy, deliver_due, requeue_dead
from orchestration.outbox.report import (
    OVERDUE_SECONDS,
    PENDING_LIMIT_SECONDS,
    markdown,
    outbox_by_event,
    stuck_rows,
)
from orchestration.resources import HubDatabase

OUTBOX = AssetKey(["outbox"])
TAKEOVER_LIMIT = 50  # rows the sensor delivers per tick at most


@asset(
    key=OUTBOX,
    group_name="outbox",
    kinds={"postgres"},
    description="app.outbox per event: rows by status, last allowance pushed per platform.",
)
def outbox(context: AssetExecutionContext, hub_db: HubDatabase) -> MaterializeResult:
    engine = hub_db.engine()
    events = outbox_by_event(engine)
    stuck = stuck_rows(engine)
    totals = {
        s: sum(e[s] for e in events.values()) for s in ("pending", "in_flight", "delivered", "dead")
    }
    context.log.info(f"outbox: {totals}; stuck {stuck.as_dict()}")
    return MaterializeResult(
        metadata={
            **totals,
            "overdue_pending": stuck.overdue_pending,
            "expired_leases": stuck.expired_leases,
            "oldest_due_seconds": stuck.oldest_due_seconds,
            "by_event": MetadataValue.md(markdown(events)),
            "events": MetadataValue.json(events),
        }
    )


@asset_check(asset=OUTBOX, description="No outbox row is dead (gave up after its retries).")
def outbox_no_dead_rows(hub_db: HubDatabase) -> AssetCheckResult:
    engine = hub_db.engine()
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "select id, kind, idempotency_key, attempts, last_error from app.outbox "
                "where status = 'dead' order by id limit 20"
            )
        ).all()
    lines = [
        f"- {r.id} {r.kind} `{r.idempotency_key}` after {r.attempts}: {(r.last_error or '')[:160]}"
        for r in rows
    ]
    return AssetCheckResult(
        passed=not rows,
        severity=AssetCheckSeverity.ERROR,
        metadata={"dead": len(rows), "rows": MetadataValue.md("\n".join(lines) or "none")},
    )


@asset_check(
    asset=OUTBOX,
    description=f"Nothing due for longer than {PENDING_LIMIT_SECONDS:.0f} s (relay delivering).",
)
def outbox_nothing_pending_too_long(hub_db: HubDatabase) -> AssetCheckResult:
    stuck = stuck_rows(hub_db.engine(), overdue_seconds=PENDING_LIMIT_SECONDS)
    late = stuck.overdue_pending + stuck.expired_leases
    return AssetCheckResult(
        passed=late == 0,
        severity=AssetCheckSeverity.ERROR,
        metadata={
            "overdue_pending": stuck.overdue_pending,
            "expired_leases": stuck.expired_leases,
            "oldest_due_seconds": stuck.oldest_due_seconds,
        },
    )


@asset_check(
    asset=OUTBOX,
    description="Every delivered capacity mirror still equals the ledger's allowance.",
)
def outbox_mirror_matches_ledger(hub_db: HubDatabase) -> AssetCheckResult:
    events = outbox_by_event(hub_db.engine())
    drift = [
        f"- `{event_id[:8]}` {platform}: pushed {v['pushed']}, ledger {v['allowance_now']}"
        for event_id, e in events.items()
        for platform, v in e["platforms"].items()
        if v["drift"]
    ]
    return AssetCheckResult(
        passed=not drift,
        severity=AssetCheckSeverity.WARN,
        metadata={"drift": len(drift), "rows": MetadataValue.md("\n".join(drift) or "none")},
    )


outbox_report_job = define_asset_job(
    "outbox_report_job",
    selection=[OUTBOX],
    description="Materialize the outbox view and run its checks.",
)


class RequeueConfig(Config):
    ids: list[int] = []  # empty: every dead row


@op(description="Make dead outbox rows due again (after fixing the platform or credentials).")
def requeue_dead_rows(
    context: OpExecutionContext, config: RequeueConfig, hub_db: HubDatabase
) -> list[int]:
    ids = requeue_dead(hub_db.engine(), config.ids or None)
    context.log.info(f"requeued {len(ids)} dead outbox row(s): {ids[:50]}")
    return ids


@job(description="Operator action: dead outbox rows back to pending (the relay takes them).")
def outbox_requeue_dead_job():
    requeue_dead_rows()


@sensor(
    job=outbox_report_job,
    minimum_interval_seconds=30,
    default_status=DefaultSensorStatus.RUNNING,
)
def outbox_watch_sensor(context: SensorEvaluationContext, hub_db: HubDatabase):
    """Deliver rows the relay left (overdue, or in flight past their lease); report when
    the set of problems changes."""
    engine = hub_db.engine()
    before = stuck_rows(engine)
    delivered: dict[str, int] = {}
    if before.overdue_pending or before.expired_leases:
        outcomes = deliver_due(
            engine,
            hub_db.settings(),
            limit=TAKEOVER_LIMIT,
            min_age_seconds=OVERDUE_SECONDS,
            policy=RelayPolicy(lease_seconds=30.0),
        )
        for outcome in outcomes:
            delivered[outcome.status] = delivered.get(outcome.status, 0) + 1
        context.log.warning(f"outbox: relay not delivering; the sensor took over {delivered}")
    after = stuck_rows(engine)
    digest = after.digest()
    summary = (f"took over {sum(delivered.values())} row(s) {delivered}; " if delivered else "") + (
        f"{after.overdue_pending} overdue, {after.expired_leases} expired lease(s), "
        f"{after.dead} dead"
    )
    if digest == context.cursor and not delivered:
        return SkipReason(f"outbox unchanged: {summary}")
    context.update_cursor(digest)
    if not (after.any or before.any or delivered):
        return SkipReason(f"outbox healthy: {summary}")
    # a takeover is news every time (its rows were delivered now); a changed set of
    # problems is news once
    stamp = f":{int(time.time())}" if delivered else ""
    return RunRequest(
        run_key=f"outbox:{digest}{stamp}",
        tags={"hub/outbox": summary[:200]},
    )


def defs() -> Definitions:
    return Definitions(
        assets=[outbox],
        asset_checks=[
            outbox_no_dead_rows,
            outbox_nothing_pending_too_long,
            outbox_mirror_matches_ledger,
        ],
        jobs=[outbox_report_job, outbox_requeue_dead_job],
        sensors=[outbox_watch_sensor],
    )
