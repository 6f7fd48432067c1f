"""The hub's Stripe client (integrations.stripe_checkout) against the Stripe emulator over
real HTTP, and against respx at unit level for transport faults; keys from settings or
the vault, failing closed without ever showing the key."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
import respx
import stripe

from hub.settings import Settings
from integrations.sandbox.stripe import STRIPE_SECRET_KEY
from integrations.stripe_checkout import (
    ConfigurationError,
    SessionInfo,
    StripeCheckout,
    StripeCheckoutError,
)
from tests.stripe_sandbox import StripeBox, running_stripe

EVENT_ID = uuid.UUID("5f0c6d9e-1c7b-4f7e-9a55-0d3c2b1a9e88")


@pytest.fixture()
def box(tmp_path: Path) -> Iterator[StripeBox]:
    with running_stripe(tmp_path) as running:
        yield running


@pytest.fixture()
def checkout(box: StripeBox) -> StripeCheckout:
    return StripeCheckout(STRIPE_SECRET_KEY, box.url)


def create(checkout: StripeCheckout, key: str = "idem-1", **overrides) -> SessionInfo:
    args = {
        "order_no": "ORD-7Q2X",
        "event_id": EVENT_ID,
        "amount_minor": 125000,
        "currency": "TRY",
        "product_name": "PyCon TR 2026",
        "customer_email": "ayse@example.com",
        "success_url": "http://127.0.0.1:5000/checkout/success?session_id={CHECKOUT_SESSION_ID}",
        "cancel_url": "http://127.0.0.1:5000/e/pycon-tr",
        "expires_at": datetime.now(UTC) + timedelta(minutes=45),
        "idempotency_key": key,
        "metadata": {"hold_key": "h-1", "ref": None, "ref_code": ""},
    }
    args.update(overrides)
    return checkout.create_session(**args)


# --------------------------------------------------------------------------- sessions


def test_create_session(checkout: StripeCheckout, box: StripeBox) -> None:
    info = create(checkout)
    assert info.id.startswith("cs_test_") and info.url == f"{box.url}/pay/{info.id}"
    assert (info.status, info.payment_status) == ("open", "unpaid")
    assert (info.amount_total, info.currency) == (125000, "try")
    assert info.client_reference_id == "ORD-7Q2X"
    assert info.metadata == {"order_no": "ORD-7Q2X", "event_id": str(EVENT_ID), "hold_key": "h-1"}
    assert info.customer_email == "ayse@example.com" and info.payment_intent is None
    assert info.expires_at.tzinfo is not None
    assert abs(info.expires_at - (datetime.now(UTC) + timedelta(minutes=45))) < timedelta(seconds=5)
    assert not info.paid


def test_same_key_same_session_other_arguments_refused(checkout: StripeCheckout) -> None:
    first = create(checkout, key="order-1")
    assert create(checkout, key="order-1").id == first.id
    with pytest.raises(StripeCheckoutError) as info:
        create(checkout, key="order-1", amount_minor=99)
    assert info.value.kind == "idempotency" and not info.value.retryable


def test_retrieve_after_payment(checkout: StripeCheckout, box: StripeBox) -> None:
    info = create(checkout)
    box.complete(info.id, email="paid@example.com", name="Ayşe")
    paid = checkout.retrieve_session(info.id)
    assert paid.paid and paid.status == "complete" and paid.payment_status == "paid"
    assert paid.payment_intent and paid.payment_intent.startswith("pi_")
    assert paid.customer_email == "paid@example.com"
    intent = stripe.StripeClient(STRIPE_SECRET_KEY, base_addresses={"api": box.url})
    pi = intent.v1.payment_intents.retrieve(paid.payment_intent)
    assert pi.metadata["order_no"] == "ORD-7Q2X" and pi.metadata["event_id"] == str(EVENT_ID)


def test_expire_open_expired_and_complete(checkout: StripeCheckout, box: StripeBox) -> None:
    info = create(checkout)
    assert checkout.expire_session(info.id).status == "expired"
    assert checkout.expire_session(info.id).status == "expired"  # again: returned as is
    raced = create(checkout, key="idem-2")
    box.complete(raced.id)
    late = checkout.expire_session(raced.id)
    assert late.status == "complete" and late.paid  # the payment won: no error
    with pytest.raises(StripeCheckoutError) as err:
        checkout.expire_session("cs_test_unknown")
    assert err.value.http_status == 404 and err.value.code == "resource_missing"


def test_expires_at_out_of_bounds(checkout: StripeCheckout) -> None:
    with pytest.raises(StripeCheckoutError) as info:
        create(checkout, expires_at=int(time.time()) + 600)
    assert info.value.param == "expires_at" and info.value.kind == "invalid_request"
    with pytest.raises(StripeCheckoutError) as info:
        create(checkout, key="idem-3", expires_at=datetime.now(UTC) + timedelta(hours=30))
    assert info.value.param == "expires_at"


def test_refunds(checkout: StripeCheckout, box: StripeBox) -> None:
    info = create(checkout)
    pi = box.complete(info.id)["payment_intent"]
    part = checkout.refund(pi, idempotency_key="refund-1", amount_minor=25000)
    assert (part.amount, part.currency, part.status, part.payment_intent) == (
        25000,
        "try",
        "succeeded",
        pi,
    )
    assert checkout.refund(pi, idempotency_key="refund-1", amount_minor=25000).id == part.id
    with pytest.raises(StripeCheckoutError) as err:
        checkout.refund(pi, idempotency_key="refund-2", amount_minor=500000)
    assert err.value.code == "amount_too_large" and err.value.param == "amount"
    rest = checkout.refund(pi, idempotency_key="refund-3")
    assert rest.amount == 100000


def test_lost_response_retried_into_one_session(checkout: StripeCheckout, box: StripeBox) -> None:
    box.faults(lose_response_next=1)
    info = create(checkout, key="lost")
    sessions = box.sandbox.store.all("checkout.session")
    assert [s["id"] for s in sessions] == [info.id]


def test_server_errors_beyond_retries(checkout: StripeCheckout, box: StripeBox) -> None:
    box.faults(fail_next=3, status=500)
    with pytest.raises(StripeCheckoutError) as err:
        create(checkout)
    assert err.value.kind == "api" and err.value.retryable and err.value.http_status == 500


# --------------------------------------------------------------------------- keys


def test_wrong_key_error_never_shows_the_key(box: StripeBox) -> None:
    key = "sk_test_51WrongKeyWrongKeyWrongKey9876"
    client = StripeCheckout(key, box.url)
    with pytest.raises(StripeCheckoutError) as err:
        client.retrieve_session("cs_test_x")
    assert err.value.kind == "authentication" and err.value.http_status == 401
    for text in (str(err.value), repr(err.value), err.value.message, repr(client)):
        assert "9876" not in text and "WrongKey" not in text


def test_from_settings_key(box: StripeBox) -> None:
    checkout = StripeCheckout.from_settings(box.settings)
    assert checkout.api_base == box.url
    assert create(checkout).status == "open"


def test_from_settings_vault_entry(box: StripeBox) -> None:
    class FakeVault:  # the vault's interface only; the real one is tested below
        def get(self, platform: str) -> dict | None:
            return {"secret_key": STRIPE_SECRET_KEY} if platform == "stripe" else None

    settings = box.settings.model_copy(update={"stripe_secret_key": None})
    assert create(StripeCheckout.from_settings(settings, FakeVault())).status == "open"


def test_from_settings_real_vault(box: StripeBox, hub_settings: Settings) -> None:
    from hub.vault import Vault

    settings = hub_settings.model_copy(
        update={"stripe_secret_key": None, "stripe_base_url": box.url}
    )
    vault = Vault(settings=settings)
    vault.set("stripe", {"secret_key": STRIPE_SECRET_KEY})
    try:
        assert create(StripeCheckout.from_settings(settings)).status == "open"
    finally:
        vault.delete("stripe")
    with pytest.raises(ConfigurationError):
        StripeCheckout.from_settings(settings)


def test_missing_or_unreadable_key_fails_closed(hub_settings: Settings) -> None:
    settings = hub_settings.model_copy(update={"stripe_secret_key": None})

    class Empty:
        def get(self, platform: str) -> None:
            return None

    class Broken:
        def get(self, platform: str) -> None:
            raise RuntimeError("cannot decrypt sk_test_leak1234")

    class NotAKey:
        def get(self, platform: str) -> dict:
            return {"secret_key": "pk_test_publishable5678"}

    with pytest.raises(ConfigurationError, match="no secret key"):
        StripeCheckout.from_settings(settings, Empty())
    with pytest.raises(ConfigurationError) as err:
        StripeCheckout.from_settings(settings, Broken())
    assert "leak1234" not in str(err.value) and err.value.__cause__ is None
    with pytest.raises(ConfigurationError) as err:
        StripeCheckout.from_settings(settings, NotAKey())
    assert "5678" not in str(err.value)
    with pytest.raises(ConfigurationError):
        StripeCheckout("", "http://127.0.0.1:9")


# --------------------------------------------------------------------------- transport (respx)

BASE = "http://stripe.test"
SESSION = {
    "object": "checkout.session",
    "id": "cs_test_respx",
    "url": f"{BASE}/pay/cs_test_respx",
    "status": "open",
    "payment_status": "unpaid",
    "amount_total": 5000,
    "currency": "try",
    "payment_intent": None,
    "client_reference_id": "ORD-1",
    "metadata": {"order_no": "ORD-1"},
    "expires_at": int(time.time()) + 3600,
    "customer_email": None,
    "customer_details": None,
}


def _httpx_checkout() -> StripeCheckout:
    return StripeCheckout(
        "sk_test_unit", BASE, http_client=stripe.HTTPXClient(allow_sync_methods=True)
    )


@respx.mock
def test_respx_503_then_ok_is_retried() -> None:
    route = respx.get(f"{BASE}/v1/checkout/sessions/cs_test_respx").mock(
        side_effect=[
            httpx.Response(503, json={"error": {"type": "api_error"}}),
            httpx.Response(200, json=SESSION),
        ]
    )
    assert _httpx_checkout().retrieve_session("cs_test_respx").id == "cs_test_respx"
    assert route.call_count == 2


@respx.mock
def test_respx_connection_error() -> None:
    respx.get(f"{BASE}/v1/checkout/sessions/cs_test_respx").mock(
        side_effect=httpx.ConnectError("refused")
    )
    with pytest.raises(StripeCheckoutError) as err:
        _httpx_checkout().retrieve_session("cs_test_respx")
    assert err.value.kind == "connection" and err.value.retryable


@respx.mock
def test_respx_create_sends_bracket_keys_and_key() -> None:
    route = respx.post(f"{BASE}/v1/checkout/sessions").mock(
        return_value=httpx.Response(200, json=SESSION)
    )
    create(_httpx_checkout(), key="unit-key")
    request = route.calls[0].request
    assert request.headers["Idempotency-Key"] == "unit-key"
    assert request.headers["Authorization"] == "Bearer sk_test_unit"
    body = httpx.QueryParams(request.content.decode())
    assert body["line_items[0][price_data][unit_amount]"] == "125000"
    assert body["line_items[0][price_data][currency]"] == "try"
    assert body["line_items[0][price_data][product_data][name]"] == "PyCon TR 2026"
    assert body["payment_intent_data[metadata][order_no]"] == "ORD-7Q2X"
    assert body["metadata[event_id]"] == str(EVENT_ID)
    assert body["client_reference_id"] == "ORD-7Q2X" and body["mode"] == "payment"
    assert "metadata[ref]" not in body
