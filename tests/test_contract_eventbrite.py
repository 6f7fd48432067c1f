"""Eventbrite contract tests: a real third-party client against the emulator, and the
adapter's requests, recorded on the wire, against the documented request shapes.

Eventbrite publishes no machine-readable schema that the project carries (contracts/ has
none for it); its contract is CONTRACTS.md Part 1 section 2, the official ``eventbrite``
Python SDK (installed with the dev extra) and Eventbrite's API Blueprint [E1]
(vishalsachdev/eventbrite-mcp ``api-docs/eventbriteapiv3public.apib``). The request shapes
below are transcribed from the Blueprint's data structures, each named where it is used, so
the adapter is checked against Eventbrite's documents and not against the emulator (which
the adapter's own tests already use).
"""

from __future__ import annotations

import ast
import io
import json
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import parse_qs

import httpx
import pytest
from eventbrite import Eventbrite
from eventbrite.utils import format_path

from hub.models import Event
from hub.settings import LIVE_BASE_URLS, Mode, Settings
from integrations.eventbrite import EventbriteAdapter, parse_webhook
from integrations.sandbox.common import ServerHandle, serve_in_thread
from integrations.sandbox.credentials import EVENTBRITE_ORGANIZATION_ID as ORG
from integrations.sandbox.credentials import EVENTBRITE_TOKEN as TOKEN
from integrations.sandbox.eventbrite import create_app
from tests.sandboxes import WebhookCollector

ROOT = Path(__file__).resolve().parents[1]
START = datetime.now(UTC).replace(microsecond=0) + timedelta(days=25)
UTC_FORMAT = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")


# --------------------------------------------------------------------------- the documents

# [E1] "Event Create (object)" and "Event Update (object)" (the same attribute names).
EVENT_FIELDS = {
    "name", "summary", "description", "start", "end", "hide_start_date", "hide_end_date",
    "currency", "online_event", "organizer_id", "logo_id", "venue_id", "format_id",
    "category_id", "subcategory_id", "listed", "shareable", "invite_only", "show_remaining",
    "password", "capacity", "is_reserved_seating", "is_series", "show_pick_a_seat",
    "show_seatmap_thumbnail", "show_colors_in_seatmap_thumbnail", "source", "locale",
}  # fmt: skip
# [E1] "Ticket Class Create (Ticket Class)".
TICKET_CLASS_FIELDS = {
    "cost", "name", "description", "sorting", "capacity", "quantity_total", "donation",
    "free", "include_fee", "split_fee", "hide_description", "sales_channels", "sales_start",
    "sales_end", "sales_end_relative", "sales_start_after", "minimum_quantity",
    "maximum_quantity", "auto_hide", "auto_hide_before", "auto_hide_after", "has_pdf_ticket",
    "hidden", "order_confirmation_message", "delivery_methods", "inventory_tier_id",
    "image_id",
}  # fmt: skip
# [E1] "Venue Create (Venue Base)" and "Address Request (object)".
VENUE_FIELDS = {"name", "google_place_id", "organizer_id", "address", "age_restriction", "capacity"}
ADDRESS_FIELDS = {
    "address_1", "address_2", "city", "region", "postal_code", "country", "latitude",
    "longitude",
}  # fmt: skip
# [E1] "Create Webhook (object)": top-level attributes, not wrapped.
WEBHOOK_FIELDS = {"endpoint_url", "actions", "event_id"}
# [E1] "Checkout Settings (object)".
CHECKOUT_FIELDS = {
    "country_code", "currency_code", "checkout_method", "offline_settings",
    "user_instrument_vault_id",
}  # fmt: skip
# [E1] list parameters; ``continuation`` is the Pagination object's token, sent back as is.
ORG_EVENTS_PARAMS = {
    "name_filter", "currency_filter", "order_by", "series_filter", "show_series_parent",
    "status", "event_group_id", "collection_id", "page_size", "time_filter", "venue_filter",
    "organizer_filter", "inventory_type_filter", "event_ids_to_exclude", "event_ids",
    "collection_ids_to_exclude", "continuation",
}  # fmt: skip
ATTENDEE_PARAMS = {"status", "changed_since", "last_item_seen", "attendee_ids", "continuation"}


@dataclass(frozen=True)
class Operation:
    method: str
    path: str  # regex over the path, {org} and {id} placeholders
    wrapper: str | None = None  # the resource name the body is wrapped in
    fields: frozenset[str] = frozenset()
    params: frozenset[str] = frozenset({"continuation"})
    body: bool = False

    def matches(self, method: str, path: str) -> bool:
        pattern = self.path.replace("{org}", re.escape(ORG)).replace("{id}", r"\d+")
        return method == self.method and re.fullmatch(f"/v3{pattern}", path) is not None


OPERATIONS = (
    Operation("GET", "/users/me/"),
    Operation("GET", "/organizations/{org}/events/", params=frozenset(ORG_EVENTS_PARAMS)),
    # [E1] "Create an Event": "+ event (Event Create)"
    Operation("POST", "/organizations/{org}/events/", "event", frozenset(EVENT_FIELDS), body=True),
    Operation("GET", "/events/{id}/", params=frozenset({"expand"})),
    # [E1] "Update an Event": "+ event (Event Update)"
    Operation("POST", "/events/{id}/", "event", frozenset(EVENT_FIELDS), body=True),
    Operation("POST", "/events/{id}/publish/"),
    Operation("GET", "/events/{id}/ticket_classes/"),
    Operation("GET", "/events/{id}/ticket_classes/{id}/"),
    # [E1] "Create/Update a Ticket Class": "+ `ticket_class` (Ticket Class Create)"
    Operation(
        "POST",
        "/events/{id}/ticket_classes/",
        "ticket_class",
        frozenset(TICKET_CLASS_FIELDS),
        body=True,
    ),
    Operation(
        "POST",
        "/events/{id}/ticket_classes/{id}/",
        "ticket_class",
        frozenset(TICKET_CLASS_FIELDS),
        body=True,
    ),
    Operation("GET", "/events/{id}/attendees/", params=frozenset(ATTENDEE_PARAMS)),
    Operation("GET", "/events/{id}/attendees/{id}/"),
    Operation("GET", "/orders/{id}/", params=frozenset({"expand"})),
    Operation("GET", "/organizations/{org}/venues/"),
    # [E1] "Create a Venue": "+ venue (Venue Create)"
    Operation("POST", "/organizations/{org}/venues/", "venue", frozenset(VENUE_FIELDS), body=True),
    Operation("GET", "/organizations/{org}/webhooks/"),
    Operation("POST", "/organizations/{org}/webhooks/", None, frozenset(WEBHOOK_FIELDS), body=True),
    Operation("DELETE", "/webhooks/{id}/"),
    # Checkout settings: the object is [E1]'s; the paths are v3's under the organization
    # path of Eventbrite's changelog (see integrations/sandbox/eventbrite/state.py).
    Operation(
        "GET",
        "/organizations/{org}/checkout_settings/",
        params=frozenset({"currency", "country", "checkout_methods", "continuation"}),
    ),
    Operation(
        "POST",
        "/organizations/{org}/checkout_settings/",
        "checkout_settings",
        frozenset(CHECKOUT_FIELDS),
        body=True,
    ),
    Operation("GET", "/events/{id}/checkout_settings/"),
    Operation(
        "POST",
        "/events/{id}/checkout_settings/",
        None,
        frozenset({"checkout_settings_ids"}),
        body=True,
    ),
)


# --------------------------------------------------------------------------- the wire


@dataclass
class WireRequest:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes


class WireRecorder:
    """WSGI middleware in front of the emulator: every request exactly as it arrived."""

    def __init__(self, app) -> None:
        self.app = app
        self.requests: list[WireRequest] = []

    def __call__(self, environ, start_response):
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else b""
        environ["wsgi.input"] = io.BytesIO(body)
        headers = {
            key[5:].replace("_", "-").lower(): value
            for key, value in environ.items()
            if key.startswith("HTTP_")
        }
        if environ.get("CONTENT_TYPE"):
            headers["content-type"] = environ["CONTENT_TYPE"]
        self.requests.append(
            WireRequest(
                environ["REQUEST_METHOD"],
                environ["PATH_INFO"],
                parse_qs(environ.get("QUERY_STRING", ""), keep_blank_values=True),
                headers,
                body,
            )
        )
        return self.app(environ, start_response)


@pytest.fixture()
def recorded(tmp_path) -> Iterator[tuple[ServerHandle, WireRecorder]]:
    app = create_app(str(tmp_path / "eventbrite.sqlite"))
    recorder = WireRecorder(app.wsgi_app)
    app.wsgi_app = recorder  # type: ignore[method-assign]
    handle = serve_in_thread(app)
    yield handle, recorder
    handle.stop()


@pytest.fixture()
def server(tmp_path) -> Iterator[ServerHandle]:
    handle = serve_in_thread(create_app(str(tmp_path / "eventbrite.sqlite")))
    yield handle
    handle.stop()


def hub_event(**overrides) -> Event:
    data = {
        "id": uuid.uuid4(),
        "slug": "python-istanbul-42",
        "title": "Python İstanbul #42",
        "description": "Talks.\n\nPizza after.",
        "starts_at": START,
        "ends_at": START + timedelta(hours=3),
        "timezone": "Europe/Istanbul",
        "venue_name": "Kolektif House",
        "venue_address": "Maslak, Sarıyer, İstanbul",
        "total_capacity": 100,
        "price_minor": 25000,
        "currency": "TRY",
        "status": "scheduled",
        "version": 1,
    }
    data.update(overrides)
    return Event(**data)


# --------------------------------------------------------------------------- the official SDK


def test_official_sdk_against_the_emulator(server: ServerHandle) -> None:
    """eventbrite-sdk-python builds ``eventbrite_api_url + path`` and sends JSON bodies with
    a Bearer token ([E5]): pointed at the emulator, its calls get Eventbrite's answers."""
    sdk = Eventbrite(TOKEN, eventbrite_api_url=f"{server.url}/v3/")
    assert format_path("/users/me/", sdk.eventbrite_api_url) == f"{server.url}/v3/users/me/"

    me = sdk.get_user()
    assert me.status_code == 200 and me["id"] and me["emails"][0]["primary"] is True
    orgs = sdk.get("/users/me/organizations/")
    assert [o["id"] for o in orgs["organizations"]] == [ORG] and orgs.is_paginated

    # The SDK's own create helper posts to the retired /events/: answered as live does.
    retired = sdk.post_event({"event": {"name": {"html": "x"}}})
    assert retired.status_code == 403 and retired["error"] == "NOT_AUTHORIZED"
    assert sdk.get_webhooks().status_code == 403  # legacy /webhooks/ too

    event_body = {
        "event": {
            "name": {"html": "SDK night"},
            "description": {"html": "<p>Hello</p>"},
            "start": {"timezone": "Europe/Istanbul", "utc": START.strftime("%Y-%m-%dT%H:%M:%SZ")},
            "end": {
                "timezone": "Europe/Istanbul",
                "utc": (START + timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M:%SZ"),
            },
            "currency": "TRY",
        }
    }
    event = sdk.post(f"/organizations/{ORG}/events/", data=event_body)
    assert event.status_code == 200 and event["status"] == "draft"
    assert event["url"].startswith(f"{server.url}/e/sdk-night-tickets-")
    ticket = sdk.post_event_ticket_class(
        event.id, {"ticket_class": {"name": "GA", "capacity": 200, "cost": "TRY,15000"}}
    )
    assert ticket.status_code == 200 and ticket["cost"]["value"] == 15000

    refused = sdk.publish_event(event.id)
    assert refused.status_code == 400
    assert set(refused) == {"status_code", "error", "error_description"}
    assert refused["error"] == "NO_PAYMENT_OPTIONS" and refused["status_code"] == 400
    settings = sdk.post(
        f"/organizations/{ORG}/checkout_settings/",
        data={
            "checkout_settings": {
                "country_code": "TR",
                "currency_code": "TRY",
                "checkout_method": "eventbrite",
            }
        },
    )
    sdk.post(f"/events/{event.id}/checkout_settings/", {"checkout_settings_ids": [settings.id]})
    assert sdk.publish_event(event.id) == {"published": True}
    fetched = sdk.get_event(event.id, expand="ticket_classes")
    assert fetched["status"] == "live" and fetched["ticket_classes"][0]["id"] == ticket.id
    assert sdk.get_event_ticket_classes(event.id)["ticket_classes"][0]["name"] == "GA"

    collector = WebhookCollector("/hooks/eventbrite")
    try:
        hook = sdk.post(f"/organizations/{ORG}/webhooks/", {"endpoint_url": collector.url})
        assert hook.status_code == 200 and "order.placed" in hook["actions"]
        sandbox = server.app.extensions["sandbox"]
        order_ids = sandbox.simulate_registrations(event.id, 60, seed=4)
        assert len(order_ids) == 60

        attendees, pages = [], 0
        page = sdk.get_event_attendees(event.id)
        while True:
            assert page.status_code == 200 and page.is_paginated
            attendees += page["attendees"]
            pages += 1
            if not page.pagination["has_more_items"]:
                break
            page = sdk.get(
                f"/events/{event.id}/attendees/",
                data={"continuation": page.pagination["continuation"]},
            )
        assert pages == 2 and len({a["id"] for a in attendees}) == len(attendees) >= 60
        bad = sdk.get(f"/events/{event.id}/attendees/", data={"continuation": "not-a-token"})
        assert (bad.status_code, bad["error"]) == (400, "BAD_CONTINUATION_TOKEN")
        orders = sdk.get_event_orders(event.id, expand="attendees")
        assert orders["orders"][0]["attendees"][0]["order_id"] == orders["orders"][0]["id"]
        assert sdk.get_order(order_ids[0])["id"] == order_ids[0]
        one = attendees[0]
        assert sdk.get_event_attendee(event.id, one["id"])["profile"] == one["profile"]

        # The SDK's webhook helper re-reads the object a delivery names.
        deliveries = collector.wait_for(1 + 60)  # the test ping, then one per order
        placed = [
            p
            for p in collector.payloads()
            if p["config"]["action"] == "order.placed" and order_ids[0] in p["api_url"]
        ]
        assert placed and deliveries
        assert sdk.webhook_to_object(placed[0])["id"] == order_ids[0]
        assert sdk.delete_webhook(hook.id) == {"success": True}
    finally:
        collector.handle.stop()


# --------------------------------------------------------------------------- the adapter


def _check(request: WireRequest) -> list[str]:
    """What in one recorded request departs from the documented shapes."""
    problems: list[str] = []
    where = f"{request.method} {request.path}"
    ops = [op for op in OPERATIONS if op.matches(request.method, request.path)]
    if len(ops) != 1:
        return [f"{where}: not a documented operation"]
    op = ops[0]
    if request.headers.get("authorization") != f"Bearer {TOKEN}":
        problems.append(f"{where}: no Bearer token header")
    if "token" in request.query:
        problems.append(f"{where}: token in the URL")
    unknown_params = set(request.query) - op.params
    if unknown_params:
        problems.append(f"{where}: undocumented parameters {sorted(unknown_params)}")
    if not op.body:
        if request.body and request.body not in (b"{}", b"null"):
            problems.append(f"{where}: unexpected body")
        return problems
    if not request.headers.get("content-type", "").startswith("application/json"):
        problems.append(f"{where}: body is not JSON")
        return problems
    body = json.loads(request.body)
    if op.wrapper is not None:
        if set(body) != {op.wrapper}:
            return [*problems, f"{where}: body not wrapped in {op.wrapper!r}: {sorted(body)}"]
        body = body[op.wrapper]
    unknown = set(body) - op.fields
    if unknown:
        problems.append(f"{where}: undocumented fields {sorted(unknown)}")
    if op.wrapper == "event":
        for key in ("start", "end"):
            if key in body:
                block = body[key]
                if set(block) != {"timezone", "utc"} or not UTC_FORMAT.match(block["utc"]):
                    problems.append(f"{where}: {key} is not datetime-tz-utc: {block}")
        if "start" in body and body["start"]["timezone"] != body.get("end", {}).get("timezone"):
            problems.append(f"{where}: start and end timezones differ (DIFFERENT_TIMEZONES)")
        if set(body.get("name") or {"html": ""}) != {"html"}:
            problems.append(f"{where}: name is not htmltext")
    if op.wrapper == "ticket_class":
        if "capacity" in body and (not isinstance(body["capacity"], int) or body["capacity"] < 1):
            problems.append(f"{where}: capacity {body['capacity']!r} (0/null refused)")
        if "cost" in body and not re.fullmatch(r"[A-Z]{3},\d+", str(body["cost"])):
            problems.append(f"{where}: cost {body['cost']!r} is not 'CUR,minor'")
        if body.get("free") and "cost" in body:
            problems.append(f"{where}: free and cost (FREE_AND_COST)")
        for key in ("sales_start", "sales_end"):
            if key in body and not UTC_FORMAT.match(str(body[key])):
                problems.append(f"{where}: {key} is not a UTC datetime")
    if op.wrapper == "venue" and set(body.get("address") or {}) - ADDRESS_FIELDS:
        problems.append(f"{where}: undocumented address fields")
    actions_list = r"[a-z_]+\.[a-z_]+(,[a-z_]+\.[a-z_]+)*"
    if "actions" in body and not re.fullmatch(actions_list, str(body["actions"])):
        problems.append(f"{where}: actions is not a comma-separated list of actions")
    return problems


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_adapter_requests_on_the_wire_match_the_documented_shapes(
    recorded: tuple[ServerHandle, WireRecorder], anyio_backend: str
) -> None:
    server, wire = recorded
    sandbox = server.app.extensions["sandbox"]
    async with EventbriteAdapter(
        server.url, token=TOKEN, organization_id=ORG, payout_country="TR"
    ) as eb:
        paid = await eb.publish_event(hub_event(), 80)
        free = await eb.publish_event(
            hub_event(
                title="Online", price_minor=0, venue_name=None, venue_address=None,
                online_url="https://meet.example/x",
            ),
            0,
        )  # fmt: skip
        existing = await eb.find_existing(hub_event())
        assert existing is not None
        await eb.adopt_existing(hub_event(), existing, 80)
        await eb.update_event(
            hub_event(title="Renamed", price_minor=30000), paid.platform_event_id, 90
        )
        await eb.update_capacity(free.platform_event_id, 5)
        await eb.close_sales(free.platform_event_id)
        sandbox.simulate_registrations(paid.platform_event_id, 70, seed=2)
        cursor, pulled = None, []
        while True:
            page = await eb.list_registrations(paid.platform_event_id, cursor)
            pulled += page.items
            cursor = page.next_cursor
            if not page.has_more:
                break
        assert len(pulled) >= 70
        await eb.get_registration(paid.platform_event_id, pulled[0].platform_registration_id)
        hook = await eb.register_webhook(f"{server.url}/hooks", ["order.placed"])
        await eb.list_webhooks()
        await eb.fetch_api_url(f"{server.url}/v3/orders/{pulled[0].raw['order_id']}/")
        await eb.delete_webhook(hook["id"])

    api = [r for r in wire.requests if r.path.startswith("/v3/")]
    assert len(api) > 30
    problems = [p for request in api for p in _check(request)]
    assert problems == []
    # Paths end with "/", writes are POST (no PUT/PATCH), DELETE only for webhooks.
    assert all(r.path.endswith("/") for r in api)
    assert {r.method for r in api} <= {"GET", "POST", "DELETE"}
    assert {r.path.split("/")[2] for r in api if r.method == "DELETE"} == {"webhooks"}
    # Pagination was followed by sending the continuation back.
    assert any("continuation" in r.query for r in api if r.path.endswith("/attendees/"))
    # A paid event's payment options were set before it was published.
    paid_path = f"/v3/events/{paid.platform_event_id}/"
    order = [r.path for r in api if r.method == "POST" and r.path.startswith(paid_path)]
    assert order.index(f"{paid_path}checkout_settings/") < order.index(f"{paid_path}publish/")
    # Nothing went to the retired legacy user endpoints.
    assert not [r for r in api if r.path in ("/v3/events/", "/v3/webhooks/")]


def test_documented_shapes_catch_what_live_refuses() -> None:
    """The checker is not vacuous: requests the live API refuses are flagged."""
    auth = {"authorization": f"Bearer {TOKEN}", "content-type": "application/json"}

    def request(method: str, path: str, body: object = None) -> WireRequest:
        raw = json.dumps(body).encode() if body is not None else b""
        return WireRequest(method, path, {}, auth, raw)

    assert _check(request("POST", "/v3/events/", {"event": {}}))  # retired path
    assert _check(request("PUT", "/v3/events/1/", {"event": {}}))  # no PUT
    assert _check(request("POST", "/v3/events/1", {"event": {}}))  # no trailing slash
    unwrapped = request("POST", f"/v3/organizations/{ORG}/events/", {"name": {"html": "x"}})
    assert _check(unwrapped)
    zero = request("POST", "/v3/events/1/ticket_classes/", {"ticket_class": {"capacity": 0}})
    assert _check(zero)
    invented = request("POST", "/v3/events/1/", {"event": {"require_approval": True}})
    assert _check(invented)
    offset = request(
        "POST", "/v3/events/1/", {"event": {"start": {"timezone": "UTC", "utc": "2026-01-01"}}}
    )
    assert _check(offset)


# --------------------------------------------------------------------------- boundaries


def test_live_base_url_is_the_documented_one_in_one_place() -> None:
    """[E1] "All URLs ... have the following base: https://www.eventbriteapi.com/v3"; the
    official SDK's default is the same. The adapter carries no URL of its own."""
    assert LIVE_BASE_URLS["eventbrite"] + "/v3/" == "https://www.eventbriteapi.com/v3/"
    import eventbrite.utils

    default = eventbrite.utils.EVENTBRITE_API_URL
    if "EVENTBRITE_API_URL" not in __import__("os").environ:
        assert default == LIVE_BASE_URLS["eventbrite"] + "/v3/"
    live = Settings(mode=Mode.LIVE, eventbrite_base_url=None)
    assert live.base_url("eventbrite") == LIVE_BASE_URLS["eventbrite"]
    source = (ROOT / "integrations" / "eventbrite.py").read_text()
    assert "eventbriteapi.com" not in source.replace("www.eventbriteapi.com differ", "")


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_emulator_and_adapter_import_nothing_of_each_other() -> None:
    emulator = sorted((ROOT / "integrations" / "sandbox" / "eventbrite").glob("*.py"))
    assert emulator
    for path in emulator:
        crossing = {
            name
            for name in _imports(path)
            if name.startswith("integrations.") and not name.startswith("integrations.sandbox")
        }
        assert crossing == set(), path.name
    adapter = _imports(ROOT / "integrations" / "eventbrite.py")
    assert not {name for name in adapter if name.startswith("integrations.sandbox")}


def test_webhook_delivery_is_what_the_sdk_and_adapter_read(server: ServerHandle) -> None:
    """A delivery has only ``config`` and ``api_url`` ([E5] webhook_to_object reads
    ``api_url``); the adapter's parser reads the same two fields."""
    collector = WebhookCollector("/hooks/eventbrite")
    try:
        httpx.post(
            f"{server.url}/v3/organizations/{ORG}/webhooks/",
            json={"endpoint_url": collector.url, "actions": "event.created"},
            headers={"Authorization": f"Bearer {TOKEN}"},
        )
        (headers, raw), = collector.wait_for(1)  # fmt: skip
        payload = json.loads(raw)
        assert set(payload) == {"config", "api_url"}
        assert set(payload["config"]) == {"action", "user_id", "endpoint_url", "webhook_id"}
        assert headers["X-Eventbrite-Event"] == "test" and headers["X-Eventbrite-Delivery"]
        assert parse_webhook(payload) == ("test", payload["api_url"])
    finally:
        collector.handle.stop()
