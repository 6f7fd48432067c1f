"""Issue 8 #6: PostgreSQL frozen (SIGSTOP) under load. Requests hung for the whole freeze
and then succeeded; now they are answered 503 + Retry-After within the store's deadline
(< 2 s), and no request answered 2xx is missing once PostgreSQL is back.

The test owns its PostgreSQL: a separate embedded server in a temporary directory (the
session's shared server is never stopped)."""

from __future__ import annotations

import json
import os
import signal
import threading
import time

import httpx
import psycopg
import pytest
from receiver_front import front_server
from test_receiver_support import SECRETS, stripe_event, stripe_headers

from hub.embedded import private_postgres
from hub.processes import child_pids

STRIPE = SECRETS["stripe_webhook_secret"]
FREEZE_SECONDS = 3.0


def _tree(pid: int) -> list[int]:
    """``pid`` and its children (the postmaster and every backend)."""
    return [pid, *child_pids(pid)]


@pytest.fixture()
def own_postgres():
    with private_postgres() as (url, pid, _folder):
        yield url, pid


def test_frozen_postgresql_answers_503_fast_and_loses_no_acknowledged_request(
    own_postgres, tmp_path
):
    url, postmaster = own_postgres
    acked: list[str] = []
    answers: list[tuple[float, int, str | None]] = []
    stop = threading.Event()
    with front_server(tmp_path, HUB_DATABASE_URL=url) as srv:

        def load() -> None:
            with httpx.Client(base_url=srv.url, timeout=30) as client:
                while not stop.is_set():
                    event = stripe_event()
                    body = json.dumps(event).encode()
                    resp = client.post("/webhooks/stripe", content=body,
                                       headers=stripe_headers(body, STRIPE))  # fmt: skip
                    answers.append((time.monotonic(), resp.status_code,
                                    resp.headers.get("retry-after")))  # fmt: skip
                    if resp.status_code == 200:
                        acked.append(event["id"])

        workers = [threading.Thread(target=load, daemon=True) for _ in range(4)]
        for worker in workers:
            worker.start()
        time.sleep(1.0)
        frozen = _tree(postmaster)
        for pid in frozen:
            os.kill(pid, signal.SIGSTOP)
        frozen_at = time.monotonic()
        time.sleep(FREEZE_SECONDS)
        for pid in frozen:
            os.kill(pid, signal.SIGCONT)
        thawed_at = time.monotonic()
        time.sleep(2.0)
        stop.set()
        for worker in workers:
            worker.join(30)
    during = [a for a in answers if frozen_at <= a[0] <= thawed_at]
    unavailable = [a for a in during if a[1] == 503]
    assert unavailable, f"no 503 while frozen: {[a[1] for a in during]}"
    assert unavailable[0][0] - frozen_at < 2.0, unavailable[0][0] - frozen_at
    assert all(a[2] for a in unavailable), "503 without Retry-After"
    assert all(a[1] in (200, 503) for a in answers), {a[1] for a in answers}
    assert any(a[1] == 200 and a[0] > thawed_at for a in answers), "not back after thaw"
    with psycopg.connect(url) as conn:
        stored = {r[0] for r in conn.execute("select dedupe_key from raw.webhook_events")}
    assert set(acked) <= stored, f"{len(set(acked) - stored)} acknowledged requests lost"
