"""The outbox relay (``hub serve outbox``): delivers due ``app.outbox`` rows within a
second of the commit that made them due.

Wake-up: PostgreSQL LISTEN ``hub_outbox`` (migration 0006's trigger NOTIFYs on every row
that becomes pending) plus a poll every few seconds as a safety net (a lost connection, a
retry whose back-off ends, a lease that runs out).

Claiming: due rows are taken with ``FOR UPDATE SKIP LOCKED`` in a short transaction and
set ``in_flight``; their ``next_attempt_at`` becomes the lease's end, so a relay killed
mid-delivery leaves rows that any relay reclaims once the lease is over. Each claim
stamps the payload with a fresh token (``payload._claim``). ``hub.outbox.enqueue`` on a
held row (coalescing: the seat count changed during the platform call) makes it pending
but keeps the stamp and the lease as its due time; the holder, seeing ``pending`` with
its stamp when it finishes, does not mark it delivered but makes it due at once, so it is
sent again with the newer truth and two deliveries of one target never race. A reclaim
by another relay replaces the stamp, so a slow relay never overwrites the state of a row
it no longer owns (its report is ``lost``).

Failures: retryable errors (5xx, timeouts, 429 with its Retry-After) go back to pending
with exponential back-off and jitter; after ``max_attempts`` tries, or at once for an
error that retrying cannot fix (refused credentials, a validation error), the row is
``dead``. ``last_error`` is short and scrubbed of anything that looks like a credential.

Handlers are a registry by ``kind`` (``default_handlers``: ``capacity.mirror`` ->
:func:`hub.mirror.push_allowance`); they are async and return the JSON stored in
``result``. Any number of relays may run side by side.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import re
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

import psycopg
from sqlalchemy import text
from sqlalchemy.engine import Engine, make_url

from hub.errors import AdapterError, RateLimited
from hub.settings import Settings

log = logging.getLogger(__name__)

CHANNEL = "hub_outbox"
ERROR_LIMIT = 500


# --------------------------------------------------------------------------- policy


@dataclass(frozen=True)
class RelayPolicy:
    """How the relay claims, waits and gives up."""

    lease_seconds: float = 30.0  # an in_flight row is reclaimed after this
    max_attempts: int = 8  # tries before a row is dead
    base_delay: float = 1.0  # back-off after the first failure
    max_delay: float = 300.0
    poll_seconds: float = 3.0  # safety-net poll when no NOTIFY comes
    batch_size: int = 20
    concurrency: int = 16  # rows delivered at once by one relay

    def backoff(self, attempt: int, retry_after: float | None = None) -> float:
        """Jittered exponential wait after failed try ``attempt`` (1-based), never
        shorter than a platform's Retry-After."""
        delay = min(self.base_delay * 2 ** max(attempt - 1, 0), self.max_delay)
        delay *= 0.5 + random.random() / 2
        if retry_after is not None:
            delay = max(delay, retry_after)
        return delay


# --------------------------------------------------------------------------- rows


@dataclass
class ClaimedRow:
    """One row this relay holds under its lease (``token`` is its claim stamp)."""

    id: int
    kind: str
    idempotency_key: str
    payload: dict[str, Any]
    attempts: int  # including this one
    event_id: UUID | None
    result: dict[str, Any] | None  # the last delivery's result (e.g. what was pushed)
    token: str


@dataclass
class DeliveryOutcome:
    id: int
    kind: str
    status: str  # delivered | repended | retry | dead | lost
    attempts: int
    seconds: float
    error: str | None = None
    result: dict[str, Any] | None = None


class PermanentFailure(Exception):
    """Raised by a handler: retrying cannot help (the row goes dead at once)."""


@dataclass
class DeliveryContext:
    """What a handler gets besides the row: the database, settings and a shared client."""

    engine: Engine
    settings: Settings
    client: Any = None  # httpx.AsyncClient shared by the relay's deliveries
    adapter_factory: Callable[[str], Any] | None = None  # platform -> adapter (tests, bench)
    policy: RelayPolicy = field(default_factory=RelayPolicy)


Handler = Callable[[DeliveryContext, ClaimedRow], Awaitable[dict[str, Any] | None]]


def default_handlers() -> dict[str, Handler]:
    from hub.mirror import mirror_handler
    from hub.outbox import CAPACITY_MIRROR

    return {CAPACITY_MIRROR: mirror_handler}


# --------------------------------------------------------------------------- SQL

_CLAIM_SQL = text(
    """
    with due as (
        select id from app.outbox
         where status in ('pending', 'in_flight') and next_attempt_at <= now()
           and kind = any(:kinds)
           and (cast(:min_age as double precision) = 0
                or next_attempt_at <= now() - make_interval(secs => :min_age))
         order by next_attempt_at, id
         limit :limit
         for update skip locked
    )
    update app.outbox o
       set status = 'in_flight',
           attempts = o.attempts + 1,
           next_attempt_at = now() + make_interval(secs => :lease),
           payload = o.payload || jsonb_build_object('_claim', cast(:token as text))
      from due
     where o.id = due.id
    returning o.id, o.kind, o.idempotency_key, o.payload, o.attempts, o.event_id, o.result
    """
)

_DELIVERED_SQL = text(
    """
    update app.outbox
       set status = 'delivered', delivered_at = now(), last_error = null,
           result = cast(:result as jsonb), payload = payload - '_claim'
     where id = :id and status = 'in_flight' and payload ->> '_claim' = :token
    """
)

# Made pending again while in flight (the enqueue kept our stamp and lease): due now, so it
# is sent again with the newer truth; record what this delivery pushed, count afresh.
_REPENDED_SQL = text(
    """
    update app.outbox
       set result = cast(:result as jsonb), attempts = 0, last_error = null,
           next_attempt_at = now(), payload = payload - '_claim'
     where id = :id and status = 'pending' and payload ->> '_claim' = :token
    """
)

_FAILED_SQL = text(
    """
    update app.outbox
       set status = case when :dead then 'dead' else 'pending' end,
           next_attempt_at = case when :dead then now()
                                  else now() + make_interval(secs => :delay) end,
           last_error = :error,
           payload = payload - '_claim'
     where id = :id and status = 'in_flight' and payload ->> '_claim' = :token
    """
)

# Failed, but an enqueue made it pending meanwhile: it stays pending (its newer truth is
# still owed) after the back-off, so a failing platform is not hammered by every seat.
_FAILED_REPENDED_SQL = text(
    """
    update app.outbox
       set status = case when :dead then 'dead' else 'pending' end,
           next_attempt_at = case when :dead then now()
                                  else now() + make_interval(secs => :delay) end,
           last_error = :error,
           payload = payload - '_claim'
     where id = :id and status = 'pending' and payload ->> '_claim' = :token
    """
)

_NEXT_DUE_SQL = text(
    """
    select extract(epoch from (min(next_attempt_at) - now()))
      from app.outbox where status in ('pending', 'in_flight') and kind = any(:kinds)
    """
)


def claim_due(
    engine: Engine,
    kinds: list[str],
    *,
    limit: int,
    lease_seconds: float,
    min_age_seconds: float = 0.0,
) -> list[ClaimedRow]:
    """Claim up to ``limit`` due rows (pending, or in flight with an expired lease) of
    ``kinds``; ``min_age_seconds`` takes only rows overdue by at least that long."""
    token = uuid.uuid4().hex
    with engine.begin() as conn:
        rows = conn.execute(
            _CLAIM_SQL,
            {
                "kinds": kinds,
                "limit": limit,
                "lease": lease_seconds,
                "token": token,
                "min_age": float(min_age_seconds),
            },
        ).all()
    return [
        ClaimedRow(
            id=r.id,
            kind=r.kind,
            idempotency_key=r.idempotency_key,
            payload={k: v for k, v in r.payload.items() if k != "_claim"},
            attempts=r.attempts,
            event_id=r.event_id,
            result=r.result,
            token=token,
        )
        for r in rows
    ]


def mark_delivered(engine: Engine, row: ClaimedRow, result: dict[str, Any] | None) -> str:
    """``delivered``; ``repended`` when an enqueue made it due again in flight (it will be
    sent again); ``lost`` when another relay reclaimed it after our lease ran out."""
    params = {"id": row.id, "token": row.token, "result": json.dumps(result, default=str)}
    with engine.begin() as conn:
        if conn.execute(_DELIVERED_SQL, params).rowcount:
            return "delivered"
        if conn.execute(_REPENDED_SQL, params).rowcount:
            return "repended"
    return "lost"


def mark_failed(
    engine: Engine,
    row: ClaimedRow,
    error: str,
    *,
    retryable: bool,
    retry_after: float | None,
    policy: RelayPolicy,
) -> str:
    """Back to pending after the back-off (``retry``), or ``dead``; ``lost`` as above."""
    dead = (not retryable) or row.attempts >= policy.max_attempts
    params = {
        "id": row.id,
        "token": row.token,
        "dead": dead,
        "delay": policy.backoff(row.attempts, retry_after),
        "error": safe_error(error),
    }
    with engine.begin() as conn:
        if conn.execute(_FAILED_SQL, params).rowcount:
            return "dead" if dead else "retry"
        if conn.execute(_FAILED_REPENDED_SQL, params).rowcount:
            return "dead" if dead else "retry"
    return "lost"


_REQUEUE_SQL = text(
    """
    update app.outbox
       set status = 'pending', attempts = 0, next_attempt_at = now(),
           last_error = 'requeued by hand after: ' || coalesce(last_error, '-')
     where status = 'dead'
       and (cast(:ids as bigint[]) is null or id = any(cast(:ids as bigint[])))
    returning id
    """
)


def requeue_dead(engine: Engine, ids: list[int] | None = None) -> list[int]:
    """Dead rows (all, or ``ids``) made due again with a fresh count of tries; an
    operator's action once the platform is fixed (Dagster: ``outbox_requeue_dead_job``)."""
    with engine.begin() as conn:
        return list(conn.scalars(_REQUEUE_SQL, {"ids": ids}))


def seconds_to_next_due(engine: Engine, kinds: list[str]) -> float | None:
    with engine.connect() as conn:
        value = conn.execute(_NEXT_DUE_SQL, {"kinds": kinds}).scalar()
    return None if value is None else float(value)


# --------------------------------------------------------------------------- errors

_AUTH_HEADER = re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]+")
_NAMED_SECRET = re.compile(
    r"(?i)\b(token|api[_-]?key|secret|password|access_token|refresh_token|client_secret)"
    r"([\"']?\s*[:=]\s*[\"']?)[^\s\"'&,}]+"
)
_KEY_LIKE = re.compile(r"\b(sk|rk|pk|whsec)_[A-Za-z0-9_]{6,}")


def safe_error(message: str) -> str:
    """A short error text with anything credential-like masked."""
    cleaned = message.replace("\n", " ")
    cleaned = _AUTH_HEADER.sub(lambda m: f"{m.group(1)} ***", cleaned)
    cleaned = _NAMED_SECRET.sub(lambda m: f"{m.group(1)}{m.group(2)}***", cleaned)
    cleaned = _KEY_LIKE.sub("***", cleaned)
    return cleaned[:ERROR_LIMIT]


def describe_failure(exc: BaseException) -> tuple[str, bool, float | None]:
    """(message, retryable, retry_after) of a handler's exception."""
    if isinstance(exc, PermanentFailure):
        return str(exc) or type(exc).__name__, False, None
    if isinstance(exc, AdapterError):
        retry_after = getattr(exc, "retry_after", None)
        if isinstance(exc, RateLimited) and retry_after is None:
            retry_after = 1.0
        return str(exc), bool(exc.retryable), retry_after
    if isinstance(exc, asyncio.TimeoutError | TimeoutError):
        return "delivery timed out", True, None
    if isinstance(exc, LookupError):  # the event or channel is gone: nothing to deliver
        return f"{type(exc).__name__}: {str(exc)[:200]}", False, None
    return f"unexpected {type(exc).__name__}: {str(exc)[:300]}", True, None


# --------------------------------------------------------------------------- delivery


async def deliver_row(
    ctx: DeliveryContext, row: ClaimedRow, handlers: Mapping[str, Handler]
) -> DeliveryOutcome:
    """Run the row's handler within its lease and record the outcome."""
    started = time.perf_counter()
    handler = handlers.get(row.kind)
    result: dict[str, Any] | None = None
    try:
        if handler is None:
            raise PermanentFailure(f"no handler for kind {row.kind!r}")
        result = await asyncio.wait_for(
            handler(ctx, row), timeout=max(ctx.policy.lease_seconds * 0.9, 0.1)
        )
    except Exception as exc:  # any failure is the row's, never the relay's
        message, retryable, retry_after = describe_failure(exc)
        status = await asyncio.to_thread(
            mark_failed,
            ctx.engine,
            row,
            message,
            retryable=retryable,
            retry_after=retry_after,
            policy=ctx.policy,
        )
        log.warning("outbox %s %s: %s (%s)", row.id, row.kind, safe_error(message), status)
        return DeliveryOutcome(
            row.id, row.kind, status, row.attempts, time.perf_counter() - started, message
        )
    status = await asyncio.to_thread(mark_delivered, ctx.engine, row, result)
    return DeliveryOutcome(
        row.id, row.kind, status, row.attempts, time.perf_counter() - started, result=result
    )


async def deliver_due_async(
    ctx: DeliveryContext,
    handlers: Mapping[str, Handler] | None = None,
    *,
    limit: int = 100,
    min_age_seconds: float = 0.0,
) -> list[DeliveryOutcome]:
    """One pass: claim what is due now (optionally only rows overdue by
    ``min_age_seconds``) and deliver it concurrently. For the Dagster sensor and tests."""
    handlers = handlers or default_handlers()
    rows = await asyncio.to_thread(
        claim_due,
        ctx.engine,
        list(handlers),
        limit=limit,
        lease_seconds=ctx.policy.lease_seconds,
        min_age_seconds=min_age_seconds,
    )
    return list(await asyncio.gather(*(deliver_row(ctx, r, handlers) for r in rows)))


def deliver_due(
    engine: Engine,
    settings: Settings,
    handlers: Mapping[str, Handler] | None = None,
    *,
    limit: int = 100,
    min_age_seconds: float = 0.0,
    policy: RelayPolicy | None = None,
    adapter_factory: Callable[[str], Any] | None = None,
) -> list[DeliveryOutcome]:
    """Synchronous :func:`deliver_due_async` with its own HTTP client and event loop."""
    import httpx

    async def run() -> list[DeliveryOutcome]:
        async with httpx.AsyncClient(timeout=15) as client:
            ctx = DeliveryContext(
                engine, settings, client, adapter_factory, policy or RelayPolicy()
            )
            return await deliver_due_async(
                ctx, handlers, limit=limit, min_age_seconds=min_age_seconds
            )

    return asyncio.run(run())


# --------------------------------------------------------------------------- the relay


def listen_conninfo(engine: Engine) -> str:
    """A libpq URI for psycopg from the engine's SQLAlchemy URL."""
    return make_url(engine.url).set(drivername="postgresql").render_as_string(False)


class _Listener(threading.Thread):
    """LISTEN hub_outbox on an autocommit connection; every NOTIFY calls ``wake``.
    Reconnects after a lost connection (the poll covers the gap)."""

    def __init__(self, conninfo: str, wake: Callable[[], None], stop: threading.Event) -> None:
        super().__init__(name="outbox-listener", daemon=True)
        self._conninfo = conninfo
        self._wake = wake
        self._halt = stop
        self.ready = threading.Event()

    def run(self) -> None:
        while not self._halt.is_set():
            try:
                with psycopg.connect(self._conninfo, autocommit=True, connect_timeout=5) as conn:
                    conn.execute(f"LISTEN {CHANNEL}")
                    self.ready.set()
                    self._wake()  # rows that became due while we were not listening
                    while not self._halt.is_set():
                        for _ in conn.notifies(timeout=0.5, stop_after=64):
                            self._wake()
            except psycopg.Error as exc:
                log.warning("outbox listener: %s; reconnecting", type(exc).__name__)
                self._halt.wait(1.0)


class Relay:
    """The loop of one relay process (or thread, in tests)."""

    def __init__(
        self,
        engine: Engine,
        settings: Settings,
        *,
        handlers: Mapping[str, Handler] | None = None,
        policy: RelayPolicy | None = None,
        adapter_factory: Callable[[str], Any] | None = None,
        name: str | None = None,
    ) -> None:
        self.engine = engine
        self.settings = settings
        self.handlers = dict(handlers or default_handlers())
        self.policy = policy or RelayPolicy()
        self.adapter_factory = adapter_factory
        self.name = name or f"relay-{uuid.uuid4().hex[:6]}"
        self.outcomes: list[DeliveryOutcome] = []  # what this relay did (bounded)
        self.listening = threading.Event()

    def run(self, stop: threading.Event) -> None:
        asyncio.run(self._main(stop))

    async def _main(self, stop: threading.Event) -> None:
        import httpx

        loop = asyncio.get_running_loop()
        wake = asyncio.Event()

        def poke() -> None:
            loop.call_soon_threadsafe(wake.set)

        listener_stop = threading.Event()
        listener = _Listener(listen_conninfo(self.engine), poke, listener_stop)
        listener.start()
        if await asyncio.to_thread(listener.ready.wait, 10):
            log.info("outbox relay %s listening on %s", self.name, CHANNEL)
        else:  # the listener keeps trying; until then the poll delivers
            log.warning("outbox relay %s: LISTEN not ready yet, polling", self.name)
        self.listening.set()
        kinds = list(self.handlers)
        running: set[asyncio.Task] = set()
        try:
            async with httpx.AsyncClient(timeout=15) as client:
                ctx = DeliveryContext(
                    self.engine, self.settings, client, self.adapter_factory, self.policy
                )
                while not stop.is_set():
                    wake.clear()
                    free = self.policy.concurrency - len(running)
                    claimed = 0
                    if free > 0:
                        try:
                            rows = await asyncio.to_thread(
                                claim_due,
                                self.engine,
                                kinds,
                                limit=min(self.policy.batch_size, free),
                                lease_seconds=self.policy.lease_seconds,
                            )
                        except Exception as exc:  # database away: wait and try again
                            log.warning("outbox claim failed: %s", type(exc).__name__)
                            rows = []
                            await asyncio.sleep(1.0)
                        claimed = len(rows)
                        for row in rows:
                            task = asyncio.create_task(deliver_row(ctx, row, self.handlers))
                            running.add(task)
                            task.add_done_callback(self._finished(running, wake))
                        if claimed and claimed == min(self.policy.batch_size, free):
                            continue  # more may be due
                    timeout = self.policy.poll_seconds
                    try:
                        due_in = await asyncio.to_thread(seconds_to_next_due, self.engine, kinds)
                    except Exception:
                        due_in = None
                    if due_in is not None:
                        timeout = min(timeout, max(due_in, 0.02))
                    await self._sleep(wake, stop, timeout)
                if running:
                    await asyncio.wait(running, timeout=self.policy.lease_seconds)
        finally:
            listener_stop.set()
            listener.join(timeout=5)
            log.info("outbox relay %s stopped", self.name)

    @staticmethod
    async def _sleep(wake: asyncio.Event, stop: threading.Event, seconds: float) -> None:
        """Until a NOTIFY (or a delivery ending) sets ``wake``, ``seconds`` pass, or
        ``stop`` is set (looked at every quarter second)."""
        deadline = time.monotonic() + seconds
        while not stop.is_set() and not wake.is_set():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wake.wait(), timeout=min(remaining, 0.25))

    def _finished(self, running: set[asyncio.Task], wake: asyncio.Event):
        def done(task: asyncio.Task) -> None:
            running.discard(task)
            if not task.cancelled() and task.exception() is None:
                self.outcomes.append(task.result())
                del self.outcomes[:-1000]
            wake.set()

        return done


def run_relay(
    settings: Settings,
    stop_event: threading.Event,
    *,
    handlers: Mapping[str, Handler] | None = None,
    policy: RelayPolicy | None = None,
    adapter_factory: Callable[[str], Any] | None = None,
) -> Relay:
    """Run a relay until ``stop_event`` is set (``hub serve outbox`` runs it in the
    foreground; tests in a thread). Returns the relay (its ``outcomes``)."""
    from hub.db import get_engine

    relay = Relay(
        get_engine(settings),
        settings,
        handlers=handlers,
        policy=policy,
        adapter_factory=adapter_factory,
    )
    relay.run(stop_event)
    return relay
