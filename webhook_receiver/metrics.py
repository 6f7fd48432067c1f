"""Prometheus metrics of the receiver, in one process or across gunicorn workers.

Under gunicorn ``webhook_receiver/gunicorn_conf.py`` sets ``PROMETHEUS_MULTIPROC_DIR``
before any worker imports this module, so prometheus_client writes every worker's values
to files in that directory and ``/metrics`` aggregates them with a
``MultiProcessCollector``. Without the variable the default in-process registry is used.
"""

from __future__ import annotations

import os

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)

OUTCOMES = (
    "accepted",
    "duplicate",
    "ignored",
    "bad_signature",
    "malformed",
    "oversize",
    "unknown_source",
    "not_configured",
    "unavailable",
    "error",
)

REQUESTS = Counter(
    "hub_receiver_requests",
    "Webhook and inbound-mail requests by source and outcome",
    ["source", "outcome"],
)
LATENCY = Histogram(
    "hub_receiver_request_duration_seconds",
    "Time from request start to response, by source",
    ["source"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)


def observe(source: str, outcome: str, seconds: float) -> None:
    REQUESTS.labels(source=source, outcome=outcome).inc()
    LATENCY.labels(source=source).observe(seconds)


def multiprocess_dir() -> str | None:
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR")


def render() -> tuple[bytes, str]:
    """The exposition text of every worker (multiprocess) or of this process."""
    if multiprocess_dir():
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
