"""The Dagster instance: runs, events and schedules stored in PostgreSQL (dagster-postgres),
on the same server as the hub (embedded or external), in its own database.

``DAGSTER_HOME`` is ``<data dir>/dagster-home``; its dagster.yaml reads the storage URL
from ``HUB_DAGSTER_PG_URL`` so no password is written to disk.
"""

from __future__ import annotations

import os
from pathlib import Path

from hub.embedded import resolve_dagster_database_url
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
telemetry:
  enabled: false
"""


def prepare_dagster_home(settings: Settings) -> Path:
    home = settings.data_dir / "dagster-home"
    home.mkdir(parents=True, exist_ok=True)
    config = home / "dagster.yaml"
    if not config.exists() or config.read_text() != DAGSTER_YAML:
        config.write_text(DAGSTER_YAML)
    os.environ["HUB_DAGSTER_PG_URL"] = resolve_dagster_database_url(settings)
    os.environ["DAGSTER_HOME"] = str(home)
    return home


def get_instance(settings: Settings):
    """The persistent Dagster instance (the same one the UI shows)."""
    from dagster import DagsterInstance

    prepare_dagster_home(settings)
    return DagsterInstance.get()
