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

import json
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
    if len(ref_regs) == 1 and pay.provider in AGREEMENT_PROVIDERS:
        return _weigh_ref(conn, pay, ref_regs[0], reg_ids, actor)
    if len(ref_regs) == 1:
        reg = ref_regs[0]
        problem = _ref_problem(pay, reg)
        if problem is None:
            return _confirm(conn, pay, reg, "ref", actor)
        return _leave_unmatched(conn, pay, actor, "ref", [reg.id], problem)
    if not ref_regs and reg_ids and pay.provider in AGREEMENT_PROVIDERS:
        near = _near_ref_registrations(conn, pay, reg_ids, exclude=set())
        if near:
            quoted = ", ".join(f"REG-{i}" for i in reg_ids)
            return _leave_unmatched(
                conn,
                pay,
                actor,
                "near_ref",
                [r.id for r in near],
                f"{quoted} names no registration; one edit away from "
                + ", ".join(f"REG-{r.id}" for r in near),
                score=0.3,
                reasons=[
                    f"{quoted} names no registration",
                    "a registration's ref is one edit away",
                ],
            )
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


# --------------------------------------------------------------------------- agreement

# Payments whose ref was typed by a person (bank transfer descriptions): a ref match
# alone is not enough. Stripe refs are set by our own checkout and are trusted as before.
AGREEMENT_PROVIDERS = ("email",)
CONFIRM_SCORE = 0.7


def name_agreement(payer: str | None, registered: str | None) -> str:
    """``agree`` / ``partial`` / ``contradict`` / ``absent`` between two names.

    Turkish-aware keys, word order ignored, an initial ("A.") fits its word. ``partial``
    (e.g. the same surname: a parent paying) does not contradict."""
    a = (name_key(payer) or "").split()
    b = (name_key(registered) or "").split()
    if not a or not b:
        return "absent"

    def fits(token: str, others: list[str]) -> bool:
        return any(
            token == o
            or (len(token) == 1 and o.startswith(token))
            or (len(o) == 1 and token.startswith(o))
            for o in others
        )

    shorter, longer = (a, b) if len(a) <= len(b) else (b, a)
    hits = sum(fits(t, longer) for t in shorter)
    whole = sum(t in longer for t in shorter)  # an initial fits, but only partly
    if whole == len(shorter) and (len(shorter) >= 2 or len(shorter) == len(longer)):
        return "agree"
    return "partial" if hits else "contradict"


def _one_edit_away(number: str) -> set[str]:
    """Digit strings one substitution, insertion, deletion or transposition away."""
    out: set[str] = set()
    digits = "0123456789"
    for i in range(len(number) + 1):
        for d in digits:
            out.add(number[:i] + d + number[i:])
    for i in range(len(number)):
        out.add(number[:i] + number[i + 1 :])
        for d in digits:
            out.add(number[:i] + d + number[i + 1 :])
        if i + 1 < len(number):
            out.add(number[:i] + number[i + 1] + number[i] + number[i + 2 :])
    out.discard(number)
    return {n for n in out if n and not n.startswith("0")}


def _near_ref_registrations(
    conn: Connection, pay: Row, reg_ids: list[int], *, exclude: set[int]
) -> list[Row]:
    """Open registrations whose REG ref is one edit from a quoted one, amount fitting."""
    near = {int(n) for i in reg_ids for n in _one_edit_away(str(i)) if len(n) <= 18}
    near -= set(reg_ids) | exclude
    if not near:
        return []
    rows = _open_with_amount(conn, pay, "r.id = any(cast(:near as bigint[]))", near=sorted(near))
    return list(rows)


def _weigh_ref(conn: Connection, pay: Row, reg: Row, reg_ids: list[int], actor: str) -> MatchResult:
    """A ref match is confirmed only when the amount fits, the payer's name does not
    contradict the registration's and no other registration could be meant."""
    reasons = [f"ref names registration {reg.id}"]
    score = 0.45
    blockers: list[str] = []
    candidates = [reg.id]
    problem = _ref_problem(pay, reg)
    if problem:
        blockers.append(problem)
    else:
        score += 0.25
        reasons.append("amount and currency fit")
    agreement = name_agreement(pay.payer_name, reg.full_name)
    near = _near_ref_registrations(conn, pay, reg_ids, exclude={reg.id})
    if agreement == "agree":
        score += 0.3
        reasons.append("payer name agrees with the registration")
    elif agreement == "partial":
        score += 0.1
        reasons.append("payer name partly agrees (same surname or first name)")
        # A shared first name is a coincidence when someone else fits the name fully.
        fitting = [
            r.id
            for r in _open_with_amount(
                conn,
                pay,
                "r.full_name is not null and r.id <> :rid and r.event_id = :ev",
                rid=reg.id,
                ev=reg.event_id,
            )
            if name_agreement(pay.payer_name, r.full_name) == "agree"
        ]
        if fitting:
            score -= 0.3
            blockers.append(
                f"payer name {pay.payer_name!r} fits another registration fully: "
                + ", ".join(f"REG-{i}" for i in fitting[:5])
            )
            candidates += fitting[:5]
    elif agreement == "contradict":
        score -= 0.5
        blockers.append(f"payer name {pay.payer_name!r} contradicts the registration's")
        fitting = [  # who the payer may be, in the event the ref points at
            r.id
            for r in _open_with_amount(
                conn, pay, "r.full_name is not null and r.event_id = :ev", ev=reg.event_id
            )
            if name_agreement(pay.payer_name, r.full_name) == "agree"
        ]
        candidates += [i for i in fitting if i not in candidates][:5]
    else:
        reasons.append("no payer name to check")
    if near and agreement != "agree":
        named = [r.id for r in near if name_agreement(pay.payer_name, r.full_name) == "agree"]
        if named or agreement == "absent":
            blockers.append(
                "another registration's ref is one edit away: "
                + ", ".join(f"REG-{i}" for i in (named or [r.id for r in near][:5]))
            )
            candidates += [i for i in (named or [r.id for r in near][:5]) if i not in candidates]
            score -= 0.3
    raw = pay.raw if isinstance(pay.raw, dict) else {}
    if (raw.get("parsed") or {}).get("disputed"):
        blockers.append("the mail's text and HTML parts disagree about the amount")
        score -= 0.3
    score = round(min(max(score, 0.0), 1.0), 2)
    if not blockers and score >= CONFIRM_SCORE:
        return _confirm(conn, pay, reg, "ref", actor, score=score, reasons=reasons)
    return _leave_unmatched(
        conn,
        pay,
        actor,
        "ref",
        candidates,
        "; ".join(blockers) or "score below the confirmation threshold",
        score=score,
        reasons=reasons + blockers,
    )


def _store_decision(
    conn: Connection,
    payment_id: int,
    score: float | None,
    reasons: list[str],
    candidates: list[int],
) -> None:
    conn.execute(
        text(
            "update app.payments set match_score = :score, match_reasons = cast(:reasons as jsonb),"
            " match_candidates = cast(:candidates as jsonb) where id = :id"
        ),
        {
            "score": score,
            "reasons": json.dumps(reasons, ensure_ascii=False),
            "candidates": json.dumps(candidates),
            "id": payment_id,
        },
    )


def review_queue(conn: Connection, *, limit: int = 100) -> list[dict[str, Any]]:
    """Payments waiting for a person, with the score, the reasons and each candidate."""
    rows = conn.execute(
        text(
            "select id, provider, amount_minor, currency, payer_name, reference, match_score,"
            " match_reasons, match_candidates, paid_at from app.payments"
            " where status = 'unmatched' and kind = 'payment' order by id limit :limit"
        ),
        {"limit": limit},
    ).all()
    out = []
    for row in rows:
        ids = [int(i) for i in (row.match_candidates or [])]
        regs = conn.execute(
            text(
                "select r.id, r.full_name, r.payment_status,"
                " coalesce(nullif(r.amount_minor, 0), e.price_minor) as expected_minor"
                " from app.registrations r join app.events e on e.id = r.event_id"
                " where r.id = any(cast(:ids as bigint[])) order by r.id"
            ),
            {"ids": ids},
        ).all()
        by_id = {r.id: r for r in regs}
        out.append(
            {
                "payment_id": row.id,
                "provider": row.provider,
                "amount_minor": row.amount_minor,
                "currency": row.currency,
                "payer_name": row.payer_name,
                "reference": row.reference,
                "score": float(row.match_score) if row.match_score is not None else None,
                "reasons": list(row.match_reasons or []),
                "candidates": [
                    {
                        "registration_id": i,
                        "ref": f"REG-{i}",
                        "name": by_id[i].full_name,
                        "expected_minor": by_id[i].expected_minor,
                        "payment_status": by_id[i].payment_status,
                    }
                    for i in ids
                    if i in by_id
                ],
            }
        )
    return out


def _registrations_by_ref(
    conn: Connection, reg_ids: list[int], bare: str | None, event_id: UUID | None
) -> list[Row]:
    base = (
        "select r.id, r.event_id, r.status, r.payment_status, r.amount_minor, r.currency,"
        " r.full_name, e.price_minor, e.currency as event_currency"
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


def _confirm(
    conn: Connection,
    pay: Row,
    reg: Row,
    method: str,
    actor: str,
    *,
    score: float | None = None,
    reasons: list[str] | None = None,
) -> MatchResult:
    _store_decision(conn, pay.id, score, reasons or [f"matched by {method}"], [reg.id])
    conn.execute(
        text(
            "update app.payments set status = 'paid', registration_id = :reg, "
            "event_id = coalesce(event_id, :event) where id = :id"
        ),
        {"reg": reg.id, "event": reg.event_id, "id": pay.id},
    )
    conn.execute(
        audit_log.insert(),
        _audit(
            "payment",
            pay.id,
            "matched",
            actor,
            {"registration_id": reg.id, "method": method, "score": score, "reasons": reasons},
        ),
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
    *,
    score: float | None = None,
    reasons: list[str] | None = None,
) -> MatchResult:
    _store_decision(conn, pay.id, score, reasons or [reason], candidates)
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
                {"method": method, "candidates": candidates, "score": score},
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
