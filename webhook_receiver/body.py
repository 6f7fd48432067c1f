"""Bounded body reading and form parsing over the exact bytes that get stored.

The body is read from the WSGI stream in chunks and never beyond the configured cap: a
declared Content-Length over the cap is refused after reading only a 64 KiB preview;
a chunked body is cut as soon as it passes the cap. Forms are parsed from the bytes
already read (not through ``request.form``), so field values stay raw bytes and the
charset decision is made by the caller (SendGrid's ``charsets``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import parse_qsl

from werkzeug.http import parse_options_header
from werkzeug.sansio.multipart import (
    NEED_DATA,
    Data,
    Epilogue,
    Field,
    File,
    MultipartDecoder,
)

from integrations.inbound_email import decode_field

PREVIEW_BYTES = 64 * 1024
_CHUNK = 64 * 1024


@dataclass(frozen=True)
class Body:
    data: bytes
    size: int  # the declared Content-Length, or bytes seen (a lower bound when cut)
    truncated: bool
    incomplete: str | None = None  # why the stream broke before its end (bad framing)


class GuardedStream:
    """A WSGI input stream whose read errors end the body instead of the request.

    A malformed chunked body (or a connection cut mid-body) makes the server's stream
    raise its own exception class from ``read()``; this wrapper records it in ``error``
    and returns EOF, so the caller keeps what was read and refuses the request (400).
    """

    def __init__(self, stream) -> None:
        self._stream = stream
        self.error: str | None = None

    def read(self, size: int = -1) -> bytes:
        if self.error is not None:
            return b""
        try:
            return self._stream.read(size)
        except Exception as exc:  # the server's own framing errors have no common base
            self.error = type(exc).__name__
            return b""


def _read_upto(stream, limit: int) -> bytes:
    buf = bytearray()
    while len(buf) < limit:
        chunk = stream.read(min(_CHUNK, limit - len(buf)))
        if not chunk:
            break
        buf += chunk
    return bytes(buf)


def read_body(stream, content_length: int | None, max_bytes: int) -> Body:
    """Read at most ``max_bytes`` (+1 to detect overflow) from ``stream``."""
    guarded = stream if isinstance(stream, GuardedStream) else GuardedStream(stream)
    if content_length is not None and content_length > max_bytes:
        return Body(_read_upto(guarded, PREVIEW_BYTES), content_length, True, guarded.error)
    buf = bytearray()
    while True:
        chunk = guarded.read(min(_CHUNK, max_bytes + 1 - len(buf)))
        if not chunk:
            break
        buf += chunk
        if len(buf) > max_bytes:
            return Body(bytes(buf[:PREVIEW_BYTES]), len(buf), True, guarded.error)
    if content_length is not None and len(buf) < content_length and guarded.error is None:
        guarded.error = "short_body"  # the connection ended before Content-Length bytes
    return Body(bytes(buf), len(buf), False, guarded.error)


class FormError(ValueError):
    pass


@dataclass
class Form:
    """Form fields as raw bytes (first value per name), part charsets, and file parts."""

    fields: dict[str, bytes] = field(default_factory=dict)
    charsets: dict[str, str] = field(default_factory=dict)
    files: list[tuple[str, str, int]] = field(default_factory=list)  # name, filename, size

    def text(self, name: str, default_charset: str = "utf-8") -> str | None:
        value = self.fields.get(name)
        if value is None:
            return None
        return decode_field(value, self.charsets.get(name) or default_charset)


def parse_form(body: bytes, content_type: str | None) -> Form:
    """Parse ``application/x-www-form-urlencoded`` or ``multipart/form-data`` bytes."""
    mimetype, options = parse_options_header(content_type or "")
    form = Form()
    if mimetype == "application/x-www-form-urlencoded":
        try:
            pairs = parse_qsl(body.decode("latin-1"), keep_blank_values=True, encoding="latin-1")
        except ValueError as exc:
            raise FormError("body is not a valid urlencoded form") from exc
        for name, value in pairs:
            key = name.encode("latin-1").decode("utf-8", "replace")
            form.fields.setdefault(key, value.encode("latin-1"))
        return form
    if mimetype != "multipart/form-data":
        raise FormError("content type must be multipart/form-data or urlencoded")
    boundary = options.get("boundary")
    if not boundary:
        raise FormError("multipart body has no boundary")
    decoder = MultipartDecoder(boundary.encode("latin-1"))
    decoder.receive_data(body)
    decoder.receive_data(None)
    current: Field | File | None = None
    buf = bytearray()
    try:
        while True:
            event = decoder.next_event()
            if event is NEED_DATA or isinstance(event, Epilogue):
                break
            if isinstance(event, Field | File):
                current, buf = event, bytearray()
            elif isinstance(event, Data) and current is not None:
                buf += event.data
                if not event.more_data:
                    if isinstance(current, File):
                        form.files.append((current.name, current.filename, len(buf)))
                    else:
                        form.fields.setdefault(current.name, bytes(buf))
                        _, ct_opts = parse_options_header(current.headers.get("content-type"))
                        if ct_opts.get("charset"):
                            form.charsets.setdefault(current.name, ct_opts["charset"])
                    current = None
    except ValueError as exc:
        raise FormError("multipart body is malformed") from exc
    if current is not None:
        raise FormError("multipart body ends inside a part")
    return form
