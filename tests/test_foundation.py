"""Migrations, embedded services and the Dagster code location."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import psycopg
from sqlalchemy import create_engine, inspect, pool
from sqlalchemy.engine import make_url

from hub.embedded import resolve_database_url
from hub.migrate import current_revision, downgrade, upgrade
from hub.settings import load_settings

ROOT = Path(__file__).resolve().parents[1]


def test_migrations_upgrade_downgrade_upgrade_on_empty_database(hub_settings):
    """`alembic downgrade base && alembic upgrade head` clean, on a database of its own."""
    name = f"hub_mig_{uuid.uuid4().hex[:8]}"
    base = make_url(resolve_database_url(hub_settings))
    admin = base.set(drivername="postgresql", database="postgres").render_as_string(False)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'create database "{name}"')
    url = base.set(database=name).render_as_string(False)
    env = {**os.environ, "HUB_DATABASE_URL": url}
    try:
        for args in (["upgrade", "head"], ["downgrade", "base"], ["upgrade", "head"]):
            result = subprocess.run(
                [str(Path(sys.executable).with_name("alembic")), *args],
                cwd=ROOT,
                env=env,
                capture_output=True,
                text=True,
                timeout=120,
            )
            assert result.returncode == 0, result.stderr
        engine = create_engine(url, poolclass=pool.NullPool)
        tables = set(inspect(engine).get_table_names(schema="app"))
        raw = set(inspect(engine).get_table_names(schema="raw"))
        engine.dispose()
        assert {"events", "event_channels", "registrations", "integrations", "outbox"} <= tables
        assert {"webhook_events", "inbound_emails", "checkout_requests", "platform_pulls"} <= raw
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'drop database if exists "{name}" with (force)')


def test_programmatic_downgrade_then_upgrade(hub_settings):
    downgrade(hub_settings, "base")
    assert current_revision(hub_settings) is None
    upgrade(hub_settings)
    from alembic.script import ScriptDirectory

    from hub.migrate import alembic_config

    heads = ScriptDirectory.from_config(alembic_config(hub_settings)).get_heads()
    assert len(heads) == 1, f"one migration head expected, found {heads}"
    assert current_revision(hub_settings) == heads[0]


def test_settings_reject_wrong_values_with_variable_names(monkeypatch):
    import pytest

    from hub.settings import SettingsError

    monkeypatch.setenv("HUB_DATABASE_URL", "mysql://x")
    with pytest.raises(SettingsError, match="HUB_DATABASE_URL"):
        load_settings()


def test_embedded_servers_are_shared_between_processes(tmp_path):
    """A second process finds the running embedded servers instead of starting new ones."""
    data_dir = tmp_path / "d"
    env = {k: v for k, v in os.environ.items() if not k.startswith("HUB_")}
    env["HUB_DATA_DIR"] = str(data_dir)
    hub = [sys.executable, "-m", "hub_cli", "services"]
    try:
        first = subprocess.run(
            [*hub, "up"], env=env, capture_output=True, text=True, timeout=120, cwd=ROOT
        )
        assert first.returncode == 0, first.stderr
        pid_line = next(x for x in first.stdout.splitlines() if x.startswith("postgresql"))
        second = subprocess.run(
            [*hub, "up"], env=env, capture_output=True, text=True, timeout=60, cwd=ROOT
        )
        assert second.returncode == 0
        second_line = next(x for x in second.stdout.splitlines() if x.startswith("postgresql"))
        assert second_line == pid_line
        status = subprocess.run(
            [*hub, "status"], env=env, capture_output=True, text=True, timeout=60, cwd=ROOT
        )
        assert status.returncode == 0 and status.stdout.count("running") == 2
    finally:
        down = subprocess.run(
            [*hub, "down"], env=env, capture_output=True, text=True, timeout=60, cwd=ROOT
        )
    assert "postgresql" in down.stdout and "redis" in down.stdout
    status = subprocess.run(
        [*hub, "status"], env=env, capture_output=True, text=True, timeout=60, cwd=ROOT
    )
    assert status.returncode == 3 and "stopped" in status.stdout


def test_dagster_definitions_load_with_dbt_lineage():
    from orchestration.definitions import defs

    graph = defs.resolve_asset_graph()
    keys = {k.to_user_string() for k in graph.get_all_asset_keys()}
    assert "analytics/stg_raw__webhook_events" in keys
    staging = graph.get(
        next(
            k
            for k in graph.get_all_asset_keys()
            if k.to_user_string() == "analytics/stg_raw__webhook_events"
        )
    )
    assert {p.to_user_string() for p in staging.parent_keys} == {"raw/webhook_events"}


def test_dagster_instance_stores_runs_in_postgres(hub_settings, tmp_path, monkeypatch):
    """The Dagster instance (UI, daemon, demo) keeps runs and partitions in PostgreSQL,
    in a database of its own on the hub's server, embedded or external alike."""
    from dagster import job, op
    from dagster_postgres import PostgresRunStorage

    from hub.embedded import resolve_dagster_database_url
    from orchestration.instance import get_instance

    monkeypatch.setenv("HUB_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    settings = load_settings()
    dagster_url = resolve_dagster_database_url(settings)
    try:
        instance = get_instance(settings)
        assert isinstance(instance.run_storage, PostgresRunStorage)
        assert make_url(dagster_url).database.endswith("_dagster")

        @op
        def hello() -> int:
            return 1

        @job
        def hello_job():
            hello()

        result = hello_job.execute_in_process(instance=instance)
        assert result.success
        instance.add_dynamic_partitions("events", ["a-slug"])
        with psycopg.connect(dagster_url) as conn:
            runs = conn.execute("select count(*) from runs").fetchone()[0]
            parts = conn.execute("select count(*) from dynamic_partitions").fetchone()[0]
        assert runs == 1 and parts == 1
        instance.dispose()
    finally:
        admin = make_url(dagster_url).set(database="postgres").render_as_string(False)
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'drop database if exists "{make_url(dagster_url).database}" with (force)')
