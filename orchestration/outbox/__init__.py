"""The outbox in Dagster: a sensor that takes over stuck rows, the outbox per event as an
asset, and checks that nothing is dead or waiting too long."""
