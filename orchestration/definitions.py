"""The one Dagster code location: each domain folder contributes its definitions."""

from __future__ import annotations

import importlib

from dagster import Definitions

from orchestration.resources import HubDatabase, HubRedis, PlatformAdapters

# Each module exposes defs() -> Definitions. Adding a domain = adding a line here.
DOMAINS = (
    "orchestration.analytics.definitions",
    "orchestration.syndication.definitions",
    "orchestration.ingest.definitions",
    "orchestration.capacity.definitions",
    "orchestration.outbox.definitions",
)


def _domain_defs() -> list[Definitions]:
    found = []
    for name in DOMAINS:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name and name.startswith(exc.name):  # domain not built yet
                continue
            raise
        found.append(module.defs())
    return found


defs = Definitions.merge(
    Definitions(
        resources={
            "hub_db": HubDatabase(),
            "hub_redis": HubRedis(),
            "adapters": PlatformAdapters(),
        }
    ),
    *_domain_defs(),
)
