"""dbt models as Dagster assets (dagster-dbt), downstream of the ingest and the pulls.

Asset groups follow the dbt folders (dbt_staging, dbt_intermediate, dbt_marts, dbt_pii);
the tables dbt reads are declared as external assets whose writers are the ingest and
pull assets, so the UI shows lineage pulls/ingest -> raw/app -> staging -> marts.

* Refresh: ``analytics_after_ingest`` (running by default) starts ``analytics_build_job``
  after any ingest or pull materialization newer than the last one it acted on, never
  while a build is still running (the next tick catches up); incremental models make
  those builds cheap.
* dbt tests are asset checks (dagster-dbt's default); the singular tests attach to the
  model their ``meta.dagster.ref`` names.
* Marts carry a freshness policy (fail after a day without a build) and owners.
* ``rpt_fill_by_channel`` and ``dim_members`` get Markdown metadata (the fill per event
  and channel, the member count against the raw registration count) for the ops team.
"""

import os
import sys
from collections.abc import Iterator, Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any

from dagster import (
    AssetExecutionContext,
    AssetKey,
    AssetSelection,
    AssetSpec,
    DefaultSensorStatus,
    Definitions,
    FreshnessPolicy,
    MetadataValue,
    Output,
    RunRequest,
    RunsFilter,
    SensorEvaluationContext,
    SkipReason,
    define_asset_job,
    sensor,
)
from dagster._core.storage.dagster_run import IN_PROGRESS_RUN_STATUSES
from dagster_dbt import DagsterDbtTranslator, DbtCliResource, DbtProject, dbt_assets

from hub.db import get_engine
from hub.settings import get_settings
from orchestration.analytics.reports import (
    fill_by_channel_markdown,
    members_summary,
)
from orchestration.dbt_env import dbt_env

# The dbt of this virtualenv, found even when the venv is not activated.
DBT_EXECUTABLE = str(Path(sys.executable).with_name("dbt"))
DBT_PROJECT_DIR = Path(__file__).resolve().parents[2] / "dbt_project"
OWNERS = ["team:analytics"]
MART_FRESHNESS = FreshnessPolicy.time_window(
    fail_window=timedelta(hours=24), warn_window=timedelta(hours=2)
)

dbt_project = DbtProject(project_dir=DBT_PROJECT_DIR, profiles_dir=DBT_PROJECT_DIR)
if not dbt_project.manifest_path.exists():
    # A fresh clone has no manifest: parse (no database needed; profiles.yml has
    # defaults) with this virtualenv's dbt, which need not be on PATH under `make`.
    DbtCliResource(project_dir=dbt_project, dbt_executable=DBT_EXECUTABLE).cli(
        ["parse", "--quiet"], target_path=dbt_project.target_path
    ).wait()

# Tables the hub writes and dbt reads: (schema, table, description, what writes it).
_PULLS = [f"syndication/{p}_registrations" for p in ("meetup", "eventbrite", "luma")]
_INGEST = "ingest/raw_rows_ingested"
SOURCE_TABLES = (
    ("raw", "webhook_events", "Webhook deliveries as received (receiver)", []),
    ("raw", "inbound_emails", "Forwarded payment e-mails as received (receiver)", []),
    ("raw", "checkout_requests", "Native checkout requests as received (receiver)", []),
    ("raw", "platform_pulls", "Pages of registrations pulled from the platforms", _PULLS),
    ("app", "events", "Events as created (createEvent)", []),
    ("app", "event_channels", "Per event and platform: allocation, publish state", []),
    (
        "app",
        "registrations",
        "One row per platform registration (ingest and pulls)",
        [*_PULLS, _INGEST],
    ),
    ("app", "payments", "Payments recorded and matched", [_INGEST]),
    ("app", "inbound_email_classes", "What each inbound e-mail was", [_INGEST]),
    ("app", "email_attachments", "Attachments of inbound e-mails", [_INGEST]),
    ("app", "integrations", "Connected platform accounts", []),
    ("app", "vault_state", "The vault's current key fingerprint", []),
    ("app", "outbox", "Side effects queued for the relay", []),
    ("app", "seat_holds", "The seat ledger (native holds, platform seats)", []),
    ("app", "orders", "Native checkouts", []),
    ("app", "audit_log", "Every state change, who and why", []),
    ("app", "sync_cursors", "Where each platform pull resumes", _PULLS),
)
# What the refresh sensor watches: a new materialization of any of these means new rows.
UPSTREAM_KEYS = tuple(AssetKey(w.split("/")) for w in (*_PULLS, _INGEST))

FILL_KEY = AssetKey(["analytics", "rpt_fill_by_channel"])
MEMBERS_KEY = AssetKey(["analytics", "dim_members"])


class HubDbtTranslator(DagsterDbtTranslator):
    def get_asset_key(self, dbt_resource_props: Mapping[str, Any]) -> AssetKey:
        if dbt_resource_props["resource_type"] == "source":
            return AssetKey([dbt_resource_props["source_name"], dbt_resource_props["name"]])
        return AssetKey(["analytics", dbt_resource_props["name"]])

    def get_group_name(self, dbt_resource_props: Mapping[str, Any]) -> str | None:
        fqn = dbt_resource_props.get("fqn", [])
        return f"dbt_{fqn[1]}" if len(fqn) > 2 else "dbt"

    def get_asset_spec(self, manifest, unique_id, project) -> AssetSpec:
        spec = super().get_asset_spec(manifest, unique_id, project)
        props = self.get_resource_props(manifest, unique_id)
        if props["resource_type"] != "model":
            return spec
        fqn = props.get("fqn", [])
        layer = fqn[1] if len(fqn) > 2 else "dbt"
        tags = {**spec.tags, "layer": layer}
        if layer == "pii":
            tags["personal_data"] = "true"
        return spec.replace_attributes(
            owners=OWNERS,
            tags=tags,
            freshness_policy=MART_FRESHNESS if layer == "marts" else None,
        )


def _with_report_metadata(event: Any, context: AssetExecutionContext) -> Any:
    """The fill report and the member count as metadata of their assets' outputs."""
    if not isinstance(event, Output):
        return event
    key = context.asset_key_for_output(event.output_name)
    if key not in (FILL_KEY, MEMBERS_KEY):
        return event
    try:
        engine = get_engine()
        if key == FILL_KEY:
            extra = {"fill_by_channel": MetadataValue.md(fill_by_channel_markdown(engine))}
        else:
            summary = members_summary(engine)
            extra = {
                "members": summary.members,
                "raw_registrations": summary.registrations,
                "members_on_two_or_more_channels": summary.multi_channel,
                "channel_overlap": MetadataValue.md(summary.overlap_markdown),
            }
    except Exception as exc:  # a report query must never fail the build it describes
        context.log.warning(f"report metadata for {key.to_user_string()}: {exc}")
        return event
    return event.with_metadata({**event.metadata, **extra})


@dbt_assets(
    manifest=dbt_project.manifest_path,
    dagster_dbt_translator=HubDbtTranslator(),
    name="hub_dbt_models",
)
def hub_dbt_models(context: AssetExecutionContext, dbt: DbtCliResource) -> Iterator[Any]:
    """dbt build of the selected models: models, then their tests as asset checks."""
    os.environ.update(dbt_env(get_settings()))
    for event in dbt.cli(["build"], context=context).stream():
        yield _with_report_metadata(event, context)


source_specs = [
    AssetSpec(
        key=AssetKey([schema, table]),
        description=text,
        group_name=f"{schema}_tables",
        kinds={"postgres"},
        owners=["team:platform"],
        deps=[AssetKey(writer.split("/")) for writer in writers],
    )
    for schema, table, text, writers in SOURCE_TABLES
]


analytics_build_job = define_asset_job(
    "analytics_build_job",
    selection=AssetSelection.assets(hub_dbt_models),
    description="dbt build: staging, intermediate and marts, with their tests.",
)


def latest_upstream_storage_id(instance) -> int:
    """The newest materialization (storage id) of any ingest or pull asset, 0 if none."""
    latest = 0
    for key in UPSTREAM_KEYS:
        found = instance.fetch_materializations(key, limit=1).records
        if found:
            latest = max(latest, found[0].storage_id)
    return latest


@sensor(
    name="analytics_after_ingest",
    job=analytics_build_job,
    minimum_interval_seconds=60,
    default_status=DefaultSensorStatus.RUNNING,
    description=(
        "Builds the dbt models after new ingest or pull materializations (at most one "
        "build at a time; a tick during a build waits for the next)."
    ),
)
def analytics_after_ingest(context: SensorEvaluationContext):
    latest = latest_upstream_storage_id(context.instance)
    seen = int(context.cursor or 0)
    if latest <= seen:
        return SkipReason("no ingest or pull since the last build")
    running = context.instance.get_runs(
        RunsFilter(job_name=analytics_build_job.name, statuses=list(IN_PROGRESS_RUN_STATUSES)),
        limit=1,
    )
    if running:
        return SkipReason(f"build {running[0].run_id} in progress; new rows wait for the next")
    context.update_cursor(str(latest))
    return RunRequest(run_key=f"analytics:{latest}", tags={"hub/trigger": "ingest"})


def defs() -> Definitions:
    return Definitions(
        assets=[hub_dbt_models, *source_specs],
        jobs=[analytics_build_job],
        sensors=[analytics_after_ingest],
        resources={"dbt": DbtCliResource(project_dir=dbt_project, dbt_executable=DBT_EXECUTABLE)},
    )
