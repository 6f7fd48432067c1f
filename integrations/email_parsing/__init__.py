"""Forwarded "payment received" e-mails: decode what the inbound hooks stored, then read
what the mail says from its structure.

* :mod:`.decode` -- stored raw row (SendGrid parsed/raw, Mailgun, RFC 822) ->
  :class:`InboundEmail` (text and HTML, forwarded messages, attachments by checksum);
* :mod:`.analyze` -- :class:`InboundEmail` -> :class:`MailAnalysis` (the kind of mail,
  its direction, its incoming payments, the reasons);
* ``banks.json`` -- the labels and cues: the generic vocabulary and one entry per bank;
* :mod:`.amounts`, :mod:`.text` -- Turkish and English amounts, Turkish case rules.

No authentic bank mail was available (CONTRACTS.md §5): the corpus in
tests/fixtures/payment_emails/ is written for the tests; tune banks.json on real samples.
"""

from __future__ import annotations

from datetime import datetime

from integrations.email_parsing.amounts import AMOUNT_RE, find_amounts
from integrations.email_parsing.analyze import (
    PAYMENT_KINDS,
    MailAnalysis,
    ParsedPayment,
    analyze_document,
    analyze_email,
    refs,
)
from integrations.email_parsing.decode import (
    Attachment,
    InboundEmail,
    decode_bytes,
    decode_inbound,
)
from integrations.email_parsing.text import fold, html_to_text, tr_word

__all__ = [
    "AMOUNT_RE",
    "PAYMENT_KINDS",
    "Attachment",
    "InboundEmail",
    "MailAnalysis",
    "ParsedPayment",
    "analyze_document",
    "analyze_email",
    "decode_bytes",
    "decode_inbound",
    "find_amounts",
    "fold",
    "html_to_text",
    "parse_inbound",
    "parse_payment_email",
    "refs",
    "tr_word",
]


def parse_payment_email(
    text: str,
    *,
    subject: str | None = None,
    received_at: datetime | None = None,
    html: str | None = None,
    holders: tuple[str, ...] = (),
) -> ParsedPayment | None:
    """The first incoming payment a mail's text (and HTML) describes, or None.

    ``holders``: the names of the receiving account(s), when known; they tell the
    direction of a notice that names both parties or only the recipient."""
    analysis = analyze_document(text, html, subject=subject, holders=holders)
    if not analysis.is_payment:
        return None
    payment = analysis.payments[0]
    if payment.paid_at is None and received_at is not None:
        payment = payment.model_copy(update={"paid_at": received_at})
    return payment


def parse_inbound(message: InboundEmail) -> ParsedPayment | None:
    """The first incoming payment of a decoded mail, or None (see :func:`analyze_email`)."""
    analysis = analyze_email(message)
    if not analysis.is_payment:
        return None
    payment = analysis.payments[0]
    if payment.paid_at is None and message.date is not None:
        payment = payment.model_copy(update={"paid_at": message.date})
    return payment
