"""The WhatsApp emulator's HTTP surface (``create_app``).

API: ``POST /v{N}.0/{phone_number_id}/messages`` with ``Authorization: Bearer <token>``
and a JSON body (text or template); replies and errors as in CONTRACTS.md Part 2 §4.
Statuses go to the webhook URL, signed with the app secret.

Test controls (no token), under ``/_sandbox``:
``GET /health``; ``GET|POST /config`` (the common faults); ``POST /faults`` ``{"fail_next":
N, "status": 500, "latency_ms", "rate_limit": {"limit", "window_seconds"}, "clear"}``
(a forced failure answers 131000, a rate limit 130429); ``POST /reset`` (faults off,
messages, windows and the undeliverable list forgotten, default templates back; the
webhook kept); ``GET|POST /webhook`` ``{"url", "verify": true}`` (``verify`` runs the GET
handshake against the URL); ``GET /deliveries?wait=`` (every attempt, once idle);
``GET|POST /templates`` ``{name: {language: {"body": n, "header": n, "status"}}}``;
``GET /messages[?to=&biz_opaque_callback_data=]``, ``GET /messages/<wamid>``;
``POST /inbound`` ``{"from", "text", "name"?, "hours_ago"? | "at"?}`` (a customer's message:
opens the 24-hour window, and is delivered as a ``messages`` webhook);
``POST /messages/<wamid>/status`` ``{"status": "failed", "code": 131026, "details"?}``
(force a status); ``POST /undeliverable`` ``{"numbers": [...]}``.
"""

from __future__ import annotations

import hmac
import json
import os
import time
from typing import Any

from flask import Flask, Response, jsonify, request

from integrations.sandbox.common import (
    CONTROL_PREFIX,
    SandboxControls,
    SandboxStore,
)
from integrations.sandbox.credentials import RECEIVER_SECRETS
from integrations.sandbox.whatsapp.errors import GraphError
from integrations.sandbox.whatsapp.keys import WHATSAPP_ACCESS_TOKEN, WHATSAPP_PHONE_NUMBER_ID
from integrations.sandbox.whatsapp.state import WhatsAppSandbox, digits
from integrations.sandbox.whatsapp.webhooks import (
    Endpoint,
    SignedSender,
    StatusScheduler,
    envelope,
    inbound_value,
    status_object,
    verify_subscription,
)

WEBHOOK_URL_ENV = "HUB_WHATSAPP_SANDBOX_WEBHOOK_URL"
_DEFAULT: Any = object()


def default_webhook_url() -> str:
    """The receiver's endpoint: ``<public_base_url>/webhooks/whatsapp``."""
    try:
        from hub.settings import load_settings

        base = load_settings().public_base_url
    except Exception:
        base = "http://127.0.0.1:5000"
    return f"{base.rstrip('/')}/webhooks/whatsapp"


def _json(body: Any, status: int = 200) -> Response:
    return Response(json.dumps(body, ensure_ascii=False), status=status,
                    mimetype="application/json")  # fmt: skip


def _error(exc: GraphError) -> Response:
    response = _json(exc.body(), exc.status)
    if exc.status == 401:
        response.headers["WWW-Authenticate"] = 'OAuth "Facebook Platform" "invalid_token"'
    return response


def create_app(
    state_path: str | None = None,
    *,
    access_tokens: list[str] | None = None,
    phone_number_ids: list[str] | None = None,
    webhook_url: str | None = _DEFAULT,
    app_secret: str | None = None,
    verify_token: str | None = None,
    webhook_attempts: int = 5,
    status_steps: list[str] | None = None,
    status_step_seconds: float = 0.05,
    window_errors: str = "async",
) -> Flask:
    """The emulator. ``webhook_url``: where notifications go (default: the URL last set
    through ``/_sandbox/webhook``, else ``$HUB_WHATSAPP_SANDBOX_WEBHOOK_URL``, else the
    receiver's ``/webhooks/whatsapp``); None sends none. ``window_errors``: ``async``
    (131047 as a failed status, as Meta does) or ``sync`` (an HTTP 400)."""
    app = Flask("sandbox-whatsapp")
    store = SandboxStore(state_path)
    sandbox = WhatsAppSandbox(store, window_errors=window_errors)
    controls = SandboxControls()
    tokens = list(access_tokens or [WHATSAPP_ACCESS_TOKEN])
    numbers = set(phone_number_ids or [WHATSAPP_PHONE_NUMBER_ID])

    saved = store.get("sandbox.config", "webhook") or {}
    if webhook_url is _DEFAULT:
        url = saved.get("url", os.environ.get(WEBHOOK_URL_ENV) or default_webhook_url())
    else:
        url = webhook_url or None
    endpoint = Endpoint(
        url=url,
        app_secret=app_secret
        or os.environ.get("HUB_WHATSAPP_APP_SECRET")
        or RECEIVER_SECRETS["whatsapp_app_secret"],
        verify_token=verify_token
        or os.environ.get("HUB_WHATSAPP_VERIFY_TOKEN")
        or RECEIVER_SECRETS["whatsapp_verify_token"],
    )
    sender = SignedSender(controls, endpoint, webhook_attempts)

    def emit_status(wamid: str, status: str, error: dict | None) -> None:
        message = sandbox.get_message(wamid)
        if message is None:
            return
        item = status_object(message, status, error=error if status == "failed" else None)
        sandbox.add_status(wamid, item)
        sender.send(envelope(message["phone_number_id"], {"statuses": [item]}))

    scheduler = StatusScheduler(
        emit_status,
        steps=status_steps or ["sent", "delivered", "read"],
        step_seconds=status_step_seconds,
    )
    sandbox.scheduler = scheduler  # type: ignore[attr-defined]
    sandbox.sender = sender  # type: ignore[attr-defined]
    app.extensions["sandbox"] = sandbox

    # ------------------------------------------------------------------ faults, auth
    @app.before_request
    def _faults_and_auth() -> Response | None:
        if request.path.startswith(CONTROL_PREFIX):
            return None
        if controls.latency_ms:
            time.sleep(controls.latency_ms / 1000.0)
        status = controls.take_failure()
        if status is not None:
            return _error(GraphError(131000, "Sandbox fault injection.", status=status))
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return _error(GraphError(
                190, "An access token is required to request this resource.",
                message="An active access token must be used to query information about "
                "the current user.",
            ))  # fmt: skip
        if not any(hmac.compare_digest(token.strip().encode(), t.encode()) for t in tokens):
            return _error(GraphError(190, "Invalid OAuth access token."))
        limiter = controls.rate_limiter
        if limiter is not None and limiter.check("phone") is not None:
            return _error(GraphError(130429))
        return None

    # ------------------------------------------------------------------ API
    @app.post("/<version>/<phone_number_id>/messages")
    def send_message(version: str, phone_number_id: str) -> Response:
        if not (version.startswith("v") and version[1:].replace(".", "").isdigit()):
            return _error(GraphError(100, f"Unknown path components: /{version}",
                                     message=f"Unknown path components: /{version}"))  # fmt: skip
        if phone_number_id not in numbers:
            return _error(GraphError(
                100, "Object does not exist", subcode=33,
                message=f"Unsupported post request. Object with ID '{phone_number_id}' does "
                "not exist, cannot be loaded due to missing permissions, or does not "
                "support this operation.",
            ))  # fmt: skip
        body = request.get_json(silent=True)
        try:
            accepted, later = sandbox.accept(body, phone_number_id)
        except GraphError as exc:
            return _error(exc)
        scheduler.schedule(accepted.message["id"], later)
        return _json(accepted.reply)

    # ------------------------------------------------------------------ test controls
    def _body() -> dict[str, Any]:
        return request.get_json(force=True, silent=True) or {}

    @app.get(f"{CONTROL_PREFIX}/health")
    def health() -> Response:
        return jsonify(ok=True)

    @app.route(f"{CONTROL_PREFIX}/config", methods=["GET", "POST"])
    def config() -> Response:
        if request.method == "POST":
            controls.apply(_body())
        return jsonify(controls.as_dict())

    @app.post(f"{CONTROL_PREFIX}/faults")
    def faults() -> Response:
        body = _body()
        if body.get("clear"):
            controls.apply({"latency_ms": 0, "fail_next": None, "rate_limit": None})
        if "fail_next" in body:
            count = body["fail_next"]
            spec = count if isinstance(count, dict) else {
                "count": int(count or 0), "status": int(body.get("status", 500))}  # fmt: skip
            controls.apply({"fail_next": spec})
        for name in ("latency_ms", "rate_limit", "webhooks"):
            if name in body:
                controls.apply({name: body[name]})
        return jsonify(controls.as_dict())

    @app.post(f"{CONTROL_PREFIX}/reset")
    def reset() -> Response:
        controls.apply({"latency_ms": 0, "fail_next": None, "rate_limit": None, "webhooks": None})
        scheduler.clear()
        sandbox.reset()
        return jsonify(controls.as_dict())

    @app.route(f"{CONTROL_PREFIX}/webhook", methods=["GET", "POST"])
    def webhook() -> Response:
        result: dict[str, Any] = {}
        if request.method == "POST":
            body = _body()
            if "url" in body:
                endpoint.url = body["url"] or None
                doc = {"url": endpoint.url}
                if store.get("sandbox.config", "webhook") is None:
                    store.insert("sandbox.config", "webhook", doc)
                else:
                    store.update("sandbox.config", "webhook", doc)
            if body.get("verify") and endpoint.url:
                result = verify_subscription(endpoint.url, endpoint.verify_token)
        return jsonify(url=endpoint.url, **result)

    @app.get(f"{CONTROL_PREFIX}/deliveries")
    def deliveries() -> Response:
        wait = float(request.args.get("wait", 0) or 0)
        idle = True
        if wait:
            idle = scheduler.wait_idle(wait) and sender.wait_idle(wait)
        attempts = [{"url": u, "status": s} for u, s in sender.attempts()]
        return jsonify(idle=idle, attempts=attempts, notifications=sender.sent)

    @app.route(f"{CONTROL_PREFIX}/templates", methods=["GET", "POST"])
    def templates() -> Response:
        if request.method == "POST":
            sandbox.set_templates(_body())
        return jsonify(templates=sandbox.templates())

    @app.get(f"{CONTROL_PREFIX}/messages")
    def messages() -> Response:
        found = sandbox.messages(
            to=request.args.get("to"), opaque=request.args.get("biz_opaque_callback_data")
        )
        return jsonify(messages=found)

    @app.get(f"{CONTROL_PREFIX}/messages/<path:wamid>")
    def message(wamid: str) -> Response:
        found = sandbox.get_message(wamid)
        return jsonify(found) if found else _json({"error": "not found"}, 404)

    @app.post(f"{CONTROL_PREFIX}/messages/<path:wamid>/status")
    def force_status(wamid: str) -> Response:
        body = _body()
        status = body.get("status", "failed")
        if status not in ("sent", "delivered", "read", "failed"):
            return _json({"error": "status must be sent, delivered, read or failed"}, 400)
        if sandbox.get_message(wamid) is None:
            return _json({"error": "not found"}, 404)
        error = {"code": int(body.get("code", 131026)), "details": body.get("details")}
        emit_status(wamid, status, error if status == "failed" else None)
        return jsonify(sandbox.get_message(wamid))

    @app.post(f"{CONTROL_PREFIX}/inbound")
    def inbound() -> Response:
        body = _body()
        sender_number = digits(str(body.get("from") or ""))
        if not sender_number.isdigit():
            return _json({"error": "from must be a phone number"}, 400)
        at = float(body["at"]) if "at" in body else time.time()
        at -= float(body.get("hours_ago", 0)) * 3600
        sandbox.record_inbound(sender_number, at)
        value, wamid = inbound_value(
            sender_number, str(body.get("name") or "Sandbox User"),
            str(body.get("text") or "Merhaba"), at,
        )  # fmt: skip
        phone = next(iter(sorted(numbers)))
        queued = sender.send(envelope(phone, value))
        return jsonify(id=wamid, wa_id=sender_number, at=at, webhook_queued=queued,
                       window_open=sandbox.window_open(sender_number))  # fmt: skip

    @app.post(f"{CONTROL_PREFIX}/undeliverable")
    def undeliverable() -> Response:
        sandbox.set_undeliverable(list(_body().get("numbers") or []))
        return jsonify(numbers=sorted(sandbox.undeliverable()))

    return app
