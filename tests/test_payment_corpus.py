"""The labelled corpus (tests/fixtures/payment_emails) in the three delivery formats.

Parsing is checked on the training split field by field; on every mail (held-out ones
too) the properties that protect money: no payment from a mail that is not an incoming
transfer, and one transfer key for every copy of one transfer. Matching against the
manifest's registrations runs through the ingest's own code for one format (the bench
runs all three)."""

from __future__ import annotations

import pytest

from bench.emails import CORPUS, FORMATS, deliver, evaluate, load_manifest, make_world
from hub.members import name_key
from integrations.email_parsing import PAYMENT_KINDS, analyze_email, decode_inbound

MANIFEST = load_manifest()
MAILS = MANIFEST["mails"]


def _analyze(mail: dict, fmt: str):
    body, headers = deliver((CORPUS / mail["file"]).read_bytes(), fmt)
    return analyze_email(decode_inbound(body, headers))


def test_the_corpus_is_large_and_varied_enough():
    assert len(MAILS) >= 80
    kinds = {m["kind"] for m in MAILS}
    assert {"incoming_transfer", "statement", "outgoing_transfer", "marketing", "other"} <= kinds
    assert {m["charset"] for m in MAILS} >= {"windows-1254", "iso-8859-9", "utf-8"}
    assert any(m["html_only"] for m in MAILS) and any(m["forwarded"] == "rfc822" for m in MAILS)
    assert any(m["duplicate_of"] for m in MAILS)
    assert sum(m["split"] == "holdout" for m in MAILS) >= 20


@pytest.mark.parametrize("fmt", FORMATS)
def test_no_payment_from_a_mail_that_is_not_an_incoming_transfer(fmt):
    wrong = []
    for mail in MAILS:
        analysis = _analyze(mail, fmt)
        if mail["kind"] not in PAYMENT_KINDS and analysis.payments:
            wrong.append((mail["id"], analysis.kind))
        exact = mail["split"] == "train"  # held-out mails: only the money property
        if exact and mail["kind"] not in PAYMENT_KINDS and analysis.kind != mail["kind"]:
            wrong.append((mail["id"], analysis.kind))
    assert wrong == []


@pytest.mark.parametrize("fmt", FORMATS)
def test_training_mails_are_read_field_by_field(fmt):
    wrong = []
    for mail in (m for m in MAILS if m["split"] == "train" and m["kind"] in PAYMENT_KINDS):
        got = _analyze(mail, fmt).payments
        expected = [
            (p["amount_minor"], p["currency"], name_key(p["payer"], sort_tokens=True),
             p["reference"], p["transaction_id"])
            for p in mail["payments"]
        ]  # fmt: skip
        read = [
            (g.amount_minor, g.currency, name_key(g.payer_name, sort_tokens=True), g.reference,
             g.transaction_id)
            for g in got
        ]  # fmt: skip
        if read != expected:
            wrong.append((mail["id"], read, expected))
    assert wrong == []


def test_every_copy_of_a_transfer_has_the_same_key_in_every_format():
    by_id = {m["id"]: m for m in MAILS}
    for mail in (m for m in MAILS if m["duplicate_of"]):
        keys = {
            tuple(p.transfer_key for p in _analyze(m, fmt).payments)
            for m in (mail, by_id[mail["duplicate_of"]])
            for fmt in FORMATS
        }
        assert len(keys) == 1, mail["id"]


def test_matching_the_corpus_confirms_nothing_wrong(clean_db):
    with clean_db.begin() as conn:
        make_world(conn, MANIFEST)
    stats = evaluate(clean_db, MANIFEST, "sendgrid-parsed")
    for split in ("train", "holdout", "holdout2", "holdout3"):
        assert stats[split]["false_confirmations"] == 0
        assert stats[split]["false_payments"] == 0
    train = stats["train"]
    assert train["right_confirmations"] == train["should_confirm"]
    assert train["review_right"] == train["should_review"]
