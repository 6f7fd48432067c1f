"""The analytics dbt project on the test database: every model and test through the
Dagster job, identity resolution against hub.members (Python), personal data kept out of
the marts, incremental runs equal to a full refresh, the refresh sensor, the docs site
and the benchmark at smoke size. Real PostgreSQL, real dbt; nothing mocked."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta

import httpx
import psycopg
import pytest
from dagster import AssetKey, AssetMaterialization, RunRequest, SkipReason, build_sensor_context
from sqlalchemy import text
from sqlalchemy.engine import make_url

from hub.db import transaction
from hub.embedded import resolve_database_url
from hub.events import create_event, parse_spec
from hub.members import normalize_email, normalize_phone
from hub.payments import PaymentIn, match_payment, record_payment
from hub.settings import get_settings
from orchestration.analytics.definitions import analytics_after_ingest
from orchestration.analytics.docs import DBT_PROJECT_DIR, serve_argv
from orchestration.analytics.identity import IdentityRecord, resolve_members
from orchestration.analytics.reports import demo_lines
from orchestration.dbt_env import dbt_env
from orchestration.definitions import defs
from tests.dagster_fixtures import dagster_instance, dagster_pg_instance  # noqa: F401

DBT = os.path.join(os.path.dirname(sys.executable), "dbt")
SCHEMAS = ("staging", "intermediate", "marts", "pii", "analytics")
ANALYST = "hub_analyst"
T0 = datetime(2026, 3, 1, 10, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def _drop_dbt_schemas(engine):
    """dbt's views depend on raw and app columns: leave none behind (the migration tests
    downgrade those tables)."""
    yield
    with engine.begin() as conn:
        for schema in SCHEMAS:
            conn.execute(text(f'drop schema if exists "{schema}" cascade'))
        conn.execute(text("drop table if exists public.bench_truth"))


def dbt(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    env = os.environ | dbt_env(get_settings())
    proc = subprocess.run(
        [DBT, *args, "--project-dir", str(DBT_PROJECT_DIR), "--profiles-dir", str(DBT_PROJECT_DIR)],
        env=env,
        cwd=DBT_PROJECT_DIR,
        capture_output=True,
        text=True,
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"dbt {' '.join(args)} failed:\n{proc.stdout[-4000:]}")
    return proc


# --------------------------------------------------------------------------- the world


def _event(conn, slug: str, price: str = "0", capacity: int = 20):
    event = create_event(
        conn,
        parse_spec(
            {
                "title": f"Analitik {slug}",
                "slug": slug,
                "starts_at": "2027-05-06T19:00:00",
                "ends_at": "2027-05-06T21:00:00",
                "total_capacity": capacity,
                "currency": "TRY",
                "price": price,
                "channels": {"native": 5, "meetup": None, "eventbrite": None, "luma": None},
            }
        ),
        actor="test",
    )
    for platform in ("meetup", "eventbrite", "luma"):
        conn.execute(
            text(
                "update app.event_channels set platform_event_id = :pid, status = 'published' "
                "where event_id = :e and platform = :p"
            ),
            {"pid": f"{platform}-{slug}", "e": event.id, "p": platform},
        )
    return event


_seq = iter(range(1, 10**9))


def register(
    conn,
    event_id,
    platform: str,
    *,
    email: str | None = None,
    phone: str | None = None,
    name: str = "Katılımcı",
    status: str = "approved",
    payment: str = "none",
    amount: int = 0,
    at: datetime = T0,
    raw: dict | None = None,
    prid: str | None = None,
) -> int:
    """A registration as the ingest writes it: identity keys normalized by hub.members."""
    return conn.execute(
        text(
            """
            insert into app.registrations (event_id, platform, platform_registration_id,
                full_name, email, email_normalized, phone, phone_e164, status,
                payment_status, amount_minor, currency, registered_at, raw, consent_at)
            values (:event, :platform, :prid, :name, :email, :email_n, :phone, :phone_n,
                    :status, :payment, :amount, :currency, :at, cast(:raw as jsonb), :consent)
            returning id
            """
        ),
        {
            "event": event_id,
            "platform": platform,
            "prid": prid or f"{platform[:2]}-{next(_seq)}",
            "name": name,
            "email": email,
            "email_n": normalize_email(email),
            "phone": phone,
            "phone_n": normalize_phone(phone),
            "status": status,
            "payment": payment,
            "amount": amount,
            "currency": "TRY" if amount else None,
            "at": at,
            "raw": json.dumps(raw or {}),
            "consent": at if platform == "native" else None,
        },
    ).scalar_one()


def build_world() -> dict:
    """Seven people, sixteen registrations, written differently on each channel."""
    with transaction() as conn:
        paid = _event(conn, "analitik-ucretli", price="250")
        free = _event(conn, "analitik-ucretsiz")
        h = timedelta(hours=1)
        # Ayşe: one mailbox, three spellings (case, +tag, googlemail, Gmail dots)
        ayse = [
            register(
                conn,
                paid.id,
                "eventbrite",
                email="Ayse.Kaya@Gmail.com",
                phone="0532 111 22 33",
                status="attended",
                payment="paid",
                amount=25000,
                raw={"id": "a1", "order_id": "o1", "checked_in": True},
            ),
            register(
                conn,
                free.id,
                "luma",
                email="ayse.kaya+luma@googlemail.com",
                at=T0 + h,
                raw={"user_api_id": "usr-ayse"},
            ),
            register(conn, free.id, "native", email="aysekaya@gmail.com", at=T0 + 2 * h),
        ]
        # Mehmet: work e-mail and phone on Eventbrite, personal e-mail and the same phone
        # on Luma, personal e-mail without phone on the native page: A=B by phone, B=C by
        # e-mail
        mehmet = [
            register(
                conn,
                paid.id,
                "eventbrite",
                email="mehmet@firma.com.tr",
                phone="+90 533 222 33 44",
                status="no_show",
                payment="paid",
                amount=25000,
                at=T0 + 3 * h,
            ),
            register(
                conn,
                paid.id,
                "luma",
                email="m.demir@hotmail.com",
                phone="05332223344",
                status="pending",
                payment="unpaid",
                amount=25000,
                at=T0 + 4 * h,
                raw={"user_api_id": "usr-mehmet"},
            ),
            register(conn, free.id, "native", email="M.Demir@Hotmail.com", at=T0 + 5 * h),
        ]
        # A Meetup member on two events: no e-mail or phone, one member id
        meetup = [
            register(
                conn,
                e.id,
                "meetup",
                name="Can",
                status="approved",
                at=T0 + 6 * h,
                raw={"id": f"r{n}", "status": "YES", "member": {"id": "901"}},
            )
            for n, e in enumerate((paid, free))
        ]
        # Zeynep: two addresses, one Luma account
        zeynep = [
            register(
                conn,
                paid.id,
                "luma",
                email="zeynep@example.org",
                at=T0 + 7 * h,
                raw={"user_api_id": "usr-7"},
                status="cancelled",
            ),
            register(
                conn,
                free.id,
                "luma",
                email="zeynep.work@example.com",
                at=T0 + 8 * h,
                raw={"user_api_id": "usr-7"},
                status="attended",
            ),
        ]
        # Not one mailbox: dots and +tags are significant outside the known providers
        ali = [
            register(conn, paid.id, "eventbrite", email="ali.veli@uni.edu.tr", at=T0 + 9 * h),
            register(conn, free.id, "native", email="aliveli@uni.edu.tr", at=T0 + 10 * h),
        ]
        tag = [
            register(conn, paid.id, "native", email="x+1@firma.com.tr", at=T0 + 11 * h),
            register(
                conn, free.id, "eventbrite", email="x@firma.com.tr", phone="123", at=T0 + 12 * h
            ),
        ]
        # İlker: a dotted capital İ
        ilker = [
            register(conn, paid.id, "native", email="İLKER@gmail.com", at=T0 + 13 * h),
            register(
                conn,
                free.id,
                "luma",
                email="ilker@gmail.com",
                at=T0 + 14 * h,
                raw={"user_api_id": "usr-ilker"},
            ),
        ]
        # Money: a native order paid through Stripe, a Stripe payment matched by e-mail
        # and amount, a parsed e-mail nobody can place (the review queue)
        conn.execute(
            text(
                "insert into app.orders (order_no, event_id, idempotency_key, request_hash, "
                "status, registration_id, email_normalized, amount_minor, currency, "
                "stripe_payment_intent) values ('ORD-1', :e, 'k1', 'h1', 'confirmed', :r, "
                "'x+1@firma.com.tr', 25000, 'TRY', 'pi_native')"
            ),
            {"e": paid.id, "r": tag[0]},
        )
        pid, _ = record_payment(
            conn,
            PaymentIn(
                provider="stripe",
                provider_payment_id="pi_native",
                amount_minor=25000,
                reference="ORD-1",
                event_id=paid.id,
                paid_at=T0,
            ),
        )
        pid, _ = record_payment(
            conn,
            PaymentIn(
                provider="stripe",
                provider_payment_id="pi_luma",
                amount_minor=25000,
                payer_email="m.demir@hotmail.com",
                event_id=paid.id,
                paid_at=T0,
            ),
        )
        match_payment(conn, pid, actor="test")
        pid, _ = record_payment(
            conn,
            PaymentIn(
                provider="email",
                provider_payment_id="mail-1",
                amount_minor=99900,
                payer_name="Bilinmeyen Kişi",
                payer_email="kim@example.net",
            ),
        )
        match_payment(conn, pid, actor="test")
        conn.execute(
            text(
                "insert into app.seat_holds (event_id, hold_key, channel, pool, status, "
                "registration_id, order_no) values (:e, 'k1', 'native', 'quota', "
                "'confirmed', :r, 'ORD-1')"
            ),
            {"e": paid.id, "r": tag[0]},
        )
        conn.execute(
            text(
                "insert into app.outbox (kind, idempotency_key, payload, event_id) "
                "values ('capacity.mirror', :k, '{}'::jsonb, :e)"
            ),
            {"k": f"mirror-{uuid.uuid4()}", "e": paid.id},
        )
        hooks = [
            (
                "stripe",
                "checkout.session.completed",
                {
                    "id": "evt_1",
                    "type": "checkout.session.completed",
                    "created": 1767225600,
                    "data": {
                        "object": {
                            "id": "cs_1",
                            "object": "checkout.session",
                            "payment_intent": "pi_native",
                            "amount_total": 25000,
                            "currency": "try",
                            "metadata": {"order_no": "ORD-1"},
                        }
                    },
                },
            ),
            (
                "luma",
                "guest.registered",
                {"type": "guest.registered", "data": {"api_id": "gst-1", "event_id": "evt-l"}},
            ),
            (
                "eventbrite",
                "order.placed",
                {
                    "config": {"action": "order.placed"},
                    "api_url": "https://www.eventbriteapi.com/v3/orders/12345/",
                },
            ),
        ]
        for source, kind, body in hooks:
            data = json.dumps(body).encode()
            conn.execute(
                text(
                    "insert into raw.webhook_events (source, event_type, body, body_size, "
                    "verified, status) values (:s, :t, :b, :n, true, 'processed')"
                ),
                {"s": source, "t": kind, "b": data, "n": len(data)},
            )
        conn.execute(  # kept as received although it is not JSON (principle 1)
            text(
                "insert into raw.webhook_events (source, body, body_size, flag, status) "
                "values ('stripe', :b, 3, 'malformed', 'flagged')"
            ),
            {"b": b"\xff{x"},
        )
    return {
        "paid": paid,
        "free": free,
        "people": [ayse, mehmet, meetup, zeynep, ilker],
        "apart": [ali, tag],
    }


def _records(conn) -> list[IdentityRecord]:
    rows = conn.execute(
        text(
            "select id, platform, platform_registration_id, coalesce(registered_at, created_at)"
            " as first_seen, email, phone, raw from app.registrations"
        )
    ).all()
    return [
        IdentityRecord(
            r.id, r.platform, r.platform_registration_id, r.first_seen, r.email, r.phone, r.raw
        )
        for r in rows
    ]


def _sql_members(conn) -> dict[int, str]:
    return dict(
        conn.execute(text("select record_id, member_id from intermediate.int_identity__members"))
        .tuples()
        .all()
    )


def _partition(members: dict[int, str]) -> set[frozenset[int]]:
    groups: dict[str, set[int]] = {}
    for record, member in members.items():
        groups.setdefault(member, set()).add(record)
    return {frozenset(g) for g in groups.values()}


# --------------------------------------------------------------------------- tests


def test_dagster_build_passes_every_dbt_test_and_shows_the_reports(
    clean_db,
    dagster_instance,  # noqa: F811
):
    world = build_world()
    result = defs.resolve_job_def("analytics_build_job").execute_in_process(
        instance=dagster_instance, raise_on_error=False
    )
    checks = {
        e.event_specific_data.check_name: e.event_specific_data.passed
        for e in result.all_events
        if e.event_type_value == "ASSET_CHECK_EVALUATION"
    }
    assert result.success, [n for n, ok in checks.items() if not ok]
    assert len(checks) > 60 and all(checks.values())
    singular = {n for n in checks if n.startswith("assert_")}
    assert singular == {
        "assert_no_person_has_two_member_ids",
        "assert_registrations_reconcile_with_app",
        "assert_payments_reconcile_with_app",
    }
    materialized = {
        m.event_specific_data.materialization.asset_key: m.event_specific_data.materialization
        for m in result.get_asset_materialization_events()
    }
    fill = materialized[AssetKey(["analytics", "rpt_fill_by_channel"])].metadata
    table = fill["fill_by_channel"].value
    assert "| event | room | native | meetup | eventbrite | luma | taken | fill |" in table
    assert "analitik-ucretli" in table and "%" in table
    members_md = materialized[AssetKey(["analytics", "dim_members"])].metadata
    assert members_md["members"].value == 9 and members_md["raw_registrations"].value == 16

    with clean_db.connect() as conn:
        members = _sql_members(conn)
        ids = [{members[r] for r in person} for person in world["people"]]
        assert all(len(s) == 1 for s in ids)  # each person one member
        assert len(set().union(*ids)) == len(world["people"])  # and no two people merged
        for apart in world["apart"]:
            assert len({members[r] for r in apart}) == 2
        mehmet = conn.execute(
            text(
                "select channels_used, count_events_registered, count_no_shows "
                "from marts.dim_members where member_id = :m"
            ),
            {"m": members[world["people"][1][0]]},
        ).one()
        assert mehmet == (["eventbrite", "luma", "native"], 2, 1)
        # the merge table explains Mehmet: phone joined Eventbrite and Luma, e-mail
        # joined Luma and the native page
        joins = conn.execute(
            text(
                "select key_type, count_records_sharing_key from marts.fct_identity_merges "
                "where member_id = :m and is_joining_key order by key_type"
            ),
            {"m": members[world["people"][1][0]]},
        ).all()
        assert [tuple(j) for j in joins] == [("email", 2), ("email", 2), ("phone", 2), ("phone", 2)]
        orders = dict(
            conn.execute(text("select order_key, match_method from marts.fct_orders"))
            .tuples()
            .all()
        )
        assert orders["native:ORD-1"] == "stripe_session"
        assert "email_amount" in orders.values() and "unmatched" in orders.values()
        queue = conn.execute(
            text("select provider, amount_minor from marts.fct_payments_unmatched")
        ).all()
        assert [tuple(q) for q in queue] == [("email", 99900)]
        stripe = conn.execute(
            text("select count(*), count(payment_intent_id) from staging.stg_stripe__events")
        ).one()
        assert tuple(stripe) == (2, 1)  # the malformed body is a row, with nothing parsed
        eb = conn.scalar(text("select order_id from staging.stg_eventbrite__order_webhooks"))
        assert eb == "12345"
        overlap = dict(
            conn.execute(
                text("select channel_combination, count_members from marts.rpt_channel_overlap")
            )
            .tuples()
            .all()
        )
        assert overlap["eventbrite+luma+native"] == 2 and sum(overlap.values()) == 9
        funnel = conn.execute(
            text(
                "select sum(count_registered), sum(count_approved), sum(count_checked_in) "
                "from marts.rpt_registration_funnel"
            )
        ).one()
        assert tuple(funnel) == (16, 14, 2)
        revenue = conn.execute(
            text(
                "select gross_minor from marts.rpt_revenue_per_event "
                "where event_slug = 'analitik-ucretli'"
            )
        ).scalar()
        # the native order, the matched Stripe payment, Eventbrite's two paid attendees
        assert revenue == 4 * 25000
    lines = demo_lines(clean_db)
    assert lines[0].startswith("unified members   9 from 16 raw registrations")


def test_analysts_read_the_marts_and_no_contact_details(clean_db):
    """A role granted the marts (dbt's on-run-end) reads member ids, not contact details:
    no mart column holds a name, e-mail or phone, and pii, staging and intermediate are
    closed to it."""
    with (
        psycopg.connect(_conninfo(), autocommit=True) as conn,
        contextlib.suppress(psycopg.errors.DuplicateObject),
    ):
        conn.execute(f"create role {ANALYST} nologin")
    build_world()
    dbt("run")
    with clean_db.connect() as conn:
        columns = conn.execute(
            text(
                "select table_name, column_name from information_schema.columns "
                "where table_schema = 'marts'"
            )
        ).all()
        assert columns
        personal = [
            c
            for c in columns
            if any(w in c.column_name for w in ("email", "phone", "name", "payer"))
        ]
        assert personal == []
    with psycopg.connect(_conninfo()) as conn:
        conn.execute(f"set role {ANALYST}")
        assert conn.execute("select count(*) from marts.dim_members").fetchone()[0] == 9
        assert conn.execute("select count(*) from marts.rpt_fill_by_channel").fetchone()[0] > 0
        conn.rollback()
        for relation in (
            "pii.pii_members",
            "staging.stg_app__registrations",
            "intermediate.int_identity__members",
            "app.registrations",
        ):
            conn.execute(f"set role {ANALYST}")
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(f"select * from {relation} limit 1")
            conn.rollback()


def _conninfo() -> str:
    url = make_url(resolve_database_url(get_settings()))
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


def test_sql_identity_agrees_with_hub_members_on_generated_people(clean_db):
    """The bench generator's people (case, Gmail dots, +tags, googlemail, work
    addresses, five phone spellings, shared household phones, Meetup without contact
    details): the SQL members equal hub.members-based union-find, member ids included."""
    from bench.analytics import generate

    generate(resolve_database_url(get_settings()), registrations=3000, people=600, seed=5)
    build_world()  # and the hand-written corner cases
    dbt("run", "--select", "+int_identity__members")
    with clean_db.connect() as conn:
        sql = _sql_members(conn)
        python = resolve_members(_records(conn))
    assert len(sql) == len(python) > 3000
    assert _partition(sql) == _partition(python)
    assert sql == python  # md5 of the earliest record's label, on both sides
    assert len(set(sql.values())) < len(sql) * 0.6  # real merging happened


def _snapshot(conn) -> dict[str, list]:
    queries = {
        "identity": "select record_id, member_id from intermediate.int_identity__members",
        "registrations": (
            "select registration_id, member_id, event_id, channel, registration_status, "
            "payment_status, is_checked_in, amount_minor, registration_first_seen_at "
            "from marts.fct_registrations"
        ),
        "members": (
            "select member_id, first_seen_at, last_seen_at, first_channel, channels_used, "
            "count_registrations, count_events_registered, count_events_attended, "
            "count_no_shows, has_consent from marts.dim_members"
        ),
        "fill": "select * from marts.rpt_fill_by_channel",
        "orders": "select * from marts.fct_orders",
    }
    return {
        k: sorted(map(tuple, conn.execute(text(q)).all()), key=repr) for k, q in queries.items()
    }


def test_incremental_run_equals_a_full_refresh(clean_db):
    """New rows, late-arriving rows (old registration dates), changed rows, a new record
    joining two members into one, a record whose new e-mail splits it off, and a deleted
    registration: an incremental run gives exactly what a full refresh gives; a member
    id survives later records joining it."""
    world = build_world()
    dbt("run")
    ayse, mehmet, _meetup, zeynep, ilker = world["people"]
    with clean_db.connect() as conn:
        before = _sql_members(conn)
    with transaction() as conn:
        paid, free = world["paid"].id, world["free"].id
        later = T0 + timedelta(days=30)
        joined = register(
            conn,
            paid,
            "luma",
            email="AYSE.KAYA@gmail.com",
            at=later,
            raw={"user_api_id": "usr-new"},
        )  # joins Ayşe
        bridge = register(
            conn, paid, "native", email="ilker@gmail.com", phone="0533 222 33 44", at=later
        )  # bridges İlker and Mehmet
        register(
            conn, free, "eventbrite", email="late@example.com", at=T0 - timedelta(days=200)
        )  # late-arriving, older than everything
        register(conn, free, "meetup", at=later, raw={"member": {"id": "902"}})
        conn.execute(
            text(
                "update app.registrations set status = 'attended', updated_at = now() where id = :r"
            ),
            {"r": zeynep[0]},
        )
        conn.execute(  # Zeynep's second Luma row now belongs to someone else's account
            text(
                'update app.registrations set raw = \'{"user_api_id": "usr-8"}\', '
                "updated_at = now() where id = :r"
            ),
            {"r": zeynep[1]},
        )
        conn.execute(
            text("delete from app.registrations where id = :r"), {"r": world["apart"][0][1]}
        )
    dbt("run")
    with clean_db.connect() as conn:
        incremental = _snapshot(conn)
        after = _sql_members(conn)
    assert after[joined] == before[ayse[0]]  # the earliest record still names the member
    assert after[bridge] == after[mehmet[0]] == after[ilker[0]]
    assert after[zeynep[0]] != after[zeynep[1]]  # the split
    assert world["apart"][0][1] not in after
    dbt("run", "--full-refresh")
    with clean_db.connect() as conn:
        full = _snapshot(conn)
    for name in full:
        assert incremental[name] == full[name], name
    dbt("test")


def test_sensor_starts_the_build_after_ingest_once(dagster_instance):  # noqa: F811
    context = build_sensor_context(instance=dagster_instance, cursor=None)
    first = analytics_after_ingest(context)
    dagster_instance.report_runless_asset_event(
        AssetMaterialization(asset_key=AssetKey(["ingest", "raw_rows_ingested"]))
    )
    context = build_sensor_context(instance=dagster_instance, cursor=context.cursor)
    request = analytics_after_ingest(context)
    assert isinstance(request, RunRequest) and request.run_key.startswith("analytics:")
    again = analytics_after_ingest(
        build_sensor_context(instance=dagster_instance, cursor=context.cursor)
    )
    assert isinstance(again, SkipReason)
    dagster_instance.report_runless_asset_event(
        AssetMaterialization(
            asset_key=AssetKey(["syndication", "luma_registrations"]), partition="x"
        )
    )
    pulled = analytics_after_ingest(
        build_sensor_context(instance=dagster_instance, cursor=context.cursor)
    )
    assert isinstance(pulled, RunRequest) and pulled.run_key != request.run_key
    assert first is None or isinstance(first, RunRequest | SkipReason)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_hub_dbt_docs_generates_and_serves_the_site(clean_db):
    build_world()
    dbt("run")  # the catalog describes what is in the database
    env = os.environ.copy()
    proc = subprocess.run(
        [sys.executable, "-m", "hub_cli.main", "dbt", "docs", "--no-serve"],
        env=env,
        capture_output=True,
        text=True,
        cwd=DBT_PROJECT_DIR.parent,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    catalog = json.loads((DBT_PROJECT_DIR / "target" / "catalog.json").read_text())
    assert "model.community_event_hub.dim_members" in catalog["nodes"]
    manifest = json.loads((DBT_PROJECT_DIR / "target" / "manifest.json").read_text())
    described = manifest["nodes"]["model.community_event_hub.dim_members"]["columns"]
    assert described["member_id"]["description"]
    port = _free_port()
    server = subprocess.Popen(
        serve_argv(port), cwd=DBT_PROJECT_DIR, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                page = httpx.get(f"http://127.0.0.1:{port}/", timeout=2)
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.3)
        assert page.status_code == 200 and "dbt" in page.text.lower()
        assert httpx.get(f"http://127.0.0.1:{port}/catalog.json", timeout=5).status_code == 200
    finally:
        server.terminate()
        server.wait(10)


def test_bench_runs_at_smoke_size(clean_db):
    from bench.analytics import run

    figures = run(registrations=3000, people=600, increment_rows=200)
    (figure,) = figures
    data = figure.data
    assert data["full_s"] > 0 and data["incremental_s"] > 0
    assert 0.9 < data["quality"]["precision"] <= 1 and 0.7 < data["quality"]["recall"] <= 1
    assert data["quality_after"]["records"] == 3000 + 200 - 20  # 20 of the 200 are updates
    assert any("precision" in line for line in figure.lines)
