"""Analytics: dbt over 1,000,000 registrations of 200,000 people on four channels.

The generator writes what the ingest would have written (app.events, app.event_channels,
app.registrations with ``email_normalized`` / ``phone_e164`` from hub.members, each
platform's JSON in ``raw``) plus the truth: ``public.bench_truth`` maps every
registration to the person who made it. People write themselves differently on each
platform (case, Gmail dots, ``+tags``, googlemail.com, a work address; phones as
``0532 ...``, ``+90 (532) ...``, ``532...``); Meetup shows neither (member id only);
some households share a phone. So the identity resolution's precision and recall
against the truth are real figures, not 1.0 by construction.

Measured: ``dbt run --full-refresh`` (every model), then ``dbt run`` after 10,000 new
rows (new people, known people on a new platform, late-arriving rows with old dates,
updates of existing rows): target incremental <= 10% of full. ``dbt test`` is timed too.
Sizes are parameters (``run(registrations=..., people=...)``) so a test can smoke it.
"""

from __future__ import annotations

import io
import json
import os
import random
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg

from bench.common import PROJECT_ROOT, Figure, conninfo, log

CHANNELS = ("native", "meetup", "eventbrite", "luma")
CHANNEL_WEIGHTS = (0.2, 0.2, 0.3, 0.3)
FIRST = [
    "Ayşe",
    "Mehmet",
    "Fatma",
    "Ahmet",
    "Zeynep",
    "Mustafa",
    "Elif",
    "Emre",
    "Merve",
    "Can",
    "Deniz",
    "Burak",
    "Selin",
    "Murat",
    "Ece",
    "Kerem",
    "İrem",
    "Oğuz",
    "Şule",
    "Çağrı",
    "Gökhan",
    "Işıl",
    "Ümit",
    "Özge",
    "Barış",
    "Derya",
    "Serkan",
    "Pınar",
    "Hakan",
    "Aslı",
]
LAST = [
    "Yılmaz",
    "Kaya",
    "Demir",
    "Şahin",
    "Çelik",
    "Yıldız",
    "Yıldırım",
    "Öztürk",
    "Aydın",
    "Özdemir",
    "Arslan",
    "Doğan",
    "Kılıç",
    "Aslan",
    "Çetin",
    "Kara",
    "Koç",
    "Kurt",
    "Özkan",
    "Şimşek",
    "Polat",
    "Korkmaz",
    "Erdoğan",
    "Güneş",
    "Aksoy",
]
DOMAINS = (
    ("gmail.com", 0.45),
    ("hotmail.com", 0.15),
    ("outlook.com", 0.1),
    ("yandex.com", 0.05),
    ("icloud.com", 0.05),
    ("firma.com.tr", 0.1),
    ("uni.edu.tr", 0.1),
)
_ASCII = str.maketrans("ıİşŞğĞüÜöÖçÇ", "iIsSgGuUoOcC")
DBT = str(Path(sys.executable).with_name("dbt"))
DBT_DIR = PROJECT_ROOT / "dbt_project"


@dataclass
class Person:
    pid: int
    first: str
    last: str
    email: str
    phone: str | None
    channels: tuple[str, ...]
    work_email: str  # used on some platforms instead of the personal one
    # per channel: how this person writes e-mail and phone there (fixed per account)
    accounts: dict[str, tuple[str | None, str | None]] = field(default_factory=dict)


@dataclass
class World:
    """What the generator wrote: counts, and the next free ids for the increment."""

    events: list[tuple[str, int, bool]]  # (event id, capacity, is free)
    people: list[Person]
    next_seq: int = 0
    registrations: int = 0


def _pick(rng: random.Random, weighted) -> Any:
    roll, acc = rng.random(), 0.0
    for value, weight in weighted:
        acc += weight
        if roll < acc:
            return value
    return weighted[-1][0]


def _email_variant(rng: random.Random, email: str, channel: str) -> str:
    local, domain = email.split("@")
    roll = rng.random()
    if domain == "gmail.com" and roll < 0.2:
        local = local.replace(".", "")
    elif domain == "gmail.com" and roll < 0.3:
        domain = "googlemail.com"
    elif domain in ("gmail.com", "hotmail.com", "outlook.com") and roll < 0.45:
        local = f"{local}+{channel}"
    if rng.random() < 0.3:
        local = local.title()
    if rng.random() < 0.1:
        domain = domain.upper()
    return f"{local}@{domain}"


def _phone_variant(rng: random.Random, e164: str) -> str:
    digits = e164[3:]  # +90 5xx...
    a, b, c, d = digits[:3], digits[3:6], digits[6:8], digits[8:]
    return rng.choice(
        (
            f"0{a} {b} {c} {d}",
            f"+90 ({a}) {b}-{c}{d}",
            f"{a}{b}{c}{d}",
            f"0090 {a} {b} {c} {d}",
            f"+90{a}{b}{c}{d}",
        )
    )


def make_people(n: int, rng: random.Random) -> list[Person]:
    people: list[Person] = []
    for pid in range(n):
        first, last = rng.choice(FIRST), rng.choice(LAST)
        base = f"{first}.{last}".lower().translate(_ASCII).replace("i̇", "i")
        domain = _pick(rng, DOMAINS)
        email = f"{base}{pid}@{domain}"
        phone = None
        if people and rng.random() < 0.02:  # a household: the same phone as the last person
            phone = people[-1].phone
        elif rng.random() < 0.6:
            phone = f"+905{rng.randint(30, 59)}{rng.randint(0, 9999999):07d}"
        k = _pick(rng, ((1, 0.6), (2, 0.3), (3, 0.08), (4, 0.02)))
        chans: list[str] = []
        while len(chans) < k:
            c = _pick(rng, tuple(zip(CHANNELS, CHANNEL_WEIGHTS, strict=True)))
            if c not in chans:
                chans.append(c)
        person = Person(pid, first, last, email, phone, tuple(chans), f"{base}@firma{pid % 97}.com")
        for c in chans:
            if c == "meetup":
                person.accounts[c] = (None, None)  # Meetup exposes neither
                continue
            written = person.work_email if rng.random() < 0.05 else _email_variant(rng, email, c)
            wphone = _phone_variant(rng, phone) if phone and rng.random() < 0.8 else None
            person.accounts[c] = (written, wphone)
        people.append(person)
    return people


class _Normalizer:
    """hub.members' normalization, memoized (people reuse their spellings)."""

    def __init__(self) -> None:
        from hub.members import normalize_email, normalize_phone

        self._email, self._phone = normalize_email, normalize_phone
        self._ce: dict[str, str | None] = {}
        self._cp: dict[str, str | None] = {}

    def email(self, value: str | None) -> str | None:
        if value is None:
            return None
        if value not in self._ce:
            self._ce[value] = self._email(value)
        return self._ce[value]

    def phone(self, value: str | None) -> str | None:
        if value is None:
            return None
        if value not in self._cp:
            self._cp[value] = self._phone(value)
        return self._cp[value]


def _copy_text(value: Any) -> str:
    if value is None:
        return "\\N"
    text = str(value)
    return text.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n")


def make_events(conn: psycopg.Connection, n: int, rng: random.Random) -> list[tuple]:
    events = []
    start = datetime(2025, 1, 1, 19, tzinfo=UTC)
    rows = []
    channels = []
    for i in range(n):
        eid = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        when = start + timedelta(days=int(i * 700 / max(n, 1)), hours=rng.randint(0, 3))
        capacity = rng.choice((50, 100, 200, 500, 1000))
        free = rng.random() < 0.6
        price = 0 if free else rng.choice((15000, 25000, 50000))
        rows.append(
            (eid, f"bench-{i}", f"Etkinlik {i}", when, when + timedelta(hours=2), capacity, price)
        )
        for c in CHANNELS:
            alloc = capacity // 5 if c == "native" else None
            channels.append((eid, c, alloc, None if c == "native" else f"{c}-{i}"))
        events.append((eid, capacity, free))
    with conn.cursor() as cur:
        with cur.copy(
            "copy app.events (id, slug, title, starts_at, ends_at, total_capacity, price_minor,"
            " timezone, currency) from stdin"
        ) as copy:
            for r in rows:
                copy.write_row((*r, "Europe/Istanbul", "TRY"))
        with cur.copy(
            "copy app.event_channels (event_id, platform, allocation, platform_event_id, status)"
            " from stdin"
        ) as copy:
            for r in channels:
                copy.write_row((*r, "published"))
    return events


_STATUSES = (
    ("approved", 0.55),
    ("attended", 0.2),
    ("no_show", 0.08),
    ("cancelled", 0.07),
    ("pending", 0.05),
    ("waitlist", 0.03),
    ("declined", 0.02),
)


def _registration_rows(
    world: World,
    count: int,
    rng: random.Random,
    norm: _Normalizer,
    *,
    people: list[Person],
    late: float = 0.0,
    ingested: datetime | None = None,
) -> Iterator[tuple[str, tuple]]:
    """(truth line, registration row) for ``count`` registrations of ``people``. The hub
    stamps created_at/updated_at when it writes a row: ``ingested``, else a few minutes
    after the registration (the history was ingested as it happened)."""
    base = datetime(2025, 1, 1, tzinfo=UTC)
    for _ in range(count):
        person = rng.choice(people)
        channel = rng.choice((person.accounts and tuple(person.accounts)) or CHANNELS)
        written_email, written_phone = person.accounts[channel]
        eid, _cap, free = rng.choice(world.events)
        world.next_seq += 1
        seq = world.next_seq
        prid = f"{channel[0]}{seq}"
        status = _pick(rng, _STATUSES)
        paid = not free and status in ("approved", "attended", "no_show")
        payment = "paid" if paid else ("unpaid" if not free and status == "pending" else "none")
        amount = 25000 if paid else 0
        days = rng.randint(0, 700)
        if late and rng.random() < late:
            days = rng.randint(0, 30)  # an old registration arriving now
        registered = base + timedelta(days=days, seconds=rng.randint(0, 86400))
        if channel == "meetup":
            raw = {"id": prid, "status": "YES", "member": {"id": f"m{person.pid}"}}
        elif channel == "luma":
            raw = {"api_id": prid, "user_api_id": f"usr-{person.pid}"}
        elif channel == "eventbrite":
            raw = {"id": prid, "order_id": f"o{seq}"}
        else:
            raw = {}
        name = f"{person.first} {person.last}"
        row = (
            eid,
            channel,
            prid,
            name,
            written_email,
            norm.email(written_email),
            written_phone,
            norm.phone(written_phone),
            status,
            payment,
            amount,
            "TRY" if amount else None,
            registered,
            json.dumps(raw),
            ingested or registered + timedelta(seconds=rng.randint(1, 600)),
        )
        yield f"{channel}\t{prid}\t{person.pid}\n", row


def write_registrations(
    conn: psycopg.Connection,
    world: World,
    count: int,
    rng: random.Random,
    norm: _Normalizer,
    *,
    people: list[Person] | None = None,
    late: float = 0.0,
    ingested: datetime | None = None,
) -> None:
    truth = io.StringIO()
    with conn.cursor() as cur:
        with cur.copy(
            "copy app.registrations (event_id, platform, platform_registration_id, full_name,"
            " email, email_normalized, phone, phone_e164, status, payment_status, amount_minor,"
            " currency, registered_at, raw, created_at, updated_at) from stdin"
        ) as copy:
            for line, row in _registration_rows(
                world, count, rng, norm, people=people or world.people, late=late, ingested=ingested
            ):
                truth.write(line)
                copy.write_row((*row, row[-1]))
        truth.seek(0)
        with cur.copy(
            "copy public.bench_truth (platform, platform_registration_id, person_id) from stdin"
        ) as copy:
            while chunk := truth.read(1 << 20):
                copy.write(chunk)
    world.registrations += count


def generate(
    url: str, *, registrations: int, people: int, seed: int = 11, events: int | None = None
) -> World:
    """Write the world into the (migrated, empty) hub database at ``url``."""
    rng = random.Random(seed)
    norm = _Normalizer()
    with psycopg.connect(conninfo(url)) as conn:
        conn.execute(
            "create table if not exists public.bench_truth (platform text, "
            "platform_registration_id text, person_id int, primary key (platform, "
            "platform_registration_id))"
        )
        ev = make_events(conn, events or max(4, registrations // 500), rng)
        world = World(events=ev, people=make_people(people, rng))
        write_registrations(conn, world, registrations, rng, norm)
        conn.execute("analyze app.registrations")
    return world


def increment(url: str, world: World, rows: int, *, seed: int = 12) -> None:
    """``rows`` changes the way a day of ingest brings them: new registrations of known
    people (some on a platform they never used: new merges), of new people, late rows
    with old dates, and updates (status changes) of existing registrations."""
    rng = random.Random(seed)
    norm = _Normalizer()
    new_people = make_people(max(1, rows // 10), random.Random(seed + 1))
    for p in new_people:
        p.pid += len(world.people)
    known = rng.sample(world.people, min(len(world.people), rows // 4))
    for p in known[: len(known) // 4]:  # a known person tries a channel they never used
        extra = next((c for c in ("luma", "eventbrite", "native") if c not in p.accounts), None)
        if extra:
            p.accounts[extra] = (_email_variant(rng, p.email, extra), None)
    updates = rows // 10
    now = datetime.now(UTC)
    with psycopg.connect(conninfo(url)) as conn:
        write_registrations(conn, world, rows // 2, rng, norm, people=known, ingested=now)
        write_registrations(
            conn,
            world,
            rows - rows // 2 - updates,
            rng,
            norm,
            people=new_people,
            late=0.3,
            ingested=now,
        )
        conn.execute(
            "update app.registrations set status = 'attended', updated_at = now() where id in "
            "(select id from app.registrations where status = 'approved' order by id limit %s)",
            (updates,),
        )
    world.people.extend(new_people)


# --------------------------------------------------------------------------- measuring


def _dbt(args: list[str], env: dict[str, str]) -> tuple[float, float, dict]:
    """Run dbt; (wall seconds, dbt's own elapsed seconds, run_results)."""
    started = time.perf_counter()
    cmd = [DBT, *args, "--project-dir", str(DBT_DIR), "--profiles-dir", str(DBT_DIR)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=DBT_DIR)
    wall = time.perf_counter() - started
    results = json.loads((Path(env["DBT_TARGET_PATH"]) / "run_results.json").read_text())
    if proc.returncode != 0:
        failed = [
            r["unique_id"]
            for r in results.get("results", [])
            if r["status"] not in ("success", "pass")
        ]
        tail = "\n".join(proc.stdout.splitlines()[-15:])
        raise RuntimeError(f"dbt {' '.join(args)} failed: {failed}\n{tail}")
    return wall, float(results.get("elapsed_time") or wall), results


def dbt_environment(url: str) -> dict[str, str]:
    from hub.settings import environment, load_settings
    from orchestration.dbt_env import dbt_env

    # a target and log folder of its own: a test or a Dagster run may use the project's
    target = Path(tempfile.mkdtemp(prefix="bench-dbt-"))
    with environment({"HUB_DATABASE_URL": url}):
        return (
            os.environ
            | dbt_env(load_settings())
            | {
                "DBT_TARGET_PATH": str(target / "target"),
                "DBT_LOG_PATH": str(target / "logs"),
            }
        )


def identity_quality(url: str) -> dict[str, float]:
    """Pairwise precision and recall of the merges (pairs of registrations put in one
    member) against the generator's truth (pairs made by one person)."""
    sql = """
        with j as (
            select m.member_id, t.person_id
            from intermediate.int_identity__members m
            join app.registrations r on r.id = m.record_id
            join public.bench_truth t
              on t.platform = r.platform and t.platform_registration_id = r.platform_registration_id
        ),
        pred as (select count(*)::numeric c from j group by member_id),
        truth as (select count(*)::numeric c from j group by person_id),
        both_ as (select count(*)::numeric c from j group by member_id, person_id)
        select
            (select coalesce(sum(c * (c - 1) / 2), 0) from pred),
            (select coalesce(sum(c * (c - 1) / 2), 0) from truth),
            (select coalesce(sum(c * (c - 1) / 2), 0) from both_),
            (select count(distinct member_id) from j),
            (select count(distinct person_id) from j),
            (select count(*) from j)
    """
    with psycopg.connect(conninfo(url)) as conn:
        pred, truth, tp, members, persons, records = conn.execute(sql).fetchone()
    return {
        "precision": float(tp / pred) if pred else 1.0,
        "recall": float(tp / truth) if truth else 1.0,
        "members": int(members),
        "people": int(persons),
        "records": int(records),
    }


def measure(url: str, *, registrations: int, people: int, increment_rows: int) -> dict[str, Any]:
    env = dbt_environment(url)
    t0 = time.perf_counter()
    world = generate(url, registrations=registrations, people=people)
    gen_s = time.perf_counter() - t0
    log(f"generated {registrations:,} registrations of {people:,} people in {gen_s:.0f} s")
    full_wall, full_s, _ = _dbt(["run", "--full-refresh"], env)
    log(f"full build {full_s:.1f} s (wall {full_wall:.1f} s)")
    test_wall, test_s, test_results = _dbt(["test"], env)
    log(f"dbt test {test_s:.1f} s")
    quality = identity_quality(url)
    increment(url, world, increment_rows)
    inc_wall, inc_s, inc_results = _dbt(["run"], env)
    log(f"incremental after {increment_rows:,} rows {inc_s:.1f} s (wall {inc_wall:.1f} s)")
    quality_after = identity_quality(url)
    slowest = sorted(inc_results["results"], key=lambda r: -r["execution_time"])[:5]
    return {
        "registrations": registrations,
        "people": people,
        "increment_rows": increment_rows,
        "generate_s": gen_s,
        "full_s": full_s,
        "full_wall_s": full_wall,
        "test_s": test_s,
        "test_wall_s": test_wall,
        "tests": len(test_results["results"]),
        "incremental_s": inc_s,
        "incremental_wall_s": inc_wall,
        "ratio": inc_s / full_s if full_s else float("nan"),
        "quality": quality,
        "quality_after": quality_after,
        "slowest_incremental": [
            (r["unique_id"].split(".")[-1], round(r["execution_time"], 2)) for r in slowest
        ],
    }


def run(
    registrations: int = 1_000_000, people: int = 200_000, increment_rows: int = 10_000
) -> list[Figure]:
    from hub.embedded import resolve_database_url
    from hub.settings import load_settings

    url = resolve_database_url(load_settings())
    m = measure(url, registrations=registrations, people=people, increment_rows=increment_rows)
    q, qa = m["quality"], m["quality_after"]
    passed = m["ratio"] <= 0.10
    lines = [
        f"Generated {m['registrations']:,} registrations of {m['people']:,} people on four "
        f"channels in {m['generate_s']:.0f} s (bench/analytics.py; seed fixed). Times are "
        "dbt's own elapsed time (run_results.json); wall time with dbt's start-up in brackets.",
        "",
        "| step | seconds |",
        "|---|---|",
        "| full build (`dbt run --full-refresh`, every model) "
        f"| {m['full_s']:.1f} ({m['full_wall_s']:.1f}) |",
        f"| `dbt test` ({m['tests']} tests) | {m['test_s']:.1f} ({m['test_wall_s']:.1f}) |",
        f"| incremental `dbt run` after {m['increment_rows']:,} new or changed rows "
        f"| {m['incremental_s']:.1f} ({m['incremental_wall_s']:.1f}) |",
        f"| incremental / full | {100 * m['ratio']:.1f}% |",
        "",
        "Slowest models of the incremental run: "
        + ", ".join(f"`{name}` {secs} s" for name, secs in m["slowest_incremental"]),
        "",
        "Identity resolution against the generator's truth (pairs of registrations placed "
        "in one member vs pairs made by one person):",
        "",
        "| | precision | recall | members | people | registrations |",
        "|---|---|---|---|---|---|",
        f"| after the full build | {q['precision']:.4f} | {q['recall']:.4f} | {q['members']:,} "
        f"| {q['people']:,} | {q['records']:,} |",
        f"| after the incremental run | {qa['precision']:.4f} | {qa['recall']:.4f} "
        f"| {qa['members']:,} | {qa['people']:,} | {qa['records']:,} |",
        "",
        "Recall is below 1 by design of the data: Meetup shows no e-mail or phone (its "
        "member id only joins Meetup RSVPs), and 5% of accounts use a work address with no "
        "phone in common. Precision is below 1 because 2% of people share a household phone.",
    ]
    summary = (
        f"full build {m['full_s']:.0f} s, incremental after {m['increment_rows']:,} rows "
        f"{m['incremental_s']:.1f} s ({100 * m['ratio']:.1f}% of full); identity precision "
        f"{q['precision']:.3f}, recall {q['recall']:.3f}"
    )
    return [
        Figure(
            "analytics-dbt",
            "Analytics: dbt build over 1,000,000 registrations, incremental and identity",
            "incremental run after 10,000 rows <= 10% of the full build",
            passed,
            summary,
            lines,
            data=m,
        )
    ]


if __name__ == "__main__":  # pragma: no cover - `python -m bench.analytics [regs people]`
    from bench.common import bench_database

    regs = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
    ppl = int(sys.argv[2]) if len(sys.argv) > 2 else regs // 5
    with bench_database():
        for fig in run(regs, ppl, max(100, regs // 100)):
            print(fig.summary)
            print("\n".join(fig.lines))
