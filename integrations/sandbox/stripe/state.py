"""The emulated Stripe account: Checkout Sessions, PaymentIntents, Charges, Refunds and
Events, kept in SQLite (:class:`~integrations.sandbox.common.SandboxStore`) so a restarted
emulator still knows every session.

Rules follow Stripe's documented behaviour (CONTRACTS.md "1. Stripe", the SDK's params):
- a session is created ``open`` / ``unpaid`` with ``payment_intent: null``; paying it
  creates the PaymentIntent and its Charge and makes it ``complete`` / ``paid``;
- only an ``open`` session can be expired (through the API or when ``expires_at``
  passes), which emits ``checkout.session.expired``;
- a refund takes at most the charge's unrefunded amount and emits ``charge.refunded``
  (plus ``refund.created``);
- every change is an event (``GET /v1/events``), delivered to the webhook endpoint.
"""

from __future__ import annotations

import logging
import re
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from integrations.sandbox.common import SandboxStore
from integrations.sandbox.stripe import objects

log = logging.getLogger("sandbox.stripe")

MIN_EXPIRY_SECONDS = 30 * 60
MAX_EXPIRY_SECONDS = 24 * 3600
EXPIRY_GRACE_SECONDS = 5  # request transit: an expires_at computed just before the call
# Currencies whose minor unit is the unit (stripe.com/docs/currencies).
ZERO_DECIMAL = {
    "bif",
    "clp",
    "djf",
    "gnf",
    "jpy",
    "kmf",
    "krw",
    "mga",
    "pyg",
    "rwf",
    "ugx",
    "vnd",
    "vuv",
    "xaf",
    "xof",
    "xpf",
}
SUPPORTED_CURRENCIES = ZERO_DECIMAL | {
    "usd",
    "eur",
    "gbp",
    "try",
    "chf",
    "sek",
    "nok",
    "dkk",
    "pln",
    "czk",
    "huf",
    "ron",
    "bgn",
    "cad",
    "aud",
    "nzd",
    "sgd",
    "hkd",
    "inr",
    "aed",
    "sar",
    "ils",
    "mxn",
    "brl",
    "zar",
    "thb",
    "myr",
    "php",
    "idr",
    "egp",
    "mad",
    "uah",
    "gel",
    "azn",
    "kzt",
}
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


class StripeApiError(Exception):
    """An answer in Stripe's error envelope. ``saved``: whether the idempotency layer
    keeps it (Stripe saves results once an endpoint started executing, not refusals of
    the parameters themselves)."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type_: str = "invalid_request_error",
        code: str | None = None,
        param: str | None = None,
        saved: bool = True,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.body = objects.error_body(message, type_=type_, code=code, param=param)
        self.saved = saved


def missing(param: str) -> StripeApiError:
    return StripeApiError(
        400,
        f"Missing required param: {param}.",
        code="parameter_missing",
        param=param,
        saved=False,
    )


def invalid(param: str, message: str, code: str | None = None) -> StripeApiError:
    return StripeApiError(400, message, code=code, param=param, saved=False)


def no_such(resource: str, object_id: str, param: str = "id") -> StripeApiError:
    return StripeApiError(
        404,
        f"No such {resource}: '{object_id}'",
        code="resource_missing",
        param=param,
        saved=False,
    )


@dataclass(frozen=True)
class RequestInfo:
    """What an event's ``request`` names: the API request that caused it (null for
    changes made by the customer or by time)."""

    request_id: str | None = None
    idempotency_key: str | None = None


NO_REQUEST = RequestInfo()
INTERNAL = "_sandbox"  # key of a document's emulator-only fields (never rendered)


def public(doc: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in doc.items() if k != INTERNAL}


def format_amount(amount: int, currency: str) -> str:
    if currency in ZERO_DECIMAL:
        return f"{amount:,} {currency.upper()}"
    return f"{amount / 100:,.2f} {currency.upper()}"


class StripeSandbox:
    """One Stripe test-mode account. ``emit(events)`` (the events of one change) is set
    by the app (webhooks)."""

    def __init__(self, store: SandboxStore) -> None:
        self.store = store
        self.lock = threading.RLock()
        self.emit: Callable[[list[dict[str, Any]]], Any] = lambda events: None
        self.pending_webhooks: Callable[[], int] = lambda: 0
        self._sweeper: threading.Thread | None = None
        self._stop = threading.Event()

    # ------------------------------------------------------------------ events
    def _event(
        self,
        event_type: str,
        obj: dict[str, Any],
        request: RequestInfo = NO_REQUEST,
        previous: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        event = objects.event(
            event_type,
            public(obj),
            previous_attributes=previous,
            request_id=request.request_id,
            idempotency_key=request.idempotency_key,
            pending_webhooks=self.pending_webhooks(),
        )
        self.store.insert("event", event["id"], event)
        return event

    def _publish(self, events: list[dict[str, Any]]) -> None:
        if events:
            self.emit(events)

    def list_events(
        self, *, limit: int = 10, starting_after: str | None = None, types: list[str] | None = None
    ) -> tuple[list[dict[str, Any]], bool]:
        """Newest first, like Stripe."""
        events = list(reversed(self.store.all("event")))
        if types:
            events = [e for e in events if e["type"] in types or _wild(types, e["type"])]
        if starting_after:
            ids = [e["id"] for e in events]
            if starting_after not in ids:
                raise no_such("event", starting_after, "starting_after")
            events = events[ids.index(starting_after) + 1 :]
        return events[:limit], len(events) > limit

    def get_event(self, event_id: str) -> dict[str, Any]:
        event = self.store.get("event", event_id)
        if event is None:
            raise no_such("event", event_id)
        return event

    # ------------------------------------------------------------------ sessions
    def create_session(
        self, params: dict[str, Any], *, root_url: str, request: RequestInfo = NO_REQUEST
    ) -> dict[str, Any]:
        mode = params.get("mode")
        if not mode:
            raise missing("mode")
        if mode not in ("payment", "setup", "subscription"):
            raise invalid("mode", "Invalid mode: must be one of payment, setup, or subscription")
        if mode != "payment":
            raise invalid("mode", f"The sandbox emulates mode=payment only, not {mode}.")
        ui_mode = params.get("ui_mode", "hosted")
        if ui_mode not in ("hosted", "embedded", "custom"):
            raise invalid("ui_mode", "Invalid ui_mode: must be one of hosted, embedded, or custom")
        if ui_mode == "hosted" and not params.get("success_url"):
            raise missing("success_url")
        for url_param in ("success_url", "cancel_url"):
            value = params.get(url_param)
            if value and not re.match(r"^https?://", value):
                raise invalid(url_param, f"Not a valid URL: {url_param}", "url_invalid")
        items = params.get("line_items")
        if not items:
            raise missing("line_items")
        amount_total, currency = 0, None
        for index, item in enumerate(items):
            prefix = f"line_items[{index}]"
            if item.get("price"):
                raise no_such("price", item["price"], f"{prefix}[price]")
            price_data = item.get("price_data")
            if not price_data:
                raise invalid(
                    prefix,
                    f"You must specify either `price` or `price_data` in {prefix}.",
                )
            if item.get("quantity") is None:
                raise missing(f"{prefix}[quantity]")
            quantity = item["quantity"]
            if quantity < 1:
                raise invalid(f"{prefix}[quantity]", "Quantity must be greater than 0.")
            item_currency = price_data.get("currency")
            if not item_currency:
                raise missing(f"{prefix}[price_data][currency]")
            item_currency = item_currency.lower()
            if item_currency not in SUPPORTED_CURRENCIES:
                raise invalid(
                    f"{prefix}[price_data][currency]", f"Invalid currency: {item_currency}."
                )
            if currency and item_currency != currency:
                raise invalid(
                    f"{prefix}[price_data][currency]",
                    "All line items must use the same currency.",
                )
            currency = item_currency
            if price_data.get("unit_amount") is None:
                raise missing(f"{prefix}[price_data][unit_amount]")
            if price_data["unit_amount"] < 0:
                raise invalid(
                    f"{prefix}[price_data][unit_amount]",
                    "This value must be greater than or equal to 0.",
                )
            if not price_data.get("product") and not (price_data.get("product_data") or {}).get(
                "name"
            ):
                raise missing(f"{prefix}[price_data][product_data][name]")
            if price_data.get("product"):
                raise no_such("product", price_data["product"], f"{prefix}[price_data][product]")
            amount_total += price_data["unit_amount"] * quantity
        email = params.get("customer_email")
        if email is not None and not _EMAIL.match(email):
            raise invalid("customer_email", f"Invalid email address: {email}", "email_invalid")
        if len(params.get("client_reference_id") or "") > 200:
            raise invalid(
                "client_reference_id", "client_reference_id must be at most 200 characters."
            )
        check_metadata(params.get("metadata"), "metadata")
        pi_data = params.get("payment_intent_data") or {}
        check_metadata(pi_data.get("metadata"), "payment_intent_data[metadata]")
        created = objects.now()
        expires_at = params.get("expires_at")
        if expires_at is not None:
            if expires_at < created + MIN_EXPIRY_SECONDS - EXPIRY_GRACE_SECONDS:
                raise invalid(
                    "expires_at",
                    "The `expires_at` timestamp must be at least 30 minutes from Checkout "
                    "Session creation.",
                )
            if expires_at > created + MAX_EXPIRY_SECONDS + EXPIRY_GRACE_SECONDS:
                raise invalid(
                    "expires_at",
                    "The `expires_at` timestamp must be less than 24 hours from Checkout "
                    "Session creation.",
                )
        session_id = objects.new_id("cs_test_", 58)
        session = objects.checkout_session(
            session_id=session_id,
            url=f"{root_url.rstrip('/')}/pay/{session_id}",
            params=params,
            amount_total=amount_total,
            currency=currency or "usd",
        )
        session[INTERNAL] = {
            "line_items": [objects.line_item(item, currency or "usd") for item in items],
            "payment_intent_data": pi_data,
            "payment_intent": None,
        }
        with self.lock:
            self.store.insert("checkout.session", session_id, session)
        self._ensure_sweeper()
        return session

    def _session(self, session_id: str) -> dict[str, Any]:
        session = self.store.get("checkout.session", session_id)
        if session is None:
            raise no_such("checkout.session", session_id, "session")
        return session

    def get_session(self, session_id: str) -> dict[str, Any]:
        self.expire_due(session_id)
        return self._session(session_id)

    def line_items(self, session_id: str) -> list[dict[str, Any]]:
        return self.get_session(session_id)[INTERNAL]["line_items"]

    def list_sessions(
        self, *, limit: int = 10, payment_intent: str | None = None, status: str | None = None
    ) -> tuple[list[dict[str, Any]], bool]:
        self.expire_due()
        found = list(reversed(self.store.all("checkout.session")))
        if payment_intent:
            found = [s for s in found if s.get("payment_intent") == payment_intent]
        if status:
            found = [s for s in found if s["status"] == status]
        return found[:limit], len(found) > limit

    def expire_session(self, session_id: str, request: RequestInfo = NO_REQUEST) -> dict[str, Any]:
        """``POST /v1/checkout/sessions/<id>/expire``: only an open session."""
        with self.lock:
            self.expire_due(session_id)
            session = self._session(session_id)
            if session["status"] != "open":
                raise StripeApiError(
                    400,
                    'Only Checkout Sessions with a status in ["open"] can be expired. This '
                    f"Checkout Session has a status of {session['status']}.",
                    code="checkout_session_not_open",
                )
            events = self._expire(session, request)
        self._publish(events)
        return session

    def _expire(self, session: dict[str, Any], request: RequestInfo) -> list[dict[str, Any]]:
        session["status"] = "expired"
        session["url"] = None
        events = []
        pi_id = session[INTERNAL].get("payment_intent")
        if pi_id:  # a declined attempt left a PaymentIntent: Checkout cancels it
            pi = self.store.get("payment_intent", pi_id)
            if pi and pi["status"] not in ("succeeded", "canceled"):
                pi.update(
                    status="canceled", canceled_at=objects.now(), cancellation_reason="abandoned"
                )
                self.store.update("payment_intent", pi_id, pi)
                events.append(self._event("payment_intent.canceled", pi, request))
        self.store.update("checkout.session", session["id"], session)
        events.append(self._event("checkout.session.expired", session, request))
        return events

    def expire_due(self, session_id: str | None = None) -> list[str]:
        """Expire open sessions whose ``expires_at`` passed (all, or just one)."""
        expired, events = [], []
        with self.lock:
            now = objects.now()
            if session_id is not None:
                one = self.store.get("checkout.session", session_id)
                candidates = [one] if one else []
            else:
                candidates = [
                    doc
                    for _, doc in self.store.page(
                        "checkout.session",
                        limit=10**6,
                        where="json_extract(data, '$.status') = 'open' "
                        "and json_extract(data, '$.expires_at') <= ?",
                        params=(now,),
                    )
                ]
            for session in candidates:
                if session["status"] == "open" and session["expires_at"] <= now:
                    events += self._expire(session, NO_REQUEST)
                    expired.append(session["id"])
        self._publish(events)
        return expired

    def expire_now(self, session_id: str) -> dict[str, Any]:
        """Test control: the session's time is up now (``expires_at`` = now)."""
        with self.lock:
            session = self._session(session_id)
            if session["status"] == "open":
                session["expires_at"] = objects.now()
                self.store.update("checkout.session", session_id, session)
        self.expire_due(session_id)
        return self._session(session_id)

    # ------------------------------------------------------------------ paying
    def _attempt_intent(self, session: dict[str, Any], email: str | None) -> dict[str, Any]:
        internal = session[INTERNAL]
        if internal.get("payment_intent"):
            return self.store.get("payment_intent", internal["payment_intent"])
        pi_data = internal.get("payment_intent_data") or {}
        pi = objects.payment_intent(
            amount=session["amount_total"],
            currency=session["currency"],
            metadata=pi_data.get("metadata") or {},
            description=pi_data.get("description"),
            receipt_email=pi_data.get("receipt_email") or email,
        )
        self.store.insert("payment_intent", pi["id"], pi)
        internal["payment_intent"] = pi["id"]
        return pi

    def complete_session(
        self, session_id: str, *, email: str | None = None, name: str | None = None
    ) -> dict[str, Any]:
        """The customer pays (hosted page or test control). Paying a complete session
        again changes nothing; an expired one cannot be paid."""
        with self.lock:
            self.expire_due(session_id)
            session = self._session(session_id)
            if session["status"] == "complete":
                return session
            if session["status"] != "open":
                raise StripeApiError(
                    400,
                    "This Checkout Session is no longer active.",
                    code="checkout_session_expired",
                )
            email = email or session.get("customer_email") or "buyer@example.com"
            pi = self._attempt_intent(session, email)
            ch = objects.charge(pi, email=email, name=name)
            self.store.insert("charge", ch["id"], ch)
            pi.update(
                status="succeeded",
                amount_received=pi["amount"],
                latest_charge=ch["id"],
                payment_method=ch["payment_method"],
                last_payment_error=None,
            )
            self.store.update("payment_intent", pi["id"], pi)
            session.update(
                status="complete",
                payment_status="paid" if session["amount_total"] else "no_payment_required",
                payment_intent=pi["id"],
                customer_details=objects.customer_details(email, name),
                url=None,
            )
            self.store.update("checkout.session", session_id, session)
            events = [
                self._event("charge.succeeded", ch),
                self._event("payment_intent.succeeded", pi),
                self._event("checkout.session.completed", session),
            ]
        self._publish(events)
        return session

    def decline_session(self, session_id: str) -> dict[str, Any]:
        """The card is declined: the session stays open (the customer may try again);
        the attempt's PaymentIntent reports ``payment_intent.payment_failed``."""
        with self.lock:
            self.expire_due(session_id)
            session = self._session(session_id)
            if session["status"] != "open":
                raise StripeApiError(
                    400,
                    "This Checkout Session is no longer active.",
                    code="checkout_session_expired",
                )
            pi = self._attempt_intent(session, session.get("customer_email"))
            pi.update(
                status="requires_payment_method",
                last_payment_error={
                    "type": "card_error",
                    "code": "card_declined",
                    "decline_code": "generic_decline",
                    "message": "Your card was declined.",
                },
            )
            self.store.update("payment_intent", pi["id"], pi)
            self.store.update("checkout.session", session_id, session)
            events = [self._event("payment_intent.payment_failed", pi)]
        self._publish(events)
        return session

    # ------------------------------------------------------------------ intents, charges
    def get_payment_intent(self, pi_id: str) -> dict[str, Any]:
        pi = self.store.get("payment_intent", pi_id)
        if pi is None:
            raise no_such("payment_intent", pi_id, "intent")
        return pi

    def get_charge(self, charge_id: str) -> dict[str, Any]:
        ch = self.store.get("charge", charge_id)
        if ch is None:
            raise no_such("charge", charge_id, "charge")
        return ch

    # ------------------------------------------------------------------ refunds
    def create_refund(
        self, params: dict[str, Any], request: RequestInfo = NO_REQUEST
    ) -> dict[str, Any]:
        with self.lock:
            if params.get("payment_intent"):
                pi = self.store.get("payment_intent", params["payment_intent"])
                if pi is None:
                    raise no_such("payment_intent", params["payment_intent"], "payment_intent")
                if pi["status"] != "succeeded" or not pi.get("latest_charge"):
                    raise StripeApiError(
                        400,
                        f"This PaymentIntent ({pi['id']}) does not have a successful charge "
                        "to refund.",
                        param="payment_intent",
                        saved=False,
                    )
                ch = self.get_charge(pi["latest_charge"])
                if params.get("charge") and params["charge"] != ch["id"]:
                    raise invalid("charge", "The charge does not belong to this PaymentIntent.")
            elif params.get("charge"):
                ch = self.store.get("charge", params["charge"])
                if ch is None:
                    raise no_such("charge", params["charge"], "charge")
            else:
                raise invalid(
                    "payment_intent",
                    "One of `charge` or `payment_intent` is required.",
                    "parameter_missing",
                )
            remaining = ch["amount"] - ch["amount_refunded"]
            if remaining <= 0:
                raise StripeApiError(
                    400,
                    f"Charge {ch['id']} has already been refunded.",
                    code="charge_already_refunded",
                )
            amount = params.get("amount")
            if amount is None:
                amount = remaining
            if amount < 1:
                raise invalid("amount", "This value must be greater than or equal to 1.")
            if amount > remaining:
                raise StripeApiError(
                    400,
                    f"Refund amount ({format_amount(amount, ch['currency'])}) is greater than "
                    f"unrefunded amount on charge ({format_amount(remaining, ch['currency'])})",
                    code="amount_too_large",
                    param="amount",
                )
            check_metadata(params.get("metadata"), "metadata")
            refund = objects.refund(ch, amount, params)
            self.store.insert("refund", refund["id"], refund)
            previous = {
                "amount_refunded": ch["amount_refunded"],
                "refunded": ch["refunded"],
                "refunds": {"data": list(ch["refunds"]["data"])},
            }
            ch["amount_refunded"] += amount
            ch["refunded"] = ch["amount_refunded"] >= ch["amount"]
            ch["refunds"]["data"].insert(0, refund)
            self.store.update("charge", ch["id"], ch)
            events = [
                self._event("refund.created", refund, request),
                self._event("charge.refunded", ch, request, previous),
            ]
        self._publish(events)
        return refund

    def get_refund(self, refund_id: str) -> dict[str, Any]:
        refund = self.store.get("refund", refund_id)
        if refund is None:
            raise no_such("refund", refund_id, "refund")
        return refund

    # ------------------------------------------------------------------ housekeeping
    def reset(self) -> None:
        """Forget every object and event (test control)."""
        with self.lock, self.store.atomic():
            self.store._conn.execute("delete from docs where kind not in ('sandbox.config')")

    def _ensure_sweeper(self, interval: float = 1.0) -> None:
        """A daemon thread expiring sessions whose time passed (Stripe does it on its
        own, with ``checkout.session.expired``); ends when the store is closed."""
        with self.lock:
            if self._sweeper is not None and self._sweeper.is_alive():
                return
            self._sweeper = threading.Thread(
                target=self._sweep_loop, args=(interval,), name="stripe-expiry", daemon=True
            )
            self._sweeper.start()

    def _sweep_loop(self, interval: float) -> None:
        while not self._stop.wait(interval):
            try:
                self.expire_due()
            except sqlite3.ProgrammingError:  # store closed: the emulator stopped
                return
            except Exception:  # keep sweeping; a bad document must not stop expiry
                log.exception("expiry sweep failed")
                time.sleep(interval)

    def stop(self) -> None:
        self._stop.set()


def check_metadata(metadata: Any, param: str) -> None:
    """Stripe's metadata limits: 50 keys, keys up to 40 characters, values up to 500."""
    if not metadata:
        return
    if len(metadata) > 50:
        raise invalid(param, "You can specify up to 50 keys.")
    for key, value in metadata.items():
        if len(key) > 40:
            raise invalid(f"{param}[{key}]", "Keys must be at most 40 characters.")
        if len(str(value)) > 500:
            raise invalid(f"{param}[{key}]", "Values must be at most 500 characters.")


def _wild(types: list[str], event_type: str) -> bool:
    return any(t.endswith(".*") and event_type.startswith(t[:-1]) for t in types)
