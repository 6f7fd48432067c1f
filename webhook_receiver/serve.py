"""Run the receiver behind its HTTP front: ``python -m webhook_receiver.serve``.

granian (Rust HTTP server, RSGI interface) with webhook_receiver.front.BufferingFront in
front of the Flask app: requests are read on the event loop and only complete requests
reach the WSGI threads (see front.py for the timeouts and limits).

Settings (environment):

- ``HUB_RECEIVER_BIND`` (``127.0.0.1:5000``), ``--bind`` on the command line wins;
- ``HUB_RECEIVER_WORKERS`` (2, at most 4): worker processes;
- ``HUB_RECEIVER_THREADS`` (4): WSGI threads per worker;
- ``HUB_RECEIVER_HEADER_TIMEOUT_MS`` (5000): time to receive a request's headers;
- ``HUB_RECEIVER_BODY_IDLE_SECONDS`` / ``HUB_RECEIVER_BODY_SECONDS`` /
  ``HUB_RECEIVER_MAX_SLOW``: see front.py;
- Prometheus multiprocess mode: ``PROMETHEUS_MULTIPROC_DIR`` is set to
  ``<HUB_DATA_DIR>/prometheus/<bind>`` and emptied before the workers start, so
  ``/metrics`` aggregates every worker.

Measured against gunicorn gthread (the previous front) with ``make bench``: see
BENCHMARKS.md (receiver figures).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import sys
from pathlib import Path

_ROOT = str(Path(__file__).resolve().parents[1])
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)


def metrics_dir(address: str) -> Path:
    from hub.settings import load_settings

    name = re.sub(r"[^A-Za-z0-9._-]+", "_", address).strip("_") or "default"
    return load_settings().data_dir / "prometheus" / name


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="webhook_receiver.serve")
    parser.add_argument("--bind", default=os.environ.get("HUB_RECEIVER_BIND", "127.0.0.1:5000"))
    parser.add_argument(
        "--workers", type=int, default=int(os.environ.get("HUB_RECEIVER_WORKERS", "2"))
    )
    args = parser.parse_args(argv)
    host, _, port = args.bind.rpartition(":")
    directory = metrics_dir(args.bind)
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True, exist_ok=True)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(directory)
    os.environ.setdefault("PYTHONPATH", _ROOT)

    from granian import Granian
    from granian.constants import Interfaces
    from granian.http import HTTP1Settings

    header_ms = int(os.environ.get("HUB_RECEIVER_HEADER_TIMEOUT_MS", "5000"))
    Granian(
        "webhook_receiver.front:app",
        address=host or "127.0.0.1",
        port=int(port),
        interface=Interfaces.RSGI,
        workers=max(1, min(4, args.workers)),
        http="1",
        websockets=False,
        http1_settings=HTTP1Settings(header_read_timeout=header_ms),
        log_access=False,
        working_dir=Path(_ROOT),
    ).serve()


if __name__ == "__main__":
    main()
