"""The front's lean path for the hot endpoint: a genuine Stripe delivery, end to end on
the event loop, without Flask.

``POST /webhooks/stripe`` with a complete body whose signature verifies is what the
receiver does all day. Flask's request context, routing, hooks and Response objects,
plus the hand-off to a WSGI thread, cost more CPU than the work itself, so the front
(webhook_receiver.front) first offers such a request to :class:`LeanStripe`. It uses
the same code as the Flask endpoint for everything that decides what is stored and
answered: the same signature check (integrations.webhook_signatures), the same stored
headers (core.stored_headers: redacted, secrets masked), the same row
(hub.raw.committed_statement through the same per-process group-commit store, so rows
of both paths share batches), the same JSON answer bytes, access log line and metrics.

Anything else is not answered here and goes to Flask unchanged: another path or method,
a query string, a body the front could not read whole, no secret configured, a
signature or a payload that does not verify (the refusals are kept flagged there). The
row is never written before that decision, so falling back stores nothing twice.
Durability is the store's: the answer is produced only after the row's COMMIT returned
(503 ``unavailable`` with Retry-After past the deadline, as in the Flask path).
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import psycopg
from werkzeug.datastructures import EnvironHeaders

from hub.raw import STATUS_RECEIVED
from integrations.webhook_signatures import verify_stripe_event
from webhook_receiver import metrics
from webhook_receiver.core import (
    DB_UNAVAILABLE,
    RETRY_AFTER_SECONDS,
    WEBHOOKS,
    raw_store_of,
    secrets_of,
    stored_headers,
)
from webhook_receiver.logs import access_logger, safe_path

STRIPE_PATH = "/webhooks/stripe"
# What keep() turns into 503 unavailable (down, frozen past the deadline, not migrated).
_UNAVAILABLE = (*DB_UNAVAILABLE, psycopg.errors.UndefinedTable, psycopg.errors.InvalidSchemaName)
_UNAVAILABLE_BODY = (
    json.dumps(
        {"error": "unavailable", "message": "the raw store is unavailable; retry later"},
        separators=(",", ":"),
    )
    + "\n"
).encode()

Answer = tuple[int, list[tuple[str, str]], bytes]


def _json_answer(data: bytes, extra: list[tuple[str, str]] | None = None) -> list[tuple[str, str]]:
    """The headers Flask sends with a jsonify() answer, in its order."""
    return [
        ("Content-Type", "application/json"),
        ("Content-Length", str(len(data))),
        *(extra or []),
        ("X-Content-Type-Options", "nosniff"),
    ]


def _wake(future: asyncio.Future) -> None:
    if not future.done():
        future.set_result(None)


class LeanStripe:
    """Verify, keep and answer a genuine Stripe delivery; None means "Flask's to answer"."""

    def __init__(self, app: Any) -> None:
        self._app = app
        self._settings = app.config["HUB_SETTINGS"]
        self._log = access_logger()

    @staticmethod
    def applies(scope: Any, declared: int | None, error: str | None, limit: int) -> bool:
        return (
            scope.method == "POST"
            and scope.path == STRIPE_PATH
            and not scope.query_string
            and error is None
            and declared is not None
            and declared <= limit
        )

    async def handle(self, environ: dict[str, Any], body: bytes) -> Answer | None:
        t0 = time.perf_counter()
        try:
            if len(body) != int(environ.get("CONTENT_LENGTH") or -1):
                return None  # short or cut: the Flask path keeps it as bad framing
            # a secret that cannot be read fails closed in the Flask path (kept, 500)
            secret = self._settings.secret("stripe_webhook_secret")
            if not secret:
                return None  # kept as not_configured (503) by the Flask path
            event = verify_stripe_event(body, environ.get("HTTP_STRIPE_SIGNATURE"), secret)
            event_id, event_type = event["id"], event["type"]
            secrets = secrets_of(self._app)
            headers = stored_headers(EnvironHeaders(environ).items(), "POST", STRIPE_PATH, secrets)
        except Exception:  # a refusal (bad signature, bad payload): kept flagged by Flask
            return None  # nothing was stored yet
        headers[":auth"] = "stripe-signature"
        fields: dict[str, Any] = {
            "source": "stripe",
            "headers": headers,
            "body": body,
            "body_size": len(body),
            "body_truncated": False,
            "dedupe_key": event_id,
            "verified": True,
            "flag": None,
            "status": STATUS_RECEIVED,
        }
        if event_type is not None:
            fields["event_type"] = event_type
        store = raw_store_of(self._app)
        loop = asyncio.get_running_loop()
        committed = loop.create_future()
        try:
            item = store.submit(
                WEBHOOKS, fields, lambda: loop.call_soon_threadsafe(_wake, committed)
            )
        except _UNAVAILABLE as exc:
            return self._unavailable(t0, exc, secrets)
        except Exception:  # a row hub.raw refuses to build: Flask's error path keeps it
            return None
        timer = loop.call_later(store.deadline, _wake, committed)
        await committed  # committed, failed, or the deadline: outcome() tells which
        timer.cancel()
        try:
            result = store.outcome(item)
        except _UNAVAILABLE as exc:
            return self._unavailable(t0, exc, secrets)
        except psycopg.Error:  # refused by PostgreSQL: nothing stored; Flask's 500 path
            return None
        outcome = "duplicate" if result.duplicate else "accepted"
        data = (
            json.dumps({"status": outcome, "id": result.id}, separators=(",", ":")) + "\n"
        ).encode()
        self._finish(t0, 200, outcome, result.id, secrets)
        return 200, _json_answer(data), data

    def _unavailable(self, t0: float, exc: BaseException, secrets: list[str]) -> Answer:
        self._finish(t0, 503, "unavailable", None, secrets, error_type=type(exc).__name__)
        data = _UNAVAILABLE_BODY
        return 503, _json_answer(data, [("Retry-After", RETRY_AFTER_SECONDS)]), data

    def _finish(
        self,
        t0: float,
        status: int,
        outcome: str,
        raw_id: int | None,
        secrets: list[str],
        *,
        error_type: str | None = None,
    ) -> None:
        """The metrics and the access log line of the Flask path (app._finish)."""
        seconds = time.perf_counter() - t0
        metrics.observe("stripe", outcome, seconds)
        fields: dict[str, Any] = {
            "method": "POST",
            "path": safe_path(STRIPE_PATH, secrets),
            "status": status,
            "source": "stripe",
            "outcome": outcome,
            "duration_ms": round(seconds * 1000, 2),
            "raw_id": raw_id,
        }
        if error_type:
            fields["error_type"] = error_type
        self._log.info("request", extra={"fields": fields})
