"""Receiver with PostgreSQL frozen (issue 8 #6): Stripe deliveries keep coming while the
database is stopped with SIGSTOP for 10 s, then resumed.

Measured: the time from the freeze to the first 503 answer (target under 2 s: the raw
store's deadline, then 503 + Retry-After), the longest any request waited during the
freeze, how soon 2xx answers come back after the thaw, and acknowledged requests lost
(2xx answers whose event is not stored once PostgreSQL is back; target 0).

The benchmark owns the PostgreSQL it freezes: a separate embedded server in a
temporary directory (freezing the shared one would stall everything else on it).
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from typing import Any

import httpx
import psycopg

from bench.common import LOOPBACK, Figure, free_port, log, start_process, stop_process, wait_http
from bench.loadgen import stripe_event, stripe_signature
from bench.receiver import SECRET, _drop_metrics_dir, _gunicorn_env, front_argv
from hub.embedded import private_postgres
from hub.processes import child_pids

CLIENTS = 8
BEFORE_S = 3.0
FREEZE_S = 10.0
AFTER_S = 5.0
FIRST_503_TARGET_S = 2.0


def _tree(pid: int) -> list[int]:
    return [pid, *child_pids(pid)]


def _load(url: str, stop: threading.Event, answers: list, index: int) -> None:
    with httpx.Client(base_url=url, timeout=60) as client:
        n = 0
        while not stop.is_set():
            n += 1
            event_id = f"evt_frozen{index:02d}x{n:07d}"
            body = stripe_event(event_id)
            headers = {"Stripe-Signature": stripe_signature(body, SECRET),
                       "Content-Type": "application/json"}  # fmt: skip
            sent = time.monotonic()
            try:
                resp = client.post("/webhooks/stripe", content=body, headers=headers)
                status, retry_after = resp.status_code, resp.headers.get("retry-after")
            except httpx.HTTPError as exc:
                status, retry_after = type(exc).__name__, None
            answers.append((sent, time.monotonic(), status, retry_after, event_id))
            if status == 503:
                time.sleep(0.1)  # a sender honouring Retry-After would wait longer


def run() -> list[Figure]:
    with private_postgres("hubfz") as (url, postmaster, data_dir):
        port = free_port()
        env = _gunicorn_env(port) | {"HUB_DATABASE_URL": url, "HUB_DATA_DIR": str(data_dir)}
        proc = start_process(front_argv("granian", port), data_dir / "receiver.log", env)
        answers: list[tuple[float, float, Any, str | None, str]] = []
        stop = threading.Event()
        try:
            wait_http(f"http://{LOOPBACK}:{port}/health", timeout=60, proc=proc)
            target = f"http://{LOOPBACK}:{port}"
            threads = [
                threading.Thread(target=_load, args=(target, stop, answers, i))
                for i in range(CLIENTS)
            ]
            for thread in threads:
                thread.start()
            time.sleep(BEFORE_S)
            frozen = _tree(postmaster)
            log(f"frozen db: SIGSTOP {len(frozen)} PostgreSQL processes for {FREEZE_S:.0f} s")
            for pid in frozen:
                os.kill(pid, signal.SIGSTOP)
            frozen_at = time.monotonic()
            time.sleep(FREEZE_S)
            for pid in frozen:
                os.kill(pid, signal.SIGCONT)
            thawed_at = time.monotonic()
            log("frozen db: SIGCONT")
            time.sleep(AFTER_S)
            stop.set()
            for thread in threads:
                thread.join(90)
        finally:
            stop.set()
            stop_process(proc)
            _drop_metrics_dir(port)
        with psycopg.connect(url) as conn:
            stored = {r[0] for r in conn.execute("select dedupe_key from raw.webhook_events")}
    return [_figure(answers, frozen_at, thawed_at, stored)]


def _figure(answers: list, frozen_at: float, thawed_at: float, stored: set[str]) -> Figure:
    acked = {a[4] for a in answers if a[2] == 200}
    lost = acked - stored
    unavailable = [a for a in answers if a[2] == 503 and a[1] >= frozen_at]
    first_503 = min((a[1] for a in unavailable), default=float("inf")) - frozen_at
    during = [a for a in answers if a[0] < thawed_at and a[1] > frozen_at]
    longest = max((a[1] - max(a[0], frozen_at) for a in during), default=0.0)
    back = min((a[1] for a in answers if a[2] == 200 and a[0] >= thawed_at),
               default=float("inf")) - thawed_at  # fmt: skip
    no_retry_after = sum(1 for a in unavailable if not a[3])
    statuses: dict[str, int] = {}
    for a in answers:
        statuses[str(a[2])] = statuses.get(str(a[2]), 0) + 1
    passed = first_503 < FIRST_503_TARGET_S and not lost and no_retry_after == 0
    lines = [
        f"Load: {CLIENTS} clients (httpx, keep-alive) sending Stripe-signed events to the "
        f"receiver as shipped (granian + buffering front); {BEFORE_S:.0f} s normal, then every "
        f"PostgreSQL process (postmaster and backends) stopped with SIGSTOP for "
        f"{FREEZE_S:.0f} s, then SIGCONT and {AFTER_S:.0f} s more. A client answered 503 waits "
        "0.1 s and sends its next event.",
        "",
        "| measure | value |",
        "|---|---|",
        f"| time from freeze to first 503 | **{first_503:.2f} s** |",
        f"| longest wait of a request during the freeze | {longest:.2f} s |",
        f"| 503 answers without Retry-After | {no_retry_after} |",
        f"| first 2xx after the thaw | {back:.2f} s |",
        f"| answers by status (whole run) | {json.dumps(statuses)} |",
        f"| events acknowledged 2xx / stored | {len(acked):,} / {len(acked & stored):,} |",
        f"| **acknowledged requests lost** | **{len(lost)}** |",
        "",
        "Rows committed after their request had already been answered 503 (the sender "
        f"retries them; stored, never acknowledged): {len(stored - acked):,}.",
    ]
    return Figure(
        key="receiver-frozen-db",
        title="Receiver: PostgreSQL frozen for 10 s under load",
        target=f"first 503 (with Retry-After) under {FIRST_503_TARGET_S:.0f} s after the freeze; "
        "0 acknowledged requests lost",
        passed=passed,
        summary=f"first 503 after {first_503:.2f} s, longest wait {longest:.2f} s, back "
        f"{back:.2f} s after the thaw; {len(acked):,} acknowledged, {len(lost)} lost",
        lines=lines,
        data={"first_503_s": first_503, "lost": len(lost)},
    )
