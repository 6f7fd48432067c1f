"""The analytics marts read back for people: Markdown for the Dagster UI and text for
``make demo`` (unified members against raw registrations, fill by channel, overlap).

Reads only the ``marts`` schema (never ``pii``), after dbt built it.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.engine import Engine

CHANNELS = ("native", "meetup", "eventbrite", "luma")
BAR_WIDTH = 10


def bar(pct: float | None, width: int = BAR_WIDTH) -> str:
    """A text bar for a percentage (0..100+): ``"██████░░░░"``; empty for None."""
    if pct is None:
        return ""
    filled = max(0, min(width, round(float(pct) / 100 * width)))
    return "█" * filled + "░" * (width - filled)


@dataclass(frozen=True)
class FillRow:
    event_slug: str
    total_capacity: int
    taken: dict[str, int]
    quota: dict[str, int | None]

    @property
    def total_taken(self) -> int:
        return sum(self.taken.values())

    @property
    def pct(self) -> float | None:
        return 100.0 * self.total_taken / self.total_capacity if self.total_capacity else None


def fill_rows(engine: Engine, limit: int = 20) -> list[FillRow]:
    """The latest ``limit`` events' seats taken per channel (marts.rpt_fill_by_channel)."""
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                """
                with latest as (
                    select distinct event_id, starts_at from marts.rpt_fill_by_channel
                    order by starts_at desc limit :limit
                )
                select f.event_slug, f.starts_at, f.total_capacity, f.channel, f.seats_taken,
                       f.allocated_seats
                from marts.rpt_fill_by_channel f join latest l on l.event_id = f.event_id
                order by f.starts_at desc, f.event_slug, f.channel
                """
            ),
            {"limit": limit},
        ).all()
    out: dict[str, FillRow] = {}
    for r in rows:
        row = out.setdefault(r.event_slug, FillRow(r.event_slug, int(r.total_capacity), {}, {}))
        row.taken[r.channel] = int(r.seats_taken)
        row.quota[r.channel] = None if r.allocated_seats is None else int(r.allocated_seats)
    return list(out.values())


def fill_by_channel_markdown(engine: Engine, limit: int = 20) -> str:
    """Seats taken per channel (with the channel's quota, when it has one) and the room's
    fill as a bar: a table the Dagster UI renders."""
    rows = fill_rows(engine, limit)
    if not rows:
        return "no event has registrations yet"
    head = "| event | room | " + " | ".join(CHANNELS) + " | taken | fill |"
    lines = [head, "|" + "---|" * (len(CHANNELS) + 4)]
    for row in rows:
        cells = []
        for c in CHANNELS:
            taken = row.taken.get(c, 0)
            quota = row.quota.get(c)
            cells.append(f"{taken}/{quota}" if quota is not None else str(taken))
        pct = row.pct
        fill = f"{bar(pct)} {pct:.0f}%" if pct is not None else ""
        lines.append(
            f"| {row.event_slug} | {row.total_capacity} | "
            + " | ".join(cells)
            + f" | {row.total_taken} | {fill} |"
        )
    return "\n".join(lines)


@dataclass(frozen=True)
class MembersSummary:
    members: int
    registrations: int
    multi_channel: int
    overlap: list[tuple[str, int, float]]  # (channel combination, members, % of members)

    @property
    def overlap_markdown(self) -> str:
        lines = ["| channels | members | share |", "|---|---|---|"]
        lines += [f"| {c} | {n} | {pct:.1f}% |" for c, n, pct in self.overlap]
        return "\n".join(lines)


def members_summary(engine: Engine) -> MembersSummary:
    """Unified members against raw registrations, and the channel overlap."""
    with engine.connect() as conn:
        members = conn.scalar(text("select count(*) from marts.dim_members")) or 0
        registrations = conn.scalar(text("select count(*) from app.registrations")) or 0
        overlap = conn.execute(
            text(
                "select channel_combination, count_members, pct_of_members "
                "from marts.rpt_channel_overlap order by count_members desc, channel_combination"
            )
        ).all()
        multi = conn.scalar(text("select count(*) from marts.dim_members where count_channels > 1"))
    return MembersSummary(
        members=int(members),
        registrations=int(registrations),
        multi_channel=int(multi or 0),
        overlap=[(r[0], int(r[1]), float(r[2])) for r in overlap],
    )


def demo_lines(engine: Engine) -> list[str]:
    """What ``make demo`` prints after a dbt build."""
    summary = members_summary(engine)
    lines = [
        f"unified members   {summary.members} from {summary.registrations} raw registrations "
        f"({summary.multi_channel} on two or more platforms)",
        "fill by channel (seats taken / channel quota):",
    ]
    for row in fill_rows(engine, limit=10):
        parts = []
        for c in CHANNELS:
            quota = row.quota.get(c)
            taken = row.taken.get(c, 0)
            parts.append(f"{c} {taken}" + (f"/{quota}" if quota is not None else ""))
        pct = row.pct
        lines.append(
            f"  {row.event_slug:<28} {', '.join(parts)}  "
            f"{bar(pct)} {(pct or 0):.0f}% of {row.total_capacity}"
        )
    lines.append("channel overlap:")
    lines += [f"  {c:<32} {n:>6} members ({pct:.1f}%)" for c, n, pct in summary.overlap]
    return lines
