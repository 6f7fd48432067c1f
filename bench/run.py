"""`make bench` / `python -m bench.run [syndication|pull|receiver ...]`.

Runs the chosen benchmarks (all by default), each in a database of its own created on
the hub's PostgreSQL (embedded unless HUB_DATABASE_URL is set) and dropped afterwards,
and rewrites BENCHMARKS.md with the machine, the date and one section per figure. A
benchmark not run this time keeps its previous section (each carries its date).
"""

from __future__ import annotations

import argparse
import importlib
import re
import sys
import time
import traceback
from collections.abc import Callable

from bench.common import PROJECT_ROOT, Figure, bench_database, log, machine_info

BENCHMARKS: dict[str, tuple[str, tuple[str, ...]]] = {
    # name -> (module, keys of the figures it produces, in order)
    "syndication": ("bench.syndication", ("syndication-latency", "syndication-rate-limit")),
    "pull": ("bench.pull", ("pull-registrations",)),
    "receiver": ("bench.receiver", ("receiver-ingest",)),
    "slow-clients": ("bench.slow_clients", ("receiver-slow-clients",)),
    "frozen-db": ("bench.frozen_db", ("receiver-frozen-db",)),
    "emails": ("bench.emails", ("payment-emails",)),
    "seats": (
        "bench.seats",
        ("seats-rush", "seats-rush-redis-restart", "seats-hold-throughput"),
    ),
    "mirror": ("bench.mirror", ("mirror-sold-out",)),
    "analytics": ("bench.analytics", ("analytics-dbt",)),
}
REPORT = PROJECT_ROOT / "BENCHMARKS.md"
_SECTION = re.compile(r"<!-- figure:(?P<key>[\w-]+) -->\n.*?<!-- /figure:(?P=key) -->\n", re.S)


def _run_one(name: str) -> tuple[list[Figure], float]:
    module, keys = BENCHMARKS[name]
    started = time.perf_counter()
    log(f"== {name}")
    try:
        runner: Callable[[], list[Figure]] = importlib.import_module(module).run
        with bench_database():  # a fresh database each: sandboxes restart their ids
            figures = runner()
    except Exception as exc:
        traceback.print_exc()
        message = f"{type(exc).__name__}: {exc}".replace("\n", " ")[:500]
        figures = [
            Figure(key, key, "-", False, f"benchmark crashed: {message}", [f"`{message}`"])
            for key in keys
        ]
    seconds = time.perf_counter() - started
    log(f"== {name} took {seconds:.0f} s")
    return figures, seconds


def _render_section(figure: Figure, date: str, seconds: float) -> str:
    body = "\n".join(figure.lines)
    return (
        f"<!-- figure:{figure.key} -->\n"
        f"## {figure.title}\n\n"
        f"**{figure.verdict}**: {figure.summary}\n\n"
        f"Target: {figure.target}. Measured {date} (benchmark run took {seconds:.0f} s).\n\n"
        f"{body}\n\n"
        f"<!-- /figure:{figure.key} -->\n"
    )


def _previous_sections() -> dict[str, str]:
    if not REPORT.exists():
        return {}
    return {m.group("key"): m.group(0) for m in _SECTION.finditer(REPORT.read_text())}


def _render_report(machine: dict[str, str], sections: dict[str, str], total_s: float) -> str:
    keys = [key for _, figure_keys in BENCHMARKS.values() for key in figure_keys]
    verdicts = []
    for key in keys:
        if key in sections:
            match = re.search(r"\*\*(PASS|FAIL)\*\*: (.*)", sections[key])
            title = re.search(r"## (.*)", sections[key])
            if match and title:
                verdicts.append(f"| {title.group(1)} | **{match.group(1)}** | {match.group(2)} |")
    head = [
        "# Benchmarks",
        "",
        "Written by `make bench` (`.venv/bin/python -m bench.run`); do not edit by hand.",
        "",
        f"- Date: {machine['date']}",
        f"- Machine: `{machine['uname']}`, {machine['cpu']}, {machine['cores']} cores, "
        f"{machine['memory']} memory",
        f"- Python {machine['python']}; PostgreSQL {machine['postgresql']}; "
        f"Redis {machine['redis']}",
        f"- This run: {total_s:.0f} s in all",
        "",
        "## How to reproduce",
        "",
        "```sh",
        "make bench                                  # every figure (about 3 minutes, 2 cores)",
        ".venv/bin/python -m bench.run syndication   # or: pull, receiver",
        "HUB_DATABASE_URL=postgresql://postgres@127.0.0.1:5432/test \\",
        "HUB_REDIS_URL=redis://127.0.0.1:6379/0 make bench   # external servers",
        "```",
        "",
        "Each benchmark creates its own database on the hub's PostgreSQL server (embedded "
        "unless `HUB_DATABASE_URL` is set) and drops it afterwards, keeps the sandboxes' state "
        "in a temporary directory, and binds every process (sandboxes, receiver) to a free "
        "loopback port, so the demo's data and ports are never touched. Every sandbox and "
        "the receiver run as separate processes, so their CPU does not share the measuring "
        "process's GIL (they do share the machine's cores).",
        "",
        "| figure | verdict | result |",
        "|---|---|---|",
        *verdicts,
        "",
    ]
    return "\n".join(head) + "\n" + "\n".join(sections[k] for k in keys if k in sections)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench.run", description=__doc__)
    parser.add_argument(
        "names", nargs="*", metavar="NAME", help=f"any of {', '.join(BENCHMARKS)} (default: all)"
    )
    args = parser.parse_args(argv)
    unknown = sorted(set(args.names) - set(BENCHMARKS))
    if unknown:
        parser.error(f"unknown benchmark {', '.join(unknown)}; choose from {', '.join(BENCHMARKS)}")
    names = args.names or list(BENCHMARKS)
    started = time.perf_counter()
    sections = _previous_sections()
    crashed = False
    machine = machine_info()  # before bench_database() re-points HUB_DATABASE_URL
    for name in names:
        figures, seconds = _run_one(name)
        crashed |= any(f.summary.startswith("benchmark crashed") for f in figures)
        for figure in figures:
            sections[figure.key] = _render_section(figure, machine["date"], seconds)
            log(f"{figure.verdict} {figure.title}: {figure.summary}")
    total = time.perf_counter() - started
    REPORT.write_text(_render_report(machine, sections, total))
    log(f"wrote {REPORT.relative_to(PROJECT_ROOT)} ({total:.0f} s)")
    return 1 if crashed else 0


if __name__ == "__main__":
    sys.exit(main())
