"""Test helpers: the three platform sandboxes on loopback, wired into the hub's settings
and vault exactly as in sandbox mode (credentials stored, Meetup OAuth run)."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from flask import Flask, request

from hub.settings import Settings, environment, load_settings
from hub.vault import Vault
from integrations.registry import sandbox_app_factory
from integrations.sandbox.common import ServerHandle, serve_in_thread

PLATFORMS = ("meetup", "eventbrite", "luma")


@dataclass
class Sandboxes:
    servers: dict[str, ServerHandle]
    state_dir: Path
    settings: Settings

    def url(self, platform: str) -> str:
        return self.servers[platform].url

    def sandbox(self, platform: str):
        return self.servers[platform].app.extensions["sandbox"]

    def restart(self, platform: str) -> None:
        """Stop a sandbox and start it again on the same port with the same state file."""
        port = self.servers[platform].port
        self.servers[platform].stop()
        self.sandbox(platform).store.close()
        self.servers[platform] = start_one(platform, self.state_dir, port)

    def stop_all(self) -> None:
        for server in self.servers.values():
            server.stop()


def start_one(platform: str, state_dir: Path, port: int = 0) -> ServerHandle:
    app = sandbox_app_factory(platform)(state_path=str(state_dir / f"{platform}.sqlite"))
    return serve_in_thread(app, port=port)


@contextmanager
def running_sandboxes(state_dir: Path):
    from integrations.factory import connect_sandbox_credentials

    servers = {p: start_one(p, state_dir) for p in PLATFORMS}
    urls = {
        "HUB_MEETUP_BASE_URL": servers["meetup"].url,
        "HUB_MEETUP_OAUTH_BASE_URL": servers["meetup"].url,
        "HUB_EVENTBRITE_BASE_URL": servers["eventbrite"].url,
        "HUB_LUMA_BASE_URL": servers["luma"].url,
    }
    boxes = None
    try:
        with environment(urls):
            settings = load_settings()
            asyncio.run(connect_sandbox_credentials(settings, Vault(settings=settings)))
            boxes = Sandboxes(servers, state_dir, settings)
            yield boxes
    finally:
        for server in (boxes.servers if boxes else servers).values():
            server.stop()


class WebhookCollector:
    """A tiny webhook endpoint on a real port, recording every delivery to ``path``
    as (headers, raw body); ``wait_for`` blocks until enough have arrived."""

    def __init__(self, path: str = "/hooks/luma", status: int = 200) -> None:
        self.deliveries: list[tuple[dict[str, str], bytes]] = []
        self._cond = threading.Condition()
        app = Flask("webhook-collector")

        @app.post(path)
        def hook() -> tuple[str, int]:
            with self._cond:
                self.deliveries.append((dict(request.headers), request.get_data()))
                self._cond.notify_all()
            return "", status

        self.handle = serve_in_thread(app)
        self.url = f"{self.handle.url}{path}"

    def wait_for(self, count: int, timeout: float = 10.0) -> list[tuple[dict[str, str], bytes]]:
        deadline = time.monotonic() + timeout
        with self._cond:
            while len(self.deliveries) < count:
                remaining = deadline - time.monotonic()
                assert remaining > 0, f"got {len(self.deliveries)} of {count} webhooks"
                self._cond.wait(remaining)
            return list(self.deliveries)

    def payloads(self) -> list[dict]:
        return [json.loads(body) for _, body in self.deliveries]
