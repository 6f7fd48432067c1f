"""The Luma emulator over real HTTP: wire shapes (each answer validated against Luma's
OpenAPI documents by the emulator itself), approval on ticket types, cursors, capacity,
webhooks, faults, restart."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from integrations.sandbox.common import ServerHandle, serve_in_thread
from integrations.sandbox.credentials import LUMA_API_KEY
from integrations.sandbox.luma import create_app, routes
from tests.sandboxes import WebhookCollector

ROOT = Path(__file__).resolve().parents[1]
EVENT = {
    "name": "PyIstanbul Meetup #42",
    "start_at": "2026-06-01T18:30:00+03:00",
    "end_at": "2026-06-01T21:00:00+03:00",
    "timezone": "Europe/Istanbul",
    "description_md": "Talks and çay.",
    "geo_address_json": {"type": "manual", "address": "Kadıköy, İstanbul"},
    "max_capacity": 100,
    "visibility": "public",
}


@pytest.fixture()
def server() -> Iterator[ServerHandle]:
    handle = serve_in_thread(create_app(None))
    yield handle
    handle.stop()


@pytest.fixture()
def api(server: ServerHandle) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, headers={"x-luma-api-key": LUMA_API_KEY}) as client:
        yield client


@pytest.fixture()
def receiver() -> Iterator[WebhookCollector]:
    rec = WebhookCollector(status=204)
    yield rec
    rec.handle.stop()


def make_event(api: httpx.Client, **overrides) -> str:
    response = api.post("/public/v1/event/create", json={**EVENT, **overrides})
    assert response.status_code == 200, response.text
    return response.json()["api_id"]


def require_approval(api: httpx.Client, event_id: str) -> None:
    """The documented approval switch: every ticket type of the event requires approval."""
    listed = api.get("/v1/events/ticket-types/list", params={"event_id": event_id})
    assert listed.status_code == 200, listed.text
    for ticket_type in listed.json()["entries"]:
        updated = api.post(
            "/v1/events/ticket-types/update",
            json={"event_ticket_type_id": ticket_type["id"], "require_approval": True},
        )
        assert updated.status_code == 200, updated.text


def simulate(api: httpx.Client, event_id: str, count: int, seed: int = 7) -> list[str]:
    response = api.post(
        "/_sandbox/simulate/registrations",
        json={"event_id": event_id, "count": count, "seed": seed},
    )
    assert response.status_code == 200, response.text
    return response.json()["ids"]


def guests(api: httpx.Client, event_id: str, **params) -> dict:
    response = api.get("/public/v1/event/get-guests", params={"event_api_id": event_id, **params})
    assert response.status_code == 200, response.text
    return response.json()


# --------------------------------------------------------------------------- events


def test_create_and_get_event_legacy_shape(api: httpx.Client, server: ServerHandle) -> None:
    event_id = make_event(api)
    assert re.fullmatch(r"evt-[A-Za-z0-9]{15}", event_id)
    body = api.get("/public/v1/event/get", params={"api_id": event_id}).json()
    event = body["event"]
    assert event["api_id"] == event_id
    assert event["name"] == EVENT["name"]
    assert event["start_at"] == "2026-06-01T15:30:00.000Z"
    assert event["end_at"] == "2026-06-01T18:00:00.000Z"
    assert event["timezone"] == "Europe/Istanbul"
    assert "require_rsvp_approval" not in event and "max_capacity" not in event  # undocumented
    assert event["geo_address_json"] == {"address": "Kadıköy, İstanbul"}
    # the public page is the sandbox's own, not lu.ma
    assert re.fullmatch(re.escape(server.url) + r"/[a-z0-9]{10}", event["url"])
    page = httpx.get(event["url"])
    assert page.status_code == 200 and EVENT["name"] in page.text
    assert body["hosts"] and body["hosts"][0]["api_id"].startswith("usr-")

    assert (
        api.post(
            "/public/v1/event/update", json={"event_api_id": event_id, "max_capacity": 40}
        ).json()
        == {}
    )
    sandbox = server.app.extensions["sandbox"]
    assert sandbox.store.get("event", event_id)["max_capacity"] == 40

    listed = api.get("/public/v1/calendar/list-events").json()
    assert [e["api_id"] for e in listed["entries"]] == [event_id]
    assert listed["entries"][0]["event"]["name"] == EVENT["name"]


def test_current_and_transitional_aliases(api: httpx.Client) -> None:
    created = api.post("/v1/events/create", json=EVENT)
    assert created.status_code == 200
    assert set(created.json()) == {"id"}
    event_id = created.json()["id"]
    assert event_id.startswith("evt-")

    flat = api.get("/v1/events/get", params={"event_id": event_id}).json()
    assert flat["id"] == event_id and "api_id" not in flat
    assert flat["waitlist_status"] in ("enabled", "disabled")

    assert (
        api.post("/v1/events/update", json={"event_id": event_id, "name": "Renamed"}).json() == {}
    )
    transitional = api.get("/v1/event/get", params={"api_id": event_id}).json()
    assert transitional["event"]["name"] == "Renamed"

    ticket = api.post(
        "/v1/events/ticket-types/create",
        json={
            "event_id": event_id,
            "name": "Supporter",
            "type": "paid",
            "cents": 25000,
            "currency": "try",
            "require_approval": True,
            "is_hidden": False,
            "max_capacity": 10,
        },
    ).json()
    assert ticket["id"].startswith("ttype-") and ticket["cents"] == 25000

    [guest_id] = simulate(api, event_id, 1)
    flat_guests = api.get("/v1/events/guests/list", params={"event_id": event_id}).json()
    [entry] = flat_guests["entries"]
    assert entry["id"] == guest_id and entry["approval_status"] == "pending_approval"
    assert entry["event_tickets"][0]["amount"] == 25000
    assert entry["event_tickets"][0]["is_captured"] is False  # captured on approval

    moved = api.post(
        "/v1/events/guests/update-status",
        json={"event_id": event_id, "guest_id": guest_id, "status": "waitlist"},
    )
    assert moved.status_code == 200
    one = api.get("/v1/events/guests/get", params={"event_id": event_id, "id": guest_id}).json()
    assert one["id"] == guest_id and one["approval_status"] == "waitlist"  # flat
    # the legacy endpoint only accepts approved|declined
    legacy = api.post(
        "/public/v1/event/update-guest-status",
        json={
            "event_api_id": event_id,
            "guest": {"type": "api_id", "api_id": guest_id},
            "status": "waitlist",
        },
    )
    assert legacy.status_code == 400 and legacy.json()["field"] == "status"


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"name": None}, "name"),
        ({"name": "  "}, "name"),
        ({"start_at": None}, "start_at"),
        ({"start_at": "next tuesday"}, "start_at"),
        ({"timezone": None}, "timezone"),
        ({"timezone": "Europe/Atlantis"}, "timezone"),
        ({"end_at": "2026-06-01T10:00:00+03:00"}, "end_at"),
        ({"max_capacity": -1}, "max_capacity"),
        ({"visibility": "secret"}, "visibility"),
        # undocumented: the legacy create body forbids additional properties
        ({"require_rsvp_approval": True}, "require_rsvp_approval"),
    ],
)
def test_validation_errors_name_the_field(api: httpx.Client, change: dict, field: str) -> None:
    response = api.post("/public/v1/event/create", json={**EVENT, **change})
    assert response.status_code == 400
    body = response.json()
    assert body["field"] == field
    assert isinstance(body["message"], str) and body["message"]


def test_unknown_event_and_guest_are_404(api: httpx.Client) -> None:
    missing = api.get("/public/v1/event/get", params={"api_id": "evt-doesnotexist000"})
    assert missing.status_code == 404 and "message" in missing.json()
    event_id = make_event(api)
    guest = api.get(
        "/public/v1/event/get-guest", params={"event_api_id": event_id, "api_id": "gst-nope"}
    )
    assert guest.status_code == 404
    unknown_route = api.get("/public/v1/event/nothing-here")
    assert unknown_route.status_code == 404 and unknown_route.json()["message"]


def test_api_key_is_required(server: ServerHandle) -> None:
    with httpx.Client(base_url=server.url) as anonymous:
        response = anonymous.get("/public/v1/calendar/list-events")
        assert response.status_code == 401
        assert response.json() == {"message": "Invalid API key"}
        wrong = anonymous.get(
            "/public/v1/calendar/list-events", headers={"x-luma-api-key": "secret-wrong"}
        )
        assert wrong.status_code == 401
        assert "secret-wrong" not in wrong.text
        assert anonymous.get("/_sandbox/health").status_code == 200


# --------------------------------------------------------------------------- guests


def test_guests_paginate_with_stable_resumable_cursor(api: httpx.Client) -> None:
    event_id = make_event(api, max_capacity=None)
    first_batch = simulate(api, event_id, 120, seed=1)

    seen: list[str] = []
    cursor = None
    while True:
        params = {"pagination_limit": 50}
        if cursor:
            params["pagination_cursor"] = cursor
        page = guests(api, event_id, **params)
        seen += [e["guest"]["api_id"] for e in page["entries"]]
        cursor = page["next_cursor"]
        assert cursor, "next_cursor is returned on every page, the last one included"
        if not page["has_more"]:
            break
    assert seen == first_batch

    empty = guests(api, event_id, pagination_cursor=cursor)
    assert empty["entries"] == [] and empty["next_cursor"] == cursor

    newer = simulate(api, event_id, 7, seed=2)
    resumed = guests(api, event_id, pagination_cursor=cursor)
    assert [e["guest"]["api_id"] for e in resumed["entries"]] == newer

    # the server caps the limit
    capped = guests(api, event_id, pagination_limit=1000)
    assert len(capped["entries"]) == 100 and capped["has_more"] is True
    bad = api.get(
        "/public/v1/event/get-guests",
        params={"event_api_id": event_id, "pagination_cursor": "%%%not-a-cursor"},
    )
    assert bad.status_code == 400 and bad.json()["field"] == "pagination_cursor"

    by_name = guests(api, event_id, sort_column="name", pagination_limit=200)
    names = [e["guest"]["user_name"].lower() for e in by_name["entries"]]
    assert names == sorted(names)


def test_guest_fields_and_lookup(api: httpx.Client) -> None:
    event_id = make_event(api)
    [guest_id] = simulate(api, event_id, 1, seed=3)
    guest = api.get(
        "/public/v1/event/get-guest", params={"event_api_id": event_id, "api_id": guest_id}
    ).json()["guest"]
    assert re.fullmatch(r"gst-[A-Za-z0-9]{15}", guest["api_id"])
    assert guest["user_email"] == guest["user_email"].strip().lower()
    assert guest["phone_number"].startswith("+")
    assert guest["user_name"] and guest["registered_at"].endswith("Z")
    assert guest["checked_in_at"] is None
    by_email = api.get(
        "/public/v1/event/get-guest",
        params={"event_api_id": event_id, "email": guest["user_email"].upper()},
    ).json()["guest"]
    assert by_email["api_id"] == guest_id


def test_approval_and_capacity_decide_the_status(api: httpx.Client) -> None:
    approval = make_event(api, max_capacity=3)
    require_approval(api, approval)
    simulate(api, approval, 5)
    statuses = [e["guest"]["approval_status"] for e in guests(api, approval)["entries"]]
    assert statuses == ["pending_approval"] * 3 + ["waitlist"] * 2
    waitlisted = guests(api, approval, approval_status="waitlist")["entries"]
    assert len(waitlisted) == 2

    open_event = make_event(api, max_capacity=2)  # its ticket type needs no approval
    simulate(api, open_event, 3)
    statuses = [e["guest"]["approval_status"] for e in guests(api, open_event)["entries"]]
    assert statuses == ["approved", "approved", "waitlist"]

    added = api.post(
        "/public/v1/event/add-guests",
        json={"event_api_id": open_event, "guests": [{"email": "Ayse@Example.com", "name": "A"}]},
    )
    assert added.status_code == 200
    entry = guests(api, open_event)["entries"][-1]["guest"]
    assert entry["user_email"] == "ayse@example.com" and entry["approval_status"] == "approved"


def test_approval_is_enforced_per_ticket_type(api: httpx.Client) -> None:
    """A guest registering on a ticket type with ``require_approval`` waits in
    ``pending_approval``; on one without, they are ``approved``. An event-level switch has
    no effect where the document allows unknown properties (transitional, current)."""
    event_id = api.post("/v1/events/create", json={**EVENT, "require_rsvp_approval": True})
    event_id = event_id.json()["id"]
    [free] = simulate(api, event_id, 1, seed=1)
    created = api.post(
        "/v1/events/ticket-types/create",
        json={"event_id": event_id, "name": "Members", "type": "free", "require_approval": True},
    )
    assert created.status_code == 200 and created.json()["require_approval"] is True
    [gated] = simulate(api, event_id, 1, seed=2)
    statuses = {
        g["id"]: g["approval_status"]
        for g in api.get("/v1/events/guests/list", params={"event_id": event_id}).json()["entries"]
    }
    assert statuses == {free: "approved", gated: "pending_approval"}
    tickets = api.get("/v1/event/ticket-types/list", params={"event_api_id": event_id}).json()
    assert [t["require_approval"] for t in tickets["ticket_types"]] == [False, True]
    one = api.get(
        "/v1/events/ticket-types/get", params={"event_ticket_type_id": created.json()["id"]}
    )
    assert one.status_code == 200 and one.json()["name"] == "Members"


def test_get_self_in_every_generation(api: httpx.Client) -> None:
    legacy = api.get("/public/v1/user/get-self").json()["user"]
    transitional = api.get("/v1/user/get-self").json()["user"]
    current = api.get("/v1/users/get-self").json()
    assert legacy["api_id"] == transitional["api_id"] == transitional["id"] == current["id"]
    assert "id" not in legacy and "api_id" not in current
    assert current["email"] == legacy["email"]


def test_next_cursor_is_absent_not_null(api: httpx.Client) -> None:
    """Every document types ``next_cursor`` as a string (not nullable, not required)."""
    make_event(api)
    listed = api.get("/public/v1/calendar/list-events").json()
    assert listed["has_more"] is False and "next_cursor" not in listed
    event_id = make_event(
        api, start_at="2026-06-02T18:30:00+03:00", end_at="2026-06-02T21:00:00+03:00"
    )
    simulate(api, event_id, 3)
    by_name = guests(api, event_id, sort_column="name", pagination_limit=2)
    assert by_name["has_more"] is True and isinstance(by_name["next_cursor"], str)
    rest = guests(
        api,
        event_id,
        sort_column="name",
        pagination_limit=2,
        pagination_cursor=by_name["next_cursor"],
    )
    assert rest["has_more"] is False and "next_cursor" not in rest


@pytest.mark.parametrize(
    ("method", "path", "kwargs", "field"),
    [
        ("GET", "/public/v1/event/get", {}, "api_id"),
        ("GET", "/v1/events/guests/get", {"params": {"event_id": "evt-x"}}, "id"),
        (
            "GET",
            "/public/v1/event/get-guests",
            {"params": {"event_api_id": "e", "approval_status": "maybe"}},
            "approval_status",
        ),
        (
            "GET",
            "/v1/events/guests/list",
            {"params": {"event_id": "e", "pagination_limit": "many"}},
            "pagination_limit",
        ),
        (
            "POST",
            "/v1/events/guests/update-status",
            {"json": {"event_id": "e", "status": "approved"}},
            "guest_id",
        ),
        (
            "POST",
            "/v2/webhooks/create",
            {"json": {"url": "http://x.test/h", "event_types": ["guest.*"]}},
            "event_types.0",
        ),
        (
            "POST",
            "/public/v1/event/add-guests",
            {"json": {"event_api_id": "e", "guests": [{"email": "a@b.co", "phone_number": "1"}]}},
            "guests.0.phone_number",
        ),
    ],
)
def test_requests_that_do_not_validate_are_refused(
    api: httpx.Client, method: str, path: str, kwargs: dict, field: str
) -> None:
    response = api.request(method, path, **kwargs)
    assert response.status_code == 400, response.text
    assert response.json()["field"] == field


def test_routes_outside_the_documents(api: httpx.Client) -> None:
    assert api.get("/public/v1/event/nothing-here").status_code == 404
    assert api.post("/public/v1/event/get", json={}).status_code == 405
    not_emulated = api.get("/v1/memberships/tiers/list")
    assert not_emulated.status_code == 501 and not_emulated.json()["message"]


def test_an_answer_off_the_contract_is_a_500(
    api: httpx.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The emulator checks its own answers: a handler that leaves out a required field (here
    ``has_more``) is caught instead of reaching the client."""
    key = ("GET", "/public/v1/calendar/list-events")
    monkeypatch.setitem(routes.HANDLERS, key, lambda sb, call: {"entries": []})
    broken = api.get("/public/v1/calendar/list-events")
    assert broken.status_code == 500 and "has_more" in broken.json()["message"]


# --------------------------------------------------------------------------- webhooks


def test_webhooks_fire_on_registration_and_status_unsigned(
    api: httpx.Client, receiver: WebhookCollector
) -> None:
    created = api.post(
        "/v2/webhooks/create",
        json={"url": receiver.url, "event_types": ["guest.registered", "guest.updated"]},
    ).json()
    assert created["id"].startswith("whk-") and created["status"] == "active"
    assert created["secret"].startswith("whsec_") and len(created["secret"]) > 20
    listed = api.get("/v1/webhooks/list").json()["entries"]
    assert [h["id"] for h in listed] == [created["id"]]
    bad = api.post("/v2/webhooks/create", json={"url": receiver.url, "event_types": ["nope"]})
    assert bad.status_code == 400 and bad.json()["field"] == "event_types.0"

    event_id = make_event(api)
    require_approval(api, event_id)
    [guest_id] = simulate(api, event_id, 1)
    [(headers, body)] = receiver.wait_for(1)
    # Luma documents no signature scheme: the sandbox invents none
    assert not any("signature" in name.lower() for name in headers)
    payload = json.loads(body)
    assert payload["type"] == "guest.registered"
    # the current document's payload: current names only, the guest's event inside
    assert payload["data"]["id"] == guest_id and "api_id" not in payload["data"]
    assert payload["data"]["event"]["id"] == event_id
    assert payload["data"]["approval_status"] == "pending_approval"

    cancelled = api.post(
        "/_sandbox/simulate/cancel", json={"event_id": event_id, "guest_id": guest_id}
    )
    assert cancelled.status_code == 200
    receiver.wait_for(2)
    last = receiver.payloads()[-1]
    assert last["type"] == "guest.updated" and last["data"]["approval_status"] == "declined"

    assert api.post("/v1/webhooks/delete", json={"id": created["id"]}).json() == {}
    assert api.get("/v1/webhooks/list").json()["entries"] == []
    assert api.post("/v1/webhooks/delete", json={"id": created["id"]}).status_code == 404


def test_duplicate_and_out_of_order_webhooks(
    server: ServerHandle, api: httpx.Client, receiver: WebhookCollector
) -> None:
    api.post("/v2/webhooks/create", json={"url": receiver.url, "event_types": ["*"]})
    event_id = make_event(api)
    receiver.wait_for(1)  # event.created
    api.post("/_sandbox/config", json={"webhooks": {"duplicate": True, "out_of_order": True}})
    ids = simulate(api, event_id, 3)
    receiver.wait_for(7)
    registered = [p["data"]["id"] for p in receiver.payloads() if p["type"] == "guest.registered"]
    assert registered == [ids[2], ids[2], ids[1], ids[1], ids[0], ids[0]]
    sandbox = server.app.extensions["sandbox"]
    assert sandbox.sender.wait_idle(5)


# --------------------------------------------------------------------------- faults


def test_rate_limit_is_per_key_with_retry_after(server: ServerHandle, api: httpx.Client) -> None:
    api.post("/_sandbox/config", json={"rate_limit": {"limit": 2, "window_seconds": 30}})
    assert api.get("/public/v1/calendar/list-events").status_code == 200
    assert api.get("/public/v1/calendar/list-events").status_code == 200
    limited = api.get("/public/v1/calendar/list-events")
    assert limited.status_code == 429
    assert int(limited.headers["Retry-After"]) >= 1
    assert limited.json()["message"]
    with httpx.Client(base_url=server.url, headers={"x-luma-api-key": "secret-other"}) as other:
        assert other.get("/public/v1/calendar/list-events").status_code == 401  # own budget
    api.post("/_sandbox/reset")
    assert api.get("/public/v1/calendar/list-events").status_code == 200


def test_forced_server_errors_are_json(api: httpx.Client) -> None:
    api.post("/_sandbox/config", json={"fail_next": {"count": 2, "status": 502}})
    for _ in range(2):
        failed = api.get("/public/v1/calendar/list-events")
        assert failed.status_code == 502 and failed.json()["message"]
    assert api.get("/public/v1/calendar/list-events").status_code == 200


# --------------------------------------------------------------------------- persistence


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _start_process(state: Path, port: int) -> subprocess.Popen:
    code = (
        "import sys; from integrations.sandbox.luma import create_app;"
        "from integrations.sandbox.common import serve_forever;"
        "serve_forever(create_app(sys.argv[1]), '127.0.0.1', int(sys.argv[2]))"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code, str(state), str(port)],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/_sandbox/health").status_code == 200:
                return proc
        except httpx.TransportError:
            time.sleep(0.1)
    proc.kill()
    raise AssertionError("sandbox process did not start")


def test_state_survives_a_killed_process(tmp_path: Path) -> None:
    state = tmp_path / "luma.sqlite"
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    headers = {"x-luma-api-key": LUMA_API_KEY}
    proc = _start_process(state, port)
    try:
        with httpx.Client(base_url=base, headers=headers) as api:
            event_id = make_event(api)
            ids = simulate(api, event_id, 5)
            hook = api.post(
                "/v2/webhooks/create",
                json={"url": "http://127.0.0.1:9/unused", "event_types": ["guest.updated"]},
            ).json()
            cursor = guests(api, event_id)["next_cursor"]
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)

    proc = _start_process(state, port)
    try:
        with httpx.Client(base_url=base, headers=headers) as api:
            event = api.get("/public/v1/event/get", params={"api_id": event_id}).json()["event"]
            assert event["name"] == EVENT["name"]
            assert [e["guest"]["api_id"] for e in guests(api, event_id)["entries"]] == ids
            [saved] = api.get("/v1/webhooks/list").json()["entries"]
            assert saved["id"] == hook["id"] and saved["secret"] == hook["secret"]
            newer = simulate(api, event_id, 2, seed=99)
            resumed = guests(api, event_id, pagination_cursor=cursor)
            assert [e["guest"]["api_id"] for e in resumed["entries"]] == newer
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
