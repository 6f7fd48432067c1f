"""The ingest handlers: how each source's raw row becomes registrations or payments.

hub.ingest is the queue (claim, retry, finish); these handlers know the wire formats
(Eventbrite hints, Luma deliveries, Stripe events, inbound e-mail, delivery reports), so
they live with the adapters. Platform reads go through injected fetchers:

* ``eventbrite``: ``fetch(api_url) -> list[PlatformRegistration]`` (e.g.
  ``EventbriteAdapter.fetch_api_url``);
* ``luma``: ``fetch(event_id, guest_id) -> PlatformRegistration`` (e.g.
  ``LumaAdapter.get_registration``).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit
from uuid import UUID

from sqlalchemy import text

from hub.errors import NotFound, ValidationFailed
from hub.ingest import Handler, HandlerContext, Ignore
from hub.models import PlatformRegistration
from hub.payments import PaymentIn, match_payment, record_payment
from hub.registrations import upsert_registrations

EventbriteFetch = Callable[[str], Any]  # api_url -> list[PlatformRegistration] (maybe async)
LumaFetch = Callable[[str, str], Any]  # (event_id, guest_id) -> PlatformRegistration

_EVENTBRITE_PLACEHOLDER = "{api-endpoint-to-fetch-object-details}"


class EventbriteHandler:
    """Eventbrite deliveries carry only ``api_url``: read it back with our token.

    ``allowed_hosts`` (e.g. {"www.eventbriteapi.com"}) refuses a foreign host before any
    fetch; without it the fetcher's own check (``ValidationFailed(code="FOREIGN_HOST")``)
    is relied on. Both end as 'ignored'.
    """

    def __init__(self, fetch: EventbriteFetch, *, allowed_hosts: Collection[str] | None = None):
        self.fetch = fetch
        self.allowed_hosts = {h.lower() for h in allowed_hosts} if allowed_hosts else None

    def __call__(self, ctx: HandlerContext) -> None:
        payload = ctx.row.json()
        config = payload.get("config") or {}
        action = (
            config.get("action") or ctx.row.event_type or ctx.row.header("X-Eventbrite-Event")
        ) or ""
        api_url = payload.get("api_url") or ""
        if action == "test" or _EVENTBRITE_PLACEHOLDER in api_url:
            raise Ignore("TEST_PING: Eventbrite test delivery")
        if not action.startswith(("order.", "attendee.")):
            raise Ignore(f"NOT_A_REGISTRATION: action {action or '(none)'}")
        parts = urlsplit(api_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"api_url is not a URL: {api_url[:100]!r}")
        if self.allowed_hosts is not None and parts.hostname.lower() not in self.allowed_hosts:
            raise Ignore(f"FOREIGN_HOST: {parts.hostname}")
        try:
            registrations = ctx.run(self.fetch(api_url))
        except ValidationFailed as exc:
            if exc.code == "FOREIGN_HOST":
                raise Ignore(f"FOREIGN_HOST: {parts.hostname}") from exc
            raise
        except NotFound as exc:  # a hint naming an order the platform does not have
            raise Ignore(f"NOT_ON_PLATFORM: Eventbrite has no {parts.path[:100]}") from exc
        registrations = list(registrations)
        if not registrations:  # the re-read names no registration: nothing was done
            raise Ignore(
                f"NOTHING_TO_FETCH: api_url names no order or attendee: {parts.path[:100]}"
            )
        _upsert_or_ignore(ctx, registrations, f"{ctx.reason} {action}")


class LumaHandler:
    """Luma deliveries are unverified hints (Luma documents no signature scheme): the ids
    in the payload are used only to re-read the guest through the API, and what the API
    returns is stored; nothing else in the payload (status, name, e-mail) is read. A hint
    naming a guest the API does not have (forged, or a guest of another event) is ignored
    and creates nothing."""

    def __init__(self, fetch: LumaFetch):
        self.fetch = fetch

    def __call__(self, ctx: HandlerContext) -> None:
        payload = ctx.row.json()
        kind = payload.get("type") or ctx.row.event_type or ""
        if kind and not kind.startswith(("guest.", "ticket.")):
            raise Ignore(f"NOT_A_REGISTRATION: type {kind}")
        data = payload.get("data") or {}
        guest = data.get("guest") if isinstance(data.get("guest"), dict) else {}
        event = data.get("event") if isinstance(data.get("event"), dict) else {}
        guest_ids = [data.get("api_id"), guest.get("api_id"), data.get("id"), guest.get("id")]
        guest_ids += [data.get("guest_id")]
        guest_id = next((g for g in guest_ids if isinstance(g, str) and g.startswith("gst-")), None)
        guest_id = guest_id or next((g for g in guest_ids if g), None)
        event_id = (
            event.get("api_id")
            or event.get("id")
            or data.get("event_api_id")
            or data.get("event_id")
            or guest.get("event_api_id")
        )
        if not guest_id or not event_id:
            raise ValueError("Luma payload names no guest or no event id")
        try:
            registration = ctx.run(self.fetch(str(event_id), str(guest_id)))
        except NotFound as exc:
            raise Ignore(
                f"NOT_ON_PLATFORM: Luma has no guest {guest_id} in event {event_id}"
            ) from exc
        _upsert_or_ignore(ctx, [registration], f"{ctx.reason} {kind}".strip())


def _upsert_or_ignore(
    ctx: HandlerContext, registrations: list[PlatformRegistration], reason: str
) -> None:
    counts = upsert_registrations(ctx.conn, registrations, actor=ctx.actor, reason=reason)
    if registrations and counts.unknown_event == len(registrations):
        ids = sorted({r.platform_event_id for r in registrations})
        raise Ignore(f"UNKNOWN_EVENT: no hub event for {ctx.row.source} event {', '.join(ids)}")


# -- Stripe


def _ref_from(obj: Mapping[str, Any]) -> str | None:
    metadata = obj.get("metadata") or {}
    for value in (
        obj.get("client_reference_id"),
        metadata.get("registration_ref"),
        metadata.get("order_ref"),
        metadata.get("ref"),
    ):
        if value:
            return str(value)
    return None


def _event_id_from(obj: Mapping[str, Any]) -> UUID | None:
    value = (obj.get("metadata") or {}).get("event_id")
    try:
        return UUID(str(value)) if value else None
    except ValueError:
        return None


def _stamp(value: Any) -> datetime | None:
    return datetime.fromtimestamp(int(value), UTC) if isinstance(value, int | float) else None


CHECKOUT_SESSION_EVENTS = frozenset(
    {
        "checkout.session.completed",
        "checkout.session.async_payment_succeeded",
        "checkout.session.async_payment_failed",
        "checkout.session.expired",
    }
)


def _drive_native_order(obj: Mapping[str, Any]) -> None:
    """A session of a native order (``metadata.order_no``): re-read it through Stripe's
    API (the webhook is only a hint) and let hub.checkout complete or expire the order.
    Runs in its own transactions (the seat ledger's), so it is idempotent across retries
    of this row; Stripe or the ledger unavailable -> retry the row later."""
    from hub.capacity import LedgerError, SeatLedger
    from hub.checkout import CheckoutError, apply_session, configure_payments
    from hub.ingest import RetryLater
    from hub.settings import get_settings
    from integrations.stripe_checkout import (
        ConfigurationError,
        StripeCheckout,
        StripeCheckoutError,
    )

    settings = get_settings()
    configure_payments(lambda: StripeCheckout.from_settings(settings))
    try:
        apply_session(
            str(obj["id"]),
            ledger=SeatLedger.from_settings(settings),
            payments=lambda: StripeCheckout.from_settings(settings),
        )
    except (LedgerError, StripeCheckoutError, ConfigurationError, CheckoutError) as exc:
        raise RetryLater(f"NATIVE_ORDER: {type(exc).__name__}: {exc}") from exc


def handle_stripe(ctx: HandlerContext) -> None:
    """Stripe events -> payments (deduped on the PaymentIntent) -> matching.

    A Checkout Session of a native order (``metadata.order_no``, hub.checkout) first
    drives that order (completed: seat confirmed, registration created; expired: hold
    released), then the payment is recorded as before.
    """
    event = ctx.row.json()
    kind = event.get("type") or ctx.row.event_type or ""
    obj = (event.get("data") or {}).get("object") or {}
    paid_at = _stamp(event.get("created"))
    native = kind in CHECKOUT_SESSION_EVENTS and bool((obj.get("metadata") or {}).get("order_no"))
    if native and obj.get("id"):
        _drive_native_order(obj)
        if kind in ("checkout.session.expired", "checkout.session.async_payment_failed"):
            return  # the order is expired; no payment to record (Ignore would undo nothing
            # of the order's own transactions, but marks the row ignored: keep it processed)
    if kind in ("checkout.session.completed", "checkout.session.async_payment_succeeded"):
        if obj.get("payment_status") != "paid":
            raise Ignore(f"UNPAID: {kind} with payment_status={obj.get('payment_status')}")
        details = obj.get("customer_details") or {}
        payment = PaymentIn(
            provider="stripe",
            provider_payment_id=obj.get("payment_intent") or obj["id"],
            amount_minor=int(obj.get("amount_total") or 0),
            currency=obj.get("currency") or "try",
            payer_email=details.get("email") or obj.get("customer_email"),
            payer_name=details.get("name"),
            reference=_ref_from(obj),
            event_id=_event_id_from(obj),
            paid_at=paid_at,
        )
    elif kind == "payment_intent.succeeded":
        payment = PaymentIn(
            provider="stripe",
            provider_payment_id=obj["id"],
            amount_minor=int(obj.get("amount_received") or obj.get("amount") or 0),
            currency=obj.get("currency") or "try",
            payer_email=obj.get("receipt_email"),
            reference=_ref_from(obj),
            event_id=_event_id_from(obj),
            paid_at=paid_at,
        )
    elif kind == "charge.refunded":
        billing = obj.get("billing_details") or {}
        payment = PaymentIn(
            provider="stripe",
            provider_payment_id=obj.get("payment_intent") or obj["id"],
            kind="refund",
            amount_minor=int(obj.get("amount_refunded") or 0),
            currency=obj.get("currency") or "try",
            payer_email=billing.get("email") or obj.get("receipt_email"),
            payer_name=billing.get("name"),
            reference=_ref_from(obj),
            event_id=_event_id_from(obj),
            paid_at=paid_at,
        )
    else:
        raise Ignore(f"NOT_HANDLED: stripe event type {kind or '(none)'}")
    payment = payment.model_copy(
        update={"source_table": f"raw.{ctx.row.table}", "source_id": ctx.row.id, "raw": event}
    )
    payment_id, _created = record_payment(ctx.conn, payment)
    order_no = (obj.get("metadata") or {}).get("order_no")
    if kind != "charge.refunded" and order_no and _link_native(ctx, payment_id, str(order_no)):
        return
    match_payment(ctx.conn, payment_id, actor=ctx.actor)


def _link_native(ctx: HandlerContext, payment_id: int, order_no: str) -> bool:
    """A payment of a native order belongs to the order's registration (hub.checkout made
    it, already marked paid): link it directly, no matching needed. False when the order
    has no registration (not confirmed: a refund is on its way) -> normal matching."""
    from hub import audit

    row = ctx.conn.execute(
        text(
            "select o.registration_id, o.event_id from app.orders o "
            "where o.order_no = :o and o.registration_id is not null"
        ),
        {"o": order_no},
    ).first()
    if row is None:
        return False
    linked = ctx.conn.execute(
        text(
            "update app.payments set registration_id = :reg, status = 'paid', "
            "event_id = coalesce(event_id, :event) "
            "where id = :id and registration_id is null and kind = 'payment' returning id"
        ),
        {"reg": row.registration_id, "event": row.event_id, "id": payment_id},
    ).scalar()
    if linked is not None:
        audit.record(
            ctx.conn,
            entity="payment",
            entity_id=payment_id,
            action="matched",
            actor=ctx.actor,
            data={
                "registration_id": row.registration_id,
                "method": "native_order",
                "order_no": order_no,
            },
        )
    return True


# -- inbound e-mail


def handle_inbound_email(ctx: HandlerContext) -> None:
    """A forwarded "payment received" mail (SendGrid or Mailgun) -> classification ->
    its incoming payments (none for outgoing notices, marketing ...) -> matching.

    See integrations.email_parsing.record; attachments the receiver spooled are read
    back from hub.files."""
    from hub.files import file_store
    from hub.settings import get_settings
    from integrations.email_parsing.record import not_payment_reason, record_inbound_email

    outcome = record_inbound_email(
        ctx.conn,
        raw_id=ctx.row.id,
        body=ctx.row.body,
        headers=ctx.row.headers,
        source=ctx.row.source,
        received_at=ctx.row.received_at,
        actor=ctx.actor,
        files=file_store().read,
        holders=get_settings().account_holders,
        table=ctx.row.table,
    )
    if not outcome.analysis.is_payment:  # outgoing notice, marketing ...: kept, classified
        raise Ignore(not_payment_reason(outcome.analysis))


# -- delivery statuses
# WhatsApp and Netgsm delivery reports have no handler yet: there is no message table to
# store their status on until the messaging issue builds it. Their rows stay 'received'
# (kept, unprocessed) instead of being marked processed with nothing done.


# --------------------------------------------------------------------------- registry


def build_handlers(
    fetchers: Mapping[str, Any] | None = None,
    *,
    eventbrite_hosts: Collection[str] | None = None,
) -> dict[str, Handler]:
    """The standard handler registry.

    ``fetchers`` maps 'eventbrite' and 'luma' to a fetch callable or to an adapter
    (``fetch_api_url`` / ``get_registration`` are used). A platform without a fetcher
    gets no handler, so its rows wait untouched.
    """
    fetchers = fetchers or {}
    handlers: dict[str, Handler] = {
        "stripe": handle_stripe,
        "sendgrid": handle_inbound_email,
        "mailgun": handle_inbound_email,
    }
    if (eventbrite := fetchers.get("eventbrite")) is not None:
        fetch = getattr(eventbrite, "fetch_api_url", eventbrite)
        handlers["eventbrite"] = EventbriteHandler(fetch, allowed_hosts=eventbrite_hosts)
    if (luma := fetchers.get("luma")) is not None:
        handlers["luma"] = LumaHandler(getattr(luma, "get_registration", luma))
    return handlers
