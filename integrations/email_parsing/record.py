"""One inbound e-mail row -> its classification, its attachments, its payments, matched.

Called by the ingest handler (integrations.ingest_handlers) inside the row's savepoint.
Every mail is classified; a payment mail's class is a row of
``app.inbound_email_classes`` and its attachments' checksums rows of
``app.email_attachments``. A mail that is no payment (outgoing notice, marketing ...)
is answered ``Ignore`` by the handler, so the ingest rolls its writes back and its kind
and reasons stay on the raw row (``last_error = NOT_PAYMENT:<kind>: ...``);
:func:`list_classified` lists both. Each
incoming payment is recorded under its *transfer key* (the bank's transaction number
when the mail has one, else payer + amount + date + ref), so the same transfer forwarded
again under another Message-ID, or in another format, is one payment.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.engine import Connection

from hub.db import email_attachments, inbound_email_classes
from hub.payments import MatchResult, PaymentIn, match_payment, record_payment
from integrations.email_parsing.analyze import MailAnalysis, analyze_email
from integrations.email_parsing.decode import FileReader, InboundEmail, decode_inbound


@dataclass
class MailOutcome:
    message: InboundEmail
    analysis: MailAnalysis
    payments: list[tuple[int, bool, MatchResult]] = field(default_factory=list)


def record_inbound_email(
    conn: Connection,
    *,
    raw_id: int,
    body: bytes,
    headers: Any,
    source: str,
    received_at: datetime | None,
    actor: str,
    files: FileReader | None = None,
    holders: Sequence[str] = (),
    table: str = "inbound_emails",
) -> MailOutcome:
    message = decode_inbound(body, headers, source=source, files=files)
    analysis = analyze_email(message, holders=holders)
    outcome = MailOutcome(message, analysis)
    conn.execute(
        pg_insert(inbound_email_classes)
        .values(
            raw_id=raw_id,
            kind=analysis.kind,
            direction=analysis.direction,
            bank=analysis.bank,
            subject=(message.subject or "")[:300],
            reasons=analysis.reasons,
            payment_count=len(analysis.payments),
        )
        .on_conflict_do_update(
            index_elements=["raw_id"],
            set_={"kind": analysis.kind, "reasons": analysis.reasons},
        )
    )
    for attachment in _all_attachments(message):
        conn.execute(
            pg_insert(email_attachments)
            .values(
                raw_id=raw_id,
                filename=attachment.filename,
                content_type=attachment.content_type,
                size=attachment.size,
                sha256=attachment.sha256,
            )
            .on_conflict_do_nothing()
        )
    if not analysis.is_payment:
        return outcome  # the handler answers Ignore(NOT_PAYMENT ...) with not_payment_reason()
    for parsed in analysis.payments:
        payment = PaymentIn(
            provider="email",
            provider_payment_id=parsed.transfer_key,
            amount_minor=parsed.amount_minor,
            currency=parsed.currency,
            payer_name=parsed.payer_name,
            reference=parsed.reference,
            paid_at=parsed.paid_at or message.date or received_at,
            source_table=f"raw.{table}",
            source_id=raw_id,
            raw={
                "parsed": parsed.model_dump(mode="json"),
                "kind": analysis.kind,
                "subject": message.subject,
                "sender": message.sender,
                "message_id": message.message_id,
            },
        )
        payment_id, created = record_payment(conn, payment)
        if not created:
            _note_copy(conn, payment_id, raw_id)
        outcome.payments.append((payment_id, created, match_payment(conn, payment_id, actor=actor)))
    return outcome


def _note_copy(conn: Connection, payment_id: int, raw_id: int) -> None:
    """A forwarded copy of a transfer already recorded: audited, not a second payment."""
    conn.execute(
        text(
            "insert into app.audit_log (entity, entity_id, action, actor, reason, data)"
            " values ('payment', :id, 'copy_received', 'ingest:email', :reason,"
            " cast(:data as jsonb))"
        ),
        {
            "id": str(payment_id),
            "reason": f"raw.inbound_emails#{raw_id}",
            "data": json.dumps({"raw_id": raw_id}),
        },
    )


def _all_attachments(message: InboundEmail):
    yield from message.attachments
    for inner in message.forwarded:
        yield from _all_attachments(inner)


NOT_PAYMENT = "NOT_PAYMENT"


def not_payment_reason(analysis: MailAnalysis) -> str:
    """``NOT_PAYMENT:<kind>: <reasons>``, the raw row's ``last_error`` when it is ignored
    (the ingest rolls an ignored row's writes back, so the kind lives on the raw row)."""
    return f"{NOT_PAYMENT}:{analysis.kind}: " + "; ".join(analysis.reasons)


def list_classified(
    conn: Connection, *, kind: str | None = None, limit: int = 200
) -> list[dict[str, Any]]:
    """Every inbound mail the ingest has read, newest first, with what it was: payment
    mails from ``app.inbound_email_classes``, ignored ones from their raw row's code."""
    rows = conn.execute(
        text(
            "select r.id, r.source, r.subject, r.status, r.last_error, c.kind, c.reasons,"
            " c.payment_count from raw.inbound_emails r"
            " left join app.inbound_email_classes c on c.raw_id = r.id"
            " where r.status in ('processed', 'ignored') order by r.id desc limit :limit"
        ),
        {"limit": limit},
    ).all()
    out = []
    for row in rows:
        found_kind, reasons = row.kind, list(row.reasons or [])
        if found_kind is None and (row.last_error or "").startswith(NOT_PAYMENT + ":"):
            _, found_kind, rest = row.last_error.split(":", 2)
            reasons = [r.strip() for r in rest.split(";") if r.strip()]
        if found_kind is None or (kind and found_kind != kind):
            continue
        out.append(
            {
                "raw_id": row.id,
                "source": row.source,
                "subject": row.subject,
                "status": row.status,
                "kind": found_kind,
                "reasons": reasons,
                "payments": row.payment_count or 0,
            }
        )
    return out
