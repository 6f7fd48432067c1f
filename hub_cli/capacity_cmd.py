"""``hub capacity show EVENT [--json]`` and ``hub capacity rebuild [EVENT]``.

``show`` prints the ledger per channel from PostgreSQL's truth (hub.seat_counts) and
says whether the Redis gate agrees; ``rebuild`` rewrites the gate from PostgreSQL under
the event's exclusive lock. EVENT is a slug or an id. Wired into hub_cli.main by
``register(subparsers)``.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any


def _ledger():
    from hub.capacity import SeatLedger
    from hub.settings import load_settings

    return SeatLedger.from_settings(load_settings())


def ledger_report(ledger: Any, event_ref: str) -> dict[str, Any]:
    """The ledger of one event as a JSON-ready dict (PostgreSQL's counts, the gate's
    agreement)."""
    from sqlalchemy import text

    from hub.capacity import LedgerUnavailable, resolve_event
    from hub.seat_counts import seat_counts

    with ledger.engine.connect() as conn:
        event_id = resolve_event(conn, event_ref)
        slug = conn.scalar(
            text("select slug from app.events where id = :id"),
            {"id": event_id},
        )
        counts = seat_counts(conn, event_id)
        try:
            problems = ledger.compare(conn, event_id)
            gate = "agrees" if not problems else "; ".join(problems)
        except LedgerUnavailable as exc:
            gate = f"unavailable ({exc})"
    channels = {}
    for name, c in counts.channels.items():
        channels[name] = {
            "quota": c.quota,
            "held": c.held,
            "confirmed": c.confirmed,
            "overbooked": c.overbooked,
            "quota_used": c.quota_used,
            "shared_used": c.shared_used,
            "free": counts.available(name),
        }
    return {
        "event_id": str(event_id),
        "slug": slug,
        "total": counts.total,
        "shared": counts.shared,
        "shared_free": counts.shared_free,
        "taken": counts.taken,
        "free": counts.free,
        "channels": channels,
        "redis": gate,
    }


def format_report(report: dict[str, Any]) -> str:
    lines = [
        f"event {report['slug']} ({report['event_id']})",
        f"  total {report['total']}  shared {report['shared']} "
        f"(free {report['shared_free']})  taken {report['taken']}  free {report['free']}",
        f"  {'channel':<11} {'quota':>6} {'held':>6} {'confirmed':>10} {'overbooked':>11} "
        f"{'free':>6}",
    ]
    for name, c in report["channels"].items():
        lines.append(
            f"  {name:<11} {c['quota']:>6} {c['held']:>6} {c['confirmed']:>10} "
            f"{c['overbooked']:>11} {c['free']:>6}"
        )
    lines.append(f"  redis gate: {report['redis']}")
    return "\n".join(lines)


def cmd_capacity_show(args: argparse.Namespace) -> None:
    report = ledger_report(_ledger(), args.event)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(format_report(report))


def cmd_capacity_rebuild(args: argparse.Namespace) -> None:
    from hub.capacity import resolve_event

    ledger = _ledger()
    event_id = None
    if args.event:
        with ledger.engine.connect() as conn:
            event_id = resolve_event(conn, args.event)
    rebuilt = ledger.rebuild(event_id)
    print(f"rebuilt {len(rebuilt)} event{'s' if len(rebuilt) != 1 else ''} from PostgreSQL")


def register(subparsers: Any) -> None:
    """Add ``capacity show|rebuild`` to the ``hub`` parser's subcommands."""
    cap = subparsers.add_parser("capacity", help="the seat ledger").add_subparsers(
        dest="sub", required=True
    )
    p = cap.add_parser("show", help="the ledger per channel: quota, held, confirmed, free")
    p.add_argument("event", help="slug or id")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_capacity_show)
    p = cap.add_parser("rebuild", help="rewrite the Redis gate from PostgreSQL")
    p.add_argument("event", nargs="?", help="slug or id (default: every event)")
    p.set_defaults(func=cmd_capacity_rebuild)


def main(argv: list[str] | None = None) -> None:
    """``capacity ...`` on its own (tests; hub_cli.main is the real entry point)."""
    parser = argparse.ArgumentParser(prog="hub")
    sub = parser.add_subparsers(dest="command", required=True)
    register(sub)
    args = parser.parse_args(["capacity", *(argv if argv is not None else sys.argv[1:])])
    try:
        args.func(args)
    except Exception as exc:
        from hub_cli.main import _describe

        print(f"error: {_describe(exc)}", file=sys.stderr)
        raise SystemExit(1) from None
