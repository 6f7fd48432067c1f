"""Each event is a dynamic partition, keyed by its slug (stable and readable in the UI)."""

from dagster import DynamicPartitionsDefinition

events_partitions = DynamicPartitionsDefinition(name="events")
