"""LumaAdapter against the Luma emulator over real HTTP."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime
from typing import Any, TypeVar

import httpx
import pytest
import respx

from hub.models import Event, PaymentStatus, Platform, RegistrationStatus
from integrations.base import AuthError, NotFound, RateLimited, ServerError, ValidationFailed
from integrations.luma import LumaAdapter, registration_from_guest, webhook_guest_ref
from integrations.sandbox.common import ServerHandle, serve_in_thread
from integrations.sandbox.credentials import LUMA_API_KEY
from integrations.sandbox.luma import LumaSandbox, create_app
from tests.sandboxes import WebhookCollector

T = TypeVar("T")


def run(factory: Callable[[LumaAdapter], Awaitable[T]], base_url: str, **kwargs: Any) -> T:
    """Run one coroutine against a fresh adapter (its client lives in that loop)."""

    async def main() -> T:
        async with LumaAdapter(
            base_url, api_key=kwargs.pop("api_key", LUMA_API_KEY), **kwargs
        ) as a:
            return await factory(a)

    return asyncio.run(main())


def make_event(**overrides: Any) -> Event:
    values: dict[str, Any] = {
        "id": uuid.uuid4(),
        "slug": "pyistanbul-42",
        "title": "PyIstanbul Meetup #42",
        "description": "Talks, **çay** and simit.",
        "starts_at": datetime(2026, 6, 1, 15, 30, tzinfo=UTC),
        "ends_at": datetime(2026, 6, 1, 18, 0, tzinfo=UTC),
        "timezone": "Europe/Istanbul",
        "venue_name": "Kadıköy Community Hall",
        "venue_address": "Caferağa Mah., Kadıköy, İstanbul",
        "total_capacity": 100,
        "price_minor": 0,
        "currency": "TRY",
        "status": "scheduled",
        "version": 1,
    }
    values.update(overrides)
    return Event(**values)


@pytest.fixture()
def server() -> Iterator[ServerHandle]:
    handle = serve_in_thread(create_app(None))
    yield handle
    handle.stop()


@pytest.fixture()
def sandbox(server: ServerHandle) -> LumaSandbox:
    return server.app.extensions["sandbox"]


@pytest.fixture()
def receiver() -> Iterator[WebhookCollector]:
    rec = WebhookCollector()
    yield rec
    rec.handle.stop()


def configure(server: ServerHandle, config: dict[str, Any]) -> None:
    httpx.post(f"{server.url}/_sandbox/config", json=config).raise_for_status()


# --------------------------------------------------------------------------- publishing


def test_publish_requires_approval_and_reads_the_url(
    server: ServerHandle, sandbox: LumaSandbox
) -> None:
    event = make_event()
    publication = run(lambda a: a.publish_event(event, 60), server.url)
    assert publication.platform is Platform.LUMA
    assert publication.platform_event_id.startswith("evt-")
    assert publication.url and publication.url.startswith(server.url + "/")  # the sandbox's
    assert httpx.get(publication.url).status_code == 200
    assert publication.status == "published"
    assert publication.raw["id"] == publication.platform_event_id

    stored = sandbox.store.get("event", publication.platform_event_id)
    assert "require_rsvp_approval" not in stored  # undocumented: not sent
    types = sandbox.ticket_types(publication.platform_event_id)
    assert types and all(t["require_approval"] for t in types)  # the documented switch
    [guest] = sandbox.simulate_registrations(publication.platform_event_id, 1, seed=1)
    assert sandbox.store.get("guest", guest)["approval_status"] == "pending_approval"
    assert stored["max_capacity"] == 60
    assert stored["timezone"] == "Europe/Istanbul"
    assert stored["start_at"] == "2026-06-01T15:30:00.000Z"
    assert stored["end_at"] == "2026-06-01T18:00:00.000Z"
    assert stored["description_md"] == event.description
    assert stored["geo_address_json"] == {
        "type": "manual",
        "address": "Kadıköy Community Hall, Caferağa Mah., Kadıköy, İstanbul",
    }

    online = make_event(
        title="Online", venue_name=None, venue_address=None, online_url="https://meet.example/x"
    )
    online_pub = run(lambda a: a.publish_event(online, 500), server.url)
    assert sandbox.store.get("event", online_pub.platform_event_id)["meeting_url"] == (
        "https://meet.example/x"
    )


def test_update_event_capacity_and_close_sales(server: ServerHandle, sandbox: LumaSandbox) -> None:
    event_id = run(lambda a: a.publish_event(make_event(), 10), server.url).platform_event_id

    moved = make_event(
        title="PyIstanbul Meetup #42 (moved)",
        starts_at=datetime(2026, 6, 2, 15, 30, tzinfo=UTC),
        ends_at=datetime(2026, 6, 2, 18, tzinfo=UTC),
    )
    publication = run(lambda a: a.update_event(moved, event_id, 8), server.url)
    stored = sandbox.store.get("event", event_id)
    assert stored["name"] == moved.title and stored["max_capacity"] == 8
    assert stored["start_at"] == "2026-06-02T15:30:00.000Z"
    assert publication.platform_event_id == event_id
    assert publication.url == f"{server.url}/{stored['slug']}"

    run(lambda a: a.update_capacity(event_id, 6), server.url)
    assert sandbox.store.get("event", event_id)["max_capacity"] == 6

    ids = sandbox.simulate_registrations(event_id, 4, seed=5)
    run(lambda a: a.decline_registration(event_id, ids[0]), server.url)
    run(lambda a: a.close_sales(event_id), server.url)
    assert sandbox.store.get("event", event_id)["max_capacity"] == 3  # 3 still hold a seat
    [late] = sandbox.simulate_registrations(event_id, 1, seed=6)
    assert sandbox.store.get("guest", late)["approval_status"] == "waitlist"


def test_validation_error_names_the_field(server: ServerHandle) -> None:
    with pytest.raises(ValidationFailed) as info:
        run(lambda a: a.publish_event(make_event(timezone="Europe/Atlantis"), 10), server.url)
    assert info.value.field == "timezone" and info.value.status == 400
    assert "timezone" in str(info.value).lower()


def test_unknown_key_is_an_auth_error_without_the_key(server: ServerHandle) -> None:
    secret = "secret-stolen-key-do-not-print-123"
    with pytest.raises(AuthError) as info:
        run(lambda a: a.publish_event(make_event(), 10), server.url, api_key=secret)
    assert info.value.status == 401
    assert secret not in str(info.value) and secret not in repr(info.value)
    assert secret not in repr(LumaAdapter(server.url, api_key=secret))


def test_not_found(server: ServerHandle) -> None:
    with pytest.raises(NotFound):
        run(lambda a: a.get_registration("evt-missing0000000", "gst-x"), server.url)


def test_find_existing_avoids_a_duplicate_after_a_lost_reply(
    server: ServerHandle, sandbox: LumaSandbox
) -> None:
    """event/create succeeds on Luma but the reply is lost; the retry finds the event."""

    class LoseCreateReply(httpx.AsyncBaseTransport):
        def __init__(self) -> None:
            self.inner = httpx.AsyncHTTPTransport()

        async def handle_async_request(self, req: httpx.Request) -> httpx.Response:
            response = await self.inner.handle_async_request(req)
            if req.url.path.endswith("/events/create"):
                await response.aread()
                raise httpx.ReadTimeout("reply lost", request=req)
            return response

        async def aclose(self) -> None:
            await self.inner.aclose()

    event = make_event()
    other = make_event(title="Another evening")
    run(lambda a: a.publish_event(other, 10), server.url)

    async def lost(a: LumaAdapter) -> None:
        async with httpx.AsyncClient(transport=LoseCreateReply()) as client:
            flaky = LumaAdapter(server.url, api_key=LUMA_API_KEY, client=client)
            assert await flaky.find_existing(event) is None
            with pytest.raises(ServerError):
                await flaky.publish_event(event, 10)

    run(lost, server.url)
    assert len(sandbox.store.all("event")) == 2  # the create did happen

    async def retry(a: LumaAdapter) -> str:
        found = await a.find_existing(event)
        assert found is not None and found.url
        return found.platform_event_id

    found_id = run(retry, server.url)
    assert sandbox.store.get("event", found_id)["name"] == event.title
    assert len(sandbox.store.all("event")) == 2  # no duplicate


# --------------------------------------------------------------------------- registrations


def test_pull_250_in_pages_of_50_then_only_the_new_20(
    server: ServerHandle, sandbox: LumaSandbox
) -> None:
    event_id = run(lambda a: a.publish_event(make_event(), 1000), server.url).platform_event_id
    first = sandbox.simulate_registrations(event_id, 250, seed=11)

    async def pull_all(a: LumaAdapter, cursor: str | None) -> tuple[list, str | None, int]:
        items, pages = [], 0
        while True:
            page = await a.list_registrations(event_id, cursor, page_size=50)
            pages += 1
            items += page.items
            cursor = page.next_cursor
            if not page.has_more:
                return items, cursor, pages

    items, cursor, pages = run(lambda a: pull_all(a, None), server.url)
    assert pages == 5
    assert [r.platform_registration_id for r in items] == first
    assert len({r.platform_registration_id for r in items}) == 250
    one = items[0]
    assert one.platform is Platform.LUMA and one.platform_event_id == event_id
    assert one.status is RegistrationStatus.PENDING
    assert one.full_name and one.email and one.phone and one.registered_at
    assert one.payment_status is PaymentStatus.NONE
    assert one.raw["id"] == one.platform_registration_id
    assert cursor

    newer = sandbox.simulate_registrations(event_id, 20, seed=12)
    items, cursor2, _ = run(lambda a: pull_all(a, cursor), server.url)
    assert [r.platform_registration_id for r in items] == newer

    nothing, cursor3, _ = run(lambda a: pull_all(a, cursor2), server.url)
    assert nothing == [] and cursor3 == cursor2


def test_capacity_reached_means_waitlist(server: ServerHandle, sandbox: LumaSandbox) -> None:
    event_id = run(lambda a: a.publish_event(make_event(), 2), server.url).platform_event_id
    sandbox.simulate_registrations(event_id, 4, seed=21)
    page = run(lambda a: a.list_registrations(event_id), server.url)
    assert [r.status for r in page.items] == [RegistrationStatus.PENDING] * 2 + [
        RegistrationStatus.WAITLIST
    ] * 2


def test_approve_and_decline_change_status_and_fire_guest_updated(
    server: ServerHandle, sandbox: LumaSandbox, receiver: WebhookCollector
) -> None:
    async def setup(a: LumaAdapter) -> tuple[str, dict, dict]:
        event_id = (await a.publish_event(make_event(), 10)).platform_event_id
        hook = await a.register_webhook(receiver.url, ["guest.updated"])
        again = await a.register_webhook(receiver.url, ["guest.updated"])
        return event_id, hook, again

    event_id, hook, again = run(setup, server.url)
    assert again["id"] == hook["id"] and again["secret"] == hook["secret"]  # idempotent
    assert [h["id"] for h in run(lambda a: a.list_webhooks(), server.url)] == [hook["id"]]

    first, second = sandbox.simulate_registrations(event_id, 2, seed=31)
    run(lambda a: a.approve_registration(event_id, first), server.url)
    run(lambda a: a.decline_registration(event_id, second), server.url)

    approved = run(lambda a: a.get_registration(event_id, first), server.url)
    declined = run(lambda a: a.get_registration(event_id, second), server.url)
    assert approved.status is RegistrationStatus.APPROVED
    assert declined.status is RegistrationStatus.DECLINED

    deliveries = receiver.wait_for(2)
    seen = {}
    for _headers, body in deliveries:
        payload = json.loads(body)  # an unsigned hint (Luma documents no signature)
        assert payload["type"] == "guest.updated"
        ref = webhook_guest_ref(payload)
        assert ref is not None and ref[0] == event_id
        seen[ref[1]] = payload["data"]["approval_status"]
        # the receiver re-reads the guest before trusting the payload
        fresh = run(lambda a, gid=ref[1]: a.get_registration(event_id, gid), server.url)
        assert (
            fresh.status.value
            == {"approved": "approved", "declined": "declined"}[payload["data"]["approval_status"]]
        )
    assert seen == {first: "approved", second: "declined"}

    # approving again changes nothing and sends no second webhook
    run(lambda a: a.approve_registration(event_id, first), server.url)
    assert sandbox.sender.wait_idle(5)
    assert len(receiver.deliveries) == 2


def test_register_webhook_replaces_one_with_other_types(server: ServerHandle) -> None:
    async def flow(a: LumaAdapter) -> tuple[dict, dict, list]:
        old = await a.register_webhook("http://127.0.0.1:9/h", ["guest.updated"])
        new = await a.register_webhook(
            "http://127.0.0.1:9/h", ["guest.registered", "guest.updated"]
        )
        return old, new, await a.list_webhooks()

    old, new, hooks = run(flow, server.url)
    assert old["id"] != new["id"] and [h["id"] for h in hooks] == [new["id"]]


def test_anonymize_declines_the_guest(server: ServerHandle, sandbox: LumaSandbox) -> None:
    event_id = run(lambda a: a.publish_event(make_event(), 10), server.url).platform_event_id
    [guest_id] = sandbox.simulate_registrations(event_id, 1, seed=41)
    run(lambda a: a.anonymize_registration(event_id, guest_id), server.url)
    assert sandbox.store.get("guest", guest_id)["approval_status"] == "declined"


def test_mapping_attended_and_paid(server: ServerHandle, sandbox: LumaSandbox) -> None:
    event_id = run(lambda a: a.publish_event(make_event(), 10), server.url).platform_event_id
    httpx.post(
        f"{server.url}/v1/events/ticket-types/create",
        headers={"x-luma-api-key": LUMA_API_KEY},
        json={
            "event_id": event_id,
            "name": "Supporter",
            "type": "paid",
            "cents": 25050,
            "currency": "try",
            "require_approval": True,
        },
    ).raise_for_status()
    paid, unpaid = sandbox.simulate_registrations(event_id, 2, seed=51)
    run(lambda a: a.approve_registration(event_id, paid), server.url)
    sandbox.simulate_check_in(event_id, paid)

    attended = run(lambda a: a.get_registration(event_id, paid), server.url)
    assert attended.status is RegistrationStatus.ATTENDED
    assert attended.payment_status is PaymentStatus.PAID
    assert attended.amount_minor == 25050 and attended.currency == "TRY"
    waiting = run(lambda a: a.get_registration(event_id, unpaid), server.url)
    assert waiting.status is RegistrationStatus.PENDING
    assert waiting.payment_status is PaymentStatus.UNPAID

    for status, expected in [
        ("invited", RegistrationStatus.PENDING),
        ("session", RegistrationStatus.PENDING),
        ("waitlist", RegistrationStatus.WAITLIST),
        ("declined", RegistrationStatus.DECLINED),
    ]:
        guest = {"id": "gst-x", "approval_status": status, "event_tickets": []}
        assert registration_from_guest(event_id, guest).status is expected


def test_update_event_sets_approval_on_ticket_types_added_since(
    server: ServerHandle, sandbox: LumaSandbox
) -> None:
    """A ticket type added on Luma without approval (e.g. by hand in the dashboard) gets it
    again on the next update, so no guest can skip the hub's payment check."""
    event = make_event()
    event_id = run(lambda a: a.publish_event(event, 10), server.url).platform_event_id
    sandbox.create_ticket_type(event_id, {"name": "Walk-in", "type": "free"})
    run(lambda a: a.update_event(event, event_id, 10), server.url)
    assert all(t["require_approval"] for t in sandbox.ticket_types(event_id))


def test_an_event_without_ticket_types_gets_one_that_requires_approval(
    server: ServerHandle, sandbox: LumaSandbox
) -> None:
    event_id = run(lambda a: a.publish_event(make_event(), 10), server.url).platform_event_id
    for ticket_type in sandbox.ticket_types(event_id):
        sandbox.store.delete("ticket_type", ticket_type["api_id"])
    run(lambda a: a.require_approval(event_id), server.url)
    [created] = sandbox.ticket_types(event_id)
    assert created["require_approval"] is True and created["type"] == "free"


def test_get_self(server: ServerHandle) -> None:
    me = run(lambda a: a.get_self(), server.url)
    assert me["id"].startswith("usr-") and me["email"]


# --------------------------------------------------------------------------- faults


def test_rate_limit_becomes_rate_limited_with_retry_after(server: ServerHandle) -> None:
    configure(server, {"rate_limit": {"limit": 1, "window_seconds": 30}})

    async def flow(a: LumaAdapter) -> None:
        a.rate_limit_retries = 0  # surface the 429 instead of waiting it out
        await a.list_webhooks()
        with pytest.raises(RateLimited) as info:
            await a.list_webhooks()
        assert info.value.retry_after is not None and info.value.retry_after >= 1
        assert info.value.retryable

    run(flow, server.url)


def test_server_errors_and_unreachable_are_server_error(server: ServerHandle) -> None:
    configure(server, {"fail_next": {"count": 1, "status": 503}})
    with pytest.raises(ServerError) as info:
        run(lambda a: a.list_webhooks(), server.url)
    assert info.value.status == 503 and info.value.retryable
    assert run(lambda a: a.list_webhooks(), server.url) == []

    with pytest.raises(ServerError):
        run(lambda a: a.list_webhooks(), "http://127.0.0.1:9", timeout=2)


# ------------------------------------------------ replies off the contract (respx)

FAKE = "https://luma.example"


def _with_mock(
    setup: Callable[[respx.MockRouter], None], call: Callable[[LumaAdapter], Any]
) -> Any:
    async def main() -> Any:
        with respx.mock(base_url=FAKE, assert_all_called=False) as mock:
            setup(mock)
            async with LumaAdapter(FAKE, api_key=LUMA_API_KEY) as adapter:
                return await call(adapter)

    return asyncio.run(main())


def test_create_without_an_id_is_a_server_error() -> None:
    def setup(mock: respx.MockRouter) -> None:
        mock.post("/v1/events/create").respond(200, json={})

    with pytest.raises(ServerError) as info:
        _with_mock(setup, lambda a: a.publish_event(make_event(), 10))
    assert "no id" in str(info.value)


def test_a_non_json_reply_is_a_server_error() -> None:
    def setup(mock: respx.MockRouter) -> None:
        mock.get("/v1/events/guests/get").respond(200, text="<html>maintenance</html>")

    with pytest.raises(ServerError) as info:
        _with_mock(setup, lambda a: a.get_registration("evt-1", "gst-1"))
    assert "non-JSON" in str(info.value)


def test_an_error_echoing_the_key_is_scrubbed_and_names_the_field() -> None:
    def setup(mock: respx.MockRouter) -> None:
        mock.post("/v1/events/guests/update-status").respond(
            400, json={"message": f"bad key {LUMA_API_KEY} for status", "field": "status"}
        )

    with pytest.raises(ValidationFailed) as info:
        _with_mock(setup, lambda a: a.approve_registration("evt-1", "gst-1"))
    assert info.value.field == "status"
    assert LUMA_API_KEY not in str(info.value) and "***" in str(info.value)


def test_a_last_page_without_next_cursor_keeps_the_cursor() -> None:
    """``next_cursor`` is optional in the contract: the poll resumes from where it was."""

    def setup(mock: respx.MockRouter) -> None:
        mock.get("/v1/events/guests/list").respond(200, json={"entries": [], "has_more": False})

    page = _with_mock(setup, lambda a: a.list_registrations("evt-1", "cur-7"))
    assert page.items == [] and page.next_cursor == "cur-7" and page.has_more is False
