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

Handlers are a registry keyed by source name (``build_handlers`` makes the standard
one). Platform reads go through injected fetchers, so this module imports no adapter:

* ``eventbrite``: ``fetch(api_url) -> list[PlatformRegistration]`` (e.g.
  ``EventbriteAdapter.fetch_api_url``);
* ``luma``: ``fetch(event_id, guest_id) -> PlatformRegistration`` (e.g.
  ``LumaAdapter.get_registration``).

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
from urllib.parse import urlsplit
from uuid import UUID

import httpx
from sqlalchemy import text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import OperationalError

from hub.models import PlatformRegistration
from hub.payments import PaymentIn, match_payment, record_payment
from hub.registrations import upsert_registrations
from integrations.base import AdapterError, RateLimited, ValidationFailed
from integrations.email_parsing import decode_inbound, parse_inbound

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
        for _ in range(batch_size):
            if not _process_one(engine, table, sources, handlers, now, max_attempts, report):
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
) -> bool:
    with engine.begin() as conn:
        found = conn.execute(_claim_sql(table), {"now": now, "sources": sources}).first()
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
            "error": error,
            "processed_at": processed_at,
            "next_attempt_at": next_attempt_at,
            "id": row.id,
        },
    )


# --------------------------------------------------------------------------- handlers

EventbriteFetch = Callable[[str], Any]  # api_url -> list[PlatformRegistration] (maybe async)
LumaFetch = Callable[[str, str], Any]  # (event_id, guest_id) -> PlatformRegistration

_EVENTBRITE_PLACEHOLDER = "{api-endpoint-to-fetch-object-details}"


class EventbriteHandler:
    """Eventbrite deliveries carry only ``api_url``: read it back with our token.

    ``allowed_hosts`` (e.g. {"www.eventbriteapi.com"}) refuses a foreign host before any
    fetch; without it the fetcher's own check (``ValidationFailed(code="FOREIGN_HOST")``)
    is relied on. Both end as 'ignored'.
    """

    def __init__(self, fetch: EventbriteFetch, *, allowed_hosts: Collection[str] | None = None):
        self.fetch = fetch
        self.allowed_hosts = {h.lower() for h in allowed_hosts} if allowed_hosts else None

    def __call__(self, ctx: HandlerContext) -> None:
        payload = ctx.row.json()
        config = payload.get("config") or {}
        action = (
            config.get("action") or ctx.row.event_type or ctx.row.header("X-Eventbrite-Event")
        ) or ""
        api_url = payload.get("api_url") or ""
        if action == "test" or _EVENTBRITE_PLACEHOLDER in api_url:
            raise Ignore("TEST_PING: Eventbrite test delivery")
        if not action.startswith(("order.", "attendee.")):
            raise Ignore(f"NOT_A_REGISTRATION: action {action or '(none)'}")
        parts = urlsplit(api_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"api_url is not a URL: {api_url[:100]!r}")
        if self.allowed_hosts is not None and parts.hostname.lower() not in self.allowed_hosts:
            raise Ignore(f"FOREIGN_HOST: {parts.hostname}")
        try:
            registrations = ctx.run(self.fetch(api_url))
        except ValidationFailed as exc:
            if exc.code == "FOREIGN_HOST":
                raise Ignore(f"FOREIGN_HOST: {parts.hostname}") from exc
            raise
        _upsert_or_ignore(ctx, list(registrations), f"{ctx.reason} {action}")


class LumaHandler:
    """Luma webhooks are re-read through the API: the payload's status is not trusted."""

    def __init__(self, fetch: LumaFetch):
        self.fetch = fetch

    def __call__(self, ctx: HandlerContext) -> None:
        payload = ctx.row.json()
        kind = payload.get("type") or ctx.row.event_type or ""
        if kind and not kind.startswith(("guest.", "ticket.")):
            raise Ignore(f"NOT_A_REGISTRATION: type {kind}")
        data = payload.get("data") or {}
        guest = data.get("guest") if isinstance(data.get("guest"), dict) else {}
        event = data.get("event") if isinstance(data.get("event"), dict) else {}
        guest_ids = [data.get("api_id"), guest.get("api_id"), data.get("id"), guest.get("id")]
        guest_ids += [data.get("guest_id")]
        guest_id = next((g for g in guest_ids if isinstance(g, str) and g.startswith("gst-")), None)
        guest_id = guest_id or next((g for g in guest_ids if g), None)
        event_id = (
            event.get("api_id")
            or event.get("id")
            or data.get("event_api_id")
            or data.get("event_id")
            or guest.get("event_api_id")
        )
        if not guest_id or not event_id:
            raise ValueError("Luma payload names no guest or no event id")
        registration = ctx.run(self.fetch(str(event_id), str(guest_id)))
        _upsert_or_ignore(ctx, [registration], f"{ctx.reason} {kind}".strip())


def _upsert_or_ignore(
    ctx: HandlerContext, registrations: list[PlatformRegistration], reason: str
) -> None:
    counts = upsert_registrations(ctx.conn, registrations, actor=ctx.actor, reason=reason)
    if registrations and counts.unknown_event == len(registrations):
        ids = sorted({r.platform_event_id for r in registrations})
        raise Ignore(f"UNKNOWN_EVENT: no hub event for {ctx.row.source} event {', '.join(ids)}")


# -- Stripe


def _ref_from(obj: Mapping[str, Any]) -> str | None:
    metadata = obj.get("metadata") or {}
    for value in (
        obj.get("client_reference_id"),
        metadata.get("registration_ref"),
        metadata.get("order_ref"),
        metadata.get("ref"),
    ):
        if value:
            return str(value)
    return None


def _event_id_from(obj: Mapping[str, Any]) -> UUID | None:
    value = (obj.get("metadata") or {}).get("event_id")
    try:
        return UUID(str(value)) if value else None
    except ValueError:
        return None


def _stamp(value: Any) -> datetime | None:
    return datetime.fromtimestamp(int(value), UTC) if isinstance(value, int | float) else None


def handle_stripe(ctx: HandlerContext) -> None:
    """Stripe events -> payments (deduped on the PaymentIntent) -> matching."""
    event = ctx.row.json()
    kind = event.get("type") or ctx.row.event_type or ""
    obj = (event.get("data") or {}).get("object") or {}
    paid_at = _stamp(event.get("created"))
    if kind in ("checkout.session.completed", "checkout.session.async_payment_succeeded"):
        if obj.get("payment_status") != "paid":
            raise Ignore(f"UNPAID: {kind} with payment_status={obj.get('payment_status')}")
        details = obj.get("customer_details") or {}
        payment = PaymentIn(
            provider="stripe",
            provider_payment_id=obj.get("payment_intent") or obj["id"],
            amount_minor=int(obj.get("amount_total") or 0),
            currency=obj.get("currency") or "try",
            payer_email=details.get("email") or obj.get("customer_email"),
            payer_name=details.get("name"),
            reference=_ref_from(obj),
            event_id=_event_id_from(obj),
            paid_at=paid_at,
        )
    elif kind == "payment_intent.succeeded":
        payment = PaymentIn(
            provider="stripe",
            provider_payment_id=obj["id"],
            amount_minor=int(obj.get("amount_received") or obj.get("amount") or 0),
            currency=obj.get("currency") or "try",
            payer_email=obj.get("receipt_email"),
            reference=_ref_from(obj),
            event_id=_event_id_from(obj),
            paid_at=paid_at,
        )
    elif kind == "charge.refunded":
        billing = obj.get("billing_details") or {}
        payment = PaymentIn(
            provider="stripe",
            provider_payment_id=obj.get("payment_intent") or obj["id"],
            kind="refund",
            amount_minor=int(obj.get("amount_refunded") or 0),
            currency=obj.get("currency") or "try",
            payer_email=billing.get("email") or obj.get("receipt_email"),
            payer_name=billing.get("name"),
            reference=_ref_from(obj),
            event_id=_event_id_from(obj),
            paid_at=paid_at,
        )
    else:
        raise Ignore(f"NOT_HANDLED: stripe event type {kind or '(none)'}")
    payment = payment.model_copy(
        update={"source_table": f"raw.{ctx.row.table}", "source_id": ctx.row.id, "raw": event}
    )
    payment_id, _created = record_payment(ctx.conn, payment)
    match_payment(ctx.conn, payment_id, actor=ctx.actor)


# -- inbound e-mail


def handle_inbound_email(ctx: HandlerContext) -> None:
    """A forwarded "payment received" mail (SendGrid or Mailgun) -> payment -> matching."""
    message = decode_inbound(ctx.row.body, ctx.row.headers, source=ctx.row.source)
    parsed = parse_inbound(message)
    if parsed is None:
        raise Ignore("NO_PAYMENT: no incoming payment found in the e-mail")
    payment = PaymentIn(
        provider="email",
        provider_payment_id=message.stable_id(),
        amount_minor=parsed.amount_minor,
        currency=parsed.currency,
        payer_name=parsed.payer_name,
        reference=parsed.reference,
        paid_at=parsed.paid_at or ctx.row.received_at,
        source_table=f"raw.{ctx.row.table}",
        source_id=ctx.row.id,
        raw={
            "parsed": parsed.model_dump(mode="json"),
            "subject": message.subject,
            "sender": message.sender,
        },
    )
    payment_id, _created = record_payment(ctx.conn, payment)
    match_payment(ctx.conn, payment_id, actor=ctx.actor)


# -- delivery statuses


def handle_delivery_status(ctx: HandlerContext) -> None:
    """WhatsApp / Netgsm delivery reports: acknowledged here, stored by a later issue."""


# --------------------------------------------------------------------------- registry


def build_handlers(
    fetchers: Mapping[str, Any] | None = None,
    *,
    eventbrite_hosts: Collection[str] | None = None,
) -> dict[str, Handler]:
    """The standard handler registry.

    ``fetchers`` maps 'eventbrite' and 'luma' to a fetch callable or to an adapter
    (``fetch_api_url`` / ``get_registration`` are used). A platform without a fetcher
    gets no handler, so its rows wait untouched.
    """
    fetchers = fetchers or {}
    handlers: dict[str, Handler] = {
        "stripe": handle_stripe,
        "sendgrid": handle_inbound_email,
        "mailgun": handle_inbound_email,
        "whatsapp": handle_delivery_status,
        "netgsm": handle_delivery_status,
    }
    if (eventbrite := fetchers.get("eventbrite")) is not None:
        fetch = getattr(eventbrite, "fetch_api_url", eventbrite)
        handlers["eventbrite"] = EventbriteHandler(fetch, allowed_hosts=eventbrite_hosts)
    if (luma := fetchers.get("luma")) is not None:
        handlers["luma"] = LumaHandler(getattr(luma, "get_registration", luma))
    return handlers
