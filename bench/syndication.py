"""Syndication figures.

1. One event to three platforms with 300 ms injected latency each: the concurrent wall
   time as a ratio to the slowest platform alone (target <= 1.3).
2. 50 events under Eventbrite's rate limit (scaled down): all published, none lost or
   doubled, total time.
"""

from __future__ import annotations

import asyncio
import collections
import tempfile
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy.engine import Engine

from bench.common import (
    PLATFORMS,
    Figure,
    SandboxProcs,
    adapters_for,
    create_events,
    engine,
    event_spec,
    log,
    median,
    sandbox_processes,
)
from orchestration.syndication.publisher import ChannelOutcome, sync_event

LATENCY_MS = 300
LATENCY_ROUNDS = 5  # measured rounds, after one warm-up round
LATENCY_TARGET = 1.3

RL_EVENTS = 50
RL_LIMIT = 80
RL_WINDOW_S = 10.0
RL_CONCURRENCY = 8
RL_ATTEMPTS = 12
RL_TIMEOUT_S = 240.0
REAL_LIMIT_PER_HOUR = 2000


# --------------------------------------------------------------------------- helpers


async def _timed_sync(
    db: Engine, event_id: Any, platforms: Sequence[str], attempts: int = 3
) -> tuple[float, list[ChannelOutcome]]:
    """sync_event over fresh adapters; returns (wall seconds, outcomes)."""
    async with httpx.AsyncClient(timeout=30) as client:
        adapters = adapters_for(platforms, client)
        started = time.perf_counter()
        outcomes = await sync_event(db, event_id, adapters, actor="bench", attempts=attempts)
        return time.perf_counter() - started, outcomes


def _failures(outcomes: Sequence[ChannelOutcome]) -> list[str]:
    return [f"{o.platform}: {o.action} {o.error or ''}".strip() for o in outcomes if not o.ok]


@dataclass
class LatencyRound:
    singles: dict[str, float]
    concurrent: float
    failures: list[str]

    @property
    def slowest_single(self) -> float:
        return max(self.singles.values())

    @property
    def ratio(self) -> float:
        return self.concurrent / self.slowest_single


def _latency_round(db: Engine, tag: str) -> LatencyRound:
    slugs = [f"lat-{tag}-{p}" for p in PLATFORMS] + [f"lat-{tag}-all"]
    events = create_events(db, [event_spec(s) for s in slugs])
    singles: dict[str, float] = {}
    failures: list[str] = []
    for platform, event in zip(PLATFORMS, events, strict=False):
        seconds, outcomes = asyncio.run(_timed_sync(db, event.id, [platform]))
        singles[platform] = seconds
        failures += _failures(outcomes)
    concurrent, outcomes = asyncio.run(_timed_sync(db, events[-1].id, PLATFORMS))
    failures += _failures(outcomes)
    return LatencyRound(singles, concurrent, failures)


# --------------------------------------------------------------------------- figure 1


def bench_latency(db: Engine, boxes: SandboxProcs, run_id: str) -> Figure:
    for platform in PLATFORMS:
        boxes.config(platform, {"latency_ms": LATENCY_MS})
    try:
        log("syndication latency: warm-up round")
        _latency_round(db, f"{run_id}-w")
        rounds = []
        for index in range(LATENCY_ROUNDS):
            rounds.append(_latency_round(db, f"{run_id}-{index}"))
            last = rounds[-1]
            log(f"  round {index + 1}: concurrent {last.concurrent:.3f} s, ratio {last.ratio:.2f}")
    finally:
        for platform in PLATFORMS:
            boxes.reset(platform)
    return _latency_figure(rounds)


def _latency_figure(rounds: list[LatencyRound]) -> Figure:
    singles = {p: median([r.singles[p] for r in rounds]) for p in PLATFORMS}
    concurrent = median([r.concurrent for r in rounds])
    ratio = median([r.ratio for r in rounds])
    slowest = max(singles, key=singles.__getitem__)
    failures = [f for r in rounds for f in r.failures]
    passed = ratio <= LATENCY_TARGET and not failures
    lines = [
        f"Injected latency: {LATENCY_MS} ms on every request to each sandbox "
        "(`/_sandbox/config` latency_ms). Each round publishes fresh events: one per "
        "platform alone (`sync_event` with one adapter), then one to all three at once.",
        f"Rounds: {len(rounds)} measured after 1 warm-up; medians shown.",
        "",
        "| measure | median (s) | per round (s) |",
        "|---|---|---|",
    ]
    for platform in PLATFORMS:
        per = ", ".join(f"{r.singles[platform]:.3f}" for r in rounds)
        lines.append(f"| {platform} alone | {singles[platform]:.3f} | {per} |")
    per = ", ".join(f"{r.concurrent:.3f}" for r in rounds)
    lines.append(f"| **all three concurrently** | **{concurrent:.3f}** | {per} |")
    per = ", ".join(f"{sum(r.singles.values()):.3f}" for r in rounds)
    lines.append(f"| sum of singles (sequential, context) | {sum(singles.values()):.3f} | {per} |")
    per = ", ".join(f"{r.ratio:.2f}" for r in rounds)
    lines.append(f"| **ratio concurrent / slowest single** | **{ratio:.2f}** | {per} |")
    lines += [
        "",
        f"The slowest platform alone is {slowest} (its publish makes several sequential "
        f"calls, each paying {LATENCY_MS} ms). Ratio per round = that round's concurrent "
        "time / that round's slowest single; the median of the per-round ratios is reported.",
    ]
    if failures:
        lines.append(f"Failures: {'; '.join(failures[:5])}")
    return Figure(
        key="syndication-latency",
        title="Syndication latency: one event to three platforms, 300 ms injected latency",
        target=f"concurrent / slowest single <= {LATENCY_TARGET}",
        passed=passed,
        summary=f"ratio {ratio:.2f} (concurrent {concurrent:.3f} s, slowest single "
        f"{singles[slowest]:.3f} s, sum of singles {sum(singles.values()):.3f} s)",
        lines=lines,
        data={"singles_s": singles, "concurrent_s": concurrent, "ratio": ratio},
    )


# --------------------------------------------------------------------------- figure 2


@dataclass
class RateLimitRun:
    outcomes: list[ChannelOutcome]
    seconds: float
    statuses: collections.Counter
    timed_out: bool


async def _publish_many(db: Engine, events: Sequence[Any]) -> RateLimitRun:
    statuses: collections.Counter = collections.Counter()

    async def count(response: httpx.Response) -> None:
        statuses[response.status_code] += 1

    hooks = {"response": [count]}
    async with httpx.AsyncClient(timeout=30, event_hooks=hooks) as client:
        adapter = adapters_for(["eventbrite"], client)["eventbrite"]
        gate = asyncio.Semaphore(RL_CONCURRENCY)

        async def one(event_id: Any) -> ChannelOutcome:
            async with gate:
                outcomes = await sync_event(
                    db, event_id, {"eventbrite": adapter}, actor="bench", attempts=RL_ATTEMPTS
                )
                return outcomes[0]

        started = time.perf_counter()
        tasks = [asyncio.ensure_future(one(e.id)) for e in events]
        done, pending = await asyncio.wait(tasks, timeout=RL_TIMEOUT_S)
        for task in pending:
            task.cancel()
        seconds = time.perf_counter() - started
    outcomes = [t.result() for t in done if not t.cancelled() and t.exception() is None]
    return RateLimitRun(outcomes, seconds, statuses, timed_out=bool(pending))


def _sandbox_events(boxes: SandboxProcs, name_filter: str) -> list[str]:
    """Ids of the events on the Eventbrite sandbox whose name contains ``name_filter``."""
    from integrations.sandbox import credentials as sc

    url = f"{boxes.urls['eventbrite']}/v3/organizations/{sc.EVENTBRITE_ORGANIZATION_ID}/events/"
    headers = {"Authorization": f"Bearer {sc.EVENTBRITE_TOKEN}"}
    params: dict[str, str] = {"status": "all", "name_filter": name_filter}
    ids: list[str] = []
    for _ in range(100):  # bounded: 100 pages
        body = httpx.get(url, params=params, headers=headers, timeout=30).raise_for_status().json()
        ids += [e["id"] for e in body.get("events", [])]
        pagination = body.get("pagination") or {}
        if not pagination.get("has_more_items"):
            break
        params["continuation"] = pagination["continuation"]
    return ids


def bench_rate_limit(db: Engine, boxes: SandboxProcs, run_id: str) -> Figure:
    prefix = f"rl-{run_id}"
    events = create_events(db, [event_spec(f"{prefix}-{i:02d}") for i in range(RL_EVENTS)])
    limit = {"limit": RL_LIMIT, "window_seconds": RL_WINDOW_S}
    boxes.config("eventbrite", {"rate_limit": limit})
    log(f"rate limit: publishing {RL_EVENTS} events, {RL_LIMIT} calls / {RL_WINDOW_S:.0f} s")
    try:
        run = asyncio.run(_publish_many(db, events))
    finally:
        boxes.reset("eventbrite")
    on_sandbox = _sandbox_events(boxes, f"Bench {prefix}")
    return _rate_limit_figure(run, on_sandbox)


def _rate_limit_figure(run: RateLimitRun, on_sandbox: list[str]) -> Figure:
    published = [o for o in run.outcomes if o.ok and o.platform_event_id]
    ids = {o.platform_event_id for o in published}
    actions = collections.Counter(o.action for o in run.outcomes)
    failed = [o for o in run.outcomes if not o.ok]
    throttled = run.statuses.get(429, 0)
    calls = sum(run.statuses.values())
    admitted = calls - throttled
    rate = admitted / run.seconds if run.seconds else 0.0
    limit_rate = RL_LIMIT / RL_WINDOW_S
    floor_s = max(admitted - RL_LIMIT, 0) / limit_rate
    exact = len(on_sandbox) == RL_EVENTS and len(set(on_sandbox)) == RL_EVENTS
    passed = len(published) == RL_EVENTS and len(ids) == RL_EVENTS and exact and not run.timed_out
    lines = [
        f"Scaling: Eventbrite allows {REAL_LIMIT_PER_HOUR} calls/hour per token "
        f"({REAL_LIMIT_PER_HOUR / 3600:.3f}/s). The sandbox was set to {RL_LIMIT} calls per "
        f"{RL_WINDOW_S:.0f} s window ({limit_rate:.1f}/s, "
        f"{limit_rate / (REAL_LIMIT_PER_HOUR / 3600):.1f}x the real rate) so the run takes "
        "about a minute; at the real limit the same call count would take "
        f"{admitted / (REAL_LIMIT_PER_HOUR / 3600) / 60:.0f} min.",
        f"Publisher: `sync_event` per event, {RL_CONCURRENCY} at a time (asyncio semaphore), "
        f"attempts={RL_ATTEMPTS}. The adapter re-sends a 429'd request after its "
        "Retry-After (`ChannelAdapter._send`); should it give up, the publisher's "
        "`with_retries` re-runs the whole create, find_existing first, so a half-done "
        "create is adopted, not doubled. 429s are counted on the HTTP client (event hook).",
        "",
        "| measure | value |",
        "|---|---|",
        f"| events published (ok, with a platform id) | **{len(published)}** / {RL_EVENTS} |",
        f"| distinct platform ids | {len(ids)} |",
        f"| events on the sandbox (org events list) | **{len(on_sandbox)}** "
        f"({len(set(on_sandbox))} distinct) |",
        f"| outcomes | {dict(actions)} |",
        f"| failed / timed out | {len(failed)} / {'yes' if run.timed_out else 'no'} |",
        f"| HTTP calls made / 429 answers | {calls} / {throttled} |",
        f"| calls per event (admitted) | {admitted / max(len(published), 1):.1f} |",
        f"| total time | **{run.seconds:.1f} s** |",
        f"| effective admitted calls/s vs limit | {rate:.2f} / {limit_rate:.2f} "
        f"({rate / limit_rate:.0%}) |",
        f"| lower bound for {admitted} calls at this limit (first window's {RL_LIMIT} at once, "
        f"so the average may exceed the rate) | {floor_s:.1f} s |",
        f"| sync attempts per event (max / mean) | "
        f"{max((o.attempts for o in run.outcomes), default=0)} / "
        f"{sum(o.attempts for o in run.outcomes) / max(len(run.outcomes), 1):.2f} |",
    ]
    if failed:
        lines.append(f"\nFailures: {'; '.join(str(o.error) for o in failed[:5])}")
    return Figure(
        key="syndication-rate-limit",
        title="50 events under Eventbrite's rate limit",
        target=f"all {RL_EVENTS} published, exactly {RL_EVENTS} on the platform, none lost",
        passed=passed,
        summary=f"{len(published)}/{RL_EVENTS} published, {len(on_sandbox)} on the sandbox, "
        f"{throttled} x 429, {run.seconds:.1f} s ({rate:.2f} calls/s vs {limit_rate:.1f}/s)",
        lines=lines,
        data={"published": len(published), "on_sandbox": len(on_sandbox),
              "http_429": throttled, "seconds": run.seconds},
    )  # fmt: skip


# --------------------------------------------------------------------------- entry


def run() -> list[Figure]:
    run_id = uuid.uuid4().hex[:6]
    db = engine()
    with (
        tempfile.TemporaryDirectory(prefix="hub-bench-syn-") as tmp,
        sandbox_processes(Path(tmp)) as boxes,
    ):
        figures = [bench_latency(db, boxes, run_id)]
        figures.append(bench_rate_limit(db, boxes, run_id))
    return figures
