"""The seat ledger: PostgreSQL's truth (``app.seat_holds``) behind a Redis gate.

Every seat decision (hold, confirm, consume, release) is taken by one Lua script in Redis
(one EVALSHA, reloaded after NOSCRIPT by redis-py's ``Script``) and written to PostgreSQL
in the same transaction. The rules are hub.seat_counts': a channel takes from its own
quota first, then from the shared pool; a platform sale that finds the room full is
recorded as ``overbooked`` (no seat).

Why it never oversells and never loses a confirmed seat:

* A decision holds ``pg_advisory_xact_lock_shared(<event>)`` (and an exclusive lock per
  hold key) from before its Redis write until its PostgreSQL transaction ends. A rebuild
  of the event's Redis state from PostgreSQL takes the exclusive lock of the event, so
  it waits for every decision in flight: it reads their outcome, never half of it.
* The Lua script answers ``REBUILD`` when the event's key is missing (FLUSHALL, DEL,
  eviction) or was built by another Redis process (its ``run_id`` differs: a restart,
  even one that reloaded an older RDB snapshot, or a failover). The decision then rolls
  back to its savepoint (which releases its shared lock), rebuilds under the exclusive
  lock and tries again.
* Taking a seat writes Redis first: if PostgreSQL then fails, the seat is given back
  (the undo log, in reverse); if giving back fails, the event's key is deleted so it is
  rebuilt. Freeing a seat is done in Redis just before the commit (after every statement
  of the transaction succeeded): a freed seat never exists in Redis while PostgreSQL
  could still roll back the release (except if COMMIT itself fails; then the key is
  deleted too). A commit whose outcome is unknown (connection lost) deletes the key, so
  the next decision reads PostgreSQL's actual outcome.
* Redis unreachable or timing out: ``LedgerUnavailable`` (a ``ConnectionError``, so the
  ingest retries it; the checkout answers 503). Nothing is sold without the gate.

Callers that change an event's capacity or allocations call :meth:`SeatLedger.invalidate`
in the same transaction.

Limits worth knowing:

* A transaction that made a decision on an event and then finds the gate gone (flush
  between two of its decisions) rebuilds it inside itself if no other transaction holds
  the event; otherwise it gets ``LedgerConflict`` after 250 ms (retry the transaction)
  instead of a deadlock.
* A seat freed in a transaction is not available to later decisions of the same
  transaction (Redis frees it at commit).
* The ledger's Redis must not evict keys (``maxmemory-policy noeviction``): losing one
  of an event's three keys alone (not the event hash) is not detected. FLUSHALL, DEL of
  the event hash, a restart (with or without an RDB/AOF file) and a failover are.
"""

from __future__ import annotations

import hashlib
import threading
import uuid
import weakref
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import redis as redis_lib
from sqlalchemy import event as sa_event
from sqlalchemy import text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError

from hub.capacity_lua import script
from hub.outbox import CAPACITY_MIRROR, enqueue_capacity_mirror
from hub.seat_counts import CHANNELS, SeatCounts, seat_counts

EVENT_LOCK_CLASS = 0x48554231  # "HUB1": pg_advisory_xact_lock(<class>, <event hash>)
KEY_LOCK_CLASS = 0x48554232  # "HUB2": one hold key
MAX_REBUILD_ATTEMPTS = 5
UPGRADE_LOCK_TIMEOUT_MS = 250
# A platform registration waiting for the host's approval holds its seat: the host may
# approve it on the platform at any moment, outside the hub (Luma's pending_approval).
ACTIVE_REGISTRATION = ("pending", "approved", "attended", "no_show")
ENDED_REGISTRATION = ("cancelled", "declined")

_STATE_NAMES = {"h": "held", "c": "confirmed", "o": "overbooked"}


class LedgerError(RuntimeError):
    """Base of the ledger's errors."""


class LedgerUnavailable(LedgerError, ConnectionError):
    """Redis cannot be reached (or did not answer in time): no seat is decided. Retry
    later; the checkout answers 503. A ``ConnectionError``, so hub.ingest retries it."""


class LedgerConflict(LedgerUnavailable):
    """The gate had to be rebuilt while this transaction held the event (Redis flushed
    or restarted between two decisions of one transaction), or kept vanishing: retry
    the transaction. A ``LedgerUnavailable``, so callers answering 503 cover it."""


class UnknownEvent(LedgerError, LookupError):
    """No such event in PostgreSQL."""


# --------------------------------------------------------------------------- results


@dataclass(frozen=True)
class HoldResult:
    status: str  # held | existing | full
    pool: str | None = None  # quota | shared (none when full)
    expires_at: datetime | None = None
    hold_id: int | None = None
    channel: str = "native"
    state: str | None = None  # the key's state: held | confirmed | overbooked


@dataclass(frozen=True)
class ConfirmResult:
    status: str  # confirmed | already | retaken | full | unknown
    pool: str | None = None
    hold_id: int | None = None


@dataclass(frozen=True)
class Availability:
    event_id: UUID
    total: int
    native_left: int  # seats a native checkout may still take (quota, then shared)
    free: int  # seats nobody holds, every channel
    sold_out: bool
    source: str = "redis"  # redis | postgres (Redis unreachable: PostgreSQL's count)


@dataclass(frozen=True)
class ExpiredHold:
    """A hold :func:`release_expired_holds` expired, as the expiry hooks receive it."""

    id: int
    event_id: UUID
    hold_key: str
    channel: str
    order_no: str | None
    registration_id: int | None
    expires_at: datetime | None


@dataclass
class AccountingCounts:
    consumed: int = 0
    overbooked: int = 0
    waitlisted: int = 0
    freed: int = 0
    existing: int = 0
    upgraded: int = 0  # overbooked seats (policy keep) that took a seat freed since

    def __add__(self, other: AccountingCounts) -> AccountingCounts:
        return AccountingCounts(
            self.consumed + other.consumed,
            self.overbooked + other.overbooked,
            self.waitlisted + other.waitlisted,
            self.freed + other.freed,
            self.existing + other.existing,
            self.upgraded + other.upgraded,
        )


@dataclass(frozen=True)
class RedisCounts:
    """What the gate holds for one event (after sweeping expired holds)."""

    total: int
    shared: int
    channels: dict[str, dict[str, int]] = field(default_factory=dict)

    @property
    def taken(self) -> int:
        return sum(c["held"] + c["confirmed"] for c in self.channels.values())


ExpiryHook = Callable[[Connection, ExpiredHold], None]
ON_HOLD_EXPIRED: list[ExpiryHook] = []
"""Called in the transaction that expires a hold (hub.checkout registers one: mark the
order expired, expire its Stripe session). An exception rolls the batch back; it is
tried again on the next run."""


def register_expiry_hook(hook: ExpiryHook) -> ExpiryHook:
    """Add ``hook`` to :data:`ON_HOLD_EXPIRED` once (usable as a decorator)."""
    if hook not in ON_HOLD_EXPIRED:
        ON_HOLD_EXPIRED.append(hook)
    return hook


# --------------------------------------------------------------------------- helpers


def _lock_id(value: str) -> int:
    """A signed 32-bit hash (the two-int form of the advisory lock functions)."""
    return int.from_bytes(
        hashlib.blake2b(value.encode(), digest_size=4).digest(), "big", signed=True
    )


def _s(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, list):
        return [_s(v) for v in value]
    return value


def _uuid(value: UUID | str) -> UUID:
    return value if isinstance(value, UUID) else UUID(str(value))


def _ms_to_dt(ms: int | str | None) -> datetime | None:
    ms = int(ms or 0)
    return datetime.fromtimestamp(ms / 1000, UTC) if ms > 0 else None


def _pool(value: str | None) -> str | None:
    return value or None


_UPSERT_SQL = text(
    """
    with up as (
        insert into app.seat_holds as s
            (event_id, hold_key, channel, pool, status, expires_at, order_no, registration_id)
        values (:event_id, :hold_key, :channel, :pool, :status, :expires_at, :order_no,
                :registration_id)
        on conflict (event_id, hold_key) do update set
            channel = excluded.channel, pool = excluded.pool, status = excluded.status,
            expires_at = excluded.expires_at,
            order_no = coalesce(excluded.order_no, s.order_no),
            registration_id = coalesce(excluded.registration_id, s.registration_id),
            reason = null, updated_at = now()
        returning s.id
    )
    select (select id from up) as id,
           case when cast(:mirror as boolean) then
               (select count(*) from app.event_channels c
                 where c.event_id = :event_id and c.platform <> 'native'
                   and c.platform_event_id is not null)
             - (select count(*) from app.outbox o
                 where o.event_id = :event_id and o.kind = :kind and o.status = 'pending')
           else 0 end as mirror_due
    """
)

_RELEASE_SQL = text(
    """
    with old as (
        select id, status from app.seat_holds
         where event_id = :event_id and hold_key = :hold_key
           and status = any(cast(:from_status as text[]))
           and (cast(:expired_only as boolean) is false or expires_at <= now())
         for update
    ), up as (
        update app.seat_holds s set status = :status, reason = :reason, updated_at = now()
          from old where s.id = old.id
        returning s.id
    )
    select (select id from up) as id,
           (select count(*) from app.event_channels c
             where c.event_id = :event_id and c.platform <> 'native'
               and c.platform_event_id is not null)
         - (select count(*) from app.outbox o
             where o.event_id = :event_id and o.kind = :kind and o.status = 'pending')
           as mirror_due
    """
)

_ROW_SQL = text(
    """
    select id, channel, pool, status, expires_at from app.seat_holds
     where event_id = :event_id and hold_key = :hold_key
    """
)

_LOAD_ROWS_SQL = text(
    """
    select hold_key, channel, pool, status,
           coalesce(floor(extract(epoch from expires_at) * 1000)::bigint, 0) as expiry_ms
      from app.seat_holds
     where event_id = :event_id
       and (status in ('confirmed', 'overbooked') or (status = 'held' and expires_at > now()))
     order by id
    """
)


# --------------------------------------------------------------------------- the ledger


class SeatLedger:
    """The gate and its truth for every event. Thread-safe; one per process is enough."""

    def __init__(self, engine: Engine, redis_client: redis_lib.Redis, namespace: str) -> None:
        self.engine = engine
        self.redis = redis_client
        self.namespace = namespace
        self._gate = redis_client.register_script(script("ledger"))
        self._load = redis_client.register_script(script("load"))
        self._poisoned: set[UUID] = set()
        self._poison_lock = threading.Lock()
        self._keys: dict[UUID, list[str]] = {}
        _install_listeners(engine)

    @classmethod
    def from_settings(cls, settings: Any = None) -> SeatLedger:
        """The process's ledger for ``settings`` (hub.db.get_engine + resolve_redis_url)."""
        from hub.db import get_engine
        from hub.embedded import resolve_redis_url
        from hub.settings import get_settings

        settings = settings or get_settings()
        engine = get_engine(settings)
        url = resolve_redis_url(settings)
        key = (str(engine.url), url, settings.redis_namespace)
        with _ledgers_lock:
            ledger = _ledgers.get(key)
            if ledger is None:
                client = redis_lib.Redis.from_url(
                    url, socket_timeout=2, socket_connect_timeout=2, health_check_interval=30
                )
                ledger = _ledgers[key] = cls(engine, client, settings.redis_namespace)
            return ledger

    # ----------------------------------------------------------------- keys, Redis calls

    def keys(self, event_id: UUID) -> list[str]:
        """The event's hash, holds and expiry keys (cached: the hot path builds none)."""
        found = self._keys.get(event_id)
        if found is None:
            base = f"{self.namespace}:seats:{event_id}"
            found = [base, f"{base}:holds", f"{base}:exp"]
            if len(self._keys) > 10_000:
                self._keys.clear()
            self._keys[event_id] = found
        return found

    def _call(self, script_obj: Any, event_id: UUID, args: Sequence[Any]) -> list[Any]:
        if self._poisoned:
            self._drop_poisoned()
        try:
            reply = script_obj(keys=self.keys(event_id), args=args, client=self.redis)
        except (redis_lib.ConnectionError, redis_lib.TimeoutError, ValueError) as exc:
            # ValueError: redis-py's reader on a socket its timeout closed mid-reply
            # ("I/O operation on closed file"): the call's outcome is as unknown as after
            # a ConnectionError, so the same answer.
            self.poison(event_id)  # the outcome of the call is unknown
            raise LedgerUnavailable(f"Redis unreachable: {type(exc).__name__}") from None
        return _s(reply) if isinstance(reply, list) else reply

    def gate(self, event_id: UUID, args: Sequence[Any]) -> list[Any]:
        """One call of the decision script (no lock: callers hold theirs)."""
        return self._call(self._gate, event_id, args)

    def poison(self, event_id: UUID) -> None:
        """Delete the event's gate now, or before this process's next call if Redis is
        unreachable: it will be rebuilt from PostgreSQL."""
        try:
            self.redis.delete(*self.keys(event_id))
        except redis_lib.RedisError:
            with self._poison_lock:
                self._poisoned.add(event_id)

    def _drop_poisoned(self) -> None:
        with self._poison_lock:
            pending = list(self._poisoned)
        for event_id in pending:
            try:
                self.redis.delete(*self.keys(event_id))
            except redis_lib.RedisError as exc:
                raise LedgerUnavailable(f"Redis unreachable: {type(exc).__name__}") from None
            with self._poison_lock:
                self._poisoned.discard(event_id)

    # ----------------------------------------------------------------- transactions

    @contextmanager
    def begin(self) -> Iterator[LedgerTx]:
        """One PostgreSQL transaction with the ledger's undo log; commits at the end."""
        with self.engine.connect() as conn:
            trans = conn.begin()
            tx = LedgerTx(self, conn, attached=False)
            try:
                yield tx
                tx._before_commit()
            except BaseException:
                try:
                    tx._abort()
                finally:
                    with suppress(Exception):
                        trans.rollback()
                    tx._detach()
                raise
            try:
                trans.commit()
            except BaseException:
                tx._commit_failed()
                raise
            finally:
                tx._detach()

    @contextmanager
    def attach(self, conn: Connection) -> Iterator[LedgerTx]:
        """Decisions in the caller's open transaction on ``conn``. Its rollback (or the
        rollback of a savepoint around a decision) gives the seats back; its commit
        applies the freed seats to Redis just before committing."""
        with _attached_lock:
            tx = _attached.get(conn)
        if tx is None or tx.ledger is not self:
            tx = LedgerTx(self, conn, attached=True)
        yield tx

    def invalidate(self, conn: Connection, event_id: UUID | str) -> None:
        """The event's capacity or allocations change in ``conn``'s transaction: take the
        exclusive lock (waits for decisions in flight, holds new ones until commit) and
        drop the gate, which the next decision rebuilds from the committed values."""
        eid = _uuid(event_id)
        conn.execute(
            text("select pg_advisory_xact_lock(:c, :k)"),
            {"c": EVENT_LOCK_CLASS, "k": _lock_id(str(eid))},
        )
        try:
            self.redis.delete(*self.keys(eid))
        except redis_lib.RedisError as exc:
            raise LedgerUnavailable(f"Redis unreachable: {type(exc).__name__}") from None

    # ----------------------------------------------------------------- rebuild

    def rebuild(self, event_id: UUID | str | None = None) -> list[UUID]:
        """Rewrite the gate of one event (or of every event) from PostgreSQL, each under
        the event's exclusive advisory lock. Returns the events rebuilt."""
        if event_id is None:
            with self.engine.connect() as conn:
                ids = list(conn.scalars(text("select id from app.events order by starts_at")))
        else:
            ids = [_uuid(event_id)]
        for eid in ids:
            with self.engine.begin() as conn:
                conn.execute(
                    text("select pg_advisory_xact_lock(:c, :k)"),
                    {"c": EVENT_LOCK_CLASS, "k": _lock_id(str(eid))},
                )
                self._load_from(conn, eid)
        return ids

    def _rebuild_in(self, conn: Connection, eid: UUID, *, upgrade: bool = False) -> None:
        """Rebuild inside the caller's transaction: a savepoint with the exclusive lock,
        released again by rolling back to it (the rebuild only reads PostgreSQL).

        ``upgrade``: earlier decisions of this transaction hold the event's shared lock.
        The exclusive lock then waits for the other sessions only (and the rebuild sees
        our own rows), but two such transactions would wait for each other: after a
        short lock timeout this one gives up with ``LedgerConflict`` (retry it)."""
        lock = f"SELECT pg_advisory_xact_lock({EVENT_LOCK_CLASS}, {_lock_id(str(eid))})"
        conn.exec_driver_sql("SAVEPOINT hub_ledger_rebuild")
        try:
            if upgrade:
                conn.exec_driver_sql(f"SET LOCAL lock_timeout = '{UPGRADE_LOCK_TIMEOUT_MS}ms'")
                try:
                    conn.exec_driver_sql(lock)
                except DBAPIError as exc:
                    raise LedgerConflict(
                        f"event {eid}: the Redis gate vanished during this transaction and "
                        "other transactions hold the event; retry the transaction"
                    ) from exc
            else:
                conn.exec_driver_sql(lock)
            if self.gate(eid, ["probe"])[0] != "ok":  # not already rebuilt by another
                self._load_from(conn, eid)
        finally:
            conn.exec_driver_sql("ROLLBACK TO SAVEPOINT hub_ledger_rebuild")

    def _load_from(self, conn: Connection, eid: UUID) -> int:
        try:
            counts = seat_counts(conn, eid)
        except LookupError:
            raise UnknownEvent(f"no event {eid}") from None
        args: list[Any] = [counts.total, counts.shared, len(CHANNELS)]
        for channel in CHANNELS:
            held = counts.channels.get(channel)
            args += [channel, held.quota if held else 0]
        for row in conn.execute(_LOAD_ROWS_SQL, {"event_id": eid}):
            state = {"held": "h", "confirmed": "c", "overbooked": "o"}[row.status]
            args += [row.hold_key, row.channel, row.pool, state, int(row.expiry_ms)]
        return int(self._call(self._load, eid, args))

    # ----------------------------------------------------------------- reads

    def redis_counts(self, event_id: UUID | str) -> RedisCounts | None:
        """The gate's counters of one event (None when it is not built)."""
        eid = _uuid(event_id)
        reply = self.gate(eid, ["state"])
        if reply[0] != "state":
            return None
        flat = reply[1]
        values = {flat[i]: flat[i + 1] for i in range(0, len(flat), 2)}

        def num(name: str) -> int:
            return int(values.get(name) or 0)

        channels = {
            ch: {
                "quota": num(f"q:{ch}"),
                "held": num(f"h:{ch}"),
                "confirmed": num(f"c:{ch}"),
                "overbooked": num(f"o:{ch}"),
                "quota_used": num(f"qu:{ch}"),
                "shared_used": num(f"su:{ch}"),
            }
            for ch in CHANNELS
        }
        return RedisCounts(total=num("total"), shared=num("shared"), channels=channels)

    def availability(self, event_id: UUID | str) -> Availability:
        """Seats left for the landing page, from the gate (rebuilt if missing); from
        PostgreSQL when Redis is unreachable (a read: nothing is decided on it)."""
        eid = _uuid(event_id)
        try:
            counts = self.redis_counts(eid)
            if counts is None:
                self.rebuild(eid)
                counts = self.redis_counts(eid)
        except LedgerUnavailable:
            counts = None
        if counts is None:
            with self.engine.connect() as conn:
                try:
                    pg = seat_counts(conn, eid)
                except LookupError:
                    raise UnknownEvent(f"no event {eid}") from None
            native = pg.available("native")
            return Availability(eid, pg.total, native, pg.free, native == 0, "postgres")
        shared_free = max(
            counts.shared - sum(c["shared_used"] for c in counts.channels.values()), 0
        )
        native = counts.channels["native"]
        native_left = max(native["quota"] - native["quota_used"], 0) + shared_free
        free = (
            sum(max(c["quota"] - c["quota_used"], 0) for c in counts.channels.values())
            + shared_free
        )
        return Availability(eid, counts.total, native_left, free, native_left == 0, "redis")

    def compare(self, conn: Connection, event_id: UUID | str) -> list[str]:
        """Differences between PostgreSQL's counts and the gate's (empty: they agree)."""
        eid = _uuid(event_id)
        pg: SeatCounts = seat_counts(conn, eid)
        rc = self.redis_counts(eid)
        if rc is None:
            return ["gate not built (rebuilt on the next decision)"]
        problems = []
        if (pg.total, pg.shared) != (rc.total, rc.shared):
            problems.append(f"total/shared pg={pg.total}/{pg.shared} redis={rc.total}/{rc.shared}")
        for ch in CHANNELS:
            p = pg.channels.get(ch)
            mine = {
                "quota": p.quota if p else 0,
                "held": p.held if p else 0,
                "confirmed": p.confirmed if p else 0,
                "overbooked": p.overbooked if p else 0,
                "quota_used": p.quota_used if p else 0,
                "shared_used": p.shared_used if p else 0,
            }
            theirs = rc.channels[ch]
            for name, value in mine.items():
                if theirs[name] != value:
                    problems.append(f"{ch}.{name} pg={value} redis={theirs[name]}")
        return problems


_ledgers: dict[tuple[str, str, str], SeatLedger] = {}
_ledgers_lock = threading.Lock()
_attached: weakref.WeakKeyDictionary[Connection, LedgerTx] = weakref.WeakKeyDictionary()
_attached_lock = threading.Lock()


# --------------------------------------------------------------------------- one transaction

_EVENTS = ("commit", "rollback", "savepoint", "rollback_savepoint", "release_savepoint")
_installed: weakref.WeakSet[Engine] = weakref.WeakSet()


def _install_listeners(engine: Engine) -> None:
    """Once per engine: its connections' commit / rollback / savepoint events reach the
    ledger transaction open on that connection, if any."""
    with _attached_lock:
        if engine in _installed:
            return
        _installed.add(engine)
    for name in _EVENTS:
        sa_event.listen(engine, name, _dispatcher(name))


def _dispatcher(name: str) -> Callable[..., None]:
    method = f"_on_{name}"

    def dispatch(conn: Connection, *args: Any) -> None:
        tx = _attached.get(conn)
        if tx is not None:
            getattr(tx, method)(conn, *args)

    return dispatch


@dataclass
class _Mark:
    name: str
    undo: int
    deferred: int
    locked: dict[UUID, bool]
    keys: set[tuple[UUID, str]]


class LedgerTx:
    """Seat decisions in one PostgreSQL transaction (``conn``), with the Redis undo log."""

    def __init__(self, ledger: SeatLedger, conn: Connection, *, attached: bool) -> None:
        self.ledger = ledger
        self.conn = conn
        self.attached = attached
        self._undo: list[tuple[UUID, str, str]] = []  # (event, key, previous raw entry)
        self._deferred: list[tuple[UUID, str, bool]] = []  # releases (event, key, only_held)
        self._locked: dict[UUID, bool] = {}  # events whose shared lock this tx holds
        self._keys: set[tuple[UUID, str]] = set()
        self._touched: set[UUID] = set()
        self._rebuilt: set[UUID] = set()  # rebuilt in-transaction over our own rows
        self._marks: list[_Mark] = []
        self._savepoints = 0
        _install_listeners(conn.engine)
        with _attached_lock:
            _attached[conn] = self

    # ----------------------------------------------------------------- decisions

    def hold(
        self,
        event_id: UUID | str,
        hold_key: str,
        *,
        ttl_seconds: float,
        order_no: str | None = None,
        channel: str = "native",
    ) -> HoldResult:
        """Hold a seat for ``ttl_seconds`` under ``hold_key`` (idempotent by key: the
        same key answers ``existing`` with the key's state; a key released or expired
        takes a new seat)."""
        eid = _uuid(event_id)
        nonce = uuid.uuid4().hex
        reply = self._decide(
            eid, hold_key, ["hold", channel, hold_key, int(ttl_seconds * 1000), nonce]
        )
        status, pool, expiry, prev, state = reply[0], reply[1], reply[2], reply[3], reply[4]
        if status == "full":
            return HoldResult("full", channel=channel)
        if status == "held":
            self._undo.append((eid, hold_key, prev))
        state_name = _STATE_NAMES.get(state, "held")
        expires_at = _ms_to_dt(expiry) if state == "h" else None
        hold_id = self._write(
            eid, hold_key, channel, pool, state_name, expires_at, order_no, None,
            mirror=status == "held",
        )  # fmt: skip
        return HoldResult(status, _pool(pool), expires_at, hold_id, channel, state_name)

    def confirm(
        self, event_id: UUID | str, hold_key: str, *, registration_id: int | None = None
    ) -> ConfirmResult:
        """Turn a hold into a confirmed seat. A hold that expired takes a free seat again
        (``retaken``) or finds the room full (``full``); ``unknown`` for a key never held."""
        eid = _uuid(event_id)
        nonce = uuid.uuid4().hex
        for _ in range(2):
            reply = self._decide(eid, hold_key, ["confirm", hold_key, nonce, "native", "0"])
            status, pool = reply[0], reply[1]
            if status in ("confirmed", "already"):
                if status == "confirmed" and reply[2]:
                    self._undo.append((eid, hold_key, reply[2]))
                state = "overbooked" if pool == "none" else "confirmed"
                row = None
                if status == "already":  # PostgreSQL normally agrees; heal it if not
                    row = self.conn.execute(
                        _ROW_SQL, {"event_id": eid, "hold_key": hold_key}
                    ).first()
                if row is None or row.status != state or registration_id is not None:
                    hold_id = self._write(
                        eid, hold_key, reply[3], pool, state, None, None, registration_id,
                        mirror=False,
                    )  # fmt: skip
                else:
                    hold_id = row.id
                return ConfirmResult(status, _pool(pool), hold_id)
            # unknown to the gate: expired (swept), released, or never held
            row = self.conn.execute(_ROW_SQL, {"event_id": eid, "hold_key": hold_key}).first()
            if row is None:
                return ConfirmResult("unknown")
            if row.status in ("confirmed", "overbooked"):
                # PostgreSQL has a seat the gate lost: rebuild it, then answer from it
                self.ledger.poison(eid)
                continue
            reply = self._decide(eid, hold_key, ["confirm", hold_key, nonce, row.channel, "1"])
            status, pool = reply[0], reply[1]
            if status == "full":
                return ConfirmResult("full", hold_id=row.id)
            if status == "retaken":
                self._undo.append((eid, hold_key, ""))
            hold_id = self._write(
                eid, hold_key, row.channel, pool, "confirmed", None, None, registration_id,
                mirror=status == "retaken",
            )  # fmt: skip
            return ConfirmResult(status, _pool(pool), hold_id)
        raise LedgerConflict(f"event {eid}: the gate kept losing {hold_key!r}")

    def consume(
        self,
        event_id: UUID | str,
        channel: str,
        hold_key: str,
        *,
        registration_id: int | None = None,
    ) -> str:
        """A seat sold on a platform (``hold_key`` ``<platform>:<registration id>``):
        ``confirmed``, ``overbooked`` when the room is full, ``existing`` when the key
        already has its seat (or its overbooking)."""
        eid = _uuid(event_id)
        nonce = uuid.uuid4().hex
        reply = self._decide(eid, hold_key, ["consume", channel, nonce, hold_key])
        status, pool, prev = reply[0], reply[1], reply[2]
        if status in ("confirmed", "overbooked"):
            self._undo.append((eid, hold_key, prev))
        state = "overbooked" if pool == "none" else "confirmed"
        self._write(
            eid, hold_key, channel, pool, state, None, None, registration_id,
            mirror=status != "existing",
        )  # fmt: skip
        return status

    def upgrade_overbooked(
        self, event_id: UUID | str, hold_key: str, *, registration_id: int | None = None
    ) -> str:
        """An overbooked platform seat takes a seat freed since (policy ``keep``: the
        person keeps the ticket, so a freed seat goes to them before anyone else):
        ``confirmed``, or ``existing`` when the room is still full."""
        eid = _uuid(event_id)
        reply = self._decide(eid, hold_key, ["upgrade", uuid.uuid4().hex, hold_key])
        status, pool, prev = reply[0], reply[1], reply[2]
        if status != "confirmed":
            return "existing"
        self._undo.append((eid, hold_key, prev))
        channel = hold_key.split(":", 1)[0]
        self._write(
            eid, hold_key, channel, pool, "confirmed", None, None, registration_id, mirror=True
        )
        return status

    def release(
        self,
        event_id: UUID | str,
        hold_key: str,
        *,
        status: str = "released",
        reason: str | None = None,
    ) -> bool:
        """Free the key's seat. ``status='expired'`` only ends a hold whose expiry has
        passed (never a confirmed seat). True when PostgreSQL's row changed. The gate
        frees the seat just before the commit."""
        if status not in ("released", "expired"):
            raise ValueError(f"release status {status!r}: released or expired")
        eid = _uuid(event_id)
        self._lock(eid, hold_key)
        expired = status == "expired"
        row = self.conn.execute(
            _RELEASE_SQL,
            {
                "event_id": eid,
                "hold_key": hold_key,
                "from_status": ["held"] if expired else ["held", "confirmed", "overbooked"],
                "expired_only": expired,
                "status": status,
                "reason": reason,
                "kind": CAPACITY_MIRROR,
            },
        ).one()
        self._deferred.append((eid, hold_key, expired))
        self._touched.add(eid)
        if row.id is not None and row.mirror_due > 0:
            enqueue_capacity_mirror(self.conn, eid)
        return row.id is not None

    def free_seat(self, event_id: UUID | str, hold_key: str, *, reason: str) -> bool:
        """A platform registration cancelled or declined: its seat (or overbooking) ends."""
        return self.release(event_id, hold_key, status="released", reason=reason)

    # ----------------------------------------------------------------- internals

    def _lock(self, eid: UUID, hold_key: str) -> str | None:
        """Take the event's shared lock (first time in this transaction: in a savepoint,
        whose name is returned) and the key's exclusive lock, in one round trip."""
        key_sql = ""
        if (eid, hold_key) not in self._keys:
            key_sql = (
                f"SELECT pg_advisory_xact_lock({KEY_LOCK_CLASS}, {_lock_id(f'{eid}:{hold_key}')})"
            )
        if eid in self._locked:
            if key_sql:
                self.conn.exec_driver_sql(key_sql)
                self._keys.add((eid, hold_key))
            return None
        self._savepoints += 1
        name = f"hub_ledger_{self._savepoints}"
        event_lock = _lock_id(str(eid))
        sql = (
            f"SAVEPOINT {name}; "
            f"SELECT pg_advisory_xact_lock_shared({EVENT_LOCK_CLASS}, {event_lock})"
        )
        if key_sql:
            sql += "; " + key_sql
        self.conn.exec_driver_sql(sql)
        self._locked[eid] = True
        self._keys.add((eid, hold_key))
        return name

    def _decide(self, eid: UUID, hold_key: str, args: list[Any]) -> list[Any]:
        """Lock, one EVALSHA; on REBUILD: release this attempt's lock, rebuild, retry."""
        self._touched.add(eid)
        for _ in range(MAX_REBUILD_ATTEMPTS):
            savepoint = self._lock(eid, hold_key)
            reply = self.ledger.gate(eid, args)
            if reply[0] != "REBUILD":
                return reply
            if savepoint is not None:  # our first lock of the event: let a rebuild in
                self.conn.exec_driver_sql(f"ROLLBACK TO SAVEPOINT {savepoint}")
                self._locked.pop(eid, None)
                self._keys = {k for k in self._keys if k[0] != eid}
            else:  # earlier decisions of this transaction hold the event
                # the rebuild sees this transaction's own rows (and releases): if it
                # rolls back, the undo log cannot describe that state; drop the gate
                self._rebuilt.add(eid)
            self.ledger._rebuild_in(self.conn, eid, upgrade=savepoint is None)
        raise LedgerConflict(f"event {eid}: the gate could not be rebuilt")

    def _write(
        self,
        eid: UUID,
        hold_key: str,
        channel: str,
        pool: str | None,
        status: str,
        expires_at: datetime | None,
        order_no: str | None,
        registration_id: int | None,
        *,
        mirror: bool,
    ) -> int:
        """The decision's row; a failure gives the Redis decision back at once."""
        try:
            row = self.conn.execute(
                _UPSERT_SQL,
                {
                    "event_id": eid,
                    "hold_key": hold_key,
                    "channel": channel,
                    "pool": pool or "none",
                    "status": status,
                    "expires_at": expires_at,
                    "order_no": order_no,
                    "registration_id": registration_id,
                    "mirror": mirror,
                    "kind": CAPACITY_MIRROR,
                },
            ).one()
            if mirror and row.mirror_due > 0:
                enqueue_capacity_mirror(self.conn, eid)
        except BaseException:
            if self._undo and self._undo[-1][:2] == (eid, hold_key):
                self._undo_entries([self._undo.pop()])
            raise
        return int(row.id)

    def _undo_entries(self, entries: Iterable[tuple[UUID, str, str]]) -> None:
        for eid, key, prev in reversed(list(entries)):
            try:
                reply = self.ledger.gate(eid, ["restore", key, prev])
                if reply[0] == "REBUILD":
                    continue  # the gate is gone: it is rebuilt from PostgreSQL anyway
            except Exception:
                self.ledger.poison(eid)

    def _apply_deferred(self) -> None:
        pending, self._deferred = self._deferred, []
        for eid, key, only_held in pending:
            try:
                self.ledger.gate(eid, ["release", "1" if only_held else "0", key])
            except Exception:
                self.ledger.poison(eid)  # a seat stays taken in Redis: safe, rebuilt

    def _before_commit(self) -> None:
        self._apply_deferred()
        self._undo.clear()

    def _abort(self) -> None:
        undo, self._undo = self._undo, []
        self._deferred.clear()
        self._undo_entries(undo)
        for eid in self._rebuilt:
            self.ledger.poison(eid)
        self._reset()

    def _commit_failed(self) -> None:
        for eid in self._touched:
            self.ledger.poison(eid)  # outcome unknown: rebuild from what PostgreSQL has
        self._reset()

    def _reset(self) -> None:
        self._undo.clear()
        self._deferred.clear()
        self._locked.clear()
        self._keys.clear()
        self._touched.clear()
        self._rebuilt.clear()
        self._marks.clear()

    def _detach(self) -> None:
        with _attached_lock:
            if _attached.get(self.conn) is self:
                del _attached[self.conn]

    # ----------------------------------------------------------------- connection events

    def _on_commit(self, conn: Connection) -> None:
        if self.attached:
            self._before_commit()
            self._reset()
            self._detach()

    def _on_rollback(self, conn: Connection) -> None:
        self._abort()
        if self.attached:
            self._detach()

    # SQLAlchemy nests savepoints strictly (and names them only after the event), so
    # the marks are a stack: a rollback or release ends the innermost one. A savepoint
    # older than this ledger transaction finds no mark: everything we did is inside it.

    def _on_savepoint(self, conn: Connection, name: str | None) -> None:
        self._marks.append(
            _Mark(name or "", len(self._undo), len(self._deferred), dict(self._locked),
                  set(self._keys))
        )  # fmt: skip

    def _on_rollback_savepoint(self, conn: Connection, name: str, context: Any) -> None:
        mark = self._marks.pop() if self._marks else _Mark(name, 0, 0, {}, set())
        undo = self._undo[mark.undo :]
        del self._undo[mark.undo :]
        del self._deferred[mark.deferred :]
        self._undo_entries(undo)
        for eid in self._rebuilt:
            self.ledger.poison(eid)
        self._locked = mark.locked  # locks taken inside the savepoint are gone
        self._keys = mark.keys

    def _on_release_savepoint(self, conn: Connection, name: str, context: Any) -> None:
        if self._marks:
            self._marks.pop()


# --------------------------------------------------------------------------- jobs


_EXPIRED_SQL = text(
    """
    select id, event_id, hold_key, channel, order_no, registration_id, expires_at
      from app.seat_holds
     where status = 'held' and expires_at <= now()
     order by expires_at
     limit :limit
    """
)


def release_expired_holds(ledger: SeatLedger, *, limit: int = 1000, batch: int = 100) -> int:
    """Mark held rows whose expiry passed as ``expired`` (the gate already stopped
    counting them) and run :data:`ON_HOLD_EXPIRED` for each, in batches of ``batch``
    rows per transaction. Returns how many holds were expired."""
    with ledger.engine.connect() as conn:
        rows = conn.execute(_EXPIRED_SQL, {"limit": limit}).all()
    expired = 0
    for start in range(0, len(rows), batch):
        with ledger.begin() as tx:
            for row in rows[start : start + batch]:
                if not tx.release(
                    row.event_id, row.hold_key, status="expired", reason="hold expired"
                ):
                    continue  # confirmed or renewed meanwhile
                expired += 1
                item = ExpiredHold(
                    row.id, row.event_id, row.hold_key, row.channel, row.order_no,
                    row.registration_id, row.expires_at,
                )  # fmt: skip
                for hook in list(ON_HOLD_EXPIRED):
                    hook(tx.conn, item)
    return expired


_ACCOUNT_SQL = text(
    """
    select r.id, r.event_id, r.platform, r.platform_registration_id, r.status,
           s.status as seat, e.overbooking_policy as policy
      from app.registrations r
      join app.events e on e.id = r.event_id
      left join app.seat_holds s
        on s.event_id = r.event_id and s.hold_key = r.platform || ':' || r.platform_registration_id
     where r.event_id = any(:ids) and r.platform <> 'native'
       and ((r.status = any(:active)
             and (s.status is null or s.status in ('released', 'expired', 'held')))
         or (r.status = any(:ended) and s.status in ('confirmed', 'overbooked', 'held'))
         or (r.status = 'waitlist' and s.status in ('confirmed', 'held'))
         or (r.status = any(:active) and s.status = 'overbooked'
             and e.overbooking_policy in ('waitlist', 'keep')))
     order by r.event_id, r.platform, r.platform_registration_id
    """
)


def account_platform_seats(
    conn: Connection,
    event_ids: Iterable[UUID | str],
    *,
    ledger: SeatLedger | None = None,
    actor: str = "ledger",
) -> AccountingCounts:
    """Bring the ledger in line with the platforms' registrations of ``event_ids``, in
    the caller's transaction (hub.registrations.upsert_registrations calls it).

    By SQL difference against ``app.seat_holds`` (key ``<platform>:<registration id>``):
    an approved / attended / no-show registration without a seat consumes one (or is
    recorded ``overbooked`` when the room is full; under the event's policy
    ``waitlist`` an approved one then moves to the ``waitlist`` status, audited); a
    cancelled or declined one frees its seat; an overbooked one of policy ``keep`` takes
    a seat freed since (before anyone else can).

    The gate is taken here too: with Redis down this raises ``LedgerUnavailable`` and
    the caller's transaction rolls back (hub.ingest retries the raw row; a pull fails
    and runs again), so PostgreSQL never records a registration the ledger has not
    counted.
    """
    ids = [_uuid(e) for e in dict.fromkeys(event_ids)]
    counts = AccountingCounts()
    if not ids:
        return counts
    rows = conn.execute(
        _ACCOUNT_SQL,
        {"ids": ids, "active": list(ACTIVE_REGISTRATION), "ended": list(ENDED_REGISTRATION)},
    ).all()
    if not rows:
        return counts
    ledger = ledger or SeatLedger.from_settings()
    with ledger.attach(conn) as tx:
        for r in rows:
            key = f"{r.platform}:{r.platform_registration_id}"
            if r.status in ENDED_REGISTRATION or r.status == "waitlist":
                # cancelled, declined, or put on the platform's own waitlist: no seat
                if tx.free_seat(r.event_id, key, reason=f"registration {r.status}"):
                    counts.freed += 1
                continue
            if r.seat == "overbooked" and r.policy == "keep":
                if tx.upgrade_overbooked(r.event_id, key, registration_id=r.id) == "confirmed":
                    counts.upgraded += 1
                continue
            if r.seat == "overbooked":
                outcome = "overbooked"
            else:
                outcome = tx.consume(r.event_id, r.platform, key, registration_id=r.id)
            if outcome == "confirmed":
                counts.consumed += 1
            elif outcome == "existing":
                counts.existing += 1
            elif outcome == "overbooked":
                if r.seat != "overbooked":
                    counts.overbooked += 1
                if r.policy == "waitlist" and r.status in ("approved", "pending"):
                    _move_to_waitlist(conn, r.id, r.status, actor)
                    counts.waitlisted += 1
    return counts


def settle_overbooked(ledger: SeatLedger) -> AccountingCounts:
    """For every event with overbooked platform seats: account its registrations again
    (the expired-holds sensor calls it each minute, so seats freed by expired native holds
    or native refunds reach the overbooked people of policy ``keep`` first)."""
    with ledger.engine.connect() as conn:
        ids = list(
            conn.scalars(
                text("select distinct event_id from app.seat_holds where status = 'overbooked'")
            )
        )
    counts = AccountingCounts()
    for event_id in ids:
        with ledger.engine.begin() as conn:
            counts += account_platform_seats(conn, [event_id], ledger=ledger)
    return counts


def _move_to_waitlist(conn: Connection, registration_id: int, current: str, actor: str) -> None:
    """The overbooking policy 'waitlist': through the status machine when it allows the
    move; approved -> waitlist is not one of its moves, so that one is written here and
    audited as irregular, like a platform's own out-of-machine move."""
    from hub import audit
    from hub.registrations import is_allowed, transition

    reason = "overbooked: the room was full when the platform sold the seat"
    if is_allowed(current, "waitlist"):
        transition(conn, registration_id, "waitlist", actor=actor, reason=reason)
        return
    conn.execute(
        text("update app.registrations set status = 'waitlist', updated_at = now() where id = :id"),
        {"id": registration_id},
    )
    audit.record(
        conn,
        entity="registration",
        entity_id=registration_id,
        action="status_changed",
        actor=actor,
        reason=reason,
        data={"from": current, "to": "waitlist", "source": "ledger", "overbooked": True,
              "irregular": True},
    )  # fmt: skip


def resolve_event(conn: Connection, ref: str) -> UUID:
    """An event by slug or id (``UnknownEvent`` when neither matches)."""
    try:
        as_uuid = UUID(ref)
    except ValueError:
        as_uuid = None
    row = conn.execute(
        text("select id from app.events where slug = :ref or id = cast(:id as uuid)"),
        {"ref": ref, "id": str(as_uuid) if as_uuid else None},
    ).first()
    if row is None:
        raise UnknownEvent(f"no event {ref!r} (give its slug or id)")
    return row.id
