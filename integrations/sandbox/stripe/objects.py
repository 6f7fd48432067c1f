"""Stripe's objects as the emulator returns them, shaped from Stripe's own fixtures
(``contracts/stripe-fixtures3.json``, the canonical example of each resource that
Stripe's mock server answers with).

Each builder starts from a deep copy of the fixture, so every field Stripe returns is
present with Stripe's nesting, then sets what this account's data says. The fixtures' filler
values (random amounts in ``shipping_cost``, ``"message"`` texts, a recovery URL) are
replaced by what a plain one-item payment session really carries (``null``s, zeros).
"""

from __future__ import annotations

import copy
import json
import secrets
import string
import time
from functools import lru_cache
from pathlib import Path
from typing import Any

FIXTURES_PATH = Path(__file__).resolve().parents[3] / "contracts" / "stripe-fixtures3.json"
API_VERSION = "2026-10-28.endive"  # CONTRACTS.md "1. Stripe": python SDK 16.1.0

_ALNUM = string.ascii_letters + string.digits


@lru_cache(maxsize=1)
def fixtures() -> dict[str, Any]:
    return json.loads(FIXTURES_PATH.read_text(encoding="utf-8"))["resources"]


def fixture(resource: str) -> dict[str, Any]:
    """A fresh deep copy of one resource's fixture (``checkout.session``, ``refund`` ...)."""
    return copy.deepcopy(fixtures()[resource])


def new_id(prefix: str, length: int = 24) -> str:
    """Stripe-looking ids: ``pi_3Q...`` (24 characters after the prefix), sessions
    ``cs_test_`` + 58 (the fixture's lengths)."""
    return prefix + "".join(secrets.choice(_ALNUM) for _ in range(length))


def now() -> int:
    return int(time.time())


def _null_address() -> dict[str, Any]:
    return {k: None for k in ("city", "country", "line1", "line2", "postal_code", "state")}


def checkout_session(
    *, session_id: str, url: str, params: dict[str, Any], amount_total: int, currency: str
) -> dict[str, Any]:
    """A new open session from validated create parameters."""
    obj = fixture("checkout.session")
    created = now()
    obj.update(
        id=session_id,
        url=url,
        created=created,
        expires_at=int(params.get("expires_at") or created + 24 * 3600),
        livemode=False,
        mode=params.get("mode", "payment"),
        status="open",
        payment_status="unpaid",
        payment_intent=None,
        amount_subtotal=amount_total,
        amount_total=amount_total,
        currency=currency,
        client_reference_id=params.get("client_reference_id"),
        customer_email=params.get("customer_email"),
        customer=None,
        customer_details=None,
        customer_creation=params.get("customer_creation", "if_required"),
        metadata=set_metadata(params.get("metadata")),
        success_url=params.get("success_url"),
        cancel_url=params.get("cancel_url"),
        locale=params.get("locale"),
        submit_type=params.get("submit_type"),
        payment_method_types=list(params.get("payment_method_types") or ["card"]),
        after_expiration=None,
        allow_promotion_codes=None,
        automatic_tax={"enabled": False, "liability": None, "status": None, "provider": None},
        billing_address_collection=None,
        consent=None,
        consent_collection=None,
        custom_fields=[],
        custom_text={
            "after_submit": None,
            "shipping_address": None,
            "submit": None,
            "terms_of_service_acceptance": None,
        },
        invoice=None,
        invoice_creation={
            "enabled": False,
            "invoice_data": {
                "account_tax_ids": None,
                "custom_fields": None,
                "description": None,
                "footer": None,
                "issuer": None,
                "metadata": {},
                "rendering_options": None,
            },
        },
        payment_link=None,
        payment_method_collection="if_required",
        payment_method_configuration_details=None,
        payment_method_options={"card": {"request_three_d_secure": "automatic"}},
        phone_number_collection={"enabled": False},
        recovered_from=None,
        saved_payment_method_options=None,
        setup_intent=None,
        shipping_address_collection=None,
        shipping_cost=None,
        shipping_options=[],
        subscription=None,
        total_details={"amount_discount": 0, "amount_shipping": 0, "amount_tax": 0},
        ui_mode=params.get("ui_mode", "hosted"),
        adaptive_pricing={"enabled": False},
        discounts=[],
        collected_information=None,
        permissions=None,
        wallet_options=None,
        origin_context=None,
        currency_conversion=None,
        customer_account=None,
        integration_identifier=None,
        managed_payments={"enabled": False},
        client_secret=None,
    )
    return obj


def set_metadata(given: dict[str, Any] | str | None) -> dict[str, str]:
    """Metadata as stored: a key posted with an empty value is unset (Stripe's rule), so it
    is not kept on a new object either."""
    if not given or not isinstance(given, dict):
        return {}
    return {str(k): str(v) for k, v in given.items() if v != ""}


def customer_details(email: str | None, name: str | None) -> dict[str, Any]:
    details = fixture("checkout.session")["customer_details"]
    details.update(
        address=_null_address(),
        email=email,
        name=name,
        phone=None,
        tax_exempt="none",
        tax_ids=[],
        business_name=None,
        individual_name=None,
    )
    return details


def line_item(params: dict[str, Any], currency: str) -> dict[str, Any]:
    """One ``item`` of a session's line items from its create parameters."""
    obj = fixture("item")
    price_data = params.get("price_data") or {}
    quantity = int(params.get("quantity") or 1)
    unit = int(price_data.get("unit_amount") or 0)
    product = price_data.get("product_data") or {}
    price = obj["price"]
    price.update(
        id=new_id("price_"),
        created=now(),
        currency=currency,
        product=new_id("prod_", 14),
        recurring=None,
        transform_quantity=None,
        custom_unit_amount=None,
        unit_amount=unit,
        unit_amount_decimal=str(unit),
        metadata={},
    )
    obj.update(
        id=new_id("li_"),
        currency=currency,
        description=product.get("name"),
        quantity=quantity,
        amount_subtotal=unit * quantity,
        amount_total=unit * quantity,
        amount_discount=0,
        amount_tax=0,
        metadata={},
        adjustable_quantity=None,
    )
    return obj


def payment_intent(
    *,
    amount: int,
    currency: str,
    metadata: dict[str, str],
    description: str | None,
    receipt_email: str | None,
) -> dict[str, Any]:
    """A PaymentIntent as Checkout creates it when the customer first confirms."""
    obj = fixture("payment_intent")
    pi_id = new_id("pi_")
    obj.update(
        id=pi_id,
        amount=amount,
        currency=currency,
        metadata=dict(metadata),
        description=description,
        receipt_email=receipt_email,
        created=now(),
        client_secret=f"{pi_id}_secret_{new_id('', 25)}",
        canceled_at=None,
        last_payment_error=None,
        latest_charge=None,
        next_action=None,
        payment_method=None,
        payment_method_configuration_details=None,
        processing=None,
        shipping=None,
        transfer_data=None,
        amount_received=0,
        amount_details={"tip": {}},
        status="requires_payment_method",
        managed_payments={"enabled": False},
        automatic_payment_methods=None,
    )
    return obj


def charge(pi: dict[str, Any], *, email: str | None, name: str | None) -> dict[str, Any]:
    """The successful card charge of a PaymentIntent."""
    obj = fixture("charge")
    charge_id = new_id("ch_")
    obj.update(
        id=charge_id,
        amount=pi["amount"],
        amount_captured=pi["amount"],
        amount_refunded=0,
        captured=True,
        paid=True,
        refunded=False,
        status="succeeded",
        currency=pi["currency"],
        payment_intent=pi["id"],
        metadata=dict(pi["metadata"]),
        created=now(),
        description=pi.get("description"),
        receipt_email=pi.get("receipt_email"),
        balance_transaction=new_id("txn_"),
        payment_method=new_id("pm_"),
        receipt_url=None,
        source=None,
        transfer_data=None,
        shipping=None,
        calculated_statement_descriptor="HUB SANDBOX",
    )
    obj["billing_details"].update(address=_null_address(), email=email, name=name)
    obj["outcome"].update(
        network_status="approved_by_network",
        reason=None,
        risk_level="normal",
        seller_message="Payment complete.",
        type="authorized",
    )
    obj["refunds"] = {
        "data": [],
        "has_more": False,
        "object": "list",
        "url": f"/v1/charges/{charge_id}/refunds",
    }
    return obj


def refund(ch: dict[str, Any], amount: int, params: dict[str, Any]) -> dict[str, Any]:
    obj = fixture("refund")
    obj.update(
        id=new_id("re_"),
        amount=amount,
        charge=ch["id"],
        currency=ch["currency"],
        payment_intent=ch.get("payment_intent"),
        created=now(),
        status="succeeded",
        metadata=set_metadata(params.get("metadata")),
        reason=params.get("reason"),
        balance_transaction=new_id("txn_"),
        payment_method=ch.get("payment_method"),
    )
    return obj


def event(
    event_type: str,
    data_object: dict[str, Any],
    *,
    previous_attributes: dict[str, Any] | None = None,
    request_id: str | None = None,
    idempotency_key: str | None = None,
    pending_webhooks: int = 0,
) -> dict[str, Any]:
    """A v1 event envelope (``object: "event"``) around a snapshot of ``data_object``."""
    obj = fixture("event")
    data: dict[str, Any] = {"object": copy.deepcopy(data_object)}
    if previous_attributes:
        data["previous_attributes"] = previous_attributes
    obj.update(
        id=new_id("evt_"),
        api_version=API_VERSION,
        created=now(),
        data=data,
        livemode=False,
        pending_webhooks=pending_webhooks,
        type=event_type,
        request={"id": request_id, "idempotency_key": idempotency_key},
    )
    return obj


def listing(url: str, data: list[dict[str, Any]], has_more: bool) -> dict[str, Any]:
    return {"object": "list", "data": data, "has_more": has_more, "url": url}


def error_body(
    message: str,
    *,
    type_: str = "invalid_request_error",
    code: str | None = None,
    param: str | None = None,
) -> dict[str, Any]:
    """Stripe's error envelope. ``code`` and ``param`` are always present (null when none)."""
    error: dict[str, Any] = {"type": type_, "code": code, "param": param, "message": message}
    if code:
        error["doc_url"] = f"https://docs.stripe.com/error-codes/{code.replace('_', '-')}"
    return {"error": error}
