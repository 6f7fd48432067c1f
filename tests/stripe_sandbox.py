"""Test helper: the Stripe emulator on a free loopback port, wired into the hub's settings
as sandbox mode wires it (``HUB_STRIPE_BASE_URL``, ``HUB_STRIPE_SECRET_KEY`` = the sandbox
key), with its test controls as methods.

    with running_stripe(tmp_path, webhook_url=receiver_url) as box:
        checkout = StripeCheckout.from_settings()      # reads the settings set here
        info = checkout.create_session(...)
        box.complete(info.id)                          # pay without a browser
        box.deliveries(wait=5)                         # every attempt, once idle
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from hub.settings import Settings, environment, load_settings
from integrations.sandbox.common import ServerHandle, serve_in_thread
from integrations.sandbox.stripe import STRIPE_SECRET_KEY, create_app


@dataclass
class StripeBox:
    server: ServerHandle
    settings: Settings

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def sandbox(self) -> Any:
        return self.server.app.extensions["sandbox"]

    def control(self, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        response = httpx.post(f"{self.url}/_sandbox{path}", json=body or {}, timeout=30)
        response.raise_for_status()
        return response.json()

    def complete(self, session_id: str, **details: Any) -> dict[str, Any]:
        return self.control(f"/sessions/{session_id}/complete", details)

    def decline(self, session_id: str) -> dict[str, Any]:
        return self.control(f"/sessions/{session_id}/decline")

    def expire_now(self, session_id: str) -> dict[str, Any]:
        return self.control(f"/sessions/{session_id}/expire-now")

    def set_webhook(self, url: str | None, **options: Any) -> dict[str, Any]:
        return self.control("/webhook", {"url": url, **options})

    def faults(self, **faults: Any) -> dict[str, Any]:
        return self.control("/faults", faults)

    def deliveries(self, wait: float = 0) -> dict[str, Any]:
        return httpx.get(
            f"{self.url}/_sandbox/deliveries", params={"wait": wait}, timeout=wait + 10
        ).json()


@contextmanager
def running_stripe(
    state_dir: Path, *, webhook_url: str | None = None, port: int = 0
) -> Iterator[StripeBox]:
    """``webhook_url`` None: events are kept (``GET /v1/events``) but sent nowhere."""
    app = create_app(
        state_path=str(state_dir / "stripe.sqlite"),
        webhook_url=webhook_url,
        webhook_backoff_seconds=0.1,
    )
    server = serve_in_thread(app, port=port)
    try:
        with environment(
            {"HUB_STRIPE_BASE_URL": server.url, "HUB_STRIPE_SECRET_KEY": STRIPE_SECRET_KEY}
        ):
            yield StripeBox(server, load_settings())
    finally:
        server.stop()
        app.extensions["sandbox"].stop()
        app.extensions["sandbox"].store.close()
