"""Forwarded "payment received" e-mails: decode what the inbound hooks stored, then parse.

Two steps, both pure (no database):

* ``decode_inbound(body, headers)`` turns a stored raw inbound row (the request body
  bytes plus the request headers JSON) into an ``InboundEmail``. It understands SendGrid
  Inbound Parse (multipart/form-data with a ``charsets`` JSON field, or raw mode with an
  ``email`` field), Mailgun routes (urlencoded or multipart with ``body-plain``,
  ``message-headers``, optional ``body-mime``) and a bare RFC 822 message. Turkish mail
  comes as windows-1254 or iso-8859-9 as often as UTF-8, so each field is decoded with
  its declared charset and falls back sensibly.
* ``parse_payment_email(text, ...)`` finds the amount (Turkish formats: ``1.250,00 TL``,
  ``₺1.250,00``, ``TL 1.250,00``, ``1250 TL``, ``250,50 TRY``), the payer's name
  (``GONDEREN AD``, ``Gönderen :``, ``Gelen Transfer, <AD SOYAD>``, ``... tarafından``;
  never ``ALICI``), the description/ref (``Açıklama :``, ``REG-123`` anywhere) and the
  date. Turkish words are matched with explicit letter classes (``[ıİiI]``...), never by
  lowercasing (``"İ".lower()`` is two code points), so SMS-style text without Turkish
  letters (``tutarinda``) matches too. No authentic bank mail was available
  (CONTRACTS.md §5): the label lists are the place to tune on real samples.
"""

from __future__ import annotations

import email
import email.header
import email.parser
import email.policy
import email.utils
import hashlib
import html as html_lib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from email.message import Message
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import unquote_to_bytes
from zoneinfo import ZoneInfo

from pydantic import BaseModel, Field

from hub.members import name_key

ISTANBUL = ZoneInfo("Europe/Istanbul")

# --------------------------------------------------------------------------- models


class ParsedPayment(BaseModel):
    amount_minor: int = Field(ge=0)
    currency: str
    payer_name: str | None = None
    reference: str | None = None
    paid_at: datetime | None = None
    confidence: float = Field(ge=0, le=1)
    raw_excerpt: str


@dataclass
class InboundEmail:
    """One inbound e-mail, decoded to text, whatever hook delivered it."""

    source: str
    subject: str | None = None
    sender: str | None = None
    text: str = ""
    html: str | None = None
    message_id: str | None = None
    date: datetime | None = None
    fields: dict[str, str] = field(default_factory=dict)

    @property
    def body_text(self) -> str:
        """The plain text, or the HTML reduced to text when there is no plain part."""
        if self.text.strip():
            return self.text
        return html_to_text(self.html or "")

    def stable_id(self) -> str:
        """A dedupe key: the Message-ID when there is one, else the body's hash."""
        if self.message_id:
            basis = "mid:" + self.message_id.strip().strip("<>").lower()
        else:
            basis = "body:" + re.sub(r"\s+", " ", f"{self.subject or ''} {self.body_text}").strip()
        return hashlib.sha256(basis.encode("utf-8")).hexdigest()[:40]


# --------------------------------------------------------------------------- decoding

_CHARSET_ALIASES = {
    "windows-1254": "cp1254",
    "win-1254": "cp1254",
    "iso-8859-9": "iso8859_9",
    "latin5": "iso8859_9",
    "iso_8859-9": "iso8859_9",
    "utf8": "utf-8",
}


def decode_bytes(data: bytes, charset: str | None = None) -> str:
    """Bytes to text with the declared charset, then UTF-8, then windows-1254."""
    tried: list[str] = []
    for name in (charset, "utf-8", "cp1254"):
        if not name:
            continue
        name = _CHARSET_ALIASES.get(name.strip().lower(), name.strip().lower())
        if name in tried:
            continue
        tried.append(name)
        try:
            return data.decode(name)
        except (LookupError, UnicodeDecodeError):
            continue
    return data.decode("utf-8", errors="replace")


def _header(headers: Mapping[str, Any] | list | None, name: str) -> str | None:
    if not headers:
        return None
    items = headers.items() if isinstance(headers, Mapping) else headers
    for item in items:
        if isinstance(item, list | tuple) and len(item) == 2:
            key, value = item
            if str(key).lower() == name.lower():
                return value if isinstance(value, str) else str(value)
    return None


def _form_multipart(body: bytes, content_type: str) -> dict[str, tuple[bytes, str | None]]:
    """multipart/form-data -> {field name: (bytes, part charset)} via the stdlib parser."""
    head = f"Content-Type: {content_type}\r\nMIME-Version: 1.0\r\n\r\n".encode("latin-1")
    message = email.message_from_bytes(head + body, policy=email.policy.compat32)
    fields: dict[str, tuple[bytes, str | None]] = {}
    if not message.is_multipart():
        raise ValueError("multipart body without parts (boundary missing or wrong)")
    for part in message.get_payload():
        name = part.get_param("name", header="content-disposition")
        if not name:
            continue
        if isinstance(name, tuple):  # RFC 2231 encoded parameter
            name = email.utils.collapse_rfc2231_value(name)
        payload = part.get_payload(decode=True)
        if payload is None:
            continue
        fields.setdefault(str(name), (payload, part.get_content_charset()))
    return fields


def _form_urlencoded(body: bytes) -> dict[str, tuple[bytes, str | None]]:
    """Fields of an urlencoded body as raw bytes (decoded later by charset).

    Split by hand: ``parse_qsl`` on bytes re-encodes each value as ASCII and fails on
    the UTF-8 Turkish names Mailgun forwards ("ZÖHREHAN").
    """
    fields: dict[str, tuple[bytes, str | None]] = {}
    for pair in body.split(b"&"):
        if not pair:
            continue
        key, _, value = pair.partition(b"=")
        name = unquote_to_bytes(key.replace(b"+", b" ")).decode("utf-8", errors="replace")
        fields.setdefault(name, (unquote_to_bytes(value.replace(b"+", b" ")), None))
    return fields


def decode_inbound(
    body: bytes, headers: Mapping[str, Any] | list | None, *, source: str | None = None
) -> InboundEmail:
    """Decode one stored inbound request (SendGrid, Mailgun or raw MIME) to an e-mail.

    ``headers`` is the request headers JSON stored with the raw row (a mapping, or a
    list of [name, value] pairs); its Content-Type carries the multipart boundary.
    Raises ValueError when the body cannot be read as any of those.
    """
    content_type = _header(headers, "Content-Type") or ""
    kind = content_type.split(";", 1)[0].strip().lower()
    if kind == "multipart/form-data":
        raw_fields = _form_multipart(body, content_type)
    elif kind == "application/x-www-form-urlencoded":
        raw_fields = _form_urlencoded(body)
    elif kind in ("message/rfc822", "text/plain", "") and re.match(
        rb"^[\w-]+:", body.lstrip()[:200]
    ):
        return _from_mime(body, source or "email")
    else:
        raise ValueError(f"unsupported inbound content type {kind or '(none)'}")

    charsets: dict[str, str] = {}
    if "charsets" in raw_fields:
        try:
            charsets = json.loads(decode_bytes(raw_fields["charsets"][0]))
        except ValueError:
            charsets = {}

    def field_text(name: str) -> str | None:
        if name not in raw_fields:
            return None
        data, part_charset = raw_fields[name]
        return decode_bytes(data, charsets.get(name) or part_charset or "utf-8")

    # Raw mode: the whole message is in one field; its own MIME headers carry charsets.
    for mime_field in ("email", "body-mime"):
        if mime_field in raw_fields:
            decoded = _from_mime(raw_fields[mime_field][0], source or _guess_source(raw_fields))
            decoded.fields = {k: field_text(k) or "" for k in raw_fields if k != mime_field}
            return decoded

    is_mailgun = "body-plain" in raw_fields or "message-headers" in raw_fields
    src = source or ("mailgun" if is_mailgun else "sendgrid")
    message_id = None
    date = None
    if is_mailgun:
        text = field_text("body-plain") or field_text("stripped-text") or ""
        html = field_text("body-html")
        try:
            pairs = json.loads(field_text("message-headers") or "[]")
        except ValueError:
            pairs = []
        message_id = _header(pairs, "Message-Id")
        date = _parse_date(_header(pairs, "Date"))
    else:
        text = field_text("text") or ""
        html = field_text("html")
        block = field_text("headers")
        if block:
            parsed = email.parser.HeaderParser(policy=email.policy.compat32).parsestr(block)
            message_id = parsed.get("Message-ID")
            date = _parse_date(parsed.get("Date"))
    sender = field_text("from") or field_text("sender")
    return InboundEmail(
        source=src,
        subject=_decode_header(field_text("subject")),
        sender=sender,
        text=text,
        html=html,
        message_id=message_id.strip() if message_id else None,
        date=date,
        fields={k: field_text(k) or "" for k in raw_fields if not k.startswith("attachment")},
    )


def _guess_source(fields: Mapping[str, Any]) -> str:
    return "mailgun" if "body-mime" in fields or "body-plain" in fields else "sendgrid"


def _decode_header(value: str | None) -> str | None:
    if not value:
        return value
    try:
        return str(email.header.make_header(email.header.decode_header(value)))
    except (LookupError, UnicodeError, ValueError):
        return value


def _parse_date(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        return parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None


def _part_text(part: Message) -> str:
    payload = part.get_payload(decode=True) or b""
    return decode_bytes(payload, part.get_content_charset())


def _from_mime(raw: bytes, source: str) -> InboundEmail:
    """A full RFC 822 message: first text/plain and text/html parts, forwarded ones too."""
    message = email.message_from_bytes(raw, policy=email.policy.compat32)
    text_parts: list[str] = []
    html_parts: list[str] = []
    for part in message.walk():
        if part.is_multipart() or part.get_content_maintype() != "text":
            continue
        if (part.get("Content-Disposition") or "").lower().startswith("attachment"):
            continue
        if part.get_content_subtype() == "plain":
            text_parts.append(_part_text(part))
        elif part.get_content_subtype() == "html":
            html_parts.append(_part_text(part))
    return InboundEmail(
        source=source,
        subject=_decode_header(message.get("Subject")),
        sender=_decode_header(message.get("From")),
        text="\n".join(text_parts),
        html="\n".join(html_parts) or None,
        message_id=(message.get("Message-ID") or "").strip() or None,
        date=_parse_date(message.get("Date")),
    )


def html_to_text(markup: str) -> str:
    text = re.sub(r"(?is)<(script|style)\b.*?</\1>", " ", markup)
    text = re.sub(r"(?i)<br\s*/?>|</p>|</tr>|</div>|</h\d>|</li>", "\n", text)
    text = re.sub(r"(?i)</t[dh]>", "\t", text)
    text = re.sub(r"<[^>]+>", " ", text)
    text = html_lib.unescape(text).replace("\xa0", " ")
    return re.sub(r"[ \t]*\n[ \t\n]*", "\n", text)


# --------------------------------------------------------------------------- Turkish words

_TR_CLASSES = {
    "i": "[iIıİ]",
    "s": "[sSşŞ]",
    "g": "[gGğĞ]",
    "u": "[uUüÜ]",
    "o": "[oOöÖ]",
    "c": "[cCçÇ]",
}


def tr_word(word: str) -> str:
    """A regex for a Turkish word written in ASCII: ``tr_word("gonderen")`` matches
    GÖNDEREN, Gönderen and GONDEREN. Explicit classes, no case folding involved."""
    out = []
    for ch in word:
        if ch in _TR_CLASSES:
            out.append(_TR_CLASSES[ch])
        elif ch.isalpha():
            out.append(f"[{ch.lower()}{ch.upper()}]")
        elif ch == " ":
            out.append(r"\s+")
        else:
            out.append(re.escape(ch))
    return "".join(out)


def _words(*words: str) -> str:
    return "(?:" + "|".join(tr_word(w) for w in words) + ")"


_L = r"[^\W\d_]"  # a letter, Turkish ones included
_UP = "A-ZÇĞİÖŞÜ"

# --------------------------------------------------------------------------- amounts

_CURRENCIES = {"TL": "TRY", "TRY": "TRY", "YTL": "TRY", "₺": "TRY", "EUR": "EUR", "€": "EUR",
               "USD": "USD", "GBP": "GBP"}  # fmt: skip
_CUR = r"(?P<cur>TL|TRY|YTL|₺|EUR|€|USD|GBP)"
_CUR2 = r"(?P<cur2>TL|TRY|YTL|₺|EUR|€|USD|GBP)"
# Thousands with dots, decimals with a comma; no leading zero (refuses 0532..., IBAN
# groups); at most 7 plain digits (refuses account and phone numbers).
_NUM = r"(?P<int>[1-9]\d{0,2}(?:\.\d{3})+|[1-9]\d{0,6}|0)(?:,(?P<dec>\d{2}))?"
_NUM2 = r"(?P<int2>[1-9]\d{0,2}(?:\.\d{3})+|[1-9]\d{0,6}|0)(?:,(?P<dec2>\d{2}))?"
AMOUNT_RE = re.compile(
    rf"(?<![\w.,]){_NUM}[ \t\xa0]*{_CUR}(?![^\W\d_])"  # 1.250,00 TL / 1250 TL / 250,50 TRY
    rf"|(?<![\w]){_CUR2}[ \t\xa0]*{_NUM2}(?![\d]|[.,]\d)"  # ₺1.250,00 / TL 1.250,00
)
_IBAN_RE = re.compile(r"\b[A-Z]{2}\d{2}(?:\s?[A-Z0-9]{4}){3,7}(?:\s?[A-Z0-9]{1,4})?\b")
_PHONE_RE = re.compile(
    r"(?<!\d)(?:\+90|0090|0)?[\s-]?\(?[2-5]\d{2}\)?[\s-]?\d{3}[\s-]?\d{2}[\s-]?\d{2}(?!\d)"
)
_POSITIVE = re.compile(
    _words("tutar", "tutari", "tutarinda", "islem tutari", "gelen", "yatirilan", "havale",
           "eft", "fast", "odeme", "alacak", "amount", "tahsilat"),
)  # fmt: skip
_NEGATIVE = re.compile(
    _words("bakiye", "kullanilabilir", "limit", "masraf", "ucret", "komisyon", "bsmv",
           "vergi", "borc", "asgari"),
)  # fmt: skip
_PAYMENT_WORDS = re.compile(
    r"\b"
    + _words("gelen", "havale", "eft", "fast", "odeme", "yatirildi", "yatirilan", "hesabiniza",
             "tutarinda", "transfer", "dekont", "tahsilat", "alindi", "payment", "received",
             "gonderen", "para girisi")
)  # fmt: skip
_OUTGOING = re.compile(r"\b" + _words("giden", "hesabinizdan", "gonderdiniz", "cikis"))
_INCOMING = re.compile(r"\b" + _words("gelen", "hesabiniza", "yatirildi", "girisi", "alindi"))


@dataclass
class _Amount:
    minor: int
    currency: str
    start: int
    end: int
    score: int


def _find_amounts(text: str) -> list[_Amount]:
    forbidden = [m.span() for m in _IBAN_RE.finditer(text)]
    forbidden += [m.span() for m in _PHONE_RE.finditer(text)]
    found: list[_Amount] = []
    for match in AMOUNT_RE.finditer(text):
        start, end = match.span()
        if any(s < end and start < e for s, e in forbidden):
            continue
        integer = match.group("int") or match.group("int2")
        decimals = match.group("dec") or match.group("dec2") or "00"
        currency = _CURRENCIES[match.group("cur") or match.group("cur2")]
        minor = int(integer.replace(".", "")) * 100 + int(decimals)
        if minor == 0:
            continue
        line_start = text.rfind("\n", 0, start) + 1
        before = text[max(line_start, start - 60) : start]
        after = text[end : end + 25]
        score = 0
        if _POSITIVE.search(before) or re.match(r"\s*" + tr_word("tutarinda"), after):
            score += 2
        if _NEGATIVE.search(before) or _NEGATIVE.search(after.split("\n", 1)[0]):
            score -= 3
        found.append(_Amount(minor, currency, start, end, score))
    return found


# --------------------------------------------------------------------------- names

_NAME = rf"{_L}+(?:[.'’-]{_L}*)*(?:[ \t]+{_L}+(?:[.'’-]{_L}*)*){{1,5}}"
_UPPER_NAME = rf"(?:[{_UP}][{_UP}.'’-]+[ \t]+){{1,4}}[{_UP}][{_UP}.'’-]+"
_TITLE_NAME = rf"(?:[{_UP}]{_L}+[ \t]+){{1,4}}[{_UP}]{_L}+"
_SEP = r"[ \t]*[:：][ \t]*|[ \t]*\t[ \t]*|[ \t]{2,}"
_NAME_LABELS = _words(
    "ad soyad", "adi soyadi", "ad", "adi", "unvan", "unvani", "isim", "ismi", "musteri adi"
)
# In order of trust: a labelled field, Enpara's movement line, "<NAME> tarafından" in SMS.
_PAYER_PATTERNS: list[re.Pattern[str]] = [
    re.compile(
        rf"(?<![^\W\d_]){_words('gonderen', 'borclu', 'havale eden', 'gonderici')}"
        rf"(?:[ \t]+{_NAME_LABELS})?"
        rf"(?:{_SEP})(?P<name>{_NAME})"
    ),
    re.compile(rf"{_words('gelen transfer')}[ \t]*,[ \t]*(?P<name>{_NAME})[ \t]*,"),
    re.compile(
        rf"(?<![^\W\d_])(?P<name>{_UPPER_NAME}|{_TITLE_NAME})[ \t]+"
        rf"{_words('tarafindan', 'isimli kisiden', 'adli kisiden', 'isimli musteriden')}"
    ),
]
_RECIPIENT = re.compile(r"\b" + _words("alici", "alan", "lehdar") + r"\b")
_NAME_STOP_WORDS = {
    "iban", "banka", "bankasi", "hesap", "sube", "subesi", "no", "tc", "vkn", "tckn",
    "tarih", "tutar", "aciklama", "sayin", "musterimiz", "degerli", "hesabiniza",
    "bugun", "tarihinde", "saat", "fast", "eft", "havale", "ile", "ve", "tl",
}  # fmt: skip


def _fold(word: str) -> str:
    return name_key(word) or ""


def _clean_name(candidate: str) -> str | None:
    tokens = candidate.split()
    while tokens and _fold(tokens[0]) in _NAME_STOP_WORDS:
        tokens.pop(0)
    while tokens and _fold(tokens[-1]) in _NAME_STOP_WORDS:
        tokens.pop()
    if len(tokens) < 2 or any(_fold(t) in ("iban", "banka", "bankasi", "as") for t in tokens):
        return None
    return " ".join(tokens)


def _find_payer(text: str) -> str | None:
    for pattern in _PAYER_PATTERNS:
        for match in pattern.finditer(text):
            line_start = text.rfind("\n", 0, match.start()) + 1
            line_end = text.find("\n", match.end())
            line = text[line_start : line_end if line_end >= 0 else len(text)]
            if "@" in line or "<" in line:  # a forwarded header (Gönderen: Bank <x@y>)
                continue
            if _RECIPIENT.search(text[line_start : match.start()]):
                continue
            name = _clean_name(match.group("name"))
            if name:
                return name
    return None


# --------------------------------------------------------------------------- ref, date

REF_RE = re.compile(r"(?<![\w])REG[-\s_]?(\d{1,12})(?!\d)", re.IGNORECASE)
_DESC_RE = re.compile(
    rf"{_words('aciklama', 'aciklamasi', 'description')}(?:{_SEP})(?P<desc>[^\n]+)"
)
_DATE_RE = re.compile(
    r"(?<!\d)(?P<d>\d{1,2})[./](?P<m>\d{1,2})[./](?P<y>\d{4})"
    r"(?:[ \t,-]+(?:saat[ \t]*)?(?P<H>\d{1,2})[:.](?P<M>\d{2})(?::(?P<S>\d{2}))?)?"
    r"|(?<!\d)(?P<iy>\d{4})-(?P<im>\d{2})-(?P<id>\d{2})(?:[T ](?P<iH>\d{2}):(?P<iM>\d{2}))?"
)
_DATE_LABEL = re.compile(_words("islem tarihi", "tarih", "tarihi", "date", "valor"))


def _find_date(text: str) -> datetime | None:
    best: datetime | None = None
    for match in _DATE_RE.finditer(text):
        g = match.groupdict()
        try:
            if g["y"]:
                value = datetime(
                    int(g["y"]), int(g["m"]), int(g["d"]),
                    int(g["H"] or 0), int(g["M"] or 0), int(g["S"] or 0), tzinfo=ISTANBUL,
                )  # fmt: skip
            else:
                value = datetime(
                    int(g["iy"]), int(g["im"]), int(g["id"]),
                    int(g["iH"] or 0), int(g["iM"] or 0), tzinfo=ISTANBUL,
                )  # fmt: skip
        except ValueError:
            continue
        line_start = text.rfind("\n", 0, match.start()) + 1
        if _DATE_LABEL.search(text[line_start : match.start()]):
            return value
        best = best or value
    return best


# --------------------------------------------------------------------------- parse


def _mask(excerpt: str) -> str:
    excerpt = _IBAN_RE.sub(lambda m: m.group(0)[:4] + " **** ****", excerpt)
    return _PHONE_RE.sub(" *** ** **", excerpt)


def parse_payment_email(
    text: str,
    *,
    subject: str | None = None,
    received_at: datetime | None = None,
) -> ParsedPayment | None:
    """The payment a "payment received" mail or forwarded bank SMS describes, or None.

    None when the text speaks of no incoming payment (no payment words, an outgoing
    transfer) or quotes no amount next to a currency. ``confidence`` (0..1) rises with
    a labelled amount, a payer name and a REG ref and falls when several amounts
    compete; a caller may choose to hold low-confidence results for a person.
    """
    body = text.replace("\r\n", "\n").replace("\r", "\n")
    whole = f"{subject or ''}\n{body}"
    if not _PAYMENT_WORDS.search(whole):
        return None
    if _OUTGOING.search(whole) and not _INCOMING.search(whole):
        return None
    amounts = [a for a in _find_amounts(body) if a.score >= 0]
    if not amounts:
        return None
    top = max(a.score for a in amounts)
    best = next(a for a in amounts if a.score == top)
    rivals = {(a.minor, a.currency) for a in amounts if a.score == top} - {
        (best.minor, best.currency)
    }
    payer = _find_payer(body)
    ref_match = REF_RE.search(whole)
    desc_match = _DESC_RE.search(body)
    if ref_match:
        reference = f"REG-{int(ref_match.group(1))}"
    elif desc_match:
        reference = desc_match.group("desc").strip()[:140] or None
    else:
        reference = None
    confidence = 0.5 if best.score > 0 else 0.35
    confidence += 0.2 if payer else 0.0
    confidence += 0.25 if ref_match else (0.05 if reference else 0.0)
    confidence -= 0.2 if rivals else 0.0
    start = max(0, best.start - 100)
    excerpt = re.sub(r"\s+", " ", body[start : best.end + 100]).strip()[:240]
    return ParsedPayment(
        amount_minor=best.minor,
        currency=best.currency,
        payer_name=payer,
        reference=reference,
        paid_at=_find_date(body) or received_at,
        confidence=round(min(max(confidence, 0.0), 1.0), 2),
        raw_excerpt=_mask(excerpt),
    )


def parse_inbound(message: InboundEmail) -> ParsedPayment | None:
    return parse_payment_email(message.body_text, subject=message.subject, received_at=message.date)
