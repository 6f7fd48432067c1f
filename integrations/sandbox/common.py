"""What every sandbox emulator shares: persistent state, fault injection, rate limits,
realistic people, webhook delivery and a threaded HTTP server.

An emulator is a Flask app built by ``create_app(state_path=..., **options)`` in
``integrations/sandbox/<platform>.py``. It keeps its state in SQLite (a file when a path
is given, so killing and restarting the process keeps every event and registration), and
installs :func:`install_controls`, which adds the ``/_sandbox/*`` control endpoints:

- ``GET|POST /_sandbox/config``: ``{"latency_ms": 300, "fail_next": {"count": 2,
  "status": 503}, "rate_limit": {"limit": 10, "window_seconds": 1.0},
  "webhooks": {"duplicate": true, "out_of_order": true}}``
- ``POST /_sandbox/reset``: forget every fault (state is kept)
- ``GET /_sandbox/health``: liveness, never faulted
"""

from __future__ import annotations

import contextlib
import json
import logging
import random
import sqlite3
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from flask import Flask, Response, jsonify, request
from werkzeug.serving import BaseWSGIServer, make_server

log = logging.getLogger("hub.sandbox")

CONTROL_PREFIX = "/_sandbox"


def utcnow() -> datetime:
    return datetime.now(UTC)


def iso_z(when: datetime) -> str:
    """2026-05-01T17:00:00Z, the UTC form the platforms print."""
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# --------------------------------------------------------------------------- state


class SandboxStore:
    """A small thread-safe document store on SQLite.

    Each document has a kind ("event", "rsvp", ...), an id, an optional scope (usually
    the event it belongs to), an insertion ``seq`` (stable order for cursors) and a
    ``changed_seq``/``changed_at`` bumped on every update (for "changed since" listings).
    """

    def __init__(self, path: str | Path | None = None) -> None:
        self.path = str(path) if path else ":memory:"
        if path:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        self._conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._lock = threading.RLock()
        with self._lock:
            self._conn.execute("pragma journal_mode=wal")
            self._conn.execute("pragma synchronous=normal")
            self._conn.execute(
                """create table if not exists docs (
                    seq integer primary key autoincrement,
                    kind text not null, id text not null, scope text,
                    changed_seq integer not null, changed_at text not null,
                    data text not null, unique(kind, id))"""
            )
            self._conn.execute("create index if not exists ix_docs_scope on docs(kind, scope, seq)")
            self._conn.execute(
                "create index if not exists ix_docs_changed on docs(kind, scope, changed_seq)"
            )
            self._conn.execute(
                "create table if not exists counters (name text primary key, value integer)"
            )

    @contextlib.contextmanager
    def atomic(self) -> Iterator[None]:
        """Several writes as one transaction (re-entrant within a thread)."""
        with self._lock:
            if self._conn.in_transaction:
                yield
                return
            self._conn.execute("begin immediate")
            try:
                yield
            except BaseException:
                self._conn.execute("rollback")
                raise
            self._conn.execute("commit")

    def next_counter(self, name: str, start: int) -> int:
        """Monotonic id source that survives restarts (numeric platform ids)."""
        with self.atomic():
            row = self._conn.execute("select value from counters where name=?", (name,)).fetchone()
            value = (row[0] + 1) if row else start
            self._conn.execute(
                "insert into counters(name, value) values(?, ?) "
                "on conflict(name) do update set value=excluded.value",
                (name, value),
            )
            return value

    def _next_change(self) -> int:
        return self.next_counter("__changes__", 1)

    def insert(self, kind: str, doc_id: str, data: dict[str, Any], scope: str | None = None) -> int:
        with self.atomic():
            change = self._next_change()
            cur = self._conn.execute(
                "insert into docs(kind, id, scope, changed_seq, changed_at, data) "
                "values(?,?,?,?,?,?)",
                (kind, doc_id, scope, change, iso_z(utcnow()), json.dumps(data)),
            )
            return int(cur.lastrowid or 0)

    def update(self, kind: str, doc_id: str, data: dict[str, Any]) -> None:
        with self.atomic():
            change = self._next_change()
            cur = self._conn.execute(
                "update docs set data=?, changed_seq=?, changed_at=? where kind=? and id=?",
                (json.dumps(data), change, iso_z(utcnow()), kind, doc_id),
            )
            if cur.rowcount == 0:
                raise KeyError(f"{kind} {doc_id}")

    def get(self, kind: str, doc_id: str) -> dict[str, Any] | None:
        with self._lock:
            row = self._conn.execute(
                "select data from docs where kind=? and id=?", (kind, doc_id)
            ).fetchone()
        return json.loads(row[0]) if row else None

    def get_meta(self, kind: str, doc_id: str) -> tuple[int, int, str] | None:
        """(seq, changed_seq, changed_at) of a document."""
        with self._lock:
            return self._conn.execute(
                "select seq, changed_seq, changed_at from docs where kind=? and id=?",
                (kind, doc_id),
            ).fetchone()

    def delete(self, kind: str, doc_id: str) -> bool:
        with self.atomic():
            cur = self._conn.execute("delete from docs where kind=? and id=?", (kind, doc_id))
            return cur.rowcount > 0

    def page(
        self,
        kind: str,
        *,
        scope: str | None = None,
        after_seq: int = 0,
        limit: int = 50,
        order: str = "seq",
        where: str = "",
        params: tuple = (),
    ) -> list[tuple[int, dict]]:
        """Up to ``limit`` (order_value, doc) after ``after_seq`` in ``order`` (seq or
        changed_seq). ``where`` is an extra SQL condition over ``data`` (json_extract)."""
        if order not in ("seq", "changed_seq"):
            raise ValueError(order)
        sql = f"select {order}, data from docs where kind=? and {order} > ?"
        args: list[Any] = [kind, after_seq]
        if scope is not None:
            sql += " and scope=?"
            args.append(scope)
        if where:
            sql += f" and ({where})"
            args.extend(params)
        sql += f" order by {order} limit ?"
        args.append(limit)
        with self._lock:
            rows = self._conn.execute(sql, args).fetchall()
        return [(r[0], json.loads(r[1])) for r in rows]

    def count(
        self, kind: str, *, scope: str | None = None, where: str = "", params: tuple = ()
    ) -> int:
        sql = "select count(*) from docs where kind=?"
        args: list[Any] = [kind]
        if scope is not None:
            sql += " and scope=?"
            args.append(scope)
        if where:
            sql += f" and ({where})"
            args.extend(params)
        with self._lock:
            return int(self._conn.execute(sql, args).fetchone()[0])

    def all(self, kind: str, *, scope: str | None = None) -> list[dict[str, Any]]:
        return [doc for _, doc in self.page(kind, scope=scope, limit=10**9)]

    def close(self) -> None:
        with self._lock:
            self._conn.close()


# --------------------------------------------------------------------------- faults


class RateLimiter:
    """Fixed window per key: ``limit`` requests per ``window_seconds``."""

    def __init__(self, limit: int, window_seconds: float) -> None:
        self.limit = limit
        self.window = window_seconds
        self._hits: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def check(self, key: str) -> float | None:
        """None when allowed; otherwise the seconds until a request would be allowed."""
        now = time.monotonic()
        with self._lock:
            hits = self._hits.setdefault(key, deque())
            while hits and hits[0] <= now - self.window:
                hits.popleft()
            if len(hits) >= self.limit:
                return max(hits[0] + self.window - now, 0.001)
            hits.append(now)
            return None


@dataclass
class SandboxControls:
    """Faults an emulator injects, settable over HTTP while it runs."""

    latency_ms: float = 0.0
    fail_next_count: int = 0
    fail_next_status: int = 503
    rate_limiter: RateLimiter | None = None
    duplicate_webhooks: bool = False
    out_of_order_webhooks: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)

    def as_dict(self) -> dict[str, Any]:
        limiter = self.rate_limiter
        return {
            "latency_ms": self.latency_ms,
            "fail_next": {"count": self.fail_next_count, "status": self.fail_next_status},
            "rate_limit": (
                {"limit": limiter.limit, "window_seconds": limiter.window} if limiter else None
            ),
            "webhooks": {
                "duplicate": self.duplicate_webhooks,
                "out_of_order": self.out_of_order_webhooks,
            },
        }

    def apply(self, config: dict[str, Any]) -> None:
        with self.lock:
            if "latency_ms" in config:
                self.latency_ms = float(config["latency_ms"] or 0)
            if "fail_next" in config:
                fail = config["fail_next"] or {}
                self.fail_next_count = int(fail.get("count", 0))
                self.fail_next_status = int(fail.get("status", 503))
            if "rate_limit" in config:
                limit = config["rate_limit"]
                self.rate_limiter = (
                    RateLimiter(int(limit["limit"]), float(limit.get("window_seconds", 1.0)))
                    if limit
                    else None
                )
            if "webhooks" in config:
                hooks = config["webhooks"] or {}
                self.duplicate_webhooks = bool(hooks.get("duplicate", False))
                self.out_of_order_webhooks = bool(hooks.get("out_of_order", False))

    def take_failure(self) -> int | None:
        with self.lock:
            if self.fail_next_count > 0:
                self.fail_next_count -= 1
                return self.fail_next_status
            return None


def install_controls(
    app: Flask,
    controls: SandboxControls,
    *,
    rate_limit_key: Callable[[], str],
    rate_limited_response: Callable[[float], Response],
    server_error_response: Callable[[int], Response],
) -> None:
    """Apply latency, forced failures and the rate limit before every API request, and
    mount the ``/_sandbox`` control endpoints. The platform supplies its own error bodies."""

    @app.before_request
    def _inject_faults() -> Response | None:
        if request.path.startswith(CONTROL_PREFIX):
            return None
        if controls.latency_ms:
            time.sleep(controls.latency_ms / 1000.0)
        status = controls.take_failure()
        if status is not None:
            return server_error_response(status)
        limiter = controls.rate_limiter
        if limiter is not None:
            wait = limiter.check(rate_limit_key())
            if wait is not None:
                return rate_limited_response(wait)
        return None

    @app.get(f"{CONTROL_PREFIX}/health")
    def _health() -> Response:
        return jsonify(ok=True)

    @app.route(f"{CONTROL_PREFIX}/config", methods=["GET", "POST"])
    def _config() -> Response:
        if request.method == "POST":
            controls.apply(request.get_json(force=True) or {})
        return jsonify(controls.as_dict())

    @app.post(f"{CONTROL_PREFIX}/reset")
    def _reset() -> Response:
        controls.apply({"latency_ms": 0, "fail_next": None, "rate_limit": None, "webhooks": None})
        return jsonify(controls.as_dict())


def retry_after_header(seconds: float) -> str:
    """Retry-After in whole seconds, at least 1 (the header takes integers)."""
    return str(max(1, int(seconds + 0.999)))


# --------------------------------------------------------------------------- people


@dataclass(frozen=True)
class Person:
    first_name: str
    last_name: str
    email: str
    phone: str  # as a person types it: "0532 123 45 67", "+90 532 123 4567", ...

    @property
    def full_name(self) -> str:
        return f"{self.first_name} {self.last_name}"


_PHONE_STYLES = (
    lambda n: f"0{n[:3]} {n[3:6]} {n[6:8]} {n[8:]}",
    lambda n: f"+90 {n[:3]} {n[3:6]} {n[6:]}",
    lambda n: f"+90{n}",
    lambda n: f"{n}",
    lambda n: f"(0{n[:3]}) {n[3:6]}-{n[6:]}",
    lambda n: f"0090{n}",
)
_DOMAINS = (
    "gmail.com",
    "hotmail.com",
    "outlook.com",
    "yahoo.com",
    "icloud.com",
    "yandex.com",
    "protonmail.com",
    "boun.edu.tr",
    "itu.edu.tr",
    "metu.edu.tr",
)


class PeopleFactory:
    """Realistic attendees: mostly Turkish names (with İ, ş, ğ ...), some international,
    e-mails with the casing and spacing people really type, Turkish mobiles in many styles."""

    def __init__(self, seed: int | None = None) -> None:
        from faker import Faker

        self._rng = random.Random(seed)
        self._tr = Faker("tr_TR")
        self._intl = Faker(["en_US", "de_DE", "en_GB", "fr_FR"])
        if seed is not None:
            self._tr.seed_instance(seed)
            self._intl.seed_instance(seed + 1)

    def person(self) -> Person:
        faker = self._tr if self._rng.random() < 0.75 else self._intl
        first, last = faker.first_name(), faker.last_name()
        local = _ascii_fold(f"{first}.{last}").lower().replace(" ", "")
        if self._rng.random() < 0.3:
            local += str(self._rng.randint(1, 99))
        email = f"{local}@{self._rng.choice(_DOMAINS)}"
        if self._rng.random() < 0.1:
            email = email.capitalize()
        if self._rng.random() < 0.05:
            email = f" {email} "
        number = f"5{self._rng.choice('0345')}{self._rng.randint(0, 9)}" + "".join(
            str(self._rng.randint(0, 9)) for _ in range(7)
        )
        phone = self._rng.choice(_PHONE_STYLES)(number)
        return Person(first, last, email, phone)

    def people(self, count: int) -> list[Person]:
        return [self.person() for _ in range(count)]


def _ascii_fold(text: str) -> str:
    import unicodedata

    text = text.translate(str.maketrans("ıİşŞğĞüÜöÖçÇ", "iIsSgGuUoOcC"))
    return unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()


# --------------------------------------------------------------------------- webhooks


@dataclass
class WebhookDelivery:
    url: str
    body: bytes
    headers: dict[str, str]


class WebhookSender:
    """Delivers webhooks at least once, like the platforms do, with one worker thread per
    endpoint URL: an endpoint that hangs or is down delays only its own deliveries, and
    deliveries to one endpoint keep their order.

    With ``duplicate`` each delivery is sent twice; with ``out_of_order`` a batch is
    delivered in reverse order. Failed deliveries are retried a few times with backoff.
    """

    def __init__(
        self, controls: SandboxControls, *, attempts: int = 4, timeout: float = 10.0
    ) -> None:
        self.controls = controls
        self.attempts = attempts
        self.timeout = timeout
        self._cond = threading.Condition()
        self._queues: dict[str, deque[WebhookDelivery]] = {}
        self._workers: dict[str, threading.Thread] = {}
        self._pending = 0
        self.delivered: list[tuple[str, int]] = []  # (url, status) for inspection

    def send(self, deliveries: list[WebhookDelivery]) -> None:
        if not deliveries:
            return
        batch = list(deliveries)
        if self.controls.out_of_order_webhooks:
            batch.reverse()
        if self.controls.duplicate_webhooks:
            batch = [d for d in batch for _ in (0, 1)]
        with self._cond:
            for item in batch:
                self._queues.setdefault(item.url, deque()).append(item)
                self._pending += 1
                worker = self._workers.get(item.url)
                if worker is None or not worker.is_alive():
                    worker = threading.Thread(
                        target=self._run, args=(item.url,), name="webhook-sender", daemon=True
                    )
                    self._workers[item.url] = worker
                    worker.start()
            self._cond.notify_all()

    def wait_idle(self, timeout: float = 30.0) -> bool:
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._pending:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._cond.wait(remaining)
        return True

    def _run(self, url: str) -> None:
        with httpx.Client(timeout=self.timeout) as client:
            while True:
                with self._cond:
                    queue = self._queues.get(url)
                    if not queue:
                        # Nothing left: this worker ends (a later send starts a new one).
                        self._workers.pop(url, None)
                        self._queues.pop(url, None)
                        return
                    item = queue.popleft()
                status = self._deliver(client, item)
                with self._cond:
                    self.delivered.append((item.url, status))
                    self._pending -= 1
                    self._cond.notify_all()

    def _deliver(self, client: httpx.Client, item: WebhookDelivery) -> int:
        status = 0
        for attempt in range(self.attempts):
            try:
                status = client.post(item.url, content=item.body, headers=item.headers).status_code
            except httpx.HTTPError as exc:
                log.warning("webhook to %s failed: %s", item.url, type(exc).__name__)
                status = 0
            if 200 <= status < 300:
                return status
            if attempt < self.attempts - 1:
                time.sleep(min(0.2 * 2**attempt, 2.0))
        return status


def new_delivery_id() -> str:
    return uuid.uuid4().hex


# --------------------------------------------------------------------------- serving


class ServerHandle:
    """A running emulator: ``url``, ``port``, ``app`` and ``stop()``."""

    def __init__(self, app: Flask, server: BaseWSGIServer, thread: threading.Thread) -> None:
        self.app = app
        self._server = server
        self._thread = thread
        self.host = server.host
        self.port = server.port

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


def serve_in_thread(app: Flask, host: str = "127.0.0.1", port: int = 0) -> ServerHandle:
    """Serve ``app`` on a threaded werkzeug server in a daemon thread (port 0 = any free)."""
    server = make_server(host, port, app, threaded=True)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, name=f"sandbox-{app.name}", daemon=True)
    thread.start()
    return ServerHandle(app, server, thread)


def serve_forever(app: Flask, host: str, port: int) -> None:
    """Serve in the foreground (``hub sandbox serve PLATFORM``)."""
    server = make_server(host, port, app, threaded=True)
    server.daemon_threads = True
    log.info("sandbox %s on http://%s:%s", app.name, host, port)
    server.serve_forever()
