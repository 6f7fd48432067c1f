"""The receiver (landing pages, checkout, webhooks) on a real port with the Stripe
emulator delivering its signed events to it: the harness of the paid-checkout and the
browser tests."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from pydantic import SecretStr
from stripe_sandbox import StripeBox, running_stripe

from hub import checkout as hub_checkout
from hub.settings import Settings, load_settings
from integrations.sandbox.common import ServerHandle, serve_in_thread
from integrations.sandbox.credentials import RECEIVER_SECRETS
from integrations.stripe_checkout import StripeCheckout
from webhook_receiver.app import create_app


@dataclass
class CheckoutSite:
    url: str
    box: StripeBox
    server: ServerHandle
    settings: Settings


@contextmanager
def checkout_site(tmp_path: Path) -> Iterator[CheckoutSite]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    with running_stripe(tmp_path, webhook_url=f"{url}/webhooks/stripe") as box:
        settings = load_settings().model_copy(
            update={
                "public_base_url": url,
                "stripe_webhook_secret": SecretStr(RECEIVER_SECRETS["stripe_webhook_secret"]),
            }
        )
        app = create_app(settings)
        app.config["CHECKOUT_RATE_LIMIT"] = (1000, 60)  # one loopback client for all
        server = serve_in_thread(app, port=port)
        hub_checkout.configure_payments(lambda: StripeCheckout.from_settings(settings))
        try:
            yield CheckoutSite(url, box, server, settings)
        finally:
            server.stop()
