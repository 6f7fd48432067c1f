"""Each platform's selling state read back through its own sandbox API, independently of
the hub's adapters: what the capacity mirror's tests, its benchmark and ``make demo``
check the platforms against (did Eventbrite stop selling, is Meetup pinned, is Luma
full?).
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

ADMISSION = "General admission"  # the Eventbrite class the hub sells (its adapter's name)


# --------------------------------------------------------------------------- probes


@dataclass(frozen=True)
class PlatformState:
    """What the platform itself says about selling: its capacity, what it counts as
    holding a seat, and whether a newcomer could still get one."""

    platform: str
    capacity: int | None  # None: no limit
    taken: int
    closed: bool


def _eventbrite(base: str, vault: Any, pid: str, client: httpx.Client) -> PlatformState:
    token = (vault.get("eventbrite") or {}).get("token", "")
    body = client.get(
        f"{base}/v3/events/{pid}/ticket_classes/", headers={"Authorization": f"Bearer {token}"}
    )
    body.raise_for_status()
    classes = body.json().get("ticket_classes", [])
    admission = next(tc for tc in classes if tc.get("name") == ADMISSION)
    hidden = bool(admission.get("hidden"))
    capacity = 0 if hidden else int(admission.get("quantity_total") or admission["capacity"])
    sold = int(admission.get("quantity_sold") or 0)
    return PlatformState("eventbrite", capacity, sold, hidden or sold >= capacity)


def _luma_capacity(state_dir: Path, pid: str) -> int | None:
    """``max_capacity`` from the Luma emulator's own store (read-only): Luma's API has no
    read of it (``/v1/events/get`` answers ``waitlist_status`` only, as the real one)."""
    uri = f"file:{state_dir / 'luma.sqlite'}?mode=ro"
    with contextlib.closing(sqlite3.connect(uri, uri=True, timeout=5)) as conn:
        row = conn.execute(
            "select data from docs where kind = 'event' and id = ?", (pid,)
        ).fetchone()
    if row is None:
        raise LookupError(f"luma event {pid} not in the emulator's store")
    value = json.loads(row[0]).get("max_capacity")
    return None if value is None else int(value)


def _luma(base: str, vault: Any, pid: str, client: httpx.Client, state_dir: Path) -> PlatformState:
    headers = {"x-luma-api-key": (vault.get("luma") or {}).get("api_key", "")}
    taken = 0
    for status in ("approved", "pending_approval"):
        cursor = None
        while True:
            params = {"event_id": pid, "approval_status": status, "pagination_limit": 100}
            if cursor:
                params["pagination_cursor"] = cursor
            page = client.get(f"{base}/v1/events/guests/list", params=params, headers=headers)
            page.raise_for_status()
            data = page.json()
            taken += len(data.get("entries", []))
            cursor = data.get("next_cursor")
            if not data.get("has_more") or not cursor:
                break
    capacity = _luma_capacity(state_dir, pid)
    closed = capacity is not None and taken >= capacity
    return PlatformState("luma", capacity, taken, closed)


_MEETUP_QUERY = """
query MirrorProbe($id: ID!) {
  event(id: $id) { id maxTickets rsvpSettings { rsvpsClosed } rsvps { yesCount } }
}
"""


def _meetup(base: str, vault: Any, pid: str, client: httpx.Client) -> PlatformState:
    token = (vault.get("meetup") or {}).get("access_token", "")
    response = client.post(
        f"{base}/gql-ext",
        json={"query": _MEETUP_QUERY, "variables": {"id": pid}},
        headers={"Authorization": f"Bearer {token}"},
    )
    response.raise_for_status()
    event = (response.json().get("data") or {}).get("event") or {}
    limit = int(event.get("maxTickets") or 0) or None
    yes = int(((event.get("rsvps") or {}).get("yesCount")) or 0)
    closed = bool((event.get("rsvpSettings") or {}).get("rsvpsClosed")) or (
        limit is not None and yes >= limit
    )
    return PlatformState("meetup", limit, yes, closed)


_PROBES: dict[str, Callable[..., PlatformState]] = {"eventbrite": _eventbrite, "meetup": _meetup}


def platform_state(
    urls: Mapping[str, str],
    vault: Any,
    platform_ids: Mapping[str, str],
    state_dir: Path,
    client: httpx.Client | None = None,
) -> dict[str, PlatformState]:
    """Each platform's selling state read through its own API (sandbox URLs in ``urls``,
    credentials from the vault), independently of the adapters; Luma's capacity, which
    its API does not show, from its emulator's store in ``state_dir``."""
    own = client is None
    client = client or httpx.Client(timeout=10)
    try:
        found = {}
        for platform, pid in platform_ids.items():
            base = urls[platform].rstrip("/")
            if platform == "luma":
                found[platform] = _luma(base, vault, pid, client, state_dir)
            else:
                found[platform] = _PROBES[platform](base, vault, pid, client)
        return found
    finally:
        if own:
            client.close()
