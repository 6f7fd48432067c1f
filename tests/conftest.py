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
from hub.embedded import (
    pid_alive,
    resolve_database_url,
    resolve_redis_url,
    services_down,
    services_status,
)
from hub.settings import Settings, environment, load_settings

_RUN_ID = uuid.uuid4().hex[:8]
TEST_DATABASE = f"hub_test_{os.getpid()}_{_RUN_ID}"


def _admin_conninfo(url: str) -> str:
    return make_url(url).set(drivername="postgresql", database="postgres").render_as_string(False)


def _live_sessions(folder) -> list:
    """Pid files of test sessions still running (stale ones are removed)."""
    alive = []
    for path in folder.glob("*.pid"):
        try:
            pid = int(path.stem)
        except ValueError:
            continue
        if pid_alive(pid):
            alive.append(path)
        else:
            path.unlink(missing_ok=True)
    return alive


@pytest.fixture(scope="session")
def server_database_url() -> Iterator[str]:
    """The hub database URL of the configured server (embedded started if needed).

    Embedded servers started by test sessions are stopped by the last test session to end,
    so sessions running side by side (several terminals, helpers) never pull the servers
    from under each other; servers that were up before any test session stay up.
    """
    settings = load_settings()
    embedded = not (os.environ.get("HUB_DATABASE_URL") and os.environ.get("HUB_REDIS_URL"))
    sessions = settings.data_dir / "test-sessions"
    sessions.mkdir(parents=True, exist_ok=True)
    marker = sessions / "servers-started-by-tests"
    mine = sessions / f"{os.getpid()}.pid"
    if embedded and not all(row.running for row in services_status(settings)):
        marker.touch()
    mine.touch()
    try:
        yield resolve_database_url(settings)
    finally:
        mine.unlink(missing_ok=True)
        if marker.exists() and not _live_sessions(sessions):
            marker.unlink(missing_ok=True)
            hub_db.dispose_engines()
            services_down(settings)


@pytest.fixture(scope="session", autouse=True)
def hub_settings(server_database_url: str) -> Iterator[Settings]:
    """Point every process of this test session at a fresh database and Redis namespace."""
    admin = _admin_conninfo(server_database_url)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'create database "{TEST_DATABASE}"')
    test_url = make_url(server_database_url).set(database=TEST_DATABASE)
    redis_url = resolve_redis_url(load_settings())
    overrides = {
        "HUB_DATABASE_URL": test_url.render_as_string(hide_password=False),
        "HUB_REDIS_URL": redis_url,
        "HUB_REDIS_NAMESPACE": f"test-{_RUN_ID}",
    }
    try:
        with environment(overrides):
            settings = load_settings()
            from hub.migrate import upgrade

            upgrade(settings)
            yield settings
    finally:
        hub_db.dispose_engines()
        client = redis_lib.Redis.from_url(redis_url)
        for key in client.scan_iter(f"test-{_RUN_ID}:*", count=1000):
            client.delete(key)
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'drop database if exists "{TEST_DATABASE}" with (force)')


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
