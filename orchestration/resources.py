"""Dagster resources: typed clients for PostgreSQL, Redis and the platform adapters.

Their fields come from the hub settings (HUB_* environment), so switching between the
embedded servers, external servers, sandbox and live happens in one place.
"""

from __future__ import annotations

from typing import Any

import redis as redis_lib
from dagster import ConfigurableResource
from sqlalchemy.engine import Engine

from hub.db import get_engine
from hub.embedded import resolve_redis_url
from hub.settings import Settings, get_settings


class HubDatabase(ConfigurableResource):
    """The hub's PostgreSQL (app and raw schemas)."""

    def settings(self) -> Settings:
        return get_settings()

    def engine(self) -> Engine:
        return get_engine(self.settings())


class HubRedis(ConfigurableResource):
    """The live-capacity Redis; keys are prefixed with ``namespace``."""

    def client(self) -> redis_lib.Redis:
        return redis_lib.Redis.from_url(resolve_redis_url(get_settings()), decode_responses=True)

    def key(self, *parts: Any) -> str:
        return ":".join([get_settings().redis_namespace, *map(str, parts)])


class PlatformAdapters(ConfigurableResource):
    """Builds channel adapters from settings and the vault (sandbox or live alike)."""

    def build(self, platform: str, client: Any = None) -> Any:
        from hub.vault import Vault
        from integrations.factory import build_adapter

        settings = get_settings()
        return build_adapter(platform, settings, Vault(settings=settings), client=client)
