"""Times and durations as Meetup reads and prints them."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

GROUP_TIMEZONE = "Europe/Istanbul"

_DURATION_RE = re.compile(
    r"^P(?:(?P<d>\d+)D)?(?:T(?:(?P<h>\d+)H)?(?:(?P<m>\d+)M)?(?:(?P<s>\d+)S)?)?$"
)


def parse_duration(text: str) -> timedelta | None:
    """ISO-8601 duration (PT2H, PT1H30M, P1DT2H) -> timedelta; None when malformed."""
    match = _DURATION_RE.match(text or "")
    if not match or text in ("P", "PT") or text.endswith("T"):
        return None
    parts = {k: int(v) for k, v in match.groupdict().items() if v}
    return timedelta(
        days=parts.get("d", 0),
        hours=parts.get("h", 0),
        minutes=parts.get("m", 0),
        seconds=parts.get("s", 0),
    )


def format_duration(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    out = "P" + (f"{days}D" if days else "")
    clock = (f"{hours}H" if hours else "") + (f"{minutes}M" if minutes else "")
    clock += f"{secs}S" if secs else ""
    return out + ("T" + clock if clock else "") if (days or clock) else "PT0S"


def parse_start(text: object, zone: str = GROUP_TIMEZONE) -> datetime | None:
    """A ZonedDateTime string; a local time without offset is read in the group's zone
    (contract Uncertain #2: whether the live API accepts it is untested)."""
    if not isinstance(text, str) or not text:
        return None
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=ZoneInfo(zone))
    return when


def parse_epoch_or_iso(text: object, zone: str = GROUP_TIMEZONE) -> datetime | None:
    """``rsvpOpenTime``/``rsvpCloseTime``: the schema types them String and describes them
    as milliseconds since the epoch; an ISO date-time is read too."""
    if isinstance(text, str) and text.strip().isdigit():
        return datetime.fromtimestamp(int(text.strip()) / 1000, UTC).astimezone(ZoneInfo(zone))
    return parse_start(text, zone)


def meetup_datetime(when: datetime, zone: str = GROUP_TIMEZONE) -> str:
    """Meetup prints DateTime in the group's zone with seconds and the offset, as the live
    API does (``"dateTime":"2013-02-18T18:30:00-05:00"`` in the recorded get_event reply)."""
    return when.astimezone(ZoneInfo(zone)).isoformat(timespec="seconds")
