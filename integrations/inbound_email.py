"""Wire formats of inbound e-mail deliveries (SendGrid Inbound Parse, Mailgun forward).

Pure functions over bytes, shared by the receiver (which stores the raw bytes unchanged)
and the ingest (which re-reads them from ``raw.inbound_emails``). SendGrid does not send
its fields as UTF-8: each field's charset is given in the ``charsets`` JSON field and
Turkish mail often arrives as windows-1254 or iso-8859-9, so decode with
:func:`decode_sendgrid_fields`, never with a blanket ``.decode("utf-8")``.
"""

from __future__ import annotations

import codecs
import json
from collections.abc import Mapping
from email import policy
from email.message import EmailMessage
from email.parser import BytesHeaderParser, BytesParser
from typing import Any

SENDGRID_TEXT_FIELDS = ("from", "to", "cc", "subject", "text", "html", "headers")


def _codec(name: str | None) -> str:
    """A Python codec for a MIME charset name; UTF-8 when absent or unknown."""
    if not name:
        return "utf-8"
    name = name.strip().strip('"').lower()
    try:
        return codecs.lookup(name).name
    except LookupError:
        return "utf-8"


def decode_field(value: bytes | str, charset: str | None) -> str:
    """Decode one form field's bytes with its declared charset (bad bytes -> U+FFFD)."""
    if isinstance(value, str):
        return value
    return value.decode(_codec(charset), errors="replace")


def parse_charsets(value: bytes | str | None) -> dict[str, str]:
    """The SendGrid ``charsets`` field (JSON ``{"text": "iso-8859-9", ...}``) as a dict."""
    if value is None:
        return {}
    if isinstance(value, bytes):
        value = value.decode("ascii", errors="replace")
    try:
        data = json.loads(value)
    except ValueError:
        return {}
    if not isinstance(data, dict):
        return {}
    return {str(k): str(v) for k, v in data.items() if isinstance(v, str)}


def decode_sendgrid_fields(
    form: Mapping[str, bytes | str], charsets: Mapping[str, str] | None = None
) -> dict[str, str]:
    """Every text field of a SendGrid Inbound Parse post, decoded per ``charsets``.

    ``form`` maps field name to its raw bytes (as read from the multipart body; ``str``
    values are taken as already decoded). ``charsets`` defaults to the form's own
    ``charsets`` field. File parts (attachments) should not be passed in.
    """
    if charsets is None:
        charsets = parse_charsets(form.get("charsets"))
    return {name: decode_field(value, charsets.get(name)) for name, value in form.items()}


def message_id_from_header_block(block: bytes | str | None) -> str | None:
    """The Message-ID of a raw header block (SendGrid's ``headers`` field)."""
    if not block:
        return None
    if isinstance(block, str):
        block = block.encode("utf-8", errors="replace")
    headers = BytesHeaderParser(policy=policy.compat32).parsebytes(block)
    return _clean_message_id(headers.get("Message-ID") or headers.get("Message-Id"))


def mailgun_message_id(message_headers: str | None) -> str | None:
    """The Message-Id in Mailgun's ``message-headers`` (JSON list of [name, value])."""
    if not message_headers:
        return None
    try:
        pairs = json.loads(message_headers)
    except ValueError:
        return None
    if not isinstance(pairs, list):
        return None
    for pair in pairs:
        if (
            isinstance(pair, list | tuple)
            and len(pair) == 2
            and str(pair[0]).lower() == "message-id"
        ):
            return _clean_message_id(str(pair[1]))
    return None


def _clean_message_id(value: Any) -> str | None:
    if value is None:
        return None
    text = " ".join(str(value).split())
    return text or None


def parse_raw_mime(raw: bytes | str) -> dict[str, str | None]:
    """From, To, Subject, Message-ID and the first text/html bodies of a raw message.

    Used for SendGrid's raw mode (the ``email`` field). Header words (RFC 2047) and body
    parts are decoded with their own declared charsets.
    """
    if isinstance(raw, str):
        raw = raw.encode("utf-8", errors="surrogateescape")
    message = BytesParser(policy=policy.default).parsebytes(raw)
    assert isinstance(message, EmailMessage)
    result: dict[str, str | None] = {
        "from": _header(message, "From"),
        "to": _header(message, "To"),
        "subject": _header(message, "Subject"),
        "message_id": _clean_message_id(_header(message, "Message-ID")),
        "text": None,
        "html": None,
    }
    for kind in ("plain", "html"):
        part = message.get_body(preferencelist=(kind,))
        if part is None:
            continue
        try:
            content = part.get_content()
        except (LookupError, UnicodeError):
            payload = part.get_payload(decode=True) or b""
            content = payload.decode("utf-8", errors="replace")
        result["text" if kind == "plain" else "html"] = content
    return result


def _header(message: EmailMessage, name: str) -> str | None:
    try:
        value = message.get(name)
    except (ValueError, IndexError):  # malformed header: keep the raw text
        value = message.get_all(name, failobj=[None])[0]
    return None if value is None else str(value)
