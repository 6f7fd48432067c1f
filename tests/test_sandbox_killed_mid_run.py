"""Killing one sandbox process mid-run and restarting it ends with every platform
published exactly once (the syndication issue's 'done when')."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx

from hub.db import get_engine, transaction
from hub.events import create_event, parse_spec
from hub.settings import load_settings, reset_settings_cache
from hub.vault import Vault
from integrations.factory import build_adapter
from orchestration.syndication.publisher import sync_event
from tests.sandboxes import PLATFORMS, running_sandboxes

ROOT = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _start(port: int, state: Path) -> subprocess.Popen:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "integrations.sandbox.run",
            "eventbrite",
            "--port",
            str(port),
            "--state",
            str(state),
        ],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/_sandbox/health", timeout=1).is_success:
                return proc
        except httpx.HTTPError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError("eventbrite sandbox did not start")


def test_killed_sandbox_restarted_mid_run_ends_published_exactly_once(
    clean_db, tmp_path, monkeypatch
):
    port = _free_port()
    state = tmp_path / "eventbrite-process.sqlite"
    proc = _start(port, state)
    try:
        with running_sandboxes(tmp_path) as boxes:
            monkeypatch.setenv("HUB_EVENTBRITE_BASE_URL", f"http://127.0.0.1:{port}")
            reset_settings_cache()
            settings = load_settings()
            with transaction() as conn:
                event = create_event(
                    conn,
                    parse_spec(
                        {
                            "title": "Kesinti Testi",
                            "starts_at": "2026-12-30T19:00:00",
                            "ends_at": "2026-12-30T21:00:00",
                            "total_capacity": 50,
                            "currency": "TRY",
                        }
                    ),
                    actor="test",
                )
            # Slow Eventbrite down so the kill lands while its requests are in flight.
            httpx.post(f"http://127.0.0.1:{port}/_sandbox/config", json={"latency_ms": 800})

            def kill_and_restart() -> None:
                nonlocal proc
                time.sleep(1.2)
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait()
                time.sleep(0.5)
                proc = _start(port, state)  # latency is not persisted: it comes back clean

            chaos = threading.Thread(target=kill_and_restart)
            chaos.start()

            async def publish():
                vault = Vault(settings=settings)
                async with httpx.AsyncClient(timeout=10) as client:
                    adapters = {p: build_adapter(p, settings, vault, client) for p in PLATFORMS}
                    return await sync_event(
                        get_engine(), event.id, adapters, actor="test", attempts=8, base_delay=0.5
                    )

            outcomes = {o.platform: o for o in asyncio.run(publish())}
            chaos.join()
            assert all(o.ok for o in outcomes.values()), outcomes
            assert outcomes["eventbrite"].attempts >= 2  # it really was interrupted
            events = httpx.get(
                f"http://127.0.0.1:{port}/v3/organizations/1000000001/events/",
                headers={"Authorization": "Bearer SANDBOXEBTOKEN7Q2XW4"},
            ).json()["events"]
            assert [e["id"] for e in events] == [outcomes["eventbrite"].platform_event_id]
            assert events[0]["status"] == "live"
            assert boxes.sandbox("meetup").store.count("event") == 1
            assert boxes.sandbox("luma").store.count("event") == 1
    finally:
        proc.kill()
        proc.wait()
