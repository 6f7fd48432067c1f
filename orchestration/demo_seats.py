"""Demo step: the seat ledger sells the last native seats and every platform stops.

People buy through the hub's own landing page over HTTP exactly as a browser would:
``GET /e/<slug>`` (the form and its per-page Idempotency-Key), ``POST /checkout``, the
Stripe emulator's hosted page (Pay), back to the success page and the order page. When
one seat is left, Eventbrite sells a ticket in the same second as the native page sells
the last seat (the relay is paused for that second, as a platform's lag would be): the
pull that brings Eventbrite's order finds the room full and records it as overbooked,
handled by the event's policy. The relay (``hub serve outbox``) closes every platform;
the platforms' own APIs are read back to show it.
"""

from __future__ import annotations

import os
import re
import signal
import time
from collections import Counter
from collections.abc import Callable
from contextlib import suppress
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import select, text

from hub import processes
from hub.db import event_channels, registrations
from hub.seat_counts import seat_counts
from hub.settings import Settings
from hub.vault import Vault
from integrations.sandbox.probes import platform_state

PLATFORMS = ("meetup", "eventbrite", "luma")
_HIDDEN = re.compile(r'<input type="hidden" name="(\w+)" value="([^"]*)">')
_SEATS_LEFT = re.compile(r'"availability":\s*"https?://schema.org/(\w+)"')


def _ledger_rows(engine: Any, event_id: Any) -> tuple[list[list[Any]], Any]:
    with engine.connect() as conn:
        counts = seat_counts(conn, event_id)
    rows = [
        [ch, c.quota or "-", c.held, c.confirmed, c.overbooked, counts.available(ch)]
        for ch, c in counts.channels.items()
    ]
    return rows, counts


def _print_ledger(out: Any, engine: Any, event_id: Any, title: str) -> Any:
    rows, counts = _ledger_rows(engine, event_id)
    out.line(
        f"{title}: {counts.total} seats, shared pool {counts.shared}, taken {counts.taken}, "
        f"free {counts.free}"
    )
    out.table(["channel", "quota", "held", "confirmed", "overbooked", "may still take"], rows)
    return counts


def _buy(client: httpx.Client, slug: str, n: int) -> tuple[int, str | None]:
    """One person through the page flow; (HTTP status of the checkout, order number)."""
    page = client.get(f"/e/{slug}", params={"ref": "demo"}, headers={"Accept-Language": "tr"})
    page.raise_for_status()
    form = dict(_HIDDEN.findall(page.text))
    if "idempotency_key" not in form:  # sold out: the page shows no form
        return 409, None
    form |= {
        "full_name": f"Demo Katılımcı {n}",
        "email": f"demo.attendee.{n}@example.org",
        "phone": f"0532 {n // 10000 % 1000:03d} {n // 100 % 100:02d} {n % 100:02d}",
        "consent": "on",
    }
    answer = client.post("/checkout", data=form)
    if answer.status_code != 303:
        return answer.status_code, None
    pay_url = answer.headers["location"]  # the Stripe emulator's hosted page
    back = httpx.post(
        pay_url, data={"action": "pay", "email": form["email"], "name": form["full_name"]}
    )
    if back.status_code != 303:
        return back.status_code, None
    success = client.get(back.headers["location"], follow_redirects=True)
    order_no = success.url.path.rsplit("/", 1)[-1] if "/orders/" in success.url.path else None
    return (201 if order_no else success.status_code), order_no


def _relay_pid(settings: Settings) -> int | None:
    state = processes.status(settings, "outbox")
    return state.pid if state.running else None


def run_step(
    out: Any,
    settings: Settings,
    engine: Any,
    defs: Any,
    instance: Any,
    event: Any,
    sandbox_url: Callable[[str], str],
    run_job: Callable[..., Any],
) -> None:
    out.step("Seat ledger: sell the last native seats through the landing page (HTTP)")
    _print_ledger(out, engine, event.id, "before the sale")
    base = settings.public_base_url.rstrip("/")
    with engine.connect() as conn:
        ids = dict(
            conn.execute(
                select(event_channels.c.platform, event_channels.c.platform_event_id).where(
                    event_channels.c.event_id == event.id,
                    event_channels.c.platform.in_(PLATFORMS),
                    event_channels.c.platform_event_id.isnot(None),
                )
            ).all()
        )
    sold, last_order, last_confirmed_at = 0, None, time.perf_counter()
    refused: Counter[int] = Counter()
    durations: list[float] = []
    relay = _relay_pid(settings)
    paused = False
    eventbrite_late: list[str] = []
    with httpx.Client(base_url=base, timeout=30) as client:
        n = 0
        while True:
            n += 1
            with engine.connect() as conn:
                left = seat_counts(conn, event.id).available("native")
            if left == 1 and not paused and relay:
                # The last seat: pause the relay for this second, so Eventbrite still
                # believes it has a seat, and let both sell it at once.
                os.kill(relay, signal.SIGSTOP)
                paused = True
            began = time.perf_counter()
            status, order_no = _buy(client, event.slug, n)
            if status == 429:  # the per-client limit: wait as told, then the same person
                refused[429] += 1
                n -= 1
                time.sleep(5)
                continue
            durations.append(time.perf_counter() - began)
            if status == 201:
                sold += 1
                last_order = order_no
                last_confirmed_at = time.perf_counter()
            else:
                refused[status] += 1
            if paused and not eventbrite_late:
                late = httpx.post(
                    f"{sandbox_url('eventbrite')}/_sandbox/simulate/registrations",
                    json={"event_id": ids["eventbrite"], "count": 1, "seed": 7},
                    timeout=30,
                )
                eventbrite_late = late.json().get("ids", []) or ["none"]
                os.kill(relay, signal.SIGCONT)
            if status in (409, 410) or n > 300:
                break
    if paused and not eventbrite_late and relay:
        with suppress(ProcessLookupError):
            os.kill(relay, signal.SIGCONT)
    durations.sort()
    p50 = durations[len(durations) // 2] * 1000 if durations else 0
    out.line(
        f"{sold} people bought a seat on /e/{event.slug} (page -> POST /checkout -> Stripe "
        f"hosted page -> success page -> order page), {p50:.0f} ms per purchase (p50); "
        f"then the page said sold out: {dict(refused)}"
    )
    if last_order:
        order = httpx.get(f"{base}/orders/{last_order}", headers={"Accept": "application/json"})
        steps = [e.get("event") for e in order.json().get("timeline", [])]
        out.line(f"last order {last_order[:10]}…: {' -> '.join(steps)}")
    page = httpx.get(f"{base}/e/{event.slug}")
    found = _SEATS_LEFT.search(page.text)
    out.line(f"landing page now: schema.org availability {found.group(1) if found else '?'}")
    if eventbrite_late and eventbrite_late != ["none"]:
        out.line(
            f"in the same second Eventbrite sold order {eventbrite_late[0]} (it had not heard yet)"
        )

    out.step("Every platform stops selling (outbox relay, read back through their APIs)")
    vault = Vault(settings=settings)
    urls = {p: sandbox_url(p) for p in PLATFORMS}
    state_dir = Path(settings.data_dir) / "sandbox"
    deadline = time.perf_counter() + 30
    states: dict[str, Any] = {}
    while time.perf_counter() < deadline:
        states = platform_state(urls, vault, ids, state_dir)
        if all(s.closed for s in states.values()):
            break
        time.sleep(0.1)
    waited = time.perf_counter() - last_confirmed_at if sold else 0.0
    out.table(
        ["platform", "capacity on the platform", "sold there", "selling?"],
        [
            [p, s.capacity if s.capacity is not None else "no limit", s.taken, "closed"]
            if s.closed
            else [p, s.capacity, s.taken, "STILL SELLING"]
            for p, s in states.items()
        ],
    )
    out.line(f"all platforms closed {waited:.1f} s after the last native seat")

    out.step("A late platform registration arrives (Dagster pull_registrations_job)")
    run_job(defs, instance, "pull_registrations_job", event.slug)
    with engine.connect() as conn:
        late_rows = conn.execute(
            text(
                """
                select h.channel, h.hold_key, r.status
                  from app.seat_holds h
                  left join app.registrations r on r.id = h.registration_id
                 where h.event_id = :eid and h.status = 'overbooked'
                 order by h.created_at
                """
            ),
            {"eid": event.id},
        ).all()
        waitlisted = conn.scalar(
            select(text("count(*)"))
            .select_from(registrations)
            .where(registrations.c.event_id == event.id, registrations.c.status == "waitlist")
        )
    out.line(
        f"{len(late_rows)} platform registration(s) found the room full: recorded as "
        f"overbooked (policy '{event.overbooking_policy}'; {waitlisted} moved to the "
        "waitlist), listed by the Dagster asset seat_ledger"
    )
    for channel, key, status in late_rows[-3:]:
        out.line(f"  {channel} {key.split(':', 1)[-1]}: registration {status}")
    _print_ledger(out, engine, event.id, "ledger after the sale (hub capacity show)")
