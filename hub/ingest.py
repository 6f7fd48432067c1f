"""Raw rows -> registrations and payments: the ingest step after the receiver.

``process_pending`` walks ``raw.webhook_events`` and ``raw.inbound_emails`` in id order
and hands each verified, due row whose ``source`` has a handler to that handler. Each
row is claimed with ``FOR UPDATE SKIP LOCKED`` in its own short transaction, so any
number of workers can run side by side and a crash just releases the row. The
handler's writes run in a savepoint: a failing handler rolls back only its own writes,
and the row's new state (processed / ignored / retry / failed) is committed with them
or without them. A poison row therefore never blocks the rows after it.

Idempotency does not rest on the raw table: the same provider event delivered twice
(two raw rows) meets the unique keys of ``app.registrations`` and ``app.payments`` and
becomes one registration or payment.

Handlers are a registry keyed by source name, passed in by the caller
(``integrations.ingest_handlers.build_handlers`` makes the standard one); they know the
wire formats, this module knows only the queue and imports no adapter.

Fetchers may be sync or async. Async ones all run on one long-lived event loop in a
daemon thread of this process, so an adapter (and its ``httpx.AsyncClient``) can be built
once and reused across ``process_pending`` calls, and ``process_pending`` also works when
called from a thread that runs its own event loop.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
import re
import threading
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import OperationalError

from hub.errors import AdapterError, RateLimited
from hub.raw import storable_text

log = logging.getLogger(__name__)

DEFAULT_TABLES = ("webhook_events", "inbound_emails")
MAX_ATTEMPTS = 8
BASE_DELAY = timedelta(seconds=30)
MAX_DELAY = timedelta(hours=6)
ERROR_LIMIT = 500

# --------------------------------------------------------------------------- contract


class Ignore(Exception):
    """Raised by a handler: the row is understood and needs no action (status 'ignored').

    The reason is stored in ``last_error``; start it with a code (``TEST_PING: ...``).
    """


class RetryLater(Exception):
    """Raised by a handler for a transient problem of its own (status 'retry')."""

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


@dataclass
class RawRow:
    table: str
    id: int
    source: str
    headers: Any
    body: bytes
    attempts: int
    event_type: str | None = None
    dedupe_key: str | None = None
    received_at: datetime | None = None

    def json(self) -> Any:
        return json.loads(self.body)

    def header(self, name: str) -> str | None:
        items = self.headers.items() if isinstance(self.headers, Mapping) else self.headers or []
        for key, value in items:
            if str(key).lower() == name.lower():
                return str(value)
        return None


@dataclass
class HandlerContext:
    conn: Connection
    row: RawRow
    now: datetime

    @property
    def actor(self) -> str:
        return f"ingest:{self.row.source}"

    @property
    def reason(self) -> str:
        return f"raw.{self.row.table}#{self.row.id}"

    def run(self, value: Any) -> Any:
        """The value, awaited first if it is awaitable (async fetchers)."""
        return run_async(value) if inspect.isawaitable(value) else value


Handler = Callable[[HandlerContext], Any]


@dataclass
class IngestReport:
    processed: int = 0
    retried: int = 0
    failed: int = 0
    ignored: int = 0
    by_source: dict[str, dict[str, int]] = field(default_factory=dict)

    def count(self, source: str, outcome: str) -> None:
        setattr(self, outcome, getattr(self, outcome) + 1)
        bucket = self.by_source.setdefault(
            source, {"processed": 0, "retried": 0, "failed": 0, "ignored": 0}
        )
        bucket[outcome] += 1

    @property
    def total(self) -> int:
        return self.processed + self.retried + self.failed + self.ignored


# --------------------------------------------------------------------------- errors


def is_retryable(exc: BaseException) -> bool:
    if isinstance(exc, RetryLater):
        return True
    if isinstance(exc, AdapterError):
        return exc.retryable
    return isinstance(
        exc,
        httpx.TransportError | ConnectionError | TimeoutError | asyncio.TimeoutError
        | OperationalError,
    )  # fmt: skip


_SECRETS = [
    (re.compile(r"(?i)\b(bearer|basic)\s+[\w.~+/=-]+"), r"\1 ***"),
    (re.compile(r"\b(?:sk|rk|pk|whsec)_\w+"), "***"),
    (
        re.compile(
            r"(?i)([?&](?:token|api_key|apikey|key|access_token|password|secret|signature)=)"
            r"[^&\s]+"
        ),
        r"\1***",
    ),
    (
        re.compile(
            r"(?i)((?:token|api[_-]?key|password|secret|authorization|x-luma-api-key)"
            r"[\"']?\s*[:=]\s*[\"']?)[^\s\"',}]+"
        ),
        r"\1***",
    ),
]


def describe_error(exc: BaseException) -> str:
    """A short, secret-free description of an error for ``last_error``."""
    message = f"{type(exc).__name__}: {exc}"
    for pattern, replacement in _SECRETS:
        message = pattern.sub(replacement, message)
    message = " ".join(message.split())
    return message[:ERROR_LIMIT]


def backoff(attempts: int, exc: BaseException | None = None) -> timedelta:
    """30 s, 1 min, 2 min ... capped at 6 h; never sooner than a Retry-After."""
    delay = min(BASE_DELAY * (2 ** max(attempts - 1, 0)), MAX_DELAY)
    retry_after = getattr(exc, "retry_after", None)
    if isinstance(exc, RateLimited | RetryLater) and retry_after:
        delay = max(delay, timedelta(seconds=float(retry_after)))
    return delay


# --------------------------------------------------------------------------- the loop


def process_pending(
    engine: Engine,
    *,
    handlers: Mapping[str, Handler],
    batch_size: int = 100,
    now: datetime | None = None,
    max_attempts: int = MAX_ATTEMPTS,
    tables: Collection[str] = DEFAULT_TABLES,
) -> IngestReport:
    """Process up to ``batch_size`` due rows per raw table; returns what happened.

    A row is due when its status is 'received' or 'retry', it is verified, not
    flagged, its ``next_attempt_at`` has passed (or is null) and its source has a
    handler; other rows are left exactly as they are.
    """
    now = now or datetime.now(UTC)
    report = IngestReport()
    sources = sorted(handlers)
    for table in tables if sources else ():
        skip: list[int] = []  # rows whose bookkeeping failed: never claimed twice a run
        for _ in range(batch_size):
            if not _process_one(engine, table, sources, handlers, now, max_attempts, report, skip):
                break
    return report


_loop: asyncio.AbstractEventLoop | None = None
_loop_lock = threading.Lock()


def run_async(awaitable: Any) -> Any:
    """Run an awaitable on the module's background event loop and wait for its result.

    One loop for the life of the process: async clients bound to it on first use stay
    usable across calls (a fresh loop per call would strand their pooled connections).
    """
    global _loop
    with _loop_lock:
        if _loop is None or _loop.is_closed():
            _loop = asyncio.new_event_loop()
            threading.Thread(target=_loop.run_forever, name="hub-ingest-loop", daemon=True).start()
        loop = _loop

    async def _await() -> Any:
        return await awaitable

    return asyncio.run_coroutine_threadsafe(_await(), loop).result()


def _claim_sql(table: str) -> Any:
    if table not in DEFAULT_TABLES:
        raise ValueError(f"no ingest for raw.{table}")
    extra = "event_type" if table == "webhook_events" else "null as event_type"
    return text(
        f"""
        select id, source, headers, body, attempts, dedupe_key, received_at, {extra}
        from raw.{table}
        where status in ('received', 'retry')
          and verified
          and flag is null
          and (next_attempt_at is null or next_attempt_at <= :now)
          and source = any(cast(:sources as text[]))
          and not (id = any(cast(:skip as bigint[])))
        order by id
        limit 1
        for update skip locked
        """
    )


def _process_one(
    engine: Engine,
    table: str,
    sources: list[str],
    handlers: Mapping[str, Handler],
    now: datetime,
    max_attempts: int,
    report: IngestReport,
    skip: list[int],
) -> bool:
    """Claim, handle and mark one row; False when no row is due.

    When the row's own bookkeeping fails (its new state cannot be written, or the
    handler's writes fail at release or commit), the transaction rolls back and the row
    is marked ``failed`` in a separate transaction: it leaves the queue and never blocks
    the rows behind it. Only when that fails too (the database is down) does the error
    propagate and end the run."""
    claimed: list[RawRow] = []
    try:
        return _claim_and_handle(engine, table, sources, handlers, now, max_attempts,
                                 report, skip, claimed)  # fmt: skip
    except Exception as exc:
        if not claimed:
            raise
        row = claimed[0]
        skip.append(row.id)
        error = f"BOOKKEEPING: {describe_error(exc)}"[:ERROR_LIMIT]
        with engine.begin() as conn:
            _finish(conn, row, "failed", row.attempts + 1, error, None, None)
        report.count(row.source, "failed")
        log.error("raw.%s#%s failed (bookkeeping): %s", table, row.id, error)
        return True


def _claim_and_handle(
    engine: Engine,
    table: str,
    sources: list[str],
    handlers: Mapping[str, Handler],
    now: datetime,
    max_attempts: int,
    report: IngestReport,
    skip: list[int],
    claimed: list[RawRow],
) -> bool:
    with engine.begin() as conn:
        found = conn.execute(
            _claim_sql(table), {"now": now, "sources": sources, "skip": skip}
        ).first()
        if found is None:
            return False
        row = RawRow(
            table=table,
            id=found.id,
            source=found.source,
            headers=found.headers,
            body=bytes(found.body),
            attempts=found.attempts,
            event_type=found.event_type,
            dedupe_key=found.dedupe_key,
            received_at=found.received_at,
        )
        claimed.append(row)
        attempts = row.attempts + 1
        ctx = HandlerContext(conn, row, now)
        try:
            with conn.begin_nested():
                handlers[row.source](ctx)
        except Ignore as exc:
            _finish(conn, row, "ignored", attempts, str(exc)[:ERROR_LIMIT], now, None)
            report.count(row.source, "ignored")
        except Exception as exc:
            error = describe_error(exc)
            if is_retryable(exc) and attempts < max_attempts:
                _finish(conn, row, "retry", attempts, error, None, now + backoff(attempts, exc))
                report.count(row.source, "retried")
                log.warning("raw.%s#%s retry %s: %s", table, row.id, attempts, error)
            else:
                if is_retryable(exc):
                    error = f"gave up after {attempts} attempts: {error}"[:ERROR_LIMIT]
                _finish(conn, row, "failed", attempts, error, None, None)
                report.count(row.source, "failed")
                log.error("raw.%s#%s failed: %s", table, row.id, error)
        else:
            _finish(conn, row, "processed", attempts, None, now, None)
            report.count(row.source, "processed")
    return True


def _finish(
    conn: Connection,
    row: RawRow,
    status: str,
    attempts: int,
    error: str | None,
    processed_at: datetime | None,
    next_attempt_at: datetime | None,
) -> None:
    conn.execute(
        text(
            f"""
            update raw.{row.table}
            set status = :status, attempts = :attempts, last_error = :error,
                processed_at = :processed_at, next_attempt_at = :next_attempt_at
            where id = :id
            """
        ),
        {
            "status": status,
            "attempts": attempts,
            "error": storable_text(error),  # reasons can quote outside text (NUL ...)
            "processed_at": processed_at,
            "next_attempt_at": next_attempt_at,
            "id": row.id,
        },
    )
