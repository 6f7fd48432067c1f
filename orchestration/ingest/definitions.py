"""Ingest: verified raw rows (webhooks, payment e-mails) become registrations and payments.

A sensor notices new or due rows and launches ``ingest_raw_job``; the asset processes
them in batches (hub.ingest: one transaction per row, so a poison row blocks nothing)
and shows in the UI what happened per source, and every row waiting in retry or failed
with its error.
"""

from urllib.parse import urlsplit

import httpx
from dagster import (
    AssetExecutionContext,
    AssetKey,
    DefaultSensorStatus,
    Definitions,
    MaterializeResult,
    MetadataValue,
    RunRequest,
    RunsFilter,
    SensorEvaluationContext,
    SkipReason,
    asset,
    define_asset_job,
    sensor,
)
from dagster._core.storage.dagster_run import IN_PROGRESS_RUN_STATUSES
from sqlalchemy import func, or_, select

from hub.db import inbound_emails, webhook_events
from hub.ingest import process_pending
from hub.settings import get_settings
from integrations.ingest_handlers import build_handlers
from orchestration.resources import HubDatabase, PlatformAdapters

RAW_TABLES = (webhook_events, inbound_emails)
# Sources hub.ingest has handlers for; rows of any other source are never due.
# WhatsApp/Netgsm delivery reports wait, unprocessed, for the messaging issue's table.
HANDLED_SOURCES = ("eventbrite", "luma", "stripe", "sendgrid", "mailgun")
MAX_BATCHES = 50
BATCH_SIZE = 200


def _problem_rows(engine, limit: int = 20) -> str:
    """Markdown table of rows waiting in retry or failed, with their errors."""
    lines = ["| table | id | source | status | attempts | error |", "|---|---|---|---|---|---|"]
    with engine.connect() as conn:
        for table in RAW_TABLES:
            rows = conn.execute(
                select(
                    table.c.id, table.c.source, table.c.status, table.c.attempts, table.c.last_error
                )
                .where(table.c.status.in_(["retry", "failed"]))
                .order_by(table.c.id.desc())
                .limit(limit)
            ).all()
            for r in rows:
                error = (r.last_error or "").replace("|", "/").replace("\n", " ")[:160]
                lines.append(
                    f"| {table.name} | {r.id} | {r.source} | {r.status} | {r.attempts} | {error} |"
                )
    return "\n".join(lines) if len(lines) > 2 else "no row in retry or failed"


@asset(
    key=AssetKey(["ingest", "raw_rows_ingested"]),
    deps=[AssetKey(["raw", "webhook_events"]), AssetKey(["raw", "inbound_emails"])],
    group_name="ingest",
    kinds={"postgres"},
    description="Verified raw rows turned into app.registrations and app.payments.",
)
def raw_rows_ingested(
    context: AssetExecutionContext, hub_db: HubDatabase, adapters: PlatformAdapters
) -> MaterializeResult:
    engine = hub_db.engine()
    settings = get_settings()
    client = httpx.AsyncClient(timeout=30)
    fetchers = {}
    for platform in ("eventbrite", "luma"):
        try:
            fetchers[platform] = adapters.build(platform, client)
        except Exception as exc:  # no credentials yet: those rows wait, the rest go on
            context.log.warning(f"{platform}: {exc}")
    handlers = build_handlers(
        fetchers, eventbrite_hosts={urlsplit(settings.base_url("eventbrite")).hostname}
    )
    totals: dict[str, dict[str, int]] = {}
    batches = 0
    for batches in range(1, MAX_BATCHES + 1):  # noqa: B007 - the count is reported
        report = process_pending(engine, handlers=handlers, batch_size=BATCH_SIZE)
        for source, outcomes in report.by_source.items():
            bucket = totals.setdefault(source, {})
            for outcome, n in outcomes.items():
                bucket[outcome] = bucket.get(outcome, 0) + n
        if report.total == 0:
            break
    summary = {
        o: sum(b.get(o, 0) for b in totals.values())
        for o in ("processed", "retried", "failed", "ignored")
    }
    context.log.info(f"ingest: {summary} by source {totals}")
    return MaterializeResult(
        metadata={
            **summary,
            "batches": batches,
            "by_source": MetadataValue.json(totals),
            "rows_in_retry_or_failed": MetadataValue.md(_problem_rows(engine)),
        }
    )


ingest_raw_job = define_asset_job(
    "ingest_raw_job",
    selection=[raw_rows_ingested],
    description="Turn due raw rows into registrations/payments.",
)


def due_rows(engine) -> tuple[int, int]:
    """(count of due rows, highest due id) over the raw tables the ingest reads."""
    total, highest = 0, 0
    with engine.connect() as conn:
        for table in RAW_TABLES:
            count, top = conn.execute(
                select(func.count(), func.coalesce(func.max(table.c.id), 0)).where(
                    table.c.status.in_(["received", "retry"]),
                    table.c.verified.is_(True),
                    table.c.flag.is_(None),
                    table.c.source.in_(HANDLED_SOURCES),
                    or_(table.c.next_attempt_at.is_(None), table.c.next_attempt_at <= func.now()),
                )
            ).one()
            total += count
            highest = max(highest, top)
    return total, highest


@sensor(job=ingest_raw_job, minimum_interval_seconds=15, default_status=DefaultSensorStatus.RUNNING)
def raw_ingest_sensor(context: SensorEvaluationContext, hub_db: HubDatabase):
    """New verified raw rows, or retries now due: run the ingest (one run at a time)."""
    count, highest = due_rows(hub_db.engine())
    if count == 0:
        return SkipReason("no raw row due")
    in_flight = context.instance.get_runs(
        filters=RunsFilter(job_name="ingest_raw_job", statuses=list(IN_PROGRESS_RUN_STATUSES)),
        limit=1,
    )
    if in_flight:
        return SkipReason("an ingest run is already in progress")
    context.update_cursor(str(highest))
    return RunRequest(
        run_key=f"ingest:{highest}:{count}:{context.cursor}", tags={"hub/due_rows": str(count)}
    )


def defs() -> Definitions:
    return Definitions(
        assets=[raw_rows_ingested], jobs=[ingest_raw_job], sensors=[raw_ingest_sensor]
    )
