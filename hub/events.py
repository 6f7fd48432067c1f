"""createEvent and the event's channel allocation of capacity.

An event is stored once with its total capacity; each channel (native pages and the
syndicated platforms) gets an ``app.event_channels`` row with its allocation (seats
reserved for it, or NULL for the shared pool). Editing a field the platforms show bumps
``version``, which the syndication sensor turns into an update on every platform.
"""

from __future__ import annotations

import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError
from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from hub import audit
from hub.db import event_channels, events
from hub.models import CURRENCY_EXPONENTS, Event, EventSpec, Platform


class EventInputError(ValueError):
    """Invalid event input; ``field`` names the offending field."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


def _first_error(exc: ValidationError) -> EventInputError:
    item = exc.errors()[0]
    loc = ".".join(str(p) for p in item["loc"])
    message = item["msg"].removeprefix("Value error, ")
    if not loc and ":" in message:  # model-level checks name their field first
        loc, message = (part.strip() for part in message.split(":", 1))
    return EventInputError(loc or "event", message)


def parse_spec(data: Any) -> EventSpec:
    if not isinstance(data, dict):
        raise EventInputError("event", "expected a mapping of fields")
    try:
        return EventSpec.model_validate(data)
    except ValidationError as exc:
        raise _first_error(exc) from None


def load_spec_file(path: str | Path) -> EventSpec:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise EventInputError("file", f"cannot read {path}: {exc.strerror}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise EventInputError("file", f"{path} is not valid YAML: {exc}") from None
    return parse_spec(data)


def _row_values(spec: EventSpec) -> dict[str, Any]:
    return {
        "title": spec.title,
        "description": spec.description,
        "starts_at": spec.starts_at,
        "ends_at": spec.ends_at,
        "timezone": spec.timezone,
        "venue_name": spec.venue.name,
        "venue_address": spec.venue.address,
        "online_url": spec.venue.online_url,
        "total_capacity": spec.total_capacity,
        "price_minor": spec.price_minor,
        "currency": spec.currency,
        "native_theme": spec.theme,
        "overbooking_policy": spec.overbooking,
        "approval_required": spec.approval_required,
    }


def create_event(conn: Connection, spec: EventSpec, *, actor: str) -> Event:
    """Store a validated event and its channels in the caller's transaction."""
    values = _row_values(spec) | {"id": uuid.uuid4(), "slug": spec.slug, "status": "scheduled"}
    try:
        with conn.begin_nested():
            conn.execute(events.insert().values(**values))
    except IntegrityError as exc:
        if "slug" in str(exc.orig):
            raise EventInputError("slug", f"an event with slug {spec.slug!r} exists") from None
        raise
    for platform, allocation in spec.channels.items():
        conn.execute(
            pg_insert(event_channels).values(
                event_id=values["id"],
                platform=platform.value,
                allocation=allocation,
                status="published" if platform is Platform.NATIVE else "pending",
            )
        )
    audit.record(
        conn,
        entity="event",
        entity_id=values["id"],
        action="created",
        actor=actor,
        data={
            "slug": spec.slug,
            "total_capacity": spec.total_capacity,
            "channels": {p.value: a for p, a in spec.channels.items()},
        },
    )
    return get_event(conn, values["id"])


def get_event(conn: Connection, event_id: uuid.UUID | str) -> Event:
    row = conn.execute(select(events).where(events.c.id == event_id)).mappings().one_or_none()
    if row is None:
        raise LookupError(f"no event {event_id}")
    channels = conn.execute(
        select(event_channels.c.platform, event_channels.c.allocation).where(
            event_channels.c.event_id == row["id"]
        )
    ).all()
    return Event.model_validate({**row, "allocations": {p: a for p, a in channels}})


def list_events(conn: Connection) -> list[Event]:
    ids = conn.scalars(select(events.c.id).order_by(events.c.starts_at)).all()
    return [get_event(conn, event_id) for event_id in ids]


def update_event(
    conn: Connection,
    event_id: uuid.UUID | str,
    changes: dict[str, Any],
    *,
    actor: str,
    reason: str | None = None,
) -> Event:
    """Apply field changes (validated as a whole spec); bump version if platforms must know."""
    current = get_event(conn, event_id)
    merged = {
        "title": current.title,
        "description": current.description,
        "starts_at": current.starts_at,
        "ends_at": current.ends_at,
        "timezone": current.timezone,
        "total_capacity": current.total_capacity,
        "currency": current.currency,
        "slug": current.slug,
        "venue": {
            "name": current.venue_name,
            "address": current.venue_address,
            "online_url": current.online_url,
        },
        "price": _major(current.price_minor, current.currency),
        "channels": current.allocations,
        "theme": current.native_theme,
        "overbooking": current.overbooking_policy,
        "approval_required": current.approval_required,
    } | changes
    spec = parse_spec(merged)
    new_values = _row_values(spec)
    changed = {k: v for k, v in new_values.items() if getattr(current, k) != v}
    if not changed:
        return current
    conn.execute(
        update(events)
        .where(events.c.id == current.id)
        .values(**changed, version=events.c.version + 1, updated_at=func.now())
    )
    audit.record(
        conn,
        entity="event",
        entity_id=current.id,
        action="updated",
        actor=actor,
        reason=reason,
        data={k: str(v) for k, v in changed.items()},
    )
    if "total_capacity" in changed:
        # The seat ledger's gate holds the old size: drop it under the event's exclusive
        # lock (rebuilt from these values after commit) and tell the platforms.
        from hub.capacity import SeatLedger
        from hub.outbox import enqueue_capacity_mirror

        SeatLedger.from_settings().invalidate(conn, current.id)
        enqueue_capacity_mirror(conn, current.id)
    return get_event(conn, current.id)


def _major(minor: int, currency: str) -> str:
    return str(Decimal(minor) / (Decimal(10) ** CURRENCY_EXPONENTS[currency]))
