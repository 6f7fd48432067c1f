"""The request life cycle shared by every endpoint: read, keep, answer.

Each endpoint calls :func:`begin` (reads the capped body, refuses oversize), then either
:func:`reject` (stores a flagged row, answers a JSON 4xx/5xx) or :func:`accept` (stores
the row, answers 200 ``accepted``/``duplicate``/``ignored``). The row is committed (one
autocommit INSERT statement) BEFORE the response is produced; when PostgreSQL cannot
take it the answer is 503 ``unavailable`` with Retry-After, and nothing is written.
"""

from __future__ import annotations

import json
import re
import threading
from dataclasses import dataclass
from typing import Any, NoReturn

import psycopg
import redis as redis_lib
from flask import current_app, g, jsonify, request
from flask.typing import ResponseReturnValue

from hub.embedded import EmbeddedServiceError, resolve_redis_url
from hub.raw import (
    STATUS_FLAGGED,
    STATUS_IGNORED,
    STATUS_RECEIVED,
    RawStoreResult,
    redact_headers,
)
from hub.settings import Settings
from webhook_receiver.body import Body, GuardedStream, read_body
from webhook_receiver.logs import mask_values, safe_path
from webhook_receiver.store import RawStore, StoreTimeout

WEBHOOKS = "webhook_events"
INBOUND = "inbound_emails"
RETRY_AFTER_SECONDS = "30"

# Errors meaning "the database is not reachable now" (retry later), not "our bug".
DB_UNAVAILABLE = (
    psycopg.OperationalError,
    psycopg.InterfaceError,
    EmbeddedServiceError,
    StoreTimeout,
)
# The WSGI environ keys the HTTP front (webhook_receiver.front) sets when it could not
# read the whole body: the body was too slow (408) or not valid HTTP framing (400).
FRONT_BODY_ERROR = "hub.body_error"


class ReceiverError(Exception):
    """An answered refusal: JSON ``{"error", "message", "field"?}`` with ``status``."""

    def __init__(
        self,
        status: int,
        error: str,
        message: str,
        *,
        outcome: str,
        field: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.error = error
        self.message = message
        self.outcome = outcome
        self.field = field
        self.headers = headers or {}

    def body(self) -> dict[str, str]:
        data = {"error": self.error, "message": self.message}
        if self.field:
            data["field"] = self.field
        return data


@dataclass
class Delivery:
    source: str
    table: str
    body: Body
    headers: dict[str, str]


def settings() -> Settings:
    return current_app.config["HUB_SETTINGS"]


_SECRET_NAMES = (
    "stripe_webhook_secret",
    "mailgun_signing_key",
    "sendgrid_inbound_token",
    "whatsapp_app_secret",
    "whatsapp_verify_token",
    "luma_webhook_secret",
    "netgsm_report_token",
)


def configured_secrets() -> list[str]:
    """The configured secret values (to mask in paths), read once per app: an app's
    settings never change (a new Settings means a new app)."""
    return secrets_of(current_app)


def secrets_of(app: Any) -> list[str]:
    """:func:`configured_secrets` of ``app`` (also outside a request context)."""
    s = app.config["HUB_SETTINGS"]
    cached = app.extensions.get("hub_configured_secrets")
    if cached is None or cached[0] is not s:
        cached = (s, [v for v in (s.secret(n) for n in _SECRET_NAMES) if v])
        app.extensions["hub_configured_secrets"] = cached
    return cached[1]


_RAW_STORE_LOCK = threading.Lock()


def raw_store() -> RawStore:
    """One pool of autocommit connections per app (created in each gunicorn worker)."""
    return raw_store_of(current_app)


def raw_store_of(app: Any) -> RawStore:
    """:func:`raw_store` of ``app`` (also outside a request context): one per process,
    shared by the Flask endpoints and the front's lean path (webhook_receiver.lean)."""
    store = app.extensions.get("hub_raw_store")
    if store is None:
        with _RAW_STORE_LOCK:
            store = app.extensions.get("hub_raw_store")
            if store is None:
                store = RawStore.shared(app.config["HUB_SETTINGS"])
                app.extensions["hub_raw_store"] = store
    return store


def redis_client() -> redis_lib.Redis:
    """One client per app (thread-safe pool), short timeouts."""
    client = current_app.extensions.get("hub_redis")
    if client is None:
        client = redis_lib.Redis.from_url(
            resolve_redis_url(settings()), socket_timeout=2, socket_connect_timeout=2
        )
        current_app.extensions["hub_redis"] = client
    return client


def request_headers(extra: dict[str, str] | None = None) -> dict[str, str]:
    """Redacted request headers plus ``:method`` and ``:path`` (URL tokens masked); any
    configured secret found in a value (a token echoed in a Referer, a query) is masked."""
    return stored_headers(
        request.headers.items(), request.method, request.path, configured_secrets(), extra
    )


def stored_headers(
    items: Any,
    method: str,
    path: str,
    secrets: list[str],
    extra: dict[str, str] | None = None,
) -> dict[str, str]:
    """:func:`request_headers` from header ``(name, value)`` pairs as werkzeug names
    them (``Content-Type``, ``Stripe-Signature``)."""
    headers = redact_headers(items)
    headers[":method"] = method
    headers[":path"] = safe_path(path, secrets)
    if extra:
        headers.update(extra)
    return {name: mask_values(value, secrets) for name, value in headers.items()}


def begin(source: str, table: str, *, extra_headers: dict[str, str] | None = None) -> Delivery:
    """Read the body (capped); an oversize body is kept truncated and answered 413."""
    g.source = source
    limit = settings().receiver_max_body_bytes
    if table == INBOUND:  # mail with attachments: tens of MiB, parts spooled to the file store
        limit, body, extra_headers = _inbound_body(extra_headers)
    else:
        body = read_body(request.stream, request.content_length, limit)
    front_error = request.environ.get(FRONT_BODY_ERROR)
    delivery = Delivery(source, table, body, request_headers(extra_headers))
    g.delivery = delivery
    if front_error == "timeout":
        reject(
            delivery,
            408,
            "body_timeout",
            "the body was not received in time",
            outcome="malformed",
            flag="body_timeout",
        )
    if body.truncated:
        reject(
            delivery,
            413,
            "too_large",
            f"body exceeds {limit} bytes",
            outcome="oversize",
            flag="oversize",
        )
    if front_error or body.incomplete:
        reject(
            delivery,
            400,
            "malformed",
            "the body is not valid HTTP framing (chunked encoding or length)",
            outcome="malformed",
            flag="bad_framing",
            field="body",
        )
    return delivery


def _inbound_body(
    extra_headers: dict[str, str] | None,
) -> tuple[int, Body, dict[str, str] | None]:
    """Inbound e-mail keeps its own, larger limit (integrations.inbound_email); a large
    multipart body's attachments go to hub.files and the row keeps the text fields."""
    from hub.files import file_store
    from integrations.inbound_email import INBOUND_MAX_BODY_BYTES, read_inbound_body

    stream = GuardedStream(request.stream)
    spooled = read_inbound_body(
        stream, request.content_length, request.content_type, file_store(settings())
    )
    headers = dict(extra_headers or {})
    if spooled.body_file is not None:
        headers[":body-file"] = spooled.body_file.ref()
    body = Body(spooled.data, spooled.size, spooled.truncated, stream.error)
    return INBOUND_MAX_BODY_BYTES, body, headers or None


def keep(
    delivery: Delivery,
    *,
    dedupe_key: str | None,
    verified: bool,
    flag: str | None,
    status: str,
    **columns: Any,
) -> RawStoreResult:
    """Commit the raw row (group commit, durable when it returns, see
    webhook_receiver.store); 503 ``unavailable`` when PostgreSQL is down, or has not
    committed it within the store's deadline (frozen)."""
    try:
        result = raw_store().store(
            delivery.table,
            source=delivery.source,
            headers=delivery.headers,
            body=delivery.body.data,
            body_size=delivery.body.size,
            body_truncated=delivery.body.truncated,
            dedupe_key=dedupe_key,
            verified=verified,
            flag=flag,
            status=status,
            **{k: v for k, v in columns.items() if v is not None},
        )
    except (
        *DB_UNAVAILABLE,
        psycopg.errors.UndefinedTable,
        psycopg.errors.InvalidSchemaName,
    ) as exc:
        # Down, unreachable or not migrated yet: the sender must retry later.
        g.error_type = type(exc).__name__
        raise unavailable("the raw store is unavailable; retry later") from None
    g.raw_id = result.id
    return result


def unavailable(message: str, *, error: str = "unavailable") -> ReceiverError:
    return ReceiverError(
        503,
        error,
        message,
        outcome="unavailable" if error == "unavailable" else error,
        headers={"Retry-After": RETRY_AFTER_SECONDS},
    )


def reject(
    delivery: Delivery,
    status: int,
    error: str,
    message: str,
    *,
    outcome: str,
    flag: str,
    field: str | None = None,
    verified: bool = False,
    headers: dict[str, str] | None = None,
    **columns: Any,
) -> NoReturn:
    """Keep the request flagged (no dedupe key: it can never shadow a genuine delivery)."""
    keep(delivery, dedupe_key=None, verified=verified, flag=flag, status=STATUS_FLAGGED, **columns)
    headers = dict(headers or {})
    if status == 503:
        headers["Retry-After"] = RETRY_AFTER_SECONDS
    raise ReceiverError(status, error, message, outcome=outcome, field=field, headers=headers)


def evidence_table(path: str) -> str | None:
    """The raw table that keeps every request to ``path`` (whatever the method or the
    answer), or None outside ``/webhooks`` and ``/inbound`` (those are only counted)."""
    norm = "/" + "/".join(part for part in path.split("/") if part)
    if norm == "/webhooks" or norm.startswith("/webhooks/"):
        return WEBHOOKS
    if norm == "/inbound" or norm.startswith("/inbound/"):
        return INBOUND
    return None


def source_of(path: str) -> str:
    """A source name for a path under /webhooks or /inbound (its first segment)."""
    parts = [p for p in path.split("/") if p]
    if parts[:2] == ["inbound", "email"]:
        parts = parts[1:]
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", parts[1] if len(parts) > 1 else "unknown")[:64]
    return name or "unknown"


def delivery_for_refusal() -> Delivery | None:
    """The current request's delivery (read now if the endpoint had not), or None when
    the path is not under /webhooks or /inbound."""
    delivery = g.get("delivery")
    if delivery is not None:
        return delivery
    table = evidence_table(request.path)
    if table is None:
        return None
    return begin(g.get("source") or source_of(request.path), table)


def not_configured(delivery: Delivery, setting: str) -> NoReturn:
    reject(
        delivery,
        503,
        "not_configured",
        f"the receiver has no {setting} configured",
        outcome="not_configured",
        flag="not_configured",
    )


def malformed(delivery: Delivery, field: str, message: str, **columns: Any) -> NoReturn:
    reject(
        delivery,
        400,
        "malformed",
        message,
        outcome="malformed",
        flag="malformed",
        field=field,
        **columns,
    )


def accept(
    delivery: Delivery,
    *,
    auth: str,
    dedupe_key: str | None,
    verified: bool = True,
    flag: str | None = None,
    status: str = STATUS_RECEIVED,
    **columns: Any,
) -> ResponseReturnValue:
    """Keep an accepted row (``verified`` and no ``flag``: what the ingest picks up).

    ``auth`` names how the request was authenticated and is kept in the ``:auth``
    pseudo-header (``stripe-signature``, ``url-token``, ``none`` ...).
    """
    delivery.headers[":auth"] = auth
    result = keep(
        delivery, dedupe_key=dedupe_key, verified=verified, flag=flag, status=status, **columns
    )
    if result.duplicate:
        g.outcome = "duplicate"
        return jsonify(status="duplicate", id=result.id), 200
    g.outcome = "ignored" if status == STATUS_IGNORED else "accepted"
    return jsonify(status=g.outcome, id=result.id), 200


def json_object(delivery: Delivery) -> dict[str, Any]:
    """The body as a JSON object, or a kept 400 naming ``body``."""
    try:
        data = json.loads(delivery.body.data)
    except (ValueError, RecursionError):  # RecursionError: nested deeper than Python's stack
        malformed(delivery, "body", "body is not valid JSON")
    if not isinstance(data, dict):
        malformed(delivery, "body", "body is not a JSON object")
    return data
