from datetime import timedelta

import pytest
from domain_world import T0, audits, make_event, reg, registration
from sqlalchemy import text

from hub.registrations import (
    ALLOWED_TRANSITIONS,
    IllegalTransition,
    RegistrationNotFound,
    UpsertCounts,
    transition,
    upsert_registrations,
)


@pytest.fixture()
def world(clean_db):
    with clean_db.begin() as conn:
        event_id = make_event(conn, channels={"eventbrite": "eb-1", "luma": "evt-1"})
    return clean_db, event_id


def test_upsert_is_idempotent(world):
    engine, event_id = world
    items = [
        reg("a1", email=" Ayse.Kaya@Example.COM ", phone="0532 123 45 67", name="Ayşe Kaya"),
        reg("a2", status="approved", updated_at=T0),
        reg("g1", platform="luma", event="evt-1", status="waitlist"),
    ]
    with engine.begin() as conn:
        first = upsert_registrations(conn, items, actor="test", reason="first pull")
    with engine.begin() as conn:
        second = upsert_registrations(conn, items, actor="test")
        row = registration(conn, "eventbrite", "a1")
        created = [a for a in audits(conn, "registration") if a.action == "created"]
    assert first == UpsertCounts(inserted=3, updated=0, unchanged=0, unknown_event=0)
    assert second == UpsertCounts(inserted=0, updated=0, unchanged=3, unknown_event=0)
    assert row.event_id == event_id
    assert row.email_normalized == "ayse.kaya@example.com"
    assert row.phone_e164 == "+905321234567"
    assert row.email == "Ayse.Kaya@Example.COM"
    assert len(created) == 3  # the second run wrote no audit rows
    assert {a.reason for a in created} == {"first pull"}


def test_status_change_is_updated_and_audited(world):
    engine, _ = world
    with engine.begin() as conn:
        upsert_registrations(conn, [reg("a1", updated_at=T0)], actor="test")
    with engine.begin() as conn:
        counts = upsert_registrations(
            conn,
            [reg("a1", status="approved", updated_at=T0 + timedelta(minutes=5))],
            actor="webhook:eventbrite",
            reason="order.updated",
        )
        row = registration(conn, "eventbrite", "a1")
        moves = [a for a in audits(conn, "registration", row.id) if a.action == "status_changed"]
    assert counts.updated == 1
    assert row.status == "approved"
    assert len(moves) == 1
    assert moves[0].data["from"] == "pending" and moves[0].data["to"] == "approved"
    assert moves[0].actor == "webhook:eventbrite" and moves[0].reason == "order.updated"
    assert "irregular" not in moves[0].data


def test_older_update_never_overwrites_newer(world):
    engine, _ = world
    newer, older = T0 + timedelta(hours=1), T0
    with engine.begin() as conn:
        upsert_registrations(conn, [reg("a1", status="approved", updated_at=newer)], actor="t")
    with engine.begin() as conn:
        counts = upsert_registrations(
            conn, [reg("a1", status="cancelled", email="x@y.com", updated_at=older)], actor="t"
        )
        row = registration(conn, "eventbrite", "a1")
    assert counts.unchanged == 1 and counts.stale == 1 and counts.updated == 0
    assert row.status == "approved" and row.email is None
    assert row.platform_updated_at == newer


def test_unknown_event_is_counted_and_skipped(world):
    engine, _ = world
    with engine.begin() as conn:
        counts = upsert_registrations(
            conn, [reg("a1"), reg("z1", event="eb-unknown"), reg("z2", event="eb-unknown")],
            actor="t",
        )  # fmt: skip
        total = conn.execute(text("select count(*) from app.registrations")).scalar_one()
    assert counts.inserted == 1 and counts.unknown_event == 2
    assert total == 1


def test_duplicates_in_one_call_collapse_to_the_newest(world):
    engine, _ = world
    with engine.begin() as conn:
        counts = upsert_registrations(
            conn,
            [
                reg("a1", status="approved", updated_at=T0 + timedelta(minutes=2)),
                reg("a1", status="pending", updated_at=T0),
            ],
            actor="t",
        )
        row = registration(conn, "eventbrite", "a1")
    assert counts.inserted == 1 and counts.unchanged == 1
    assert row.status == "approved"


def test_platform_does_not_downgrade_a_hub_payment(world):
    engine, _ = world
    with engine.begin() as conn:
        upsert_registrations(conn, [reg("a1", amount=50000, currency="try")], actor="t")
        conn.execute(text("update app.registrations set payment_status = 'paid'"))
    with engine.begin() as conn:
        counts = upsert_registrations(
            conn, [reg("a1", amount=50000, currency="TRY", payment_status="unpaid")], actor="t"
        )
        row = registration(conn, "eventbrite", "a1")
    assert counts.unchanged == 1
    assert row.payment_status == "paid" and row.currency == "TRY"


def test_irregular_platform_move_is_applied_but_flagged(world):
    engine, _ = world
    with engine.begin() as conn:
        upsert_registrations(conn, [reg("a1", status="cancelled", updated_at=T0)], actor="t")
    with engine.begin() as conn:
        upsert_registrations(
            conn, [reg("a1", status="approved", updated_at=T0 + timedelta(1))], actor="t"
        )
        row = registration(conn, "eventbrite", "a1")
        move = [a for a in audits(conn, "registration", row.id) if a.action == "status_changed"]
    assert row.status == "approved"
    assert move[0].data["irregular"] is True


def test_native_registration_by_event_id(world):
    engine, event_id = world
    with engine.begin() as conn:
        counts = upsert_registrations(
            conn, [reg("n1", platform="native", event=str(event_id))], actor="t"
        )
    assert counts.inserted == 1


def test_ten_thousand_rows(world):
    engine, _ = world
    items = [
        reg(
            f"bulk-{i}",
            email=f"Person{i}@Example.com",
            phone=f"0532 {i % 1000:03d} {i % 100:02d} {(i * 7) % 100:02d}",
            name=f"Kişi {i}",
            status="approved" if i % 3 else "pending",
            amount=25000,
            currency="TRY",
            updated_at=T0,
        )
        for i in range(10_000)
    ]
    with engine.begin() as conn:
        first = upsert_registrations(conn, items, actor="bulk")
    with engine.begin() as conn:
        second = upsert_registrations(conn, items, actor="bulk")
        total = conn.execute(text("select count(*) from app.registrations")).scalar_one()
        audit_count = conn.execute(text("select count(*) from app.audit_log")).scalar_one()
    assert first.inserted == 10_000
    assert second.unchanged == 10_000
    assert total == 10_000 and audit_count == 10_000


# --------------------------------------------------------------------------- status machine


def _one(engine, status="pending"):
    with engine.begin() as conn:
        upsert_registrations(conn, [reg("a1", status=status)], actor="t")
        return registration(conn, "eventbrite", "a1").id


def test_transition_allowed_is_audited(world):
    engine, _ = world
    rid = _one(engine)
    with engine.begin() as conn:
        result = transition(conn, rid, "approved", actor="admin:sezen", reason="paid at door")
        again = transition(conn, rid, "approved", actor="admin:sezen")
        trail = [a for a in audits(conn, "registration", rid) if a.action == "status_changed"]
    assert result.changed and result.from_status == "pending" and result.to_status == "approved"
    assert not again.changed
    assert len(trail) == 1
    assert trail[0].data == {"from": "pending", "to": "approved"}
    assert trail[0].actor == "admin:sezen" and trail[0].reason == "paid at door"


def test_transition_refuses_illegal_moves(world):
    engine, _ = world
    rid = _one(engine, status="cancelled")
    with engine.begin() as conn, pytest.raises(IllegalTransition, match="re-registration"):
        transition(conn, rid, "approved", actor="admin")
    with engine.begin() as conn:
        assert registration(conn, "eventbrite", "a1").status == "cancelled"
        result = transition(conn, rid, "approved", actor="admin", reregistration=True)
        trail = audits(conn, "registration", rid)
    assert result.changed
    assert trail[-1].action == "re_registered"


def test_transition_approved_back_to_pending_is_refused(world):
    engine, _ = world
    rid = _one(engine, status="approved")
    with engine.begin() as conn, pytest.raises(IllegalTransition):
        transition(conn, rid, "pending", actor="admin")
    with engine.begin() as conn, pytest.raises(RegistrationNotFound):
        transition(conn, 999_999, "approved", actor="admin")


def test_every_status_has_a_rule():
    from hub.models import RegistrationStatus

    assert set(ALLOWED_TRANSITIONS) == set(RegistrationStatus)
