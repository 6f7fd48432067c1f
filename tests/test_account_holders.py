"""HUB_PAYMENT_ACCOUNT_HOLDERS tells the ingest which party of a bank notice is us: a
notice that names both parties is incoming when we are the recipient, outgoing (never a
payment) when we are the sender."""

from __future__ import annotations

from urllib.parse import urlencode

import pytest
from sqlalchemy import select

from hub.db import payments, transaction
from hub.ingest import process_pending
from hub.settings import environment
from integrations.ingest_handlers import build_handlers
from tests.domain_world import insert_raw, raw_row

HOLDER = "Python İstanbul Derneği"
FORM = {"Content-Type": "application/x-www-form-urlencoded"}


def _mail(sender: str, recipient: str, ref: str) -> bytes:
    text = (
        "Sayın Müşterimiz,\n"
        "EFT işleminizin ayrıntıları aşağıdadır.\n"
        f"Gönderen : {sender}\n"
        f"Alıcı : {recipient}\n"
        "Tutar : 250,00 TL\n"
        f"Açıklama : {ref}\n"
        "İşlem Tarihi : 12.11.2026 14:05\n"
    )
    return urlencode(
        {
            "from": "Banka <bilgi@banka.example>",
            "subject": "EFT bilgilendirme",
            "body-plain": text,
            "message-headers": f'[["Message-Id", "<{ref}@banka.example>"]]',
        }
    ).encode()


@pytest.mark.parametrize(
    ("sender", "recipient", "ref", "payment"),
    [
        ("AYŞE KAYA", HOLDER.upper(), "REG-A1B2", True),
        (HOLDER.upper(), "AYŞE KAYA", "REG-C3D4", False),
    ],
)
def test_the_holder_setting_decides_the_direction(clean_db, sender, recipient, ref, payment):
    with transaction() as conn:
        row = insert_raw(
            conn, "inbound_emails", source="mailgun", body=_mail(sender, recipient, ref),
            headers=FORM,
        )  # fmt: skip
    with environment({"HUB_PAYMENT_ACCOUNT_HOLDERS": f"{HOLDER}; Başka Hesap"}):
        process_pending(clean_db, handlers=build_handlers({}))
    with clean_db.connect() as conn:
        found = conn.execute(select(payments.c.amount_minor, payments.c.payer_name)).all()
        status = raw_row(conn, "inbound_emails", row).status
    if payment:
        assert [(a, n.upper() if n else n) for a, n in found] == [(25000, "AYŞE KAYA")]
        assert status == "processed"
    else:
        assert found == [] and status == "ignored"


def test_without_the_setting_a_two_party_notice_is_not_a_payment(clean_db):
    with transaction() as conn:
        insert_raw(conn, "inbound_emails", source="mailgun",
                   body=_mail("AYŞE KAYA", HOLDER.upper(), "REG-E5F6"), headers=FORM)  # fmt: skip
    with environment({"HUB_PAYMENT_ACCOUNT_HOLDERS": None}):
        process_pending(clean_db, handlers=build_handlers({}))
    with clean_db.connect() as conn:
        assert conn.execute(select(payments.c.id)).all() == []
