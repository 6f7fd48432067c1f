"""payment e-mails: classification, scores, attachments

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02 04:00:00

* ``app.payments``: ``match_score`` (0..1), ``match_reasons`` and ``match_candidates``
  (what the matcher weighed, shown to the person reviewing).
* ``app.inbound_email_classes``: what each inbound payment mail was (incoming transfer,
  statement), with its reasons (mails that are no payment keep theirs on the raw row).
* ``app.email_attachments``: attachments of inbound mail by checksum (the bytes live in
  ``hub.files``).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("payments", sa.Column("match_score", sa.Numeric(4, 2)), schema="app")
    op.add_column("payments", sa.Column("match_reasons", JSONB), schema="app")
    op.add_column("payments", sa.Column("match_candidates", JSONB), schema="app")
    op.create_table(
        "inbound_email_classes",
        sa.Column("raw_id", sa.BigInteger, primary_key=True),
        sa.Column("kind", sa.Text, nullable=False),
        sa.Column("direction", sa.Text, nullable=False),
        sa.Column("bank", sa.Text),
        sa.Column("subject", sa.Text),
        sa.Column("reasons", JSONB, nullable=False, server_default=sa.text("'[]'::jsonb")),
        sa.Column("payment_count", sa.Integer, nullable=False, server_default="0"),
        sa.Column("classified_at", sa.DateTime(timezone=True), server_default=sa.func.now()),
        schema="app",
    )
    op.create_index(
        "ix_inbound_email_classes_kind", "inbound_email_classes", ["kind"], schema="app"
    )
    op.create_table(
        "email_attachments",
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column("raw_id", sa.BigInteger, nullable=False),
        sa.Column("filename", sa.Text),
        sa.Column("content_type", sa.Text, nullable=False),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("sha256", sa.Text, nullable=False),
        sa.UniqueConstraint("raw_id", "sha256", name="uq_email_attachments_raw_sha"),
        schema="app",
    )


def downgrade() -> None:
    op.drop_table("email_attachments", schema="app")
    op.drop_index("ix_inbound_email_classes_kind", "inbound_email_classes", schema="app")
    op.drop_table("inbound_email_classes", schema="app")
    for column in ("match_candidates", "match_reasons", "match_score"):
        op.drop_column("payments", column, schema="app")
