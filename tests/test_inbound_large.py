"""Inbound e-mail of the sizes providers deliver (tens of MiB with attachments) is
accepted; the attachments go to the file store (sha256) and the raw row keeps the text
fields. JSON webhooks keep the small limit."""

from __future__ import annotations

import hashlib
import json
import os

import httpx
import pytest
from sqlalchemy import select

from hub.db import get_engine, inbound_emails
from hub.files import file_store
from hub.settings import load_settings
from integrations.email_parsing import decode_inbound
from integrations.sandbox.common import serve_in_thread
from webhook_receiver.app import create_app

TOKEN = "large-inbound-token-1f"


def multipart(fields: list[tuple[str, str | None, str, bytes]], boundary: str) -> bytes:
    """(name, filename, content type, bytes) parts as a multipart/form-data body."""
    out = bytearray()
    for name, filename, ctype, data in fields:
        disposition = f'form-data; name="{name}"'
        if filename:
            disposition += f'; filename="{filename}"'
        out += f"--{boundary}\r\nContent-Disposition: {disposition}\r\n".encode()
        out += f"Content-Type: {ctype}\r\n\r\n".encode() + data + b"\r\n"
    return bytes(out + f"--{boundary}--\r\n".encode())


@pytest.fixture()
def receiver(clean_db, monkeypatch, tmp_path):
    monkeypatch.setenv("HUB_SENDGRID_INBOUND_TOKEN", TOKEN)
    monkeypatch.setenv("HUB_DATA_DIR", str(tmp_path))
    settings = load_settings()
    server = serve_in_thread(create_app(settings))
    try:
        yield server, settings
    finally:
        server.stop()


def receipt_mail(photo: bytes, boundary: str = "b0und4ry") -> bytes:
    text = (
        "Hesabınıza 1.250,00 TL tutarında FAST gelmiştir.\n"
        "Gönderen : AHMET YILMAZ\nAçıklama : REG-5\nİşlem No: 7788123\n"
    ).encode("cp1254")
    return multipart(
        [
            ("headers", None, "text/plain", b"Message-ID: <big-1@bank.example>\r\n"),
            ("from", None, "text/plain", b"Garanti BBVA <bilgi@garantibbva.com.tr>"),
            ("to", None, "text/plain", b"odemeler@inbound.example.org"),
            ("subject", None, "text/plain", b"Para transferi"),
            ("text", None, "text/plain", text),
            ("charsets", None, "text/plain", json.dumps({"text": "windows-1254"}).encode()),
            ("attachments", None, "text/plain", b"1"),
            (
                "attachment-info",
                None,
                "text/plain",
                json.dumps(
                    {"attachment1": {"filename": "dekont.jpg", "type": "image/jpeg"}}
                ).encode(),
            ),
            ("attachment1", "dekont.jpg", "image/jpeg", photo),
        ],
        boundary,
    )


def test_a_mail_with_a_12_mib_receipt_photo_is_accepted_and_its_photo_stored_by_hash(receiver):
    server, settings = receiver
    photo = b"\xff\xd8\xff\xe0" + os.urandom(12 * 1024 * 1024)
    body = receipt_mail(photo)
    with httpx.Client(base_url=server.url, timeout=60) as client:
        response = client.post(
            f"/inbound/email/sendgrid/{TOKEN}",
            content=body,
            headers={"Content-Type": "multipart/form-data; boundary=b0und4ry"},
        )
    assert response.status_code == 200, response.text
    with get_engine().connect() as conn:
        row = conn.execute(select(inbound_emails)).one()
    assert row.verified and row.flag is None and row.body_size == len(body)
    assert len(row.body) < 64 * 1024  # the photo is not in the row
    store = file_store(settings)
    digest = hashlib.sha256(photo).hexdigest()
    assert store.read(digest) == photo
    assert row.headers[":body-file"] == "sha256:" + hashlib.sha256(body).hexdigest()
    assert store.read(row.headers[":body-file"]) == body  # every byte kept, checksummed
    message = decode_inbound(bytes(row.body), row.headers, files=store.read)
    assert "1.250,00 TL" in message.text and message.message_id == "<big-1@bank.example>"
    assert [(a.filename, a.sha256, a.size) for a in message.attachments] == [
        ("dekont.jpg", digest, len(photo))
    ]


def test_over_the_inbound_limit_is_cut_and_json_webhooks_keep_the_small_limit(receiver, tmp_path):
    import io

    from hub.files import LocalFileStore
    from integrations.inbound_email import read_inbound_body

    server, _ = receiver
    body = receipt_mail(b"\xff" * (3 * 1024 * 1024))
    cut = read_inbound_body(
        io.BytesIO(body),
        None,  # chunked: no Content-Length
        "multipart/form-data; boundary=b0und4ry",
        LocalFileStore(tmp_path / "f"),
        max_bytes=2 * 1024 * 1024,
    )
    assert cut.truncated and len(cut.data) == 64 * 1024
    with httpx.Client(base_url=server.url, timeout=60) as client:
        webhook = client.post(
            "/webhooks/stripe",
            content=b'{"a":"' + b"x" * (1024 * 1024 + 10) + b'"}',
            headers={"Content-Type": "application/json"},
        )
    assert webhook.status_code == 413


def test_sendgrid_raw_mode_over_1_mib_keeps_the_mime_in_the_file_store(receiver):
    from email.message import EmailMessage

    server, settings = receiver
    msg = EmailMessage()
    msg["From"] = "Ziraat Bankası <bilgi@ziraatbank.com.tr>"
    msg["Subject"] = "Havale bildirimi"
    msg["Message-ID"] = "<raw-big@ziraatbank.com.tr>"
    msg.set_content(
        "Hesabınıza havale yapılmıştır.\nGönderen : AYŞE KAYA\nTutar : 250,00 TL\n"
        "Açıklama : REG-3\n",
        charset="iso-8859-9",
    )
    msg.add_attachment(
        os.urandom(2 * 1024 * 1024), maintype="image", subtype="png", filename="a.png"
    )
    raw = bytes(msg)
    body = multipart(
        [
            ("to", None, "text/plain", b"odemeler@inbound.example.org"),
            ("from", None, "text/plain", b"Ziraat"),
            ("email", None, "text/plain", raw),
        ],
        "rawb0und",
    )
    with httpx.Client(base_url=server.url, timeout=60) as client:
        first = client.post(
            f"/inbound/email/sendgrid/{TOKEN}",
            content=body,
            headers={"Content-Type": "multipart/form-data; boundary=rawb0und"},
        )
        again = client.post(
            f"/inbound/email/sendgrid/{TOKEN}",
            content=body,
            headers={"Content-Type": "multipart/form-data; boundary=rawb0und"},
        )
    assert first.status_code == again.status_code == 200
    assert again.json()["status"] == "duplicate"  # the retry is recognised by content hash
    with get_engine().connect() as conn:
        row = conn.execute(select(inbound_emails)).one()
    assert len(row.body) < 64 * 1024
    message = decode_inbound(bytes(row.body), row.headers, files=file_store(settings).read)
    assert "AYŞE KAYA" in message.text and message.message_id == "<raw-big@ziraatbank.com.tr>"
    assert [a.filename for a in message.attachments] == ["a.png"]
