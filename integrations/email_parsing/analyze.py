"""What a bank or wallet mail says, read from its structure (pure, no database).

A mail is a payment only when it has the fields of an incoming transfer. Steps, per
document (the mail, and each message forwarded inside it) and per part (text and HTML
are both read):

1. **Fields.** ``Label : value`` lines, ``Label<TAB>value`` table cells, a label alone on
   a line with its value on the next, column tables (a row of labels over rows of
   values) and bilingual labels (``Gönderen / Sender``). Labels are compared whole,
   folded (Turkish-aware), against the vocabulary in ``banks.json``; a bank's entry adds
   its own labels. "Bonus tutarı" is not the label "Tutar", so a promotion quoting
   amounts has no amount field.
2. **Records.** One transaction per mail from its fields; or one per statement line
   (``Gelen Transfer, AD SOYAD, 250,00 TL ...``; a column table with several rows); or,
   for prose (SMS-style and wallet mails), one per sentence that states a completed
   transfer (``... tarafından ... 500,00 TL tutarında havale yapılmıştır``,
   ``AYŞE KAYA sana ₺250,00 gönderdi``, ``You received 250.00 TRY from John Smith``).
3. **Direction** from the parties: a named sender (Gönderen) and no named recipient is
   incoming, a named recipient (Alıcı) and no named sender is outgoing; a transaction
   type field (Gelen/Giden EFT) and the account holder's role in the sentence
   (hesabınıza / hesabınızdan, sent you / you sent) decide when both parties are named.
   Undecided is not a payment.
4. **Kind** of the mail: ``incoming_transfer``, ``statement`` (several records),
   ``outgoing_transfer``, ``unclear_direction``, ``marketing`` (amounts without the
   fields of a transaction, promotional wording) or ``other``. Only the first two
   produce payments; every kind is kept with its reasons.

When the text and the HTML part disagree about the amounts, the payments are marked
``disputed`` (the matcher then never confirms them by itself).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo

from pydantic import BaseModel, Field

from hub.members import name_key
from integrations.email_parsing.amounts import (
    IBAN_RE,
    Amount,
    amount_of,
    currency_of,
    find_amounts,
    join_split_amounts,
    mask,
)
from integrations.email_parsing.decode import InboundEmail
from integrations.email_parsing.text import fold, html_to_text, normalize

ISTANBUL = ZoneInfo("Europe/Istanbul")
BANKS_FILE = Path(__file__).with_name("banks.json")

Kind = Literal[
    "incoming_transfer",
    "statement",
    "outgoing_transfer",
    "unclear_direction",
    "marketing",
    "other",
]
PAYMENT_KINDS = ("incoming_transfer", "statement")
MAX_PART_CHARS = 512 * 1024


class ParsedPayment(BaseModel):
    amount_minor: int = Field(ge=0)
    currency: str
    payer_name: str | None = None
    reference: str | None = None
    paid_at: datetime | None = None
    transaction_id: str | None = None
    transfer_key: str = ""
    confidence: float = Field(ge=0, le=1)
    disputed: bool = False
    reasons: list[str] = Field(default_factory=list)
    raw_excerpt: str = ""


class MailAnalysis(BaseModel):
    kind: Kind
    direction: Literal["in", "out", "unclear", "none"]
    bank: str | None = None
    payments: list[ParsedPayment] = Field(default_factory=list)
    reasons: list[str] = Field(default_factory=list)

    @property
    def is_payment(self) -> bool:
        return self.kind in PAYMENT_KINDS and bool(self.payments)


# --------------------------------------------------------------------------- vocabulary


@dataclass(frozen=True)
class Vocabulary:
    labels: dict[str, str]  # folded label -> role
    incoming_types: tuple[str, ...]
    outgoing_types: tuple[str, ...]
    bank: str | None = None


def _label_key(text: str) -> str:
    text = fold(text).strip()
    text = re.sub(r"\(.*?\)", " ", text)
    text = re.sub(r"[:：.*]+$", "", text.strip())
    return " ".join(text.replace("'", "").split())


@lru_cache(maxsize=1)
def _banks() -> dict:
    return json.loads(BANKS_FILE.read_text(encoding="utf-8"))


@lru_cache(maxsize=64)
def vocabulary(bank: str | None = None) -> Vocabulary:
    data = _banks()
    generic = data["generic"]
    labels: dict[str, str] = {}
    entries = [generic] + [b for b in data["banks"] if b["id"] == bank]
    for entry in entries:
        for role, names in entry.get("labels", {}).items():
            for name in names:
                labels[_label_key(name)] = role
    return Vocabulary(
        labels,
        tuple(fold(t) for t in generic["incoming_types"]),
        tuple(fold(t) for t in generic["outgoing_types"]),
        bank,
    )


def detect_bank(*texts: str | None) -> str | None:
    """The bank entry whose domain appears in the sender or in a forwarded header."""
    haystack = " ".join(t for t in texts if t).lower()
    for entry in _banks()["banks"]:
        if any(re.search(rf"[@.]{re.escape(d)}\b", haystack) for d in entry["domains"]):
            return entry["id"]
    return None


def role_of(label: str, vocab: Vocabulary) -> str | None:
    key = _label_key(label)
    if not key or len(key) > 40:
        return None
    if key in vocab.labels:
        return vocab.labels[key]
    for part in re.split(r"\s*/\s*", key):  # bilingual: "Gönderen / Sender"
        if part in vocab.labels:
            return vocab.labels[part]
    return None


# --------------------------------------------------------------------------- fields


@dataclass
class FieldValue:
    role: str
    value: str
    line: int


_COLON_RE = re.compile(r"^(?P<label>[^:：\n]{1,45}?)[ \t]*[:：][ \t]*(?P<value>.*)$")
_SPACES_RE = re.compile(r"^(?P<label>\S.{0,40}?)[ \t]{2,}(?P<value>\S.*)$")
_HEADER_LINE = re.compile(
    r"^(?:from|to|cc|subject|date|sent|kimden|kime|konu|tarih|gonderildi|gonderen|bilgi)\s*:.*"
    r"(?:@|<|>|\d{1,2}:\d{2}\s*(?:\+|[ap]m))",
    re.IGNORECASE,
)


def _is_forward_header(line: str) -> bool:
    return "@" in line or bool(_HEADER_LINE.match(fold(line)))


_HEADERISH = re.compile(r"^(?:sent|to|cc|subject|date|kime|konu|tarih|gonderildi)\s*:", re.I)


def _weak_payer(lines: Sequence[str], i: int, value: str) -> FieldValue | None:
    """``From: NAME`` in a bank's own text (English layouts); not in a forwarded
    header block (``From:`` followed or preceded by ``Sent:``/``To:``/``Subject:``)."""
    around = [fold(x) for x in lines[max(0, i - 2) : i + 3] if x is not lines[i]]
    if any(_HEADERISH.match(x) for x in around) or "@" in value:
        return None
    return FieldValue("payer_weak", value, i)


def extract_fields(lines: Sequence[str], vocab: Vocabulary) -> tuple[list[FieldValue], list[dict]]:
    """Labelled fields of a document, and the rows of column tables with several rows."""
    out: list[FieldValue] = []
    table_rows: list[dict] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        if _is_forward_header(line):
            i += 1
            continue
        cells = [c.strip() for c in line.split("\t")]
        cells = [c for c in cells if c]
        if len(cells) >= 2:
            roles = [role_of(c, vocab) for c in cells]
            if all(roles):  # a row of labels: the rows under it hold the values
                j = i + 1
                rows = []
                while j < len(lines):
                    values = [c.strip() for c in lines[j].split("\t") if c.strip()]
                    if len(values) != len(cells) or any(role_of(v, vocab) for v in values):
                        break
                    rows.append({r: v for r, v in zip(roles, values, strict=True)})
                    j += 1
                if len(rows) == 1:
                    out.extend(FieldValue(r, v, i + 1) for r, v in rows[0].items())
                elif rows:
                    table_rows.extend(rows)
                i = max(j, i + 1)
                continue
            k = 0
            while k < len(cells) - 1:
                role = role_of(cells[k], vocab)
                if role and not role_of(cells[k + 1], vocab):
                    value = cells[k + 1]
                    if role == "amount" and k + 2 < len(cells) and currency_of(cells[k + 2]):
                        value = f"{value} {cells[k + 2]}"
                    out.append(FieldValue(role, value.lstrip(":： "), i))
                    k += 2
                else:
                    k += 1
            i += 1
            continue
        match = _COLON_RE.match(line) or _SPACES_RE.match(line)
        if match:
            role = role_of(match.group("label"), vocab)
            value = match.group("value").strip()
            if role is None and _label_key(match.group("label")) == "from" and value:
                weak = _weak_payer(lines, i, value)
                if weak:
                    out.append(weak)
                i += 1
                continue
            if role and value:
                out.append(FieldValue(role, value, i))
                i += 1
                continue
            if role and not value:  # "Tutar:" then the value on the next line
                nxt = _next_value(lines, i, vocab)
                if nxt is not None:
                    out.append(FieldValue(role, nxt[0], nxt[1]))
                    i = nxt[1] + 1
                    continue
        elif role_of(line, vocab) and len(line) <= 40:  # a label alone on its line
            role = role_of(line, vocab)
            nxt = _next_value(lines, i, vocab)
            if role and nxt is not None:
                out.append(FieldValue(role, nxt[0], nxt[1]))
                i = nxt[1] + 1
                continue
        i += 1
    return out, table_rows


def _next_value(lines: Sequence[str], i: int, vocab: Vocabulary) -> tuple[str, int] | None:
    if i + 1 < len(lines) and not role_of(lines[i + 1], vocab) and ":" not in lines[i + 1][:25]:
        return lines[i + 1].strip(), i + 1
    return None


# --------------------------------------------------------------------------- names

_L = r"[^\W\d_]"
_UP = "A-ZÇĞİÖŞÜÂÎÛ"
_NAME_TOKEN = rf"{_L}+(?:[.'’-]{_L}+)*\.?"
_UPPER_NAME = rf"(?:[{_UP}][{_UP}.'’-]+[ \t]+){{1,4}}[{_UP}][{_UP}.’-]*[{_UP}]"
_TITLE_NAME = rf"(?:[{_UP}]{_L}+[ \t]+){{1,4}}[{_UP}](?:{_L}+|\.)"  # "Ahmet K." too
_ANY_NAME = rf"(?:{_UPPER_NAME}|{_TITLE_NAME})"
_NAME_STOP = {
    "iban", "banka", "bankasi", "bank", "hesap", "hesabi", "sube", "subesi", "no", "tc", "vkn",
    "tckn", "tarih", "tutar", "aciklama", "sayin", "musterimiz", "degerli", "hesabiniza",
    "bugun", "tarihinde", "saat", "fast", "eft", "havale", "ile", "ve", "tl", "try", "gelen",
    "giden", "transfer", "para", "odeme", "payment", "from", "to", "you", "your", "hesabinizdan",
    "bilgi", "islem", "dekont", "kart", "bonus", "kampanya", "merhaba", "dear", "hi", "sevgili",
    "referans", "ref", "reg", "received", "gonderen", "alici", "sender", "recipient", "the",
    "papara", "wise", "revolut", "ininal", "hesabina", "tutarinda", "size", "sana",
    "de", "da", "te", "ta", "den", "dan",
}  # fmt: skip
_SALUTATIONS = {"sayin", "degerli", "sevgili", "merhaba", "dear", "hi"}
_ABLATIVE = re.compile(r"['’]?(?:d[ae]n|t[ae]n|D[AE]N|T[AE]N)$")


def clean_name(candidate: str | None) -> str | None:
    """A person's or company's name from a field value or a phrase, or None."""
    if not candidate:
        return None
    value = IBAN_RE.sub(" ", candidate)
    value = re.split(r"[,;|(\t]|\s-\s|\s/\s|\d", value, maxsplit=1)[0]
    tokens = value.split()
    while tokens and fold(tokens[0]).strip(".:") in _NAME_STOP:
        tokens.pop(0)
    while tokens and fold(tokens[-1]).strip(".:") in _NAME_STOP - _SALUTATIONS:
        tokens.pop()  # "Sayın" is a salutation in front and a surname at the end
    if tokens:
        last = _ABLATIVE.sub("", tokens[-1]) if re.search(r"['’]", tokens[-1]) else tokens[-1]
        tokens[-1] = last
    tokens = [t.strip(".:") if t.endswith(":") else t for t in tokens if t.strip(".:'’")]
    if not 2 <= len(tokens) <= 6:
        return None
    if any(not re.fullmatch(_NAME_TOKEN, t) for t in tokens):
        return None
    if any(fold(t).strip(".") in ("iban", "banka", "bankasi", "bank") for t in tokens):
        return None
    return " ".join(tokens)


_PROSE_PAYER: list[re.Pattern[str]] = [
    # "AYŞE KAYA'dan 250,00 TL" / "Mehmet Demir'den hesabınıza"
    re.compile(rf"(?<![^\W\d_])(?P<name>{_ANY_NAME})['’](?:d[ae]n|t[ae]n|D[AE]N|T[AE]N)\b"),
    # "... AYSE KAYA TARAFINDAN ..."
    re.compile(
        rf"(?<![^\W\d_])(?P<name>{_ANY_NAME})[ \t]+"
        r"(?:tarafından|tarafindan|TARAFINDAN|TARAFıNDAN|isimli kişiden|adlı kişiden)"
    ),
    # wallets, name first: "AYŞE KAYA sana ₺250,00 gönderdi", "John Smith sent you"
    re.compile(
        rf"(?<![^\W\d_])(?P<name>{_ANY_NAME})[ \t]+(?:sana|size|sent you|has sent you|paid you)\b"
    ),
    # "Gelen Transfer, AD SOYAD,"
    re.compile(
        r"(?i:gelen transfer|gelen havale|gelen eft|gelen fast)[ \t]*[,:-][ \t]*"
        rf"(?P<name>{_ANY_NAME})"
    ),
    # "received 250.00 TRY from John Smith", "payment from Jane Doe"
    re.compile(rf"\b(?i:from)[ \t]+(?P<name>{_ANY_NAME})"),
]


def prose_payer(text: str) -> str | None:
    for pattern in _PROSE_PAYER:
        for match in pattern.finditer(text):
            line_start = text.rfind("\n", 0, match.start()) + 1
            line_end = text.find("\n", match.end())
            line = text[line_start : line_end if line_end >= 0 else len(text)]
            if _is_forward_header(line):
                continue
            name = clean_name(match.group("name"))
            if name:
                return name
    return None


# --------------------------------------------------------------------------- refs, dates

REF_RE = re.compile(r"(?<![A-Za-z0-9])REG[ \t]*[-_/.:#]?[ \t]*0*(\d{1,12})(?!\d)", re.IGNORECASE)
_DATE_RE = re.compile(
    r"(?<!\d)(?P<d>\d{1,2})[./](?P<m>\d{1,2})[./](?P<y>\d{4})"
    r"(?:[ \t,-]+(?:saat[ \t]*)?(?P<H>\d{1,2})[:.](?P<M>\d{2})(?::(?P<S>\d{2}))?)?"
    r"|(?<!\d)(?P<iy>\d{4})-(?P<im>\d{2})-(?P<id>\d{2})(?:[T ](?P<iH>\d{2}):(?P<iM>\d{2}))?"
)


def find_date(text: str) -> datetime | None:
    for match in _DATE_RE.finditer(text):
        g = match.groupdict()
        try:
            if g["y"]:
                return datetime(
                    int(g["y"]), int(g["m"]), int(g["d"]),
                    int(g["H"] or 0), int(g["M"] or 0), int(g["S"] or 0), tzinfo=ISTANBUL,
                )  # fmt: skip
            return datetime(
                int(g["iy"]), int(g["im"]), int(g["id"]),
                int(g["iH"] or 0), int(g["iM"] or 0), tzinfo=ISTANBUL,
            )  # fmt: skip
        except ValueError:
            continue
    return None


def refs(text: str | None) -> list[str]:
    if not text:
        return []
    return list(dict.fromkeys(f"REG-{int(m.group(1))}" for m in REF_RE.finditer(text)))


# --------------------------------------------------------------------------- cues

_IN_CUES = re.compile(
    r"hesabiniza|hesabinize|gelmistir|gecmistir|yatirilmistir|para girisi|"
    r"(?<!['’]in )(?<!['’]un )\bhesabina\b.{0,60}\b(?:geldi|gecti|yatti|yatirildi)\b|"
    r"['’](?:d[ae]n|t[ae]n)\b.{0,60}\b(?:geldi|gecti)\b|"
    r"gelen (?:havale|eft|fast|transfer|para|odeme)|sana\b.{0,40}\bgonderdi|"
    r"size\b.{0,40}\bgonderdi|sent you|you (?:have |'ve )?received|received (?:a )?payment|"
    r"payment received|money received|incoming (?:transfer|payment)|hesabiniza gecti|"
    r"tarafindan.{0,60}(?:yapilmistir|gonderilmistir|yatirilmistir)"
)
_OUT_CUES = re.compile(
    r"hesabinizdan|kartinizdan|gonderdiniz|gonderdin\b|you sent|you paid|you have sent|"
    r"giden (?:havale|eft|fast|transfer|odeme)|transfer to\b|sent to\b|"
    r"odemeniz (?:yapilmistir|gerceklesmistir)|harcama|"
    r"['’](?:n?[iu]n) hesabina|hesabina (?:gonderil|aktaril|yatiril)"
)
_PROMO = re.compile(
    r"kampanya|firsat|bonus|indirim|kazan|puan|chip-?para|hediye|cashback|offer|promotion|"
    r"abonelik|unsubscribe|ayricalik|faiz oran|kredi karti basvuru|reklam|iletisim izni|"
    r"e-?bulten|newsletter|limited time|sadece bugun|varan"
)
_TRANSFER_NOUN = re.compile(
    r"havale|eft\b|fast\b|transfer|para|odeme|payment|money|gonderdi|sent|received|"
    r"harcama|hesabiniza"
)
_COMPLETED = re.compile(
    r"gelmistir|gecmistir|yatirilmistir|yapilmistir|gerceklesmistir|aktarilmistir|"
    r"gonderdi\b|gonderilmistir|sent you|received|geldi\b|gecti\b|alindi|"
    r"gonderdiniz|gonderdin\b|you sent|you paid|tamamlandi|completed"
)


def _cues(pattern: re.Pattern[str], text: str) -> int:
    return len(pattern.findall(fold(text)))


# --------------------------------------------------------------------------- records


@dataclass
class Record:
    amount: Amount | None = None
    amount_labelled: bool = False
    payer: str | None = None
    recipient: str | None = None
    description: str | None = None
    date: datetime | None = None
    txn_id: str | None = None
    txn_type: str | None = None
    direction: int = 0  # >0 incoming, <0 outgoing
    text: str = ""
    reasons: list[str] = field(default_factory=list)
    structural: bool = False  # has a field of a transaction besides the amount
    context: str = ""  # the whole part, when it holds this one record only


def _name_first(lines: Sequence[str]) -> str | None:
    """A layout that opens with the payer's name on a line of its own, then the amount."""
    for i, line in enumerate(lines[:4]):
        name = clean_name(line)
        if name and name == line.strip() and re.fullmatch(_ANY_NAME, name):
            following = " ".join(lines[i + 1 : i + 3])
            if find_amounts(following):
                return name
    return None


def _type_direction(value: str | None, vocab: Vocabulary) -> int:
    if not value:
        return 0
    folded = fold(value)
    if any(re.search(rf"\b{re.escape(t)}\b", folded) for t in vocab.outgoing_types):
        return -1
    if any(re.search(rf"\b{re.escape(t)}\b", folded) for t in vocab.incoming_types):
        return 1
    return 0


def _txn_id(value: str | None) -> str | None:
    if not value:
        return None
    match = re.search(r"[A-Za-z0-9][A-Za-z0-9-]{3,40}", value)
    token = match.group(0) if match else None
    return token if token and re.search(r"\d", token) else None


def _record_from_fields(
    fields: dict[str, str], vocab: Vocabulary, text: str, holders: Sequence[str]
) -> Record:
    rec = Record(text=text)
    currency = currency_of(fields.get("currency", "")) if fields.get("currency") else None
    if fields.get("amount"):
        rec.amount = amount_of(fields["amount"], currency or "TRY")
        rec.amount_labelled = rec.amount is not None
    rec.payer = clean_name(fields.get("payer"))
    rec.recipient = clean_name(fields.get("recipient"))
    rec.description = fields.get("description")
    rec.date = find_date(fields.get("date", "")) if fields.get("date") else None
    rec.txn_id = _txn_id(fields.get("txn_id"))
    rec.txn_type = fields.get("txn_type")
    rec.structural = bool(rec.payer or rec.recipient or rec.txn_id or rec.txn_type)
    holder_keys = {name_key(h, sort_tokens=True) for h in holders}
    payer_is_holder = name_key(rec.payer, sort_tokens=True) in holder_keys if rec.payer else False
    recipient_is_holder = (
        name_key(rec.recipient, sort_tokens=True) in holder_keys if rec.recipient else False
    )
    score = 3 * _type_direction(rec.txn_type, vocab)
    if rec.txn_type and score:
        rec.reasons.append(f"transaction type '{rec.txn_type}'")
    if rec.payer and not rec.recipient:
        score += -2 if payer_is_holder else 2
        rec.reasons.append("a sender (Gönderen) is named, no recipient")
    elif rec.recipient and not rec.payer and recipient_is_holder:
        score += 2
        rec.reasons.append("the recipient is the account holder")
    elif rec.recipient and not rec.payer:
        score -= 2
        rec.reasons.append("a recipient (Alıcı) is named, no sender")
    elif rec.payer and rec.recipient:
        if recipient_is_holder and not payer_is_holder:
            score += 2
            rec.reasons.append("the recipient is the account holder")
        elif payer_is_holder and not recipient_is_holder:
            score -= 2
            rec.reasons.append("the sender is the account holder")
    rec.direction = score
    return rec


_STATEMENT_LINE = re.compile(
    r"(?:^|[\s,;|(-])(?P<dir>gelen|giden|incoming|outgoing|alacak|borc)\b", re.IGNORECASE
)


def _statement_records(
    lines: Sequence[str], vocab: Vocabulary, *, labelled_party: bool = False
) -> list[Record]:
    """One record per line that carries a direction word and an amount."""
    records: list[Record] = []
    for line in lines:
        folded = fold(line)
        marker = _STATEMENT_LINE.search(folded)
        amounts = [a for a in find_amounts(line)]
        if not marker or not amounts or _is_forward_header(line):
            continue
        if _PROMO.search(folded):
            continue
        word = marker.group("dir")
        direction = 1 if word in ("gelen", "incoming", "alacak") else -1
        amount = amounts[0]
        if amount.sign:
            direction = amount.sign
        rest = line[marker.end() :]
        rest = re.sub(r"^(?i:[ \t]*(?:transfer|havale|eft|fast|para|payment)\b)+", "", rest)
        name = None
        for segment in re.split(r"[,;|\t]|\s-\s", rest):
            segment = segment.strip()
            if segment and not find_amounts(segment) and not REF_RE.search(segment):
                name = clean_name(segment)
                if name:
                    break
        desc = re.search(
            r"(?i:a[çc][ıi]klama|description|ref)[ \t]*[:：][ \t]*(?P<d>[^,;|\t]+)", line
        )
        if not (name or labelled_party or find_date(line) or REF_RE.search(line)):
            continue  # "gelen her EFT için 5 TL iade": a sentence, not a movement
        records.append(
            Record(
                amount=amount,
                amount_labelled=True,
                payer=name if direction > 0 else None,
                recipient=name if direction < 0 else None,
                description=desc.group("d").strip() if desc else None,
                date=find_date(line),
                direction=2 * direction,
                text=line,
                reasons=[f"statement line '{word}'"],
                structural=True,
            )
        )
    return records


def _prose_records(text: str, subject: str | None) -> list[Record]:
    """Sentences that state a completed transfer of an amount (SMS, wallet mails)."""
    sentences = re.split(r"(?<=[.!])\s+(?=[A-ZÇĞİÖŞÜ])|\n+", text)
    records = _prose_units(sentences)
    if not records:
        records = _prose_units(re.split(r"\n{2,}", text))
    if not records and len(text) < 800:
        records = _prose_units([text])
    return records


def _prose_units(sentences: Iterable[str]) -> list[Record]:
    records: list[Record] = []
    for sentence in sentences:
        folded = fold(sentence)
        amounts = find_amounts(sentence)
        if not amounts or _PROMO.search(folded):
            continue
        if not (_TRANSFER_NOUN.search(folded) and _COMPLETED.search(folded)):
            continue
        score = min(_cues(_IN_CUES, sentence), 2) - min(_cues(_OUT_CUES, sentence), 2)
        if score == 0:
            continue
        positive = [a for a in amounts if not _near_balance(sentence, a)]
        if not positive:
            continue
        rec = Record(
            amount=positive[0],
            payer=prose_payer(sentence) if score > 0 else None,
            date=find_date(sentence),
            direction=score,
            text=sentence,
            reasons=["a sentence states a completed transfer"],
            structural=True,
        )
        records.append(rec)
    return records


def _states_transfer(text: str) -> bool:
    for sentence in re.split(r"(?<=[.!])\s+|\n+", text):
        folded = fold(sentence)
        if _PROMO.search(folded):
            continue
        transfer = _TRANSFER_NOUN.search(folded) and _COMPLETED.search(folded)
        if transfer and (_cues(_IN_CUES, sentence) or _cues(_OUT_CUES, sentence)):
            return True
    return False


_BALANCE_WORDS = re.compile(r"bakiye|balance|limit|masraf|ucret|komisyon|bsmv|vergi|asgari")


def _near_balance(text: str, amount: Amount) -> bool:
    before = fold(text[max(0, amount.start - 30) : amount.start])
    return bool(_BALANCE_WORDS.search(before))


# --------------------------------------------------------------------------- documents


@dataclass
class PartResult:
    kind: str
    records: list[Record]
    reasons: list[str]
    has_amount: bool


def analyze_part(
    text: str, *, subject: str | None, vocab: Vocabulary, holders: Sequence[str] = ()
) -> PartResult:
    text = re.sub(r"(?m)^[ \t]*(?:>[ \t]?)+", "", normalize(text))  # quoted forwards
    text = join_split_amounts(text)
    lines = [line.strip() for line in text.split("\n")]
    lines = [line for line in lines if line]
    fields, table_rows = extract_fields(lines, vocab)
    whole_cues = _cues(_IN_CUES, f"{subject or ''}\n{text}") - _cues(
        _OUT_CUES, f"{subject or ''}\n{text}"
    )
    records: list[Record] = []
    first: dict[str, str] = {}
    for f in fields:
        if f.role == "description" and "description" in first:
            continue
        first.setdefault(f.role, f.value)
    if "payer" not in first and "payer_weak" in first:
        first["payer"] = first["payer_weak"]
    if table_rows:
        for row in table_rows:
            rec = _record_from_fields(row, vocab, " ".join(row.values()), holders)
            if not rec.direction and rec.amount and rec.amount.sign:
                rec.direction = 2 * rec.amount.sign
            if not rec.direction and rec.description:
                rec.direction = 2 * _type_direction(rec.description, vocab)
            if rec.amount:
                rec.structural = True
                records.append(rec)
    if not records:
        party = any(first.get(k) for k in ("payer", "recipient", "txn_id"))
        statement = _statement_records(lines, vocab, labelled_party=party)
        if len(statement) >= 2 or (statement and "amount" not in first):
            records = statement
    if not records and "amount" in first:
        rec = _record_from_fields(first, vocab, text, holders)
        if rec.amount is not None and not rec.structural and _states_transfer(text):
            rec.structural = True
            rec.reasons.append("a sentence states a completed transfer")
        if rec.amount is not None:
            if whole_cues:
                rec.direction += max(min(whole_cues, 2), -2)
                rec.reasons.append(
                    "the account holder receives (hesabınıza / received)"
                    if whole_cues > 0
                    else "the account holder sends (hesabınızdan / sent)"
                )
            records = [rec]
    if not records:
        records = _prose_records(text, subject)
    doc_text = text
    for rec in records:
        if rec.payer is None and rec.direction > 0 and rec.recipient is None:
            rec.payer = prose_payer(rec.text) or (
                prose_payer(doc_text) if len(records) == 1 else None
            )
        if rec.payer is None and rec.direction > 0 and rec.recipient is None and len(records) == 1:
            rec.payer = _name_first(lines)
        if rec.date is None:
            rec.date = find_date(rec.text) or (find_date(doc_text) if len(records) == 1 else None)
        if rec.payer is None and rec.direction > 0 and len(records) == 1 and first.get("payer"):
            rec.payer = clean_name(first["payer"])
        if rec.txn_id is None and len(records) == 1 and first.get("txn_id"):
            rec.txn_id = _txn_id(first["txn_id"])
        if rec.description is None and len(records) == 1 and first.get("description"):
            rec.description = first["description"]
        if len(records) == 1:
            rec.context = f"{subject or ''}\n{doc_text}"
    has_amount = bool(find_amounts(text))
    transactions = [r for r in records if r.amount is not None and r.structural]
    if not transactions:
        promo = bool(_PROMO.search(fold(f"{subject or ''}\n{text}")))
        kind = "marketing" if has_amount and promo else "other"
        why = "amounts without the fields of a transaction" if has_amount else "no amount"
        return PartResult(kind, [], [why + (", promotional wording" if promo else "")], has_amount)
    incoming = [r for r in transactions if r.direction > 0]
    outgoing = [r for r in transactions if r.direction < 0]
    if incoming:
        kind = "statement" if len(transactions) > 1 else "incoming_transfer"
        return PartResult(kind, incoming, incoming[0].reasons, True)
    if outgoing:
        return PartResult("outgoing_transfer", [], outgoing[0].reasons, True)
    return PartResult(
        "unclear_direction", [], ["a transaction whose direction the parties do not decide"], True
    )


def _to_payment(rec: Record, *, disputed: bool, part: str) -> ParsedPayment:
    assert rec.amount is not None
    found_refs = refs(rec.description) or refs(rec.text) or refs(rec.context)
    reference = (
        " ".join(found_refs) if found_refs else (rec.description or "").strip()[:140] or None
    )
    confidence = 0.55 if rec.amount_labelled else 0.45
    reasons = list(rec.reasons)
    if rec.payer:
        confidence += 0.2
    else:
        reasons.append("no payer name")
    if found_refs:
        confidence += 0.2
    if disputed:
        confidence -= 0.3
        reasons.append("the text and HTML parts disagree about the amounts")
    if rec.txn_id:
        key = "txn:" + re.sub(r"[^0-9a-z]", "", rec.txn_id.lower())
    else:
        basis = "|".join(
            [
                name_key(rec.payer, sort_tokens=True) or "",
                str(rec.amount.minor),
                rec.amount.currency,
                rec.date.strftime("%Y-%m-%d") if rec.date else "",
                " ".join(found_refs) or fold(rec.description or ""),
            ]
        )
        key = "tx:" + hashlib.sha256(basis.encode("utf-8")).hexdigest()[:32]
    excerpt = re.sub(r"\s+", " ", rec.text[:400]).strip()[:240]
    return ParsedPayment(
        amount_minor=rec.amount.minor,
        currency=rec.amount.currency,
        payer_name=rec.payer,
        reference=reference,
        paid_at=rec.date,
        transaction_id=rec.txn_id,
        transfer_key=key,
        confidence=round(min(max(confidence, 0.0), 1.0), 2),
        disputed=disputed,
        reasons=[*reasons, f"read from the {part} part"],
        raw_excerpt=mask(excerpt),
    )


def analyze_document(
    text: str,
    html: str | None,
    *,
    subject: str | None,
    sender: str | None = None,
    holders: Sequence[str] = (),
) -> MailAnalysis:
    """Both parts of one message: the one that parses, and whether they agree.

    Each part is read up to ``MAX_PART_CHARS`` (a bank mail is a few KiB; a huge text
    part is an attachment pasted inline or hostile, and is not read further)."""
    text, html = text[:MAX_PART_CHARS], (html or "")[: MAX_PART_CHARS * 4] or None
    bank = detect_bank(sender, text[:4000], (html or "")[:4000])
    vocab = vocabulary(bank)
    results: list[tuple[str, PartResult]] = []
    if text.strip():
        results.append(("text", analyze_part(text, subject=subject, vocab=vocab, holders=holders)))
    if html and html.strip():
        results.append(
            (
                "HTML",
                analyze_part(html_to_text(html), subject=subject, vocab=vocab, holders=holders),
            )
        )
    if not results:
        return MailAnalysis(kind="other", direction="none", bank=bank, reasons=["empty message"])
    paying = [(name, r) for name, r in results if r.kind in PAYMENT_KINDS]
    kinds = {r.kind for _, r in results}
    if paying and ("outgoing_transfer" in kinds or "unclear_direction" in kinds):
        return MailAnalysis(
            kind="unclear_direction",
            direction="unclear",
            bank=bank,
            reasons=["the text and HTML parts disagree about the direction"],
        )
    if paying:
        name, best = max(
            paying,
            key=lambda item: (
                sum(
                    bool(r.payer) + bool(refs(r.description) or refs(r.text))
                    for r in item[1].records
                ),
                sum(r.amount_labelled for r in item[1].records),
                item[0] == "HTML",  # what the person saw, when the parts are equally complete
            ),
        )
        sets = [sorted((r.amount.minor, r.amount.currency) for r in p.records) for _, p in paying]
        disputed = any(s != sets[0] for s in sets)
        payments = [_to_payment(r, disputed=disputed, part=name) for r in best.records]
        return MailAnalysis(
            kind=best.kind,  # type: ignore[arg-type]
            direction="in",
            bank=bank,
            payments=payments,
            reasons=best.reasons,
        )
    order = ["outgoing_transfer", "unclear_direction", "marketing", "other"]
    name, chosen = min(results, key=lambda item: order.index(item[1].kind))
    direction = {"outgoing_transfer": "out", "unclear_direction": "unclear"}.get(
        chosen.kind, "none"
    )
    return MailAnalysis(kind=chosen.kind, direction=direction, bank=bank, reasons=chosen.reasons)  # type: ignore[arg-type]


def analyze_email(message: InboundEmail, *, holders: Sequence[str] = ()) -> MailAnalysis:
    """The mail and the messages forwarded inside it (as attachments), together."""
    docs = [message, *_forwarded(message.forwarded)]
    analyses = [
        analyze_document(d.text, d.html, subject=d.subject, sender=d.sender, holders=holders)
        for d in docs
    ]
    paying = [a for a in analyses if a.is_payment]
    if paying:
        seen: set[str] = set()
        payments: list[ParsedPayment] = []
        for analysis in paying:
            for payment in analysis.payments:
                if payment.transfer_key not in seen:
                    seen.add(payment.transfer_key)
                    payments.append(payment)
        kind = "statement" if len(payments) > 1 else "incoming_transfer"
        reasons = paying[0].reasons + (
            ["forwarded as an attachment"] if paying[0] is not analyses[0] else []
        )
        return MailAnalysis(
            kind=kind, direction="in", bank=paying[0].bank, payments=payments, reasons=reasons
        )
    order = ["outgoing_transfer", "unclear_direction", "marketing", "other"]
    return min(analyses, key=lambda a: order.index(a.kind))


def _forwarded(messages: Iterable[InboundEmail]) -> list[InboundEmail]:
    out: list[InboundEmail] = []
    for m in messages:
        out.append(m)
        out.extend(_forwarded(m.forwarded))
    return out
