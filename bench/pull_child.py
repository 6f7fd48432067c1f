"""The measured process of the pull benchmark: pull every platform's registrations of one
event (full pull, from the first page) and print one JSON line with the counts, times and
this process's peak RSS. Started by bench.pull with the bench database in its env.

``python -m bench.pull_child EVENT_ID [--page-size N]``
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from bench.common import PLATFORMS, adapters_for, engine
from hub.events import get_event
from orchestration.syndication.puller import pull_registrations


def _rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


async def _pull_all(event_id: str, page_size: int) -> dict[str, Any]:
    db = engine()
    with db.connect() as conn:
        event = get_event(conn, event_id)
    result: dict[str, Any] = {"platforms": {}}
    async with httpx.AsyncClient(timeout=60) as client:
        adapters = adapters_for(PLATFORMS, client)
        result["rss_before_mb"] = _rss_mb()
        result["peak_before_mb"] = _peak_rss_mb()  # imports and start-up alone
        started = time.perf_counter()
        for platform in PLATFORMS:  # one after another, as the per-platform assets run
            outcome = await pull_registrations(
                db, event, platform, adapters[platform], actor="bench", page_size=page_size,
                full=True,
            )  # fmt: skip
            result["platforms"][platform] = {
                "items": outcome.items,
                "pages": outcome.pages,
                "inserted": outcome.inserted,
                "updated": outcome.updated,
                "seconds": outcome.seconds,
                "rss_after_mb": _rss_mb(),
            }
        result["seconds"] = time.perf_counter() - started
    result["rss_end_mb"] = _rss_mb()
    result["peak_rss_mb"] = _peak_rss_mb()
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench.pull_child")
    parser.add_argument("event_id")
    parser.add_argument("--page-size", type=int, default=100)
    args = parser.parse_args(argv)
    result = asyncio.run(_pull_all(args.event_id, args.page_size))
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
