"""Capacity: the seat ledger's routine (expired holds) and its view in Dagster."""
