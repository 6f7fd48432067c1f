"""hostile input at the receiver

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02 04:00:00

Reserved for its issue; filled in by the work that needs it (no schema change yet).
"""

from __future__ import annotations

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
