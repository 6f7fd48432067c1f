"""A local SMTP sink for sandbox mode: a tiny asyncio SMTP server (RFC 5321 subset:
EHLO/HELO, MAIL, RCPT, DATA, RSET, NOOP, QUIT; 8BITMIME and SMTPUTF8 announced; no
relaying, no auth) that keeps every message it accepts in SQLite, and a small HTTP API
to read them back. No third-party package (aiosmtpd is not installed).

HTTP (Flask), under ``/_sandbox``: ``GET /health``; ``GET /messages[?to=]`` (parsed:
id, envelope, message_id, subject, from, to, text, html; oldest first); ``GET
/messages/<id>/raw`` (the bytes as received); ``POST /reset`` (forget messages and
faults); ``POST /faults`` ``{"reject_next": N, "code": 451, "reject_rcpt": ["addr"]}``
(``451`` after DATA = temporary, ``554`` = permanent; refused recipients get ``550``).

Run: ``python -m integrations.sandbox.smtp_sink --smtp-port 8125 --http-port 8126 --state
<data dir>/sandbox/smtp.sqlite`` or, in tests, :func:`start_sink`.
"""

from __future__ import annotations

import argparse
import asyncio
import email
import email.policy
import json
import logging
import threading
from dataclasses import dataclass, field
from typing import Any

from flask import Flask, Response, jsonify, request

from integrations.sandbox.common import (
    CONTROL_PREFIX,
    SandboxStore,
    ServerHandle,
    iso_z,
    serve_in_thread,
    utcnow,
)

log = logging.getLogger("hub.sandbox.smtp")
MAX_BYTES = 10 * 1024 * 1024
HOSTNAME = "sink.sandbox.local"


@dataclass
class SinkFaults:
    reject_next: int = 0
    code: int = 451
    reject_rcpt: set[str] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def take(self) -> int | None:
        with self.lock:
            if self.reject_next > 0:
                self.reject_next -= 1
                return self.code
            return None


def parse_stored(doc: dict[str, Any]) -> dict[str, Any]:
    raw = doc["raw"].encode("latin-1")
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    text = html = None
    for part in msg.walk():
        if part.is_multipart():
            continue
        kind = part.get_content_type()
        if kind == "text/plain" and text is None:
            text = part.get_content()
        elif kind == "text/html" and html is None:
            html = part.get_content()
    return {
        "id": doc["id"],
        "received_at": doc["received_at"],
        "envelope": {"from": doc["mail_from"], "to": doc["rcpt_to"]},
        "message_id": msg.get("Message-ID"),
        "subject": msg.get("Subject"),
        "from": msg.get("From"),
        "to": msg.get("To"),
        "content_language": msg.get("Content-Language"),
        "text": text,
        "html": html,
        "size": len(raw),
    }


class SmtpSink:
    """The SMTP side; messages land in ``store`` (kind ``mail``)."""

    def __init__(self, store: SandboxStore, faults: SinkFaults) -> None:
        self.store = store
        self.faults = faults

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        async def reply(line: str) -> None:
            writer.write(line.encode("ascii") + b"\r\n")
            await writer.drain()

        mail_from: str | None = None
        rcpts: list[str] = []
        try:
            await reply(f"220 {HOSTNAME} ESMTP hub-sandbox-sink")
            while True:
                line = await reader.readline()
                if not line:
                    return
                command = line.decode("latin-1").rstrip("\r\n")
                verb = command[:4].upper()
                arg = command[4:].strip()
                if verb == "EHLO":
                    await reply(f"250-{HOSTNAME}\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n"
                                f"250 SIZE {MAX_BYTES}")  # fmt: skip
                elif verb == "HELO":
                    await reply(f"250 {HOSTNAME}")
                elif verb == "MAIL":
                    if not arg.upper().startswith("FROM:"):
                        await reply("501 5.5.4 Syntax: MAIL FROM:<address>")
                        continue
                    mail_from, rcpts = _address(arg[5:]), []
                    await reply("250 2.1.0 OK")
                elif verb == "RCPT":
                    if mail_from is None:
                        await reply("503 5.5.1 MAIL first")
                    elif not arg.upper().startswith("TO:"):
                        await reply("501 5.5.4 Syntax: RCPT TO:<address>")
                    else:
                        address = _address(arg[3:])
                        if address.lower() in self.faults.reject_rcpt:
                            await reply("550 5.1.1 Mailbox unavailable")
                        else:
                            rcpts.append(address)
                            await reply("250 2.1.5 OK")
                elif verb == "DATA":
                    if not rcpts:
                        await reply("503 5.5.1 RCPT first")
                        continue
                    await reply("354 End data with <CR><LF>.<CR><LF>")
                    data = await _read_data(reader)
                    if data is None:
                        await reply("552 5.3.4 Message too big")
                        mail_from, rcpts = None, []
                        continue
                    code = self.faults.take()
                    if code is not None:
                        await reply(f"{code} {'4.3.0' if code < 500 else '5.7.1'} "
                                    "Sandbox fault")  # fmt: skip
                    else:
                        mail_id = self._store(mail_from or "", rcpts, data)
                        await reply(f"250 2.0.0 OK queued as {mail_id}")
                    mail_from, rcpts = None, []
                elif verb == "RSET":
                    mail_from, rcpts = None, []
                    await reply("250 2.0.0 OK")
                elif verb == "NOOP":
                    await reply("250 2.0.0 OK")
                elif verb == "QUIT":
                    await reply("221 2.0.0 Bye")
                    return
                else:
                    await reply("502 5.5.2 Command not recognized")
        except (ConnectionError, asyncio.IncompleteReadError):
            return
        finally:
            writer.close()

    def _store(self, mail_from: str, rcpts: list[str], data: bytes) -> str:
        number = self.store.next_counter("mail", 1)
        mail_id = f"m{number:06d}"
        doc = {
            "id": mail_id,
            "mail_from": mail_from,
            "rcpt_to": rcpts,
            "raw": data.decode("latin-1"),  # bytes kept exactly (latin-1 round trip)
            "received_at": iso_z(utcnow()),
        }
        self.store.insert("mail", mail_id, doc)
        return mail_id


def _address(text: str) -> str:
    text = text.strip()
    if text.startswith("<"):
        text = text[1 : text.find(">")] if ">" in text else text[1:]
    return text.split()[0] if text else ""


async def _read_data(reader: asyncio.StreamReader) -> bytes | None:
    lines: list[bytes] = []
    size = 0
    too_big = False
    while True:
        line = await reader.readline()
        if not line:
            raise asyncio.IncompleteReadError(b"", None)
        if line in (b".\r\n", b".\n"):
            break
        if line.startswith(b"."):
            line = line[1:]  # dot-unstuffing (RFC 5321 4.5.2)
        size += len(line)
        if size > MAX_BYTES:
            too_big = True
            continue
        lines.append(line)
    return None if too_big else b"".join(lines)


def create_http_app(store: SandboxStore, faults: SinkFaults) -> Flask:
    app = Flask("sandbox-smtp")

    @app.get(f"{CONTROL_PREFIX}/health")
    def health() -> Response:
        return jsonify(ok=True)

    @app.get(f"{CONTROL_PREFIX}/messages")
    def messages() -> Response:
        wanted = (request.args.get("to") or "").lower()
        found = [parse_stored(d) for d in store.all("mail")]
        if wanted:
            found = [m for m in found if wanted in [r.lower() for r in m["envelope"]["to"]]]
        return Response(json.dumps({"messages": found}, ensure_ascii=False),
                        mimetype="application/json")  # fmt: skip

    @app.get(f"{CONTROL_PREFIX}/messages/<mail_id>/raw")
    def raw(mail_id: str) -> Response:
        doc = store.get("mail", mail_id)
        if doc is None:
            return Response("not found", 404)
        return Response(doc["raw"].encode("latin-1"), mimetype="message/rfc822")

    @app.post(f"{CONTROL_PREFIX}/faults")
    def set_faults() -> Response:
        body = request.get_json(force=True, silent=True) or {}
        with faults.lock:
            if "reject_next" in body:
                faults.reject_next = int(body["reject_next"] or 0)
            if "code" in body:
                faults.code = int(body["code"])
            if "reject_rcpt" in body:
                faults.reject_rcpt = {a.lower() for a in body["reject_rcpt"] or []}
        return jsonify(reject_next=faults.reject_next, code=faults.code,
                       reject_rcpt=sorted(faults.reject_rcpt))  # fmt: skip

    @app.post(f"{CONTROL_PREFIX}/reset")
    def reset() -> Response:
        with faults.lock:
            faults.reject_next, faults.code, faults.reject_rcpt = 0, 451, set()
        for doc in store.all("mail"):
            store.delete("mail", doc["id"])
        return jsonify(ok=True)

    app.extensions["sandbox"] = store
    return app


class SinkHandle:
    """A running sink: ``smtp_host``, ``smtp_port``, ``url`` (HTTP), ``stop()``."""

    def __init__(self, store: SandboxStore, http: ServerHandle, loop: asyncio.AbstractEventLoop,
                 server: asyncio.AbstractServer, thread: threading.Thread) -> None:  # fmt: skip
        self.store = store
        self.http = http
        self._loop = loop
        self._server = server
        self._thread = thread
        sock = server.sockets[0].getsockname()
        self.smtp_host, self.smtp_port = sock[0], sock[1]

    @property
    def url(self) -> str:
        return self.http.url

    def stop(self) -> None:
        self.http.stop()

        async def close() -> None:
            self._server.close()
            await self._server.wait_closed()

        asyncio.run_coroutine_threadsafe(close(), self._loop).result(timeout=5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)
        self.store.close()


def start_sink(
    state_path: str | None = None, *, host: str = "127.0.0.1", smtp_port: int = 0,
    http_port: int = 0,
) -> SinkHandle:  # fmt: skip
    """SMTP server on its own event-loop thread plus the HTTP API (port 0 = any free)."""
    store = SandboxStore(state_path)
    faults = SinkFaults()
    sink = SmtpSink(store, faults)
    loop = asyncio.new_event_loop()
    started = threading.Event()
    holder: dict[str, Any] = {}

    def run() -> None:
        asyncio.set_event_loop(loop)
        holder["server"] = loop.run_until_complete(
            asyncio.start_server(sink.handle, host, smtp_port)
        )
        started.set()
        loop.run_forever()

    thread = threading.Thread(target=run, name="smtp-sink", daemon=True)
    thread.start()
    if not started.wait(10):
        raise RuntimeError("SMTP sink did not start")
    http = serve_in_thread(create_http_app(store, faults), host=host, port=http_port)
    return SinkHandle(store, http, loop, holder["server"], thread)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="smtp_sink")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--smtp-port", type=int, default=8125)
    parser.add_argument("--http-port", type=int, default=8126)
    parser.add_argument("--state", required=True)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO)
    handle = start_sink(args.state, host=args.host, smtp_port=args.smtp_port,
                        http_port=args.http_port)  # fmt: skip
    log.info("SMTP sink on %s:%s, HTTP on %s", handle.smtp_host, handle.smtp_port, handle.url)
    threading.Event().wait()


if __name__ == "__main__":
    main()
