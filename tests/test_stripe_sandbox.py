"""The Stripe emulator over real HTTP, driven by the official SDK and by raw httpx: bracket
keys, keys, idempotency, the error envelope, Checkout's rules (expires_at bounds, expire,
the hosted page), refunds, signed event deliveries with retries, faults, restart."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import stripe
from flask import Flask, request

from integrations.registry import SANDBOXES, sandbox_app_factory
from integrations.sandbox.common import ServerHandle, serve_in_thread
from integrations.sandbox.credentials import RECEIVER_SECRETS
from integrations.sandbox.stripe import STRIPE_SECRET_KEY, create_app
from integrations.sandbox.stripe.forms import parse_form
from integrations.sandbox.stripe.objects import fixture

SECRET = RECEIVER_SECRETS["stripe_webhook_secret"]
AUTH = {"Authorization": f"Bearer {STRIPE_SECRET_KEY}"}


class Receiver:
    """A little webhook endpoint on a real port that verifies each delivery with
    ``stripe.Webhook.construct_event`` and answers ``fail_first`` 500s before 200s."""

    def __init__(self, fail_first: int = 0) -> None:
        self.fail_first = fail_first
        self.calls = 0
        self.events: list[dict] = []
        self.refused: list[str] = []
        self._cond = threading.Condition()
        app = Flask("stripe-receiver")

        @app.post("/webhooks/stripe")
        def hook() -> tuple[str, int]:
            body = request.get_data()
            with self._cond:
                self.calls += 1
                if self.calls <= self.fail_first:
                    return "not now", 500
                try:
                    event = stripe.Webhook.construct_event(
                        body, request.headers.get("Stripe-Signature", ""), SECRET
                    )
                except (stripe.SignatureVerificationError, ValueError) as exc:
                    self.refused.append(type(exc).__name__)
                    return "bad signature", 400
                self.events.append(event.to_dict())
                self._cond.notify_all()
            return "", 200

        self.handle = serve_in_thread(app)
        self.url = f"{self.handle.url}/webhooks/stripe"

    def wait_for(self, count: int, timeout: float = 15.0) -> list[dict]:
        deadline = time.monotonic() + timeout
        with self._cond:
            while len(self.events) < count:
                remaining = deadline - time.monotonic()
                assert remaining > 0, f"got {len(self.events)} of {count} events"
                self._cond.wait(remaining)
            return list(self.events)

    def types(self) -> list[str]:
        return [e["type"] for e in self.events]


@pytest.fixture()
def receiver() -> Iterator[Receiver]:
    rx = Receiver()
    yield rx
    rx.handle.stop()


@pytest.fixture()
def emulator(tmp_path: Path, receiver: Receiver) -> Iterator[ServerHandle]:
    app = create_app(
        state_path=str(tmp_path / "stripe.sqlite"),
        webhook_url=receiver.url,
        webhook_backoff_seconds=0.05,
    )
    server = serve_in_thread(app)
    yield server
    server.stop()
    app.extensions["sandbox"].stop()


@pytest.fixture()
def client(emulator: ServerHandle) -> stripe.StripeClient:
    return stripe.StripeClient(
        STRIPE_SECRET_KEY, base_addresses={"api": emulator.url}, max_network_retries=2
    )


def session_params(**overrides) -> dict:
    params = {
        "mode": "payment",
        "success_url": "http://127.0.0.1:5000/checkout/success?session_id={CHECKOUT_SESSION_ID}",
        "cancel_url": "http://127.0.0.1:5000/e/pycon",
        "client_reference_id": "ORD-7Q2X",
        "customer_email": "ayse@example.com",
        "metadata": {"order_no": "ORD-7Q2X", "event_id": "e-1"},
        "payment_intent_data": {"metadata": {"order_no": "ORD-7Q2X"}},
        "line_items": [
            {
                "quantity": 1,
                "price_data": {
                    "currency": "try",
                    "unit_amount": 125000,
                    "product_data": {"name": "PyCon TR ticket"},
                },
            }
        ],
        "expires_at": int(time.time()) + 3600,
    }
    params.update(overrides)
    return params


def form(params: dict) -> dict[str, str]:
    """Bracket-encode like the SDK (tests build bodies by hand with it)."""
    out: dict[str, str] = {}

    def walk(prefix: str, value) -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                walk(f"{prefix}[{k}]" if prefix else k, v)
        elif isinstance(value, list):
            for i, v in enumerate(value):
                walk(f"{prefix}[{i}]", v)
        else:
            out[prefix] = str(value)

    walk("", params)
    return out


def control(server: ServerHandle, path: str, body: dict | None = None) -> httpx.Response:
    return httpx.post(f"{server.url}/_sandbox{path}", json=body or {}, timeout=10)


# --------------------------------------------------------------------------- encoding


def test_parse_form_nested_keys() -> None:
    parsed = parse_form(
        "metadata[order_no]=A1&line_items[0][price_data][unit_amount]=5000"
        "&line_items[1][quantity]=2&line_items[0][quantity]=1&expand[]=line_items"
        "&payment_intent_data[metadata][k]=v%20w"
    )
    assert parsed == {
        "metadata": {"order_no": "A1"},
        "line_items": [{"price_data": {"unit_amount": "5000"}, "quantity": "1"}, {"quantity": "2"}],
        "expand": ["line_items"],
        "payment_intent_data": {"metadata": {"k": "v w"}},
    }


def test_raw_form_body_with_bracket_keys(emulator: ServerHandle) -> None:
    body = form(session_params())
    body["expand[0]"] = "line_items"
    body["metadata[unset_me]"] = ""  # an empty value unsets a key: not stored
    r = httpx.post(f"{emulator.url}/v1/checkout/sessions", data=body, headers=AUTH)
    assert r.status_code == 200, r.text
    session = r.json()
    assert session["object"] == "checkout.session"
    assert session["id"].startswith("cs_test_")
    assert session["url"] == f"{emulator.url}/pay/{session['id']}"
    assert (session["status"], session["payment_status"]) == ("open", "unpaid")
    assert session["amount_total"] == 125000 and session["currency"] == "try"
    assert session["metadata"] == {"order_no": "ORD-7Q2X", "event_id": "e-1"}
    assert session["client_reference_id"] == "ORD-7Q2X"
    assert session["payment_intent"] is None
    item = session["line_items"]["data"][0]
    assert item["object"] == "item" and item["description"] == "PyCon TR ticket"
    assert item["price"]["unit_amount"] == 125000 and item["quantity"] == 1
    assert r.headers["Request-Id"].startswith("req_")


def test_session_has_every_field_of_stripes_fixture(client: stripe.StripeClient) -> None:
    session = client.v1.checkout.sessions.create(params=session_params())
    assert isinstance(session, stripe.checkout.Session)
    assert set(session.to_dict()) == set(fixture("checkout.session"))


def test_uppercase_currency_is_lowercased(client: stripe.StripeClient) -> None:
    params = session_params()
    params["line_items"][0]["price_data"]["currency"] = "TRY"
    assert client.v1.checkout.sessions.create(params=params).currency == "try"


# --------------------------------------------------------------------------- keys


def test_missing_and_wrong_keys_are_401(emulator: ServerHandle) -> None:
    url = f"{emulator.url}/v1/checkout/sessions/cs_test_x"
    missing = httpx.get(url)
    assert missing.status_code == 401
    assert missing.json()["error"]["type"] == "invalid_request_error"
    assert "did not provide an API key" in missing.json()["error"]["message"]
    wrong = httpx.get(url, headers={"Authorization": "Bearer sk_test_nottherightkey1234"})
    assert wrong.status_code == 401
    message = wrong.json()["error"]["message"]
    assert message.startswith("Invalid API Key provided: sk_test_") and "nottheright" not in message
    basic = httpx.get(url, auth=(STRIPE_SECRET_KEY, ""))
    assert basic.status_code == 404  # the key is right; the session does not exist
    sdk = stripe.StripeClient("sk_test_wrong", base_addresses={"api": emulator.url})
    with pytest.raises(stripe.AuthenticationError) as info:
        sdk.v1.checkout.sessions.retrieve("cs_test_x")
    assert info.value.http_status == 401


# --------------------------------------------------------------------------- idempotency


def test_idempotency_replay_and_mismatch(emulator: ServerHandle) -> None:
    url = f"{emulator.url}/v1/checkout/sessions"
    headers = {**AUTH, "Idempotency-Key": "order-ORD-7Q2X"}
    body = form(session_params())
    first = httpx.post(url, data=body, headers=headers)
    again = httpx.post(url, data=dict(reversed(list(body.items()))), headers=headers)
    assert first.status_code == again.status_code == 200
    assert again.json()["id"] == first.json()["id"]
    assert again.headers.get("Idempotent-Replayed") == "true"
    assert "Idempotent-Replayed" not in first.headers
    other = httpx.post(url, data={**body, "metadata[order_no]": "OTHER"}, headers=headers)
    assert other.status_code == 400
    error = other.json()["error"]
    assert error["type"] == "idempotency_error"
    assert "same parameters" in error["message"]
    elsewhere = httpx.post(f"{emulator.url}/v1/refunds", data={"amount": "1"}, headers=headers)
    assert elsewhere.status_code == 400
    assert elsewhere.json()["error"]["type"] == "idempotency_error"


def test_refused_parameters_are_not_kept_under_the_key(emulator: ServerHandle) -> None:
    url = f"{emulator.url}/v1/checkout/sessions"
    headers = {**AUTH, "Idempotency-Key": "k-fix-and-retry"}
    bad = form(session_params())
    del bad["success_url"]
    assert httpx.post(url, data=bad, headers=headers).status_code == 400
    fixed = httpx.post(url, data=form(session_params()), headers=headers)
    assert fixed.status_code == 200 and "Idempotent-Replayed" not in fixed.headers


def test_sdk_idempotency_key_option(client: stripe.StripeClient) -> None:
    a = client.v1.checkout.sessions.create(
        params=session_params(), options={"idempotency_key": "k1"}
    )
    b = client.v1.checkout.sessions.create(
        params=session_params(), options={"idempotency_key": "k1"}
    )
    assert a.id == b.id
    changed = session_params(client_reference_id="OTHER")
    with pytest.raises(stripe.IdempotencyError):
        client.v1.checkout.sessions.create(params=changed, options={"idempotency_key": "k1"})


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("drop", "param"),
    [("mode", "mode"), ("success_url", "success_url"), ("line_items", "line_items")],
)
def test_missing_required_params(emulator: ServerHandle, drop: str, param: str) -> None:
    params = session_params()
    del params[drop]
    r = httpx.post(f"{emulator.url}/v1/checkout/sessions", data=form(params), headers=AUTH)
    assert r.status_code == 400
    assert r.json() == {
        "error": {
            "type": "invalid_request_error",
            "code": "parameter_missing",
            "param": param,
            "message": f"Missing required param: {param}.",
            "doc_url": "https://docs.stripe.com/error-codes/parameter-missing",
        }
    }


def test_error_envelope_variants(emulator: ServerHandle, client: stripe.StripeClient) -> None:
    url = f"{emulator.url}/v1/checkout/sessions"
    unknown = httpx.post(url, data={**form(session_params()), "amount": "100"}, headers=AUTH)
    assert unknown.status_code == 400
    assert unknown.json()["error"]["code"] == "parameter_unknown"
    assert unknown.json()["error"]["param"] == "amount"
    nested = form(session_params())
    nested["line_items[0][price_data][unit_amount]"] = "12.5"
    bad_int = httpx.post(url, data=nested, headers=AUTH).json()["error"]
    assert bad_int["param"] == "line_items[0][price_data][unit_amount]"
    assert bad_int["code"] == "parameter_invalid_integer"
    no_amount = session_params()
    del no_amount["line_items"][0]["price_data"]["unit_amount"]
    with pytest.raises(stripe.InvalidRequestError) as info:
        client.v1.checkout.sessions.create(params=no_amount)
    assert info.value.param == "line_items[0][price_data][unit_amount]"
    with pytest.raises(stripe.InvalidRequestError) as info:
        client.v1.checkout.sessions.retrieve("cs_test_nope")
    assert info.value.http_status == 404 and info.value.code == "resource_missing"
    assert httpx.get(f"{emulator.url}/v1/nothing", headers=AUTH).status_code == 404
    with pytest.raises(stripe.InvalidRequestError) as info:
        client.v1.checkout.sessions.create(params=session_params(customer_email="not-an-email"))
    assert info.value.param == "customer_email"


@pytest.mark.parametrize(
    ("offset", "ok"),
    [(20 * 60, False), (31 * 60, True), (23 * 3600, True), (25 * 3600, False)],
)
def test_expires_at_bounds(client: stripe.StripeClient, offset: int, ok: bool) -> None:
    params = session_params(expires_at=int(time.time()) + offset)
    if ok:
        assert client.v1.checkout.sessions.create(params=params).expires_at == params["expires_at"]
        return
    with pytest.raises(stripe.InvalidRequestError) as info:
        client.v1.checkout.sessions.create(params=params)
    assert info.value.param == "expires_at" and info.value.http_status == 400


def test_default_expiry_is_24_hours(client: stripe.StripeClient) -> None:
    params = session_params()
    del params["expires_at"]
    session = client.v1.checkout.sessions.create(params=params)
    assert abs(session.expires_at - (session.created + 24 * 3600)) <= 1


# --------------------------------------------------------------------------- expire


def test_expire_only_open_sessions(
    emulator: ServerHandle, client: stripe.StripeClient, receiver: Receiver
) -> None:
    session = client.v1.checkout.sessions.create(params=session_params())
    expired = client.v1.checkout.sessions.expire(session.id)
    assert expired.status == "expired" and expired.url is None
    with pytest.raises(stripe.InvalidRequestError) as info:
        client.v1.checkout.sessions.expire(session.id)
    assert "status of expired" in str(info.value.user_message)
    paid = client.v1.checkout.sessions.create(params=session_params())
    assert control(emulator, f"/sessions/{paid.id}/complete").status_code == 200
    with pytest.raises(stripe.InvalidRequestError) as info:
        client.v1.checkout.sessions.expire(paid.id)
    assert "status of complete" in str(info.value.user_message)
    events = receiver.wait_for(4)
    expired_events = [e for e in events if e["type"] == "checkout.session.expired"]
    assert expired_events[0]["data"]["object"]["id"] == session.id
    assert expired_events[0]["request"]["id"].startswith("req_")


def test_expire_now_and_sweep(
    emulator: ServerHandle, client: stripe.StripeClient, receiver
) -> None:
    session = client.v1.checkout.sessions.create(params=session_params())
    r = control(emulator, f"/sessions/{session.id}/expire-now")
    assert r.json()["status"] == "expired"
    assert client.v1.checkout.sessions.retrieve(session.id).status == "expired"
    event = receiver.wait_for(1)[0]
    assert event["type"] == "checkout.session.expired"
    assert event["request"]["id"] is None  # by time, not by an API request
    assert httpx.get(session.url).status_code == 410
    assert control(emulator, f"/sessions/{session.id}/complete").status_code == 400


# --------------------------------------------------------------------------- paying


def test_hosted_page_pay_redirects_with_session_id(
    emulator: ServerHandle, client: stripe.StripeClient, receiver: Receiver
) -> None:
    session = client.v1.checkout.sessions.create(params=session_params())
    page = httpx.get(session.url)
    assert page.status_code == 200
    assert 'id="pay"' in page.text and 'id="decline"' in page.text
    assert "1,250.00 TRY" in page.text and "PyCon TR ticket" in page.text
    declined = httpx.post(session.url, data={"action": "decline"})
    assert 'role="alert"' in declined.text and "declined" in declined.text
    assert client.v1.checkout.sessions.retrieve(session.id).status == "open"
    paid = httpx.post(session.url, data={"action": "pay", "name": "Ayşe Yılmaz"})
    assert paid.status_code == 303
    assert paid.headers["location"] == (
        f"http://127.0.0.1:5000/checkout/success?session_id={session.id}"
    )
    done = client.v1.checkout.sessions.retrieve(session.id, params={"expand": ["payment_intent"]})
    assert (done.status, done.payment_status) == ("complete", "paid")
    assert done.payment_intent.status == "succeeded"
    assert done.payment_intent.metadata.to_dict() == {"order_no": "ORD-7Q2X"}
    assert done.customer_details.email == "ayse@example.com"
    assert done.customer_details.name == "Ayşe Yılmaz"
    again = httpx.post(session.url, data={"action": "pay"})
    assert again.status_code == 303  # paying twice changes nothing
    events = receiver.wait_for(4)
    assert receiver.types() == [
        "payment_intent.payment_failed",
        "charge.succeeded",
        "payment_intent.succeeded",
        "checkout.session.completed",
    ]
    completed = events[-1]
    assert completed["data"]["object"]["payment_status"] == "paid"
    assert completed["data"]["object"]["payment_intent"] == done.payment_intent.id
    assert completed["data"]["object"]["client_reference_id"] == "ORD-7Q2X"


def test_refunds(emulator: ServerHandle, client: stripe.StripeClient, receiver: Receiver) -> None:
    session = client.v1.checkout.sessions.create(params=session_params())
    pi = control(emulator, f"/sessions/{session.id}/complete").json()["payment_intent"]
    part = client.v1.refunds.create(params={"payment_intent": pi, "amount": 25000})
    assert (part.object, part.status, part.amount, part.currency) == (
        "refund",
        "succeeded",
        25000,
        "try",
    )
    assert client.v1.refunds.retrieve(part.id).payment_intent == pi
    with pytest.raises(stripe.InvalidRequestError) as info:
        client.v1.refunds.create(params={"payment_intent": pi, "amount": 100001})
    assert info.value.param == "amount" and info.value.code == "amount_too_large"
    rest = client.v1.refunds.create(params={"payment_intent": pi})
    assert rest.amount == 100000
    with pytest.raises(stripe.InvalidRequestError) as info:
        client.v1.refunds.create(params={"payment_intent": pi, "amount": 1})
    assert info.value.code == "charge_already_refunded"
    charge = client.v1.charges.retrieve(part.charge)
    assert charge.refunded and charge.amount_refunded == 125000
    unpaid = client.v1.checkout.sessions.create(params=session_params())
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.refunds.create(params={"payment_intent": "pi_nope"})
    assert unpaid.payment_intent is None
    receiver.wait_for(7)
    refunded = [e for e in receiver.events if e["type"] == "charge.refunded"]
    assert [e["data"]["object"]["amount_refunded"] for e in refunded] == [25000, 125000]
    assert refunded[0]["data"]["previous_attributes"]["amount_refunded"] == 0


def test_events_list(client: stripe.StripeClient, emulator: ServerHandle) -> None:
    session = client.v1.checkout.sessions.create(params=session_params())
    control(emulator, f"/sessions/{session.id}/complete")
    events = client.v1.events.list(params={"limit": 2})
    assert [e.type for e in events.data] == [
        "checkout.session.completed",
        "payment_intent.succeeded",
    ]
    assert events.has_more
    only = client.v1.events.list(params={"type": "charge.succeeded"})
    assert [e.type for e in only.data] == ["charge.succeeded"]
    one = client.v1.events.retrieve(only.data[0].id)
    assert one.object == "event" and one.livemode is False and one.api_version


# --------------------------------------------------------------------------- webhooks


def test_signed_event_envelope(emulator: ServerHandle, client, receiver: Receiver) -> None:
    session = client.v1.checkout.sessions.create(params=session_params())
    control(emulator, f"/sessions/{session.id}/complete")
    event = receiver.wait_for(3)[-1]
    assert event["id"].startswith("evt_") and event["object"] == "event"
    assert event["type"] == "checkout.session.completed"
    assert event["livemode"] is False and event["api_version"] == "2026-10-28.endive"
    assert isinstance(event["created"], int) and event["pending_webhooks"] == 1
    assert set(event) >= set(fixture("event"))
    assert receiver.refused == []


def test_delivery_retried_after_500(tmp_path: Path) -> None:
    rx = Receiver(fail_first=2)
    app = create_app(webhook_url=rx.url, webhook_backoff_seconds=0.05)
    server = serve_in_thread(app)
    try:
        client = stripe.StripeClient(STRIPE_SECRET_KEY, base_addresses={"api": server.url})
        session = client.v1.checkout.sessions.create(params=session_params())
        control(server, f"/sessions/{session.id}/expire-now")
        rx.wait_for(1)
        log = httpx.get(f"{server.url}/_sandbox/deliveries", params={"wait": 5}).json()
        attempts = [(d["attempt"], d["status"]) for d in log["deliveries"]]
        assert attempts == [(1, 500), (2, 500), (3, 200)]
        assert log["idle"] is True
    finally:
        server.stop()
        rx.handle.stop()


def test_wrong_secret_is_refused_by_the_receiver(tmp_path: Path) -> None:
    rx = Receiver()
    app = create_app(webhook_url=rx.url, webhook_secret="whsec_other", webhook_backoff_seconds=0.01)
    server = serve_in_thread(app)
    try:
        control(server, "/webhook", {"attempts": 1})
        client = stripe.StripeClient(STRIPE_SECRET_KEY, base_addresses={"api": server.url})
        session = client.v1.checkout.sessions.create(params=session_params())
        control(server, f"/sessions/{session.id}/expire-now")
        log = httpx.get(f"{server.url}/_sandbox/deliveries", params={"wait": 5}).json()
        assert [d["status"] for d in log["deliveries"]] == [400]
        assert rx.refused == ["SignatureVerificationError"]
    finally:
        server.stop()
        rx.handle.stop()


def test_duplicate_and_out_of_order_switch(emulator: ServerHandle, client, receiver) -> None:
    r = control(emulator, "/webhook", {"duplicate": True, "out_of_order": True})
    assert r.json()["duplicate"] is True and r.json()["out_of_order"] is True
    session = client.v1.checkout.sessions.create(params=session_params())
    control(emulator, f"/sessions/{session.id}/complete")
    events = receiver.wait_for(6)
    assert len({e["id"] for e in events}) == 3
    assert [e["type"] for e in events[::2]] == [
        "checkout.session.completed",
        "payment_intent.succeeded",
        "charge.succeeded",
    ]


def test_webhook_target_and_filter(emulator: ServerHandle, client, receiver) -> None:
    other = Receiver()
    try:
        r = control(
            emulator,
            "/webhook",
            {"url": other.url, "enabled_events": ["checkout.session.*"]},
        )
        assert r.json()["url"] == other.url
        session = client.v1.checkout.sessions.create(params=session_params())
        control(emulator, f"/sessions/{session.id}/complete")
        other.wait_for(1)
        httpx.get(f"{emulator.url}/_sandbox/deliveries", params={"wait": 5})
        assert other.types() == ["checkout.session.completed"]
        assert receiver.events == []
        resent = control(emulator, f"/events/{other.events[0]['id']}/resend").json()
        assert resent["queued"] is True
        events = other.wait_for(2)
        assert events[1]["id"] == events[0]["id"]
    finally:
        other.handle.stop()


# --------------------------------------------------------------------------- faults


def test_sdk_retries_through_injected_500s(emulator: ServerHandle, client) -> None:
    control(emulator, "/faults", {"fail_next": 2, "status": 500})
    session = client.v1.checkout.sessions.create(params=session_params())
    assert session.status == "open"
    control(emulator, "/faults", {"fail_next": 3, "status": 503})
    with pytest.raises(stripe.APIError) as info:
        client.v1.checkout.sessions.retrieve(session.id)
    assert info.value.http_status == 503
    assert client.v1.checkout.sessions.retrieve(session.id).id == session.id


def test_lost_response_is_replayed_by_key(emulator: ServerHandle, client) -> None:
    control(emulator, "/faults", {"lose_response_next": 1})
    session = client.v1.checkout.sessions.create(
        params=session_params(), options={"idempotency_key": "lost-1"}
    )
    listed = client.v1.checkout.sessions.list()
    assert [s.id for s in listed.data] == [session.id]  # executed once, answered twice


def test_latency_and_reset(emulator: ServerHandle, client) -> None:
    control(emulator, "/faults", {"latency_ms": 300})
    start = time.monotonic()
    session = client.v1.checkout.sessions.create(params=session_params())
    assert time.monotonic() - start >= 0.3
    assert httpx.get(session.url).status_code == 200  # the page is not slowed or faulted
    faults = control(emulator, "/reset").json()
    assert faults["latency_ms"] == 0 and faults["fail_next"]["count"] == 0
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.checkout.sessions.retrieve(session.id)


def test_rate_limit_429(emulator: ServerHandle) -> None:
    control(emulator, "/faults", {"rate_limit": {"limit": 1, "window_seconds": 60}})
    url = f"{emulator.url}/v1/events"
    assert httpx.get(url, headers=AUTH).status_code == 200
    limited = httpx.get(url, headers=AUTH)
    assert limited.status_code == 429 and limited.json()["error"]["code"] == "rate_limit"
    assert int(limited.headers["Retry-After"]) >= 1


def test_concurrent_same_key_creates_one_session(emulator: ServerHandle, client) -> None:
    control(emulator, "/faults", {"latency_ms": 50})
    ids: list[str] = []

    def create() -> None:
        s = client.v1.checkout.sessions.create(
            params=session_params(), options={"idempotency_key": "race-1"}
        )
        ids.append(s.id)

    threads = [threading.Thread(target=create) for _ in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(ids) == 5 and len(set(ids)) == 1


# --------------------------------------------------------------------------- process


def test_restart_keeps_sessions_and_webhook(tmp_path: Path, receiver: Receiver) -> None:
    path = str(tmp_path / "s.sqlite")
    app = create_app(state_path=path, webhook_url=None)
    server = serve_in_thread(app)
    client = stripe.StripeClient(STRIPE_SECRET_KEY, base_addresses={"api": server.url})
    session = client.v1.checkout.sessions.create(params=session_params())
    control(server, "/webhook", {"url": receiver.url})
    server.stop()
    app.extensions["sandbox"].store.close()
    app2 = sandbox_app_factory("stripe")(state_path=path)
    server2 = serve_in_thread(app2)
    try:
        client = stripe.StripeClient(STRIPE_SECRET_KEY, base_addresses={"api": server2.url})
        assert client.v1.checkout.sessions.retrieve(session.id).status == "open"
        assert httpx.get(f"{server2.url}/_sandbox/webhook").json()["url"] == receiver.url
    finally:
        server2.stop()


def test_registered_as_sandbox() -> None:
    assert SANDBOXES["stripe"] == "integrations.sandbox.stripe"
    app = sandbox_app_factory("stripe")(webhook_url=None)
    assert app.test_client().get("/_sandbox/health").json == {"ok": True}


def test_emulator_does_not_import_the_client() -> None:
    root = Path(__file__).resolve().parents[1] / "integrations" / "sandbox" / "stripe"
    for path in root.glob("*.py"):
        text = path.read_text()
        assert "stripe_checkout" not in text and "import hub." not in text, path
    assert json.loads((root.parents[2] / "contracts" / "stripe-fixtures3.json").read_text())


def test_events_reach_the_hubs_receiver(tmp_path: Path, hub_settings, clean_db) -> None:
    """Emulator -> the real receiver (webhook_receiver, real PostgreSQL): every event
    verifies; the duplicate switch's second copies are answered 'duplicate'."""
    from pydantic import SecretStr
    from sqlalchemy import text

    from webhook_receiver.app import create_app as receiver_app

    settings = hub_settings.model_copy(update={"stripe_webhook_secret": SecretStr(SECRET)})
    front = serve_in_thread(receiver_app(settings))
    app = create_app(webhook_url=f"{front.url}/webhooks/stripe", webhook_backoff_seconds=0.05)
    server = serve_in_thread(app)
    try:
        control(server, "/webhook", {"duplicate": True})
        client = stripe.StripeClient(STRIPE_SECRET_KEY, base_addresses={"api": server.url})
        session = client.v1.checkout.sessions.create(params=session_params())
        control(server, f"/sessions/{session.id}/complete")
        log = httpx.get(f"{server.url}/_sandbox/deliveries", params={"wait": 10}).json()
        assert [d["status"] for d in log["deliveries"]] == [200] * 6
        with clean_db.connect() as conn:
            rows = conn.execute(
                text(
                    "select event_type, dedupe_key, verified from raw.webhook_events "
                    "where source = 'stripe' order by id"
                )
            ).all()
        assert sorted(r.event_type for r in rows) == [
            "charge.succeeded",
            "checkout.session.completed",
            "payment_intent.succeeded",
        ]
        assert all(r.verified and r.dedupe_key.startswith("evt_") for r in rows)
    finally:
        server.stop()
        front.stop()


def test_time_expires_open_sessions(emulator: ServerHandle, client, receiver) -> None:
    """The emulator's own clock: an open session whose expires_at passed is expired by the
    background sweep (no request needed) and checkout.session.expired is sent."""
    session = client.v1.checkout.sessions.create(params=session_params())
    store = emulator.app.extensions["sandbox"].store
    doc = store.get("checkout.session", session.id)
    doc["expires_at"] = int(time.time()) - 1  # white box: as if 30 minutes went by
    store.update("checkout.session", session.id, doc)
    event = receiver.wait_for(1, timeout=5)[0]
    assert event["type"] == "checkout.session.expired"
    assert event["data"]["object"]["id"] == session.id
    assert client.v1.checkout.sessions.retrieve(session.id).status == "expired"


def test_a_retry_does_not_hold_back_later_events(tmp_path: Path) -> None:
    """Stripe's order is not kept: the first event's retry arrives after the later ones."""
    rx = Receiver(fail_first=1)
    app = create_app(webhook_url=rx.url, webhook_backoff_seconds=0.3)
    server = serve_in_thread(app)
    try:
        client = stripe.StripeClient(STRIPE_SECRET_KEY, base_addresses={"api": server.url})
        session = client.v1.checkout.sessions.create(params=session_params())
        control(server, f"/sessions/{session.id}/pay")
        rx.wait_for(3)
        assert rx.types() == [
            "payment_intent.succeeded",
            "checkout.session.completed",
            "charge.succeeded",
        ]
        listed = httpx.get(f"{server.url}/_sandbox/events").json()["events"]
        assert [e["type"] for e in listed] == [
            "charge.succeeded",
            "payment_intent.succeeded",
            "checkout.session.completed",
        ]
    finally:
        server.stop()
        rx.handle.stop()
