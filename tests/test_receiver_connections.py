"""The receiver holds one committer connection per process and database, however many
apps are built (the test suite builds one per test and ran the server out of
connections: 'sorry, too many clients already')."""

from __future__ import annotations

from sqlalchemy import text

from hub.settings import load_settings
from webhook_receiver.app import create_app
from webhook_receiver.core import raw_store_of


def _backends(engine) -> int:
    with engine.connect() as conn:
        return conn.scalar(
            text(
                "select count(*) from pg_stat_activity "
                "where datname = current_database() and backend_type = 'client backend'"
            )
        )


def test_many_apps_share_one_committer_connection(clean_db):
    apps = [create_app(load_settings()) for _ in range(6)]
    for app in apps:  # every app stores a row (a refusal under /webhooks is kept)
        assert app.test_client().post("/webhooks/paypal", json={"n": 1}).status_code == 404
    first = _backends(clean_db)
    more = [create_app(load_settings()) for _ in range(6)]
    for app in more:
        app.test_client().post("/webhooks/paypal", json={"n": 2})
    assert _backends(clean_db) == first
    assert len({id(raw_store_of(app)) for app in apps + more}) == 1
    with clean_db.connect() as conn:
        assert conn.scalar(text("select count(*) from raw.webhook_events")) == 12
