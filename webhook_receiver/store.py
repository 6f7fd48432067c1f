"""The receiver's raw store: autocommit psycopg connections, one round trip per row.

Each request borrows a connection, runs :func:`hub.raw.store_raw_committed` (one
``INSERT ... ON CONFLICT DO NOTHING`` statement in autocommit, so the row is durable when
it returns, and a duplicate's id comes back in the same statement) and gives it back.

Why not the hub's SQLAlchemy engine: its ``pool_pre_ping`` costs a round trip per
checkout, and ``begin()`` ... ``COMMIT`` another; under load those round trips and the
engine's Python were most of a request. Instead connections are checked lazily: one that
is older than :data:`RECYCLE_SECONDS` is closed on checkout, and a statement that fails
with a connection-level error on a reused connection is retried once on a fresh one (a
dead idle connection, e.g. after a PostgreSQL restart). The retry is safe: if the lost
attempt did commit, the retry finds the row (``duplicate``), so it is still stored once.
When no connection can be opened at all the error propagates and the receiver answers
503, as before.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TypeVar

import psycopg
from sqlalchemy.engine import make_url

from hub.embedded import resolve_database_url
from hub.settings import Settings

RECYCLE_SECONDS = 300.0
CONNECT_TIMEOUT_SECONDS = 5
MAX_IDLE = 32

T = TypeVar("T")


def libpq_url(settings: Settings) -> str:
    """The hub database as a libpq URL (the embedded server is started on demand)."""
    url = make_url(resolve_database_url(settings)).set(drivername="postgresql")
    return url.render_as_string(hide_password=False)


class RawStore:
    """A small thread-safe LIFO pool of autocommit connections to the hub database."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._idle: list[tuple[psycopg.Connection, float]] = []
        self._lock = threading.Lock()

    def _connect(self) -> tuple[psycopg.Connection, float]:
        # Resolved per new connection (rare), so an embedded server that went away is
        # started again, as the engine path did on every request.
        conn = psycopg.connect(
            libpq_url(self._settings), autocommit=True, connect_timeout=CONNECT_TIMEOUT_SECONDS
        )
        return conn, time.monotonic()

    def _checkout(self) -> tuple[psycopg.Connection, float, bool]:
        now = time.monotonic()
        while True:
            with self._lock:
                if not self._idle:
                    break
                conn, born = self._idle.pop()
            if now - born < RECYCLE_SECONDS and not conn.closed:
                return conn, born, True
            conn.close()
        conn, born = self._connect()
        return conn, born, False

    def _checkin(self, conn: psycopg.Connection, born: float) -> None:
        if conn.closed or conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
            conn.close()
            return
        with self._lock:
            if len(self._idle) < MAX_IDLE:
                self._idle.append((conn, born))
                return
        conn.close()

    def run(self, work: Callable[[psycopg.Connection], T]) -> T:
        """``work(conn)`` on a pooled autocommit connection; retried once on a fresh
        connection when a reused one turns out to be dead."""
        conn, born, reused = self._checkout()
        try:
            result = work(conn)
        except (psycopg.OperationalError, psycopg.InterfaceError):
            conn.close()
            if not reused:
                raise
            conn, born = self._connect()
            try:
                result = work(conn)
            except psycopg.Error:
                self._checkin(conn, born)
                raise
            except BaseException:
                conn.close()
                raise
        except psycopg.Error:  # e.g. an undefined table: the connection itself is fine
            self._checkin(conn, born)
            raise
        except BaseException:
            conn.close()
            raise
        self._checkin(conn, born)
        return result

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for conn, _ in idle:
            conn.close()
