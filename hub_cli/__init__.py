"""The `hub` command line: a thin shell over the core (hub), the adapters (integrations)
and the orchestration, beside the receiver (webhook_receiver) and Dagster's code location."""
