"""A sensor tick evaluated as the Dagster daemon evaluates it, in this process: Dagster's
own testing API on a real instance, the dynamic partitions it asks for added, and the
run keys already used recognised. The demo and the tests use it to show and check the
sensors' behaviour without a daemon running."""

from __future__ import annotations

from typing import Any

from dagster import DagsterInstance, RunsFilter, build_sensor_context, partition_loading_context

from orchestration.resources import HubDatabase

RUN_KEY_TAG = "dagster/run_key"


def evaluate_sensor_tick(
    defs: Any, instance: DagsterInstance, name: str, cursor: str | None = None
) -> Any:
    """The tick's data (run requests, skip message, cursor), partitions already added."""
    context = build_sensor_context(
        instance=instance,
        instance_ref=instance.get_ref(),  # as the daemon: partitions load from it
        cursor=cursor,
        resources={"hub_db": HubDatabase()},
        definitions=defs,
    )
    with partition_loading_context(dynamic_partitions_store=instance):
        data = defs.resolve_sensor_def(name).evaluate_tick(context)
    for request in data.dynamic_partitions_requests or []:
        instance.add_dynamic_partitions(request.partitions_def_name, request.partition_keys)
    return data


def run_key_used(instance: DagsterInstance, run_key: str | None) -> bool:
    """Whether a run with this key exists (the daemon then launches nothing)."""
    if not run_key:
        return False
    return bool(instance.get_runs(RunsFilter(tags={RUN_KEY_TAG: run_key}), limit=1))
