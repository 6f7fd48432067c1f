"""Identity keys for people: normalized e-mail, E.164 phone, Turkish-aware names.

Two levels on purpose:

* ``normalize_email`` keeps the address as the person wrote it, only canonical in case
  and Unicode form (``Ayse.Kaya@Gmail.com`` -> ``ayse.kaya@gmail.com``). It is what
  ``registrations.email_normalized`` and ``payments.payer_email_normalized`` store, so
  nothing is merged that the mail system would keep apart.
* ``identity_email`` goes further for member consolidation and duplicate detection:
  for providers that ignore them it drops ``+tags`` and (Gmail only) dots in the local
  part, and folds ``googlemail.com`` into ``gmail.com``. It can merge two addresses
  that are really one mailbox; it is never used to send mail.

Names have the same two levels: ``normalize_name`` is a Turkish-aware casefold that
keeps the letters (``İSMAİL IŞIK`` -> ``ismail ışık``), ``name_key`` folds to ASCII
(``ismail isik``) because bank notifications often drop Turkish letters.
"""

from __future__ import annotations

import contextlib
import re
import unicodedata
from typing import Any

import phonenumbers

# Turkish dotted/dotless i: lower() turns "İ" into "i" + U+0307 and "I" into "i".
_TR_LOWER = str.maketrans({"İ": "i", "I": "ı"})
_TR_ASCII = str.maketrans("ıİşŞğĞüÜöÖçÇâÂîÎûÛ", "iIsSgGuUoOcCaAiIuU")
_WS = re.compile(r"\s+")
_EMAIL_LOCAL_CHARS = re.compile(r"^[^\s@<>(),;:\"\[\]\\]+$")

# Providers that deliver user+tag@ to user@ (Gmail also ignores dots).
_PLUS_TAG_DOMAINS = frozenset(
    {
        "gmail.com",
        "outlook.com",
        "hotmail.com",
        "live.com",
        "icloud.com",
        "me.com",
        "fastmail.com",
        "proton.me",
        "protonmail.com",
        "yandex.com",
        "yandex.com.tr",
    }
)
_DOMAIN_ALIASES = {"googlemail.com": "gmail.com"}


def _text(value: Any) -> str | None:
    if value is None:
        return None
    text = unicodedata.normalize("NFC", str(value)).strip()
    return text or None


def turkish_lower(value: str) -> str:
    """Lowercase with Turkish rules for I/İ (``"İI".lower()`` would give ``"i̇i"``)."""
    return unicodedata.normalize("NFC", value.translate(_TR_LOWER).lower())


def normalize_email(value: Any) -> str | None:
    """Stripped, lowercased, NFC e-mail address; None when it is not one address.

    Accepts ``Name <addr>`` and ``mailto:addr``. The domain is lowercased and an
    internationalized domain kept in its Unicode form; Gmail dots and ``+tags`` are kept
    (see ``identity_email``).
    """
    text = _text(value)
    if text is None:
        return None
    match = re.search(r"<([^<>]+)>", text)
    if match:
        text = match.group(1).strip()
    if text.lower().startswith("mailto:"):
        text = text[7:].split("?", 1)[0].strip()
    if text.count("@") != 1:
        return None
    local, domain = text.split("@")
    domain = domain.strip().rstrip(".")
    if not local or not domain or "." not in domain:
        return None
    if not _EMAIL_LOCAL_CHARS.match(local) or not re.match(r"^[^\s@<>(),;:]+$", domain):
        return None
    if ".." in domain or domain.startswith(".") or domain.startswith("-"):
        return None
    # İ -> i (no combining dot); the rest of Unicode lowercases normally.
    local = local.replace("İ", "i").lower()
    domain = domain.replace("İ", "i").lower()
    if "xn--" in domain:  # unify punycode and Unicode spellings of the same domain
        with contextlib.suppress(UnicodeError):
            domain = domain.encode("ascii").decode("idna")
    return unicodedata.normalize("NFC", f"{local}@{domain}")


def identity_email(value: Any) -> str | None:
    """A mailbox identity key: ``normalize_email`` plus provider-specific folding.

    ``googlemail.com`` -> ``gmail.com``; Gmail drops dots and ``+tag``; the other
    well-known providers in ``_PLUS_TAG_DOMAINS`` drop ``+tag`` only. Other domains are
    returned as ``normalize_email`` gives them, since their servers may treat dots and
    plus signs as significant.
    """
    email = normalize_email(value)
    if email is None:
        return None
    local, domain = email.split("@")
    domain = _DOMAIN_ALIASES.get(domain, domain)
    if domain in _PLUS_TAG_DOMAINS:
        local = local.split("+", 1)[0] or local
    if domain == "gmail.com":
        local = local.replace(".", "") or local
    return f"{local}@{domain}"


def normalize_phone(value: Any, default_region: str = "TR") -> str | None:
    """E.164 (``+905321234567``) for a valid phone number, else None.

    Numbers without a country code are read in ``default_region``: in Turkey
    ``0532 123 45 67``, ``(0532) 123-4567``, ``5321234567`` and ``0090 532 ...`` all give
    the same key.
    """
    text = _text(value)
    if text is None:
        return None
    if sum(ch.isdigit() for ch in text) < 7 or sum(ch.isalpha() for ch in text) > 3:
        return None
    try:
        number = phonenumbers.parse(text, default_region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def normalize_name(value: Any) -> str | None:
    """Turkish-aware casefold of a person's name, whitespace collapsed.

    ``"  İSMAİL   IŞIK "`` -> ``"ismail ışık"``, ``"Işıl"`` -> ``"ışıl"``. Letters are kept:
    use ``name_key`` to compare against sources that drop Turkish letters.
    """
    text = _text(value)
    if text is None:
        return None
    text = _WS.sub(" ", turkish_lower(text)).strip()
    return text or None


def name_key(value: Any, *, sort_tokens: bool = False) -> str | None:
    """An ASCII matching key for names: ``"Ayşe  YILMAZ"`` and ``"AYSE YILMAZ"`` agree.

    Turkish letters fold to their base (ı/İ/I/i -> i, ş -> s ...), other accents are
    dropped, punctuation becomes a space. ``sort_tokens`` orders the words so
    ``"YILMAZ AYSE"`` (surname first, as some banks print it) equals ``"Ayşe Yılmaz"``.
    """
    text = _text(value)
    if text is None:
        return None
    folded = unicodedata.normalize("NFKD", text.translate(_TR_ASCII))
    folded = "".join(ch for ch in folded if not unicodedata.combining(ch)).lower()
    tokens = re.sub(r"[^\w]+|_", " ", folded).split()
    if not tokens:
        return None
    if sort_tokens:
        tokens.sort()
    return " ".join(tokens)
