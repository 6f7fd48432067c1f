"""Ingest: verified raw rows (webhooks, payment e-mails) become registrations and payments.

A sensor notices new or due rows and launches ``ingest_raw_job``; the asset processes
them in batches (hub.ingest: one transaction per row, so a poison row blocks nothing)
and shows in the UI what happened per source, and every row waiting in retry or failed
with its error.
"""

from dataclasses import dataclass
from datetime import datetime
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


@dataclass(frozen=True)
class DueRows:
    """The raw rows the ingest would take now, and the next retry not yet due."""

    count: int = 0
    highest_id: int = 0
    attempts: int = 0  # sum of their attempts: a retried row changes it
    latest_due: datetime | None = None
    waiting: int = 0  # rows in retry whose next_attempt_at is still ahead
    next_due: datetime | None = None

    def run_key(self) -> str:
        """Names the rows attempted: a new row (highest id), a retry coming due (count,
        attempts, due time) each make a new key, so Dagster's de-duplication never
        swallows a retry; the same rows on a repeated tick make the same key."""
        due = self.latest_due.isoformat() if self.latest_due else "-"
        return f"ingest:{self.highest_id}:{self.count}:{self.attempts}:{due}"


def _eligible(table):
    return (
        table.c.verified.is_(True),
        table.c.flag.is_(None),
        table.c.source.in_(HANDLED_SOURCES),
    )


def due_rows(engine) -> DueRows:
    """What is due now over the raw tables the ingest reads (the database's clock)."""
    count = highest = attempts = waiting = 0
    latest_due = next_due = None
    with engine.connect() as conn:
        for table in RAW_TABLES:
            row = conn.execute(
                select(
                    func.count(),
                    func.coalesce(func.max(table.c.id), 0),
                    func.coalesce(func.sum(table.c.attempts), 0),
                    func.max(table.c.next_attempt_at),
                ).where(
                    table.c.status.in_(["received", "retry"]),
                    *_eligible(table),
                    or_(table.c.next_attempt_at.is_(None), table.c.next_attempt_at <= func.now()),
                )
            ).one()
            count += row[0]
            highest = max(highest, row[1])
            attempts += int(row[2])
            if row[3] is not None and (latest_due is None or row[3] > latest_due):
                latest_due = row[3]
            later = conn.execute(
                select(func.count(), func.min(table.c.next_attempt_at)).where(
                    table.c.status == "retry",
                    *_eligible(table),
                    table.c.next_attempt_at > func.now(),
                )
            ).one()
            waiting += later[0]
            if later[1] is not None and (next_due is None or later[1] < next_due):
                next_due = later[1]
    return DueRows(count, highest, attempts, latest_due, waiting, next_due)


@sensor(job=ingest_raw_job, minimum_interval_seconds=15, default_status=DefaultSensorStatus.RUNNING)
def raw_ingest_sensor(context: SensorEvaluationContext, hub_db: HubDatabase):
    """New verified raw rows, or retries now due: run the ingest (one run at a time)."""
    due = due_rows(hub_db.engine())
    if due.count == 0:
        if due.waiting:
            return SkipReason(
                f"no raw row due; {due.waiting} in retry, the next due at "
                f"{due.next_due:%Y-%m-%d %H:%M:%S %Z}"
            )
        return SkipReason("no raw row due (none received, none in retry)")
    in_flight = context.instance.get_runs(
        filters=RunsFilter(job_name="ingest_raw_job", statuses=list(IN_PROGRESS_RUN_STATUSES)),
        limit=1,
    )
    if in_flight:
        return SkipReason(
            f"{due.count} raw row(s) due, but ingest run {in_flight[0].run_id} is in progress "
            "(one at a time; the next tick launches it)"
        )
    context.update_cursor(due.run_key())
    return RunRequest(run_key=due.run_key(), tags={"hub/due_rows": str(due.count)})


def defs() -> Definitions:
    return Definitions(
        assets=[raw_rows_ingested], jobs=[ingest_raw_job], sensors=[raw_ingest_sensor]
    )
