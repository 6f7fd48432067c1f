"""MeetupAdapter, MeetupOAuth and MeetupTokens against the Meetup emulator over real HTTP."""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import uuid4
from zoneinfo import ZoneInfo

import httpx
import pytest
import respx

from hub.models import Event, PaymentStatus, Platform, RegistrationStatus
from integrations.base import (
    AuthError,
    NotFound,
    RateLimited,
    ReconnectRequired,
    ServerError,
    Unsupported,
    ValidationFailed,
)
from integrations.meetup import (
    MeetupAdapter,
    MeetupOAuth,
    MeetupTokens,
    connect,
    description_html,
    iso_duration,
    publication_status,
    sandbox_authorize,
)
from integrations.sandbox.common import ServerHandle, serve_in_thread
from integrations.sandbox.credentials import (
    MEETUP_CLIENT_ID,
    MEETUP_CLIENT_SECRET,
    MEETUP_GROUP_URLNAME,
    MEETUP_REDIRECT_URI,
)
from integrations.sandbox.meetup import MeetupSandbox, create_app

IST = ZoneInfo("Europe/Istanbul")
_days = itertools.count(1)


class MemoryTokenStore:
    def __init__(self) -> None:
        self.data: dict[str, dict[str, Any]] = {}
        self.saves = 0

    def load(self, platform: str) -> dict[str, Any] | None:
        found = self.data.get(platform)
        return dict(found) if found else None

    def save(self, platform: str, credentials: dict[str, Any], expires_at: datetime | None) -> None:
        assert expires_at is None or expires_at.tzinfo is not None
        self.data[platform] = dict(credentials)
        self.saves += 1


def make_event(**overrides: Any) -> Event:
    """A hub event on its own day, so find_existing never sees another test's event."""
    start = datetime(2027, 1, 1, 19, 0, tzinfo=IST) + timedelta(days=next(_days))
    data: dict[str, Any] = {
        "id": uuid4(),
        "slug": "python-istanbul",
        "title": "Python İstanbul #42",
        "description": "Talks & <pizza>\nbring a laptop\n\nSecond paragraph",
        "starts_at": start,
        "ends_at": start + timedelta(hours=2, minutes=30),
        "timezone": "Europe/Istanbul",
        "online_url": "https://meet.example/abc",
        "total_capacity": 100,
        "price_minor": 0,
        "currency": "TRY",
        "status": "scheduled",
        "version": 1,
    }
    data.update(overrides)
    return Event(**data)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerHandle]:
    path = tmp_path_factory.mktemp("meetup") / "meetup.sqlite"
    handle = serve_in_thread(create_app(str(path)))
    yield handle
    handle.stop()


@pytest.fixture()
def sandbox(server: ServerHandle) -> Iterator[MeetupSandbox]:
    sb: MeetupSandbox = server.app.extensions["sandbox"]
    sb.controls.apply({"latency_ms": 0, "fail_next": None, "rate_limit": None})
    yield sb
    sb.controls.apply({"latency_ms": 0, "fail_next": None, "rate_limit": None})


def run(coro: Any) -> Any:
    return asyncio.run(coro)


class Harness:
    """An OAuth client, token store, tokens and adapter wired to the sandbox."""

    def __init__(self, url: str, transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.url = url
        self.store = MemoryTokenStore()
        self.transport = transport

    async def __aenter__(self) -> Harness:
        self.client = httpx.AsyncClient(timeout=10, transport=self.transport)
        self.oauth = MeetupOAuth(
            self.url, MEETUP_CLIENT_ID, MEETUP_CLIENT_SECRET, MEETUP_REDIRECT_URI, self.client
        )
        self.tokens = MeetupTokens(self.oauth, self.store)
        self.adapter = MeetupAdapter(
            self.url, tokens=self.tokens, group_urlname=MEETUP_GROUP_URLNAME, client=self.client
        )
        return self

    async def connect(self) -> dict[str, Any]:
        code = await sandbox_authorize(self.oauth, "state-123")
        return await connect(self.oauth, self.store, code)

    async def __aexit__(self, *exc: object) -> None:
        await self.adapter.aclose()
        await self.client.aclose()


async def list_all(adapter: MeetupAdapter, event_id: str) -> list[Any]:
    items, cursor = [], None
    while True:
        page = await adapter.list_registrations(event_id, cursor, page_size=200)
        items.extend(page.items)
        cursor = page.next_cursor
        if not page.has_more:
            return items


async def connected(url: str, transport: httpx.AsyncBaseTransport | None = None) -> Harness:
    harness = await Harness(url, transport).__aenter__()
    await harness.connect()
    return harness


# --------------------------------------------------------------------------- OAuth


def test_connect_exchanges_the_code_and_saves_tokens(server: ServerHandle, sandbox) -> None:
    async def scenario() -> None:
        async with Harness(server.url) as h:
            url = h.oauth.authorization_url("s1")
            assert url.startswith(f"{server.url}/oauth2/authorize?client_id={MEETUP_CLIENT_ID}")
            assert "response_type=code" in url and "state=s1" in url
            assert MEETUP_CLIENT_SECRET not in repr(h.oauth)
            tokens = await h.connect()
            stored = h.store.load("meetup")
            assert stored == tokens
            assert set(tokens) == {"access_token", "refresh_token", "expires_at"}
            expires = datetime.fromisoformat(tokens["expires_at"])
            assert timedelta(minutes=59) < expires - datetime.now(UTC) <= timedelta(hours=1)
            assert await h.tokens.access_token() == tokens["access_token"]  # no refresh needed
            assert h.store.saves == 1

            with pytest.raises(AuthError) as used:
                await h.oauth.exchange_code("not-a-code")
            assert "hub integrations connect meetup" in str(used.value)

            wrong = MeetupOAuth(server.url, MEETUP_CLIENT_ID, "bad", MEETUP_REDIRECT_URI, h.client)
            with pytest.raises(AuthError) as bad_client:
                await wrong.refresh(tokens["refresh_token"])
            assert "invalid_client" in str(bad_client.value)
            assert not isinstance(bad_client.value, ReconnectRequired)

    run(scenario())


def test_refresh_rotates_and_happens_before_expiry(server: ServerHandle, sandbox) -> None:
    async def scenario() -> None:
        h = await connected(server.url)
        try:
            old = h.store.load("meetup")
            soon = (datetime.now(UTC) + timedelta(minutes=4)).isoformat()
            h.store.data["meetup"]["expires_at"] = soon  # expires within 5 minutes
            token = await h.tokens.access_token()
            new = h.store.load("meetup")
            assert token == new["access_token"] != old["access_token"]
            assert new["refresh_token"] != old["refresh_token"]  # rotated and saved
            assert h.store.saves == 2
            assert sandbox.token_valid(token)
            # plenty of time left now: no second refresh
            assert await h.tokens.access_token() == token
            assert h.store.saves == 2

            # parallel callers share a single refresh
            h.store.data["meetup"]["expires_at"] = soon
            results = await asyncio.gather(*(h.tokens.access_token() for _ in range(8)))
            assert len(set(results)) == 1
            assert h.store.saves == 3
        finally:
            await h.__aexit__()

    run(scenario())


def test_401_forces_one_refresh_and_retries(server: ServerHandle, sandbox) -> None:
    async def scenario() -> None:
        h = await connected(server.url)
        try:
            h.store.data["meetup"]["access_token"] = "stale-or-revoked-token"
            publication = await h.adapter.publish_event(make_event(), capacity=10)
            assert publication.status == "published"
            assert h.store.saves == 2  # connect + the one refresh
            assert h.store.load("meetup")["access_token"] != "stale-or-revoked-token"
        finally:
            await h.__aexit__()

    run(scenario())


def test_revoked_refresh_token_requires_reconnect(server: ServerHandle, sandbox) -> None:
    async def scenario() -> None:
        h = await connected(server.url)
        try:
            tokens = h.store.load("meetup")
            assert sandbox.revoke(tokens["refresh_token"]) == 2
            with pytest.raises(ReconnectRequired) as caught:
                await h.adapter.list_registrations("310000001")
            message = str(caught.value)
            assert "`hub integrations connect meetup`" in message
            assert tokens["refresh_token"] not in message
            assert tokens["access_token"] not in message
            assert caught.value.platform == "meetup"

            empty = MeetupTokens(h.oauth, MemoryTokenStore())
            with pytest.raises(ReconnectRequired, match="hub integrations connect meetup"):
                await empty.access_token()
        finally:
            await h.__aexit__()

    run(scenario())


# --------------------------------------------------------------------------- publishing


def test_publish_creates_a_draft_then_publishes(server: ServerHandle, sandbox) -> None:
    async def scenario() -> None:
        h = await connected(server.url)
        try:
            event = make_event(price_minor=25000)
            publication = await h.adapter.publish_event(event, capacity=40)
            assert publication.platform is Platform.MEETUP
            assert publication.status == "published"
            event_id = publication.platform_event_id
            assert event_id.isdigit()
            # the sandbox's own page, not meetup.com
            assert publication.url == f"{server.url}/{MEETUP_GROUP_URLNAME}/events/{event_id}/"
            create = publication.raw["create"]
            assert create["event"]["status"] == "DRAFT"
            published = publication.raw["publish"]["event"]
            assert published["status"] == "ACTIVE"  # EventStatus; the hub word is "published"
            assert published["maxTickets"] == 40  # the limit as Meetup reads it back
            assert published["rsvpSettings"] == {"rsvpsClosed": False}

            stored = sandbox.store.get("event", event_id)
            assert stored["dateTime"] == event.starts_at.astimezone(IST).strftime(
                "%Y-%m-%dT%H:%M:%S+03:00"
            )
            assert stored["duration"] == "PT2H30M"
            assert stored["rsvpLimit"] == 40
            assert stored["venueId"] == "online"
            assert stored["howToFindUs"] == "https://meet.example/abc"
            # whole currency units (EventFeeOption.amount is Int!), paid to the organizer
            assert stored["fee"] == {
                "amount": 250,
                "currency": "TRY",
                "paymentMethod": "CASH",
                "refundPolicy": None,
            }
            assert stored["description"] == (
                "<p>Talks &amp; &lt;pizza&gt;<br>bring a laptop</p><p>Second paragraph</p>"
            )
            assert sandbox.store.count("rsvp", scope=event_id) == 0  # no host RSVP
        finally:
            await h.__aexit__()

    run(scenario())


def test_publish_validation_errors_name_the_field(server: ServerHandle, sandbox) -> None:
    async def scenario() -> None:
        h = await connected(server.url)
        try:
            with pytest.raises(ValidationFailed) as caught:
                await h.adapter.publish_event(make_event(title="T" * 81), capacity=5)
            assert caught.value.field == "title"
            assert caught.value.code == "FIELD_TOO_LONG"
            assert "80" in str(caught.value)

            with pytest.raises(ValidationFailed) as unknown:
                await h.adapter.update_capacity("999999999", 5)
            assert unknown.value.field == "eventId"

            with pytest.raises(ValidationFailed) as schema:
                await h.adapter._gql("{ event(id: 1) { nope } }", {})
            assert schema.value.code == "ValidationError"
            assert "nope" in str(schema.value)
        finally:
            await h.__aexit__()

    run(scenario())


class Recording(httpx.AsyncBaseTransport):
    """Real HTTP, remembering the operation name of every GraphQL request sent."""

    def __init__(self) -> None:
        self.inner = httpx.AsyncHTTPTransport()
        self.operations: list[str] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/gql-ext"):
            self.operations.append(json.loads(request.content).get("operationName", ""))
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


def test_paid_events_send_only_what_eventfeeoption_has(server: ServerHandle, sandbox) -> None:
    async def scenario() -> None:
        wire = Recording()
        h = await connected(server.url, wire)
        try:
            before = len(sandbox.store.all("event"))
            # 150.50 TRY: EventFeeOption.amount is a whole-unit Int, refused before sending
            with pytest.raises(ValidationFailed) as fractional:
                await h.adapter.publish_event(make_event(price_minor=15050), capacity=10)
            assert fractional.value.field == "price_minor"
            assert "150.50 TRY" in str(fractional.value) and "whole" in str(fractional.value)
            # a currency EventFeeCurrency lacks is refused too
            with pytest.raises(ValidationFailed) as currency:
                await h.adapter.publish_event(
                    make_event(price_minor=20000, currency="MXN"), capacity=10
                )
            assert currency.value.field == "currency" and "TRY" in str(currency.value)
            assert wire.operations == []  # nothing reached Meetup
            assert len(sandbox.store.all("event")) == before

            yen = await h.adapter.publish_event(
                make_event(price_minor=3000, currency="JPY"), capacity=10
            )
            stored = sandbox.store.get("event", yen.platform_event_id)
            assert (stored["fee"]["amount"], stored["fee"]["currency"]) == (3000, "JPY")

            # editing: EditEventInput.feeOption is {enabled, fee}
            event = make_event(price_minor=10000)
            pub = await h.adapter.publish_event(event, capacity=10)
            free = event.model_copy(update={"price_minor": 0})
            await h.adapter.update_event(free, pub.platform_event_id, capacity=10)
            assert sandbox.store.get("event", pub.platform_event_id)["fee"] is None
            dearer = event.model_copy(update={"price_minor": 12000})
            await h.adapter.update_event(dearer, pub.platform_event_id, capacity=10)
            assert sandbox.store.get("event", pub.platform_event_id)["fee"]["amount"] == 120
        finally:
            await h.__aexit__()

    run(scenario())


def test_publication_status_words() -> None:
    assert publication_status("ACTIVE") == "published"
    assert publication_status("DRAFT") == "draft"
    assert publication_status("PAST") == "past"
    assert publication_status("CANCELLED") == "cancelled"
    assert publication_status("BLOCKED") == "blocked"
    assert publication_status(None) == "unknown"


def test_unregistered_redirect_uri_is_refused(server: ServerHandle, sandbox) -> None:
    async def scenario() -> None:
        async with Harness(server.url) as h:
            elsewhere = MeetupOAuth(
                server.url,
                MEETUP_CLIENT_ID,
                MEETUP_CLIENT_SECRET,
                "https://evil.example/callback",
                h.client,
            )
            with pytest.raises(AuthError) as refused:
                await sandbox_authorize(elsewhere, "s")
            assert refused.value.status == 400
            assert "invalid_request" in str(refused.value)

            code = await sandbox_authorize(h.oauth, "s")  # the registered one works
            with pytest.raises(AuthError):
                await elsewhere.exchange_code(code)  # but not with another redirect_uri
            assert (await h.oauth.exchange_code(code))["access_token"]

    run(scenario())


def test_rsvps_still_open_after_close_is_an_error() -> None:
    """The close payload's event is the truth: an RSVP state that did not change is a fault."""

    async def scenario() -> None:
        store = MemoryTokenStore()
        store.data["meetup"] = {
            "access_token": "a",
            "refresh_token": "r",
            "expires_at": (datetime.now(UTC) + timedelta(hours=1)).isoformat(),
        }
        async with Harness("https://api.example") as h:
            h.store = store
            h.tokens.store = store
            with respx.mock(base_url="https://api.example") as mock:
                mock.post("/gql-ext").respond(
                    200,
                    json={
                        "data": {
                            "closeEventRsvps": {
                                "event": {
                                    "id": "1",
                                    "maxTickets": 5,
                                    "rsvpSettings": {"rsvpsClosed": False},
                                },
                                "errors": None,
                            }
                        }
                    },
                )
                with pytest.raises(ServerError, match="still open"):
                    await h.adapter.close_sales("1")

    run(scenario())


class LoseReply(httpx.AsyncBaseTransport):
    """Real HTTP, but the reply to the next matching request is lost after the server acted."""

    def __init__(self, marker: bytes) -> None:
        self.inner = httpx.AsyncHTTPTransport()
        self.marker = marker
        self.armed = True

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self.inner.handle_async_request(request)
        if self.armed and self.marker in request.content:
            self.armed = False
            await response.aread()
            raise httpx.ReadTimeout("reply lost", request=request)
        return response

    async def aclose(self) -> None:
        await self.inner.aclose()


def test_find_existing_after_a_lost_reply(server: ServerHandle, sandbox) -> None:
    async def scenario() -> None:
        h = await connected(server.url, LoseReply(b"publishEventDraft"))
        try:
            event = make_event()
            assert await h.adapter.find_existing(event) is None
            with pytest.raises(ServerError):
                await h.adapter.publish_event(event, capacity=10)  # published, reply lost
            found = await h.adapter.find_existing(event)
            assert found is not None and found.status == "published"

            other = make_event()
            h.transport.armed = True  # now lose the reply to the first publish of a draft
            h.transport.marker = b"hubCreateEvent"
            with pytest.raises(ServerError):
                await h.adapter.publish_event(other, capacity=10)  # a draft is left behind
            drafts = [e for e in sandbox.store.all("event") if e["title"] == other.title]
            assert any(e["status"] == "DRAFT" for e in drafts)
            again = await h.adapter.find_existing(other)
            assert again is not None and again.status == "published"  # the draft is finished
            assert sandbox.store.get("event", again.platform_event_id)["status"] == "ACTIVE"
            assert await h.adapter.find_existing(make_event()) is None
            shifted = other.model_copy(update={"starts_at": other.starts_at + timedelta(hours=1)})
            assert await h.adapter.find_existing(shifted) is None

            starts = {(e["title"], e["dateTime"]) for e in sandbox.store.all("event")}
            assert len(starts) == len(sandbox.store.all("event"))  # no duplicates anywhere
        finally:
            await h.__aexit__()

    run(scenario())


def test_update_event_capacity_and_sales(server: ServerHandle, sandbox) -> None:
    async def scenario() -> None:
        h = await connected(server.url)
        try:
            event = make_event()
            pub = await h.adapter.publish_event(event, capacity=2)
            eid = pub.platform_event_id
            sandbox.simulate_registrations(eid, 4, seed=3)

            changed = event.model_copy(
                update={
                    "title": "Python İstanbul #42 (moved)",
                    "online_url": None,
                    "venue_name": "Kadıköy Sahnesi",
                    "venue_address": "Caferağa Mah., İstanbul",
                    "ends_at": event.ends_at + timedelta(hours=1),
                }
            )
            updated = await h.adapter.update_event(changed, eid, capacity=3)
            assert updated.platform_event_id == eid and updated.status == "published"
            stored = sandbox.store.get("event", eid)
            assert stored["title"] == "Python İstanbul #42 (moved)"
            assert stored["duration"] == "PT3H30M"
            assert "Kadıköy Sahnesi, Caferağa Mah., İstanbul" in stored["description"]
            assert stored["venueId"] is None and stored["howToFindUs"] is None  # not online
            assert stored["rsvpLimit"] == 3
            page = await h.adapter.list_registrations(eid)
            statuses = [r.status for r in page.items]
            assert statuses.count(RegistrationStatus.APPROVED) == 3  # one promoted
            assert statuses.count(RegistrationStatus.WAITLIST) == 1

            await h.adapter.update_capacity(eid, 10)
            assert sandbox.store.get("event", eid)["rsvpLimit"] == 10
            await h.adapter.update_capacity(eid, 0)  # 0 must not mean "no limit"
            stored = sandbox.store.get("event", eid)
            assert stored["rsvpLimit"] == 10 and stored["rsvpsClosed"] is True
            await h.adapter.open_sales(eid)
            assert sandbox.store.get("event", eid)["rsvpsClosed"] is False
            await h.adapter.close_sales(eid)
            assert sandbox.store.get("event", eid)["rsvpsClosed"] is True
        finally:
            await h.__aexit__()

    run(scenario())


# --------------------------------------------------------------------------- registrations


def test_pagination_and_incremental_cursor(server: ServerHandle, sandbox) -> None:
    async def scenario() -> None:
        h = await connected(server.url)
        try:
            pub = await h.adapter.publish_event(make_event(), capacity=400)
            eid = pub.platform_event_id
            ids = sandbox.simulate_registrations(eid, 450, seed=42)

            seen, cursor, pages = [], None, 0
            while True:
                page = await h.adapter.list_registrations(eid, cursor, page_size=200)
                pages += 1
                seen.extend(page.items)
                cursor = page.next_cursor
                if not page.has_more:
                    break
            assert pages == 3
            assert [r.platform_registration_id for r in seen] == ids
            statuses = [r.status for r in seen]
            assert statuses.count(RegistrationStatus.APPROVED) == 400
            assert statuses.count(RegistrationStatus.WAITLIST) == 50
            first = seen[0]
            assert first.platform is Platform.MEETUP and first.platform_event_id == eid
            assert first.full_name and first.email is None and first.phone is None
            assert first.updated_at is not None and first.payment_status is PaymentStatus.NONE

            # nothing new: same cursor back, no items
            idle = await h.adapter.list_registrations(eid, cursor)
            assert idle.items == [] and idle.next_cursor == cursor and not idle.has_more

            # seven more people: only they come back
            cancelled = sandbox.set_rsvp_status(ids[0], "NO")
            assert cancelled["status"] == "NO"
            new_ids = sandbox.simulate_registrations(eid, 7, seed=43)
            fresh = await h.adapter.list_registrations(eid, cursor)
            assert [r.platform_registration_id for r in fresh.items] == new_ids
            assert all(r.status is RegistrationStatus.WAITLIST for r in fresh.items)
            assert fresh.next_cursor != cursor

            # a status change of a seen RSVP shows up in the full re-scan
            by_id = {r.platform_registration_id: r for r in await list_all(h.adapter, eid)}
            assert len(by_id) == 457
            assert by_id[ids[0]].status is RegistrationStatus.CANCELLED
            assert by_id[ids[400]].status is RegistrationStatus.APPROVED  # promoted by Meetup

            with pytest.raises(NotFound):
                await h.adapter.list_registrations("999999998")
        finally:
            await h.__aexit__()

    run(scenario())


def test_paid_event_and_status_mapping(server: ServerHandle, sandbox) -> None:
    async def scenario() -> None:
        h = await connected(server.url)
        try:
            pub = await h.adapter.publish_event(make_event(price_minor=15000), capacity=50)
            eid = pub.platform_event_id
            ids = sandbox.simulate_registrations(eid, 6, seed=5)
            for rsvp_id, status in zip(
                ids[1:],
                ["ATTENDED", "NO_SHOW", "YES_PENDING_PAYMENT", "EXCUSED_ABSENCE", "MAYBE"],
                strict=True,
            ):
                sandbox.set_rsvp_status(rsvp_id, status)
            page = await h.adapter.list_registrations(eid)
            got = [(r.status, r.payment_status, r.amount_minor) for r in page.items]
            assert got == [
                (RegistrationStatus.APPROVED, PaymentStatus.PAID, 15000),
                (RegistrationStatus.ATTENDED, PaymentStatus.PAID, 15000),
                (RegistrationStatus.NO_SHOW, PaymentStatus.PAID, 15000),
                (RegistrationStatus.PENDING, PaymentStatus.UNPAID, 15000),
                (RegistrationStatus.CANCELLED, PaymentStatus.NONE, 0),
                (RegistrationStatus.PENDING, PaymentStatus.NONE, 0),
            ]
            assert page.items[0].currency == "TRY"
        finally:
            await h.__aexit__()

    run(scenario())


def test_approve_decline_anonymize_are_unsupported(server: ServerHandle, sandbox) -> None:
    async def scenario() -> None:
        h = await connected(server.url)
        try:
            for call in (
                h.adapter.approve_registration,
                h.adapter.decline_registration,
                h.adapter.anonymize_registration,
            ):
                with pytest.raises(Unsupported) as caught:
                    await call("1", "2")
                assert "Meetup" in str(caught.value)
        finally:
            await h.__aexit__()

    run(scenario())


# --------------------------------------------------------------------------- faults


def test_429_and_5xx_and_transport_errors(server: ServerHandle, sandbox) -> None:
    async def scenario() -> None:
        h = await connected(server.url)
        try:
            pub = await h.adapter.publish_event(make_event(), capacity=5)
            eid = pub.platform_event_id
            sandbox.controls.apply({"rate_limit": {"limit": 1, "window_seconds": 20}})
            h.adapter.rate_limit_retries = 0  # surface the 429 instead of waiting it out
            await h.adapter.list_registrations(eid)
            with pytest.raises(RateLimited) as limited:
                await h.adapter.list_registrations(eid)
            assert limited.value.retry_after is not None and 19 <= limited.value.retry_after <= 20
            assert limited.value.retryable
            sandbox.controls.apply({"rate_limit": None})

            sandbox.controls.apply({"fail_next": {"count": 1, "status": 503}})
            with pytest.raises(ServerError) as failed:
                await h.adapter.close_sales(eid)
            assert failed.value.status == 503 and failed.value.retryable
            await h.adapter.close_sales(eid)  # the next try goes through
        finally:
            await h.__aexit__()

        async with Harness("http://127.0.0.1:9") as dead:
            dead.store.data["meetup"] = {
                "access_token": "a",
                "refresh_token": "r",
                "expires_at": (datetime.now(UTC) + timedelta(hours=1)).isoformat(),
            }
            with pytest.raises(ServerError) as unreachable:
                await dead.adapter.close_sales("1")
            assert "cannot reach" in str(unreachable.value)

    run(scenario())


def test_rate_limit_reported_inside_a_200_reply() -> None:
    """Contract Uncertain #1: Meetup may answer over-limit with HTTP 200 and an error code."""

    async def scenario() -> None:
        store = MemoryTokenStore()
        store.data["meetup"] = {
            "access_token": "a",
            "refresh_token": "r",
            "expires_at": (datetime.now(UTC) + timedelta(hours=1)).isoformat(),
        }
        reset = (datetime.now(UTC) + timedelta(seconds=30)).isoformat()
        async with Harness("https://api.example") as h:
            h.store = store
            h.tokens.store = store
            with respx.mock(base_url="https://api.example") as mock:
                mock.post("/gql-ext").respond(
                    200,
                    json={
                        "errors": [
                            {
                                "message": "Too many requests",
                                "extensions": {"code": "RATE_LIMITED", "resetAt": reset},
                            }
                        ]
                    },
                )
                with pytest.raises(RateLimited) as caught:
                    await h.adapter.close_sales("1")
            assert 25 < (caught.value.retry_after or 0) <= 30

    run(scenario())


def test_helpers() -> None:
    assert iso_duration(timedelta(hours=2)) == "PT2H"
    assert iso_duration(timedelta(hours=1, minutes=30)) == "PT1H30M"
    assert iso_duration(timedelta(days=1, hours=2)) == "P1DT2H"
    blank = make_event(description="")
    assert description_html(blank) == "<p>Python İstanbul #42</p>"
    assert "<script>" not in description_html(make_event(description="<script>x</script>"))


def test_state_survives_restart_for_the_adapter(tmp_path: Path) -> None:
    path = str(tmp_path / "restart.sqlite")
    first = serve_in_thread(create_app(path))

    async def publish() -> tuple[str, MemoryTokenStore]:
        h = await connected(first.url)
        try:
            pub = await h.adapter.publish_event(make_event(), capacity=5)
            first.app.extensions["sandbox"].simulate_registrations(pub.platform_event_id, 3)
            return pub.platform_event_id, h.store
        finally:
            await h.__aexit__()

    event_id, store = run(publish())
    first.stop()
    second = serve_in_thread(create_app(path))
    try:

        async def read() -> int:
            async with Harness(second.url) as h:
                h.store = store
                h.tokens.store = store
                page = await h.adapter.list_registrations(event_id)
                return len(page.items)

        assert run(read()) == 3
    finally:
        second.stop()
