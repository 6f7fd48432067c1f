import pytest
from domain_world import audits, make_event, reg, registration
from sqlalchemy import text

from hub.payments import (
    PaymentIn,
    PaymentNotFound,
    _one_edit_away,
    match_payment,
    name_agreement,
    record_payment,
    review_queue,
)
from hub.registrations import upsert_registrations


@pytest.fixture()
def world(clean_db):
    """Two paid events: a Python meetup (250,00 TL) and a workshop (250,00 TL)."""
    with clean_db.begin() as conn:
        meetup = make_event(conn, price_minor=25000, channels={"eventbrite": "eb-1"})
        workshop = make_event(conn, price_minor=25000, channels={"luma": "evt-2"})
        upsert_registrations(
            conn,
            [
                reg("o-1", email="Ayse.Kaya@Example.com", name="Ayşe Kaya",
                    amount=25000, currency="TRY"),
                reg("o-2", email="mehmet@example.com", name="Mehmet Öztürk"),
                reg("gst-1", platform="luma", event="evt-2", email="mehmet@example.com",
                    name="Mehmet Öztürk"),
                reg("o-3", email="isil@example.com", name="Işıl Yıldız"),
                reg("o-4", email="cancelled@example.com", status="cancelled"),
            ],
            actor="test",
        )  # fmt: skip
    return clean_db, meetup, workshop


def _pay(**kw):
    base = {"provider": "stripe", "provider_payment_id": "pi_1", "amount_minor": 25000}
    return PaymentIn(**{**base, **kw})


def _payment(conn, payment_id):
    return conn.execute(text("select * from app.payments where id = :id"), {"id": payment_id}).one()


def test_record_payment_is_idempotent(world):
    engine, *_ = world
    with engine.begin() as conn:
        first = record_payment(conn, _pay(currency="try"))
        second = record_payment(conn, _pay(reference="REG-1", payer_email="A@B.com"))
        row = _payment(conn, first[0])
        count = conn.execute(text("select count(*) from app.payments")).scalar_one()
    assert first[1] is True and second == (first[0], False)
    assert count == 1
    assert row.currency == "TRY" and row.status == "received"
    assert row.reference == "REG-1"  # a later copy fills what was missing
    assert row.payer_email_normalized == "a@b.com"


def test_refund_is_a_separate_row_of_the_same_payment(world):
    engine, *_ = world
    with engine.begin() as conn:
        pay_id, _ = record_payment(conn, _pay())
        refund_id, created = record_payment(conn, _pay(kind="refund", amount_minor=10000))
        refund_again, created_again = record_payment(conn, _pay(kind="refund", amount_minor=25000))
        refund = _payment(conn, refund_id)
    assert created and refund_id != pay_id
    assert refund_again == refund_id and not created_again
    assert refund.amount_minor == 25000  # cumulative amount_refunded


def test_match_by_ref_code(world):
    engine, *_ = world
    with engine.begin() as conn:
        target = registration(conn, "eventbrite", "o-3")
        pid, _ = record_payment(conn, _pay(reference=f"REG-{target.id}"))
        result = match_payment(conn, pid, actor="ingest:stripe")
        again = match_payment(conn, pid, actor="ingest:stripe")
        after = registration(conn, "eventbrite", "o-3")
        payment = _payment(conn, pid)
        trail = audits(conn, "registration", target.id)
        payment_trail = audits(conn, "payment", pid)
    assert result.status == "matched" and result.method == "ref"
    assert result.registration_id == target.id
    assert again.status == "already_matched"
    assert after.payment_status == "paid"
    assert payment.status == "paid" and payment.registration_id == target.id
    assert payment.event_id == target.event_id
    changes = [a for a in trail if a.action == "payment_status_changed"]
    assert len(changes) == 1 and changes[0].data["to"] == "paid"
    assert [a.action for a in payment_trail] == ["recorded", "matched"]


def test_match_by_platform_order_reference(world):
    engine, *_ = world
    with engine.begin() as conn:
        pid, _ = record_payment(conn, _pay(reference="o-2"))
        result = match_payment(conn, pid, actor="t")
    assert result.status == "matched" and result.method == "ref"


def test_ref_with_too_little_money_waits_for_a_person(world):
    engine, *_ = world
    with engine.begin() as conn:
        target = registration(conn, "eventbrite", "o-1")
        pid, _ = record_payment(conn, _pay(reference=f"REG-{target.id}", amount_minor=100))
        result = match_payment(conn, pid, actor="t")
        after = registration(conn, "eventbrite", "o-1")
    assert result.status == "unmatched" and result.candidates == (target.id,)
    assert "below" in result.reason
    assert after.payment_status == "none"


def test_match_by_email_and_amount(world):
    engine, *_ = world
    with engine.begin() as conn:
        pid, _ = record_payment(conn, _pay(payer_email=" AYSE.KAYA@example.com"))
        result = match_payment(conn, pid, actor="t")
        after = registration(conn, "eventbrite", "o-1")
    assert result.status == "matched" and result.method == "email_amount"
    assert after.payment_status == "paid"


def test_email_and_amount_fitting_two_events_stays_unmatched(world):
    engine, *_ = world
    with engine.begin() as conn:
        pid, _ = record_payment(conn, _pay(payer_email="mehmet@example.com"))
        result = match_payment(conn, pid, actor="t")
        payment = _payment(conn, pid)
        statuses = conn.execute(
            text("select payment_status from app.registrations where email_normalized = :e"),
            {"e": "mehmet@example.com"},
        ).scalars()
        trail = audits(conn, "payment", pid)
    assert result.status == "unmatched" and len(result.candidates) == 2
    assert payment.status == "unmatched" and payment.registration_id is None
    assert set(statuses) == {"none"}
    assert trail[-1].action == "unmatched" and trail[-1].data["candidates"] == list(
        result.candidates
    )


def test_email_plus_event_makes_it_unique(world):
    engine, _, workshop = world
    with engine.begin() as conn:
        pid, _ = record_payment(conn, _pay(payer_email="mehmet@example.com", event_id=workshop))
        result = match_payment(conn, pid, actor="t")
        after = registration(conn, "luma", "gst-1")
    assert result.status == "matched" and result.registration_id == after.id


def test_name_and_amount_is_only_a_suggestion(world):
    engine, *_ = world
    with engine.begin() as conn:
        target = registration(conn, "eventbrite", "o-3")
        # a bank prints the name upper-case, without Turkish letters, surname first
        pid, _ = record_payment(
            conn, _pay(provider="email", provider_payment_id="m1", payer_name="YILDIZ ISIL")
        )
        result = match_payment(conn, pid, actor="t")
        after = registration(conn, "eventbrite", "o-3")
    assert result.status == "unmatched" and result.method == "name_amount"
    assert result.candidates == (target.id,)
    assert after.payment_status == "none"


def test_nothing_fits(world):
    engine, *_ = world
    with engine.begin() as conn:
        pid, _ = record_payment(conn, _pay(payer_email="cancelled@example.com"))
        result = match_payment(conn, pid, actor="t")
        with pytest.raises(PaymentNotFound):
            match_payment(conn, 424242, actor="t")
    assert result.status == "unmatched" and result.candidates == ()


def test_refund_marks_the_registration_refunded(world):
    engine, *_ = world
    with engine.begin() as conn:
        target = registration(conn, "eventbrite", "o-1")
        pid, _ = record_payment(conn, _pay(reference=f"REG-{target.id}"))
        match_payment(conn, pid, actor="t")
        partial_id, _ = record_payment(conn, _pay(kind="refund", amount_minor=5000))
        partial = match_payment(conn, partial_id, actor="t")
        assert registration(conn, "eventbrite", "o-1").payment_status == "paid"
        record_payment(conn, _pay(kind="refund", amount_minor=25000))
        full = match_payment(conn, partial_id, actor="t")
        after = registration(conn, "eventbrite", "o-1")
        original = _payment(conn, pid)
    assert partial.status == "matched" and "partial" in partial.reason
    assert full.registration_id == target.id
    assert after.payment_status == "refunded"
    assert original.status == "refunded"


def test_refund_before_its_payment_is_applied_later(world):
    engine, *_ = world
    with engine.begin() as conn:
        target = registration(conn, "eventbrite", "o-1")
        refund_id, _ = record_payment(conn, _pay(kind="refund"))
        early = match_payment(conn, refund_id, actor="t")
        pid, _ = record_payment(conn, _pay(reference=f"REG-{target.id}"))
        match_payment(conn, pid, actor="t")
        after = registration(conn, "eventbrite", "o-1")
    assert early.status == "unmatched"
    assert after.payment_status == "refunded"


# --------------------------------------------------------------------------- agreement


@pytest.mark.parametrize(
    ("payer", "registered", "expected"),
    [
        ("AYŞE KAYA", "Ayşe Kaya", "agree"),
        ("KAYA AYSE", "Ayşe Kaya", "agree"),  # surname first, no Turkish letters
        ("İSMAİL IŞIK", "ismail ışık", "agree"),  # Turkish case rules
        ("A. KAYA", "Ayşe Kaya", "partial"),  # an initial fits, but only partly
        ("MEHMET KAYA", "Ayşe Kaya", "partial"),  # a parent paying: no contradiction
        ("SERAP POLATLI", "Serkan Polat", "contradict"),
        (None, "Ayşe Kaya", "absent"),
    ],
)
def test_name_agreement(payer, registered, expected):
    assert name_agreement(payer, registered) == expected


def test_one_edit_away_covers_typos_of_a_ref():
    near = _one_edit_away("12")
    assert {"13", "21", "1", "112", "123"} <= near and "12" not in near and "02" not in near


def _email_pay(**kw):
    base = {"provider": "email", "provider_payment_id": "tx:1", "amount_minor": 25000}
    return PaymentIn(**{**base, **kw})


def test_email_ref_with_agreeing_name_is_confirmed_with_its_score(world):
    engine, *_ = world
    with engine.begin() as conn:
        target = registration(conn, "eventbrite", "o-3")
        pid, _ = record_payment(
            conn, _email_pay(reference=f"REG-{target.id}", payer_name="YILDIZ ISIL")
        )
        result = match_payment(conn, pid, actor="t")
        payment = _payment(conn, pid)
    assert result.status == "matched" and result.registration_id == target.id
    assert float(payment.match_score) == 1.0
    assert "payer name agrees with the registration" in payment.match_reasons


def test_email_ref_with_a_contradicting_name_waits_with_both_candidates(world):
    """A payer who mistyped their ref must not pay for someone else's registration."""
    engine, *_ = world
    with engine.begin() as conn:
        quoted = registration(conn, "eventbrite", "o-3")  # Işıl Yıldız
        payer = registration(conn, "eventbrite", "o-1")  # Ayşe Kaya, 250,00 TL
        pid, _ = record_payment(
            conn, _email_pay(reference=f"REG-{quoted.id}", payer_name="AYŞE KAYA")
        )
        result = match_payment(conn, pid, actor="t")
        after = registration(conn, "eventbrite", "o-3")
        queue = review_queue(conn)
    assert result.status == "unmatched"
    assert set(result.candidates) == {quoted.id, payer.id}
    assert after.payment_status == "none"
    [item] = queue
    assert item["payment_id"] == pid and item["score"] < 0.7
    assert any("contradicts" in r for r in item["reasons"])
    assert {c["name"] for c in item["candidates"]} == {"Işıl Yıldız", "Ayşe Kaya"}


def test_email_ref_naming_nobody_one_edit_from_a_registration_waits(world):
    engine, *_ = world
    with engine.begin() as conn:
        target = registration(conn, "eventbrite", "o-3")
        typo = f"REG-{target.id}9"  # one digit too many
        pid, _ = record_payment(conn, _email_pay(reference=typo))
        result = match_payment(conn, pid, actor="t")
    assert result.status == "unmatched" and result.method == "near_ref"
    assert target.id in result.candidates


def test_stripe_refs_are_still_trusted_without_a_name(world):
    engine, *_ = world
    with engine.begin() as conn:
        target = registration(conn, "eventbrite", "o-3")
        pid, _ = record_payment(conn, _pay(reference=f"REG-{target.id}", payer_name="Someone Else"))
        result = match_payment(conn, pid, actor="t")
    assert result.status == "matched"


def test_email_ref_with_a_shared_first_name_waits_when_someone_fits_fully(world):
    engine, *_ = world
    with engine.begin() as conn:
        quoted = registration(conn, "eventbrite", "o-1")  # Ayşe Kaya
        upsert_registrations(
            conn, [reg("o-9", email="ad@example.com", name="Ayşe Demir")], actor="test"
        )
        other = registration(conn, "eventbrite", "o-9")
        pid, _ = record_payment(
            conn, _email_pay(reference=f"REG-{quoted.id}", payer_name="AYŞE DEMİR")
        )
        result = match_payment(conn, pid, actor="t")
    assert result.status == "unmatched"
    assert set(result.candidates) == {quoted.id, other.id}
