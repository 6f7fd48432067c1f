"""dbt models as Dagster assets (dagster-dbt), downstream of the raw and app tables.

Asset groups follow the dbt folders (staging, intermediate, marts); the tables dbt reads
are declared as external assets so the UI shows lineage raw -> staging -> marts.
"""

import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from dagster import (
    AssetExecutionContext,
    AssetKey,
    AssetSelection,
    AssetSpec,
    Definitions,
    define_asset_job,
)
from dagster_dbt import DagsterDbtTranslator, DbtCliResource, DbtProject, dbt_assets

from hub.settings import get_settings
from orchestration.dbt_env import dbt_env

# The dbt of this virtualenv, found even when the venv is not activated.
DBT_EXECUTABLE = str(Path(sys.executable).with_name("dbt"))
DBT_PROJECT_DIR = Path(__file__).resolve().parents[2] / "dbt_project"

dbt_project = DbtProject(project_dir=DBT_PROJECT_DIR, profiles_dir=DBT_PROJECT_DIR)
if not dbt_project.manifest_path.exists():
    # A fresh clone has no manifest: parse (no database needed; profiles.yml has
    # defaults) with this virtualenv's dbt, which need not be on PATH under `make`.
    DbtCliResource(project_dir=dbt_project, dbt_executable=DBT_EXECUTABLE).cli(
        ["parse", "--quiet"], target_path=dbt_project.target_path
    ).wait()

# Tables the hub writes and dbt reads: (schema, table, description, what writes it).
_PULLS = [f"syndication/{p}_registrations" for p in ("meetup", "eventbrite", "luma")]
SOURCE_TABLES = (
    ("raw", "webhook_events", "Webhook deliveries as received (receiver)", []),
    ("raw", "inbound_emails", "Forwarded payment e-mails as received (receiver)", []),
    ("raw", "platform_pulls", "Pages of registrations pulled from the platforms", _PULLS),
    ("app", "events", "Events as created (createEvent)", []),
    (
        "app",
        "registrations",
        "One row per platform registration (ingest and pulls)",
        [*_PULLS, "ingest/raw_rows_ingested"],
    ),
    ("app", "payments", "Payments recorded and matched", ["ingest/raw_rows_ingested"]),
)


class HubDbtTranslator(DagsterDbtTranslator):
    def get_asset_key(self, dbt_resource_props: Mapping[str, Any]) -> AssetKey:
        if dbt_resource_props["resource_type"] == "source":
            return AssetKey([dbt_resource_props["source_name"], dbt_resource_props["name"]])
        return AssetKey(["analytics", dbt_resource_props["name"]])

    def get_group_name(self, dbt_resource_props: Mapping[str, Any]) -> str | None:
        fqn = dbt_resource_props.get("fqn", [])
        return f"dbt_{fqn[1]}" if len(fqn) > 2 else "dbt"


@dbt_assets(manifest=dbt_project.manifest_path, dagster_dbt_translator=HubDbtTranslator())
def hub_dbt_models(context: AssetExecutionContext, dbt: DbtCliResource):
    os.environ.update(dbt_env(get_settings()))
    yield from dbt.cli(["build"], context=context).stream()


source_specs = [
    AssetSpec(
        key=AssetKey([schema, table]),
        description=text,
        group_name=f"{schema}_tables",
        kinds={"postgres"},
        deps=[AssetKey(writer.split("/")) for writer in writers],
    )
    for schema, table, text, writers in SOURCE_TABLES
]


analytics_build_job = define_asset_job(
    "analytics_build_job",
    selection=AssetSelection.assets(hub_dbt_models),
    description="dbt build: staging, intermediate and marts, with their tests.",
)


def defs() -> Definitions:
    return Definitions(
        assets=[hub_dbt_models, *source_specs],
        jobs=[analytics_build_job],
        resources={"dbt": DbtCliResource(project_dir=dbt_project, dbt_executable=DBT_EXECUTABLE)},
    )
