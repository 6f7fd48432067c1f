"""The Dagster instance: runs, events and schedules stored in PostgreSQL (dagster-postgres),
on the same server as the hub (embedded or external), in its own database.

``DAGSTER_HOME`` is ``<data dir>/dagster-home``; its dagster.yaml reads the storage URL
from ``HUB_DAGSTER_PG_URL`` so no password is written to disk. When that database cannot
be created, starting fails with the reason (``DagsterDatabaseError``): the instance never
falls back to sharing the hub's database.

Run slots: 4 runs at once; publish runs (tag ``hub/lane=publish``) take at most 2 of
them, so a platform that keeps failing never queues the ingest or the pulls behind it.
Run monitoring marks a run whose worker vanished as failed (the publish lease lets the
sensor recover its channels either way).
"""

from __future__ import annotations

import os
from pathlib import Path

from hub.embedded import DagsterDatabaseError, resolve_dagster_database_url
from hub.settings import Settings

DAGSTER_YAML = """\
# Written by the hub (orchestration/instance.py); edit there.
storage:
  postgres:
    postgres_url:
      env: HUB_DAGSTER_PG_URL
run_coordinator:
  module: dagster.core.run_coordinator
  class: QueuedRunCoordinator
  config:
    max_concurrent_runs: 4
    tag_concurrency_limits:
      - key: "hub/lane"
        value: "publish"
        limit: 2
run_monitoring:
  enabled: true
  start_timeout_seconds: 180
  max_resume_run_attempts: 0
  poll_interval_seconds: 60
telemetry:
  enabled: false
"""


__all__ = ["DAGSTER_YAML", "DagsterDatabaseError", "get_instance", "prepare_dagster_home"]


def prepare_dagster_home(settings: Settings) -> Path:
    """Write dagster.yaml and point DAGSTER_HOME at it; raises DagsterDatabaseError when
    the Dagster database cannot be created (nothing is changed in the environment then)."""
    url = resolve_dagster_database_url(settings)  # first: a failure changes nothing
    home = settings.data_dir / "dagster-home"
    home.mkdir(parents=True, exist_ok=True)
    config = home / "dagster.yaml"
    if not config.exists() or config.read_text() != DAGSTER_YAML:
        config.write_text(DAGSTER_YAML)
    os.environ["HUB_DAGSTER_PG_URL"] = url
    os.environ["DAGSTER_HOME"] = str(home)
    return home


def get_instance(settings: Settings):
    """The persistent Dagster instance (the same one the UI shows)."""
    from dagster import DagsterInstance

    prepare_dagster_home(settings)
    return DagsterInstance.get()
