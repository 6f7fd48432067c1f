"""The receiver's Flask app factory.

``create_app()`` serves the webhook and inbound-mail endpoints (webhook_receiver.routes),
the native landing pages and checkout (webhook_receiver.pages), ``GET /health`` and
``GET /metrics``. Under gunicorn:
``gunicorn -c webhook_receiver/gunicorn_conf.py "webhook_receiver.app:create_app()"``.
"""

from __future__ import annotations

import time
from typing import Any

import psycopg
from flask import Flask, Response, g, jsonify, request
from sqlalchemy import create_engine, pool, text
from werkzeug.exceptions import HTTPException
from werkzeug.routing import RequestRedirect

from hub.embedded import resolve_database_url
from hub.settings import Settings, get_settings
from webhook_receiver import metrics
from webhook_receiver.core import (
    ReceiverError,
    configured_secrets,
    delivery_for_refusal,
    redis_client,
    reject,
)
from webhook_receiver.logs import access_logger, safe_path
from webhook_receiver.pages import pages
from webhook_receiver.routes import bp, refuse_unrouted

HEALTH_TIMEOUT_SECONDS = 2

# What a parser raises on hostile input it cannot make sense of (bad charsets naming a
# non-text codec, JSON nested past Python's stack, numbers past a float, structures of
# the wrong type): the request is malformed, answered 400 and kept flagged
# ``unparseable`` (with its traceback logged, since it also marks a parser to harden).
UNPARSEABLE = (
    ValueError,
    LookupError,
    RecursionError,
    OverflowError,
    TypeError,
    AttributeError,
)


def _json(body: dict[str, Any], status: int, headers: dict[str, str] | None = None) -> Response:
    response = jsonify(body)
    response.status_code = status
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def _health_engine(app: Flask):
    engine = app.extensions.get("hub_health_engine")
    if engine is None:
        engine = create_engine(
            resolve_database_url(app.config["HUB_SETTINGS"]),
            poolclass=pool.NullPool,
            connect_args={
                "connect_timeout": HEALTH_TIMEOUT_SECONDS,
                "options": f"-c statement_timeout={HEALTH_TIMEOUT_SECONDS * 1000}",
            },
        )
        app.extensions["hub_health_engine"] = engine
    return engine


def create_app(settings: Settings | None = None) -> Flask:
    settings = settings or get_settings()
    app = Flask(__name__)
    app.config["HUB_SETTINGS"] = settings
    app.json.sort_keys = False  # type: ignore[attr-defined]
    app.register_blueprint(bp)
    app.register_blueprint(pages)  # /e/<slug>, /checkout, /orders: outside /webhooks
    log = access_logger()

    @app.get("/health")
    def health() -> Response:
        try:
            with _health_engine(app).connect() as conn:
                pg_ok = conn.execute(text("select 1")).scalar() == 1
        except Exception:
            pg_ok = False
        try:
            redis_ok = bool(redis_client().ping())
        except Exception:
            redis_ok = False
        ok = pg_ok and redis_ok
        body = {
            "status": "ok" if ok else "unavailable",
            "postgresql": "ok" if pg_ok else "unavailable",
            "redis": "ok" if redis_ok else "unavailable",
        }
        return _json(body, 200 if ok else 503)

    @app.get("/metrics")
    def metrics_endpoint() -> Response:
        payload, content_type = metrics.render()
        return Response(payload, 200, content_type=content_type)

    @app.before_request
    def _start() -> Response | None:
        g.t0 = time.perf_counter()
        try:
            refuse_unrouted()  # wrong method, HEAD, OPTIONS, redirects: kept, then answered
        except ReceiverError as exc:
            return _refused(exc)
        return None

    @app.errorhandler(ReceiverError)
    def _refused(exc: ReceiverError) -> Response:
        g.outcome = exc.outcome
        return _json(exc.body(), exc.status, exc.headers)

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException) -> Response:
        code = exc.code or 500
        name = (exc.name or "error").lower().replace(" ", "_")
        headers = {}
        if code == 405 and getattr(exc, "valid_methods", None):
            headers["Allow"] = ", ".join(exc.valid_methods)
        if isinstance(exc, RequestRedirect):
            headers["Location"] = exc.new_url
        if g.get("raw_id") is None:
            try:  # under /webhooks and /inbound every refusal is evidence: keep it
                delivery = delivery_for_refusal()
                if delivery is not None:
                    reject(delivery, code, name, exc.description or name,
                           outcome="malformed", flag=name, headers=headers)  # fmt: skip
            except ReceiverError as refused:
                return _refused(refused)
        return _json({"error": name, "message": exc.description or name}, code, headers)

    @app.errorhandler(Exception)
    def _crash(exc: Exception) -> Response:
        g.outcome = "error"
        g.error_type = type(exc).__name__
        unparseable = isinstance(exc, UNPARSEABLE) and not isinstance(exc, psycopg.Error)
        log.error(
            "request failed",
            exc_info=exc,
            extra={"fields": {"message": "unexpected error in a request",
                              "method": request.method,
                              "path": safe_path(request.path, configured_secrets()),
                              "source": g.get("source"), "handled_as": "unparseable"
                              if unparseable else "internal"},
                   "secrets": configured_secrets()},
        )  # fmt: skip
        if g.get("raw_id") is None and not isinstance(exc, psycopg.Error):
            try:
                delivery = delivery_for_refusal()
                if delivery is not None and unparseable:
                    reject(delivery, 400, "malformed", "the body could not be parsed",
                           outcome="malformed", flag="unparseable", field="body")  # fmt: skip
                if delivery is not None:
                    reject(delivery, 500, "internal", "internal error",
                           outcome="error", flag="receiver_error")  # fmt: skip
            except ReceiverError as refused:
                if refused.status != 500:
                    return _refused(refused)
            except Exception:  # keeping the row failed too: the 500 below says it
                log.exception("keeping a failed request failed")
        g.outcome = "error"
        return _json({"error": "internal", "message": "internal error"}, 500)

    @app.after_request
    def _finish(response: Response) -> Response:
        seconds = time.perf_counter() - g.get("t0", time.perf_counter())
        source = g.get("source")
        outcome = g.get("outcome")
        if source is not None:
            metrics.observe(g.get("metric_source", source), outcome or "error", seconds)
        else:  # health, metrics, unknown paths: counted by status
            metrics.observe_other(response.status_code)
        fields = {
            "method": request.method,
            "path": safe_path(request.path, configured_secrets()),
            "status": response.status_code,
            "source": source,
            "outcome": outcome,
            "duration_ms": round(seconds * 1000, 2),
            "raw_id": g.get("raw_id"),
        }
        if g.get("error_type"):
            fields["error_type"] = g.error_type
        log.info("request", extra={"fields": fields})
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        return response

    return app
