"""hostile input at the receiver

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02 04:00:00

- ``raw.*.body_size`` becomes bigint: a declared Content-Length above 2^31 is kept (it
  overflowed the 32-bit column, so the oversize request answered 500 and was lost).
- ``app.vault_state``: the fingerprint of the key the vault encrypts with now; writers
  check it (FOR SHARE) before encrypting, a rotation moves it first (hub.vault).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

RAW_TABLES = ("webhook_events", "inbound_emails", "checkout_requests", "platform_pulls")


def upgrade() -> None:
    for table in RAW_TABLES:
        op.alter_column(
            table, "body_size", type_=sa.BigInteger(), existing_nullable=False, schema="raw"
        )
    op.create_table(
        "vault_state",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("primary_key_id", sa.Text(), nullable=False),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint("id = 1", name="ck_vault_state_single_row"),
        sa.PrimaryKeyConstraint("id"),
        schema="app",
    )


def downgrade() -> None:
    op.drop_table("vault_state", schema="app")
    for table in RAW_TABLES:
        # sizes above 2^31-1 cannot go back into integer: clamp them first
        op.execute(f"update raw.{table} set body_size = 2147483647 where body_size > 2147483647")
        op.alter_column(
            table, "body_size", type_=sa.Integer(), existing_nullable=False, schema="raw"
        )
