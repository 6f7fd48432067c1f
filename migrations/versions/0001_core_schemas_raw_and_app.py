"""core schemas raw and app

Revision ID: 0001
Revises:
Create Date: 2026-11-22 02:55:38.755636
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("create schema if not exists raw")
    op.execute("create schema if not exists app")
    op.create_table(
        "audit_log",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("entity", sa.Text(), nullable=False),
        sa.Column("entity_id", sa.Text(), nullable=False),
        sa.Column("action", sa.Text(), nullable=False),
        sa.Column("actor", sa.Text(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("data", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column(
            "at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False
        ),
        sa.PrimaryKeyConstraint("id"),
        schema="app",
    )
    op.create_index(
        "ix_audit_entity", "audit_log", ["entity", "entity_id"], unique=False, schema="app"
    )
    op.create_table(
        "events",
        sa.Column("id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("slug", sa.Text(), nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("description", sa.Text(), server_default="", nullable=False),
        sa.Column("starts_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ends_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("timezone", sa.Text(), nullable=False),
        sa.Column("venue_name", sa.Text(), nullable=True),
        sa.Column("venue_address", sa.Text(), nullable=True),
        sa.Column("online_url", sa.Text(), nullable=True),
        sa.Column("total_capacity", sa.Integer(), nullable=False),
        sa.Column("price_minor", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("currency", sa.Text(), nullable=False),
        sa.Column("status", sa.Text(), server_default="scheduled", nullable=False),
        sa.Column("version", sa.Integer(), server_default="1", nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint("status in ('draft','scheduled','cancelled')", name="ck_events_status"),
        sa.CheckConstraint("ends_at > starts_at", name="ck_events_time_order"),
        sa.CheckConstraint("price_minor >= 0", name="ck_events_price"),
        sa.CheckConstraint("total_capacity >= 0", name="ck_events_capacity"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("slug"),
        schema="app",
    )
    op.create_table(
        "integrations",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("platform", sa.Text(), nullable=False),
        sa.Column("account", sa.Text(), server_default="default", nullable=False),
        sa.Column("credentials_encrypted", sa.LargeBinary(), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("platform", "account", name="uq_integrations_platform_account"),
        schema="app",
    )
    op.create_table(
        "outbox",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("idempotency_key", sa.Text(), nullable=False),
        sa.Column("payload", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("status", sa.Text(), server_default="pending", nullable=False),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column(
            "next_attempt_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("result", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "status in ('pending','in_flight','delivered','failed','dead')", name="ck_outbox_status"
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("idempotency_key"),
        schema="app",
    )
    op.create_index(
        "ix_outbox_due", "outbox", ["status", "next_attempt_at"], unique=False, schema="app"
    )
    op.create_table(
        "sync_cursors",
        sa.Column("platform", sa.Text(), nullable=False),
        sa.Column("scope", sa.Text(), nullable=False),
        sa.Column("cursor", sa.Text(), nullable=True),
        sa.Column("last_pulled_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_count", sa.Integer(), server_default="0", nullable=False),
        sa.PrimaryKeyConstraint("platform", "scope"),
        schema="app",
    )
    op.create_table(
        "checkout_requests",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("dedupe_key", sa.Text(), nullable=True),
        sa.Column(
            "headers",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.Column("body", sa.LargeBinary(), nullable=False),
        sa.Column("body_size", sa.Integer(), nullable=False),
        sa.Column("body_truncated", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("verified", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("flag", sa.Text(), nullable=True),
        sa.Column("status", sa.Text(), server_default="received", nullable=False),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("processed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "received_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("idempotency_key", sa.Text(), nullable=True),
        sa.CheckConstraint(
            "status in ('received','flagged','processed','retry','failed','ignored')",
            name="ck_checkout_requests_status",
        ),
        sa.PrimaryKeyConstraint("id"),
        schema="raw",
    )
    op.create_index(
        "ix_checkout_requests_pending",
        "checkout_requests",
        ["status", "id"],
        unique=False,
        schema="raw",
    )
    op.create_index(
        "uq_checkout_requests_dedupe",
        "checkout_requests",
        ["source", "dedupe_key"],
        unique=True,
        schema="raw",
        postgresql_where=sa.text("dedupe_key IS NOT NULL"),
    )
    op.create_table(
        "inbound_emails",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("dedupe_key", sa.Text(), nullable=True),
        sa.Column(
            "headers",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.Column("body", sa.LargeBinary(), nullable=False),
        sa.Column("body_size", sa.Integer(), nullable=False),
        sa.Column("body_truncated", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("verified", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("flag", sa.Text(), nullable=True),
        sa.Column("status", sa.Text(), server_default="received", nullable=False),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("processed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "received_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("sender", sa.Text(), nullable=True),
        sa.Column("subject", sa.Text(), nullable=True),
        sa.CheckConstraint(
            "status in ('received','flagged','processed','retry','failed','ignored')",
            name="ck_inbound_emails_status",
        ),
        sa.PrimaryKeyConstraint("id"),
        schema="raw",
    )
    op.create_index(
        "ix_inbound_emails_pending", "inbound_emails", ["status", "id"], unique=False, schema="raw"
    )
    op.create_index(
        "uq_inbound_emails_dedupe",
        "inbound_emails",
        ["source", "dedupe_key"],
        unique=True,
        schema="raw",
        postgresql_where=sa.text("dedupe_key IS NOT NULL"),
    )
    op.create_table(
        "platform_pulls",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("dedupe_key", sa.Text(), nullable=True),
        sa.Column(
            "headers",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.Column("body", sa.LargeBinary(), nullable=False),
        sa.Column("body_size", sa.Integer(), nullable=False),
        sa.Column("body_truncated", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("verified", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("flag", sa.Text(), nullable=True),
        sa.Column("status", sa.Text(), server_default="received", nullable=False),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("processed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "received_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("platform_event_id", sa.Text(), nullable=True),
        sa.Column("cursor_in", sa.Text(), nullable=True),
        sa.Column("cursor_out", sa.Text(), nullable=True),
        sa.Column("item_count", sa.Integer(), server_default="0", nullable=False),
        sa.CheckConstraint(
            "status in ('received','flagged','processed','retry','failed','ignored')",
            name="ck_platform_pulls_status",
        ),
        sa.PrimaryKeyConstraint("id"),
        schema="raw",
    )
    op.create_index(
        "ix_platform_pulls_pending", "platform_pulls", ["status", "id"], unique=False, schema="raw"
    )
    op.create_index(
        "uq_platform_pulls_dedupe",
        "platform_pulls",
        ["source", "dedupe_key"],
        unique=True,
        schema="raw",
        postgresql_where=sa.text("dedupe_key IS NOT NULL"),
    )
    op.create_table(
        "webhook_events",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("dedupe_key", sa.Text(), nullable=True),
        sa.Column(
            "headers",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.Column("body", sa.LargeBinary(), nullable=False),
        sa.Column("body_size", sa.Integer(), nullable=False),
        sa.Column("body_truncated", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("verified", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("flag", sa.Text(), nullable=True),
        sa.Column("status", sa.Text(), server_default="received", nullable=False),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("processed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "received_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("event_type", sa.Text(), nullable=True),
        sa.CheckConstraint(
            "status in ('received','flagged','processed','retry','failed','ignored')",
            name="ck_webhook_events_status",
        ),
        sa.PrimaryKeyConstraint("id"),
        schema="raw",
    )
    op.create_index(
        "ix_webhook_events_pending", "webhook_events", ["status", "id"], unique=False, schema="raw"
    )
    op.create_index(
        "uq_webhook_events_dedupe",
        "webhook_events",
        ["source", "dedupe_key"],
        unique=True,
        schema="raw",
        postgresql_where=sa.text("dedupe_key IS NOT NULL"),
    )
    op.create_table(
        "event_channels",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("event_id", sa.UUID(), nullable=False),
        sa.Column("platform", sa.Text(), nullable=False),
        sa.Column("allocation", sa.Integer(), nullable=True),
        sa.Column("platform_event_id", sa.Text(), nullable=True),
        sa.Column("url", sa.Text(), nullable=True),
        sa.Column("status", sa.Text(), server_default="pending", nullable=False),
        sa.Column("published_version", sa.Integer(), nullable=True),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("raw_response", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("synced_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "status in ('pending','publishing','published','failed','closed')",
            name="ck_event_channels_status",
        ),
        sa.CheckConstraint(
            "allocation is null or allocation >= 0", name="ck_event_channels_allocation"
        ),
        sa.ForeignKeyConstraint(["event_id"], ["app.events.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("event_id", "platform", name="uq_event_channels_event_platform"),
        sa.UniqueConstraint("platform", "platform_event_id", name="uq_event_channels_platform_id"),
        schema="app",
    )
    op.create_table(
        "registrations",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("event_id", sa.UUID(), nullable=False),
        sa.Column("platform", sa.Text(), nullable=False),
        sa.Column("platform_registration_id", sa.Text(), nullable=False),
        sa.Column("platform_event_id", sa.Text(), nullable=True),
        sa.Column("full_name", sa.Text(), nullable=True),
        sa.Column("email", sa.Text(), nullable=True),
        sa.Column("email_normalized", sa.Text(), nullable=True),
        sa.Column("phone", sa.Text(), nullable=True),
        sa.Column("phone_e164", sa.Text(), nullable=True),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("payment_status", sa.Text(), server_default="none", nullable=False),
        sa.Column("amount_minor", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("currency", sa.Text(), nullable=True),
        sa.Column("registered_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("platform_updated_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("raw", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "payment_status in ('none','unpaid','paid','refunded')", name="ck_registrations_payment"
        ),
        sa.CheckConstraint(
            "status in ('pending','approved','waitlist','declined','cancelled','attended','no_show')",
            name="ck_registrations_status",
        ),
        sa.ForeignKeyConstraint(["event_id"], ["app.events.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint(
            "platform", "platform_registration_id", name="uq_registrations_platform_id"
        ),
        schema="app",
    )
    op.create_index(
        "ix_registrations_email", "registrations", ["email_normalized"], unique=False, schema="app"
    )
    op.create_index(
        "ix_registrations_event", "registrations", ["event_id"], unique=False, schema="app"
    )
    op.create_index(
        "ix_registrations_phone", "registrations", ["phone_e164"], unique=False, schema="app"
    )
    op.create_table(
        "payments",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("provider", sa.Text(), nullable=False),
        sa.Column("provider_payment_id", sa.Text(), nullable=False),
        sa.Column("kind", sa.Text(), server_default="payment", nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.Text(), nullable=False),
        sa.Column("payer_email", sa.Text(), nullable=True),
        sa.Column("payer_email_normalized", sa.Text(), nullable=True),
        sa.Column("payer_name", sa.Text(), nullable=True),
        sa.Column("reference", sa.Text(), nullable=True),
        sa.Column("registration_id", sa.BigInteger(), nullable=True),
        sa.Column("event_id", sa.UUID(), nullable=True),
        sa.Column("source_table", sa.Text(), nullable=True),
        sa.Column("source_id", sa.BigInteger(), nullable=True),
        sa.Column("raw", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("paid_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(["event_id"], ["app.events.id"], ondelete="SET NULL"),
        sa.ForeignKeyConstraint(["registration_id"], ["app.registrations.id"], ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint(
            "provider", "provider_payment_id", "kind", name="uq_payments_provider_id"
        ),
        schema="app",
    )


def downgrade() -> None:
    op.drop_table("payments", schema="app")
    op.drop_index("ix_registrations_phone", table_name="registrations", schema="app")
    op.drop_index("ix_registrations_event", table_name="registrations", schema="app")
    op.drop_index("ix_registrations_email", table_name="registrations", schema="app")
    op.drop_table("registrations", schema="app")
    op.drop_table("event_channels", schema="app")
    op.drop_index(
        "uq_webhook_events_dedupe",
        table_name="webhook_events",
        schema="raw",
        postgresql_where=sa.text("dedupe_key IS NOT NULL"),
    )
    op.drop_index("ix_webhook_events_pending", table_name="webhook_events", schema="raw")
    op.drop_table("webhook_events", schema="raw")
    op.drop_index(
        "uq_platform_pulls_dedupe",
        table_name="platform_pulls",
        schema="raw",
        postgresql_where=sa.text("dedupe_key IS NOT NULL"),
    )
    op.drop_index("ix_platform_pulls_pending", table_name="platform_pulls", schema="raw")
    op.drop_table("platform_pulls", schema="raw")
    op.drop_index(
        "uq_inbound_emails_dedupe",
        table_name="inbound_emails",
        schema="raw",
        postgresql_where=sa.text("dedupe_key IS NOT NULL"),
    )
    op.drop_index("ix_inbound_emails_pending", table_name="inbound_emails", schema="raw")
    op.drop_table("inbound_emails", schema="raw")
    op.drop_index(
        "uq_checkout_requests_dedupe",
        table_name="checkout_requests",
        schema="raw",
        postgresql_where=sa.text("dedupe_key IS NOT NULL"),
    )
    op.drop_index("ix_checkout_requests_pending", table_name="checkout_requests", schema="raw")
    op.drop_table("checkout_requests", schema="raw")
    op.drop_table("sync_cursors", schema="app")
    op.drop_index("ix_outbox_due", table_name="outbox", schema="app")
    op.drop_table("outbox", schema="app")
    op.drop_table("integrations", schema="app")
    op.drop_table("events", schema="app")
    op.drop_index("ix_audit_entity", table_name="audit_log", schema="app")
    op.drop_table("audit_log", schema="app")
    op.execute("drop schema if exists app cascade")
    op.execute("drop schema if exists raw cascade")
