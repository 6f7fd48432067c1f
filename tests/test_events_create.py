"""createEvent: valid files are stored with their channels; invalid ones are refused with
a message naming the field, and nothing is written."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import yaml
from sqlalchemy import func, select

from hub.db import audit_log, event_channels, events, transaction
from hub.events import EventInputError, create_event, load_spec_file, update_event

ROOT = Path(__file__).resolve().parents[1]
VALID = yaml.safe_load((ROOT / "examples" / "event.yaml").read_text())


def _write(tmp_path: Path, data: dict) -> Path:
    path = tmp_path / "event.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True))
    return path


def _counts(engine) -> tuple[int, int]:
    with engine.connect() as conn:
        return (
            conn.scalar(select(func.count()).select_from(events)),
            conn.scalar(select(func.count()).select_from(event_channels)),
        )


def test_valid_file_is_stored_with_channels_and_audit(clean_db, tmp_path):
    spec = load_spec_file(_write(tmp_path, VALID))
    with transaction() as conn:
        event = create_event(conn, spec, actor="test")
    assert event.title.startswith("Python İstanbul")
    assert event.slug == "python-istanbul-42-veri-muhendisligi-2026-12-10"
    assert event.price_minor == 25000 and event.currency == "TRY"
    assert event.starts_at.utcoffset() is not None
    assert event.allocations == {"native": 40, "meetup": None, "eventbrite": None, "luma": None}
    # 60 shared seats; Meetup may sell the shared pool, native its 40 plus the pool.
    assert event.capacity_for("meetup") == 60
    assert event.capacity_for("native") == 100
    with clean_db.connect() as conn:
        statuses = dict(
            conn.execute(select(event_channels.c.platform, event_channels.c.status)).all()
        )
        actions = conn.scalars(select(audit_log.c.action)).all()
    assert statuses == {
        "native": "published",
        "meetup": "pending",
        "eventbrite": "pending",
        "luma": "pending",
    }
    assert actions == ["created"]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"ends_at": "2026-12-10T18:00:00"}, "ends_at"),
        ({"total_capacity": -5}, "total_capacity"),
        ({"channels": {"native": 60, "meetup": 50}}, "channels"),
        ({"currency": "XYZ"}, "currency"),
        ({"title": None}, "title"),
        ({"timezone": "Mars/Olympus"}, "timezone"),
        ({"price": "10.005"}, "price"),
        ({"surprise": 1}, "surprise"),
    ],
)
def test_invalid_file_names_the_field_and_writes_nothing(clean_db, tmp_path, change, field):
    data = {**VALID, **change}
    if change.get("title", "") is None:
        del data["title"]
    with pytest.raises(EventInputError) as info:
        spec = load_spec_file(_write(tmp_path, data))
        with transaction() as conn:
            create_event(conn, spec, actor="test")
    assert info.value.field == field
    assert _counts(clean_db) == (0, 0)


def test_duplicate_slug_refused_without_partial_write(clean_db, tmp_path):
    spec = load_spec_file(_write(tmp_path, VALID))
    with transaction() as conn:
        create_event(conn, spec, actor="test")
    with pytest.raises(EventInputError) as info, transaction() as conn:
        create_event(conn, spec, actor="test")
    assert info.value.field == "slug"
    assert _counts(clean_db) == (1, 4)


def test_update_bumps_version_only_when_platforms_must_know(clean_db, tmp_path):
    spec = load_spec_file(_write(tmp_path, VALID))
    with transaction() as conn:
        event = create_event(conn, spec, actor="test")
        same = update_event(conn, event.id, {"title": event.title}, actor="test")
        assert same.version == 1
        changed = update_event(conn, event.id, {"total_capacity": 120}, actor="test")
    assert changed.version == 2 and changed.total_capacity == 120


def _hub(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "hub_cli", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )


def test_cli_create_prints_event_and_list_shows_it(clean_db, tmp_path):
    result = _hub("events", "create", str(_write(tmp_path, VALID)))
    assert result.returncode == 0, result.stderr
    assert "python-istanbul-42" in result.stdout and "capacity  100" in result.stdout
    listing = _hub("events", "list")
    assert "python-istanbul-42" in listing.stdout and "meetup:pending" in listing.stdout


def test_cli_invalid_file_exits_nonzero_with_one_line(clean_db, tmp_path):
    result = _hub("events", "create", str(_write(tmp_path, {**VALID, "total_capacity": -1})))
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "total_capacity" in lines[0]
    assert _counts(clean_db) == (0, 0)


def test_cli_unreachable_database_names_the_server(tmp_path):
    import os

    env = {**os.environ, "HUB_DATABASE_URL": "postgresql://postgres@127.0.0.1:1/nope"}
    result = subprocess.run(
        [sys.executable, "-m", "hub_cli", "events", "list"],
        env=env,
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
    )
    assert result.returncode == 1
    assert result.stderr.startswith("error: PostgreSQL unreachable")
    assert len(result.stderr.strip().splitlines()) == 1


def test_cli_bad_setting_names_the_variable():
    import os

    env = {**os.environ, "HUB_MODE": "production", "HUB_REDIS_URL": "http://x"}
    result = subprocess.run(
        [sys.executable, "-m", "hub_cli", "events", "list"],
        env=env,
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
    )
    assert result.returncode == 1
    assert "HUB_MODE" in result.stderr and "HUB_REDIS_URL" in result.stderr


def test_forms_organizers_write_are_understood(clean_db, tmp_path):
    """`capacity:`, a venue as plain text, channels as a list, a space in the time."""
    data = {
        "title": "Kısa Form",
        "starts_at": "2026-12-11 19:00",
        "ends_at": "2026-12-11 21:00",
        "capacity": 30,
        "venue": "Kolektif House",
        "channels": ["native", "luma"],
    }
    spec = load_spec_file(_write(tmp_path, data))
    with transaction() as conn:
        event = create_event(conn, spec, actor="test")
    assert event.total_capacity == 30 and event.venue_name == "Kolektif House"
    assert event.allocations == {"native": None, "luma": None}
    local = event.starts_at.astimezone(ZoneInfo("Europe/Istanbul"))
    assert (local.hour, local.minute) == (19, 0)  # read in the event's zone, stored as UTC


def test_unknown_channel_is_refused_naming_it(clean_db, tmp_path):
    data = {**VALID, "channels": ["native", "facebook"]}
    with pytest.raises(EventInputError) as info:
        load_spec_file(_write(tmp_path, data))
    assert info.value.field.startswith("channels") and "facebook" in info.value.field
