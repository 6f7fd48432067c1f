"""Pull figure: 30,000 registrations (10,000 per platform) pulled into app.registrations;
rows per second and the pulling process's memory (target: flat, under 300 MB).

The pull runs in a child process (bench.pull_child) so its RSS is its own; this process
samples the child's VmRSS and the row count every 0.2 s.
"""

from __future__ import annotations

import asyncio
import json
import random
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import text
from sqlalchemy.engine import Engine

from bench.common import (
    PLATFORMS,
    PROJECT_ROOT,
    Figure,
    SandboxProcs,
    adapters_for,
    create_events,
    engine,
    event_spec,
    log,
    rss_mb,
    sandbox_processes,
)
from orchestration.syndication.publisher import sync_event

PER_PLATFORM = 10_000
TOTAL_CAPACITY = 40_000
SIM_CHUNK = 2_500
PAGE_SIZE = 100
SAMPLE_EVERY_S = 0.2
CHILD_TIMEOUT_S = 300.0
PEAK_TARGET_MB = 300.0
FLAT_TOLERANCE_MB = 30.0  # RSS at 100% of rows may exceed RSS at 10% by at most this


# --------------------------------------------------------------------------- setup


def _publish(db: Engine, event_id: Any) -> dict[str, str]:
    async def go() -> dict[str, str]:
        async with httpx.AsyncClient(timeout=30) as client:
            outcomes = await sync_event(
                db, event_id, adapters_for(PLATFORMS, client), actor="bench"
            )
        failed = [f"{o.platform}: {o.error}" for o in outcomes if not o.ok]
        if failed:
            raise RuntimeError(f"publish failed: {'; '.join(failed)}")
        return {o.platform: str(o.platform_event_id) for o in outcomes}

    return asyncio.run(go())


def _simulate(boxes: SandboxProcs, platform: str, event_id: str, count: int, seed: int) -> int:
    body = {"event_id": event_id, "count": count, "seed": seed}
    url = f"{boxes.urls[platform]}/_sandbox/simulate/registrations"
    response = httpx.post(url, json=body, timeout=300)
    if response.status_code >= 400:
        raise RuntimeError(f"{platform} simulate: {response.status_code} {response.text[:200]}")
    return len(response.json()["ids"])


def _eventbrite_attendees(boxes: SandboxProcs, event_id: str) -> int:
    from integrations.sandbox import credentials as sc

    url = f"{boxes.urls['eventbrite']}/v3/events/{event_id}/attendees/"
    headers = {"Authorization": f"Bearer {sc.EVENTBRITE_TOKEN}"}
    body = httpx.get(url, headers=headers, timeout=60).raise_for_status().json()
    return int(body["pagination"]["object_count"])


def _single_attendee_seed(start: int) -> int:
    """A seed whose first simulated Eventbrite order has one attendee, not two (the
    emulator draws ``random.Random(seed).random() < 0.15`` for a second one)."""
    seed = start
    while random.Random(seed).random() < 0.15:
        seed += 1
    return seed


def _fill_eventbrite(boxes: SandboxProcs, event_id: str, target: int, seed: int) -> int:
    """Eventbrite orders carry 1 or 2 attendees: place orders until exactly ``target``
    attendees (never more than the remaining seats' worth per request)."""
    have = 0
    for step in range(200):  # bounded; halving the remainder needs ~20 requests
        have = _eventbrite_attendees(boxes, event_id)
        remaining = target - have
        if remaining <= 0:
            break
        if remaining == 1:
            _simulate(boxes, "eventbrite", event_id, 1, _single_attendee_seed(seed + step))
        else:
            _simulate(boxes, "eventbrite", event_id, min(SIM_CHUNK, remaining // 2), seed + step)
    return have


def _fill(boxes: SandboxProcs, platform: str, event_id: str, target: int, seed: int) -> int:
    if platform == "eventbrite":
        return _fill_eventbrite(boxes, event_id, target, seed * 1000)
    placed = 0
    for step in range(0, target, SIM_CHUNK):
        placed += _simulate(boxes, platform, event_id, min(SIM_CHUNK, target - step), seed + step)
    return placed


# --------------------------------------------------------------------------- the pull


@dataclass
class Sample:
    seconds: float
    rows: int
    rss_mb: float


def _count_rows(db: Engine, event_id: Any) -> int:
    with db.connect() as conn:
        sql = text("select count(*) from app.registrations where event_id = :e")
        return int(conn.scalar(sql, {"e": event_id}) or 0)


def _run_child(db: Engine, event_id: Any, log_path: Path) -> tuple[dict[str, Any], list[Sample]]:
    argv = [sys.executable, "-m", "bench.pull_child", str(event_id), "--page-size", str(PAGE_SIZE)]
    samples: list[Sample] = []
    with open(log_path, "wb") as errors:
        proc = subprocess.Popen(argv, cwd=PROJECT_ROOT, stdout=subprocess.PIPE, stderr=errors)
        started = time.perf_counter()
        try:
            while proc.poll() is None and time.perf_counter() - started < CHILD_TIMEOUT_S:
                rss = rss_mb(proc.pid)
                if rss is not None:
                    samples.append(Sample(time.perf_counter() - started, 0, rss))
                    samples[-1].rows = _count_rows(db, event_id)
                time.sleep(SAMPLE_EVERY_S)
        finally:
            if proc.poll() is None:
                proc.kill()
            output = proc.communicate(timeout=30)[0].decode()
    if proc.returncode != 0:
        tail = log_path.read_text(errors="replace")[-600:]
        raise RuntimeError(f"pull child exited {proc.returncode}: {tail}")
    return json.loads(output.strip().splitlines()[-1]), samples


def _rss_at(samples: list[Sample], fraction: float, total: int) -> Sample | None:
    return next((s for s in samples if s.rows >= fraction * total), None)


def _rows_by_platform(db: Engine, event_id: Any) -> dict[str, int]:
    with db.connect() as conn:
        rows = conn.execute(
            text(
                "select platform, count(*), count(distinct platform_registration_id) "
                "from app.registrations where event_id = :e group by platform"
            ),
            {"e": event_id},
        ).all()
    return {r[0]: int(r[1]) for r in rows if r[1] == r[2]} | {
        f"{r[0]} (DUPLICATE ids)": int(r[1]) for r in rows if r[1] != r[2]
    }


# --------------------------------------------------------------------------- figure


def _figure(
    child: dict[str, Any],
    samples: list[Sample],
    on_sandboxes: dict[str, int],
    stored: dict[str, int],
    sim_seconds: float,
) -> Figure:
    expected = PER_PLATFORM * len(PLATFORMS)
    items = sum(p["items"] for p in child["platforms"].values())
    total_rows = sum(stored.values())
    rate = items / child["seconds"] if child["seconds"] else 0.0
    peak = float(child["peak_rss_mb"])
    marks = {f: _rss_at(samples, f, expected) for f in (0.1, 0.5, 1.0)}
    at10, at100 = marks[0.1], marks[1.0]
    end_rss = at100.rss_mb if at100 else float(child["rss_end_mb"])
    flat = at10 is not None and end_rss - at10.rss_mb <= FLAT_TOLERANCE_MB
    pulling = [s.rss_mb for s in samples if s.rows > 0]
    peak_note = (
        "The process's peak was reached at start-up (imports), before the first page."
        if float(child["peak_before_mb"]) >= peak - 1
        else "The process's peak was reached while pulling."
    )
    exact = total_rows == expected and all(n == PER_PLATFORM for n in on_sandboxes.values())
    passed = peak < PEAK_TARGET_MB and flat and exact
    lines = [
        f"Setup: one event (total_capacity {TOTAL_CAPACITY}, every channel on the shared "
        f"pool) published to the three sandboxes, then {PER_PLATFORM:,} registrations "
        f"simulated on each (`/_sandbox/simulate/registrations`, chunks of {SIM_CHUNK}; "
        f"Eventbrite orders of 1-2 attendees filled to exactly {PER_PLATFORM:,}), "
        f"{sim_seconds:.0f} s. A child process (`bench.pull_child`) then runs "
        "`pull_registrations(full=True)` for meetup, eventbrite and luma one after another "
        f"(page_size {PAGE_SIZE}; Eventbrite's pages are fixed at 50). Every page is stored "
        "raw in raw.platform_pulls and upserted into app.registrations in one transaction.",
        "",
        "| platform | on sandbox | pulled items | pages | rows stored | seconds | rows/s |",
        "|---|---|---|---|---|---|---|",
    ]
    for platform in PLATFORMS:
        p = child["platforms"][platform]
        per = p["items"] / p["seconds"] if p["seconds"] else 0.0
        lines.append(
            f"| {platform} | {on_sandboxes.get(platform, 0):,} | {p['items']:,} | {p['pages']} "
            f"| {stored.get(platform, 0):,} | {p['seconds']:.1f} | {per:,.0f} |"
        )
    lines.append(
        f"| **all** | {sum(on_sandboxes.values()):,} | {items:,} | "
        f"{sum(p['pages'] for p in child['platforms'].values())} | **{total_rows:,}** | "
        f"{child['seconds']:.1f} | **{rate:,.0f}** |"
    )
    lines += [
        "",
        f"Memory of the pulling process (target: flat, peak < {PEAK_TARGET_MB:.0f} MB; flat = "
        f"RSS at 100% of rows within {FLAT_TOLERANCE_MB:.0f} MB of RSS at 10%):",
        "",
        "| point | rows in app.registrations | RSS (MB) |",
        "|---|---|---|",
        f"| after imports, adapters built | 0 | {child['rss_before_mb']:.0f} |",
    ]
    for fraction, sample in marks.items():
        if sample is not None:
            lines.append(f"| {fraction:.0%} of rows ({sample.seconds:.1f} s, sampled) | "
                         f"{sample.rows:,} | {sample.rss_mb:.0f} |")  # fmt: skip
    done = 0
    for platform in PLATFORMS:
        done += child["platforms"][platform]["items"]
        lines.append(f"| after {platform} (child's own reading) | {done:,} "
                     f"| {child['platforms'][platform]['rss_after_mb']:.0f} |")  # fmt: skip
    lines += [
        f"| 100% of rows, end of pull (child's own reading) | {total_rows:,} "
        f"| {child['rss_end_mb']:.0f} |",
        f"| peak before the first page (ru_maxrss: imports, start-up) | 0 "
        f"| {child['peak_before_mb']:.0f} |",
        f"| **peak over the whole process (ru_maxrss)** | | **{peak:.0f}** |",
        "",
        f"{len(samples)} samples of /proc/<pid>/status VmRSS every {SAMPLE_EVERY_S} s; while "
        f"rows were arriving (first to last page): min {min(pulling, default=0):.0f} MB, "
        f"max {max(pulling, default=0):.0f} MB. {peak_note}",
        f"app.registrations for the event: {total_rows:,} rows (expected {expected:,}); "
        f"per platform {stored}.",
    ]
    return Figure(
        key="pull-registrations",
        title="Pull 30,000 registrations (10,000 per platform)",
        target=f"exactly {expected:,} rows; flat memory, peak < {PEAK_TARGET_MB:.0f} MB",
        passed=passed,
        summary=f"{total_rows:,} rows in {child['seconds']:.1f} s = {rate:,.0f} rows/s; "
        f"peak RSS {peak:.0f} MB ({'flat' if flat else 'NOT flat'}: "
        f"{at10.rss_mb if at10 else float('nan'):.0f} MB at 10%, {end_rss:.0f} MB at 100%)",
        lines=lines,
        data={"rows": total_rows, "rows_per_s": rate, "peak_rss_mb": peak},
    )


def run() -> list[Figure]:
    db = engine()
    run_id = uuid.uuid4().hex[:6]
    with (
        tempfile.TemporaryDirectory(prefix="hub-bench-pull-") as tmp,
        sandbox_processes(Path(tmp)) as boxes,
    ):
        spec = event_spec(f"pull-{run_id}", total_capacity=TOTAL_CAPACITY)
        event = create_events(db, [spec])[0]
        ids = _publish(db, event.id)
        log(f"pull: simulating {PER_PLATFORM} registrations on each platform")
        started = time.perf_counter()
        on_sandboxes = {
            p: _fill(boxes, p, ids[p], PER_PLATFORM, seed=index * 100_000 + 1)
            for index, p in enumerate(PLATFORMS)
        }
        on_sandboxes["eventbrite"] = _eventbrite_attendees(boxes, ids["eventbrite"])
        sim_seconds = time.perf_counter() - started
        log(f"pull: simulated {on_sandboxes} in {sim_seconds:.0f} s; pulling in a child")
        child, samples = _run_child(db, event.id, Path(tmp) / "pull_child.log")
        stored = _rows_by_platform(db, event.id)
    return [_figure(child, samples, on_sandboxes, stored, sim_seconds)]
