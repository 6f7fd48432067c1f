"""Contract tests: Luma's published OpenAPI documents (``contracts/luma-openapi-*.json``)
against our code, with openapi-core as an independent validator (not the emulator's own):

1. every request the adapter sends and every answer it receives, recorded on the wire while
   it runs its whole workflow against the emulator, validates against its operation in the
   current document, and the adapter uses no other generation;
2. plain calls built from the documents (each request validated by openapi-core before it
   is sent) reach every operation the emulator serves, in all three generations, and every
   answer validates;
3. the emulator's webhook payloads validate against the current document's ``webhooks``;
4. the live base URL is a ``servers`` entry of the document the adapter speaks.

The legacy document is written in the OpenAPI 3.0 dialect (``nullable``) although it says
3.1; it is validated as normalised by :func:`integrations.sandbox.luma.openapi.document`
(see there), and :func:`test_legacy_normalisation_changes_only_nullability` pins that the
normalisation touches nothing else.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from functools import cache
from typing import Any

import httpx
import pytest
from jsonschema import Draft202012Validator
from openapi_core import OpenAPI
from openapi_core.contrib.werkzeug import WerkzeugOpenAPIRequest, WerkzeugOpenAPIResponse
from werkzeug.test import EnvironBuilder
from werkzeug.wrappers import Response as WerkzeugResponse

from hub.models import Event
from hub.settings import LIVE_BASE_URLS
from integrations.luma import LumaAdapter
from integrations.sandbox.common import ServerHandle, serve_in_thread
from integrations.sandbox.credentials import LUMA_API_KEY
from integrations.sandbox.luma import create_app, routes
from integrations.sandbox.luma.openapi import GENERATIONS, LEGACY_NULLABLE, document, raw_document
from tests.sandboxes import WebhookCollector

KEY = {"x-luma-api-key": LUMA_API_KEY}


@cache
def api_of(generation: str) -> OpenAPI:
    doc = document(generation) if generation == "legacy" else raw_document(generation)
    return OpenAPI.from_dict(doc)


def generation_of(path: str) -> str:
    if path.startswith("/public/v1/"):
        return "legacy"
    current_paths = raw_document("current")["paths"]
    return "current" if path in current_paths else "transitional"


def _wz_request(generation: str, method: str, path: str, query: bytes, body: bytes, headers):
    """The request as openapi-core sees it, addressed to the document's own server (the
    emulator's host is not one of the documented ``servers``)."""
    server = raw_document(generation)["servers"][0]["url"]
    builder = EnvironBuilder(
        method=method,
        base_url=server,
        path=path,
        query_string=query.decode() if isinstance(query, bytes) else query,
        data=body or None,
        headers={k: v for k, v in dict(headers).items() if k.lower() != "host"},
    )
    return WerkzeugOpenAPIRequest(builder.get_request())


def check(method: str, path: str, query: bytes, body: bytes, headers, response: httpx.Response):
    """Validate one exchange with openapi-core; the answer only when it is a success."""
    generation = generation_of(path)
    request = _wz_request(generation, method, path, query, body, headers)
    api_of(generation).validate_request(request)
    if response.status_code < 300:
        answer = WerkzeugOpenAPIResponse(
            WerkzeugResponse(
                response.content,
                status=response.status_code,
                content_type=response.headers.get("content-type"),
            )
        )
        api_of(generation).validate_response(request, answer)


@pytest.fixture()
def server() -> Iterator[ServerHandle]:
    handle = serve_in_thread(create_app(None))
    yield handle
    handle.stop()


def make_event(**overrides: Any) -> Event:
    values: dict[str, Any] = {
        "id": uuid.uuid4(),
        "slug": "contract-night",
        "title": "Contract Night",
        "description": "Schemas and **çay**.",
        "starts_at": datetime(2026, 9, 1, 16, 0, tzinfo=UTC),
        "ends_at": datetime(2026, 9, 1, 19, 0, tzinfo=UTC),
        "timezone": "Europe/Istanbul",
        "venue_name": "Moda Sahnesi",
        "venue_address": "Moda, Kadıköy, İstanbul",
        "total_capacity": 40,
        "price_minor": 0,
        "currency": "TRY",
        "status": "scheduled",
        "version": 1,
    }
    values.update(overrides)
    return Event(**values)


# --------------------------------------------------------------------------- 1. the adapter


def test_every_adapter_request_and_answer_matches_the_current_document(
    server: ServerHandle,
) -> None:
    exchanges: list[tuple[httpx.Request, httpx.Response]] = []
    sandbox = server.app.extensions["sandbox"]

    async def record(response: httpx.Response) -> None:
        await response.aread()
        exchanges.append((response.request, response))

    async def workflow() -> None:
        async with httpx.AsyncClient(event_hooks={"response": [record]}) as client:
            a = LumaAdapter(server.url, api_key=LUMA_API_KEY, client=client)
            await a.get_self()
            event = make_event()
            published = await a.publish_event(event, 40)
            event_id = published.platform_event_id
            online = make_event(
                title="Online", venue_name=None, venue_address=None, online_url="https://meet.x/y"
            )
            await a.publish_event(online, 10)
            assert (await a.find_existing(event)).platform_event_id == event_id
            await a.update_event(event, event_id, 30)
            await a.update_capacity(event_id, 25)
            for ticket_type in sandbox.ticket_types(event_id):
                sandbox.store.delete("ticket_type", ticket_type["api_id"])
            await a.require_approval(event_id)  # the create-a-ticket-type path
            guests = sandbox.simulate_registrations(event_id, 3, seed=4)
            page = await a.list_registrations(event_id, page_size=2)
            await a.list_registrations(event_id, page.next_cursor, page_size=2)
            await a.get_registration(event_id, guests[0])
            await a.approve_registration(event_id, guests[0])
            await a.decline_registration(event_id, guests[1])
            await a.anonymize_registration(event_id, guests[2])
            await a.close_sales(event_id)
            await a.register_webhook("http://127.0.0.1:9/hook", ["guest.updated"])
            await a.register_webhook(
                "http://127.0.0.1:9/hook", ["guest.registered", "guest.updated"]
            )
            await a.list_webhooks()
            with pytest.raises(Exception):  # noqa: B017 - a 404, checked below like the rest
                await a.get_registration(event_id, "gst-doesnotexist00")

    asyncio.run(workflow())

    used = set()
    for request, response in exchanges:
        path = request.url.path
        assert generation_of(path) == "current", f"{path} is not the current generation"
        check(request.method, path, request.url.query, request.content, request.headers, response)
        used.add((request.method, path))
    assert used == {
        ("GET", "/v1/users/get-self"),
        ("POST", "/v1/events/create"),
        ("GET", "/v1/events/ticket-types/list"),
        ("POST", "/v1/events/ticket-types/update"),
        ("POST", "/v1/events/ticket-types/create"),
        ("GET", "/v1/events/get"),
        ("GET", "/v1/calendars/events/list"),
        ("POST", "/v1/events/update"),
        ("GET", "/v1/events/guests/list"),
        ("GET", "/v1/events/guests/get"),
        ("POST", "/v1/events/guests/update-status"),
        ("GET", "/v1/webhooks/list"),
        ("POST", "/v2/webhooks/create"),
        ("POST", "/v1/webhooks/delete"),
    }


def test_the_adapter_sends_no_undocumented_approval_field(server: ServerHandle) -> None:
    """The body the adapter publishes with validates against the legacy create body too,
    whose ``additionalProperties: false`` refused ``require_rsvp_approval``."""
    bodies: list[bytes] = []

    async def record(request: httpx.Request) -> None:
        if request.url.path == "/v1/events/create":
            bodies.append(request.content)

    async def publish() -> None:
        async with httpx.AsyncClient(event_hooks={"request": [record]}) as client:
            a = LumaAdapter(server.url, api_key=LUMA_API_KEY, client=client)
            await a.publish_event(make_event(), 40)

    asyncio.run(publish())
    [body] = bodies
    legacy = document("legacy")["paths"]["/public/v1/event/create"]["post"]
    schema = legacy["requestBody"]["content"]["application/json"]["schema"]
    assert "require_rsvp_approval" not in json.loads(body)
    Draft202012Validator(schema).validate(json.loads(body))


# --------------------------------------------------------------------------- 2. plain calls


def _call(client: httpx.Client, method: str, path: str, *, params=None, body=None) -> Any:
    """A call built from the document: the request is validated by openapi-core before it
    is sent, the answer after."""
    request = client.build_request(method, path, params=params, json=body)
    generation = generation_of(path)
    api_of(generation).validate_request(
        _wz_request(generation, method, path, request.url.query, request.content, request.headers)
    )
    response = client.send(request)
    assert response.status_code == 200, f"{method} {path}: {response.text}"
    check(method, path, request.url.query, request.content, request.headers, response)
    return response.json()


def test_plain_calls_from_the_documents_reach_every_emulated_operation(
    server: ServerHandle,
) -> None:
    called: set[tuple[str, str]] = set()
    event = {
        "name": "Spec Night",
        "start_at": "2026-10-01T18:00:00.000Z",
        "end_at": "2026-10-01T20:00:00.000Z",
        "timezone": "Europe/Istanbul",
        "geo_address_json": {"type": "manual", "address": "Karaköy, İstanbul"},
        "max_capacity": 20,
    }
    sandbox = server.app.extensions["sandbox"]
    with httpx.Client(base_url=server.url, headers=KEY) as c:

        def call(method: str, path: str, **kwargs: Any) -> Any:
            called.add((method, path))
            return _call(c, method, path, **kwargs)

        for prefix in ("/public/v1", "/v1"):
            legacy = prefix == "/public/v1"
            eid = call("POST", f"{prefix}/event/create", body=event)["api_id"]
            call("POST", f"{prefix}/event/update", body={"event_api_id": eid, "name": "Renamed"})
            call("GET", f"{prefix}/event/get", params={"api_id": eid})
            call(
                "POST",
                f"{prefix}/event/add-guests",
                body={"event_api_id": eid, "guests": [{"email": "a@example.com", "name": "A"}]},
            )
            [gid] = sandbox.simulate_registrations(eid, 1, seed=2)
            sandbox.simulate_check_in(eid, gid)
            listed = call("GET", f"{prefix}/event/get-guests", params={"event_api_id": eid})
            assert len(listed["entries"]) == 2
            call("GET", f"{prefix}/event/get-guest", params={"event_api_id": eid, "api_id": gid})
            call(
                "GET",
                f"{prefix}/event/get-guest",
                params={"event_api_id": eid, "email": "a@example.com"},
            )
            call(
                "POST",
                f"{prefix}/event/update-guest-status",
                body={
                    "event_api_id": eid,
                    "guest": {"type": "api_id", "api_id": gid},
                    "status": "declined",
                },
            )
            call("GET", f"{prefix}/calendar/list-events", params={"pagination_limit": 1})
            call("GET", f"{prefix}/user/get-self")
            if not legacy:
                tt = call(
                    "POST",
                    "/v1/event/ticket-types/create",
                    body={
                        "event_api_id": eid,
                        "name": "Supporter",
                        "type": "paid",
                        "cents": 15000,
                        "currency": "try",
                    },
                )["ticket_type"]
                call(
                    "POST",
                    "/v1/event/ticket-types/update",
                    body={"event_ticket_type_api_id": tt["api_id"], "require_approval": True},
                )
                call(
                    "GET",
                    "/v1/event/ticket-types/get",
                    params={"event_ticket_type_api_id": tt["api_id"]},
                )
                call("GET", "/v1/event/ticket-types/list", params={"event_api_id": eid})

        eid = call("POST", "/v1/events/create", body=event)["id"]
        call("POST", "/v1/events/update", body={"event_id": eid, "max_capacity": 10})
        call("GET", "/v1/events/get", params={"event_id": eid})
        call("GET", "/v1/calendars/events/list", params={"after": "2026-01-01T00:00:00.000Z"})
        call("GET", "/v1/users/get-self")
        tt = call(
            "POST",
            "/v1/events/ticket-types/create",
            body={"event_id": eid, "name": "Gated", "type": "free", "require_approval": True},
        )
        call(
            "POST",
            "/v1/events/ticket-types/update",
            body={"event_ticket_type_id": tt["id"], "name": "G"},
        )
        call("GET", "/v1/events/ticket-types/get", params={"event_ticket_type_id": tt["id"]})
        call("GET", "/v1/events/ticket-types/list", params={"event_id": eid})
        call(
            "POST",
            "/v1/events/guests/add",
            body={
                "event_id": eid,
                "guests": [{"email": "b@example.com"}],
                "approval_status": "approved",
            },
        )
        [gid] = sandbox.simulate_registrations(eid, 1, seed=3)
        listed = call("GET", "/v1/events/guests/list", params={"event_id": eid})
        assert {g["approval_status"] for g in listed["entries"]} == {"approved", "pending_approval"}
        call("GET", "/v1/events/guests/get", params={"event_id": eid, "id": gid})
        call(
            "POST",
            "/v1/events/guests/update-status",
            body={"event_id": eid, "guest_id": gid, "status": "approved"},
        )
        hook = call(
            "POST",
            "/v2/webhooks/create",
            body={"url": "http://127.0.0.1:9/h", "event_types": ["guest.registered"]},
        )
        call("GET", "/v2/webhooks/get", params={"id": hook["id"]})
        call("GET", "/v1/webhooks/list")
        call("POST", "/v1/webhooks/delete", body={"id": hook["id"]})

    assert called == set(routes.HANDLERS), sorted(set(routes.HANDLERS) - called)


# --------------------------------------------------------------------------- 3. webhooks


def test_webhook_payloads_match_the_current_document(server: ServerHandle) -> None:
    receiver = WebhookCollector()
    webhooks = raw_document("current")["webhooks"]
    try:
        with httpx.Client(base_url=server.url, headers=KEY) as c:
            c.post("/v2/webhooks/create", json={"url": receiver.url, "event_types": ["*"]})
            eid = c.post(
                "/v1/events/create",
                json={
                    "name": "Hooks",
                    "start_at": "2026-10-02T18:00:00.000Z",
                    "timezone": "UTC",
                    "meeting_url": "https://zoom.us/j/1",
                },
            ).json()["id"]
            c.post("/v1/events/update", json={"event_id": eid, "name": "Hooks!"})
            sandbox = server.app.extensions["sandbox"]
            [gid] = sandbox.simulate_registrations(eid, 1, seed=9)
            sandbox.simulate_check_in(eid, gid)
            sandbox.simulate_cancel(eid, gid)
            deliveries = receiver.wait_for(5)
        kinds = []
        for _headers, body in deliveries:
            payload = json.loads(body)
            kinds.append(payload["type"])
            schema = webhooks[payload["type"]]["post"]["requestBody"]["content"]
            Draft202012Validator(schema["application/json"]["schema"]).validate(payload)
        assert kinds == [
            "event.created",
            "event.updated",
            "guest.registered",
            "guest.updated",
            "guest.updated",
        ]
    finally:
        receiver.handle.stop()


# --------------------------------------------------------------------------- 4. servers


def test_the_live_base_url_is_a_documented_server() -> None:
    """The adapter speaks the current generation; its live host must be one of that
    document's ``servers`` (it was api.lu.ma, which no document lists)."""
    servers = [s["url"] for s in raw_document("current")["servers"]]
    assert LIVE_BASE_URLS["luma"] in servers


def test_legacy_normalisation_changes_only_nullability() -> None:
    def strip(node: Any, name: str | None = None) -> Any:
        if isinstance(node, list):
            return [strip(n) for n in node]
        if not isinstance(node, dict):
            return node
        if "anyOf" in node and len(node["anyOf"]) == 2 and node["anyOf"][1] == {"type": "null"}:
            return strip(node["anyOf"][0], name)
        out = {}
        for key, value in node.items():
            if key == "nullable":
                continue
            if key == "properties" and isinstance(value, dict):
                out[key] = {k: strip(v, k) for k, v in value.items()}
            else:
                out[key] = strip(value)
        return out

    assert strip(document("legacy")) == strip(raw_document("legacy"))
    assert set(GENERATIONS) == {"legacy", "transitional", "current"}
    assert {"checked_in_at", "invited_at", "joined_at", "geo_address_json"} == LEGACY_NULLABLE
