"""Native checkout: orders for the hub's own landing pages, free and paid (Stripe).

An order (``app.orders``) is one person's attempt to take one seat, answered in the
request through the seat ledger (``hub.capacity``): a hold, confirmed at once for a free
event, or confirmed when Stripe says the Checkout Session is paid. Every function here
is idempotent, because the same fact arrives several times and in any order: the
``checkout.session.completed`` webhook, the person landing on the success page, a
replayed POST with the same Idempotency-Key, the hold expiry job.

* :func:`create_order`: validate-free core of ``POST /checkout`` (the receiver
  validates with :func:`validate_checkout`). Same key + same request -> the same order;
  same key + another request -> :class:`IdempotencyConflict` naming the fields.
* :func:`complete_order_from_session`: a paid session -> registration created once, hold
  confirmed, payment status paid. A payment that arrives after its hold expired
  retakes a free seat when there is one, else is refunded through Stripe, the timeline
  says so and an e-mail notice is queued in the outbox (``notify.email``).
* :func:`expire_order`: the session expired, or the hold ended first (then the session is
  expired through Stripe's API; if it turns out paid meanwhile, it is completed).

The ledger (``SeatLedger``) and the Stripe client (``StripeCheckout``) are passed in:
this module imports neither Flask nor an adapter.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol
from uuid import UUID

from sqlalchemy import select, text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.engine import Connection

from hub import audit
from hub.db import orders, registrations
from hub.members import identity_email, normalize_email, normalize_phone
from hub.models import Event
from hub.outbox import enqueue
from hub.raw import storable_text

ACTOR = "checkout:native"
NAME_MAX = 120
EMAIL_MAX = 254
REF_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
KEY_PATTERN = re.compile(r"^[\x21-\x7e]{8,200}$")  # printable ASCII, no spaces
ORDER_NO_PATTERN = re.compile(r"^ord_[A-Za-z0-9_-]{24}$")
# Stripe refuses a Checkout Session that expires sooner than 30 minutes from now; the
# hold lives exactly as long as the session (session expires_at = hold expiry).
STRIPE_MIN_SESSION_SECONDS = 30 * 60
PAID_HOLD_SECONDS = max(
    int(os.environ.get("HUB_CHECKOUT_HOLD_SECONDS", "1860")), STRIPE_MIN_SESSION_SECONDS + 30
)
FREE_HOLD_SECONDS = 120  # a free hold is confirmed in the same transaction
ACTIVE_ORDER = ("held", "awaiting_payment", "paid")
CONFIRMED = ("confirmed", "already", "retaken")
NOTIFY_EMAIL = "notify.email"


# --------------------------------------------------------------------------- ports


class LedgerTx(Protocol):  # hub.capacity.LedgerTx
    conn: Connection

    def hold(
        self,
        event_id: UUID,
        hold_key: str,
        *,
        ttl_seconds: int,
        order_no: str | None = ...,
        channel: str = ...,
    ) -> Any: ...

    def confirm(
        self, event_id: UUID, hold_key: str, *, registration_id: int | None = ...
    ) -> Any: ...

    def release(
        self, event_id: UUID, hold_key: str, *, status: str = ..., reason: str | None = ...
    ) -> bool: ...


class Ledger(Protocol):  # hub.capacity.SeatLedger
    def begin(self) -> Any: ...
    def availability(self, event_id: UUID) -> Any: ...


class Payments(Protocol):  # integrations.stripe_checkout.StripeCheckout
    def create_session(self, **kwargs: Any) -> Any: ...
    def retrieve_session(self, session_id: str) -> Any: ...
    def expire_session(self, session_id: str) -> Any: ...
    def refund(
        self, payment_intent: str, *, idempotency_key: str, amount_minor: int | None = None
    ) -> Any: ...


# --------------------------------------------------------------------------- errors


class CheckoutError(Exception):
    """A refusal with an HTTP status and a message key (webhook_receiver.i18n)."""

    status = 400
    error = "checkout_error"
    message_key = "unavailable"

    def __init__(self, message: str = "", **data: Any) -> None:
        super().__init__(message or self.error)
        self.message = message or self.error
        self.data = data


class SoldOut(CheckoutError):
    status, error, message_key = 409, "sold_out", "sold_out_long"


class EventClosed(CheckoutError):
    status, error, message_key = 409, "event_closed", "cancelled"


class AlreadyRegistered(CheckoutError):
    """``data``: platform, registered_at (UTC), and order_no for a native one."""

    status, error, message_key = 409, "already_registered", "already_registered"


class OrderInProgress(CheckoutError):
    status, error, message_key = 409, "order_in_progress", "order_in_progress"


class IdempotencyConflict(CheckoutError):
    """Same Idempotency-Key, another request; ``data['fields']`` names what differs."""

    status, error, message_key = 422, "idempotency_conflict", "err_idempotency_key"


class PaymentUnavailable(CheckoutError):
    """Stripe could not make the session: the hold is released, nothing is sold."""

    status, error, message_key = 503, "payment_unavailable", "unavailable"


class RefundFailed(CheckoutError):
    status, error, message_key = 503, "refund_failed", "unavailable"


class _Concurrent(Exception):
    """Another request with the same key inserted the order first (roll ours back)."""


# --------------------------------------------------------------------------- input


@dataclass(frozen=True)
class CheckoutInput:
    """What one checkout asks for, validated and normalized."""

    full_name: str
    email: str
    email_normalized: str
    phone: str
    phone_e164: str
    consent: bool
    ref: str | None = None

    def request_hash(self, event_id: UUID) -> str:
        """What makes two requests "the same" under one Idempotency-Key (normalized, so
        a form post and a JSON post of the same person agree)."""
        canonical = json.dumps(
            {
                "event_id": str(event_id),
                "full_name": self.full_name,
                "email": self.email_normalized,
                "phone": self.phone_e164,
                "consent": self.consent,
                "ref": self.ref,
            },
            sort_keys=True,
            ensure_ascii=False,
        )
        return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def _clean_name(value: Any) -> str:
    text_value = storable_text(str(value or "")) or ""
    text_value = "".join(
        ch if unicodedata.category(ch)[0] != "C" else " " for ch in text_value
    )  # control characters (tabs, newlines, bidi overrides) become spaces
    return " ".join(unicodedata.normalize("NFC", text_value).split())


def truthy(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    return str(value or "").strip().lower() in ("1", "true", "on", "yes", "evet")


def validate_checkout(data: Mapping[str, Any]) -> tuple[CheckoutInput | None, dict[str, str]]:
    """Validate a checkout's fields; ``(input, {})`` or ``(None, {field: message_key})``.

    Names are stored as written (``<script>`` included: it is text, escaped wherever it
    is shown). Phones are E.164, read as Turkish numbers unless they start with ``+``
    (or ``00``). The KVKK consent box is required. ``ref`` is optional.
    """
    errors: dict[str, str] = {}
    name = _clean_name(data.get("full_name"))
    if len(name) < 2:
        errors["full_name"] = "err_full_name"
    elif len(name) > NAME_MAX:
        errors["full_name"] = "err_full_name_long"
    raw_email = str(data.get("email") or "").strip()
    email_norm = normalize_email(raw_email) if len(raw_email) <= EMAIL_MAX else None
    if not email_norm:
        errors["email"] = "err_email"
    raw_phone = str(data.get("phone") or "").strip()
    phone = normalize_phone(raw_phone[:40], "TR") if raw_phone else None
    if not phone:
        errors["phone"] = "err_phone"
    if not truthy(data.get("consent")):
        errors["consent"] = "err_consent"
    ref = str(data.get("ref") or "").strip() or None
    if ref is not None and not REF_PATTERN.match(ref):
        errors["ref"] = "err_ref"
    if errors:
        return None, errors
    assert email_norm and phone
    return (
        CheckoutInput(
            full_name=name,
            email=storable_text(raw_email) or raw_email,
            email_normalized=email_norm,
            phone=storable_text(raw_phone[:40]) or phone,
            phone_e164=phone,
            consent=True,
            ref=ref,
        ),
        {},
    )


def valid_idempotency_key(key: str | None) -> bool:
    return bool(key) and bool(KEY_PATTERN.match(key or ""))


def new_order_no() -> str:
    """``ord_`` + 144 random bits: the public, unguessable handle of /orders/<no>."""
    return f"ord_{secrets.token_urlsafe(18)}"


def hold_key_of(order_no: str) -> str:
    return f"native:{order_no}"


# --------------------------------------------------------------------------- views


@dataclass
class OrderView:
    order_no: str
    event_id: UUID
    status: str
    full_name: str | None
    email: str | None
    amount_minor: int
    currency: str
    ref_code: str | None
    payment_url: str | None
    stripe_session_id: str | None
    registration_id: int | None
    registration_status: str | None
    hold_expires_at: datetime | None
    created_at: datetime
    locale: str | None
    timeline: list[dict[str, Any]] = field(default_factory=list)
    replayed: bool = False

    def public(self) -> dict[str, Any]:
        """The JSON of ``GET /orders/<no>`` (no e-mail or phone: the number is the key)."""
        return {
            "order_no": self.order_no,
            "event_id": str(self.event_id),
            "status": self.status,
            "registration_status": self.registration_status,
            "full_name": self.full_name,
            "amount_minor": self.amount_minor,
            "currency": self.currency,
            "ref": self.ref_code,
            "payment_url": self.payment_url,
            "hold_expires_at": self.hold_expires_at.isoformat() if self.hold_expires_at else None,
            "created_at": self.created_at.isoformat(),
            "timeline": self.timeline,
        }


_ORDER_SQL = text(
    """
    select o.*, r.status as registration_status
      from app.orders o left join app.registrations r on r.id = o.registration_id
     where o.order_no = :order_no
    """
)


def get_order(conn: Connection, order_no: str) -> OrderView | None:
    if not ORDER_NO_PATTERN.match(order_no or ""):
        return None
    row = conn.execute(_ORDER_SQL, {"order_no": order_no}).mappings().first()
    return _view(row) if row else None


def _view(row: Mapping[str, Any]) -> OrderView:
    return OrderView(
        order_no=row["order_no"],
        event_id=row["event_id"],
        status=row["status"],
        full_name=row["full_name"],
        email=row["email"],
        amount_minor=int(row["amount_minor"]),
        currency=row["currency"],
        ref_code=row["ref_code"],
        payment_url=row["stripe_session_url"] if row["status"] == "awaiting_payment" else None,
        stripe_session_id=row["stripe_session_id"],
        registration_id=row["registration_id"],
        registration_status=row.get("registration_status"),
        hold_expires_at=row["hold_expires_at"],
        created_at=row["created_at"],
        locale=row["locale"],
        timeline=list(row["timeline"] or []),
    )


def _entry(event: str, **detail: Any) -> dict[str, Any]:
    return {"at": datetime.now(UTC).isoformat(timespec="milliseconds"), "event": event} | {
        k: v for k, v in detail.items() if v is not None
    }


def _update(conn: Connection, order_no: str, entries: list[dict[str, Any]], **values: Any) -> None:
    """Set columns and append timeline entries in one statement."""
    sets = ", ".join(f"{name} = :{name}" for name in values)
    conn.execute(
        text(
            "update app.orders set "
            + (sets + ", " if sets else "")
            + "timeline = timeline || cast(:entries as jsonb), updated_at = now() "
            "where order_no = :order_no"
        ),
        {**values, "entries": json.dumps(entries, default=str), "order_no": order_no},
    )


def _lock_order(conn: Connection, order_no: str) -> Mapping[str, Any] | None:
    return (
        conn.execute(
            text("select * from app.orders where order_no = :n for update"), {"n": order_no}
        )
        .mappings()
        .first()
    )


# --------------------------------------------------------------------------- identity


@dataclass(frozen=True)
class ExistingRegistration:
    platform: str
    registered_at: datetime | None
    status: str
    order_no: str | None


def _lock_identity(conn: Connection, event_id: UUID, data: CheckoutInput) -> None:
    """Serialize checkouts of one person for one event (e-mail and phone), so two tabs
    with two keys cannot both register."""
    keys = sorted(
        {
            f"checkout:{event_id}:email:{identity_email(data.email_normalized)}",
            f"checkout:{event_id}:phone:{data.phone_e164}",
        }
    )
    for key in keys:
        conn.execute(text("select pg_advisory_xact_lock(hashtextextended(:k, 0))"), {"k": key})


def find_registration(
    conn: Connection, event_id: UUID, email_normalized: str, phone_e164: str | None
) -> ExistingRegistration | None:
    """A live registration of this person for the event on any channel: the same
    normalized e-mail, the same mailbox by hub.members' identity (Gmail dots, +tags), or
    the same E.164 phone. Cancelled and declined ones do not count."""
    wanted = identity_email(email_normalized)
    domain = email_normalized.rsplit("@", 1)[-1]
    aliases = (
        {domain, "gmail.com", "googlemail.com"}
        if domain in ("gmail.com", "googlemail.com")
        else {domain}
    )
    rows = conn.execute(
        text(
            """
            select platform, status, order_no, email_normalized, phone_e164,
                   coalesce(registered_at, created_at) as registered_at
              from app.registrations
             where event_id = :event_id
               and status not in ('cancelled', 'declined')
               and (email_normalized = :email or phone_e164 = :phone
                    or split_part(email_normalized, '@', 2) = any(:domains))
             order by coalesce(registered_at, created_at), id
            """
        ),
        {
            "event_id": event_id,
            "email": email_normalized,
            "phone": phone_e164,
            "domains": sorted(aliases),
        },
    ).all()
    for row in rows:
        if (
            row.email_normalized == email_normalized
            or (phone_e164 and row.phone_e164 == phone_e164)
            or (row.email_normalized and identity_email(row.email_normalized) == wanted)
        ):
            return ExistingRegistration(row.platform, row.registered_at, row.status, row.order_no)
    return None


def _active_order(conn: Connection, event_id: UUID, data: CheckoutInput) -> str | None:
    return conn.execute(
        text(
            """
            select order_no from app.orders
             where event_id = :event_id and status = any(:active)
               and (email_normalized = :email or phone_e164 = :phone)
               and (hold_expires_at is null or hold_expires_at > now() or status = 'paid')
             order by created_at limit 1
            """
        ),
        {
            "event_id": event_id,
            "active": list(ACTIVE_ORDER),
            "email": data.email_normalized,
            "phone": data.phone_e164,
        },
    ).scalar()


# --------------------------------------------------------------------------- create


@dataclass(frozen=True)
class CheckoutUrls:
    """Where Stripe sends the person back (absolute, from settings.public_base_url)."""

    success_url: str  # with {CHECKOUT_SESSION_ID}
    cancel_url: str


def _conflicting_fields(row: Mapping[str, Any], event: Event, data: CheckoutInput) -> list[str]:
    fields = []
    if row["event_id"] != event.id:
        fields.append("event")
    if row["full_name"] != data.full_name:
        fields.append("full_name")
    if row["email_normalized"] != data.email_normalized:
        fields.append("email")
    if row["phone_e164"] != data.phone_e164:
        fields.append("phone")
    if (row["ref_code"] or None) != data.ref:
        fields.append("ref")
    return fields or ["body"]


def create_order(
    ledger: Ledger,
    *,
    event: Event,
    data: CheckoutInput,
    idempotency_key: str,
    consent_text: str,
    locale: str,
    payments: Callable[[], Payments] | None = None,
    urls: CheckoutUrls | None = None,
) -> OrderView:
    """Take one seat for ``data`` (see the module docstring); returns the order.

    Raises :class:`IdempotencyConflict`, :class:`AlreadyRegistered`,
    :class:`OrderInProgress`, :class:`SoldOut`, :class:`EventClosed`,
    :class:`PaymentUnavailable`; the ledger's own ``LedgerUnavailable`` propagates
    (nothing sold). ``payments`` builds the Stripe client (paid events only).
    """
    request_hash = data.request_hash(event.id)
    existing = _by_key(ledger, idempotency_key)
    if existing is not None:
        return _replay(ledger, existing, event, data, request_hash, payments, urls)
    if event.status != "scheduled":
        raise EventClosed(f"event {event.slug} is {event.status}")
    if event.ends_at <= datetime.now(UTC):
        closed = EventClosed(f"event {event.slug} has ended")
        closed.message_key = "ended"
        raise closed
    if ledger.availability(event.id).sold_out:
        # A read of the gate before any lock or row: in a rush most attempts find the
        # room full, and each should cost one Redis read, not a transaction. Nothing is
        # decided on this read: a seat freed a moment later goes to the next attempt.
        raise SoldOut(f"event {event.slug} is sold out")
    order_no = new_order_no()
    try:
        with ledger.begin() as tx:
            view = _take_seat(
                tx, event, data, order_no, idempotency_key, request_hash, consent_text, locale
            )
    except _Concurrent:
        existing = _by_key(ledger, idempotency_key)
        if existing is None:  # pragma: no cover - the other request rolled back
            raise
        return _replay(ledger, existing, event, data, request_hash, payments, urls)
    if event.is_free:
        return view
    return _open_session(ledger, view, event, payments, urls)


def _by_key(ledger: Ledger, key: str) -> Mapping[str, Any] | None:
    with ledger.begin() as tx:
        return (
            tx.conn.execute(select(orders).where(orders.c.idempotency_key == key))
            .mappings()
            .first()
        )


def _replay(
    ledger: Ledger,
    row: Mapping[str, Any],
    event: Event,
    data: CheckoutInput,
    request_hash: str,
    payments: Callable[[], Payments] | None,
    urls: CheckoutUrls | None,
) -> OrderView:
    if row["request_hash"] != request_hash:
        fields = _conflicting_fields(row, event, data)
        raise IdempotencyConflict(
            "this Idempotency-Key was used for another request (" + ", ".join(fields) + ")",
            fields=fields,
            order_no=row["order_no"],
        )
    with ledger.begin() as tx:
        view = get_order(tx.conn, row["order_no"])
    assert view is not None
    if view.status == "held" and not view.stripe_session_id and not event.is_free:
        view = _open_session(ledger, view, event, payments, urls)  # the first attempt died
    view.replayed = True
    return view


def _take_seat(
    tx: LedgerTx,
    event: Event,
    data: CheckoutInput,
    order_no: str,
    idempotency_key: str,
    request_hash: str,
    consent_text: str,
    locale: str,
) -> OrderView:
    conn = tx.conn
    _lock_identity(conn, event.id, data)
    taken = conn.execute(
        select(orders.c.order_no).where(orders.c.idempotency_key == idempotency_key)
    ).scalar()
    if taken is not None:  # the same request, committed while we waited for the lock
        raise _Concurrent()
    found = find_registration(conn, event.id, data.email_normalized, data.phone_e164)
    if found is not None:
        raise AlreadyRegistered(
            f"already registered via {found.platform}",
            platform=found.platform,
            registered_at=found.registered_at,
            order_no=found.order_no,
        )
    in_progress = _active_order(conn, event.id, data)
    if in_progress is not None:
        raise OrderInProgress("an unfinished order exists", order_no=in_progress)
    now = datetime.now(UTC)
    inserted = conn.execute(
        pg_insert(orders)
        .values(
            order_no=order_no,
            event_id=event.id,
            idempotency_key=idempotency_key,
            request_hash=request_hash,
            status="held",
            full_name=data.full_name,
            email=data.email,
            email_normalized=data.email_normalized,
            phone_e164=data.phone_e164,
            locale=locale,
            consent_text=consent_text,
            consent_at=now,
            ref_code=data.ref,
            amount_minor=event.price_minor,
            currency=event.currency,
            timeline=[_entry("created", channel="native", ref=data.ref)],
        )
        .on_conflict_do_nothing(index_elements=["idempotency_key"])
        .returning(orders.c.order_no)
    ).scalar()
    if inserted is None:
        raise _Concurrent()
    ttl = FREE_HOLD_SECONDS if event.is_free else PAID_HOLD_SECONDS
    hold = tx.hold(
        event.id, hold_key_of(order_no), ttl_seconds=ttl, order_no=order_no, channel="native"
    )
    if hold.status == "full":
        raise SoldOut(f"event {event.slug} is sold out")
    expires_at = hold.expires_at
    _update(
        conn,
        order_no,
        [_entry("held", pool=hold.pool, expires_at=expires_at)],
        hold_id=hold.hold_id,
        hold_expires_at=expires_at,
    )
    if event.is_free:
        reg_id, reg_status = _register(conn, event, order_no, payment_status="none")
        result = tx.confirm(event.id, hold_key_of(order_no), registration_id=reg_id)
        if result.status not in CONFIRMED:
            raise SoldOut(f"event {event.slug} is sold out ({result.status})")
        entries = [_entry("confirmed"), _entry(_approval_event(reg_status))]
        _update(conn, order_no, entries, status="confirmed", registration_id=reg_id)
    view = get_order(conn, order_no)
    assert view is not None
    return view


def _approval_event(registration_status: str) -> str:
    """``approved`` (the event needs no review) or ``pending_approval``."""
    return "pending_approval" if registration_status == "pending" else "approved"


def _register(
    conn: Connection, event: Event, order_no: str, *, payment_status: str
) -> tuple[int, str]:
    """The native registration of an order (once: keyed on the order number)."""
    order = conn.execute(select(orders).where(orders.c.order_no == order_no)).mappings().one()
    status = "pending" if event.approval_required else "approved"
    now = datetime.now(UTC)
    reg_id = conn.execute(
        pg_insert(registrations)
        .values(
            event_id=event.id,
            platform="native",
            platform_registration_id=order_no,
            platform_event_id=str(event.id),
            full_name=order["full_name"],
            email=order["email"],
            email_normalized=order["email_normalized"],
            phone=order["phone_e164"],
            phone_e164=order["phone_e164"],
            status=status,
            payment_status=payment_status,
            amount_minor=order["amount_minor"] if payment_status == "paid" else 0,
            currency=order["currency"],
            registered_at=order["created_at"] or now,
            platform_updated_at=now,
            raw={"order_no": order_no, "channel": "native", "locale": order["locale"]},
            consent_text=order["consent_text"],
            consent_at=order["consent_at"],
            ref_code=order["ref_code"],
            order_no=order_no,
        )
        .on_conflict_do_nothing(index_elements=["platform", "platform_registration_id"])
        .returning(registrations.c.id)
    ).scalar()
    if reg_id is None:
        row = conn.execute(
            select(registrations.c.id, registrations.c.status).where(
                registrations.c.platform == "native",
                registrations.c.platform_registration_id == order_no,
            )
        ).one()
        return int(row.id), row.status
    audit.record(
        conn,
        entity="registration",
        entity_id=reg_id,
        action="created",
        actor=ACTOR,
        data={
            "status": status,
            "payment_status": payment_status,
            "platform": "native",
            "order_no": order_no,
        },
    )
    return int(reg_id), status


def _open_session(
    ledger: Ledger,
    view: OrderView,
    event: Event,
    payments: Callable[[], Payments] | None,
    urls: CheckoutUrls | None,
) -> OrderView:
    """Create (or, on a replay, re-create idempotently) the Stripe Checkout Session whose
    expiry is the hold's; failure releases the hold (503, nothing sold)."""
    if payments is None or urls is None:
        raise PaymentUnavailable("no payment provider configured")
    assert view.hold_expires_at is not None
    try:
        client = payments()
        session = client.create_session(
            order_no=view.order_no,
            event_id=str(event.id),
            amount_minor=view.amount_minor,
            currency=view.currency,
            product_name=event.title,
            customer_email=view.email,
            success_url=urls.success_url,
            cancel_url=urls.cancel_url,
            expires_at=view.hold_expires_at,
            idempotency_key=f"checkout-session:{view.order_no}",
            metadata={
                "order_no": view.order_no,
                "event_id": str(event.id),
                "order_ref": view.order_no,
                "ref_code": view.ref_code or "",
            },
        )
    except Exception as exc:
        with ledger.begin() as tx:
            tx.release(
                event.id,
                hold_key_of(view.order_no),
                status="released",
                reason="payment_unavailable",
            )
            # the key is freed (renamed) so a retry with it makes a new order
            _update(
                tx.conn,
                view.order_no,
                [_entry("failed", error=type(exc).__name__)],
                status="failed",
                idempotency_key=f"failed:{view.order_no}",
            )
        raise PaymentUnavailable(
            f"payment session could not be created ({type(exc).__name__})"
        ) from exc
    with ledger.begin() as tx:
        row = _lock_order(tx.conn, view.order_no)
        if row is not None and row["status"] == "held":
            _update(
                tx.conn,
                view.order_no,
                [_entry("redirected", session_id=session.id)],
                status="awaiting_payment",
                stripe_session_id=session.id,
                stripe_session_url=session.url,
            )
        fresh = get_order(tx.conn, view.order_no)
    assert fresh is not None
    return fresh


# --------------------------------------------------------------------------- complete


def order_no_of(session: Any) -> str | None:
    metadata = getattr(session, "metadata", None) or {}
    value = metadata.get("order_no") or getattr(session, "client_reference_id", None)
    return value if isinstance(value, str) and ORDER_NO_PATTERN.match(value) else None


def _event(conn: Connection, event_id: UUID) -> Event:
    from hub.events import get_event

    return get_event(conn, event_id)


def complete_order_from_session(
    session: Any, *, ledger: Ledger, payments: Callable[[], Payments]
) -> OrderView | None:
    """Apply a Checkout Session read from Stripe's API to its order; idempotent.

    Only a session whose ``status`` is complete and ``payment_status`` paid changes
    anything: the registration is created once (platform native, keyed on the order
    number), the hold confirmed (a late one retakes a free seat) and the order
    confirmed. No seat left: refunded through Stripe, timeline + ``notify.email``.
    Returns the order, or None when the session names no order of ours.
    """
    order_no = order_no_of(session)
    if order_no is None:
        return None
    with ledger.begin() as tx:
        conn = tx.conn
        row = _lock_order(conn, order_no)
        if row is None:
            return None
        if row["stripe_session_id"] and row["stripe_session_id"] != session.id:
            return get_order(conn, order_no)  # another session of ours names it: not this one
        if session.status != "complete" or session.payment_status != "paid":
            return get_order(conn, order_no)
        if row["status"] in ("confirmed", "refunded", "cancelled"):
            return get_order(conn, order_no)
        event = _event(conn, row["event_id"])
        entries: list[dict[str, Any]] = []
        values: dict[str, Any] = {}
        if row["status"] != "paid" or not row["stripe_payment_intent"]:
            entries.append(
                _entry(
                    "paid",
                    session_id=session.id,
                    payment_intent=session.payment_intent,
                    amount_minor=session.amount_total,
                )
            )
            values |= {
                "stripe_payment_intent": session.payment_intent,
                "stripe_session_id": session.id,
            }
        late = row["status"] == "expired" or (
            row["hold_expires_at"] is not None and row["hold_expires_at"] <= datetime.now(UTC)
        )
        amount_ok = int(session.amount_total or 0) == int(row["amount_minor"]) and (
            str(session.currency or "").upper() == row["currency"].upper()
        )
        confirmed = False
        if amount_ok:
            savepoint = conn.begin_nested()
            reg_id, reg_status = _register(conn, event, order_no, payment_status="paid")
            result = tx.confirm(event.id, hold_key_of(order_no), registration_id=reg_id)
            if result.status in CONFIRMED:
                savepoint.commit()
                confirmed = True
                if result.status == "retaken" or late:
                    entries.append(_entry("seat_retaken"))
                entries.append(_entry("confirmed"))
                entries.append(_entry(_approval_event(reg_status)))
                values |= {"status": "confirmed", "registration_id": reg_id}
            else:
                savepoint.rollback()
                entries.append(_entry("no_seat", ledger=result.status))
        else:
            entries.append(
                _entry("amount_mismatch", expected=row["amount_minor"], got=session.amount_total)
            )
        if not confirmed:
            values["status"] = "paid"
        _update(conn, order_no, entries, **values)
        if confirmed or not amount_ok:
            return get_order(conn, order_no)
        # Paid, but no seat: refund (idempotent at Stripe on the order's key) and tell.
        try:
            refund = payments().refund(
                session.payment_intent, idempotency_key=f"late-refund:{order_no}"
            )
        except Exception as exc:
            raise RefundFailed(f"refund of {order_no} failed ({type(exc).__name__})") from exc
        _update(
            conn,
            order_no,
            [_entry("refunded", refund_id=getattr(refund, "id", None))],
            status="refunded",
            stripe_refund_id=getattr(refund, "id", None),
        )
        enqueue(
            conn,
            NOTIFY_EMAIL,
            f"{NOTIFY_EMAIL}:late-refund:{order_no}",
            {
                "template": "late_payment_refunded",
                "order_no": order_no,
                "to": row["email"],
                "full_name": row["full_name"],
                "locale": row["locale"],
                "event_id": str(event.id),
                "amount_minor": row["amount_minor"],
                "currency": row["currency"],
            },
            event_id=event.id,
        )
        return get_order(conn, order_no)


# --------------------------------------------------------------------------- expire


def expire_order(
    order_no: str,
    *,
    ledger: Ledger,
    payments: Callable[[], Payments] | None,
    reason: str,
    session_expired: bool = False,
) -> OrderView | None:
    """End an unpaid order: release its hold (status expired) and, unless Stripe already
    expired the session (``session_expired``), expire the session through the API. If
    the session turns out to be paid, the order is completed instead (late payment)."""
    with ledger.begin() as tx:
        row = _lock_order(tx.conn, order_no)
        if row is None:
            return None
        if row["status"] in ("held", "awaiting_payment"):
            # past its expiry the hold is 'expired'; a session Stripe ended early frees
            # the seat now ('released'), it would otherwise stay held until the expiry
            ends = row["hold_expires_at"]
            status = "expired" if ends is not None and ends <= datetime.now(UTC) else "released"
            tx.release(row["event_id"], hold_key_of(order_no), status=status, reason=reason)
            _update(tx.conn, order_no, [_entry("expired", reason=reason)], status="expired")
        session_id = row["stripe_session_id"]
        view = get_order(tx.conn, order_no)
    if session_id and not session_expired and payments is not None:
        session = payments().expire_session(session_id)
        if session.status == "complete":
            return complete_order_from_session(session, ledger=ledger, payments=payments)
    return view


def apply_session(
    session_id: str, *, ledger: Ledger, payments: Callable[[], Payments]
) -> OrderView | None:
    """A webhook named this session: re-read it from Stripe (the webhook is a hint) and
    drive its order: complete -> :func:`complete_order_from_session`, expired ->
    :func:`expire_order`; open -> nothing yet."""
    session = payments().retrieve_session(session_id)
    order_no = order_no_of(session)
    if order_no is None:
        return None
    if session.status == "complete":
        return complete_order_from_session(session, ledger=ledger, payments=payments)
    if session.status == "expired":
        return expire_order(
            order_no,
            ledger=ledger,
            payments=payments,
            reason="session_expired",
            session_expired=True,
        )
    with ledger.begin() as tx:
        return get_order(tx.conn, order_no)


_PAYMENTS: list[Callable[[], Payments]] = []


def configure_payments(factory: Callable[[], Payments]) -> None:
    """The Stripe client the hold-expiry hook uses to expire sessions (the receiver, the
    ingest handler and the capacity job call this; hub imports no adapter)."""
    _PAYMENTS[:] = [factory]


def on_hold_expired(conn: Connection, hold: Any) -> None:
    """hub.capacity's expiry hook (``release_expired_holds``), in the transaction that
    expired the hold: the order is expired with a timeline entry, and its Stripe session
    is expired through the API when a client is configured (best effort: the session
    expires at the same moment by itself, since its expires_at is the hold's). A payment
    that won the race arrives as ``checkout.session.completed`` and takes the late
    payment path (a free seat, else a refund)."""
    order_no = getattr(hold, "order_no", None)
    if getattr(hold, "channel", "native") != "native" or not order_no:
        return
    row = _lock_order(conn, order_no)
    if row is None or row["status"] not in ("held", "awaiting_payment"):
        return
    _update(conn, order_no, [_entry("expired", reason="hold_expired")], status="expired")
    if row["stripe_session_id"] and _PAYMENTS:
        try:
            session = _PAYMENTS[0]().expire_session(row["stripe_session_id"])
        except Exception as exc:  # Stripe down: the session ends by itself at its expiry
            _update(conn, order_no, [_entry("session_expiry_failed", error=type(exc).__name__)])
            return
        if session.status == "complete":
            _update(conn, order_no, [_entry("paid_after_expiry", session_id=session.id)])


def _register_hook() -> None:
    try:
        from hub.capacity import register_expiry_hook
    except ImportError:  # pragma: no cover - the ledger module is part of the hub
        return
    register_expiry_hook(on_hold_expired)


_register_hook()
