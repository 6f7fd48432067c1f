"""The Dagster instance's own database: an error creating it stops the start with the
reason; the instance never falls back to sharing the hub's database."""

from __future__ import annotations

import os
import uuid

import psycopg
import pytest
from sqlalchemy.engine import make_url

from hub.embedded import DagsterDatabaseError, resolve_database_url
from hub.settings import environment, load_settings
from orchestration.instance import prepare_dagster_home


def _conninfo(url: str, database: str) -> str:
    return make_url(url).set(drivername="postgresql", database=database).render_as_string(False)


def test_no_right_to_create_the_dagster_database_fails_loudly(hub_settings, tmp_path):
    hub_url = resolve_database_url(hub_settings)
    role = f"hub_nocreatedb_{uuid.uuid4().hex[:8]}"
    admin = _conninfo(hub_url, "postgres")
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'create role "{role}" login nocreatedb')
    # a hub database name of its own, so its "_dagster" database surely does not exist yet
    hub_name = f"hub_nodagster_{uuid.uuid4().hex[:8]}"
    limited = (
        make_url(hub_url)
        .set(username=role, database=hub_name)
        .render_as_string(hide_password=False)
    )
    try:
        with environment(
            {
                "HUB_DATABASE_URL": limited,
                "HUB_DATA_DIR": str(tmp_path),
                "DAGSTER_HOME": None,
                "HUB_DAGSTER_PG_URL": None,
            }
        ):
            with pytest.raises(DagsterDatabaseError) as raised:
                prepare_dagster_home(load_settings())
            message = str(raised.value)
            assert "cannot create the Dagster database" in message
            assert f"{hub_name}_dagster" in message
            assert "CREATE DATABASE" in message and "CREATEDB" in message
            # nothing points Dagster anywhere, least of all at the hub's database
            assert "DAGSTER_HOME" not in os.environ and "HUB_DAGSTER_PG_URL" not in os.environ
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'drop role "{role}"')
