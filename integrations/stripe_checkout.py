"""The hub's Stripe Checkout client: the official SDK (``stripe.StripeClient``), pointed
at api.stripe.com in live mode and at the Stripe emulator in sandbox mode (only the base
address and the key differ).

- :meth:`StripeCheckout.create_session`: one hosted Checkout Session per order
  (``mode=payment``, one ``price_data`` line item, the order number in
  ``client_reference_id`` and in the metadata of both the session and its PaymentIntent,
  so that every event about the payment names the order), created under the checkout's
  idempotency key (a retried create returns the first session).
- :meth:`retrieve_session`, :meth:`expire_session` (an already expired or completed
  session is returned as it is: a payment that won the race is the caller's to honour),
  :meth:`refund`.

Errors of the SDK become :class:`StripeCheckoutError` with a message that never contains
the key (Stripe's own messages may echo part of it); a key that cannot be found or read
is a :class:`ConfigurationError` (fail closed).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any, Literal

import stripe
from pydantic import BaseModel, ConfigDict, Field

from hub.settings import Settings, get_settings

DEFAULT_TIMEOUT_SECONDS = 20.0
_KEY_PATTERN = re.compile(r"\b(sk|rk|pk)_(test|live)_[A-Za-z0-9*]+")


class ConfigurationError(RuntimeError):
    """Stripe cannot be used: no key, or the key cannot be read. Never names the key."""


class StripeCheckoutError(RuntimeError):
    """A refused or failed Stripe call.

    ``kind``: ``invalid_request`` | ``authentication`` | ``permission`` | ``rate_limit`` |
    ``idempotency`` | ``card`` | ``api`` | ``connection``; ``code`` / ``param`` as Stripe
    named them; ``retryable``: whether trying again later may succeed.
    """

    def __init__(
        self,
        kind: str,
        message: str,
        *,
        code: str | None = None,
        param: str | None = None,
        http_status: int | None = None,
    ) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.code = code
        self.param = param
        self.http_status = http_status

    @property
    def retryable(self) -> bool:
        return self.kind in ("rate_limit", "api", "connection")


class SessionInfo(BaseModel):
    """What the hub needs of a Checkout Session."""

    model_config = ConfigDict(frozen=True)

    id: str
    url: str | None = None
    status: Literal["open", "complete", "expired"]
    payment_status: str
    amount_total: int | None = None
    currency: str | None = None
    payment_intent: str | None = None
    client_reference_id: str | None = None
    metadata: dict[str, str] = Field(default_factory=dict)
    expires_at: datetime
    customer_email: str | None = None

    @property
    def paid(self) -> bool:
        return self.status == "complete" and self.payment_status in (
            "paid",
            "no_payment_required",
        )


class RefundInfo(BaseModel):
    model_config = ConfigDict(frozen=True)

    id: str
    status: str | None = None
    amount: int
    currency: str
    payment_intent: str | None = None
    charge: str | None = None


def _safe(text: str | None) -> str:
    return _KEY_PATTERN.sub("[key]", text or "")


def _map_error(exc: stripe.StripeError) -> StripeCheckoutError:
    """The SDK's error as ours, with a message that cannot carry the key."""
    status = getattr(exc, "http_status", None)
    code = getattr(exc, "code", None)
    param = getattr(exc, "param", None)
    if isinstance(exc, stripe.AuthenticationError):
        return StripeCheckoutError(
            "authentication", "Stripe refused the API key", code=code, http_status=status
        )
    if isinstance(exc, stripe.PermissionError):
        return StripeCheckoutError(
            "permission", "the API key may not do this", code=code, http_status=status
        )
    if isinstance(exc, stripe.APIConnectionError):
        return StripeCheckoutError("connection", "could not reach Stripe", http_status=status)
    kind = {
        stripe.RateLimitError: "rate_limit",
        stripe.IdempotencyError: "idempotency",
        stripe.CardError: "card",
        stripe.InvalidRequestError: "invalid_request",
    }.get(type(exc), "api")
    message = _safe(getattr(exc, "user_message", None) or str(exc)) or "Stripe request failed"
    return StripeCheckoutError(kind, message, code=code, param=param, http_status=status)


def _stamp(value: datetime | int | float) -> int:
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError("expires_at must be timezone-aware")
        return int(value.timestamp())
    return int(value)


def _plain(obj: Any) -> dict[str, Any]:
    """An SDK object (not a dict since SDK 13) or a dict, as a plain dict."""
    return obj.to_dict() if hasattr(obj, "to_dict") else dict(obj)


def session_info(session: Any) -> SessionInfo:
    """A SessionInfo from an SDK ``Session`` (or the same fields in a dict)."""
    get = _plain(session).get
    details = get("customer_details") or {}
    payment_intent = get("payment_intent")
    if payment_intent is not None and not isinstance(payment_intent, str):
        payment_intent = payment_intent.get("id")
    return SessionInfo(
        id=get("id"),
        url=get("url"),
        status=get("status"),
        payment_status=get("payment_status"),
        amount_total=get("amount_total"),
        currency=get("currency"),
        payment_intent=payment_intent,
        client_reference_id=get("client_reference_id"),
        metadata={str(k): str(v) for k, v in (get("metadata") or {}).items()},
        expires_at=datetime.fromtimestamp(int(get("expires_at")), UTC),
        customer_email=(details.get("email") if details else None) or get("customer_email"),
    )


def refund_info(refund: Any) -> RefundInfo:
    get = _plain(refund).get
    return RefundInfo(
        id=get("id"),
        status=get("status"),
        amount=int(get("amount")),
        currency=get("currency"),
        payment_intent=get("payment_intent"),
        charge=get("charge"),
    )


class StripeCheckout:
    """Checkout Sessions and refunds through ``stripe.StripeClient``."""

    def __init__(
        self,
        api_key: str,
        api_base: str,
        *,
        http_client: stripe.HTTPClient | None = None,
        max_network_retries: int = 2,
        timeout: float = DEFAULT_TIMEOUT_SECONDS,
    ) -> None:
        if not api_key:
            raise ConfigurationError("Stripe: no API key")
        self.api_base = api_base.rstrip("/")
        self._client = stripe.StripeClient(
            api_key,
            base_addresses={"api": self.api_base},
            max_network_retries=max_network_retries,
            http_client=http_client or stripe.RequestsClient(timeout=timeout),
        )

    def __repr__(self) -> str:  # never the key
        return f"StripeCheckout(api_base={self.api_base!r})"

    @classmethod
    def from_settings(
        cls, settings: Settings | None = None, vault: Any | None = None
    ) -> StripeCheckout:
        """Key from ``HUB_STRIPE_SECRET_KEY``, else the vault entry ``stripe``
        (``secret_key``; ``hub integrations set stripe secret_key``); base address
        ``settings.base_url("stripe")``. No key, or a vault that cannot be read ->
        :class:`ConfigurationError` (without the key or the vault's details)."""
        settings = settings or get_settings()
        key = settings.secret("stripe_secret_key")
        if not key:
            try:
                if vault is None:
                    from hub.vault import Vault

                    vault = Vault(settings=settings)
                stored = vault.get("stripe") or {}
            except Exception as exc:
                raise ConfigurationError(
                    f"Stripe: the vault entry 'stripe' cannot be read ({type(exc).__name__})"
                ) from None
            key = stored.get("secret_key") or stored.get("api_key")
        if not key:
            raise ConfigurationError(
                "Stripe: no secret key; set HUB_STRIPE_SECRET_KEY or run "
                "`hub integrations set stripe secret_key`"
            )
        if not isinstance(key, str) or not key.startswith(("sk_", "rk_")):
            raise ConfigurationError("Stripe: the stored key is not a secret key (sk_/rk_)")
        return cls(key, settings.base_url("stripe"))

    # ------------------------------------------------------------------ calls
    def _call(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except stripe.StripeError as exc:
            raise _map_error(exc) from None

    def create_session(
        self,
        *,
        order_no: str,
        event_id: Any,
        amount_minor: int,
        currency: str,
        product_name: str,
        customer_email: str | None,
        success_url: str,
        cancel_url: str | None,
        expires_at: datetime | int,
        idempotency_key: str,
        metadata: dict[str, Any] | None = None,
    ) -> SessionInfo:
        """A hosted Checkout Session for one order. ``expires_at`` must be 30 min .. 24 h
        from now (Stripe's bounds; a value outside is refused with ``param="expires_at"``).
        The same ``idempotency_key`` with the same arguments returns the first session."""
        # an empty value would unset the key at Stripe: left out
        meta = {str(k): str(v) for k, v in (metadata or {}).items() if v not in (None, "")}
        meta.update(order_no=str(order_no), event_id=str(event_id))
        params: dict[str, Any] = {
            "mode": "payment",
            "line_items": [
                {
                    "quantity": 1,
                    "price_data": {
                        "currency": currency.lower(),
                        "unit_amount": int(amount_minor),
                        "product_data": {"name": product_name},
                    },
                }
            ],
            "client_reference_id": str(order_no),
            "metadata": meta,
            "payment_intent_data": {"metadata": dict(meta)},
            "success_url": success_url,
            "expires_at": _stamp(expires_at),
        }
        if cancel_url:
            params["cancel_url"] = cancel_url
        if customer_email:
            params["customer_email"] = customer_email
        session = self._call(
            self._client.v1.checkout.sessions.create,
            params=params,
            options={"idempotency_key": idempotency_key},
        )
        return session_info(session)

    def retrieve_session(self, session_id: str) -> SessionInfo:
        return session_info(self._call(self._client.v1.checkout.sessions.retrieve, session_id))

    def expire_session(self, session_id: str) -> SessionInfo:
        """Expire an open session. Already expired: returned as is. Completed (paid before
        the expiry reached Stripe): returned with ``status="complete"``, no error."""
        try:
            session = self._client.v1.checkout.sessions.expire(session_id)
        except stripe.InvalidRequestError as exc:
            if getattr(exc, "http_status", None) == 404:
                raise _map_error(exc) from None
            current = self.retrieve_session(session_id)
            if current.status in ("expired", "complete"):
                return current
            raise _map_error(exc) from None
        except stripe.StripeError as exc:
            raise _map_error(exc) from None
        return session_info(session)

    def refund(
        self, payment_intent: str, *, idempotency_key: str, amount_minor: int | None = None
    ) -> RefundInfo:
        """Refund a paid PaymentIntent (all of what is left, or ``amount_minor``)."""
        params: dict[str, Any] = {"payment_intent": payment_intent}
        if amount_minor is not None:
            params["amount"] = int(amount_minor)
        refund = self._call(
            self._client.v1.refunds.create,
            params=params,
            options={"idempotency_key": idempotency_key},
        )
        return refund_info(refund)
