"""Text helpers for Turkish and English mail: HTML to text, folding, Turkish words.

Turkish case rules: ``"İ".lower()`` is two code points (``i̇``) and ``"I".lower()`` is
``i`` where Turkish wants ``ı``. Labels are therefore compared after :func:`fold`, an
explicit table (İ I ı i -> i, Ş -> s, Ğ -> g, Ü -> u, Ö -> o, Ç -> c), never after a bare
``str.lower()``.
"""

from __future__ import annotations

import html as html_lib
import re

_FOLD = str.maketrans(
    {
        "İ": "i", "I": "i", "ı": "i", "i": "i",
        "Ş": "s", "ş": "s", "Ğ": "g", "ğ": "g", "Ü": "u", "ü": "u",
        "Ö": "o", "ö": "o", "Ç": "c", "ç": "c", "Â": "a", "â": "a", "Î": "i", "î": "i",
        "Û": "u", "û": "u",
    }
)  # fmt: skip
DASHES = "\u2010\u2011\u2012\u2013\u2014\u2015\u2212\ufe58\ufe63\uff0d"
_DASH_RE = re.compile(f"[{DASHES}]")
_SPACES_RE = re.compile(r"[\u00a0\u2007\u202f\u2009\u200a\u2002\u2003]")
_INVISIBLE_RE = re.compile(r"[\u200b\u200c\u200d\u2060\ufeff\u00ad]")


def fold(value: str) -> str:
    """Lowercase ASCII-ish form for comparing labels and words (Turkish-aware)."""
    return value.translate(_FOLD).lower()


def normalize(text: str) -> str:
    """One newline style, plain spaces, ASCII hyphens for every dash, no invisibles."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = _INVISIBLE_RE.sub("", text)
    text = _SPACES_RE.sub(" ", text)
    return _DASH_RE.sub("-", text)


def html_to_text(markup: str) -> str:
    """HTML reduced to lines; table cells become tab-separated, rows become lines."""
    text = re.sub(r"(?is)<(script|style|head)\b.*?</\1>", " ", markup)
    text = re.sub(r"(?is)<!--.*?-->", " ", text)
    text = re.sub(r"(?i)<br\s*/?>|</p>|</tr>|</div>|</h\d>|</li>|</table>", "\n", text)
    text = re.sub(r"(?i)</t[dh]>", "\t", text)
    text = re.sub(r"<[^>]+>", " ", text)
    text = html_lib.unescape(text).replace("\xa0", " ")
    text = re.sub(r"[ ]*\t[ \t]*", "\t", text)
    text = re.sub(r"[ ]{2,}", " ", text)
    lines = [line.strip(" \t") for line in text.split("\n")]
    return "\n".join(line for line in lines if line)


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


def tr_words(*words: str) -> str:
    return "(?:" + "|".join(tr_word(w) for w in words) + ")"
