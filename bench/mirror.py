"""Capacity mirror figure: the commit that takes the last native seat -> every platform
sandbox reporting sales closed (target p99 < 5 s).

The three emulators and the relay (``hub serve outbox``) run as separate processes. One
event is published everywhere and filled up to its last free seat. Each run frees a seat
(and waits until every platform sells again), then commits the last native seat with its
outbox rows and polls each platform's own API (not the adapters) until all three say
closed: Eventbrite's admission class hidden or sold out, Luma's ``max_capacity`` reached
by its guests, Meetup's RSVPs closed or its limit reached.

The probes (integrations.sandbox.probes) are shared with the tests and the demo.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any
from uuid import UUID

import httpx
from sqlalchemy import text
from sqlalchemy.engine import Engine

from integrations.sandbox.probes import PlatformState, platform_state

PLATFORMS = ("meetup", "eventbrite", "luma")
TARGET_P99_S = 5.0
POLL_S = 0.05


# --------------------------------------------------------------------------- seats


def take_native_seat(conn: Any, event_id: UUID, *, pool: str = "shared") -> str:
    """A confirmed native seat straight into the ledger (the seat ledger's write, without
    its Redis gate) plus the mirror's outbox rows, in the caller's transaction."""
    from hub.outbox import enqueue_capacity_mirror

    key = f"bench-{uuid.uuid4().hex}"
    conn.execute(
        text(
            "insert into app.seat_holds (event_id, hold_key, channel, pool, status) "
            "values (:e, :k, 'native', :pool, 'confirmed')"
        ),
        {"e": event_id, "k": key, "pool": pool},
    )
    enqueue_capacity_mirror(conn, event_id)
    return key


def free_native_seat(conn: Any, event_id: UUID, key: str) -> None:
    from hub.outbox import enqueue_capacity_mirror

    conn.execute(
        text(
            "update app.seat_holds set status = 'released', updated_at = now() "
            "where event_id = :e and hold_key = :k"
        ),
        {"e": event_id, "k": key},
    )
    enqueue_capacity_mirror(conn, event_id)


def platform_ids(db: Engine, event_id: UUID) -> dict[str, str]:
    with db.connect() as conn:
        rows = conn.execute(
            text(
                "select platform, platform_event_id from app.event_channels "
                "where event_id = :e and platform <> 'native' and platform_event_id is not null"
            ),
            {"e": event_id},
        ).all()
    return {r.platform: r.platform_event_id for r in rows}


def wait_for(
    probe: Callable[[], dict[str, PlatformState]],
    done: Callable[[PlatformState], bool],
    timeout: float,
) -> tuple[dict[str, float], dict[str, PlatformState]]:
    """Poll until ``done`` holds for every platform; seconds until each first did."""
    started = time.perf_counter()
    reached: dict[str, float] = {}
    states: dict[str, PlatformState] = {}
    while time.perf_counter() - started < timeout:
        states = probe()
        now = time.perf_counter() - started
        for name, state in states.items():
            if name not in reached and done(state):
                reached[name] = now
        if len(reached) == len(states):
            return reached, states
        time.sleep(POLL_S)
    raise TimeoutError(f"platforms not there after {timeout} s: {states}")


# --------------------------------------------------------------------------- bench


class _Seats:
    """Native seats through the seat ledger (``hub.capacity``: Redis gate, PostgreSQL row
    and the mirror's outbox rows in one transaction), or straight into the ledger table
    when the ledger module is not there."""

    def __init__(self, db: Engine) -> None:
        self.db = db
        try:
            from hub.capacity import SeatLedger
            from hub.settings import load_settings

            self.ledger = SeatLedger.from_settings(load_settings())
        except ImportError:
            self.ledger = None
        self.via = "hub.capacity.SeatLedger" if self.ledger else "direct seat_holds rows"

    def take(self, event_id: UUID, pool: str = "shared") -> str:
        if self.ledger is None:
            with self.db.begin() as conn:
                return take_native_seat(conn, event_id, pool=pool)
        key = f"bench-{uuid.uuid4().hex}"
        with self.ledger.begin() as tx:
            held = tx.hold(event_id, key, ttl_seconds=3600)
            assert held.status == "held", held
            confirmed = tx.confirm(event_id, key)
            assert confirmed.status == "confirmed", confirmed
        return key

    def fill(self, event_id: UUID, count: int, native_quota: int) -> None:
        for i in range(count):
            self.take(event_id, pool="quota" if i < native_quota else "shared")

    def free(self, event_id: UUID, key: str) -> None:
        if self.ledger is None:
            with self.db.begin() as conn:
                free_native_seat(conn, event_id, key)
            return
        with self.ledger.begin() as tx:
            assert tx.release(event_id, key)


def _start_relay(log_path: Path) -> subprocess.Popen:
    argv = [sys.executable, "-m", "hub_cli.main", "serve", "outbox"]
    out = open(log_path, "ab")  # noqa: SIM115 - the child owns it
    proc = subprocess.Popen(
        argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=os.environ.copy()
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if b"listening on hub_outbox" in log_path.read_bytes():
            return proc
        if proc.poll() is not None:
            raise RuntimeError(f"relay exited: {log_path.read_text()[-500:]}")
        time.sleep(0.1)
    raise RuntimeError("relay did not start listening")


def bench_sold_out_latency(runs: int = 20, *, total: int = 12, native_quota: int = 4) -> dict:
    """Latency from the commit of the last native seat to every platform sandbox closed
    (and, on the way, from a freed seat to every platform selling again): p50/p99."""
    import asyncio

    from bench.common import adapters_for, create_events, engine, event_spec, percentile
    from bench.common import sandbox_processes as procs
    from hub.settings import load_settings
    from hub.vault import Vault
    from orchestration.syndication.publisher import sync_event

    via = "-"
    closes: list[float] = []
    reopens: list[float] = []
    per_platform: dict[str, list[float]] = {p: [] for p in PLATFORMS}
    with tempfile.TemporaryDirectory(prefix="bench-mirror-") as tmp, procs(Path(tmp)) as boxes:
        db = engine()
        spec = event_spec(f"mirror-{uuid.uuid4().hex[:6]}", total_capacity=total)
        spec["channels"] = {
            "native": native_quota,
            "meetup": None,
            "eventbrite": None,
            "luma": None,
        }
        (event,) = create_events(db, [spec])

        async def publish() -> None:
            async with httpx.AsyncClient(timeout=30) as client:
                await sync_event(db, event.id, adapters_for(PLATFORMS, client), actor="bench")

        asyncio.run(publish())
        ids = platform_ids(db, event.id)
        vault = Vault(settings=load_settings())
        relay = _start_relay(Path(tmp) / "relay.log")
        client = httpx.Client(timeout=10)
        try:

            def probe() -> dict[str, PlatformState]:
                return platform_state(boxes.urls, vault, ids, Path(tmp), client)

            seats = _Seats(db)
            seats.fill(event.id, total - 1, native_quota)  # every seat but the last
            last_key = None
            for run in range(runs + 1):
                if last_key is not None:  # free the last seat: every platform sells again
                    seats.free(event.id, last_key)
                    started = time.perf_counter()
                    wait_for(probe, lambda s: not s.closed, 30)
                    if run > 1:
                        reopens.append(time.perf_counter() - started)
                else:
                    wait_for(probe, lambda s: not s.closed, 30)
                last_key = seats.take(event.id)
                started = time.perf_counter()  # just after the commit returned
                reached, _ = wait_for(probe, lambda s: s.closed, 30)
                if run == 0:
                    continue  # warm-up (first connections, first OAuth refresh)
                closes.append(max(reached.values()))
                via = seats.via
                for name, seconds in reached.items():
                    per_platform[name].append(seconds)
        finally:
            client.close()
            relay.terminate()
            try:
                relay.wait(15)
            except subprocess.TimeoutExpired:
                relay.kill()

    def stats(values: list[float]) -> dict[str, float]:
        return {
            "p50_s": round(percentile(values, 50), 3),
            "p99_s": round(percentile(values, 99), 3),
            "max_s": round(max(values), 3) if values else float("nan"),
        }

    return {
        "runs": len(closes),
        "sold_out": stats(closes),
        "reopen": stats(reopens),
        "per_platform_p99_s": {p: round(percentile(v, 99), 3) for p, v in per_platform.items()},
        "target_p99_s": TARGET_P99_S,
        "seats_via": via,
        "passed": bool(closes) and percentile(closes, 99) < TARGET_P99_S,
    }


def run() -> list[Any]:
    """bench.run's entry: one Figure."""
    from bench.common import Figure, log

    result = bench_sold_out_latency()
    log(f"mirror: {json.dumps(result)}")
    sold, reopen = result["sold_out"], result["reopen"]
    return [
        Figure(
            "mirror-sold-out",
            "Last native seat -> every platform sandbox closed",
            f"p99 < {TARGET_P99_S:.0f} s",
            result["passed"],
            f"p50 {sold['p50_s']:.2f} s, p99 {sold['p99_s']:.2f} s over {result['runs']} runs",
            [
                "One event (12 seats, 4 native quota) published to the three emulators, filled "
                "to its last seat; each run frees a seat, waits until every platform sells "
                "again, commits the last native seat (hold + confirm: seat row and outbox rows "
                f"in one transaction, via {result['seats_via']}) and polls each platform's own "
                "API until all three say closed. "
                "Relay: `hub serve outbox` as its own process, woken by LISTEN/NOTIFY.",
                "",
                "| | p50 | p99 | max |",
                "|---|---|---|---|",
                f"| sold out everywhere | {sold['p50_s']:.3f} s | {sold['p99_s']:.3f} s | "
                f"{sold['max_s']:.3f} s |",
                f"| selling again after a freed seat | {reopen['p50_s']:.3f} s | "
                f"{reopen['p99_s']:.3f} s | {reopen['max_s']:.3f} s |",
                "",
                "p99 per platform (s): "
                + ", ".join(f"{p} {v:.3f}" for p, v in result["per_platform_p99_s"].items()),
            ],
            data=result,
        )
    ]
