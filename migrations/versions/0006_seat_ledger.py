"""seat ledger, native orders, outbox wake-up

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02 10:00:00

* ``app.events``: ``native_theme`` (community | clean: the landing page's look),
  ``overbooking_policy`` (keep | waitlist: what happens to a platform registration that
  arrives when the room is full) and ``approval_required`` (a native registration waits
  for a person's yes).
* ``app.registrations``: ``consent_text`` / ``consent_at`` (the KVKK text the person
  ticked, and when), ``ref_code`` (the ``?ref=`` of the landing page) and ``order_no``.
* ``app.seat_holds``: the seat ledger, PostgreSQL's truth behind the Redis gate. One row
  per seat decision key (a checkout's idempotency key, or ``<platform>:<registration id>``
  for a seat sold on a platform): channel, pool it took the seat from (quota | shared,
  or none when it was overbooked), status held | confirmed | released | expired |
  overbooked, and the hold's expiry.
* ``app.orders``: a native checkout (order number, the idempotency key and a hash of the
  request it answered, the person, consent, Stripe Checkout Session, status, timeline).
* ``app.outbox``: ``event_id`` (the outbox per event in the UI) and a trigger that
  NOTIFYs ``hub_outbox`` when a row becomes due, so the relay wakes within a second.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB, UUID

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def _ts(name: str, nullable: bool = True, default: bool = False) -> sa.Column:
    return sa.Column(
        name,
        sa.DateTime(timezone=True),
        nullable=nullable,
        server_default=sa.func.now() if default else None,
    )


def upgrade() -> None:
    op.add_column(
        "events",
        sa.Column("native_theme", sa.Text, nullable=False, server_default="community"),
        schema="app",
    )
    op.add_column(
        "events",
        sa.Column("overbooking_policy", sa.Text, nullable=False, server_default="keep"),
        schema="app",
    )
    op.add_column(
        "events",
        sa.Column("approval_required", sa.Boolean, nullable=False, server_default=sa.false()),
        schema="app",
    )
    op.create_check_constraint(
        "ck_events_native_theme", "events", "native_theme in ('community','clean')", schema="app"
    )
    op.create_check_constraint(
        "ck_events_overbooking_policy",
        "events",
        "overbooking_policy in ('keep','waitlist')",
        schema="app",
    )

    op.add_column("registrations", sa.Column("consent_text", sa.Text), schema="app")
    op.add_column("registrations", _ts("consent_at"), schema="app")
    op.add_column("registrations", sa.Column("ref_code", sa.Text), schema="app")
    op.add_column("registrations", sa.Column("order_no", sa.Text), schema="app")

    op.create_table(
        "seat_holds",
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column(
            "event_id",
            UUID(as_uuid=True),
            sa.ForeignKey("app.events.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("hold_key", sa.Text, nullable=False),
        sa.Column("channel", sa.Text, nullable=False),
        sa.Column("pool", sa.Text, nullable=False),
        sa.Column("seats", sa.Integer, nullable=False, server_default="1"),
        sa.Column("status", sa.Text, nullable=False),
        _ts("expires_at"),
        sa.Column(
            "registration_id",
            sa.BigInteger,
            sa.ForeignKey("app.registrations.id", ondelete="SET NULL"),
        ),
        sa.Column("order_no", sa.Text),
        sa.Column("reason", sa.Text),
        _ts("created_at", nullable=False, default=True),
        _ts("updated_at", nullable=False, default=True),
        sa.UniqueConstraint("event_id", "hold_key", name="uq_seat_holds_key"),
        sa.CheckConstraint(
            "channel in ('native','meetup','eventbrite','luma')", name="ck_seat_holds_channel"
        ),
        sa.CheckConstraint("pool in ('quota','shared','none')", name="ck_seat_holds_pool"),
        sa.CheckConstraint("seats > 0", name="ck_seat_holds_seats"),
        sa.CheckConstraint(
            "status in ('held','confirmed','released','expired','overbooked')",
            name="ck_seat_holds_status",
        ),
        sa.CheckConstraint(
            "status <> 'held' or expires_at is not null",
            name="ck_seat_holds_expiry",
        ),
        schema="app",
    )
    op.create_index(
        "ix_seat_holds_event_status", "seat_holds", ["event_id", "status"], schema="app"
    )
    op.create_index(
        "ix_seat_holds_expiring",
        "seat_holds",
        ["expires_at"],
        schema="app",
        postgresql_where=sa.text("status = 'held'"),
    )

    op.create_table(
        "orders",
        sa.Column("order_no", sa.Text, primary_key=True),
        sa.Column(
            "event_id",
            UUID(as_uuid=True),
            sa.ForeignKey("app.events.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("idempotency_key", sa.Text, nullable=False),
        sa.Column("request_hash", sa.Text, nullable=False),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column(
            "hold_id", sa.BigInteger, sa.ForeignKey("app.seat_holds.id", ondelete="SET NULL")
        ),
        sa.Column(
            "registration_id",
            sa.BigInteger,
            sa.ForeignKey("app.registrations.id", ondelete="SET NULL"),
        ),
        sa.Column("full_name", sa.Text),
        sa.Column("email", sa.Text),
        sa.Column("email_normalized", sa.Text),
        sa.Column("phone_e164", sa.Text),
        sa.Column("locale", sa.Text),
        sa.Column("consent_text", sa.Text),
        _ts("consent_at"),
        sa.Column("ref_code", sa.Text),
        sa.Column("amount_minor", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("currency", sa.Text, nullable=False),
        sa.Column("stripe_session_id", sa.Text, unique=True),
        sa.Column("stripe_session_url", sa.Text),
        sa.Column("stripe_payment_intent", sa.Text),
        sa.Column("stripe_refund_id", sa.Text),
        _ts("hold_expires_at"),
        sa.Column("timeline", JSONB, nullable=False, server_default=sa.text("'[]'::jsonb")),
        _ts("created_at", nullable=False, default=True),
        _ts("updated_at", nullable=False, default=True),
        sa.UniqueConstraint("idempotency_key", name="uq_orders_idempotency_key"),
        sa.CheckConstraint(
            "status in ('held','awaiting_payment','paid','confirmed','expired','failed',"
            "'refunded','cancelled')",
            name="ck_orders_status",
        ),
        schema="app",
    )
    op.create_index("ix_orders_event", "orders", ["event_id", "status"], schema="app")
    op.create_index("ix_orders_email", "orders", ["email_normalized"], schema="app")

    op.add_column("outbox", sa.Column("event_id", UUID(as_uuid=True)), schema="app")
    op.create_index("ix_outbox_event", "outbox", ["event_id", "status"], schema="app")
    op.execute(
        """
        create function app.outbox_notify() returns trigger language plpgsql as $$
        begin
          if new.status = 'pending' then
            perform pg_notify('hub_outbox', new.id::text);
          end if;
          return null;
        end $$;
        create trigger outbox_notify after insert or update of status, next_attempt_at, payload
          on app.outbox for each row execute function app.outbox_notify();
        """
    )


def downgrade() -> None:
    op.execute("drop trigger if exists outbox_notify on app.outbox")
    op.execute("drop function if exists app.outbox_notify()")
    op.drop_index("ix_outbox_event", table_name="outbox", schema="app")
    op.drop_column("outbox", "event_id", schema="app")
    op.drop_table("orders", schema="app")
    op.drop_table("seat_holds", schema="app")
    for column in ("order_no", "ref_code", "consent_at", "consent_text"):
        op.drop_column("registrations", column, schema="app")
    op.drop_constraint("ck_events_overbooking_policy", "events", schema="app")
    op.drop_constraint("ck_events_native_theme", "events", schema="app")
    for column in ("approval_required", "overbooking_policy", "native_theme"):
        op.drop_column("events", column, schema="app")
