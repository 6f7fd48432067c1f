"""Amounts in Turkish and English notation, with the currency before or after.

``1.250,00 TL`` / ``₺1.250,00`` / ``TL 1.250,00`` / ``1250 TL`` / ``250,50 TRY`` (Turkish:
dot thousands, comma decimals) and ``1,250.00 TRY`` / ``250.00 TRY`` / ``TRY 250.00`` /
``₺250.00`` (English). A dot or comma followed by exactly three digits is a thousands
separator, followed by two a decimal one; so ``1.250`` is 1250 and ``12.50`` is 12.50.
No leading zero (refuses 0532..., IBAN groups) and at most 7 plain digits (refuses
account and phone numbers).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

CURRENCIES = {"TL": "TRY", "TRY": "TRY", "YTL": "TRY", "₺": "TRY", "EUR": "EUR", "€": "EUR",
              "USD": "USD", "$": "USD", "GBP": "GBP", "£": "GBP"}  # fmt: skip
_CUR = r"TL|TRY|YTL|₺|EUR|€|USD|GBP|£|\$"
NUMBER = (
    r"[1-9]\d{0,2}(?:\.\d{3})+(?:,\d{2})?"  # 1.250 / 1.250,00 / 12.345.678,90
    r"|[1-9]\d{0,2}(?:,\d{3})+(?:\.\d{2})?"  # 1,250 / 1,250.00
    r"|(?:[1-9]\d{0,6}|0)[.,]\d{2}"  # 250,50 / 250.50 / 0,50
    r"|[1-9]\d{0,6}"  # 1250
)
AMOUNT_RE = re.compile(
    rf"(?<![\w.,])(?P<int>{NUMBER})(?![\d]|[.,]\d)[ \t]*(?P<cur>{_CUR})(?![^\W\d_])"
    rf"|(?<![^\W\d_])(?P<cur2>{_CUR})[ \t]*(?P<int2>{NUMBER})(?![\d]|[.,]\d)"
)
NUMBER_ONLY_RE = re.compile(rf"^[+-]?[ \t]*(?P<n>{NUMBER})$")
CURRENCY_ONLY_RE = re.compile(rf"^(?P<cur>{_CUR})$")
IBAN_RE = re.compile(r"\b[A-Z]{2}\d{2}(?:[ ]?[A-Z0-9]{4}){3,7}(?:[ ]?[A-Z0-9]{1,4})?\b")
PHONE_RE = re.compile(
    r"(?<!\d)(?:\+90|0090|0)[ -]?\(?[2-5]\d{2}\)?[ -]?\d{3}[ -]?\d{2}[ -]?\d{2}(?!\d)"
)
_SPLIT_RE = re.compile(
    rf"(?m)^(?P<num>[ \t]*[+-]?[ \t]*(?:{NUMBER}))[ \t]*\n[ \t]*(?P<cur>{_CUR})[ \t]*$"
)


@dataclass(frozen=True)
class Amount:
    minor: int
    currency: str
    start: int
    end: int
    sign: int  # +1, -1, or 0 when no sign was written


def to_minor(number: str) -> int:
    """``1.250,00`` / ``1,250.00`` / ``1250`` / ``12.50`` -> minor units."""
    number = number.strip()
    match = re.fullmatch(r"(.*?)(?:[.,](\d{2}))?", number)
    assert match is not None
    integer, decimals = match.group(1), match.group(2)
    if decimals is None and re.fullmatch(r"\d{1,3}(?:[.,]\d{3})*", number):
        integer = number
    return int(re.sub(r"[.,]", "", integer or "0")) * 100 + int(decimals or 0)


def join_split_amounts(text: str) -> str:
    """``1.250,00`` on one line and ``TL`` alone on the next become one line."""
    return _SPLIT_RE.sub(lambda m: f"{m.group('num')} {m.group('cur')}", text)


def find_amounts(text: str) -> list[Amount]:
    forbidden = [m.span() for m in IBAN_RE.finditer(text)]
    forbidden += [m.span() for m in PHONE_RE.finditer(text)]
    found: list[Amount] = []
    for match in AMOUNT_RE.finditer(text):
        start, end = match.span()
        if any(s < end and start < e for s, e in forbidden):
            continue
        number = match.group("int") or match.group("int2")
        minor = to_minor(number)
        if minor == 0:
            continue
        currency = CURRENCIES[match.group("cur") or match.group("cur2")]
        before = text[max(0, start - 2) : start].rstrip(" \t")
        sign = 0
        if before.endswith("+"):
            sign = 1
        elif before.endswith("-") and (len(before) < 2 or not before[-2].isalnum()):
            sign = -1
        found.append(Amount(minor, currency, start, end, sign))
    return found


def amount_of(value: str, currency_hint: str | None = None) -> Amount | None:
    """The amount a field value states (``1.250,00 TL``, or ``1.250,00`` with a
    currency given elsewhere)."""
    found = find_amounts(value)
    if found:
        return found[0]
    match = NUMBER_ONLY_RE.match(value.strip())
    if match and currency_hint:
        minor = to_minor(match.group("n"))
        sign = -1 if value.strip().startswith("-") else (1 if value.strip().startswith("+") else 0)
        return Amount(minor, currency_hint, 0, len(value), sign) if minor else None
    return None


def currency_of(value: str) -> str | None:
    match = CURRENCY_ONLY_RE.match(value.strip().upper().replace("TÜRK LIRASI", "TL"))
    return CURRENCIES[match.group("cur")] if match else None


def mask(excerpt: str) -> str:
    excerpt = IBAN_RE.sub(lambda m: m.group(0)[:4] + " **** ****", excerpt)
    return PHONE_RE.sub(" *** ** **", excerpt)
