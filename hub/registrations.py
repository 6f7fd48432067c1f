"""Registrations: idempotent upsert of what platforms report, and the status machine.

Two paths change a registration's status, and both audit:

* ``upsert_registrations`` applies what a platform says about its own registrations
  (webhooks, pulls). The platform is the truth for those, so its status is taken even
  when the move is not in ``ALLOWED_TRANSITIONS``; such moves are audited with
  ``"irregular": true`` so a person can look. Order matters: a row whose
  ``platform_updated_at`` is older than the stored one is skipped (webhooks arrive out
  of order), and a payment status the hub derived (``paid``/``refunded``) is not
  downgraded to ``none``/``unpaid`` by a platform that does not know about it.
* ``transition`` is the hub's own move (admin approves, check-in, payment matched) and
  refuses anything not in ``ALLOWED_TRANSITIONS``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from sqlalchemy import text
from sqlalchemy.engine import Connection

from hub.db import audit_log
from hub.members import normalize_email, normalize_phone
from hub.models import Platform, PlatformRegistration, RegistrationStatus

S = RegistrationStatus

ALLOWED_TRANSITIONS: dict[RegistrationStatus, frozenset[RegistrationStatus]] = {
    S.PENDING: frozenset({S.APPROVED, S.WAITLIST, S.DECLINED, S.CANCELLED}),
    S.WAITLIST: frozenset({S.PENDING, S.APPROVED, S.DECLINED, S.CANCELLED}),
    S.APPROVED: frozenset({S.CANCELLED, S.ATTENDED, S.NO_SHOW}),
    S.DECLINED: frozenset({S.PENDING}),  # reconsidered: back to review
    S.CANCELLED: frozenset(),  # only through an explicit re-registration
    S.ATTENDED: frozenset({S.APPROVED}),  # undo a mistaken check-in
    S.NO_SHOW: frozenset({S.ATTENDED}),  # scanned late
}
"""Moves the hub itself may make. Terminal states need ``reregistration=True``."""

REREGISTRATION_TARGETS = frozenset({S.PENDING, S.APPROVED, S.WAITLIST})
"""Where a cancelled or declined registration may go when a person re-registers."""

CHUNK_SIZE = 5000


class IllegalTransition(ValueError):
    """The status machine refused a move."""

    def __init__(self, registration_id: int, from_status: str, to_status: str) -> None:
        super().__init__(
            f"registration {registration_id}: {from_status} -> {to_status} is not allowed"
            + (" (needs an explicit re-registration)" if from_status in ("cancelled",) else "")
        )
        self.registration_id = registration_id
        self.from_status = from_status
        self.to_status = to_status


class RegistrationNotFound(LookupError):
    pass


@dataclass
class UpsertCounts:
    """What one ``upsert_registrations`` call did. ``stale`` is a subset of ``unchanged``:
    rows skipped because the stored copy is newer."""

    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    unknown_event: int = 0
    stale: int = 0

    def __add__(self, other: UpsertCounts) -> UpsertCounts:
        return UpsertCounts(
            self.inserted + other.inserted,
            self.updated + other.updated,
            self.unchanged + other.unchanged,
            self.unknown_event + other.unknown_event,
            self.stale + other.stale,
        )


@dataclass(frozen=True)
class TransitionResult:
    registration_id: int
    from_status: str
    to_status: str
    changed: bool


def is_allowed(from_status: str, to_status: str) -> bool:
    return S(to_status) in ALLOWED_TRANSITIONS[S(from_status)]


# --------------------------------------------------------------------------- upsert


def resolve_event_ids(
    conn: Connection, keys: Iterable[tuple[str, str]]
) -> dict[tuple[str, str], UUID]:
    """(platform, platform_event_id) -> app.events.id through app.event_channels.

    Native registrations may also name the hub event directly by id or slug.
    """
    keys = sorted(set(keys))
    if not keys:
        return {}
    rows = conn.execute(
        text(
            """
            select c.platform, c.platform_event_id, c.event_id
            from app.event_channels c
            join unnest(cast(:platforms as text[]), cast(:ids as text[])) as k(platform, pid)
              on c.platform = k.platform and c.platform_event_id = k.pid
            """
        ),
        {"platforms": [k[0] for k in keys], "ids": [k[1] for k in keys]},
    ).all()
    found = {(r.platform, r.platform_event_id): r.event_id for r in rows}
    native = [
        pid
        for platform, pid in keys
        if platform == Platform.NATIVE and (platform, pid) not in found
    ]
    if native:
        uuids = [pid for pid in native if _is_uuid(pid)]
        rows = conn.execute(
            text(
                "select id, slug from app.events "
                "where id = any(cast(:uuids as uuid[])) or slug = any(cast(:slugs as text[]))"
            ),
            {"uuids": uuids, "slugs": native},
        ).all()
        for row in rows:
            for pid in (str(row.id), row.slug):
                if pid in native:
                    found[(Platform.NATIVE.value, pid)] = row.id
    return found


def _is_uuid(value: str) -> bool:
    try:
        UUID(value)
    except ValueError:
        return False
    return True


def _newest_per_key(registrations: Sequence[PlatformRegistration]) -> list[PlatformRegistration]:
    """One item per (platform, registration id): the newest, the last one on ties."""
    best: dict[tuple[str, str], PlatformRegistration] = {}
    for reg in registrations:
        key = (reg.platform.value, reg.platform_registration_id)
        current = best.get(key)
        if (
            current is None
            or current.updated_at is None
            or reg.updated_at is None
            or reg.updated_at >= current.updated_at
        ):
            best[key] = reg
    return [best[k] for k in sorted(best)]


_UPSERT_SQL = text(
    """
    with input as (
        select *
        from unnest(
            cast(:event_id as uuid[]), cast(:platform as text[]), cast(:preg_id as text[]),
            cast(:pevent_id as text[]), cast(:full_name as text[]), cast(:email as text[]),
            cast(:email_norm as text[]), cast(:phone as text[]), cast(:phone_e164 as text[]),
            cast(:status as text[]), cast(:payment_status as text[]),
            cast(:amount_minor as bigint[]), cast(:currency as text[]),
            cast(:registered_at as timestamptz[]), cast(:platform_updated_at as timestamptz[]),
            cast(:raw as text[])
        ) as t(event_id, platform, platform_registration_id, platform_event_id, full_name,
               email, email_normalized, phone, phone_e164, status, payment_status,
               amount_minor, currency, registered_at, platform_updated_at, raw)
    )
    insert into app.registrations as r (
        event_id, platform, platform_registration_id, platform_event_id, full_name, email,
        email_normalized, phone, phone_e164, status, payment_status, amount_minor, currency,
        registered_at, platform_updated_at, raw
    )
    select event_id, platform, platform_registration_id, platform_event_id, full_name, email,
           email_normalized, phone, phone_e164, status, payment_status, amount_minor, currency,
           registered_at, platform_updated_at, cast(raw as jsonb)
    from input
    order by platform, platform_registration_id
    on conflict (platform, platform_registration_id) do update set
        event_id = excluded.event_id,
        platform_event_id = excluded.platform_event_id,
        full_name = excluded.full_name,
        email = excluded.email,
        email_normalized = excluded.email_normalized,
        phone = excluded.phone,
        phone_e164 = excluded.phone_e164,
        status = excluded.status,
        payment_status = case
            when r.payment_status in ('paid', 'refunded')
                 and excluded.payment_status in ('none', 'unpaid') then r.payment_status
            else excluded.payment_status end,
        amount_minor = excluded.amount_minor,
        currency = excluded.currency,
        registered_at = coalesce(excluded.registered_at, r.registered_at),
        platform_updated_at = coalesce(excluded.platform_updated_at, r.platform_updated_at),
        raw = excluded.raw,
        updated_at = now()
    where (r.platform_updated_at is null
           or excluded.platform_updated_at is null
           or excluded.platform_updated_at >= r.platform_updated_at)
      and ((r.event_id, r.status, r.amount_minor, r.currency, r.full_name, r.email, r.phone,
            r.platform_updated_at)
           is distinct from
           (excluded.event_id, excluded.status, excluded.amount_minor, excluded.currency,
            excluded.full_name, excluded.email, excluded.phone,
            coalesce(excluded.platform_updated_at, r.platform_updated_at))
           or (r.payment_status is distinct from excluded.payment_status
               and not (r.payment_status in ('paid', 'refunded')
                        and excluded.payment_status in ('none', 'unpaid'))))
    returning r.id, r.platform, r.platform_registration_id, r.status, r.payment_status,
              (r.xmax = 0) as inserted
    """
)


def upsert_registrations(
    conn: Connection,
    registrations: list[PlatformRegistration],
    *,
    actor: str,
    reason: str | None = None,
) -> UpsertCounts:
    """Insert new registrations, update changed ones, leave the rest; audit each move.

    Runs in the caller's transaction. Items whose (platform, platform_event_id) maps to
    no hub event are counted in ``unknown_event`` and skipped. Duplicates within the
    list collapse to the newest. Batched: a few statements per 5,000 items.
    """
    counts = UpsertCounts()
    if not registrations:
        return counts
    event_ids = resolve_event_ids(
        conn, ((r.platform.value, r.platform_event_id) for r in registrations)
    )
    known: list[PlatformRegistration] = []
    for reg in registrations:
        if (reg.platform.value, reg.platform_event_id) in event_ids:
            known.append(reg)
        else:
            counts.unknown_event += 1
    unique = _newest_per_key(known)
    counts.unchanged += len(known) - len(unique)  # superseded duplicates within the call
    for start in range(0, len(unique), CHUNK_SIZE):
        counts += _upsert_chunk(conn, unique[start : start + CHUNK_SIZE], event_ids, actor, reason)
    if counts.inserted or counts.updated:
        # the seat ledger follows the platforms' registrations (same transaction)
        from hub.capacity import account_platform_seats

        account_platform_seats(
            conn,
            {
                event_ids[(r.platform.value, r.platform_event_id)]
                for r in unique
                if r.platform != Platform.NATIVE
            },
            actor=actor,
        )
    return counts


def _upsert_chunk(
    conn: Connection,
    chunk: list[PlatformRegistration],
    event_ids: dict[tuple[str, str], UUID],
    actor: str,
    reason: str | None,
) -> UpsertCounts:
    counts = UpsertCounts()
    platforms = [r.platform.value for r in chunk]
    preg_ids = [r.platform_registration_id for r in chunk]
    # Lock the rows we may change (in key order: no deadlock between two writers) and
    # read their state before; the upsert that follows sees the committed latest.
    before = {
        (row.platform, row.platform_registration_id): row
        for row in conn.execute(
            text(
                """
                select r.id, r.platform, r.platform_registration_id, r.status,
                       r.payment_status, r.platform_updated_at
                from app.registrations r
                join unnest(cast(:platform as text[]), cast(:preg_id as text[]))
                     as k(platform, preg_id)
                  on r.platform = k.platform and r.platform_registration_id = k.preg_id
                order by r.platform, r.platform_registration_id
                for update of r
                """
            ),
            {"platform": platforms, "preg_id": preg_ids},
        )
    }
    params: dict[str, list[Any]] = {
        "event_id": [event_ids[(r.platform.value, r.platform_event_id)] for r in chunk],
        "platform": platforms,
        "preg_id": preg_ids,
        "pevent_id": [r.platform_event_id for r in chunk],
        "full_name": [_clean(r.full_name) for r in chunk],
        "email": [_clean(r.email) for r in chunk],
        "email_norm": [normalize_email(r.email) for r in chunk],
        "phone": [_clean(r.phone) for r in chunk],
        "phone_e164": [normalize_phone(r.phone) for r in chunk],
        "status": [r.status.value for r in chunk],
        "payment_status": [r.payment_status.value for r in chunk],
        "amount_minor": [r.amount_minor for r in chunk],
        "currency": [r.currency.upper() if r.currency else None for r in chunk],
        "registered_at": [r.registered_at for r in chunk],
        "platform_updated_at": [r.updated_at for r in chunk],
        "raw": [json.dumps(r.raw, default=str) for r in chunk],
    }
    changed = conn.execute(_UPSERT_SQL, params).all()
    audits: list[dict[str, Any]] = []
    incoming = {(r.platform.value, r.platform_registration_id): r for r in chunk}
    for row in changed:
        key = (row.platform, row.platform_registration_id)
        old = before.get(key)
        if row.inserted or old is None:
            counts.inserted += 1
            audits.append(
                _audit(
                    row.id,
                    "created",
                    actor,
                    reason,
                    {"status": row.status, "payment_status": row.payment_status,
                     "platform": row.platform,
                     "platform_registration_id": row.platform_registration_id},
                )
            )  # fmt: skip
            continue
        counts.updated += 1
        if old.status != row.status:
            data = {"from": old.status, "to": row.status, "source": "platform"}
            if not is_allowed(old.status, row.status):
                data["irregular"] = True
            audits.append(_audit(row.id, "status_changed", actor, reason, data))
        if old.payment_status != row.payment_status:
            data = {"from": old.payment_status, "to": row.payment_status, "source": "platform"}
            audits.append(_audit(row.id, "payment_status_changed", actor, reason, data))
    counts.unchanged += len(chunk) - len(changed)
    for key, old in before.items():
        new = incoming[key].updated_at
        if (
            old.platform_updated_at is not None
            and new is not None
            and new < old.platform_updated_at
        ):
            counts.stale += 1
    if audits:
        conn.execute(audit_log.insert(), audits)
    return counts


def _clean(value: str | None) -> str | None:
    if value is None:
        return None
    value = value.strip()
    return value or None


def _audit(
    registration_id: int, action: str, actor: str, reason: str | None, data: dict[str, Any]
) -> dict[str, Any]:
    return {
        "entity": "registration",
        "entity_id": str(registration_id),
        "action": action,
        "actor": actor,
        "reason": reason,
        "data": data,
    }


# --------------------------------------------------------------------------- status machine


def transition(
    conn: Connection,
    registration_id: int,
    to_status: RegistrationStatus | str,
    *,
    actor: str,
    reason: str | None = None,
    reregistration: bool = False,
) -> TransitionResult:
    """Move a registration to ``to_status`` if the status machine allows it, and audit.

    Moving to the current status is a no-op (``changed=False``, no audit row). A
    cancelled or declined registration can come back only with ``reregistration=True``
    (a person registered again), audited as ``re_registered``. Raises
    ``IllegalTransition`` or ``RegistrationNotFound``.
    """
    to = S(to_status)
    row = conn.execute(
        text("select status from app.registrations where id = :id for update"),
        {"id": registration_id},
    ).first()
    if row is None:
        raise RegistrationNotFound(f"registration {registration_id} does not exist")
    current = S(row.status)
    if current == to:
        return TransitionResult(registration_id, current.value, to.value, False)
    action = "status_changed"
    if to not in ALLOWED_TRANSITIONS[current]:
        if not (
            reregistration and current in (S.CANCELLED, S.DECLINED) and to in REREGISTRATION_TARGETS
        ):
            raise IllegalTransition(registration_id, current.value, to.value)
        action = "re_registered"
    conn.execute(
        text("update app.registrations set status = :to, updated_at = now() where id = :id"),
        {"to": to.value, "id": registration_id},
    )
    conn.execute(
        audit_log.insert(),
        _audit(
            registration_id,
            action,
            actor,
            reason,
            {"from": current.value, "to": to.value},
        ),
    )
    return TransitionResult(registration_id, current.value, to.value, True)
