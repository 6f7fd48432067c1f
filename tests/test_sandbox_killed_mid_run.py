"""Killing a process mid-publish ends with every platform published exactly once: a
sandbox process killed and restarted (the syndication issue's 'done when'), and the
Dagster run itself killed (SIGKILL) mid-call, recovered by the sensor's next ticks once
its lease runs out (the exactly-once issue's)."""

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
from dagster import DagsterRunStatus
from sqlalchemy import select

from hub.db import event_channels, get_engine, transaction
from hub.events import create_event, parse_spec
from hub.settings import load_settings, reset_settings_cache
from hub.vault import Vault
from integrations.factory import build_adapter
from orchestration.syndication.publisher import sync_event
from tests.dagster_fixtures import (  # noqa: F401 - fixtures
    Daemon,
    dagster_instance,
    dagster_pg_instance,
    spawn_publish_run,
)
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


def _leases(engine, event_id) -> dict:
    with engine.connect() as conn:
        return {
            r.platform: r
            for r in conn.execute(
                select(event_channels).where(event_channels.c.event_id == event_id)
            )
        }


def test_dagster_run_killed_mid_publish_is_recovered_by_the_sensor(
    clean_db,
    tmp_path,
    dagster_instance,  # noqa: F811
    monkeypatch,
):
    """SIGKILL the publish run's process while Eventbrite has created the event but the
    run has not stored it (its ticket classes and publish are still in flight): Dagster
    still shows the run STARTED and the channels stay 'publishing'. Once the leases run
    out, the sensor marks the run failed and publishes again; the orphan is adopted."""
    monkeypatch.setenv("HUB_PUBLISH_LEASE_SECONDS", "1.5")
    monkeypatch.setenv("HUB_PUBLISH_BACKOFF_BASE_SECONDS", "0.2")
    with running_sandboxes(tmp_path) as boxes:
        daemon = Daemon(dagster_instance)
        for platform in PLATFORMS:
            httpx.post(f"{boxes.url(platform)}/_sandbox/config", json={"latency_ms": 400})
        with transaction() as conn:
            event = create_event(
                conn,
                parse_spec(
                    {
                        "title": "Koşu Ortasında Kesinti",
                        "starts_at": "2027-03-04T19:00:00",
                        "ends_at": "2027-03-04T21:00:00",
                        "total_capacity": 30,
                        "currency": "TRY",
                    }
                ),
                actor="test",
            )
        assert len(daemon.tick("event_publication_sensor").run_requests) == 1
        child = spawn_publish_run(dagster_instance, event.slug, PLATFORMS)
        try:
            deadline = time.monotonic() + 60
            while boxes.sandbox("eventbrite").store.count("event") == 0:
                assert time.monotonic() < deadline and child.poll() is None, "never created"
                time.sleep(0.02)
            os.kill(child.pid, signal.SIGKILL)  # mid-publish: the reply is lost
        finally:
            child.wait()
        channels = _leases(clean_db, event.id)
        owner = channels["eventbrite"].lease_owner
        assert owner and owner.startswith("dagster-run:")
        assert channels["eventbrite"].status == "publishing"
        assert channels["eventbrite"].platform_event_id is None  # the hub never learned it
        run_id = owner.removeprefix("dagster-run:")
        assert dagster_instance.get_run_by_id(run_id).status == DagsterRunStatus.STARTED

        # While the lease lives the sensor waits (a slow run looks the same as a dead one).
        waiting = daemon.tick("event_publication_sensor")
        assert not waiting.run_requests and "being published now" in waiting.skip_message

        for platform in PLATFORMS:
            httpx.post(f"{boxes.url(platform)}/_sandbox/reset")
        time.sleep(1.6)  # the dead run's leases run out
        recovered = daemon.tick("event_publication_sensor")
        assert dagster_instance.get_run_by_id(run_id).status == DagsterRunStatus.FAILURE
        assert len(recovered.run_requests) == 1
        result = daemon.execute("publish_events_job", recovered.run_requests[0])
        assert result.success
        actions = {
            m.event_specific_data.materialization.asset_key.path[
                -1
            ]: m.event_specific_data.materialization.metadata["action"].value
            for m in result.get_asset_materialization_events()
        }
        assert actions["eventbrite_event"] == "adopted"  # found by find_existing
        assert not daemon.in_progress("publish_events_job")
        assert daemon.tick("event_publication_sensor").skip_message == (
            "every event is up to date on every platform"
        )
        assert {p: boxes.sandbox(p).store.count("event") for p in PLATFORMS} == {
            p: 1 for p in PLATFORMS
        }
        channels = _leases(clean_db, event.id)
        assert {p: channels[p].status for p in PLATFORMS} == {p: "published" for p in PLATFORMS}
        live = httpx.get(
            f"{boxes.url('eventbrite')}/v3/events/{channels['eventbrite'].platform_event_id}/",
            headers={"Authorization": "Bearer SANDBOXEBTOKEN7Q2XW4"},
        ).json()
        assert live["status"] == "live"  # the orphan was adopted and finished, not left
