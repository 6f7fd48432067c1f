"""Connection variables for dbt's profiles.yml, derived from the hub settings."""

from __future__ import annotations

from sqlalchemy.engine import make_url

from hub.embedded import resolve_database_url
from hub.settings import Settings


def dbt_env(settings: Settings) -> dict[str, str]:
    url = make_url(resolve_database_url(settings))
    host = url.query.get("host") or url.host or "localhost"
    if isinstance(host, tuple):
        host = host[0]
    return {
        "HUB_DBT_HOST": str(host),
        "HUB_DBT_PORT": str(url.port or 5432),
        "HUB_DBT_USER": url.username or "postgres",
        "HUB_DBT_PASSWORD": url.password or "",
        "HUB_DBT_DBNAME": url.database or "hub",
    }
