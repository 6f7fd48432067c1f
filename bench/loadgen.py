"""Load generator of the receiver benchmark, run as its own process (bench.receiver).

``http``: C threads, each with one keep-alive connection, POST Stripe-signed
``checkout.session.completed`` events to the receiver; a share of the sends repeat an
event id already sent (re-signed, as Stripe's retries are).
``sql``: the baseline, C threads each sending the exact statement the receiver sends
for the same row (hub.raw.committed_statement: one autocommit INSERT ... ON CONFLICT
that also returns a duplicate's id) into raw.webhook_events, one connection each.

Both run ``warmup`` seconds, then measure for ``duration`` seconds (bounded by
``max_ops`` per thread too) and print one JSON line with the counts and latencies.

``python -m bench.loadgen http|sql --target URL|DSN --secret S --concurrency C ...``
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import random
import resource
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

CREATED = 1_767_000_000


def stripe_event(event_id: str) -> bytes:
    """A realistic Stripe event body; the same id always gives the same bytes."""
    n = int(hashlib.sha256(event_id.encode()).hexdigest()[:8], 16)
    session = {
        "id": f"cs_test_{event_id[4:]}",
        "object": "checkout.session",
        "amount_subtotal": 25000,
        "amount_total": 25000,
        "currency": "try",
        "customer": None,
        "customer_details": {
            "email": f"attendee{n % 100000}@example.com",
            "name": "Ayşe Yılmaz",
            "phone": "+905321234567",
            "address": {"country": "TR", "city": "İstanbul", "postal_code": "34394"},
        },
        "client_reference_id": f"reg-{n % 1000000}",
        "metadata": {"event_slug": "python-istanbul-42", "channel": "native"},
        "mode": "payment",
        "payment_intent": f"pi_{event_id[4:]}",
        "payment_status": "paid",
        "status": "complete",
        "livemode": False,
        "created": CREATED,
        "expires_at": CREATED + 86400,
        "success_url": "https://example.org/events/python-istanbul-42/thanks",
    }
    event = {
        "id": event_id,
        "object": "event",
        "api_version": "2024-06-20",
        "created": CREATED,
        "data": {"object": session},
        "livemode": False,
        "pending_webhooks": 1,
        "request": {"id": None, "idempotency_key": None},
        "type": "checkout.session.completed",
    }
    return json.dumps(event, separators=(",", ":"), ensure_ascii=False).encode()


def stripe_signature(body: bytes, secret: str, timestamp: int | None = None) -> str:
    """``Stripe-Signature`` as Stripe sends it: HMAC-SHA256 over ``"{t}.{body}"``."""
    t = int(time.time()) if timestamp is None else timestamp
    mac = hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={t},v1={mac}"


@dataclass
class Shared:
    """What the threads share: the clock, the ids sent so far, the results."""

    start: float
    warmup: float
    duration: float
    dup_ratio: float
    sent_ids: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    latencies_ms: list[float] = field(default_factory=list)
    outcomes: Counter = field(default_factory=Counter)  # status / error name, in window
    all_outcomes: Counter = field(default_factory=Counter)
    acked_ids: set[str] = field(default_factory=set)  # ids answered 2xx at least once
    sends: int = 0
    duplicate_sends: int = 0

    @property
    def window_start(self) -> float:
        return self.start + self.warmup

    @property
    def end(self) -> float:
        return self.start + self.warmup + self.duration


class Worker:
    """One thread's loop: pick an id (new, or a repeat), send it, record the result."""

    def __init__(self, index: int, shared: Shared, send: Callable[[str], str]) -> None:
        self.index = index
        self.shared = shared
        self.send = send
        self.rng = random.Random(index)
        self.seq = 0

    def next_id(self) -> tuple[str, bool]:
        sent = self.shared.sent_ids
        if sent and self.rng.random() < self.shared.dup_ratio:
            return sent[self.rng.randrange(len(sent))], True
        self.seq += 1
        event_id = f"evt_bench{self.index:02d}x{self.seq:08d}"
        sent.append(event_id)  # list.append is atomic under the GIL
        return event_id, False

    def run(self, max_ops: int) -> None:
        shared = self.shared
        latencies: list[float] = []
        outcomes: Counter = Counter()
        everything: Counter = Counter()
        acked: set[str] = set()
        sends = dups = 0
        for _ in range(max_ops):
            began = time.perf_counter()
            if began >= shared.end:
                break
            event_id, duplicate = self.next_id()
            outcome = self.send(event_id)
            elapsed = time.perf_counter() - began
            sends += 1
            dups += duplicate
            everything[outcome] += 1
            if outcome.startswith("2"):
                acked.add(event_id)
            if began >= shared.window_start and began + elapsed <= shared.end:
                latencies.append(elapsed * 1000)
                outcomes[outcome] += 1
        with shared.lock:
            shared.latencies_ms += latencies
            shared.outcomes += outcomes
            shared.all_outcomes += everything
            shared.acked_ids |= acked
            shared.sends += sends
            shared.duplicate_sends += dups


# --------------------------------------------------------------------------- senders


def http_sender(url: str, secret: str) -> Callable[[], Callable[[str], str]]:
    """Keep-alive HTTP/1.1 over a plain socket: the same bytes a client library sends,
    without http.client's per-response header parsing (email.parser), which on these 2
    shared cores would take CPU from the receiver being measured."""
    import socket

    parts = urlsplit(url)
    host, port, path = parts.hostname or "127.0.0.1", parts.port or 80, parts.path
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\n"
        "Content-Type: application/json; charset=utf-8\r\n"
        "User-Agent: Stripe/1.0 (+https://stripe.com/docs/webhooks)\r\n"
    )

    def connect() -> socket.socket:
        sock = socket.create_connection((host, port), timeout=10)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock

    def make() -> Callable[[str], str]:
        sock = connect()
        buffer = b""

        def read_response() -> tuple[int, bool]:
            nonlocal buffer
            while b"\r\n\r\n" not in buffer:
                chunk = sock.recv(65536)
                if not chunk:
                    raise ConnectionResetError("server closed the connection")
                buffer += chunk
            header, _, rest = buffer.partition(b"\r\n\r\n")
            lines = header.split(b"\r\n")
            status = int(lines[0].split(b" ", 2)[1])
            length, close = 0, False
            for line in lines[1:]:
                name, _, value = line.partition(b":")
                name = name.strip().lower()
                if name == b"content-length":
                    length = int(value)
                elif name == b"connection" and value.strip().lower() == b"close":
                    close = True
            while len(rest) < length:
                chunk = sock.recv(65536)
                if not chunk:
                    raise ConnectionResetError("server closed mid-body")
                rest += chunk
            buffer = rest[length:]
            return status, close

        def send(event_id: str) -> str:
            nonlocal sock, buffer
            body = stripe_event(event_id)
            request = (
                f"{head}Stripe-Signature: {stripe_signature(body, secret)}\r\n"
                f"Content-Length: {len(body)}\r\n\r\n"
            ).encode() + body
            try:
                sock.sendall(request)
                status, close = read_response()
                if close:
                    sock.close()
                    sock, buffer = connect(), b""
                return str(status)
            except (OSError, ValueError, IndexError) as exc:
                sock.close()
                sock, buffer = connect(), b""
                return type(exc).__name__

        return send

    return make


def sql_sender(dsn: str, secret: str) -> Callable[[], Callable[[str], str]]:
    import psycopg

    from hub.raw import committed_statement, raw_values

    def make() -> Callable[[str], str]:
        conn = psycopg.connect(dsn, autocommit=True)

        def send(event_id: str) -> str:
            body = stripe_event(event_id)
            headers = {
                "Host": "127.0.0.1",
                "Content-Type": "application/json; charset=utf-8",
                "User-Agent": "Stripe/1.0 (+https://stripe.com/docs/webhooks)",
                "Stripe-Signature": stripe_signature(body, secret),
                "Content-Length": str(len(body)),
                ":method": "POST",
                ":path": "/webhooks/stripe",
                ":auth": "stripe-signature",
            }
            values = raw_values(
                "webhook_events",
                {"source": "stripe", "headers": headers, "body": body, "dedupe_key": event_id,
                 "verified": True, "flag": None, "status": "received",
                 "event_type": "checkout.session.completed", "body_size": len(body)},
            )  # fmt: skip
            sql, params = committed_statement("webhook_events", values)
            try:
                conn.execute(sql, params).fetchone()
                return "200"
            except psycopg.Error as exc:
                return type(exc).__name__

        return send

    return make


# --------------------------------------------------------------------------- main


def _percentiles(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    if not ordered:
        return {}

    def pick(pct: float) -> float:
        rank = max(1, min(len(ordered), int(pct / 100 * len(ordered) + 0.999999)))
        return ordered[rank - 1]

    return {
        "p50": pick(50),
        "p95": pick(95),
        "p99": pick(99),
        "max": ordered[-1],
        "mean": sum(ordered) / len(ordered),
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    factory = (http_sender if args.mode == "http" else sql_sender)(args.target, args.secret)
    senders = [factory() for _ in range(args.concurrency)]  # connect before the clock
    shared = Shared(time.perf_counter() + 0.2, args.warmup, args.duration, args.dup_ratio)
    workers = [Worker(i, shared, senders[i]) for i in range(args.concurrency)]
    threads = [threading.Thread(target=w.run, args=(args.max_ops,)) for w in workers]
    cpu0 = resource.getrusage(resource.RUSAGE_SELF)
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(args.warmup + args.duration + 60)
    cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    elapsed = time.perf_counter() - shared.start
    in_window = sum(shared.outcomes.values())
    ok = sum(n for k, n in shared.outcomes.items() if k.startswith("2"))
    return {
        "mode": args.mode,
        "concurrency": args.concurrency,
        "duration_s": args.duration,
        "requests": in_window,
        "ok": ok,
        "non_2xx": in_window - ok,
        "rate_per_s": in_window / args.duration,
        "latency_ms": _percentiles(shared.latencies_ms),
        "outcomes": dict(shared.outcomes),
        "all_outcomes": dict(shared.all_outcomes),
        "sends": shared.sends,
        "duplicate_sends": shared.duplicate_sends,
        "distinct_ids": len(set(shared.sent_ids)),
        "acked_ids": len(shared.acked_ids),
        "alive_threads": sum(t.is_alive() for t in threads),
        "cpu_s": (cpu1.ru_utime + cpu1.ru_stime) - (cpu0.ru_utime + cpu0.ru_stime),
        "elapsed_s": elapsed,
        "ids": sorted(shared.sent_ids) if args.with_ids else None,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench.loadgen")
    parser.add_argument("mode", choices=["http", "sql"])
    parser.add_argument("--target", required=True, help="receiver URL or libpq DSN")
    parser.add_argument("--secret", default="whsec_bench")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--duration", type=float, default=20.0)
    parser.add_argument("--dup-ratio", type=float, default=0.1)
    parser.add_argument("--max-ops", type=int, default=200_000, help="per thread")
    parser.add_argument("--with-ids", action="store_true", help="print every id sent")
    args = parser.parse_args(argv)
    if args.mode == "http" and urlsplit(args.target).hostname not in ("127.0.0.1", "::1"):
        parser.error("the load generator only targets loopback")
    print(json.dumps(run(args)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
