"""The publish lease and the one retry layer, against PostgreSQL and the emulators.

A live lease cannot be taken by a second runner; an expired one can (its runner died);
two publishes at once create one platform event; a failure records when to try again;
a platform call spends one budget, honouring Retry-After, with no second layer of 429
waits under it.
"""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest
from sqlalchemy import func, select, update

from hub.db import event_channels, get_engine, transaction
from hub.errors import RateLimited
from hub.events import create_event, parse_spec
from hub.vault import Vault
from integrations.base import RetryBudget, with_retries
from integrations.factory import build_adapter
from orchestration.syndication import leases
from orchestration.syndication.policy import PublishPolicy
from orchestration.syndication.publisher import sync_event
from tests.sandboxes import running_sandboxes

EVENT = {
    "title": "Kilit Günü",
    "starts_at": "2027-04-08T19:00:00",
    "ends_at": "2027-04-08T21:00:00",
    "total_capacity": 25,
    "currency": "TRY",
    "channels": {"eventbrite": None},
}
FAST = PublishPolicy(
    lease_seconds=5,
    call_attempts=3,
    call_budget_seconds=5,
    call_base_delay=0.05,
    backoff_base_seconds=30,
    backoff_max_seconds=600,
)


@pytest.fixture()
def boxes(clean_db, tmp_path):
    with running_sandboxes(tmp_path) as sandboxes:
        yield sandboxes


def _event():
    with transaction() as conn:
        return create_event(conn, parse_spec(EVENT), actor="test")


def _channel(engine, event_id, platform="eventbrite"):
    with engine.connect() as conn:
        return conn.execute(
            select(event_channels).where(
                event_channels.c.event_id == event_id, event_channels.c.platform == platform
            )
        ).one()


def _fault(boxes, **config):
    httpx.post(f"{boxes.url('eventbrite')}/_sandbox/config", json=config).raise_for_status()


async def _publish(boxes, event_id, owner, policy=FAST):
    async with httpx.AsyncClient(timeout=10) as client:
        adapter = build_adapter(
            "eventbrite", boxes.settings, Vault(settings=boxes.settings), client
        )
        return (
            await sync_event(
                get_engine(),
                event_id,
                {"eventbrite": adapter},
                actor="test",
                lease_owner=owner,
                policy=policy,
            )
        )[0]


def test_a_live_lease_is_not_taken_and_an_expired_one_is(clean_db):
    event = _event()
    channel_id = _channel(clean_db, event.id).id
    first = leases.claim(clean_db, channel_id, "runner-a", 30)
    assert first is not None and first["status"] == "publishing" and first["attempts"] == 1
    assert leases.claim(clean_db, channel_id, "runner-b", 30) is None
    assert leases.renew(clean_db, channel_id, "runner-a", 30)

    # runner-a dies: nothing renews; compressed clock, the lease ends now
    with transaction() as conn:
        conn.execute(
            update(event_channels)
            .where(event_channels.c.id == channel_id)
            .values(lease_expires_at=func.now() - func.make_interval(0, 0, 0, 0, 0, 0, 1))
        )
    second = leases.claim(clean_db, channel_id, "runner-b", 30)
    assert second is not None and second["lease_owner"] == "runner-b"
    assert second["attempts"] == 2  # a new attempt: the sensor's run key changes with it
    assert not leases.renew(clean_db, channel_id, "runner-a", 30)  # a-s result is not stored


def test_two_publishes_at_once_on_a_slow_platform_create_one_event(boxes, clean_db):
    _fault(boxes, latency_ms=400)
    event = _event()

    async def both():
        return await asyncio.gather(
            _publish(boxes, event.id, "runner-a"), _publish(boxes, event.id, "runner-b")
        )

    outcomes = sorted(asyncio.run(both()), key=lambda o: o.action)
    assert [o.action for o in outcomes] == ["busy", "created"]
    assert "another runner holds the publish lease" in outcomes[0].error
    assert boxes.sandbox("eventbrite").store.count("event") == 1
    channel = _channel(clean_db, event.id)
    assert channel.status == "published" and channel.lease_owner is None
    assert channel.platform_event_id == outcomes[1].platform_event_id


def test_a_failure_spends_one_budget_and_records_when_to_try_again(boxes, clean_db):
    _fault(boxes, fail_next={"count": 1000, "status": 500})
    event = _event()
    started = time.monotonic()
    outcome = asyncio.run(_publish(boxes, event.id, "runner-a"))
    assert outcome.action == "failed" and "500" in outcome.error
    assert outcome.attempts == FAST.call_attempts  # one layer: no retries on top
    assert time.monotonic() - started < FAST.call_budget_seconds
    channel = _channel(clean_db, event.id)
    assert channel.status == "failed" and channel.lease_owner is None
    with clean_db.connect() as conn:
        wait = conn.scalar(
            select(func.extract("epoch", event_channels.c.next_attempt_at - func.now())).where(
                event_channels.c.id == channel.id
            )
        )
    assert 25 < float(wait) <= 30  # backoff_base_seconds after the first failed attempt


def test_a_retry_after_longer_than_the_budget_ends_the_call_and_sets_the_back_off(boxes, clean_db):
    _fault(boxes, rate_limit={"limit": 1, "window_seconds": 40})
    event = _event()
    started = time.monotonic()
    outcome = asyncio.run(_publish(boxes, event.id, "runner-a"))
    assert outcome.action == "failed" and isinstance(outcome.retry_after, float)
    assert outcome.retry_after > FAST.call_budget_seconds
    assert time.monotonic() - started < 3  # neither the sender nor the layer sat out 40 s
    with clean_db.connect() as conn:
        wait = conn.scalar(
            select(func.extract("epoch", event_channels.c.next_attempt_at - func.now())).where(
                event_channels.c.platform == "eventbrite"
            )
        )
    assert float(wait) >= outcome.retry_after - 1  # the back-off honours Retry-After


async def _list_webhooks(boxes, budget: RetryBudget, retries: list, warm_up: bool = False):
    async with httpx.AsyncClient(timeout=10) as client:
        adapter = build_adapter(
            "eventbrite", boxes.settings, Vault(settings=boxes.settings), client
        )
        if warm_up:
            await adapter.list_webhooks()  # spends the window's one request
        return await with_retries(
            adapter.list_webhooks,
            budget=budget,
            on_retry=lambda n, exc, delay: retries.append((n, type(exc).__name__, delay)),
        )


def test_a_429_is_waited_from_the_one_budget(boxes):
    """The sender replays a 429'd request after its Retry-After, paying from the call's
    budget (no attempt of the call spent); a wait that does not fit ends the call."""
    _fault(boxes, rate_limit={"limit": 1, "window_seconds": 1})
    retries: list = []
    started = time.monotonic()
    asyncio.run(_list_webhooks(boxes, RetryBudget(attempts=3, seconds=10), retries, True))
    assert time.monotonic() - started >= 0.9 and retries == []  # waited once, in the sender

    time.sleep(1.1)
    started = time.monotonic()
    with pytest.raises(RateLimited):
        asyncio.run(_list_webhooks(boxes, RetryBudget(attempts=3, seconds=0.5), retries, True))
    assert time.monotonic() - started < 0.9  # the 1 s wait did not fit: no sleeping


def test_retries_do_not_multiply_a_platform_that_always_answers_429(boxes):
    """Was 4 attempts x RetryPolicy(3) x up to 6 rate-limit waits; now the call's budget
    (here 3 s) bounds every wait, whichever layer would have waited."""
    _fault(boxes, fail_next={"count": 1000, "status": 429})
    started = time.monotonic()
    with pytest.raises(RateLimited):
        asyncio.run(_list_webhooks(boxes, RetryBudget(attempts=4, seconds=3), []))
    elapsed = time.monotonic() - started
    left = httpx.get(f"{boxes.url('eventbrite')}/_sandbox/config").json()["fail_next"]["count"]
    assert elapsed < 3.5
    assert 1000 - left <= 4  # requests sent: one, then one per second of budget


def test_duplicates_left_by_earlier_overlaps_are_adopted_and_taken_off_sale(boxes, clean_db):
    """Two Eventbrite events made for one hub event (overlapping runs before leases, the
    hub stored neither): the next publish adopts one and closes sales on the other."""
    event = _event()

    async def duplicates() -> list[str]:
        async with httpx.AsyncClient(timeout=10) as client:
            adapter = build_adapter(
                "eventbrite", boxes.settings, Vault(settings=boxes.settings), client
            )
            made = [await adapter.publish_event(event, 25) for _ in range(2)]
            return [p.platform_event_id for p in made]

    made = asyncio.run(duplicates())
    outcome = asyncio.run(_publish(boxes, event.id, "runner-a"))
    assert outcome.action == "adopted" and outcome.platform_event_id in made
    orphans = [i for i in made if i != outcome.platform_event_id]
    assert outcome.orphans_closed == orphans

    async def on_sale(platform_event_id: str) -> bool:
        async with httpx.AsyncClient(timeout=10) as client:
            adapter = build_adapter(
                "eventbrite", boxes.settings, Vault(settings=boxes.settings), client
            )
            classes = await adapter.ticket_classes(platform_event_id)
        return any(
            not tc.get("hidden")
            and int(tc.get("quantity_total") or 0) > int(tc.get("quantity_sold") or 0)
            for tc in classes
        )

    assert asyncio.run(on_sale(outcome.platform_event_id))
    assert not asyncio.run(on_sale(orphans[0]))
    assert _channel(clean_db, event.id).platform_event_id == outcome.platform_event_id
