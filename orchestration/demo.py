"""`make demo`: the end-to-end scenario, printed in numbers.

create event -> syndicate -> registrations arrive (pulls and webhooks) -> ingest ->
payments matched -> analytics. Later capabilities add their steps here. The demo uses
whatever parts of the stack already run (``make up``) and starts, then stops, the rest.
Dagster jobs run in-process on the persistent instance, so the runs show in the UI.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import yaml
from sqlalchemy import func, select, text

from hub import embedded, processes
from hub.db import event_channels, get_engine, inbound_emails, payments, registrations
from hub.db import webhook_events as webhook_table
from hub.events import create_event, parse_spec
from hub.migrate import upgrade
from hub.settings import SANDBOX_PORTS, Settings

PROJECT_ROOT = Path(__file__).resolve().parents[1]
# Fewer than the shared pool (60 of 100 seats; 40 are the native pages'), so the seat
# ledger step can sell the rest through the landing page and end sold out everywhere.
SIMULATED = {"meetup": 20, "eventbrite": 14, "luma": 12}


class Printer:
    def __init__(self) -> None:
        self.started = time.perf_counter()
        self.step_no = 0

    def step(self, title: str) -> None:
        self.step_no += 1
        print(f"\n[{self.step_no}] {title}  (+{time.perf_counter() - self.started:.1f}s)")

    @staticmethod
    def line(text: str) -> None:
        print(f"    {text}")

    @staticmethod
    def table(headers: list[str], rows: list[list[Any]]) -> None:
        widths = [
            max(len(str(h)), *(len(str(r[i])) for r in rows)) if rows else len(h)
            for i, h in enumerate(headers)
        ]
        fmt = "    " + "  ".join(f"{{:<{w}}}" for w in widths)
        print(fmt.format(*headers))
        for row in rows:
            print(fmt.format(*[str(c) for c in row]))


def _sandbox_url(settings: Settings, name: str) -> str:
    return f"http://{settings.sandbox_host}:{SANDBOX_PORTS[name]}"


@contextlib.contextmanager
def _output_to(log: Path) -> Iterator[None]:
    """Send this process's fds 1 and 2 (Dagster's console logs, dbt's output) to ``log``;
    the demo's own report is printed outside."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with open(log, "ab") as handle:
        os.dup2(handle.fileno(), 1)
        os.dup2(handle.fileno(), 2)
        try:
            yield
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])


def _run_job(
    defs: Any, instance: Any, name: str, partition_key: str | None = None, **kwargs: Any
) -> Any:
    """Run a job in-process on the persistent instance (it shows in the UI); its logs go
    to .hub-data/logs/demo-runs.log."""
    from hub.settings import get_settings

    job = defs.resolve_job_def(name)
    with _output_to(processes.log_path(get_settings(), "demo-runs")):
        return job.execute_in_process(
            instance=instance, partition_key=partition_key, raise_on_error=False, **kwargs
        )


def _materializations(result: Any) -> dict[str, dict[str, Any]]:
    found = {}
    for event in result.get_asset_materialization_events():
        mat = event.event_specific_data.materialization
        found[mat.asset_key.path[-1]] = {k: v.value for k, v in mat.metadata.items()}
    return found


def _wait_until(check: Callable[[], bool], timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.3)
    return check()


def run_demo(settings: Settings) -> None:
    from orchestration import stack
    from orchestration.definitions import defs
    from orchestration.instance import get_instance
    from orchestration.syndication.partitions import events_partitions

    out = Printer()
    started_here: list[str] = []
    print("Community event hub: end-to-end demo")

    out.step("Services: PostgreSQL and Redis")
    services_were_up = all(row.running for row in embedded.services_status(settings))
    for row in embedded.services_up(settings):
        out.line(row.line())
    upgrade(settings)
    out.line("migrations applied (alembic head)")
    engine = get_engine(settings)
    with engine.connect() as conn:
        since = conn.scalar(select(func.now()))  # the database's clock: rows of this run

    try:
        out.step("Sandboxes, credentials (vault, Meetup OAuth), webhooks, receiver")
        from integrations.sandbox import run as sandbox_run

        before = {
            n: processes.status(settings, sandbox_run.process_name(n)).running
            for n in sandbox_run.SANDBOXES
        }
        for line in stack.start_sandboxes(settings):
            out.line(line)
        started_here += [sandbox_run.process_name(n) for n, up in before.items() if not up]
        connected = stack.ensure_sandbox_credentials(settings)
        out.line(
            "credentials stored encrypted; Meetup OAuth "
            + ("authorized now (code -> tokens)" if connected else "already connected")
        )
        hooks = stack.register_webhooks(settings)
        out.line(f"webhooks registered: {hooks}")
        receiver_was_up = processes.status(settings, "receiver").running
        # Every buyer of the seat-ledger step comes from this one loopback address; the
        # per-client checkout limit (30 a minute by default) is raised for the receiver
        # the demo starts (one it finds running keeps its own; the step then waits).
        os.environ.setdefault("HUB_CHECKOUT_RATE_LIMIT", "600/60")
        out.line(stack.start_receiver(settings))
        if not receiver_was_up:
            started_here.append("receiver")
        relay_was_up = processes.status(settings, "outbox").running
        out.line(stack.start_outbox_relay(settings))
        if not relay_was_up:
            started_here.append("outbox")

        out.step("createEvent")
        spec_data = yaml.safe_load((PROJECT_ROOT / "examples" / "event.yaml").read_text())
        stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
        spec_data["slug"] = f"python-istanbul-42-demo-{stamp}"
        spec = parse_spec(spec_data)
        with engine.begin() as conn:
            event = create_event(conn, spec, actor="demo")
        out.line(f"{event.title}  [{event.slug}]")
        local_start = event.starts_at.astimezone(ZoneInfo(event.timezone))
        out.line(
            f"{local_start:%Y-%m-%d %H:%M} {event.timezone}, capacity "
            f"{event.total_capacity} (native reserves {event.allocations.get('native')}), "
            f"{event.price_minor / 100:.2f} {event.currency}"
        )

        instance = get_instance(settings)
        instance.add_dynamic_partitions(events_partitions.name, [event.slug])

        out.step("Syndicate to Meetup, Eventbrite, Luma (Dagster publish_events_job)")
        result = _run_job(defs, instance, "publish_events_job", event.slug)
        mats = _materializations(result)
        rows = []
        for platform in ("meetup", "eventbrite", "luma"):
            meta = mats.get(f"{platform}_event", {})
            rows.append(
                [
                    platform,
                    meta.get("action", "FAILED"),
                    meta.get("platform_event_id", "-"),
                    meta.get("latency_ms", "-"),
                    meta.get("attempts", "-"),
                    meta.get("url", "-"),
                ]
            )
        out.table(["platform", "action", "platform id", "ms", "tries", "url"], rows)
        out.line(f"run {result.run_id[:8]}: {'success' if result.success else 'FAILED'}")
        with engine.connect() as conn:
            errors = conn.execute(
                select(event_channels.c.platform, event_channels.c.last_error).where(
                    event_channels.c.event_id == event.id, event_channels.c.last_error.isnot(None)
                )
            ).all()
        for platform, error in errors:
            out.line(f"{platform} error: {error}")
        again = _materializations(_run_job(defs, instance, "publish_events_job", event.slug))
        actions = sorted({m.get("action") for m in again.values()})
        out.line(f"re-run: {', '.join(actions)} (nothing created twice)")

        from orchestration.demo_contracts import run_step as contracts_step

        with engine.connect() as conn:
            published = conn.execute(
                select(
                    event_channels.c.platform,
                    event_channels.c.platform_event_id,
                    event_channels.c.url,
                ).where(event_channels.c.event_id == event.id)
            ).all()
        contracts_step(
            out,
            engine,
            {p: i for p, i, _ in published},
            {p: u for p, _, u in published},
            lambda name: _sandbox_url(settings, name),
        )

        out.step("People register on each platform (sandbox simulation)")
        with engine.connect() as conn:
            ids = dict(
                conn.execute(
                    select(event_channels.c.platform, event_channels.c.platform_event_id).where(
                        event_channels.c.event_id == event.id
                    )
                ).all()
            )
        # Deliver every Eventbrite/Luma webhook twice, some out of order: the receiver
        # must store each once.
        for name in ("eventbrite", "luma"):
            httpx.post(
                f"{_sandbox_url(settings, name)}/_sandbox/config",
                json={"webhooks": {"duplicate": True, "out_of_order": True}},
                timeout=10,
            )
        rows = []
        for platform, count in SIMULATED.items():
            response = httpx.post(
                f"{_sandbox_url(settings, platform)}/_sandbox/simulate/registrations",
                json={"event_id": ids[platform], "count": count, "seed": 42},
                timeout=60,
            )
            response.raise_for_status()
            rows.append([platform, count, len(response.json().get("ids", []))])
        out.table(["platform", "asked", "created"], rows)

        out.step("Pull registrations back (Dagster pull_registrations_job)")
        result = _run_job(defs, instance, "pull_registrations_job", event.slug)
        mats = _materializations(result)
        rows = [
            [
                p,
                mats.get(f"{p}_registrations", {}).get("pages", "-"),
                mats.get(f"{p}_registrations", {}).get("items", "-"),
                mats.get(f"{p}_registrations", {}).get("inserted", "-"),
            ]
            for p in ("meetup", "eventbrite", "luma")
        ]
        out.table(["platform", "pages", "items", "new rows"], rows)

        _demo_receiver_steps(out, settings, engine, defs, instance, event, since)

        from orchestration.demo_faults import run_step as faults_step

        faults_step(
            out, engine, defs, instance, lambda name: _sandbox_url(settings, name), _run_job
        )

        from orchestration.demo_seats import run_step as seats_step

        seats_step(
            out,
            settings,
            engine,
            defs,
            instance,
            event,
            lambda name: _sandbox_url(settings, name),
            _run_job,
        )

        out.step("Analytics: dbt marts (Dagster analytics_build_job)")
        result = _run_job(defs, instance, "analytics_build_job")
        with engine.connect() as conn:
            staged = conn.scalar(text("select count(*) from staging.stg_app__registrations"))
            hooks_staged = conn.scalar(text("select count(*) from staging.stg_raw__webhook_events"))
        out.line(
            f"dbt build {'passed' if result.success else 'FAILED'}: "
            f"stg_app__registrations={staged} rows, stg_raw__webhook_events={hooks_staged}"
        )
        if result.success:
            from orchestration.analytics.reports import demo_lines

            for line in demo_lines(engine):  # members vs raw rows, fill by channel, overlap
                out.line(line)

        out.step("Summary")
        with engine.connect() as conn:
            per_platform = dict(
                conn.execute(
                    select(registrations.c.platform, func.count())
                    .where(registrations.c.event_id == event.id)
                    .group_by(registrations.c.platform)
                ).all()
            )
            channels = conn.execute(
                select(event_channels.c.platform, event_channels.c.status).where(
                    event_channels.c.event_id == event.id
                )
            ).all()
        out.table(
            ["platform", "channel", "registrations in PostgreSQL"],
            [[p, s, per_platform.get(p, 0)] for p, s in sorted(channels)],
        )
        total = sum(per_platform.values())
        out.line(
            f"{total} registrations for {event.slug}; "
            f"done in {time.perf_counter() - out.started:.1f}s"
        )
    finally:
        for name in reversed(started_here):
            processes.stop(settings, name)
        if not services_were_up:
            from hub.db import dispose_engines

            dispose_engines()
            started_here += [f"{name} (embedded)" for name in embedded.services_down(settings)]
        if started_here:
            print(f"\nstopped what the demo started: {', '.join(started_here)}")


def count_platform_webhooks(engine: Any, since: datetime) -> int:
    with engine.connect() as conn:
        return conn.scalar(
            select(func.count())
            .select_from(webhook_table)
            .where(
                webhook_table.c.source.in_(["eventbrite", "luma"]),
                webhook_table.c.event_type.is_distinct_from("test"),
                webhook_table.c.received_at >= since,
            )
        )


def _grouped(engine: Any, table: Any, since: datetime, *columns: str) -> list[list[Any]]:
    """Row counts of ``table`` since the demo began, grouped by ``columns``."""
    cols = [table.c[name] for name in columns]
    stamp = table.c.received_at if "received_at" in table.c else table.c.created_at
    with engine.connect() as conn:
        rows = conn.execute(
            select(*cols, func.count()).where(stamp >= since).group_by(*cols).order_by(*cols)
        ).all()
    return [list(r) for r in rows]


def _demo_receiver_steps(
    out: Printer,
    settings: Settings,
    engine: Any,
    defs: Any,
    instance: Any,
    event: Any,
    since: datetime,
) -> None:
    """Webhooks (with duplicates and out-of-order deliveries), refused requests, payment
    e-mails, then the ingest that turns raw rows into registrations and payments."""
    from orchestration.demo_receiver import post_bad_requests, post_payment_emails
    from orchestration.stack import receiver_secrets

    out.step("Webhooks land raw first at the receiver")
    expected = SIMULATED["eventbrite"] + SIMULATED["luma"]
    _wait_until(lambda: count_platform_webhooks(engine, since) >= expected, timeout=45)
    time.sleep(1.0)  # let the duplicate deliveries arrive too
    stored: dict[str, int] = {}
    for source, kind, n in _grouped(engine, webhook_table, since, "source", "event_type"):
        if kind != "test":  # Eventbrite's ping when a webhook is registered
            stored[source] = stored.get(source, 0) + n
    out.line(
        f"sent {SIMULATED['eventbrite']} Eventbrite orders and {SIMULATED['luma']} Luma "
        "guests, every webhook delivered twice, some out of order"
    )
    out.line(
        f"stored once each: eventbrite={stored.get('eventbrite', 0)} (order.placed), "
        f"luma={stored.get('luma', 0)} (guest.registered)"
    )
    receiver = "http://127.0.0.1:5000"
    secrets_ = receiver_secrets(settings)
    for line in post_bad_requests(receiver, secrets_):
        out.line(line)
    for line in post_payment_emails(settings, receiver, engine, event, secrets_):
        out.line(line)
    metrics = httpx.get(f"{receiver}/metrics", timeout=10).text
    outcomes: dict[str, float] = {}
    for line in metrics.splitlines():
        if line.startswith("hub_receiver_requests_total{"):
            labels, value = line.rsplit(" ", 1)
            outcome = labels.split('outcome="', 1)[1].split('"', 1)[0]
            outcomes[outcome] = outcomes.get(outcome, 0) + float(value)
    out.line(
        "receiver /metrics since it started: "
        + ", ".join(f"{k}={int(v)}" for k, v in sorted(outcomes.items()))
    )

    out.step("Ingest: raw rows -> registrations and payments (Dagster ingest_raw_job)")
    result = _run_job(defs, instance, "ingest_raw_job")
    meta = _materializations(result).get("raw_rows_ingested", {})
    by_source = meta.get("by_source") or {}
    out.table(
        ["source", "processed", "ignored", "retry", "failed"],
        [
            [
                src,
                c.get("processed", 0),
                c.get("ignored", 0),
                c.get("retried", 0),
                c.get("failed", 0),
            ]
            for src, c in sorted(by_source.items())
        ],
    )
    out.line("raw rows since the demo began, by final status:")
    out.table(
        ["table", "source", "status", "rows"],
        [["webhook_events", *r] for r in _grouped(engine, webhook_table, since, "source", "status")]
        + [
            ["inbound_emails", *r]
            for r in _grouped(engine, inbound_emails, since, "source", "status")
        ],
    )
    out.line("payments (Stripe, bank e-mails) and how they were matched:")
    out.table(
        ["provider", "status", "payments"], _grouped(engine, payments, since, "provider", "status")
    )

    out.step("Payment e-mails read by their structure: confirmed, ignored, for review")
    from orchestration.demo_payment_emails import run_step

    run_step(out, settings, engine, event, secrets_)
