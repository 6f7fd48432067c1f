"""How the emulator counts what a message costs, on its own (it never imports the hub's
``integrations.sms_encoding``, so the two can disagree and a test can see it).

GSM 03.38 default alphabet by code point, its extension table, and the Turkish single
shift table (3GPP TS 23.038 A.2.1) by code point; a text sent with ``encoding: "TR"``
uses the Turkish table when it needs it, UCS-2 when even that cannot carry it.
Without ``encoding: "TR"`` Netgsm sends Turkish letters as their Latin look-alikes
(``ş`` -> ``s``); the emulator records the text as it would reach the handset.
"""

from __future__ import annotations

_BASIC = (
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞ\x1bÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
BASIC_CODE = {ch: i for i, ch in enumerate(_BASIC) if ch != "\x1b"}
EXTENSION_CODE = {"\f": 0x0A, "^": 0x14, "{": 0x28, "}": 0x29, "\\": 0x2F, "[": 0x3C,
                  "~": 0x3D, "]": 0x3E, "|": 0x40, "€": 0x65}  # fmt: skip
TURKISH_SHIFT_CODE = {**EXTENSION_CODE, "Ğ": 0x47, "İ": 0x49, "Ş": 0x53, "ç": 0x63,
                      "ğ": 0x67, "ı": 0x69, "ş": 0x73}  # fmt: skip
ESC = 0x1B
_LATIN = str.maketrans("ĞİŞçğış", "GIScgis")

# (single message, per part) capacities in septets or UCS-2 code units.
LIMITS = {"GSM7": (160, 153), "TR": (155, 149), "UCS2": (70, 67)}


def septets(text: str, shift: dict[str, int]) -> list[tuple[int, ...]] | None:
    out: list[tuple[int, ...]] = []
    for ch in text:
        if ch in BASIC_CODE:
            out.append((BASIC_CODE[ch],))
        elif ch in shift:
            out.append((ESC, shift[ch]))
        else:
            return None
    return out


def ucs2_units(text: str) -> list[tuple[int, ...]]:
    data = text.encode("utf-16-be")
    units = [int.from_bytes(data[i : i + 2], "big") for i in range(0, len(data), 2)]
    out: list[tuple[int, ...]] = []
    i = 0
    while i < len(units):
        if 0xD800 <= units[i] <= 0xDBFF and i + 1 < len(units):
            out.append((units[i], units[i + 1]))
            i += 2
        else:
            out.append((units[i],))
            i += 1
    return out


def encode(text: str, turkish: bool) -> tuple[str, str, list[tuple[int, ...]]]:
    """(encoding, text as delivered, characters as code groups)."""
    if not turkish:
        text = text.translate(_LATIN)
    gsm = septets(text, EXTENSION_CODE)
    if gsm is not None:
        return "GSM7", text, gsm
    if turkish:
        tr = septets(text, TURKISH_SHIFT_CODE)
        if tr is not None:
            return "TR", text, tr
    return "UCS2", text, ucs2_units(text)


def segment_count(groups: list[tuple[int, ...]], encoding: str) -> int:
    single, part = LIMITS[encoding]
    if sum(len(g) for g in groups) <= single:
        return 1
    parts = [0]
    for group in groups:
        if parts[-1] + len(group) > part:
            parts.append(0)
        parts[-1] += len(group)
    return len(parts)
