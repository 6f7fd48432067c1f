"""SQLAlchemy 2 engine and table metadata for the schemas ``raw`` and ``app``.

Alembic (migrations/) owns the DDL; this metadata mirrors it for queries. dbt owns the
analytics schemas (staging, marts) and never writes here.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    Engine,
    ForeignKey,
    Identity,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    Numeric,
    Table,
    Text,
    UniqueConstraint,
    create_engine,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.engine import Connection

from hub.embedded import resolve_database_url
from hub.settings import Settings, get_settings

metadata = MetaData()

PLATFORMS = ("native", "meetup", "eventbrite", "luma")


def _ts(name: str, nullable: bool = False, default: bool = False) -> Column:
    return Column(
        name,
        DateTime(timezone=True),
        nullable=nullable,
        server_default=func.now() if default else None,
    )


# ----------------------------------------------------------------------------- app

events = Table(
    "events",
    metadata,
    Column("id", UUID(as_uuid=True), primary_key=True, server_default=text("gen_random_uuid()")),
    Column("slug", Text, nullable=False, unique=True),
    Column("title", Text, nullable=False),
    Column("description", Text, nullable=False, server_default=""),
    _ts("starts_at"),
    _ts("ends_at"),
    Column("timezone", Text, nullable=False),
    Column("venue_name", Text),
    Column("venue_address", Text),
    Column("online_url", Text),
    Column("total_capacity", Integer, nullable=False),
    Column("price_minor", BigInteger, nullable=False, server_default="0"),
    Column("currency", Text, nullable=False),
    Column("status", Text, nullable=False, server_default="scheduled"),
    Column("version", Integer, nullable=False, server_default="1"),
    _ts("created_at", default=True),
    _ts("updated_at", default=True),
    CheckConstraint("ends_at > starts_at", name="ck_events_time_order"),
    CheckConstraint("total_capacity >= 0", name="ck_events_capacity"),
    CheckConstraint("price_minor >= 0", name="ck_events_price"),
    CheckConstraint("status in ('draft','scheduled','cancelled')", name="ck_events_status"),
    # 0006: the landing page's look, what a platform seat sold into a full room becomes,
    # and whether a native registration waits for a person's yes.
    Column("native_theme", Text, nullable=False, server_default="community"),
    Column("overbooking_policy", Text, nullable=False, server_default="keep"),
    Column("approval_required", Boolean, nullable=False, server_default=text("false")),
    schema="app",
)

event_channels = Table(
    "event_channels",
    metadata,
    Column("id", BigInteger, Identity(), primary_key=True),
    Column(
        "event_id",
        UUID(as_uuid=True),
        ForeignKey("app.events.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("platform", Text, nullable=False),
    Column("allocation", Integer),  # seats reserved for this channel; NULL = shared pool
    Column("platform_event_id", Text),
    Column("url", Text),
    Column("status", Text, nullable=False, server_default="pending"),
    Column("published_version", Integer),  # events.version last pushed to the platform
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("last_error", Text),
    Column("raw_response", JSONB),
    _ts("synced_at", nullable=True),
    _ts("created_at", default=True),
    # 0002: the publish lease (who holds the platform call, until when) and the back-off
    Column("lease_owner", Text),
    _ts("lease_expires_at", nullable=True),
    _ts("next_attempt_at", nullable=True),
    UniqueConstraint("event_id", "platform", name="uq_event_channels_event_platform"),
    UniqueConstraint("platform", "platform_event_id", name="uq_event_channels_platform_id"),
    CheckConstraint("allocation is null or allocation >= 0", name="ck_event_channels_allocation"),
    CheckConstraint(
        "status in ('pending','publishing','published','failed','closed')",
        name="ck_event_channels_status",
    ),
    CheckConstraint(
        "(lease_owner is null) = (lease_expires_at is null)", name="ck_event_channels_lease"
    ),
    schema="app",
)

registrations = Table(
    "registrations",
    metadata,
    Column("id", BigInteger, Identity(), primary_key=True),
    Column(
        "event_id",
        UUID(as_uuid=True),
        ForeignKey("app.events.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("platform", Text, nullable=False),
    Column("platform_registration_id", Text, nullable=False),
    Column("platform_event_id", Text),
    Column("full_name", Text),
    Column("email", Text),
    Column("email_normalized", Text),
    Column("phone", Text),
    Column("phone_e164", Text),
    Column("status", Text, nullable=False),
    Column("payment_status", Text, nullable=False, server_default="none"),
    Column("amount_minor", BigInteger, nullable=False, server_default="0"),
    Column("currency", Text),
    _ts("registered_at", nullable=True),
    _ts("platform_updated_at", nullable=True),
    Column("raw", JSONB),
    _ts("created_at", default=True),
    _ts("updated_at", default=True),
    # 0006: the KVKK consent the person gave (text and time), the landing page's ?ref=,
    # and the native order that made the registration.
    Column("consent_text", Text),
    _ts("consent_at", nullable=True),
    Column("ref_code", Text),
    Column("order_no", Text),
    UniqueConstraint("platform", "platform_registration_id", name="uq_registrations_platform_id"),
    CheckConstraint(
        "status in ('pending','approved','waitlist','declined','cancelled','attended','no_show')",
        name="ck_registrations_status",
    ),
    CheckConstraint(
        "payment_status in ('none','unpaid','paid','refunded')", name="ck_registrations_payment"
    ),
    schema="app",
)
Index("ix_registrations_event", registrations.c.event_id)
Index("ix_registrations_email", registrations.c.email_normalized)
Index("ix_registrations_phone", registrations.c.phone_e164)

payments = Table(
    "payments",
    metadata,
    Column("id", BigInteger, Identity(), primary_key=True),
    Column("provider", Text, nullable=False),  # stripe | email | ...
    Column("provider_payment_id", Text, nullable=False),
    Column("kind", Text, nullable=False, server_default="payment"),  # payment | refund
    Column("status", Text, nullable=False),  # paid | failed | refunded | unmatched ...
    Column("amount_minor", BigInteger, nullable=False),
    Column("currency", Text, nullable=False),
    Column("payer_email", Text),
    Column("payer_email_normalized", Text),
    Column("payer_name", Text),
    Column("reference", Text),
    Column("registration_id", BigInteger, ForeignKey("app.registrations.id", ondelete="SET NULL")),
    Column("event_id", UUID(as_uuid=True), ForeignKey("app.events.id", ondelete="SET NULL")),
    Column("source_table", Text),
    Column("source_id", BigInteger),
    Column("raw", JSONB),
    _ts("paid_at", nullable=True),
    _ts("created_at", default=True),
    Column("match_score", Numeric(4, 2)),  # 0004: what the matcher weighed, for the reviewer
    Column("match_reasons", JSONB),
    Column("match_candidates", JSONB),
    UniqueConstraint("provider", "provider_payment_id", "kind", name="uq_payments_provider_id"),
    schema="app",
)

inbound_email_classes = Table(  # 0004: what each inbound mail was, payments or not
    "inbound_email_classes",
    metadata,
    Column("raw_id", BigInteger, primary_key=True),
    Column("kind", Text, nullable=False),
    Column("direction", Text, nullable=False),
    Column("bank", Text),
    Column("subject", Text),
    Column("reasons", JSONB, nullable=False, server_default=text("'[]'::jsonb")),
    Column("payment_count", Integer, nullable=False, server_default="0"),
    _ts("classified_at", nullable=True, default=True),
    schema="app",
)
Index("ix_inbound_email_classes_kind", inbound_email_classes.c.kind)

email_attachments = Table(  # 0004: attachments by checksum; the bytes are in hub.files
    "email_attachments",
    metadata,
    Column("id", BigInteger, Identity(), primary_key=True),
    Column("raw_id", BigInteger, nullable=False),
    Column("filename", Text),
    Column("content_type", Text, nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("sha256", Text, nullable=False),
    UniqueConstraint("raw_id", "sha256", name="uq_email_attachments_raw_sha"),
    schema="app",
)

integrations = Table(
    "integrations",
    metadata,
    Column("id", BigInteger, Identity(), primary_key=True),
    Column("platform", Text, nullable=False),
    Column("account", Text, nullable=False, server_default="default"),
    Column("credentials_encrypted", LargeBinary, nullable=False),
    _ts("expires_at", nullable=True),
    _ts("created_at", default=True),
    _ts("updated_at", default=True),
    UniqueConstraint("platform", "account", name="uq_integrations_platform_account"),
    schema="app",
)

# One row (id = 1): the key the vault encrypts with now, by fingerprint (never the key).
# A writer holds it FOR SHARE while it encrypts and stores; a rotation updates it first,
# so no process can store a credential under a key that a rotation is about to drop.
vault_state = Table(
    "vault_state",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("primary_key_id", Text, nullable=False),
    _ts("updated_at", default=True),
    CheckConstraint("id = 1", name="ck_vault_state_single_row"),
    schema="app",
)

outbox = Table(
    "outbox",
    metadata,
    Column("id", BigInteger, Identity(), primary_key=True),
    Column("kind", Text, nullable=False),  # e.g. luma.approve_guest, sms.send
    Column("idempotency_key", Text, nullable=False, unique=True),
    Column("payload", JSONB, nullable=False),
    Column("status", Text, nullable=False, server_default="pending"),
    Column("attempts", Integer, nullable=False, server_default="0"),
    _ts("next_attempt_at", default=True),
    Column("last_error", Text),
    Column("result", JSONB),
    _ts("created_at", default=True),
    _ts("delivered_at", nullable=True),
    Column("event_id", UUID(as_uuid=True)),  # 0006: the outbox per event; NOTIFY hub_outbox
    CheckConstraint(
        "status in ('pending','in_flight','delivered','failed','dead')", name="ck_outbox_status"
    ),
    schema="app",
)
Index("ix_outbox_due", outbox.c.status, outbox.c.next_attempt_at)
Index("ix_outbox_event", outbox.c.event_id, outbox.c.status)

# 0006: the seat ledger (PostgreSQL's truth behind the Redis gate, hub.capacity). One row
# per decision key: a checkout's idempotency key, or "<platform>:<registration id>".
seat_holds = Table(
    "seat_holds",
    metadata,
    Column("id", BigInteger, Identity(), primary_key=True),
    Column(
        "event_id",
        UUID(as_uuid=True),
        ForeignKey("app.events.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("hold_key", Text, nullable=False),
    Column("channel", Text, nullable=False),  # native | meetup | eventbrite | luma
    Column("pool", Text, nullable=False),  # quota | shared | none (overbooked)
    Column("seats", Integer, nullable=False, server_default="1"),
    Column("status", Text, nullable=False),  # held | confirmed | released | expired | overbooked
    _ts("expires_at", nullable=True),
    Column("registration_id", BigInteger, ForeignKey("app.registrations.id", ondelete="SET NULL")),
    Column("order_no", Text),
    Column("reason", Text),
    _ts("created_at", default=True),
    _ts("updated_at", default=True),
    UniqueConstraint("event_id", "hold_key", name="uq_seat_holds_key"),
    CheckConstraint(
        "channel in ('native','meetup','eventbrite','luma')", name="ck_seat_holds_channel"
    ),
    CheckConstraint("pool in ('quota','shared','none')", name="ck_seat_holds_pool"),
    CheckConstraint("seats > 0", name="ck_seat_holds_seats"),
    CheckConstraint(
        "status in ('held','confirmed','released','expired','overbooked')",
        name="ck_seat_holds_status",
    ),
    CheckConstraint("status <> 'held' or expires_at is not null", name="ck_seat_holds_expiry"),
    schema="app",
)
Index("ix_seat_holds_event_status", seat_holds.c.event_id, seat_holds.c.status)
Index(
    "ix_seat_holds_expiring",
    seat_holds.c.expires_at,
    postgresql_where=seat_holds.c.status == "held",
)

# 0006: a native checkout (hub.checkout): the order number is the public, unguessable
# handle of /orders/<order_no>.
orders = Table(
    "orders",
    metadata,
    Column("order_no", Text, primary_key=True),
    Column(
        "event_id",
        UUID(as_uuid=True),
        ForeignKey("app.events.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("idempotency_key", Text, nullable=False),
    Column("request_hash", Text, nullable=False),
    Column("status", Text, nullable=False),
    Column("hold_id", BigInteger, ForeignKey("app.seat_holds.id", ondelete="SET NULL")),
    Column("registration_id", BigInteger, ForeignKey("app.registrations.id", ondelete="SET NULL")),
    Column("full_name", Text),
    Column("email", Text),
    Column("email_normalized", Text),
    Column("phone_e164", Text),
    Column("locale", Text),
    Column("consent_text", Text),
    _ts("consent_at", nullable=True),
    Column("ref_code", Text),
    Column("amount_minor", BigInteger, nullable=False, server_default="0"),
    Column("currency", Text, nullable=False),
    Column("stripe_session_id", Text, unique=True),
    Column("stripe_session_url", Text),
    Column("stripe_payment_intent", Text),
    Column("stripe_refund_id", Text),
    _ts("hold_expires_at", nullable=True),
    Column("timeline", JSONB, nullable=False, server_default=text("'[]'::jsonb")),
    _ts("created_at", default=True),
    _ts("updated_at", default=True),
    UniqueConstraint("idempotency_key", name="uq_orders_idempotency_key"),
    CheckConstraint(
        "status in ('held','awaiting_payment','paid','confirmed','expired','failed',"
        "'refunded','cancelled')",
        name="ck_orders_status",
    ),
    schema="app",
)
Index("ix_orders_event", orders.c.event_id, orders.c.status)
Index("ix_orders_email", orders.c.email_normalized)

audit_log = Table(
    "audit_log",
    metadata,
    Column("id", BigInteger, Identity(), primary_key=True),
    Column("entity", Text, nullable=False),  # event | event_channel | registration | payment
    Column("entity_id", Text, nullable=False),
    Column("action", Text, nullable=False),
    Column("actor", Text, nullable=False),  # cli:user, sensor:..., webhook:stripe
    Column("reason", Text),
    Column("data", JSONB),
    _ts("at", default=True),
    schema="app",
)
Index("ix_audit_entity", audit_log.c.entity, audit_log.c.entity_id)

sync_cursors = Table(
    "sync_cursors",
    metadata,
    Column("platform", Text, primary_key=True),
    Column("scope", Text, primary_key=True),  # the platform event id the cursor walks
    Column("cursor", Text),
    _ts("last_pulled_at", nullable=True),
    Column("last_count", Integer, nullable=False, server_default="0"),
    schema="app",
)


# ----------------------------------------------------------------------------- raw


def _raw_table(name: str, *extra: Column) -> Table:
    """A raw landing table: immutable bytes plus processing state (principle 1)."""
    table = Table(
        name,
        metadata,
        Column("id", BigInteger, Identity(), primary_key=True),
        Column("source", Text, nullable=False),
        Column("dedupe_key", Text),
        Column("headers", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
        Column("body", LargeBinary, nullable=False),
        Column("body_size", BigInteger, nullable=False),  # declared sizes can pass 2^31
        Column("body_truncated", Boolean, nullable=False, server_default=text("false")),
        Column("verified", Boolean, nullable=False, server_default=text("false")),
        Column("flag", Text),  # why it was refused: bad_signature, malformed, oversize ...
        Column("status", Text, nullable=False, server_default="received"),
        Column("attempts", Integer, nullable=False, server_default="0"),
        Column("last_error", Text),
        _ts("next_attempt_at", nullable=True),
        _ts("processed_at", nullable=True),
        _ts("received_at", default=True),
        *extra,
        CheckConstraint(
            "status in ('received','flagged','processed','retry','failed','ignored')",
            name=f"ck_{name}_status",
        ),
        schema="raw",
    )
    Index(
        f"uq_{name}_dedupe",
        table.c.source,
        table.c.dedupe_key,
        unique=True,
        postgresql_where=table.c.dedupe_key.isnot(None),
    )
    Index(f"ix_{name}_pending", table.c.status, table.c.id)
    return table


webhook_events = _raw_table("webhook_events", Column("event_type", Text))
inbound_emails = _raw_table("inbound_emails", Column("sender", Text), Column("subject", Text))
checkout_requests = _raw_table("checkout_requests", Column("idempotency_key", Text))
platform_pulls = _raw_table(
    "platform_pulls",
    Column("platform_event_id", Text),
    Column("cursor_in", Text),
    Column("cursor_out", Text),
    Column("item_count", Integer, nullable=False, server_default="0"),
)

RAW_TABLES = {
    t.name: t for t in (webhook_events, inbound_emails, checkout_requests, platform_pulls)
}


# ----------------------------------------------------------------------------- engine

_engines: dict[str, Engine] = {}
_engines_lock = threading.Lock()


def get_engine(settings: Settings | None = None) -> Engine:
    """One pooled engine per database URL per process."""
    settings = settings or get_settings()
    url = resolve_database_url(settings)
    with _engines_lock:
        engine = _engines.get(url)
        if engine is None:
            engine = create_engine(
                url,
                pool_pre_ping=True,
                pool_size=10,
                max_overflow=20,
                connect_args={"connect_timeout": 5},
            )
            _engines[url] = engine
        return engine


def dispose_engines() -> None:
    with _engines_lock:
        for engine in _engines.values():
            engine.dispose()
        _engines.clear()


@contextmanager
def transaction(settings: Settings | None = None) -> Iterator[Connection]:
    """An explicit transaction: commits on success, rolls back on any error."""
    with get_engine(settings).begin() as conn:
        yield conn
