"""The one audited path: every state change writes who, what, when and why (pretix-style)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import insert
from sqlalchemy.engine import Connection

from hub.db import audit_log


def record(
    conn: Connection,
    *,
    entity: str,
    entity_id: object,
    action: str,
    actor: str,
    reason: str | None = None,
    data: dict[str, Any] | None = None,
) -> None:
    conn.execute(
        insert(audit_log).values(
            entity=entity,
            entity_id=str(entity_id),
            action=action,
            actor=actor,
            reason=reason,
            data=data,
        )
    )
