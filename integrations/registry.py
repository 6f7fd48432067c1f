"""Registry of the sandbox emulators, keyed by name (the adapters are built by
integrations.factory)."""

from __future__ import annotations

import importlib
from typing import Any

# sandbox name -> module exposing create_app(state_path=None, **options) -> Flask
SANDBOXES: dict[str, str] = {
    "meetup": "integrations.sandbox.meetup",
    "eventbrite": "integrations.sandbox.eventbrite",
    "luma": "integrations.sandbox.luma",
    "stripe": "integrations.sandbox.stripe",
    "whatsapp": "integrations.sandbox.whatsapp",
    "netgsm": "integrations.sandbox.netgsm",
}


def sandbox_app_factory(name: str) -> Any:
    return importlib.import_module(SANDBOXES[name]).create_app
