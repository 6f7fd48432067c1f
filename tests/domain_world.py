"""A small fixture world for the domain-core tests: events with channels, registrations
and raw rows, written with plain SQL the way the other components would write them."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import Connection

from hub.models import PaymentStatus, Platform, PlatformRegistration, RegistrationStatus

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


def make_event(
    conn: Connection,
    *,
    slug: str | None = None,
    price_minor: int = 0,
    currency: str = "TRY",
    channels: dict[str, str] | None = None,
) -> uuid.UUID:
    """An event and its channels ({platform: platform_event_id})."""
    slug = slug or f"event-{uuid.uuid4().hex[:8]}"
    event_id = conn.execute(
        text(
            """
            insert into app.events (slug, title, starts_at, ends_at, timezone,
                                    total_capacity, price_minor, currency)
            values (:slug, :slug, :start, :end, 'Europe/Istanbul', 100, :price, :currency)
            returning id
            """
        ),
        {
            "slug": slug,
            "start": T0 + timedelta(days=30),
            "end": T0 + timedelta(days=30, hours=3),
            "price": price_minor,
            "currency": currency,
        },
    ).scalar_one()
    for platform, platform_event_id in (channels or {}).items():
        conn.execute(
            text(
                "insert into app.event_channels (event_id, platform, platform_event_id, status) "
                "values (:e, :p, :pid, 'published')"
            ),
            {"e": event_id, "p": platform, "pid": platform_event_id},
        )
    return event_id


def reg(
    rid: str,
    *,
    platform: str = "eventbrite",
    event: str = "eb-1",
    status: str = "pending",
    email: str | None = None,
    phone: str | None = None,
    name: str | None = None,
    amount: int = 0,
    currency: str | None = None,
    payment_status: str = "none",
    updated_at: datetime | None = None,
) -> PlatformRegistration:
    return PlatformRegistration(
        platform=Platform(platform),
        platform_event_id=event,
        platform_registration_id=rid,
        full_name=name,
        email=email,
        phone=phone,
        status=RegistrationStatus(status),
        payment_status=PaymentStatus(payment_status),
        amount_minor=amount,
        currency=currency,
        updated_at=updated_at,
        raw={"id": rid},
    )


def registration(conn: Connection, platform: str, rid: str) -> Any:
    return conn.execute(
        text(
            "select * from app.registrations "
            "where platform = :p and platform_registration_id = :rid"
        ),
        {"p": platform, "rid": rid},
    ).one()


def audits(conn: Connection, entity: str, entity_id: Any = None) -> list[Any]:
    sql = "select * from app.audit_log where entity = :entity"
    if entity_id is not None:
        sql += " and entity_id = :entity_id"
    return conn.execute(
        text(sql + " order by id"), {"entity": entity, "entity_id": str(entity_id)}
    ).all()


def insert_raw(
    conn: Connection,
    table: str,
    *,
    source: str,
    body: bytes | dict | list,
    headers: dict[str, str] | None = None,
    verified: bool = True,
    status: str = "received",
    flag: str | None = None,
    event_type: str | None = None,
    dedupe_key: str | None = None,
) -> int:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    extra_cols, extra_vals = "", ""
    params: dict[str, Any] = {
        "source": source,
        "dedupe_key": dedupe_key,
        "headers": json.dumps(headers or {"Content-Type": "application/json"}),
        "body": data,
        "size": len(data),
        "verified": verified,
        "status": status,
        "flag": flag,
    }
    if table == "webhook_events":
        extra_cols, extra_vals = ", event_type", ", :event_type"
        params["event_type"] = event_type
    return conn.execute(
        text(
            f"""
            insert into raw.{table} (source, dedupe_key, headers, body, body_size, verified,
                                     status, flag{extra_cols})
            values (:source, :dedupe_key, cast(:headers as jsonb), :body, :size, :verified,
                    :status, :flag{extra_vals})
            returning id
            """
        ),
        params,
    ).scalar_one()


def raw_row(conn: Connection, table: str, row_id: int) -> Any:
    return conn.execute(text(f"select * from raw.{table} where id = :id"), {"id": row_id}).one()
