"""Fixtures on real servers: each test session gets its own PostgreSQL database (on the
embedded server, or on HUB_DATABASE_URL's server when set) and its own Redis key namespace.

Nothing here mocks the database or the cache.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import psycopg
import pytest
import redis as redis_lib
from sqlalchemy import text
from sqlalchemy.engine import Engine, make_url

from hub import db as hub_db
from hub.embedded import resolve_database_url, resolve_redis_url
from hub.settings import Settings, load_settings, reset_settings_cache

_RUN_ID = uuid.uuid4().hex[:8]
TEST_DATABASE = f"hub_test_{os.getpid()}_{_RUN_ID}"


def _admin_conninfo(url: str) -> str:
    return make_url(url).set(drivername="postgresql", database="postgres").render_as_string(False)


@pytest.fixture(scope="session")
def server_database_url() -> str:
    """The hub database URL of the configured server (embedded started if needed)."""
    return resolve_database_url(load_settings())


@pytest.fixture(scope="session", autouse=True)
def hub_settings(server_database_url: str) -> Iterator[Settings]:
    """Point every process of this test session at a fresh database and Redis namespace."""
    saved = {
        k: os.environ.get(k) for k in ("HUB_DATABASE_URL", "HUB_REDIS_URL", "HUB_REDIS_NAMESPACE")
    }
    admin = _admin_conninfo(server_database_url)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'create database "{TEST_DATABASE}"')
    test_url = make_url(server_database_url).set(database=TEST_DATABASE)
    os.environ["HUB_DATABASE_URL"] = test_url.render_as_string(hide_password=False)
    os.environ["HUB_REDIS_URL"] = resolve_redis_url(load_settings())
    os.environ["HUB_REDIS_NAMESPACE"] = f"test-{_RUN_ID}"
    reset_settings_cache()
    settings = load_settings()

    from hub.migrate import upgrade

    upgrade(settings)
    try:
        yield settings
    finally:
        hub_db.dispose_engines()
        client = redis_lib.Redis.from_url(os.environ["HUB_REDIS_URL"])
        for key in client.scan_iter(f"test-{_RUN_ID}:*", count=1000):
            client.delete(key)
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'drop database if exists "{TEST_DATABASE}" with (force)')
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        reset_settings_cache()


@pytest.fixture()
def engine(hub_settings: Settings) -> Engine:
    return hub_db.get_engine(hub_settings)


@pytest.fixture()
def clean_db(engine: Engine) -> Engine:
    """An engine over a database emptied of every app and raw row."""
    tables = ", ".join(f"{t.schema}.{t.name}" for t in hub_db.metadata.sorted_tables)
    with engine.begin() as conn:
        conn.execute(text(f"truncate {tables} restart identity cascade"))
    return engine


@pytest.fixture()
def redis_client(hub_settings: Settings) -> redis_lib.Redis:
    return redis_lib.Redis.from_url(resolve_redis_url(hub_settings), decode_responses=True)
