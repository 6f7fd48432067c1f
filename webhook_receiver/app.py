"""The receiver's Flask app factory.

``create_app()`` serves the webhook and inbound-mail endpoints (webhook_receiver.routes),
``GET /health`` and ``GET /metrics``. Under gunicorn:
``gunicorn -c webhook_receiver/gunicorn_conf.py "webhook_receiver.app:create_app()"``.
"""

from __future__ import annotations

import time
from typing import Any

from flask import Flask, Response, g, jsonify, request
from sqlalchemy import create_engine, pool, text
from werkzeug.exceptions import HTTPException

from hub.embedded import resolve_database_url
from hub.settings import Settings, get_settings
from webhook_receiver import metrics
from webhook_receiver.core import ReceiverError, configured_secrets, redis_client
from webhook_receiver.logs import access_logger, safe_path
from webhook_receiver.routes import bp

HEALTH_TIMEOUT_SECONDS = 2


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
    def _start() -> None:
        g.t0 = time.perf_counter()

    @app.errorhandler(ReceiverError)
    def _refused(exc: ReceiverError) -> Response:
        g.outcome = exc.outcome
        return _json(exc.body(), exc.status, exc.headers)

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException) -> Response:
        code = exc.code or 500
        name = (exc.name or "error").lower().replace(" ", "_")
        response = _json({"error": name, "message": exc.description or name}, code)
        if code == 405 and getattr(exc, "valid_methods", None):
            response.headers["Allow"] = ", ".join(exc.valid_methods)
        return response

    @app.errorhandler(Exception)
    def _crash(exc: Exception) -> Response:
        g.outcome = "error"
        g.error_type = type(exc).__name__
        # Type only: messages of DB errors quote SQL parameters, i.e. request bodies.
        return _json({"error": "internal", "message": "internal error"}, 500)

    @app.after_request
    def _finish(response: Response) -> Response:
        seconds = time.perf_counter() - g.get("t0", time.perf_counter())
        source = g.get("source")
        outcome = g.get("outcome")
        if source is not None:
            metrics.observe(g.get("metric_source", source), outcome or "error", seconds)
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
