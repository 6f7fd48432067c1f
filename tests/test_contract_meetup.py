"""Meetup contract tests: the adapter's documents against Meetup's own schema.

The schema here is built straight from ``contracts/meetup-gql-ext.introspection.json``
(Meetup's published introspection reply), not through the emulator, so an emulator that
agreed with an adapter mistake could not hide it:

- every GraphQL request the adapter sends in a full cycle (connect, publish a free and a
  paid event, find it again, update it, change capacity, close and re-open RSVPs, pull
  RSVPs page by page) is recorded on the wire (an httpx request hook) and each document is
  validated with ``graphql.validate`` and its variables coerced against the schema;
- the adapter's schema-derived constants (fee currencies, payment method, statuses) still
  match the schema's enums;
- the live endpoints the hub would call are the documented ones;
- a widely used third-party client, ``gql`` with ``fetch_schema_from_transport=True``,
  introspects the emulator (getting the real schema back) and runs a query and a mutation.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit
from uuid import uuid4
from zoneinfo import ZoneInfo

import httpx
import pytest
from gql import Client
from gql import gql as gql_document
from gql.transport.exceptions import TransportQueryError
from gql.transport.httpx import HTTPXTransport
from graphql import (
    GraphQLEnumType,
    GraphQLSchema,
    build_client_schema,
    parse,
    print_type,
    validate,
)
from graphql.execution.values import get_variable_values
from graphql.language import OperationDefinitionNode

from hub.models import Event
from hub.settings import Settings
from integrations import meetup
from integrations.meetup import MeetupAdapter, MeetupOAuth, MeetupTokens, connect
from integrations.sandbox.common import ServerHandle, serve_in_thread
from integrations.sandbox.credentials import (
    MEETUP_CLIENT_ID,
    MEETUP_CLIENT_SECRET,
    MEETUP_GROUP_URLNAME,
    MEETUP_REDIRECT_URI,
)
from integrations.sandbox.meetup import create_app

CONTRACT = Path(__file__).resolve().parents[1] / "contracts" / "meetup-gql-ext.introspection.json"
IST = ZoneInfo("Europe/Istanbul")
ADAPTER_OPERATIONS = {
    "hubCreateEvent",
    "hubEditEvent",
    "hubPublishEventDraft",
    "hubCloseEventRsvps",
    "hubOpenEventRsvps",
    "hubGroupEvents",
    "hubEventRsvps",
}


@pytest.fixture(scope="module")
def schema() -> GraphQLSchema:
    return build_client_schema(json.loads(CONTRACT.read_text(encoding="utf-8"))["data"])


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerHandle]:
    handle = serve_in_thread(create_app(str(tmp_path_factory.mktemp("meetup") / "m.sqlite")))
    yield handle
    handle.stop()


def enum_names(schema: GraphQLSchema, name: str) -> set[str]:
    enum = schema.type_map[name]
    assert isinstance(enum, GraphQLEnumType)
    return set(enum.values)


def problems(schema: GraphQLSchema, body: dict[str, Any]) -> list[str]:
    """Everything the live API would refuse in one request body: validation errors of the
    document, then coercion errors of its variables."""
    document = parse(body["query"])
    errors = [e.message for e in validate(schema, document)]
    if errors:
        return errors
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    assert len(operations) == 1
    if body.get("operationName") is not None:
        assert operations[0].name and operations[0].name.value == body["operationName"]
    coerced = get_variable_values(
        schema, operations[0].variable_definitions or [], body.get("variables") or {}
    )
    return [e.message for e in coerced] if isinstance(coerced, list) else []


class MemoryTokenStore:
    def __init__(self) -> None:
        self.data: dict[str, dict[str, Any]] = {}

    def load(self, platform: str) -> dict[str, Any] | None:
        return dict(self.data[platform]) if platform in self.data else None

    def save(self, platform: str, credentials: dict[str, Any], expires_at: Any) -> None:
        self.data[platform] = dict(credentials)


def hub_event(**overrides: Any) -> Event:
    start = datetime(2027, 3, 4, 19, 0, tzinfo=IST) + timedelta(days=len(overrides) * 7)
    data: dict[str, Any] = {
        "id": uuid4(),
        "slug": f"contract-{uuid4().hex[:6]}",
        "title": f"Contract check {uuid4().hex[:6]}",
        "description": "Talks\n\nPizza",
        "starts_at": start,
        "ends_at": start + timedelta(hours=2),
        "timezone": "Europe/Istanbul",
        "online_url": "https://meet.example/contract",
        "total_capacity": 50,
        "price_minor": 0,
        "currency": "TRY",
        "status": "scheduled",
        "version": 1,
    }
    data.update(overrides)
    return Event(**data)


def record_adapter_cycle(server: ServerHandle) -> list[dict[str, Any]]:
    """Run every adapter operation against the emulator; the GraphQL bodies as sent."""
    sent: list[dict[str, Any]] = []

    async def on_request(request: httpx.Request) -> None:
        if request.url.path.endswith(meetup.GRAPHQL_PATH):
            sent.append(json.loads(request.content))

    async def cycle() -> None:
        async with httpx.AsyncClient(timeout=10, event_hooks={"request": [on_request]}) as http:
            oauth = MeetupOAuth(
                server.url, MEETUP_CLIENT_ID, MEETUP_CLIENT_SECRET, MEETUP_REDIRECT_URI, http
            )
            store = MemoryTokenStore()
            await connect(oauth, store, await meetup.sandbox_authorize(oauth, "contract"))
            adapter = MeetupAdapter(
                server.url,
                tokens=MeetupTokens(oauth, store),
                group_urlname=MEETUP_GROUP_URLNAME,
                client=http,
            )
            sandbox = server.app.extensions["sandbox"]
            free = hub_event()
            paid = hub_event(price_minor=15000, venue_name="Kadıköy", venue_address="Moda")
            for event in (free, paid):
                pub = await adapter.publish_event(event, capacity=30)
                assert await adapter.find_existing(event) is not None
                moved = event.model_copy(update={"title": event.title + " (moved)"})
                await adapter.update_event(moved, pub.platform_event_id, capacity=40)
                await adapter.update_capacity(pub.platform_event_id, 35)
                await adapter.close_sales(pub.platform_event_id)
                await adapter.open_sales(pub.platform_event_id)
                sandbox.simulate_registrations(pub.platform_event_id, 45, seed=1)
                cursor = None
                while True:
                    page = await adapter.list_registrations(pub.platform_event_id, cursor, 20)
                    cursor = page.next_cursor
                    if not page.has_more:
                        break
            await adapter.publish_event(hub_event(), capacity=0)  # closes RSVPs at once

    asyncio.run(cycle())
    return sent


def test_every_document_the_adapter_sends_validates_against_the_real_schema(
    schema: GraphQLSchema, server: ServerHandle
) -> None:
    sent = record_adapter_cycle(server)
    names = {body.get("operationName") for body in sent}
    assert names == ADAPTER_OPERATIONS  # every operation the adapter has was exercised
    refused = {body["operationName"]: found for body in sent if (found := problems(schema, body))}
    assert refused == {}
    paid_creates = [
        b
        for b in sent
        if b["operationName"] == "hubCreateEvent" and "feeOption" in b["variables"]["input"]
    ]
    assert paid_creates, "the cycle must include a paid event"
    fee = paid_creates[0]["variables"]["input"]["feeOption"]
    assert fee == {"amount": 150, "currency": "TRY", "paymentMethod": "CASH"}
    print(f"\nMeetup contract: {len(sent)} documents sent, {len(names)} operations, all valid")


def test_the_check_refuses_what_the_live_api_refuses(schema: GraphQLSchema) -> None:
    """The validator above is not a rubber stamp: yesterday's adapter mistakes fail it."""
    create = {"query": meetup.CREATE_EVENT, "operationName": "hubCreateEvent"}
    base = {
        "groupUrlname": "g",
        "title": "t",
        "description": "d",
        "startDateTime": "2027-01-01T19:00:00+03:00",
    }
    old_fee = {"amount": 150.5, "currency": "TRY", "required": True}
    errors = problems(schema, {**create, "variables": {"input": {**base, "feeOption": old_fee}}})
    assert errors and ("required" in errors[0] or "150.5" in errors[0])
    bad_enum = {"amount": 150, "paymentMethod": "CARDS"}
    assert problems(schema, {**create, "variables": {"input": {**base, "feeOption": bad_enum}}})
    invented = "query { event(id: 1) { id isOnline going rsvpSettings { rsvpLimit } } }"
    assert len(problems(schema, {"query": invented})) == 3
    old_close = "mutation { closeEventRsvps(input: {eventId: 1}) { success } }"
    assert problems(schema, {"query": old_close})


def test_adapter_documents_and_constants_match_the_schema(schema: GraphQLSchema) -> None:
    for name in (
        "CREATE_EVENT",
        "EDIT_EVENT",
        "PUBLISH_EVENT_DRAFT",
        "CLOSE_EVENT_RSVPS",
        "OPEN_EVENT_RSVPS",
        "GROUP_EVENTS",
        "EVENT_RSVPS",
    ):
        assert validate(schema, parse(getattr(meetup, name))) == [], name
    assert enum_names(schema, "EventFeeCurrency") == set(meetup.FEE_CURRENCIES)
    assert meetup.PAYMENT_METHOD in enum_names(schema, "PaymentMethod")
    assert set(meetup.EVENT_STATUS_WORDS) <= enum_names(schema, "EventStatus")
    assert set(meetup.RSVP_STATUS_MAP) == enum_names(schema, "RsvpStatus")
    assert set(meetup.ALL_RSVP_STATUSES) <= enum_names(schema, "RsvpStatus")


def test_live_endpoints_are_the_documented_ones() -> None:
    """CONTRACTS.md: POST https://api.meetup.com/gql-ext; OAuth at secure.meetup.com/oauth2."""
    live = Settings(mode="live", meetup_base_url=None, meetup_oauth_base_url=None)
    adapter = MeetupAdapter(
        live.base_url("meetup"),
        tokens=MeetupTokens(
            MeetupOAuth(live.base_url("meetup_oauth"), "id", "secret", "https://x/cb"),
            MemoryTokenStore(),
        ),
        group_urlname="g",
    )
    assert adapter.endpoint == "https://api.meetup.com/gql-ext"
    oauth = adapter.tokens.oauth
    assert oauth.authorization_url("s").startswith("https://secure.meetup.com/oauth2/authorize?")
    assert f"{oauth.base_url}{meetup.OAUTH_TOKEN_PATH}" == "https://secure.meetup.com/oauth2/access"


# --------------------------------------------------------------------------- a real client


def access_token(server: ServerHandle) -> str:
    with httpx.Client(base_url=server.url) as http:
        location = http.get(
            "/oauth2/authorize",
            params={
                "client_id": MEETUP_CLIENT_ID,
                "response_type": "code",
                "redirect_uri": MEETUP_REDIRECT_URI,
            },
        ).headers["Location"]
        code = parse_qs(urlsplit(location).query)["code"][0]
        reply = http.post(
            "/oauth2/access",
            data={
                "client_id": MEETUP_CLIENT_ID,
                "client_secret": MEETUP_CLIENT_SECRET,
                "grant_type": "authorization_code",
                "redirect_uri": MEETUP_REDIRECT_URI,
                "code": code,
            },
        )
        return reply.json()["access_token"]


def test_gql_client_introspects_and_runs_a_query_and_a_mutation(
    schema: GraphQLSchema, server: ServerHandle
) -> None:
    transport = HTTPXTransport(
        url=f"{server.url}/gql-ext",
        headers={"Authorization": f"Bearer {access_token(server)}"},
        timeout=10,
    )
    client = Client(transport=transport, fetch_schema_from_transport=True)
    with client as session:
        served = client.schema
        assert served is not None
        # introspection gives back Meetup's schema, type for type
        for name in ("Event", "CreateEventInput", "EventFeeOption", "RsvpOpenSettings", "Mutation"):
            assert print_type(served.type_map[name]) == print_type(schema.type_map[name])
        assert len([t for t in served.type_map if not t.startswith("__")]) == len(
            [t for t in schema.type_map if not t.startswith("__")]
        )

        created = session.execute(
            gql_document(
                """mutation create($input: CreateEventInput!) {
                  createEvent(input: $input) {
                    event { id title status dateTime maxTickets feeSettings { amount currency } }
                    errors { code field message }
                  }
                }"""
            ),
            variable_values={
                "input": {
                    "groupUrlname": MEETUP_GROUP_URLNAME,
                    "title": "Through gql",
                    "description": "<p>A third-party client</p>",
                    "startDateTime": "2027-09-01T19:00:00+03:00",
                    "duration": "PT2H",
                    "rsvpSettings": {"rsvpLimit": 12},
                    "feeOption": {"amount": 80, "currency": "TRY", "paymentMethod": "CASH"},
                }
            },
        )["createEvent"]
        assert created["errors"] is None
        event = created["event"]
        assert event["status"] == "ACTIVE" and event["maxTickets"] == 12
        assert event["dateTime"] == "2027-09-01T19:00:00+03:00"
        assert event["feeSettings"] == {"amount": 80.0, "currency": "TRY"}

        read = session.execute(
            gql_document(
                """query one($id: ID!) {
                  event(id: $id) {
                    id title eventUrl waitlistMode rsvpSettings { rsvpsClosed }
                    group { urlname }
                    rsvps(first: 5) { totalCount pageInfo { hasNextPage } }
                  }
                }"""
            ),
            variable_values={"id": event["id"]},
        )["event"]
        assert read["title"] == "Through gql" and read["group"]["urlname"] == MEETUP_GROUP_URLNAME
        assert read["eventUrl"].startswith(server.url)
        assert read["rsvpSettings"] == {"rsvpsClosed": False}
        assert read["rsvps"] == {"totalCount": 1, "pageInfo": {"hasNextPage": False}}  # self RSVP

        # gql itself refuses an invented field with the introspected schema
        with pytest.raises(Exception, match="isOnline"):
            session.execute(gql_document("query { self { id } event(id: 1) { isOnline } }"))
        # and the server answers a float amount as Meetup does
        with pytest.raises(TransportQueryError) as refused:
            session.execute(
                gql_document(
                    "mutation($input: CreateEventInput!) "
                    "{ createEvent(input: $input) { errors { code } } }"
                ),
                variable_values={
                    "input": {
                        "groupUrlname": MEETUP_GROUP_URLNAME,
                        "title": "x",
                        "description": "x",
                        "startDateTime": "2027-09-01T19:00:00+03:00",
                        "feeOption": {"amount": 80.5},
                    }
                },
            )
        error = refused.value.errors[0]
        assert error["extensions"] == {"classification": "ValidationError"}
