"""Decode what the inbound hooks stored into an :class:`InboundEmail` (pure, no database).

``decode_inbound(body, headers, files=...)`` understands SendGrid Inbound Parse
(multipart/form-data with a ``charsets`` JSON field, or raw mode with an ``email``
field), Mailgun routes (urlencoded or multipart with ``body-plain``, ``message-headers``,
optional ``body-mime``) and a bare RFC 822 message. Turkish mail comes as windows-1254 or
iso-8859-9 as often as UTF-8, so each field is decoded with its declared charset.

Both the text and the HTML part are kept (the parser reads both). A message forwarded as
an attachment (``message/rfc822``, a ``.eml`` file part) becomes an entry of
``forwarded``, decoded the same way, in every delivery format. Large parts that the
receiver spooled to the file store (``X-Hub-Stored-File``) are read back through
``files`` (``hub.files.LocalFileStore.read``) when they are needed: forwarded messages
and SendGrid's raw ``email`` field; other attachments are listed with their checksum.
"""

from __future__ import annotations

import email
import email.header
import email.parser
import email.policy
import email.utils
import hashlib
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from email.message import Message
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import unquote_to_bytes

from integrations.email_parsing.text import html_to_text
from integrations.inbound_email import STORED_FILE_HEADER, stored_file_ref

FileReader = Callable[[str], bytes]
MAX_FORWARD_DEPTH = 3


@dataclass(frozen=True)
class Attachment:
    filename: str | None
    content_type: str
    size: int
    sha256: str


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
    headers: dict[str, str] = field(default_factory=dict)
    attachments: list[Attachment] = field(default_factory=list)
    forwarded: list[InboundEmail] = field(default_factory=list)

    @property
    def body_text(self) -> str:
        """The plain text, or the HTML reduced to text when there is no plain part."""
        if self.text.strip():
            return self.text
        return html_to_text(self.html or "")

    def stable_id(self) -> str:
        """A dedupe key of the delivery: the Message-ID, else the body's hash."""
        if self.message_id:
            basis = "mid:" + self.message_id.strip().strip("<>").lower()
        else:
            basis = "body:" + re.sub(r"\s+", " ", f"{self.subject or ''} {self.body_text}").strip()
        return hashlib.sha256(basis.encode("utf-8")).hexdigest()[:40]


# --------------------------------------------------------------------------- charsets

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
        name = _CHARSET_ALIASES.get(name.strip().strip('"').lower(), name.strip().lower())
        if name in tried:
            continue
        tried.append(name)
        try:
            return data.decode(name)
        except (LookupError, UnicodeError, ValueError):  # unknown, non-text (base64), idna
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


# --------------------------------------------------------------------------- form bodies


@dataclass
class _Part:
    data: bytes
    charset: str | None
    filename: str | None = None
    content_type: str = "text/plain"
    stored: str | None = None  # sha256 in the file store (spooled by the receiver)


def _form_multipart(body: bytes, content_type: str) -> dict[str, _Part]:
    """multipart/form-data -> {field name: part} via the stdlib parser."""
    head = f"Content-Type: {content_type}\r\nMIME-Version: 1.0\r\n\r\n".encode("latin-1")
    message = email.message_from_bytes(head + body, policy=email.policy.compat32)
    parts: dict[str, _Part] = {}
    if not message.is_multipart():
        raise ValueError("multipart body without parts (boundary missing or wrong)")
    for part in message.get_payload():
        name = part.get_param("name", header="content-disposition")
        if not name:
            continue
        if isinstance(name, tuple):  # RFC 2231 encoded parameter
            name = email.utils.collapse_rfc2231_value(name)
        payload = part.get_payload(decode=True)
        if payload is None and part.get_content_type() == "message/rfc822":
            # the stdlib parses an attached message as a sub-message: take its bytes back
            inner = part.get_payload()
            inner = inner[0] if isinstance(inner, list) and inner else inner
            payload = inner.as_bytes() if isinstance(inner, Message) else None
        if payload is None:
            continue
        filename = part.get_filename()
        parts.setdefault(
            str(name),
            _Part(
                payload,
                part.get_content_charset(),
                _decode_header(filename) if filename else None,
                part.get_content_type(),
                stored_file_ref(part) if part.get(STORED_FILE_HEADER) else None,
            ),
        )
    return parts


def _form_urlencoded(body: bytes) -> dict[str, _Part]:
    """Fields of an urlencoded body as raw bytes (decoded later by charset).

    Split by hand: ``parse_qsl`` on bytes re-encodes each value as ASCII and fails on
    the UTF-8 Turkish names Mailgun forwards ("ZÖHREHAN").
    """
    parts: dict[str, _Part] = {}
    for pair in body.split(b"&"):
        if not pair:
            continue
        key, _, value = pair.partition(b"=")
        name = unquote_to_bytes(key.replace(b"+", b" ")).decode("utf-8", errors="replace")
        parts.setdefault(name, _Part(unquote_to_bytes(value.replace(b"+", b" ")), None))
    return parts


def _part_bytes(part: _Part, files: FileReader | None) -> bytes | None:
    if part.stored is None:
        return part.data
    if files is None:
        return None
    return files(part.stored)


_ATTACHMENT_FIELD = re.compile(r"^attachment-?\d+$")


def decode_inbound(
    body: bytes,
    headers: Mapping[str, Any] | list | None,
    *,
    source: str | None = None,
    files: FileReader | None = None,
) -> InboundEmail:
    """Decode one stored inbound request (SendGrid, Mailgun or raw MIME) to an e-mail.

    ``headers`` is the request headers JSON stored with the raw row (a mapping, or a
    list of [name, value] pairs); its Content-Type carries the multipart boundary.
    Raises ValueError when the body cannot be read as any of those.
    """
    content_type = _header(headers, "Content-Type") or ""
    kind = content_type.split(";", 1)[0].strip().lower()
    if kind == "multipart/form-data":
        parts = _form_multipart(body, content_type)
    elif kind == "application/x-www-form-urlencoded":
        parts = _form_urlencoded(body)
    elif kind in ("message/rfc822", "text/plain", "") and re.match(
        rb"^[\w-]+:", body.lstrip()[:200]
    ):
        return _from_mime(body, source or "email")
    else:
        raise ValueError(f"unsupported inbound content type {kind or '(none)'}")

    charsets: dict[str, str] = {}
    if "charsets" in parts:
        try:
            charsets = json.loads(decode_bytes(parts["charsets"].data))
        except ValueError:
            charsets = {}
        if not isinstance(charsets, dict):
            charsets = {}

    def field_text(name: str) -> str | None:
        part = parts.get(name)
        if part is None or part.filename is not None:
            return None
        data = _part_bytes(part, files)
        if data is None:
            return None
        return decode_bytes(data, charsets.get(name) or part.charset or "utf-8")

    text_fields = {
        k: field_text(k) or ""
        for k, p in parts.items()
        if p.filename is None and not _ATTACHMENT_FIELD.match(k) and k not in ("email", "body-mime")
    }
    # Raw mode: the whole message is in one field; its own MIME headers carry charsets.
    for mime_field in ("email", "body-mime"):
        if mime_field in parts:
            raw = _part_bytes(parts[mime_field], files)
            if raw is None:
                raise ValueError(f"{mime_field} is in the file store and no reader was given")
            decoded = _from_mime(raw, source or _guess_source(parts))
            decoded.fields = text_fields
            return decoded

    is_mailgun = "body-plain" in parts or "message-headers" in parts
    src = source or ("mailgun" if is_mailgun else "sendgrid")
    message_id = None
    date = None
    extra_headers: dict[str, str] = {}
    if is_mailgun:
        text = field_text("body-plain") or field_text("stripped-text") or ""
        html = field_text("body-html")
        try:
            pairs = json.loads(field_text("message-headers") or "[]")
        except ValueError:
            pairs = []
        message_id = _header(pairs, "Message-Id")
        date = _parse_date(_header(pairs, "Date"))
        if isinstance(pairs, list):
            for pair in pairs:
                if isinstance(pair, list | tuple) and len(pair) == 2:
                    extra_headers.setdefault(str(pair[0]).lower(), str(pair[1]))
    else:
        text = field_text("text") or ""
        html = field_text("html")
        block = field_text("headers")
        if block:
            parsed = email.parser.HeaderParser(policy=email.policy.compat32).parsestr(block)
            message_id = parsed.get("Message-ID")
            date = _parse_date(parsed.get("Date"))
            extra_headers = {k.lower(): str(v) for k, v in parsed.items()}
    sender = field_text("from") or field_text("sender")
    message = InboundEmail(
        source=src,
        subject=_decode_header(field_text("subject")),
        sender=sender,
        text=text,
        html=html,
        message_id=message_id.strip() if message_id else None,
        date=date,
        fields=text_fields,
        headers=extra_headers,
    )
    info = _attachment_info(field_text("attachment-info"))
    for name, part in parts.items():
        if part.filename is None and not _ATTACHMENT_FIELD.match(name):
            continue
        declared = (info.get(name) or {}).get("type") or part.content_type
        data = _part_bytes(part, files)
        sha = part.stored or hashlib.sha256(part.data).hexdigest()
        size = len(data) if data is not None else 0
        message.attachments.append(Attachment(part.filename, declared, size, sha))
        filename = (part.filename or "").lower()
        if data is not None and (declared == "message/rfc822" or filename.endswith(".eml")):
            message.forwarded.append(_from_mime(data, src, depth=1))
    return message


def _attachment_info(value: str | None) -> dict[str, dict[str, Any]]:
    if not value:
        return {}
    try:
        data = json.loads(value)
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


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


def _from_mime(raw: bytes, source: str, *, depth: int = 0) -> InboundEmail:
    message = email.message_from_bytes(raw, policy=email.policy.compat32)
    return _from_message(message, source, depth)


def _from_message(message: Message, source: str, depth: int) -> InboundEmail:
    """A full RFC 822 message: its text and HTML parts; attached messages are forwarded
    entries (not mixed into this one's text)."""
    out = InboundEmail(
        source=source,
        subject=_decode_header(message.get("Subject")),
        sender=_decode_header(message.get("From")),
        message_id=(message.get("Message-ID") or "").strip() or None,
        date=_parse_date(message.get("Date")),
        headers={k.lower(): str(v) for k, v in message.items()},
    )
    text_parts: list[str] = []
    html_parts: list[str] = []

    def visit(part: Message) -> None:
        ctype = part.get_content_type()
        if ctype == "message/rfc822":
            inner = part.get_payload()
            inner = inner[0] if isinstance(inner, list) and inner else inner
            if isinstance(inner, Message) and depth < MAX_FORWARD_DEPTH:
                out.forwarded.append(_from_message(inner, source, depth + 1))
            return
        if part.is_multipart():
            for sub in part.get_payload():
                visit(sub)
            return
        disposition = (part.get("Content-Disposition") or "").lower()
        payload = part.get_payload(decode=True) or b""
        if disposition.startswith("attachment") or part.get_content_maintype() != "text":
            filename = part.get_filename()
            out.attachments.append(
                Attachment(
                    _decode_header(filename) if filename else None,
                    ctype,
                    len(payload),
                    hashlib.sha256(payload).hexdigest(),
                )
            )
            if (filename or "").lower().endswith(".eml") and depth < MAX_FORWARD_DEPTH:
                out.forwarded.append(_from_mime(payload, source, depth=depth + 1))
            return
        if part.get_content_subtype() == "plain":
            text_parts.append(_part_text(part))
        elif part.get_content_subtype() == "html":
            html_parts.append(_part_text(part))

    visit(message)
    out.text = "\n".join(text_parts)
    out.html = "\n".join(html_parts) or None
    return out
