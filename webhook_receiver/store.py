"""The receiver's raw store: group commit on one connection per process, with a deadline.

A request hands its row to :meth:`RawStore.store` and waits (at most
:data:`DEADLINE_SECONDS`) for the committer thread of its process. The committer takes
every row queued at that moment and commits them together: one row is one autocommit
``INSERT ... ON CONFLICT`` statement (the statement the bench baseline also runs); two or
more are sent in one pipelined round trip inside one transaction and one COMMIT. Only
when that COMMIT has returned is any of the waiting requests answered, so raw-first
durability holds exactly as with one statement per request: no 2xx before the row is
committed. Rows queued while a batch is in flight form the next batch, so under load
PostgreSQL sees one commit per batch instead of one per request; with no load a batch is
a single row and the cost is one thread hand-off.

A batch that fails as a whole (one row PostgreSQL refuses, a constraint) is retried row
by row in autocommit, so one bad row never takes the others down with it.

Deadline: PostgreSQL frozen (stopped, or a lock that never comes free) would otherwise
hold every request for the whole freeze. A request whose row is not committed within the
deadline gets :class:`StoreTimeout` (the receiver answers 503 with Retry-After), and
while the commit in flight is older than the deadline new requests get it at once
(they would only queue behind it, holding a thread each); a row it
abandoned before the committer took it is skipped, one already sent may still commit
when PostgreSQL comes back, and the sender's retry then meets it as a duplicate: a
request is lost only if it was never acknowledged, which is what 503 says.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import psycopg
from sqlalchemy.engine import make_url

from hub.embedded import resolve_database_url
from hub.raw import RawStoreResult, committed_statement, raw_values, result_of_row
from hub.settings import Settings

log = logging.getLogger(__name__)

RECYCLE_SECONDS = 300.0
# Under 2 s in all: the sender gets 503 + Retry-After instead of hanging with PostgreSQL.
DEADLINE_SECONDS = float(os.environ.get("HUB_RECEIVER_DB_DEADLINE_SECONDS", "1.5"))
CONNECT_TIMEOUT_SECONDS = 2  # libpq's minimum; the request deadline is shorter anyway
STATEMENT_TIMEOUT_MS = 1500
MAX_BATCH = 64
# The kernel drops a connection whose sent data stays unacknowledged this long (a peer
# gone without a FIN); a stopped server still acknowledges, which the deadline covers.
TCP_USER_TIMEOUT_MS = 10_000


class StoreTimeout(Exception):
    """The row was not committed within the deadline (PostgreSQL slow or frozen)."""


def libpq_url(settings: Settings) -> str:
    """The hub database as a libpq URL (the embedded server is started on demand)."""
    url = make_url(resolve_database_url(settings)).set(drivername="postgresql")
    return url.render_as_string(hide_password=False)


@dataclass
class _Item:
    table: str
    values: dict[str, Any]
    done: threading.Event = field(default_factory=threading.Event)
    result: RawStoreResult | None = None
    error: BaseException | None = None
    abandoned: bool = False
    on_done: Callable[[], None] | None = None  # called (committer thread) once finished

    def finish(self, result: RawStoreResult | None, error: BaseException | None) -> None:
        self.result, self.error = result, error
        self.done.set()
        if self.on_done is not None:
            try:
                self.on_done()
            except Exception:  # the waiter's event loop is gone: nobody to tell
                log.debug("raw store waiter gone", exc_info=True)


_SHARED: dict[tuple[str, float], RawStore] = {}
_SHARED_LOCK = threading.Lock()


class RawStore:
    """One committer thread and one autocommit connection per process (lazily started)."""

    def __init__(self, settings: Settings, *, deadline: float = DEADLINE_SECONDS) -> None:
        self._settings = settings
        self._deadline = deadline
        self._queue: deque[_Item] = deque()
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self._pid = os.getpid()
        self._conn: psycopg.Connection | None = None
        self._born = 0.0
        self._closed = False
        self._busy_since: float | None = None  # when the batch in flight was taken

    # ------------------------------------------------------------------ requests

    @property
    def deadline(self) -> float:
        return self._deadline

    def store(self, table: str, **fields: Any) -> RawStoreResult:
        """Commit one raw row (see :func:`hub.raw.store_raw_committed` for the fields);
        raises :class:`StoreTimeout` past the deadline, or the database's error."""
        item = self.submit(table, fields)
        item.done.wait(self._deadline)
        return self.outcome(item)

    def submit(
        self, table: str, fields: dict[str, Any], on_done: Callable[[], None] | None = None
    ) -> _Item:
        """Queue one row for the committer without waiting (``on_done`` is called from
        the committer thread once it is committed or has failed); then wait at most
        :attr:`deadline` and read it with :meth:`outcome`. Raises :class:`StoreTimeout`
        at once while the commit in flight is older than the deadline."""
        item = _Item(table, raw_values(table, fields), on_done=on_done)
        with self._cond:
            since = self._busy_since
            if since is not None and time.monotonic() - since > self._deadline:
                # The commit in flight is already past the deadline (PostgreSQL frozen):
                # answer at once instead of holding a thread for another deadline.
                raise StoreTimeout("the raw store has not answered for longer than the deadline")
            self._ensure_thread()
            self._queue.append(item)
            self._cond.notify()
        return item

    def outcome(self, item: _Item) -> RawStoreResult:
        """The result of a submitted row once waited for: not finished by now means it
        missed the deadline (abandoned: skipped if the committer has not taken it)."""
        if not item.done.is_set():
            with self._cond:
                item.abandoned = True
            if not item.done.is_set():
                raise StoreTimeout(f"the raw row was not committed within {self._deadline} s")
        if item.error is not None:
            raise item.error
        assert item.result is not None
        return item.result

    def _ensure_thread(self) -> None:
        if self._pid != os.getpid():  # forked: the parent's thread and socket are not ours
            self._pid, self._conn, self._thread = os.getpid(), None, None
            self._queue.clear()
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._loop, name="raw-committer", daemon=True)
            self._thread.start()

    # ------------------------------------------------------------------ committer

    def _loop(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._closed:
                    self._cond.wait()
                if self._closed:
                    return
                batch: list[_Item] = []
                while self._queue and len(batch) < MAX_BATCH:
                    item = self._queue.popleft()
                    if not item.abandoned:
                        batch.append(item)
                self._busy_since = time.monotonic() if batch else None
            if batch:
                try:
                    self._commit(batch)
                except BaseException as exc:  # never leave a waiter without an answer
                    for item in batch:
                        if not item.done.is_set():
                            item.finish(None, exc)
                finally:
                    with self._cond:
                        self._busy_since = None

    def _connection(self) -> tuple[psycopg.Connection, bool]:
        """The committer's connection and whether it was opened just now."""
        conn = self._conn
        if conn is not None and (conn.closed or time.monotonic() - self._born > RECYCLE_SECONDS):
            conn.close()
            conn = None
        if conn is None:
            conn = psycopg.connect(
                libpq_url(self._settings),
                autocommit=True,
                connect_timeout=CONNECT_TIMEOUT_SECONDS,
                tcp_user_timeout=TCP_USER_TIMEOUT_MS,
                keepalives_idle=5,
                options=f"-c statement_timeout={STATEMENT_TIMEOUT_MS}",
            )
            self._conn, self._born = conn, time.monotonic()
            return conn, True
        return conn, False

    def _drop_connection(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _commit(self, batch: list[_Item]) -> None:
        """Commit the batch; a connection that turns out dead is replaced once (safe: a
        row the lost attempt did commit is found as a duplicate on the retry)."""
        for attempt in (1, 2):
            fresh = True
            try:
                conn, fresh = self._connection()
                if len(batch) == 1:
                    self._single(conn, batch[0])
                else:
                    self._grouped(conn, batch)
                return
            except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
                self._drop_connection()
                if attempt == 2 or fresh:
                    for item in batch:
                        item.finish(None, exc)
                    return

    def _single(self, conn: psycopg.Connection, item: _Item) -> None:
        try:
            result = self._execute(conn, item)
        except (psycopg.OperationalError, psycopg.InterfaceError):
            raise
        except psycopg.Error as exc:
            item.finish(None, exc)
            return
        item.finish(result, None)

    def _grouped(self, conn: psycopg.Connection, batch: list[_Item]) -> None:
        results: list[RawStoreResult] = []
        try:
            with conn.transaction(), conn.pipeline():
                cursors = [self._send(conn, item) for item in batch]
            for cur, item in cursors:
                results.append(result_of_row(cur.fetchone(), item.table, item.values, cur))
        except (psycopg.OperationalError, psycopg.InterfaceError):
            raise
        except psycopg.Error:
            # One row refused (or a race the combined statement could not see): the
            # transaction is rolled back; commit each row on its own instead.
            for item in batch:
                self._single(conn, item)
            return
        for item, result in zip(batch, results, strict=True):
            item.finish(result, None)

    @staticmethod
    def _send(conn: psycopg.Connection, item: _Item) -> tuple[psycopg.Cursor, _Item]:
        sql, params = committed_statement(item.table, item.values)
        cur = conn.cursor()
        cur.execute(sql, params)
        return cur, item

    @staticmethod
    def _execute(conn: psycopg.Connection, item: _Item) -> RawStoreResult:
        sql, params = committed_statement(item.table, item.values)
        with conn.cursor() as cur:
            row = cur.execute(sql, params).fetchone()
            return result_of_row(row, item.table, item.values, cur)

    @classmethod
    def shared(cls, settings: Settings) -> RawStore:
        """The process's store for this database (one committer thread and connection per
        process and database, however many apps are built: tests build one per test)."""
        key = (libpq_url(settings), DEADLINE_SECONDS)
        with _SHARED_LOCK:
            store = _SHARED.get(key)
            if store is None or store._closed:
                store = _SHARED[key] = cls(settings)
            return store

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._drop_connection()
