"""Registry of channel adapters and sandbox emulators, keyed by platform (pretix-style).

Adding a platform means adding its adapter module and its sandbox module and one line
in each table; nothing else changes.
"""

from __future__ import annotations

import importlib
from typing import Any

from hub.models import Platform

# platform -> (module, class) of the adapter
ADAPTERS: dict[Platform, tuple[str, str]] = {
    Platform.MEETUP: ("integrations.meetup", "MeetupAdapter"),
    Platform.EVENTBRITE: ("integrations.eventbrite", "EventbriteAdapter"),
    Platform.LUMA: ("integrations.luma", "LumaAdapter"),
}

# sandbox name -> module exposing create_app(state_path=None, **options) -> Flask
SANDBOXES: dict[str, str] = {
    "meetup": "integrations.sandbox.meetup",
    "eventbrite": "integrations.sandbox.eventbrite",
    "luma": "integrations.sandbox.luma",
}


def adapter_class(platform: Platform | str) -> Any:
    module, name = ADAPTERS[Platform(platform)]
    return getattr(importlib.import_module(module), name)


def sandbox_app_factory(name: str) -> Any:
    return importlib.import_module(SANDBOXES[name]).create_app
