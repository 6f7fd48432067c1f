"""A Dagster instance on PostgreSQL for the tests, and a tiny stand-in for the daemon:
evaluate a sensor or schedule tick with Dagster's own testing APIs, then execute the runs
it asks for in-process on that instance, skipping run keys already used (as the daemon
does). Nothing here mocks Dagster, the hub database or the platforms.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import psycopg
import pytest
from dagster import (
    DagsterInstance,
    RunRequest,
    RunsFilter,
    build_schedule_context,
    instance_for_test,
    partition_loading_context,
)
from dagster._core.storage.dagster_run import IN_PROGRESS_RUN_STATUSES
from sqlalchemy.engine import make_url

from hub.embedded import resolve_database_url
from hub.settings import Settings
from orchestration.definitions import defs
from orchestration.resources import HubDatabase
from orchestration.ticks import RUN_KEY_TAG, evaluate_sensor_tick, run_key_used


@pytest.fixture(scope="session")
def dagster_pg_instance(hub_settings: Settings) -> Iterator[DagsterInstance]:
    """One instance for the session, its runs, events and partitions in PostgreSQL, in a
    database of its own beside the test database (not the ``_dagster`` one, which
    test_foundation creates and drops to check orchestration/instance.py)."""
    hub_url = make_url(resolve_database_url(hub_settings))
    name = f"{hub_url.database}_dagster_suite"
    admin = hub_url.set(drivername="postgresql", database="postgres").render_as_string(False)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'drop database if exists "{name}" with (force)')
        conn.execute(f'create database "{name}"')
    url = hub_url.set(drivername="postgresql", database=name).render_as_string(False)
    try:
        with instance_for_test(
            overrides={"storage": {"postgres": {"postgres_url": url}}}, set_dagster_home=False
        ) as instance:
            yield instance
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'drop database if exists "{name}" with (force)')


@pytest.fixture()
def dagster_instance(dagster_pg_instance: DagsterInstance) -> DagsterInstance:
    """The session's instance with no run and no event left by an earlier test."""
    dagster_pg_instance.wipe()
    return dagster_pg_instance


@dataclass
class Tick:
    run_requests: list[RunRequest] = field(default_factory=list)
    skip_message: str | None = None
    cursor: str | None = None


@dataclass
class Daemon:
    """What the Dagster daemon does with a tick's result, done in the test's process."""

    instance: DagsterInstance
    cursors: dict[str, str | None] = field(default_factory=dict)

    def tick(self, name: str) -> Tick:
        data = evaluate_sensor_tick(defs, self.instance, name, self.cursors.get(name))
        self.cursors[name] = data.cursor
        return Tick(list(data.run_requests or []), data.skip_message, data.cursor)

    def schedule_tick(self, name: str, when: datetime) -> Tick:
        schedule = defs.resolve_schedule_def(name)
        context = build_schedule_context(
            instance=self.instance,
            scheduled_execution_time=when,
            resources={"hub_db": HubDatabase()},
            repository_def=defs.get_repository_def(),
        )
        with partition_loading_context(dynamic_partitions_store=self.instance):
            data = schedule.evaluate_tick(context)
        return Tick(list(data.run_requests or []), data.skip_message)

    def key_used(self, run_key: str | None) -> bool:
        return run_key_used(self.instance, run_key)

    def execute(self, job_name: str, request: RunRequest):
        """Run the request in-process (None when its run key already ran: de-duplicated)."""
        if self.key_used(request.run_key):
            return None
        tags = dict(request.tags or {})
        if request.run_key:
            tags[RUN_KEY_TAG] = request.run_key
        return defs.resolve_job_def(job_name).execute_in_process(
            instance=self.instance,
            partition_key=request.partition_key,
            asset_selection=list(request.asset_selection) if request.asset_selection else None,
            tags=tags,
            raise_on_error=False,
        )

    def in_progress(self, job_name: str) -> list:
        return list(
            self.instance.get_runs(
                RunsFilter(job_name=job_name, statuses=list(IN_PROGRESS_RUN_STATUSES))
            )
        )


ROOT = Path(__file__).resolve().parents[1]


def spawn_publish_run(
    instance: DagsterInstance, slug: str, platforms: Sequence[str], **env: str
) -> subprocess.Popen:
    """A publish run of ``slug`` in a child process on the same instance (the child gets
    this session's settings: database, Redis namespace, sandbox URLs, plus ``env``)."""
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.dagster_child",
            instance.root_directory,
            slug,
            ",".join(platforms),
        ],
        cwd=ROOT,
        env={**os.environ, **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
