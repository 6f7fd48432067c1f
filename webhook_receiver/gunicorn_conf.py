"""gunicorn settings of the receiver, as the previous HTTP front.

The receiver ships behind granian and webhook_receiver.front (``python -m
webhook_receiver.serve``): gunicorn's gthread workers read request bodies in their
threads, so 40 slow senders starved it (issue 8). This file stays for ``make bench``,
which measures both fronts side by side (BENCHMARKS.md), and for whoever prefers
gunicorn behind a buffering proxy.

``gunicorn -c webhook_receiver/gunicorn_conf.py "webhook_receiver.app:create_app()"``

- ``HUB_RECEIVER_BIND`` (default ``127.0.0.1:5000``), ``HUB_RECEIVER_WORKERS`` (2-4,
  default 2), ``HUB_RECEIVER_THREADS`` (default 4): gthread workers.
- Prometheus multiprocess mode: ``PROMETHEUS_MULTIPROC_DIR`` is set here, before any
  worker imports prometheus_client, to ``<HUB_DATA_DIR>/prometheus/<bind>`` (one
  directory per bound address, so two receivers on one data dir do not mix), emptied
  when the master starts (``on_starting``, inherited by the forked workers);
  ``child_exit`` marks dead workers.
- JSON access and error logs (webhook_receiver.logs.GunicornJsonLogger), access lines
  to stdout: path with URL tokens masked, no query string.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
from pathlib import Path

# gunicorn executes this file by path: make the project importable from it.
_ROOT = str(Path(__file__).resolve().parents[1])
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

from hub.settings import load_settings  # noqa: E402

bind = [os.environ.get("HUB_RECEIVER_BIND", "127.0.0.1:5000")]
# Defaults measured with bench.receiver (8 keep-alive clients, Stripe webhooks, 10 s runs,
# 2-core machine shared with PostgreSQL and the load generator, after the hot-path work):
# gthread 2x4 1,224 / 1,142 req/s; sync 2 workers 1,260 / 1,067; gthread 3x4 1,113 / 940;
# sync 3 workers 1,201 / 1,058; gthread 2x8 842, sync 4 796 (noisier run). Differences
# are within run-to-run noise, and the machine is CPU-bound, so more processes only add
# contention. gthread 2x4 stays: as fast as any, and it keeps connections alive (sync
# workers close each one and a slow sender holds a whole worker).
workers = max(2, min(4, int(os.environ.get("HUB_RECEIVER_WORKERS", "2"))))
worker_class = "gthread"
threads = max(1, int(os.environ.get("HUB_RECEIVER_THREADS", "4")))
timeout = 30
graceful_timeout = 20
keepalive = 5
preload_app = False  # metrics values must be created in the workers, after fork
limit_request_line = 8190
limit_request_fields = 100

# The app writes one JSON line per request (method, path with secrets masked, status,
# source, outcome, duration, raw id): gunicorn's own access line would say it twice.
# HUB_RECEIVER_ACCESS_LOG=- turns it back on.
accesslog = os.environ.get("HUB_RECEIVER_ACCESS_LOG") or None
errorlog = "-"
loglevel = os.environ.get("HUB_RECEIVER_LOG_LEVEL", "info")
logger_class = "webhook_receiver.logs.GunicornJsonLogger"


def _metrics_dir(address: str) -> Path:
    data_dir = load_settings().data_dir
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", address).strip("_") or "default"
    return data_dir / "prometheus" / name


def on_starting(server) -> None:
    """Once per master start (not on HUP), before any worker forks: pick the metrics
    directory from the address really bound (``--bind`` on the command line wins over
    HUB_RECEIVER_BIND), empty it, and export it to the workers."""
    directory = _metrics_dir(str(server.cfg.bind[0]))
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True, exist_ok=True)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(directory)


def child_exit(server, worker) -> None:
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)
