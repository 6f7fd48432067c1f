"""EventbriteAdapter against the Eventbrite emulator over real HTTP."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from flask import Flask, request

from hub.models import Event, PaymentStatus, Platform, RegistrationStatus
from integrations.base import (
    AuthError,
    NotFound,
    RateLimited,
    ServerError,
    Unsupported,
    ValidationFailed,
)
from integrations.eventbrite import EventbriteAdapter, parse_webhook
from integrations.sandbox.common import ServerHandle, serve_in_thread
from integrations.sandbox.credentials import EVENTBRITE_ORGANIZATION_ID as ORG
from integrations.sandbox.credentials import EVENTBRITE_TOKEN as TOKEN
from integrations.sandbox.eventbrite import create_app

pytestmark = pytest.mark.anyio

START = datetime.now(UTC).replace(microsecond=0) + timedelta(days=20)


@pytest.fixture()
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture()
def server(tmp_path) -> Iterator[ServerHandle]:
    handle = serve_in_thread(create_app(str(tmp_path / "eventbrite.sqlite")))
    yield handle
    handle.stop()


class Recorder:
    """A real local HTTP endpoint recording every request it gets."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, str], dict | None]] = []
        app = Flask("recorder")

        @app.route("/<path:rest>", methods=["GET", "POST"])
        def anything(rest: str) -> tuple[str, int]:
            body = request.get_json(silent=True)
            self.calls.append((request.full_path, dict(request.headers), body))
            return "{}", 200

        self.handle = serve_in_thread(app)
        self.url = self.handle.url


@pytest.fixture()
def recorder() -> Iterator[Recorder]:
    rec = Recorder()
    yield rec
    rec.handle.stop()


def sandbox_of(server: ServerHandle):
    return server.app.extensions["sandbox"]


def adapter(server: ServerHandle, **kwargs) -> EventbriteAdapter:
    kwargs.setdefault("token", TOKEN)
    kwargs.setdefault("payout_country", "TR")
    return EventbriteAdapter(server.url, organization_id=ORG, **kwargs)


def hub_event(**overrides) -> Event:
    data = {
        "id": uuid.uuid4(),
        "slug": "python-istanbul-42",
        "title": "Python İstanbul #42 & friends",
        "description": "Talks on <asyncio>.\n\nPizza after.",
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


def wait_until(predicate, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.02)


# --------------------------------------------------------------------------- publishing


async def test_publish_paid_event_end_to_end(server: ServerHandle) -> None:
    event = hub_event()
    async with adapter(server) as eb:
        publication = await eb.publish_event(event, 60)
        assert publication.platform is Platform.EVENTBRITE
        assert publication.status == "live"
        # The public URL is the sandbox's page, and it shows the published event.
        assert publication.url.startswith(f"{server.url}/e/python-istanbul-42")
        assert httpx.get(publication.url).status_code == 200
        raw_event = publication.raw["event"]
        assert raw_event["status"] == "live" and raw_event["capacity"] == 60
        assert raw_event["name"]["text"] == event.title
        assert raw_event["description"]["html"] == (
            "<p>Talks on &lt;asyncio&gt;.</p><p>Pizza after.</p>"
        )
        assert raw_event["venue_id"] and raw_event["online_event"] is False
        assert publication.raw["publish"] == {"published": True}
        admission, waitlist = publication.raw["ticket_classes"]
        assert admission["name"] == "General admission" and admission["hidden"] is False
        assert admission["cost"]["value"] == 25000 and admission["capacity"] == 60
        assert waitlist["name"] == "Waitlist" and waitlist["hidden"] is True
        # Capacity 0 is refused for a normal ticket: the waitlist is one hidden seat.
        assert waitlist["capacity"] == 1 and waitlist["cost"]["value"] == 25000
        (settings,) = (
            await eb._call("GET", f"events/{publication.platform_event_id}/checkout_settings")
        )["checkout_settings"]
        assert (settings["currency_code"], settings["country_code"]) == ("TRY", "TR")
        assert settings["checkout_method"] == "eventbrite"

        found = await eb.find_existing(event)
        assert found is not None and found.platform_event_id == publication.platform_event_id
        assert await eb.find_existing(hub_event(starts_at=START + timedelta(days=1))) is None

        assert await eb.find_existing(event, exclude={publication.platform_event_id}) is None
        again = await eb.adopt_existing(event, found, 60)
        assert again.platform_event_id == publication.platform_event_id
        assert len(await eb.ticket_classes(publication.platform_event_id)) == 2
        second = await eb.publish_event(hub_event(title="Another night"), 10)
        assert second.raw["event"]["venue_id"] == raw_event["venue_id"]  # venue reused
    store = sandbox_of(server).store
    assert store.count("event") == 2 and store.count("venue") == 1
    assert store.count("checkout_settings") == 1  # created once, linked to both events


async def test_publish_free_online_event(server: ServerHandle) -> None:
    event = hub_event(
        price_minor=0, venue_name=None, venue_address=None, online_url="https://meet.example/x"
    )
    async with adapter(server) as eb:
        publication = await eb.publish_event(event, 25)
    admission, waitlist = publication.raw["ticket_classes"]
    assert admission["free"] is True and admission["cost"] is None
    assert waitlist["free"] is True
    assert publication.raw["event"]["online_event"] is True
    assert publication.raw["event"]["venue_id"] is None
    assert publication.raw["event"]["is_free"] is True


async def test_paid_event_uses_the_organizations_payment_options(server: ServerHandle) -> None:
    """Payouts set up in Eventbrite (checkout settings for the currency) are linked, not
    duplicated; settings that cannot publish (PayPal without its account) are skipped."""
    async with adapter(server) as eb:
        for fields in (
            {"checkout_method": "paypal"},
            {"checkout_method": "eventbrite", "country_code": "TR"},
        ):
            await eb._call(
                "POST",
                f"organizations/{ORG}/checkout_settings",
                json_body={"checkout_settings": {"currency_code": "TRY", **fields}},
            )
        publication = await eb.publish_event(hub_event(), 10)
        linked = await eb._call("GET", f"events/{publication.platform_event_id}/checkout_settings")
    assert publication.status == "live"
    assert [s["checkout_method"] for s in linked["checkout_settings"]] == ["eventbrite"]
    assert sandbox_of(server).store.count("checkout_settings") == 2  # none created


async def test_paid_event_without_payout_country_stays_a_draft(server: ServerHandle) -> None:
    async with adapter(server, payout_country=None) as eb:
        with pytest.raises(ValidationFailed) as refused:
            await eb.publish_event(hub_event(), 10)
        assert refused.value.code == "NO_PAYMENT_OPTIONS"
        assert refused.value.field == "payout_country"
        existing = await eb.find_existing(hub_event())
        assert existing is not None and existing.status == "draft"
        free = await eb.publish_event(hub_event(title="Free night", price_minor=0), 10)
        assert free.status == "live"  # a free event needs no payment options


async def test_create_validation_errors_are_typed(server: ServerHandle) -> None:
    async with adapter(server) as eb:
        with pytest.raises(ValidationFailed) as missing:
            await eb.publish_event(hub_event(title="   "), 10)
        assert missing.value.code == "ARGUMENTS_ERROR"
        assert missing.value.field == "event.name.html"

        with pytest.raises(ValidationFailed) as backwards:
            await eb.publish_event(hub_event(ends_at=START - timedelta(hours=1)), 10)
        assert backwards.value.code == "DATE_CONFLICT"

        created = await eb._call(
            "POST",
            f"organizations/{ORG}/events",
            json_body=eb._event_body(hub_event(title="Raw"), 5, None),
        )
        with pytest.raises(ValidationFailed) as both:
            await eb._call(
                "POST",
                f"events/{created['id']}/ticket_classes",
                json_body={
                    "ticket_class": {"name": "X", "capacity": 1, "free": True, "cost": "TRY,1"}
                },
            )
        assert both.value.code == "FREE_AND_COST" and both.value.status == 400
    assert sandbox_of(server).store.count("ticket_class") == 0


@pytest.mark.parametrize("fail_on", ["/publish/", "/ticket_classes/", "/checkout_settings/"])
async def test_publish_resumes_without_duplicates(server: ServerHandle, fail_on: str) -> None:
    """A crash between two steps (here: a 503 on that step) is finished by a retry."""
    controls = sandbox_of(server).controls
    fired = []

    async def fail_once(req: httpx.Request) -> None:
        if req.method == "POST" and req.url.path.endswith(fail_on) and not fired:
            fired.append(req.url.path)
            controls.apply({"fail_next": {"count": 1, "status": 503}})

    event = hub_event()
    async with httpx.AsyncClient(event_hooks={"request": [fail_once]}) as client:
        eb = adapter(server, client=client)
        with pytest.raises(ServerError):
            await eb.publish_event(event, 40)
        assert fired
        existing = await eb.find_existing(event)
        assert existing is not None and existing.status == "draft"
        publication = await eb.adopt_existing(event, existing, 40)
        again = await eb.adopt_existing(event, existing, 40)  # adopting twice is harmless
        assert again.platform_event_id == existing.platform_event_id
    store = sandbox_of(server).store
    assert store.count("event") == 1
    assert store.count("ticket_class") == 2
    assert store.count("checkout_settings") == 1
    assert publication.status == "live" and publication.raw["event"]["status"] == "live"
    assert {tc["name"] for tc in publication.raw["ticket_classes"]} == {
        "General admission",
        "Waitlist",
    }


async def test_update_event_capacity_and_close_sales(server: ServerHandle) -> None:
    sandbox = sandbox_of(server)
    async with adapter(server) as eb:
        publication = await eb.publish_event(hub_event(), 8)
        event_id = publication.platform_event_id
        sandbox.simulate_registrations(event_id, 3, seed=21)
        admission = (await eb.ticket_classes(event_id))[0]
        sold = admission["quantity_sold"]
        assert 3 <= sold <= 6

        updated = await eb.update_event(hub_event(title="Renamed night"), event_id, 2)
        assert updated.raw["event"]["name"]["text"] == "Renamed night"
        assert updated.raw["event"]["capacity"] == sold  # never below seats sold
        assert updated.raw["ticket_classes"][0]["capacity"] == sold

        await eb.update_capacity(event_id, 20)
        admission = (await eb.ticket_classes(event_id))[0]
        assert admission["capacity"] == 20
        tier = await eb._call("GET", f"events/{event_id}/capacity_tier")
        assert tier["capacity_total"] == 20

        await eb.close_sales(event_id)
        admission = (await eb.ticket_classes(event_id))[0]
        assert admission["capacity"] == admission["quantity_sold"]
        assert admission["on_sale_status"] == "SOLD_OUT"
        assert sandbox.simulate_registrations(event_id, 2, seed=22) == []

        await eb.update_capacity(event_id, admission["quantity_sold"] + 1)
        assert len(sandbox.simulate_registrations(event_id, 1, seed=23)) == 1

        with pytest.raises(NotFound):
            await eb.update_capacity("700000000000", 5)


async def test_zero_seats_hide_the_admission_class(server: ServerHandle) -> None:
    """Eventbrite refuses capacity 0 for a normal ticket: no seats is a hidden class."""
    sandbox = sandbox_of(server)
    async with adapter(server) as eb:
        publication = await eb.publish_event(hub_event(price_minor=0), 0)
        event_id = publication.platform_event_id
        admission, _ = publication.raw["ticket_classes"]
        assert (admission["capacity"], admission["hidden"]) == (1, True)
        assert sandbox.simulate_registrations(event_id, 1, seed=1) == []

        await eb.update_capacity(event_id, 3)
        admission = (await eb.ticket_classes(event_id))[0]
        assert (admission["capacity"], admission["hidden"]) == (3, False)
        await eb.close_sales(event_id)  # nothing sold yet
        admission = (await eb.ticket_classes(event_id))[0]
        assert (admission["capacity"], admission["hidden"]) == (1, True)
        assert sandbox.simulate_registrations(event_id, 1, seed=2) == []
        await eb.update_capacity(event_id, 2)
        assert len(sandbox.simulate_registrations(event_id, 1, seed=3)) == 1


async def test_a_started_event_can_still_be_renamed(server: ServerHandle) -> None:
    """Eventbrite refuses dates in the past (INVALID_DATE): unchanged dates are not resent."""
    sandbox = sandbox_of(server)
    async with adapter(server) as eb:
        publication = await eb.publish_event(hub_event(), 10)
        event_id = publication.platform_event_id
        began = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=30)
        doc = sandbox.store.get("event", event_id)  # the clock moves on: it has started
        doc["start"]["utc"] = began.strftime("%Y-%m-%dT%H:%M:%SZ")
        doc["end"]["utc"] = (began + timedelta(hours=3)).strftime("%Y-%m-%dT%H:%M:%SZ")
        sandbox.store.update("event", event_id, doc)
        for tc in sandbox.store.all("ticket_class", scope=event_id):
            tc["sales_start"] = (began - timedelta(days=7)).strftime("%Y-%m-%dT%H:%M:%SZ")
            tc["sales_end"] = doc["start"]["utc"]
            sandbox.store.update("ticket_class", tc["id"], tc)
        started = hub_event(title="Renamed", starts_at=began, ends_at=began + timedelta(hours=3))
        updated = await eb.update_event(started, event_id, 10)
        assert updated.raw["event"]["name"]["text"] == "Renamed"
        with pytest.raises(ValidationFailed) as moved:
            await eb.update_event(
                hub_event(starts_at=began - timedelta(days=1), ends_at=began), event_id, 10
            )
        assert moved.value.code == "INVALID_DATE"


# --------------------------------------------------------------------------- registrations


async def _pull_all(eb: EventbriteAdapter, event_id: str, cursor: str | None):
    items, pages = [], 0
    while True:
        page = await eb.list_registrations(event_id, cursor)
        pages += 1
        items.extend(page.items)
        cursor = page.next_cursor
        if not page.has_more:
            return items, cursor, pages


async def test_list_registrations_pages_and_pulls_incrementally(server: ServerHandle) -> None:
    sandbox = sandbox_of(server)
    async with adapter(server) as eb:
        publication = await eb.publish_event(hub_event(), 300)
        event_id = publication.platform_event_id
        order_ids = sandbox.simulate_registrations(event_id, 115, seed=8)
        assert len(order_ids) == 115

        items, cursor, pages = await _pull_all(eb, event_id, None)
        assert pages >= 3
        ids = [r.platform_registration_id for r in items]
        assert len(ids) == len(set(ids)) >= 115
        first = items[0]
        assert first.platform is Platform.EVENTBRITE and first.platform_event_id == event_id
        assert first.status is RegistrationStatus.APPROVED
        assert first.payment_status is PaymentStatus.PAID
        assert (first.amount_minor, first.currency) == (25000, "TRY")
        assert first.full_name and "@" in first.email and first.phone
        assert first.registered_at is not None and first.updated_at is not None
        assert first.raw["id"] == first.platform_registration_id

        # changed_since is inclusive to the second: the boundary is re-read, but attendees
        # the cursor already returned unchanged are dropped, so nothing comes back.
        nothing, cursor, _ = await _pull_all(eb, event_id, cursor)
        assert nothing == []

        refunded = sandbox.refund(order_ids[10])
        refunded_ids = {a["id"] for a in refunded["attendees"]}
        changed, cursor, _ = await _pull_all(eb, event_id, cursor)
        assert {r.platform_registration_id for r in changed} == refunded_ids
        assert all(r.status is RegistrationStatus.CANCELLED for r in changed)
        assert all(r.payment_status is PaymentStatus.REFUNDED for r in changed)

        again, cursor, _ = await _pull_all(eb, event_id, cursor)
        assert again == []
        # A second change in the same second still comes back (never skipped).
        attendee_id = sorted(refunded_ids)[0]
        doc = sandbox.store.get("attendee", attendee_id)
        doc["profile"]["email"] = "changed@example.com"
        sandbox.store.update("attendee", attendee_id, doc)
        (changed_again,), _, _ = await _pull_all(eb, event_id, cursor)
        assert changed_again.email == "changed@example.com"

        with pytest.raises(ValidationFailed) as bad:
            await eb.list_registrations(event_id, "not-a-cursor!")
        assert bad.value.code == "BAD_CURSOR"


async def test_status_mapping_and_get_registration(server: ServerHandle) -> None:
    sandbox = sandbox_of(server)
    async with adapter(server) as eb:
        publication = await eb.publish_event(hub_event(price_minor=0), 50)
        event_id = publication.platform_event_id
        order_ids = sandbox.simulate_registrations(event_id, 3, seed=12)
        orders = [sandbox.render_order(sandbox.order(o), expand={"attendees"}) for o in order_ids]
        cancelled_id = orders[0]["attendees"][0]["id"]
        checked_in_id = orders[1]["attendees"][0]["id"]
        sandbox.cancel_attendee(cancelled_id)
        sandbox.check_in(checked_in_id)

        cancelled = await eb.get_registration(event_id, cancelled_id)
        assert cancelled.status is RegistrationStatus.CANCELLED
        assert cancelled.payment_status is PaymentStatus.NONE
        attended = await eb.get_registration(event_id, checked_in_id)
        assert attended.status is RegistrationStatus.ATTENDED
        fresh = await eb.get_registration(event_id, orders[2]["attendees"][0]["id"])
        assert fresh.status is RegistrationStatus.APPROVED
        assert (fresh.payment_status, fresh.amount_minor) == (PaymentStatus.NONE, 0)
        with pytest.raises(NotFound):
            await eb.get_registration(event_id, "5999999999")


async def test_unsupported_operations(server: ServerHandle) -> None:
    async with adapter(server) as eb:
        for call in (eb.approve_registration, eb.decline_registration):
            with pytest.raises(Unsupported, match="no approval flow"):
                await call("1", "2")
        with pytest.raises(Unsupported, match="only the attendee"):
            await eb.anonymize_registration("1", "2")


# --------------------------------------------------------------------------- webhooks


async def test_webhook_registration_delivery_and_fetch(
    server: ServerHandle, recorder: Recorder
) -> None:
    endpoint = f"{recorder.url}/hooks/eventbrite"
    sandbox = sandbox_of(server)
    async with adapter(server) as eb:
        publication = await eb.publish_event(hub_event(), 30)
        event_id = publication.platform_event_id
        hook = await eb.register_webhook(endpoint, ["order.placed", "attendee.updated"])
        same = await eb.register_webhook(endpoint, ["attendee.updated", "order.placed"])
        assert same["id"] == hook["id"]
        assert [w["id"] for w in await eb.list_webhooks()] == [hook["id"]]
        scoped = await eb.register_webhook(endpoint, ["order.placed"], event_id=event_id)
        assert scoped["id"] != hook["id"] and scoped["event_id"] == event_id

        wait_until(lambda: len(recorder.calls) == 2)  # one test ping per webhook
        _, ping_headers, ping = recorder.calls[0]
        assert ping_headers["X-Eventbrite-Event"] == "test"
        with pytest.raises(ValidationFailed) as test_ping:
            await eb.fetch_api_url(ping["api_url"])
        assert test_ping.value.code == "TEST_PING"

        order_ids = sandbox.simulate_registrations(event_id, 1, seed=31)
        wait_until(lambda: len(recorder.calls) == 4)  # two webhooks match order.placed
        deliveries = recorder.calls[2:]
        assert {h["X-Eventbrite-Event"] for _, h, _ in deliveries} == {"order.placed"}
        assert all(h["User-Agent"].startswith("Eventbrite") for _, h, _ in deliveries)
        action, api_url = parse_webhook(deliveries[0][2])
        assert action == "order.placed"
        assert api_url == f"{server.url}/v3/orders/{order_ids[0]}/"
        registrations = await eb.fetch_api_url(api_url)
        assert registrations and {r.raw["order_id"] for r in registrations} == set(order_ids)
        assert all(r.platform_event_id == event_id for r in registrations)

        attendee_id = registrations[0].platform_registration_id
        sandbox.cancel_attendee(attendee_id)
        wait_until(lambda: len(recorder.calls) == 5)
        _, headers, body = recorder.calls[4]
        assert headers["X-Eventbrite-Event"] == "attendee.updated"
        (one,) = await eb.fetch_api_url(body["api_url"])
        assert one.platform_registration_id == attendee_id
        assert one.status is RegistrationStatus.CANCELLED
        assert await eb.fetch_api_url(f"{server.url}/v3/events/{event_id}/") == []

        await eb.delete_webhook(hook["id"])
        await eb.delete_webhook(hook["id"])  # already gone: still fine
        assert [w["id"] for w in await eb.list_webhooks()] == [scoped["id"]]


async def test_fetch_api_url_refuses_foreign_hosts(
    server: ServerHandle, recorder: Recorder
) -> None:
    port = server.port
    foreign = [
        f"{recorder.url}/v3/orders/4000007919/",
        f"https://127.0.0.1:{port}/v3/orders/4000007919/",  # other scheme
        f"http://localhost:{port}/v3/orders/4000007919/",  # other host name
        f"http://127.0.0.1:{port}@{recorder.url[7:]}/v3/orders/4000007919/",
        "https://www.eventbriteapi.com/v3/orders/4000007919/",
    ]
    async with adapter(server) as eb:
        for url in foreign:
            with pytest.raises(ValidationFailed) as refused:
                await eb.fetch_api_url(url)
            assert refused.value.code == "FOREIGN_HOST", url
            assert TOKEN not in str(refused.value)
    assert recorder.calls == []


# --------------------------------------------------------------------------- errors


async def test_error_mapping(server: ServerHandle) -> None:
    controls = sandbox_of(server).controls
    async with adapter(server, token="WRONGTOKEN0000000000") as stranger:
        with pytest.raises(AuthError) as denied:
            await stranger.list_webhooks()
        assert denied.value.status == 401
        assert "WRONGTOKEN0000000000" not in str(denied.value)
        assert "WRONGTOKEN0000000000" not in repr(denied.value.body)
        assert "NO_AUTH" in str(denied.value)

    async with adapter(server) as eb:
        eb.rate_limit_retries = 0  # the shared sender would otherwise wait the 429 out
        controls.apply({"rate_limit": {"limit": 1, "window_seconds": 30}})
        await eb.list_webhooks()
        with pytest.raises(RateLimited) as limited:
            await eb.list_webhooks()
        assert limited.value.retry_after is not None and 1 <= limited.value.retry_after <= 30
        assert "HIT_RATE_LIMIT" in str(limited.value)
        controls.apply({"rate_limit": None, "fail_next": {"count": 1, "status": 502}})
        with pytest.raises(ServerError) as failed:
            await eb.list_webhooks()
        assert failed.value.status == 502 and failed.value.retryable
        with pytest.raises(NotFound):
            await eb.get_registration("700000000000", "1")

    server.stop()
    async with adapter(server) as eb:
        with pytest.raises(ServerError):
            await eb.list_webhooks()


async def test_state_survives_restart(tmp_path) -> None:
    path = str(tmp_path / "eb.sqlite")
    first = serve_in_thread(create_app(path))
    event = hub_event()
    try:
        async with adapter(first) as eb:
            publication = await eb.publish_event(event, 30)
            sandbox_of(first).simulate_registrations(publication.platform_event_id, 4, seed=1)
            hook = await eb.register_webhook("http://127.0.0.1:9/hook", ["order.placed"])
    finally:
        first.stop()
        sandbox_of(first).store.close()
    second = serve_in_thread(create_app(path))
    try:
        async with adapter(second) as eb:
            found = await eb.find_existing(event)
            assert found is not None
            assert found.platform_event_id == publication.platform_event_id
            again = await eb.adopt_existing(event, found, 30)
            assert again.platform_event_id == publication.platform_event_id
            items, _, _ = await _pull_all(eb, publication.platform_event_id, None)
            assert len(items) >= 4
            assert [w["id"] for w in await eb.list_webhooks()] == [hook["id"]]
            assert (await eb.register_webhook("http://127.0.0.1:9/hook", ["order.placed"]))[
                "id"
            ] == hook["id"]
    finally:
        second.stop()
