"""Demo step: four bank mails through SendGrid (raw mode), read by their structure.

One incoming transfer whose ref, amount and payer name agree (confirmed), one outgoing
notice naming the other party under "Alıcı" and one marketing mail quoting amounts
(both classified and ignored: no payment), and one transfer whose ref names one
registration while the payer's name is another registrant's (waits in the review queue
with both candidates, its score and reasons). Printed in numbers.
"""

from __future__ import annotations

from datetime import datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from typing import Any
from uuid import uuid4

import httpx
from sqlalchemy import text

from hub.ingest import process_pending
from hub.payments import review_queue
from hub.settings import Settings


def _targets(engine: Any, event_id: Any) -> list[Any]:
    """Three unpaid, named registrants of the event, not the first three Luma guests
    (the receiver step pays those)."""
    with engine.connect() as conn:
        return list(
            conn.execute(
                text(
                    "select id, full_name from app.registrations where event_id = :e"
                    " and full_name is not null and payment_status not in ('paid', 'refunded')"
                    " and id not in (select id from app.registrations where event_id = :e"
                    " and platform = 'luma' order by id limit 3) order by id limit 3"
                ),
                {"e": event_id},
            ).all()
        )


def _mail(subject: str, sender: str, body: str, *, html: bool = False) -> bytes:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = "odemeler@inbound.topluluk.org"
    msg["Subject"] = subject
    msg["Date"] = format_datetime(datetime.now().astimezone())
    msg["Message-ID"] = make_msgid(domain="demo.bank.example")
    if html:
        msg.set_content(body, subtype="html", charset="utf-8")
    else:
        msg.set_content(body, charset="windows-1254", cte="quoted-printable")
    return bytes(msg)


def _raw_form(raw: bytes) -> tuple[bytes, str]:
    boundary = "demo" + uuid4().hex[:16]
    parts = [("to", b"odemeler@inbound.topluluk.org"), ("from", b"bank"), ("email", raw)]
    out = bytearray()
    for name, data in parts:
        out += f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'.encode()
        out += data + b"\r\n"
    out += f"--{boundary}--\r\n".encode()
    return bytes(out), f"multipart/form-data; boundary={boundary}"


def _tl(minor: int) -> str:
    return f"{minor // 100:,}".replace(",", ".") + f",{minor % 100:02d} TL"


def run_step(
    out: Any,
    settings: Settings,
    engine: Any,
    event: Any,
    secrets_: dict[str, str],
    *,
    receiver: str = "http://127.0.0.1:5000",
) -> None:
    from integrations.email_parsing.record import list_classified
    from integrations.ingest_handlers import handle_inbound_email

    targets = _targets(engine, event.id)
    if len(targets) < 3:
        out.line("(not enough named registrations for the payment e-mail step)")
        return
    paid, meant, payer = targets
    amount = _tl(event.price_minor)
    mails = [
        (
            "incoming transfer, ref + amount + name agree",
            _mail(
                "Hesabınıza para girişi",
                "VakıfBank <dekont@vakifbank.com.tr>",
                f"GÖNDEREN AD SOYAD : {paid.full_name.upper()}\nALICI AD SOYAD : TOPLULUK DERNEĞİ\n"
                f"İŞLEM TUTARI : {amount}\nAÇIKLAMA : REG–{paid.id}\n"
                f"DEKONT NO : D{uuid4().int % 10**10}\n",
            ),
        ),
        (
            "outgoing notice (Alıcı), same ref",
            _mail(
                "Para transferi",
                "VakıfBank <dekont@vakifbank.com.tr>",
                f"Hesabınızdan FAST işlemi gerçekleştirilmiştir.\nALICI AD SOYAD : "
                f"{meant.full_name.upper()}\nTUTAR : {amount}\nAÇIKLAMA : REG-{meant.id} iade\n",
            ),
        ),
        (
            "marketing quoting amounts",
            _mail(
                "500 TL'ye varan bonus!",
                "Garanti BBVA <kampanya@garantibbva.com.tr>",
                "<p>2.000 TL harcamanıza 500 TL'ye varan bonus! Hesabınıza 100 TL chip-para.</p>"
                "<a href='#'>Abonelikten çık</a>",
                html=True,
            ),
        ),
        (
            "ref of one registrant, name of another",
            _mail(
                "Gelen havale",
                "QNB <bilgi@qnb.com.tr>",
                f"Hesabınıza havale gelmiştir.\nGönderen: {payer.full_name}\nTutar: {amount}\n"
                f"Açıklama: REG-{meant.id}\n",
            ),
        ),
    ]
    out.line("four bank e-mails through SendGrid (raw MIME):")
    raw_ids = []
    with httpx.Client(base_url=receiver, timeout=10) as client:
        for label, raw in mails:
            body, ctype = _raw_form(raw)
            r = client.post(
                f"/inbound/email/sendgrid/{secrets_['sendgrid_inbound_token']}",
                content=body,
                headers={"Content-Type": ctype},
            )
            raw_ids.append((r.json() or {}).get("id"))
            out.line(f"  {label} -> {r.status_code} {(r.json() or {}).get('status')}")
    report = process_pending(engine, handlers={"sendgrid": handle_inbound_email})
    out.line(
        f"ingest: {report.processed} processed, {report.ignored} ignored (no payment),"
        f" {report.failed} failed"
    )
    with engine.connect() as conn:
        classes = {c["raw_id"]: c for c in list_classified(conn)}
        out.table(
            ["mail", "raw row", "kind", "payments", "why"],
            [
                [
                    label,
                    classes[i]["status"] if i in classes else "-",
                    classes[i]["kind"] if i in classes else "-",
                    classes[i]["payments"] if i in classes else "-",
                    "; ".join(classes[i]["reasons"][:2]) if i in classes else "-",
                ]
                for (label, _), i in zip(mails, raw_ids, strict=True)
            ],
        )
        status = conn.execute(
            text("select payment_status from app.registrations where id = :id"), {"id": paid.id}
        ).scalar_one()
        score = conn.execute(
            text(
                "select match_score from app.payments where registration_id = :id"
                " and provider = 'email'"
            ),
            {"id": paid.id},
        ).scalar()
        out.line(f"REG-{paid.id} ({paid.full_name}): payment_status={status}, score={score}")
        queue = [q for q in review_queue(conn) if q["reference"] == f"REG-{meant.id}"]
    for item in queue:
        out.line(
            f"review queue: payment #{item['payment_id']} {_tl(item['amount_minor'])} from "
            f"{item['payer_name']} quoting {item['reference']}, score {item['score']}"
        )
        for reason in item["reasons"]:
            out.line(f"    reason: {reason}")
        for c in item["candidates"]:
            out.line(
                f"    candidate {c['ref']} {c['name']} expects {_tl(c['expected_minor'])}"
                f" ({c['payment_status']})"
            )
