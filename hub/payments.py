"""Payments: idempotent recording and matching to registrations.

A payment row is keyed by (provider, provider_payment_id, kind); recording the same
provider payment twice (a redelivered webhook, ``checkout.session.completed`` and
``payment_intent.succeeded`` for one PaymentIntent) gives one row, later copies only
filling fields the first one lacked.

Matching, most confident first:

1. a ref code: ``REG-<registration id>`` anywhere in the reference, or a reference equal
   to a registration's platform id (an order reference in Stripe metadata or
   ``client_reference_id``);
2. the payer's normalized e-mail + amount (+ event when known), if exactly one open
   registration fits;
3. the payer's name (Turkish-aware ASCII key, word order ignored) + amount within the
   event: only ever a *suggestion*.

Only 1 and 2 are confident: they set the payment ``paid``, the registration's
``payment_status`` to ``paid``, and audit. Everything else leaves the payment
``unmatched`` with its candidates in the audit row, for a person to decide.

Payment ``status`` values: ``received`` (not yet matched), ``paid`` (matched),
``unmatched`` (needs a person), ``refunded`` (a refund row that was applied, or a
payment fully refunded).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, field_validator
from sqlalchemy import case, func, literal_column, text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.engine import Connection, Row

from hub.db import audit_log, payments
from hub.members import name_key, normalize_email

REF_PATTERN = re.compile(r"\bREG[-\s_]?0*(\d{1,18})\b", re.IGNORECASE)
OPEN_FILTER = (
    "r.status not in ('cancelled', 'declined') and r.payment_status not in ('paid', 'refunded')"
)


class PaymentIn(BaseModel):
    """One payment (or refund) as a provider or a parsed e-mail reports it."""

    model_config = ConfigDict(str_strip_whitespace=True)

    provider: str = Field(min_length=1)  # stripe | email | ...
    provider_payment_id: str = Field(min_length=1)
    kind: Literal["payment", "refund"] = "payment"
    amount_minor: int = Field(ge=0)
    currency: str = "TRY"
    payer_email: str | None = None
    payer_name: str | None = None
    reference: str | None = None
    event_id: UUID | None = None
    paid_at: datetime | None = None
    source_table: str | None = None
    source_id: int | None = None
    raw: dict[str, Any] | None = None

    @field_validator("currency")
    @classmethod
    def _upper(cls, value: str) -> str:
        return value.upper()


@dataclass(frozen=True)
class MatchResult:
    payment_id: int
    status: str  # matched | unmatched | already_matched
    registration_id: int | None = None
    method: str | None = None  # ref | email_amount | name_amount
    candidates: tuple[int, ...] = field(default_factory=tuple)
    reason: str | None = None

    @property
    def matched(self) -> bool:
        return self.status in ("matched", "already_matched")


class PaymentNotFound(LookupError):
    pass


# --------------------------------------------------------------------------- recording


def record_payment(conn: Connection, payment: PaymentIn) -> tuple[int, bool]:
    """Store a payment once; returns (payment id, created).

    A repeat fills only what the stored row lacks (reference, payer, event, paid_at); a
    refund's amount grows to the latest cumulative ``amount_refunded``.
    """
    values = payment.model_dump(exclude={"raw"})
    values["raw"] = payment.raw
    values["payer_email_normalized"] = normalize_email(payment.payer_email)
    values["status"] = "received"
    stmt = pg_insert(payments).values(**values)
    p, ex = payments.c, stmt.excluded
    stmt = stmt.on_conflict_do_update(
        constraint="uq_payments_provider_id",
        set_={
            "reference": func.coalesce(p.reference, ex.reference),
            "payer_email": func.coalesce(p.payer_email, ex.payer_email),
            "payer_email_normalized": func.coalesce(
                p.payer_email_normalized, ex.payer_email_normalized
            ),
            "payer_name": func.coalesce(p.payer_name, ex.payer_name),
            "event_id": func.coalesce(p.event_id, ex.event_id),
            "paid_at": func.coalesce(p.paid_at, ex.paid_at),
            # a refund's amount is Stripe's cumulative amount_refunded
            "amount_minor": case(
                (p.kind == "refund", func.greatest(p.amount_minor, ex.amount_minor)),
                else_=p.amount_minor,
            ),
        },
    ).returning(p.id, literal_column("(xmax = 0)").label("created"))
    row = conn.execute(stmt).one()
    if row.created:
        conn.execute(
            audit_log.insert(),
            {
                "entity": "payment",
                "entity_id": str(row.id),
                "action": "recorded",
                "actor": f"provider:{payment.provider}",
                "reason": None,
                "data": {
                    "kind": payment.kind,
                    "amount_minor": payment.amount_minor,
                    "currency": payment.currency,
                    "provider_payment_id": payment.provider_payment_id,
                },
            },
        )
    return row.id, bool(row.created)


# --------------------------------------------------------------------------- matching


def refs_in(reference: str | None) -> tuple[list[int], str | None]:
    """Registration ids quoted as REG-<id> in ``reference``, and the bare reference."""
    if not reference:
        return [], None
    ids = list(dict.fromkeys(int(m.group(1)) for m in REF_PATTERN.finditer(reference)))
    return ids, reference.strip() or None


def match_payment(conn: Connection, payment_id: int, *, actor: str) -> MatchResult:
    """Match a recorded payment (or refund) to a registration; idempotent.

    Safe to call again: a matched payment returns ``already_matched`` without new audit
    rows; an unmatched one is tried again (its registration may have arrived since).
    """
    pay = conn.execute(
        text("select * from app.payments where id = :id for update"), {"id": payment_id}
    ).first()
    if pay is None:
        raise PaymentNotFound(f"payment {payment_id} does not exist")
    if pay.kind == "refund":
        return _match_refund(conn, pay, actor)
    if pay.registration_id is not None and pay.status in ("paid", "refunded"):
        return MatchResult(pay.id, "already_matched", pay.registration_id, None)

    # 1. ref code
    reg_ids, bare = refs_in(pay.reference)
    ref_regs = _registrations_by_ref(conn, reg_ids, bare, pay.event_id)
    if len(ref_regs) == 1:
        reg = ref_regs[0]
        problem = _ref_problem(pay, reg)
        if problem is None:
            return _confirm(conn, pay, reg, "ref", actor)
        return _leave_unmatched(conn, pay, actor, "ref", [reg.id], problem)
    if len(ref_regs) > 1:
        return _leave_unmatched(
            conn, pay, actor, "ref", [r.id for r in ref_regs], "reference fits several"
        )

    # 2. e-mail + amount
    if pay.payer_email_normalized:
        regs = _open_with_amount(
            conn, pay, "r.email_normalized = :email", email=pay.payer_email_normalized
        )
        if len(regs) == 1:
            return _confirm(conn, pay, regs[0], "email_amount", actor)
        if len(regs) > 1:
            return _leave_unmatched(
                conn,
                pay,
                actor,
                "email_amount",
                [r.id for r in regs],
                "several open registrations with this e-mail and amount",
            )

    # 3. name + amount (a suggestion only)
    key = name_key(pay.payer_name, sort_tokens=True)
    if key:
        regs = [
            r
            for r in _open_with_amount(conn, pay, "r.full_name is not null")
            if name_key(r.full_name, sort_tokens=True) == key
        ]
        if regs:
            reason = (
                "payer name and amount fit one registration: confirm by hand"
                if len(regs) == 1
                else "payer name and amount fit several registrations"
            )
            return _leave_unmatched(conn, pay, actor, "name_amount", [r.id for r in regs], reason)
    return _leave_unmatched(conn, pay, actor, None, [], "no registration fits")


def _registrations_by_ref(
    conn: Connection, reg_ids: list[int], bare: str | None, event_id: UUID | None
) -> list[Row]:
    base = (
        "select r.id, r.event_id, r.status, r.payment_status, r.amount_minor, r.currency,"
        " e.price_minor, e.currency as event_currency"
        " from app.registrations r join app.events e on e.id = r.event_id where "
    )
    event_clause = " and r.event_id = :event_id" if event_id else ""
    if reg_ids:
        rows = conn.execute(
            text(base + "r.id = any(cast(:ids as bigint[]))" + event_clause + " order by r.id"),
            {"ids": reg_ids, "event_id": event_id},
        ).all()
        if rows:
            return rows
    if bare:
        return conn.execute(
            text(base + "r.platform_registration_id = :ref" + event_clause + " order by r.id"),
            {"ref": bare, "event_id": event_id},
        ).all()
    return []


def _expected(reg: Row) -> tuple[int, str | None]:
    amount = reg.amount_minor or reg.price_minor or 0
    currency = reg.currency if reg.amount_minor else reg.event_currency
    return amount, currency


def _ref_problem(pay: Row, reg: Row) -> str | None:
    if reg.status in ("cancelled", "declined"):
        return f"reference names a {reg.status} registration"
    if reg.payment_status in ("paid", "refunded"):
        return f"registration is already {reg.payment_status}"
    amount, currency = _expected(reg)
    if currency and currency.upper() != pay.currency:
        return f"currency {pay.currency} differs from the expected {currency}"
    if amount and pay.amount_minor < amount:
        return f"amount {pay.amount_minor} is below the expected {amount}"
    return None


def _open_with_amount(conn: Connection, pay: Row, clause: str, **params: Any) -> list[Row]:
    sql = f"""
        select r.id, r.event_id, r.full_name, r.status, r.payment_status, r.amount_minor,
               r.currency, e.price_minor, e.currency as event_currency
        from app.registrations r join app.events e on e.id = r.event_id
        where {clause} and {OPEN_FILTER}
          and coalesce(nullif(r.amount_minor, 0), e.price_minor) = :amount
          and upper(case when r.amount_minor > 0 then coalesce(r.currency, e.currency)
                         else e.currency end) = :currency
          {"and r.event_id = :event_id" if pay.event_id else ""}
        order by r.id
        limit 200
    """
    return conn.execute(
        text(sql),
        {"amount": pay.amount_minor, "currency": pay.currency, "event_id": pay.event_id, **params},
    ).all()


def _audit(entity: str, entity_id: int, action: str, actor: str, data: dict, reason=None):
    return {
        "entity": entity,
        "entity_id": str(entity_id),
        "action": action,
        "actor": actor,
        "reason": reason,
        "data": data,
    }


def _set_registration_payment(
    conn: Connection, registration_id: int, to: str, actor: str, data: dict[str, Any]
) -> bool:
    old = conn.execute(
        text("select payment_status from app.registrations where id = :id for update"),
        {"id": registration_id},
    ).scalar_one()
    if old == to:
        return False
    conn.execute(
        text(
            "update app.registrations set payment_status = :to, updated_at = now() where id = :id"
        ),
        {"to": to, "id": registration_id},
    )
    conn.execute(
        audit_log.insert(),
        _audit(
            "registration",
            registration_id,
            "payment_status_changed",
            actor,
            {"from": old, "to": to, **data},
        ),
    )
    return True


def _confirm(conn: Connection, pay: Row, reg: Row, method: str, actor: str) -> MatchResult:
    conn.execute(
        text(
            "update app.payments set status = 'paid', registration_id = :reg, "
            "event_id = coalesce(event_id, :event) where id = :id"
        ),
        {"reg": reg.id, "event": reg.event_id, "id": pay.id},
    )
    conn.execute(
        audit_log.insert(),
        _audit("payment", pay.id, "matched", actor, {"registration_id": reg.id, "method": method}),
    )
    _set_registration_payment(conn, reg.id, "paid", actor, {"payment_id": pay.id, "method": method})
    # A refund that arrived before its payment can be applied now.
    pending_refunds = conn.execute(
        text(
            "select id from app.payments where provider = :provider "
            "and provider_payment_id = :ppid and kind = 'refund' and registration_id is null"
        ),
        {"provider": pay.provider, "ppid": pay.provider_payment_id},
    ).scalars()
    for refund_id in list(pending_refunds):
        match_payment(conn, refund_id, actor=actor)
    return MatchResult(pay.id, "matched", reg.id, method)


def _leave_unmatched(
    conn: Connection,
    pay: Row,
    actor: str,
    method: str | None,
    candidates: list[int],
    reason: str,
) -> MatchResult:
    if pay.status != "unmatched":
        conn.execute(
            text("update app.payments set status = 'unmatched' where id = :id"), {"id": pay.id}
        )
        conn.execute(
            audit_log.insert(),
            _audit(
                "payment",
                pay.id,
                "unmatched",
                actor,
                {"method": method, "candidates": candidates},
                reason,
            ),
        )
    return MatchResult(pay.id, "unmatched", None, method, tuple(candidates), reason)


def _match_refund(conn: Connection, refund: Row, actor: str) -> MatchResult:
    original = conn.execute(
        text(
            "select id, registration_id, amount_minor from app.payments "
            "where provider = :provider and provider_payment_id = :ppid and kind = 'payment' "
            "for update"
        ),
        {"provider": refund.provider, "ppid": refund.provider_payment_id},
    ).first()
    registration_id = original.registration_id if original else None
    method = "ref"
    if registration_id is None:
        reg_ids, bare = refs_in(refund.reference)
        regs = _registrations_by_ref(conn, reg_ids, bare, refund.event_id)
        if len(regs) == 1:
            registration_id = regs[0].id
    if registration_id is None:
        return _leave_unmatched(
            conn, refund, actor, None, [], "refund of a payment not matched (yet)"
        )
    paid_amount = original.amount_minor if original else None
    full = paid_amount is None or refund.amount_minor >= paid_amount
    already = refund.registration_id == registration_id and refund.status == "refunded"
    if not already:
        conn.execute(
            text(
                "update app.payments set status = 'refunded', registration_id = :reg where id = :id"
            ),
            {"reg": registration_id, "id": refund.id},
        )
        conn.execute(
            audit_log.insert(),
            _audit(
                "payment",
                refund.id,
                "refund_matched",
                actor,
                {"registration_id": registration_id, "amount_minor": refund.amount_minor},
            ),
        )
    changed = False
    if full:
        if original is not None:
            conn.execute(
                text("update app.payments set status = 'refunded' where id = :id"),
                {"id": original.id},
            )
        changed = _set_registration_payment(
            conn, registration_id, "refunded", actor, {"payment_id": refund.id, "method": "refund"}
        )
    status = "already_matched" if already and not changed else "matched"
    reason = None if full else "partial refund: registration stays paid"
    return MatchResult(refund.id, status, registration_id, method, (), reason)
