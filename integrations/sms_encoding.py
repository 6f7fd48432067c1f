"""How an SMS text goes over the air: its encoding, its segments and what it costs.

Pure functions, computed before a message is sent (the hub records segments and cost,
and refuses a text longer than the provider takes before calling it).

Encodings (3GPP TS 23.038 / 23.040):

- ``GSM7``: every character is in the GSM 7-bit default alphabet or its extension table
  (``^ { } \\ [ ~ ] | €`` and form feed cost two septets: escape + character). 160 septets
  in one message, 153 per part of a concatenated one (the 6-byte concatenation header).
- ``TR``: Turkish letters outside the default alphabet (``Ğ İ Ş ç ğ ı ş``) through the
  Turkish National Language Single Shift table (each costs two septets; ``Ç Ö Ü ö ü`` are
  in the default alphabet and cost one). The header carries the national-language
  element (3 bytes), so 155 septets in one message and 149 per part. This is what
  Netgsm's ``encoding: "TR"`` asks for (CONTRACTS.md "3. Netgsm SMS"); it is the reason
  a Turkish text is not sent as UCS-2 at 70 characters.
- ``UCS2``: anything else (emoji, Cyrillic, Arabic ...): 70 UTF-16 code units in one
  message, 67 per part; a surrogate pair is never split across parts.

A character that needs two septets is never split across parts either. Cost: one credit
per segment per recipient (the unit providers bill in, Netgsm's "boy"; an assumption:
the contract states no price).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

# GSM 03.38 default alphabet (basic table), one septet each.
GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
# Default extension table (escape + character: two septets each).
GSM7_EXTENSION = frozenset("\f^{}\\[~]|€")
# Turkish single shift table (TS 23.038 A.2.1): the default extension plus Turkish letters.
TURKISH_SHIFT = GSM7_EXTENSION | frozenset("ĞİŞçğış")

MAX_SEGMENTS = 7  # longest text the hub sends (an assumption: Netgsm states no number)


class Encoding(StrEnum):
    GSM7 = "GSM7"
    TR = "TR"
    UCS2 = "UCS2"


# (units in a single message, units per part of a concatenated one)
CAPACITY: dict[Encoding, tuple[int, int]] = {
    Encoding.GSM7: (160, 153),
    Encoding.TR: (155, 149),
    Encoding.UCS2: (70, 67),
}


@dataclass(frozen=True)
class SmsPlan:
    """What a text costs: its encoding, its units (septets or UTF-16 code units), the
    number of segments and the credits (segments x recipients)."""

    encoding: Encoding
    units: int
    segments: int
    cost_units: int
    characters: int


def choose_encoding(text: str) -> Encoding:
    """The cheapest encoding that carries ``text`` unchanged."""
    chars = set(text)
    if chars <= GSM7_BASIC | GSM7_EXTENSION:
        return Encoding.GSM7
    if chars <= GSM7_BASIC | TURKISH_SHIFT:
        return Encoding.TR
    return Encoding.UCS2


def unit_lengths(text: str, encoding: Encoding) -> list[int]:
    """The units each character takes in ``encoding`` (1 or 2), in order."""
    if encoding is Encoding.UCS2:
        return [2 if ord(c) > 0xFFFF else 1 for c in text]
    shifted = GSM7_EXTENSION if encoding is Encoding.GSM7 else TURKISH_SHIFT
    out = []
    for c in text:
        if c in GSM7_BASIC:
            out.append(1)
        elif c in shifted:
            out.append(2)
        else:
            raise ValueError(f"character U+{ord(c):04X} is not in the {encoding} alphabet")
    return out


def count_segments(lengths: list[int], single: int, part: int) -> int:
    """Segments for characters of the given unit lengths: one message when they fit in
    ``single`` units, else parts of ``part`` units, a character never split."""
    total = sum(lengths)
    if total <= single:
        return 1
    segments, used = 1, 0
    for length in lengths:
        if used + length > part:
            segments += 1
            used = 0
        used += length
    return segments


def plan(text: str, *, recipients: int = 1, encoding: Encoding | None = None) -> SmsPlan:
    """Encoding, units, segments and cost of ``text`` sent to ``recipients`` numbers.
    An empty text is one (empty) segment."""
    chosen = encoding or choose_encoding(text)
    lengths = unit_lengths(text, chosen)
    single, part = CAPACITY[chosen]
    segments = count_segments(lengths, single, part)
    return SmsPlan(
        encoding=chosen,
        units=sum(lengths),
        segments=segments,
        cost_units=segments * max(recipients, 0),
        characters=len(text),
    )


def max_units(encoding: Encoding, segments: int = MAX_SEGMENTS) -> int:
    """Most units a text of ``segments`` parts carries."""
    single, part = CAPACITY[encoding]
    return single if segments <= 1 else part * segments
