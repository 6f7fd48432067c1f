"""The Eventbrite emulator over real HTTP: wire format, the documented errors, payment
options, pagination, webhooks, faults and persistence across a restart.

Error codes are those of Eventbrite's API Blueprint ([E1] in CONTRACTS.md Part 1 section 2)
for the operation at hand; tests/test_contract_eventbrite.py checks the emulator with the
official SDK and the adapter's requests on the wire."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from flask import Flask, request

from integrations.sandbox.common import ServerHandle, serve_in_thread
from integrations.sandbox.credentials import EVENTBRITE_ORGANIZATION_ID as ORG
from integrations.sandbox.credentials import EVENTBRITE_TOKEN as TOKEN
from integrations.sandbox.eventbrite import create_app

START = datetime.now(UTC).replace(microsecond=0) + timedelta(days=30)


def z(when: datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


def event_body(**overrides: object) -> dict:
    body = {
        "name": {"html": "Python İstanbul #42"},
        "description": {"html": "<p>Talks &amp; pizza</p>"},
        "start": {"timezone": "Europe/Istanbul", "utc": z(START)},
        "end": {"timezone": "Europe/Istanbul", "utc": z(START + timedelta(hours=3))},
        "currency": "TRY",
    }
    body.update(overrides)
    return {"event": body}


class Receiver:
    """A tiny webhook endpoint on a real socket that records every delivery."""

    def __init__(self) -> None:
        self.calls: list[tuple[dict[str, str], dict]] = []
        app = Flask("receiver")

        @app.post("/hooks/eventbrite")
        def hook() -> tuple[str, int]:
            self.calls.append((dict(request.headers), request.get_json(force=True)))
            return "", 200

        self.handle = serve_in_thread(app)
        self.url = f"{self.handle.url}/hooks/eventbrite"

    def of(self, action: str) -> list[tuple[dict[str, str], dict]]:
        return [c for c in self.calls if c[1]["config"]["action"] == action]


@pytest.fixture()
def server(tmp_path) -> Iterator[ServerHandle]:
    handle = serve_in_thread(create_app(str(tmp_path / "eventbrite.sqlite")))
    yield handle
    handle.stop()


@pytest.fixture()
def api(server: ServerHandle) -> Iterator[httpx.Client]:
    with httpx.Client(
        base_url=f"{server.url}/v3", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10
    ) as client:
        yield client


@pytest.fixture()
def receiver() -> Iterator[Receiver]:
    rec = Receiver()
    yield rec
    rec.handle.stop()


def sandbox_of(server: ServerHandle):
    return server.app.extensions["sandbox"]


def add_payment_options(api: httpx.Client, event_id: str, **fields: object) -> dict:
    """Checkout settings for the event's currency, linked to the event."""
    settings = {"country_code": "TR", "currency_code": "TRY", "checkout_method": "eventbrite"}
    settings.update(fields)
    created = api.post(
        f"/organizations/{ORG}/checkout_settings/", json={"checkout_settings": settings}
    )
    assert created.status_code == 200, created.text
    linked = api.post(
        f"/events/{event_id}/checkout_settings/",
        json={"checkout_settings_ids": [created.json()["id"]]},
    )
    assert linked.status_code == 200, linked.text
    return created.json()


def make_live_event(api: httpx.Client, *, capacity: int = 100, cost: str | None = "TRY,25000"):
    event = api.post(f"/organizations/{ORG}/events/", json=event_body(capacity=capacity)).json()
    tc = {"name": "General admission", "capacity": capacity}
    tc.update({"cost": cost} if cost else {"free": True})
    ticket = api.post(f"/events/{event['id']}/ticket_classes/", json={"ticket_class": tc})
    assert ticket.status_code == 200, ticket.text
    if cost:
        add_payment_options(api, event["id"])
    assert api.post(f"/events/{event['id']}/publish/").json() == {"published": True}
    return event, ticket.json()


def wait_until(predicate, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.02)


# --------------------------------------------------------------------------- auth and errors


def test_auth_bearer_or_query_token(server: ServerHandle) -> None:
    url = f"{server.url}/v3/users/me/"
    missing = httpx.get(url)
    assert missing.status_code == 401
    assert missing.json() == {
        "status_code": 401,
        "error_description": missing.json()["error_description"],
        "error": "NO_AUTH",
    }
    assert httpx.get(url, headers={"Authorization": "Bearer WRONGTOKEN"}).status_code == 401
    assert httpx.get(url, params={"token": TOKEN}).status_code == 200
    other_org = httpx.get(f"{server.url}/v3/organizations/999/events/", params={"token": TOKEN})
    assert other_org.status_code == 403
    assert other_org.json()["error"] == "NOT_AUTHORIZED"
    unknown = httpx.get(f"{server.url}/v3/events/123/", params={"token": TOKEN})
    assert unknown.status_code == 404
    assert unknown.json()["error"] == "NOT_FOUND"


def test_create_event_shape_and_validation(api: httpx.Client) -> None:
    created = api.post(f"/organizations/{ORG}/events/", json=event_body(capacity=80))
    assert created.status_code == 200
    event = created.json()
    assert len(event["id"]) == 12 and event["id"].isdigit()
    # The public URL is the sandbox's own page, never eventbrite.com.
    assert event["url"] == f"{api.base_url.scheme}://{api.base_url.netloc.decode()}" + (
        f"/e/python-istanbul-42-tickets-{event['id']}"
    )
    assert event["status"] == "draft" and event["capacity"] == 80
    assert event["name"] == {"text": "Python İstanbul #42", "html": "Python İstanbul #42"}
    assert event["start"]["utc"] == z(START)
    assert event["start"]["local"] == (START + timedelta(hours=3)).strftime("%Y-%m-%dT%H:%M:%S")
    assert event["resource_uri"] == f"{api.base_url}events/{event['id']}/"

    body = event_body()
    del body["event"]["name"]
    missing = api.post(f"/organizations/{ORG}/events/", json=body)
    assert missing.status_code == 400
    assert missing.json()["error"] == "ARGUMENTS_ERROR"
    assert missing.json()["error_detail"] == {"ARGUMENTS_ERROR": {"event.name.html": ["MISSING"]}}

    backwards = event_body(end={"timezone": "Europe/Istanbul", "utc": z(START - timedelta(1))})
    conflict = api.post(f"/organizations/{ORG}/events/", json=backwards)
    assert (conflict.status_code, conflict.json()["error"]) == (400, "DATE_CONFLICT")

    bad_time = event_body(start={"timezone": "Europe/Istanbul", "utc": "tomorrow"})
    detail = api.post(f"/organizations/{ORG}/events/", json=bad_time).json()["error_detail"]
    assert detail["ARGUMENTS_ERROR"] == {"event.start.utc": ["INVALID"]}

    venue = api.post(
        f"/organizations/{ORG}/venues/", json={"venue": {"name": "Kolektif House"}}
    ).json()
    both = event_body(venue_id=venue["id"], online_event=True)
    assert api.post(f"/organizations/{ORG}/events/", json=both).json()["error"] == (
        "VENUE_AND_ONLINE"
    )


def test_dotted_form_fields_are_accepted(api: httpx.Client) -> None:
    form = {
        "event.name.html": "Form Meetup",
        "event.start.timezone": "Europe/Istanbul",
        "event.start.utc": z(START),
        "event.end.timezone": "Europe/Istanbul",
        "event.end.utc": z(START + timedelta(hours=2)),
        "event.currency": "EUR",
        "event.online_event": "true",
    }
    event = api.post(f"/organizations/{ORG}/events/", data=form).json()
    assert event["online_event"] is True and event["currency"] == "EUR"
    ticket = api.post(
        f"/events/{event['id']}/ticket_classes/",
        data={
            "ticket_class.name": "Free",
            "ticket_class.free": "true",
            "ticket_class.quantity_total": "7",
        },
    ).json()
    assert ticket["free"] is True and ticket["capacity"] == ticket["quantity_total"] == 7


def test_ticket_class_rules_and_publish(api: httpx.Client) -> None:
    event = api.post(f"/organizations/{ORG}/events/", json=event_body()).json()
    path = f"/events/{event['id']}/ticket_classes/"

    no_classes = api.post(f"/events/{event['id']}/publish/")
    assert no_classes.status_code == 400
    assert no_classes.json()["error_detail"]["ARGUMENTS_ERROR"] == {
        "event.ticket_classes": ["MISSING"]
    }

    def tc(**fields: object) -> httpx.Response:
        return api.post(path, json={"ticket_class": {"name": "GA", "capacity": 10, **fields}})

    assert tc(free=True, cost="TRY,100").json()["error"] == "FREE_AND_COST"
    assert tc().json()["error"] == "NO_COST"
    assert tc(cost="USD,1000").json()["error"] == "CURRENCY_MISMATCH"
    missing_name = api.post(path, json={"ticket_class": {"free": True, "capacity": 3}})
    assert missing_name.json()["error_detail"]["ARGUMENTS_ERROR"] == {
        "ticket_class.name": ["MISSING"]
    }

    paid = tc(cost="TRY,25000").json()
    assert len(paid["id"]) == 9 and paid["id"].isdigit()
    assert paid["cost"]["value"] == 25000 and paid["cost"]["currency"] == "TRY"
    assert paid["cost"]["major_value"] == "250.00"
    # "leave empty for 'one hour before event start'"
    assert paid["on_sale_status"] == "AVAILABLE"
    assert paid["sales_end"] == z(START - timedelta(hours=1))
    # "For normal ticket, null or 0 is not allowed" (capacity).
    zero = tc(name="Waitlist", capacity=0, hidden=True, cost="TRY,25000")
    assert (zero.status_code, zero.json()["error"]) == (400, "NO_QUANTITY_TOTAL")
    no_capacity = api.post(path, json={"ticket_class": {"name": "GA", "free": True}})
    assert no_capacity.json()["error"] == "NO_QUANTITY_TOTAL"
    hidden = tc(name="Waitlist", capacity=1, hidden=True, cost="TRY,25000").json()
    assert hidden["hidden"] is True and hidden["on_sale_status"] == "AVAILABLE"

    updated = api.post(f"{path}{hidden['id']}/", json={"ticket_class": {"capacity": 2}}).json()
    assert updated["capacity"] == 2
    to_zero = api.post(f"{path}{hidden['id']}/", json={"ticket_class": {"capacity": 0}})
    assert to_zero.json()["error"] == "NO_QUANTITY_TOTAL"

    listed = api.get(path).json()
    assert [t["id"] for t in listed["ticket_classes"]] == [paid["id"], hidden["id"]]
    assert listed["pagination"]["has_more_items"] is False

    # A paid event needs payment options (checkout settings) before it can be published.
    unpaid = api.post(f"/events/{event['id']}/publish/")
    assert (unpaid.status_code, unpaid.json()["error"]) == (400, "NO_PAYMENT_OPTIONS")
    assert api.get(f"/events/{event['id']}/").json()["status"] == "draft"
    add_payment_options(api, event["id"])
    assert api.post(f"/events/{event['id']}/publish/").json() == {"published": True}
    assert api.get(f"/events/{event['id']}/").json()["status"] == "live"
    again = api.post(f"/events/{event['id']}/publish/")
    assert (again.status_code, again.json()["error"]) == (400, "ALREADY_PUBLISHED_OR_DELETED")


def test_dates_timezones_and_summary_are_validated(api: httpx.Client) -> None:
    def create(**overrides: object) -> httpx.Response:
        return api.post(f"/organizations/{ORG}/events/", json=event_body(**overrides))

    past = datetime.now(UTC).replace(microsecond=0) - timedelta(days=2)
    in_past = create(
        start={"timezone": "Europe/Istanbul", "utc": z(past)},
        end={"timezone": "Europe/Istanbul", "utc": z(past + timedelta(hours=2))},
    )
    assert (in_past.status_code, in_past.json()["error"]) == (400, "INVALID_DATE")
    assert set(in_past.json()) == {"status_code", "error", "error_description"}
    assert in_past.json()["status_code"] == 400

    mixed = create(end={"timezone": "Europe/Berlin", "utc": z(START + timedelta(hours=2))})
    assert mixed.json()["error"] == "DIFFERENT_TIMEZONES"
    nowhere = create(
        start={"timezone": "Mars/Olympus", "utc": z(START)},
        end={"timezone": "Mars/Olympus", "utc": z(START + timedelta(hours=2))},
    )
    assert nowhere.json()["error"] == "UNSUPPORTED_TIMEZONE"
    both = create(summary="Short and sweet")
    assert both.json()["error"] == "SUMMARY_DESCRIPTION_CONFLICT"

    body = event_body(summary="Talks <b>and</b> pizza")
    del body["event"]["description"]
    summarized = api.post(f"/organizations/{ORG}/events/", json=body).json()
    assert summarized["summary"] == "Talks and pizza"  # plaintext, HTML removed

    event = create().json()
    moved = api.post(
        f"/events/{event['id']}/",
        json={"event": {"start": {"timezone": "Europe/Istanbul", "utc": z(past)}}},
    )
    assert moved.json()["error"] == "INVALID_DATE"
    renamed = api.post(f"/events/{event['id']}/", json={"event": {"name": {"html": "New"}}})
    assert renamed.json()["name"]["text"] == "New"


def test_payment_options_are_required_to_publish_paid_events(api: httpx.Client) -> None:
    def paid_draft() -> str:
        event = api.post(f"/organizations/{ORG}/events/", json=event_body()).json()
        api.post(
            f"/events/{event['id']}/ticket_classes/",
            json={"ticket_class": {"name": "GA", "capacity": 5, "cost": "TRY,10000"}},
        )
        return event["id"]

    def publish_error(event_id: str) -> str:
        reply = api.post(f"/events/{event_id}/publish/")
        assert reply.status_code == 400, reply.text
        return reply.json()["error"]

    cases = [
        ({"currency_code": "EUR"}, "NO_PAYMENT_OPTIONS"),  # none for the event's currency
        ({"country_code": None}, "PAYMENT_OPTIONS_NO_COUNTRY"),
        ({"checkout_method": None}, "PAYMENT_OPTIONS_NO_PAYMENT_TYPE"),
        ({"checkout_method": "paypal"}, "PAYMENT_OPTIONS_PAYPAL_NO_EMAIL"),
    ]
    for fields, code in cases:
        event_id = paid_draft()
        add_payment_options(api, event_id, **fields)
        assert publish_error(event_id) == code, fields

    event_id = paid_draft()
    settings = add_payment_options(
        api, event_id, checkout_method="paypal", user_instrument_vault_id="PAYPAL-ACCOUNT-1"
    )
    assert settings["checkout_method"] == "paypal" and settings["country_code"] == "TR"
    assert api.post(f"/events/{event_id}/publish/").json() == {"published": True}
    expanded = api.get(f"/events/{event_id}/", params={"expand": "checkout_settings"}).json()
    assert [s["id"] for s in expanded["checkout_settings"]] == [settings["id"]]
    listed = api.get(f"/organizations/{ORG}/checkout_settings/", params={"currency": "TRY"})
    assert settings["id"] in {s["id"] for s in listed.json()["checkout_settings"]}

    bad = api.post(
        f"/organizations/{ORG}/checkout_settings/",
        json={"checkout_settings": {"currency_code": "TRY", "checkout_method": "cash"}},
    )
    assert bad.json()["error_detail"]["ARGUMENTS_ERROR"] == {
        "checkout_settings.checkout_method": ["INVALID"]
    }
    foreign = api.post(
        f"/events/{paid_draft()}/checkout_settings/", json={"checkout_settings_ids": ["1"]}
    )
    assert foreign.json()["error_detail"]["ARGUMENTS_ERROR"] == {
        "checkout_settings_ids": ["INVALID"]
    }


def test_lifecycle_codes(api: httpx.Client, server: ServerHandle) -> None:
    event, ticket = make_live_event(api, capacity=5)
    draft = api.post(f"/organizations/{ORG}/events/", json=event_body()).json()
    assert api.post(f"/events/{draft['id']}/unpublish/").json()["error"] == "NOT_PUBLISHED"
    sandbox_of(server).simulate_registrations(event["id"], 1, seed=1)
    assert api.post(f"/events/{event['id']}/unpublish/").json()["error"] == "CANNOT_UNPUBLISH"
    assert api.post(f"/events/{event['id']}/cancel/").json()["error"] == "CANNOT_CANCEL"
    assert api.delete(f"/events/{event['id']}/").json()["error"] == "CANNOT_DELETE"
    euro = api.post(f"/events/{event['id']}/", json={"event": {"currency": "EUR"}})
    assert euro.json()["error"] == "CANNOT_UPDATE_CURRENCY"
    repriced = api.post(
        f"/events/{event['id']}/ticket_classes/{ticket['id']}/",
        json={"ticket_class": {"cost": "TRY,1"}},
    )
    assert repriced.json()["error"] == "CANNOT_UPDATE_COST"
    assert api.post(f"/events/{draft['id']}/cancel/").json() == {"canceled": True}
    assert api.post(f"/events/{draft['id']}/cancel/").json()["error"] == "ALREADY_CANCELED"
    put = api.put(f"/events/{event['id']}/", json={"event": {"capacity": 3}})
    assert (put.status_code, put.json()["error"]) == (405, "METHOD_NOT_ALLOWED")


def test_public_page_is_on_the_sandbox(api: httpx.Client) -> None:
    event, _ = make_live_event(api)
    page = httpx.get(event["url"])
    assert page.status_code == 200 and "Python İstanbul #42" in page.text
    assert "General admission" in page.text and "TRY250.00" in page.text
    draft = api.post(f"/organizations/{ORG}/events/", json=event_body()).json()
    assert httpx.get(draft["url"]).status_code == 404


def test_legacy_user_endpoints_answer_as_retired(api: httpx.Client) -> None:
    """[E1] "Create Webhooks - deprecated" / "List of Webhooks - deprecation": 403 since
    2020-06-01; POST /v3/events/ is one of the same legacy user endpoints."""
    for method, path in [
        ("POST", "/events/"),
        ("GET", "/webhooks/"),
        ("POST", "/webhooks/"),
        ("GET", "/checkout_settings/"),
    ]:
        reply = api.request(method, path, json={"event": event_body()["event"]})
        assert reply.status_code == 403, (method, path)
        assert reply.json() == {
            "status_code": 403,
            "error_description": "This user is not able to use legacy user endpoints, "
            "please use the organization equivalent.",
            "error": "NOT_AUTHORIZED",
        }


def test_capacity_tier(api: httpx.Client, server: ServerHandle) -> None:
    event, _ = make_live_event(api, capacity=10)
    sandbox_of(server).simulate_registrations(event["id"], 3, seed=3)
    tier = api.get(f"/events/{event['id']}/capacity_tier/").json()
    assert tier["capacity_total"] == 10 and tier["capacity_sold"] >= 3
    raised = api.post(f"/events/{event['id']}/capacity_tier/", json={"capacity_total": 12}).json()
    assert raised["capacity_total"] == 12
    below = api.post(f"/events/{event['id']}/capacity_tier/", json={"capacity_total": 1})
    assert below.json()["error"] == "ARGUMENTS_ERROR"


# --------------------------------------------------------------------------- registrations


def test_simulated_orders_are_realistic_and_respect_capacity(
    api: httpx.Client, server: ServerHandle
) -> None:
    event, ticket = make_live_event(api, capacity=6)
    ids = sandbox_of(server).simulate_registrations(event["id"], 10, seed=7)
    assert 3 <= len(ids) <= 6
    orders = api.get(f"/events/{event['id']}/orders/", params={"expand": "attendees"}).json()
    attendees = [a for o in orders["orders"] for a in o["attendees"]]
    assert len(attendees) == 6  # sold out, not oversold
    order = orders["orders"][0]
    assert len(order["id"]) == 10 and order["status"] == "placed"
    assert order["costs"]["gross"]["value"] == 25000 * len(order["attendees"])
    first = attendees[0]
    assert len(first["id"]) == 10 and first["status"] == "Attending"
    assert first["profile"]["name"] and "@" in first["profile"]["email"]
    assert first["profile"]["cell_phone"]
    assert first["costs"]["gross"] == {
        "currency": "TRY",
        "value": 25000,
        "major_value": "250.00",
        "display": "TRY250.00",
    }
    assert first["ticket_class_id"] == ticket["id"]
    assert sandbox_of(server).simulate_registrations(event["id"], 3) == []
    single = api.get(f"/orders/{order['id']}/", params={"expand": "attendees"}).json()
    assert single["attendees"] == order["attendees"]


def test_continuation_pagination_over_three_pages(api: httpx.Client, server: ServerHandle) -> None:
    event, _ = make_live_event(api, capacity=500, cost=None)
    response = httpx.post(
        f"{server.url}/_sandbox/simulate/registrations",
        json={"event_id": event["id"], "count": 120, "seed": 11},
    )
    assert len(response.json()["ids"]) == 120
    seen: list[str] = []
    pages = 0
    params: dict[str, str] = {}
    while True:
        body = api.get(f"/events/{event['id']}/attendees/", params=params).json()
        pages += 1
        pagination = body["pagination"]
        assert pagination["page_size"] == 50 and pagination["page_number"] == pages
        seen += [a["id"] for a in body["attendees"]]
        if not pagination["has_more_items"]:
            assert "continuation" not in pagination
            break
        params = {"continuation": pagination["continuation"]}
    assert pages >= 3 and pages == pagination["page_count"]
    assert len(seen) == len(set(seen)) == pagination["object_count"] >= 120
    first = api.get(f"/events/{event['id']}/attendees/").json()["pagination"]["continuation"]
    mismatch = api.get(
        f"/events/{event['id']}/attendees/", params={"continuation": first, "status": "attending"}
    )
    assert (mismatch.status_code, mismatch.json()["error"]) == (400, "BAD_CONTINUATION_TOKEN")
    garbage = api.get(f"/events/{event['id']}/attendees/", params={"continuation": "%%%"})
    assert garbage.json()["error"] == "BAD_CONTINUATION_TOKEN"


def test_changed_since_returns_only_changed_attendees(
    api: httpx.Client, server: ServerHandle
) -> None:
    event, ticket = make_live_event(api, capacity=50)
    order_ids = sandbox_of(server).simulate_registrations(event["id"], 5, seed=5)
    time.sleep(1.05)  # changed_since has one-second resolution and is inclusive
    since = z(datetime.now(UTC))
    assert (
        api.get(f"/events/{event['id']}/attendees/", params={"changed_since": since}).json()[
            "attendees"
        ]
        == []
    )
    refund = httpx.post(f"{server.url}/_sandbox/simulate/refund", json={"order_id": order_ids[2]})
    refunded_ids = {a["id"] for a in refund.json()["attendees"]}
    changed = api.get(f"/events/{event['id']}/attendees/", params={"changed_since": since}).json()
    assert {a["id"] for a in changed["attendees"]} == refunded_ids
    assert all(a["refunded"] and a["status"] == "Not Attending" for a in changed["attendees"])
    assert api.get(f"/orders/{order_ids[2]}/").json()["status"] == "refunded"
    not_attending = api.get(
        f"/events/{event['id']}/attendees/", params={"status": "not_attending"}
    ).json()
    assert {a["id"] for a in not_attending["attendees"]} == refunded_ids
    sold = api.get(f"/events/{event['id']}/ticket_classes/{ticket['id']}/").json()
    assert sold["quantity_sold"] == sum(
        len(api.get(f"/orders/{o}/", params={"expand": "attendees"}).json()["attendees"])
        for o in order_ids
        if o != order_ids[2]
    )


def test_access_code_unlocks_hidden_ticket_class(api: httpx.Client, server: ServerHandle) -> None:
    event, _ = make_live_event(api, capacity=1)
    waitlist = api.post(
        f"/events/{event['id']}/ticket_classes/",
        json={"ticket_class": {"name": "Waitlist", "capacity": 1, "hidden": True, "free": True}},
    ).json()
    sandbox = sandbox_of(server)
    assert len(sandbox.simulate_registrations(event["id"], 3, seed=1)) == 1
    discount = api.post(
        f"/organizations/{ORG}/discounts/",
        json={
            "discount": {
                "type": "access",
                "code": "WAIT-1",
                "event_id": event["id"],
                "ticket_class_ids": [waitlist["id"]],
                "quantity_available": 1,
            }
        },
    ).json()
    assert discount["quantity_sold"] == 0
    # The event itself is full: the code unlocks the class but there is no seat yet.
    assert sandbox.simulate_registrations(event["id"], 1, seed=2, access_code="WAIT-1") == []
    api.post(f"/events/{event['id']}/capacity_tier/", json={"capacity_total": 2})
    placed = sandbox.simulate_registrations(event["id"], 1, seed=2, access_code="WAIT-1")
    order = api.get(f"/orders/{placed[0]}/", params={"expand": "attendees"}).json()
    assert order["attendees"][0]["ticket_class_id"] == waitlist["id"]
    assert api.get(f"/discounts/{discount['id']}/").json()["quantity_sold"] == 1


# --------------------------------------------------------------------------- webhooks


def test_webhook_registration_ping_and_order_placed(
    api: httpx.Client, server: ServerHandle, receiver: Receiver
) -> None:
    event, _ = make_live_event(api)
    hook = api.post(
        f"/organizations/{ORG}/webhooks/",
        json={"endpoint_url": receiver.url, "actions": "order.placed,order.refunded"},
    ).json()
    assert hook["actions"] == ["order.placed", "order.refunded"]
    assert hook["resource_uri"] == f"{server.url}/v3/webhooks/{hook['id']}/"
    other = api.post(
        f"/organizations/{ORG}/webhooks/",
        json={"endpoint_url": receiver.url + "?other", "actions": "order.placed", "event_id": "1"},
    )
    assert other.status_code == 404  # unknown event
    wait_until(lambda: receiver.of("test"))
    headers, ping = receiver.of("test")[0]
    assert "{api-endpoint-to-fetch-object-details}" in ping["api_url"]
    assert headers["X-Eventbrite-Event"] == "test"

    ids = sandbox_of(server).simulate_registrations(event["id"], 2, seed=9)
    wait_until(lambda: len(receiver.of("order.placed")) == 2)
    for (headers, body), order_id in zip(receiver.of("order.placed"), ids, strict=True):
        assert headers["X-Eventbrite-Event"] == "order.placed"
        assert headers["User-Agent"].startswith("Eventbrite Hookshot")
        assert headers["Content-Type"] == "application/json"
        assert len(headers["X-Eventbrite-Delivery"]) >= 16
        assert body == {
            "config": {
                "action": "order.placed",
                "user_id": hook["user_id"],
                "endpoint_url": receiver.url,
                "webhook_id": hook["id"],
            },
            "api_url": f"{server.url}/v3/orders/{order_id}/",
        }
    deliveries = {h["X-Eventbrite-Delivery"] for h, _ in receiver.calls}
    assert len(deliveries) == len(receiver.calls)

    listed = api.get(f"/organizations/{ORG}/webhooks/").json()
    assert [w["id"] for w in listed["webhooks"]] == [hook["id"]]
    assert api.delete(f"/webhooks/{hook['id']}/").json() == {"success": True}
    assert api.get(f"/organizations/{ORG}/webhooks/").json()["webhooks"] == []


def test_webhook_duplicate_and_out_of_order_faults(
    api: httpx.Client, server: ServerHandle, receiver: Receiver
) -> None:
    event, _ = make_live_event(api, cost=None)
    api.post(
        f"/organizations/{ORG}/webhooks/",
        json={"endpoint_url": receiver.url, "actions": "order.placed", "event_id": event["id"]},
    )
    wait_until(lambda: receiver.of("test"))
    httpx.post(
        f"{server.url}/_sandbox/config",
        json={"webhooks": {"duplicate": True, "out_of_order": True}},
    )
    ids = sandbox_of(server).simulate_registrations(event["id"], 3, seed=4)
    wait_until(lambda: len(receiver.of("order.placed")) == 6)
    urls = [
        body["api_url"].rstrip("/").rsplit("/", 1)[1] for _, body in receiver.of("order.placed")
    ]
    assert urls == [i for i in reversed(ids) for _ in (0, 1)]
    delivery_ids = [h["X-Eventbrite-Delivery"] for h, _ in receiver.of("order.placed")]
    assert delivery_ids[0] == delivery_ids[1] and delivery_ids[1] != delivery_ids[2]


def test_webhook_actions_are_optional(
    api: httpx.Client, server: ServerHandle, receiver: Receiver
) -> None:
    """[E1] "Create Webhook (object)": actions optional; absent, every action fires."""
    hook = api.post(f"/organizations/{ORG}/webhooks/", json={"endpoint_url": receiver.url})
    assert hook.status_code == 200, hook.text
    assert "order.placed" in hook.json()["actions"] and "event.created" in hook.json()["actions"]
    wait_until(lambda: receiver.of("test"))
    event, _ = make_live_event(api, cost=None)
    sandbox_of(server).simulate_registrations(event["id"], 1, seed=3)
    wait_until(lambda: receiver.of("event.created") and receiver.of("order.placed"))
    assert receiver.of("event.published") and receiver.of("ticket_class.created")
    unknown = api.post(
        f"/organizations/{ORG}/webhooks/",
        json={"endpoint_url": receiver.url, "actions": "order.eaten"},
    )
    assert unknown.json()["error_detail"]["ARGUMENTS_ERROR"] == {"actions": ["INVALID"]}


def test_a_hanging_endpoint_does_not_delay_the_others(
    api: httpx.Client, server: ServerHandle, receiver: Receiver
) -> None:
    release = threading.Event()
    arrived = threading.Event()
    app = Flask("hanging")

    @app.post("/hang")
    def hang() -> tuple[str, int]:
        arrived.set()
        release.wait(20)
        return "", 200

    hanging = serve_in_thread(app)
    try:
        event, _ = make_live_event(api, cost=None)
        for url in (f"{hanging.url}/hang", receiver.url):
            api.post(
                f"/organizations/{ORG}/webhooks/",
                json={"endpoint_url": url, "actions": "order.placed"},
            )
        assert arrived.wait(5)  # the hanging endpoint holds its test ping
        wait_until(lambda: receiver.of("test"), timeout=3)
        started = time.monotonic()
        ids = sandbox_of(server).simulate_registrations(event["id"], 2, seed=5)
        wait_until(lambda: len(receiver.of("order.placed")) == 2, timeout=3)
        assert time.monotonic() - started < 2.0
        assert [
            b["api_url"].rstrip("/").rsplit("/", 1)[1] for _, b in receiver.of("order.placed")
        ] == ids
    finally:
        release.set()
        hanging.stop()


# --------------------------------------------------------------------------- faults, restart


def test_latency_fault_slows_api_calls_only(api: httpx.Client, server: ServerHandle) -> None:
    httpx.post(f"{server.url}/_sandbox/config", json={"latency_ms": 300})
    started = time.monotonic()
    assert api.get("/users/me/").status_code == 200
    assert time.monotonic() - started >= 0.3
    started = time.monotonic()
    assert httpx.get(f"{server.url}/_sandbox/health").status_code == 200
    assert time.monotonic() - started < 0.3
    httpx.post(f"{server.url}/_sandbox/reset")


def test_rate_limit_and_server_error_faults(api: httpx.Client, server: ServerHandle) -> None:
    httpx.post(
        f"{server.url}/_sandbox/config", json={"rate_limit": {"limit": 1, "window_seconds": 30}}
    )
    assert api.get("/users/me/").status_code == 200
    limited = api.get("/users/me/")
    assert limited.status_code == 429
    assert limited.json()["error"] == "HIT_RATE_LIMIT"
    assert 1 <= int(limited.headers["Retry-After"]) <= 30
    httpx.post(f"{server.url}/_sandbox/reset")
    httpx.post(f"{server.url}/_sandbox/config", json={"fail_next": {"count": 1, "status": 500}})
    failed = api.get("/users/me/")
    assert failed.status_code == 500 and failed.json()["error"] == "INTERNAL_ERROR"
    assert api.get("/users/me/").status_code == 200


def test_state_survives_restart(tmp_path) -> None:
    path = str(tmp_path / "eb.sqlite")
    first = serve_in_thread(create_app(path))
    try:
        with httpx.Client(base_url=f"{first.url}/v3", params={"token": TOKEN}) as api:
            event, ticket = make_live_event(api)
            ids = sandbox_of(first).simulate_registrations(event["id"], 4, seed=2)
            hook = api.post(
                f"/organizations/{ORG}/webhooks/",
                json={"endpoint_url": "http://127.0.0.1:9/x", "actions": "order.placed"},
            ).json()
    finally:
        first.stop()
    sandbox_of(first).store.close()

    second = serve_in_thread(create_app(path))
    try:
        with httpx.Client(base_url=f"{second.url}/v3", params={"token": TOKEN}) as api:
            assert api.get(f"/events/{event['id']}/").json()["status"] == "live"
            orders = api.get(f"/events/{event['id']}/orders/").json()
            assert [o["id"] for o in orders["orders"]] == ids
            webhooks = api.get(f"/organizations/{ORG}/webhooks/").json()["webhooks"]
            assert [w["id"] for w in webhooks] == [hook["id"]]
            tc = api.get(f"/events/{event['id']}/ticket_classes/{ticket['id']}/").json()
            assert tc["quantity_sold"] >= 4
            newer = api.post(f"/organizations/{ORG}/events/", json=event_body()).json()
            assert int(newer["id"]) > int(event["id"])
    finally:
        second.stop()


def test_public_base_url_names_api_urls() -> None:
    app = create_app(public_base_url="https://eventbrite.sandbox.example/")
    client = app.test_client()
    auth = {"Authorization": f"Bearer {TOKEN}"}
    event = client.post(f"/v3/organizations/{ORG}/events/", json=event_body(), headers=auth).json
    assert event["resource_uri"] == f"https://eventbrite.sandbox.example/v3/events/{event['id']}/"
