"""Prometheus metrics of the receiver, in one process or across gunicorn workers.

Under gunicorn ``webhook_receiver/gunicorn_conf.py`` sets ``PROMETHEUS_MULTIPROC_DIR``
before any worker imports this module, so prometheus_client writes every worker's values
to files in that directory and ``/metrics`` aggregates them with a
``MultiProcessCollector``. Without the variable the default in-process registry is used.
"""

from __future__ import annotations

import os
from typing import Any

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
OTHER = Counter(
    "hub_receiver_other_requests",
    "Requests outside /webhooks and /inbound (health, metrics, unknown paths), by status",
    ["status"],
)


# Children per label set, looked up once: ``.labels()`` validates and locks every call.
_REQUEST_CHILDREN: dict[tuple[str, str], Any] = {}
_LATENCY_CHILDREN: dict[str, Any] = {}


def observe(source: str, outcome: str, seconds: float) -> None:
    counter = _REQUEST_CHILDREN.get((source, outcome))
    if counter is None:
        counter = _REQUEST_CHILDREN.setdefault(
            (source, outcome), REQUESTS.labels(source=source, outcome=outcome)
        )
    histogram = _LATENCY_CHILDREN.get(source)
    if histogram is None:
        histogram = _LATENCY_CHILDREN.setdefault(source, LATENCY.labels(source=source))
    counter.inc()
    histogram.observe(seconds)


_OTHER_CHILDREN: dict[int, Any] = {}


def observe_other(status: int) -> None:
    counter = _OTHER_CHILDREN.get(status)
    if counter is None:
        counter = _OTHER_CHILDREN.setdefault(status, OTHER.labels(status=str(status)))
    counter.inc()


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
