"""exactly once under faults: publish leases

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-02 04:00:00

A publish of one (event, platform) holds a lease on its ``app.event_channels`` row:
``lease_owner`` (who: a Dagster run, a CLI process) until ``lease_expires_at``, renewed
while the platform call runs. A second runner cannot take a live lease; a dead runner's
lease runs out and the channel is picked up again. ``next_attempt_at`` is when a failed
publish may be tried again (the back-off the sensor reads).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("event_channels", sa.Column("lease_owner", sa.Text()), schema="app")
    op.add_column(
        "event_channels",
        sa.Column("lease_expires_at", sa.DateTime(timezone=True)),
        schema="app",
    )
    op.add_column(
        "event_channels",
        sa.Column("next_attempt_at", sa.DateTime(timezone=True)),
        schema="app",
    )
    op.create_check_constraint(
        "ck_event_channels_lease",
        "event_channels",
        "(lease_owner is null) = (lease_expires_at is null)",
        schema="app",
    )


def downgrade() -> None:
    op.drop_constraint("ck_event_channels_lease", "event_channels", schema="app")
    op.drop_column("event_channels", "next_attempt_at", schema="app")
    op.drop_column("event_channels", "lease_expires_at", schema="app")
    op.drop_column("event_channels", "lease_owner", schema="app")
