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
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from email import policy
from email.message import EmailMessage, Message
from email.parser import BytesHeaderParser, BytesParser
from typing import Any

from hub.files import LocalFileStore, StoredFile

SENDGRID_TEXT_FIELDS = ("from", "to", "cc", "subject", "text", "html", "headers")


def _codec(name: str | None) -> str:
    """A Python codec for a MIME charset name; UTF-8 when absent or unknown."""
    if not name:
        return "utf-8"
    name = name.strip().strip('"').lower()
    try:
        info = codecs.lookup(name)
    except (LookupError, ValueError):  # ValueError: a name with NUL
        return "utf-8"
    # base64, zlib, rot13, hex ... are codecs but not text encodings: bytes.decode()
    # refuses them (LookupError), so a sender naming one gets UTF-8 instead.
    return info.name if getattr(info, "_is_text_encoding", True) else "utf-8"


def decode_field(value: bytes | str, charset: str | None) -> str:
    """Decode one form field's bytes with its declared charset (bad bytes -> U+FFFD)."""
    if isinstance(value, str):
        return value
    try:
        return value.decode(_codec(charset), errors="replace")
    except (UnicodeError, ValueError):  # idna, punycode ... raise whatever the errors mode
        return value.decode("utf-8", errors="replace")


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


# --------------------------------------------------------------------------- large bodies

INBOUND_MAX_BODY_BYTES = 40 * 1024 * 1024  # providers deliver up to ~30 MB (SendGrid's cap)
INLINE_BODY_BYTES = 1024 * 1024  # up to this, the body is kept in the raw row as received
INLINE_FIELD_BYTES = 256 * 1024  # in a larger body, a text field above this is stored as a file
STORED_FILE_HEADER = "X-Hub-Stored-File"
_CHUNK = 64 * 1024


@dataclass
class InboundBody:
    """What the receiver keeps of one inbound delivery.

    ``data`` is the body as received when it is small. A larger multipart body is kept
    with each file part (and each text field over ``INLINE_FIELD_BYTES``, e.g. SendGrid's
    raw ``email``) replaced by a reference: the part keeps its own headers, gains
    ``X-Hub-Stored-File: sha256=<hex>; size=<n>`` and carries ``hub-stored-file:sha256:<hex>``
    as its content. The parts' bytes are in the file store, and so are the complete
    original bytes (``body_file``), checksummed.
    """

    data: bytes
    size: int
    truncated: bool
    body_file: StoredFile | None = None
    files: list[tuple[str, StoredFile]] = field(default_factory=list)


def _chunks(stream: Any, limit: int) -> Iterator[bytes]:
    seen = 0
    while seen <= limit:
        chunk = stream.read(min(_CHUNK, limit + 1 - seen))
        if not chunk:
            return
        seen += len(chunk)
        yield chunk


def read_inbound_body(
    stream: Any,
    content_length: int | None,
    content_type: str | None,
    store: LocalFileStore,
    *,
    max_bytes: int = INBOUND_MAX_BODY_BYTES,
    inline_bytes: int = INLINE_BODY_BYTES,
) -> InboundBody:
    """Read an inbound e-mail delivery of up to ``max_bytes`` without holding it whole.

    Bodies up to ``inline_bytes`` are returned as they are. Larger multipart bodies are
    streamed: the original bytes and every file part go to ``store`` while the text
    fields are kept (see :class:`InboundBody`). Over ``max_bytes``: ``truncated`` with a
    64 KiB preview, as the receiver's other routes do.
    """
    preview_bytes = 64 * 1024
    if content_length is not None and content_length > max_bytes:
        head = b"".join(_chunks(stream, preview_bytes - 1))
        return InboundBody(head[:preview_bytes], content_length, True)
    buf = bytearray()
    source = _chunks(stream, max_bytes)
    for chunk in source:
        buf += chunk
        if len(buf) > inline_bytes:
            break
    else:
        return InboundBody(bytes(buf), len(buf), False)
    mimetype, _, params = (content_type or "").partition(";")
    boundary = _boundary(params)
    if mimetype.strip().lower() != "multipart/form-data" or not boundary:
        for chunk in source:
            buf += chunk
        if len(buf) > max_bytes:
            return InboundBody(bytes(buf[:preview_bytes]), len(buf), True)
        return InboundBody(bytes(buf), len(buf), False)
    spool = _MultipartSpool(boundary, store)
    whole = store.open_writer()
    total = 0
    try:
        for chunk in _prepend(bytes(buf), source):
            total += len(chunk)
            if total > max_bytes:
                spool.abort()
                whole.abort()
                return InboundBody(bytes(buf[:preview_bytes]), total, True)
            whole.write(chunk)
            spool.feed(chunk)
        data = spool.finish()
    except ValueError:  # not a well-formed multipart body: keep a preview, the route refuses
        spool.abort()
        body_file = whole.commit(store)
        return InboundBody(bytes(buf[:preview_bytes]), total, False, body_file)
    return InboundBody(data, total, False, whole.commit(store), spool.files)


def _prepend(first: bytes, rest: Iterable[bytes]) -> Iterator[bytes]:
    yield first
    yield from rest


def _boundary(params: str) -> str | None:
    for item in params.split(";"):
        key, _, value = item.strip().partition("=")
        if key.strip().lower() == "boundary":
            return value.strip().strip('"') or None
    return None


class _MultipartSpool:
    """Re-writes a multipart body part by part, moving large parts to the file store."""

    def __init__(self, boundary: str, store: LocalFileStore) -> None:
        from werkzeug.sansio.multipart import MultipartDecoder

        self._boundary = boundary.encode("latin-1")
        self._decoder = MultipartDecoder(self._boundary)
        self._store = store
        self._out = bytearray()
        self._headers: list[tuple[str, str]] = []
        self._name = ""
        self._inline: bytearray | None = None
        self._writer: Any = None
        self._is_file = False
        self.files: list[tuple[str, StoredFile]] = []

    def feed(self, chunk: bytes | None) -> None:
        from werkzeug.sansio.multipart import NEED_DATA, Data, Epilogue, Field, File

        self._decoder.receive_data(chunk)
        while True:
            event = self._decoder.next_event()
            if event is NEED_DATA or isinstance(event, Epilogue):
                return
            if isinstance(event, Field | File):
                self._headers = list(event.headers.items())
                self._name = event.name
                self._is_file = isinstance(event, File)
                self._inline = None if self._is_file else bytearray()
                self._writer = self._store.open_writer() if self._is_file else None
            elif isinstance(event, Data):
                self._data(event.data)
                if not event.more_data:
                    self._end_part()

    def _data(self, data: bytes) -> None:
        if self._inline is not None:
            self._inline += data
            if len(self._inline) > INLINE_FIELD_BYTES:
                self._writer = self._store.open_writer()
                self._writer.write(bytes(self._inline))
                self._inline = None
        elif self._writer is not None:
            self._writer.write(data)

    def _end_part(self) -> None:
        headers = list(self._headers)
        if self._inline is not None:
            content = bytes(self._inline)
        else:
            stored = self._writer.commit(self._store)
            self._writer = None
            self.files.append((self._name, stored))
            headers.append((STORED_FILE_HEADER, f"sha256={stored.sha256}; size={stored.size}"))
            content = f"hub-stored-file:{stored.ref()}".encode("ascii")
        self._out += b"--" + self._boundary + b"\r\n"
        for name, value in headers:
            self._out += f"{name}: {value}\r\n".encode()
        self._out += b"\r\n" + content + b"\r\n"
        self._inline = None

    def finish(self) -> bytes:
        self.feed(None)
        if self._writer is not None or self._inline is not None:
            raise ValueError("multipart body ends inside a part")
        return bytes(self._out) + b"--" + self._boundary + b"--\r\n"

    def abort(self) -> None:
        if self._writer is not None:
            self._writer.abort()
            self._writer = None


def stored_file_ref(part_headers: Mapping[str, str] | Message) -> str | None:
    """The sha256 a spooled part points to (its ``X-Hub-Stored-File`` header), or None."""
    value = part_headers.get(STORED_FILE_HEADER)
    if not value:
        return None
    for item in str(value).split(";"):
        key, _, val = item.strip().partition("=")
        if key.lower() == "sha256":
            return val.strip()
    return None
