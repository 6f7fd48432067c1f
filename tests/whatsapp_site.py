"""Test helper: the WhatsApp emulator and the real receiver on loopback ports, the
emulator's status webhooks signed with the app secret the receiver verifies with."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from pydantic import SecretStr

from hub.settings import load_settings
from integrations.sandbox.common import ServerHandle, serve_in_thread
from integrations.sandbox.credentials import RECEIVER_SECRETS
from integrations.sandbox.whatsapp import create_app


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class WhatsAppBox:
    server: ServerHandle
    receiver: ServerHandle | None

    @property
    def url(self) -> str:
        return self.server.url

    def control(self, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        response = httpx.post(f"{self.url}/_sandbox{path}", json=body or {}, timeout=30)
        response.raise_for_status()
        return response.json()

    def get(self, path: str, **params: Any) -> dict[str, Any]:
        return httpx.get(f"{self.url}/_sandbox{path}", params=params, timeout=30).json()

    def idle(self, wait: float = 10) -> dict[str, Any]:
        return self.get("/deliveries", wait=wait)


@contextmanager
def whatsapp_site(tmp_path: Path, *, receiver: bool = True, **options: Any
                  ) -> Iterator[WhatsAppBox]:  # fmt: skip
    recv = None
    hook = None
    if receiver:
        from webhook_receiver.app import create_app as receiver_app

        port = free_port()
        settings = load_settings().model_copy(update={
            "whatsapp_app_secret": SecretStr(RECEIVER_SECRETS["whatsapp_app_secret"]),
            "whatsapp_verify_token": SecretStr(RECEIVER_SECRETS["whatsapp_verify_token"]),
        })  # fmt: skip
        recv = serve_in_thread(receiver_app(settings), port=port)
        hook = f"{recv.url}/webhooks/whatsapp"
    app = create_app(str(tmp_path / "whatsapp.sqlite"), webhook_url=hook, **options)
    server = serve_in_thread(app)
    try:
        yield WhatsAppBox(server, recv)
    finally:
        server.stop()
        app.extensions["sandbox"].scheduler.stop()
        if recv is not None:
            recv.stop()
        app.extensions["sandbox"].store.close()
