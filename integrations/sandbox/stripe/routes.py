"""The Stripe emulator's HTTP surface (``create_app``).

API (``/v1``, Bearer or Basic secret key, form-encoded bodies, Stripe's error envelope,
``Idempotency-Key`` on POSTs):
``POST /v1/checkout/sessions``, ``GET /v1/checkout/sessions[/<id>[/line_items]]``,
``POST /v1/checkout/sessions/<id>/expire``, ``GET /v1/payment_intents/<id>``,
``GET /v1/charges/<id>``, ``POST /v1/refunds``, ``GET /v1/refunds/<id>``,
``GET /v1/events[/<id>]``. Parameters are checked against the SDK's typed params
(:mod:`.params`); unknown ones are refused like Stripe refuses them.

Idempotency (docs.stripe.com/api/idempotent_requests): a POST's result is kept under its
key for 24 h once the endpoint started executing; the same key with the same parameters
replays it (``Idempotent-Replayed: true``), with other parameters or another endpoint is
a 400 ``idempotency_error``, while the first is still running a 409.

Hosted page: ``GET|POST /pay/<cs_id>`` (:mod:`.pages`).

Test controls (no key): ``GET /_sandbox/health``; ``GET|POST /_sandbox/config`` (the
common faults); ``POST /_sandbox/faults`` ``{"fail_next": N, "status": 500,
"latency_ms": 0, "lose_response_next": N, "rate_limit": {...}}`` (API paths only; a lost
response is executed and kept for idempotent replay, but answered 500);
``POST /_sandbox/reset`` (faults off, every object, event and delivery forgotten; the
webhook endpoint kept); ``GET|POST /_sandbox/webhook`` ``{"url", "enabled_events",
"duplicate", "out_of_order", "attempts", "backoff_seconds"}``; ``GET /_sandbox/deliveries
[?event_id=&wait=seconds]`` (every attempt; ``wait`` first waits until nothing is
pending); ``POST /_sandbox/sessions/<id>/complete`` (alias ``/pay``) ``{"email",
"name"}``, ``/decline`` (alias ``/fail``), ``/expire-now``; ``GET /_sandbox/events
[?type=]`` (oldest first); ``POST /_sandbox/events/<id>/resend``; ``POST
/_sandbox/sweep`` (expire what is due now).
"""

from __future__ import annotations

import base64
import hmac
import json
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from flask import Flask, Response, g, jsonify, redirect, request

from integrations.sandbox.common import (
    CONTROL_PREFIX,
    SandboxControls,
    SandboxStore,
    retry_after_header,
)
from integrations.sandbox.credentials import RECEIVER_SECRETS
from integrations.sandbox.stripe import objects, pages
from integrations.sandbox.stripe.forms import FormError, parse_form
from integrations.sandbox.stripe.keys import STRIPE_SECRET_KEY
from integrations.sandbox.stripe.params import Node, ParamError, check, params_node
from integrations.sandbox.stripe.state import (
    INTERNAL,
    RequestInfo,
    StripeApiError,
    StripeSandbox,
    public,
)
from integrations.sandbox.stripe.webhooks import Endpoint, StripeWebhookSender

IDEMPOTENCY_TTL_SECONDS = 24 * 3600
WEBHOOK_URL_ENV = "HUB_STRIPE_SANDBOX_WEBHOOK_URL"
_DEFAULT: Any = object()


def default_webhook_url() -> str:
    """The receiver's Stripe endpoint: ``<public_base_url>/webhooks/stripe`` from the hub's
    settings (``HUB_PUBLIC_BASE_URL``, default ``http://127.0.0.1:5000``)."""
    try:
        from hub.settings import load_settings

        base = load_settings().public_base_url
    except Exception:
        base = "http://127.0.0.1:5000"
    return f"{base.rstrip('/')}/webhooks/stripe"


def default_webhook_secret() -> str:
    """The secret the receiver verifies with: ``HUB_STRIPE_WEBHOOK_SECRET`` when set, else
    the sandbox one (integrations.sandbox.credentials.RECEIVER_SECRETS)."""
    return os.environ.get("HUB_STRIPE_WEBHOOK_SECRET") or RECEIVER_SECRETS["stripe_webhook_secret"]


@dataclass
class ExtraFaults:
    lose_response_next: int = 0

    def take_lost(self, lock: threading.Lock) -> bool:
        with lock:
            if self.lose_response_next > 0:
                self.lose_response_next -= 1
                return True
            return False


def _nodes() -> dict[str, Node]:
    from stripe.params import (
        ChargeRetrieveParams,
        EventListParams,
        EventRetrieveParams,
        PaymentIntentRetrieveParams,
        RefundCreateParams,
        RefundRetrieveParams,
    )
    from stripe.params.checkout import (
        SessionCreateParams,
        SessionExpireParams,
        SessionListLineItemsParams,
        SessionListParams,
        SessionRetrieveParams,
    )

    typed = {
        "session.create": SessionCreateParams,
        "session.list": SessionListParams,
        "session.retrieve": SessionRetrieveParams,
        "session.expire": SessionExpireParams,
        "session.line_items": SessionListLineItemsParams,
        "payment_intent.retrieve": PaymentIntentRetrieveParams,
        "charge.retrieve": ChargeRetrieveParams,
        "refund.create": RefundCreateParams,
        "refund.retrieve": RefundRetrieveParams,
        "event.list": EventListParams,
        "event.retrieve": EventRetrieveParams,
    }
    return {name: params_node(cls) for name, cls in typed.items()}


def _mask(key: str) -> str:
    prefix = key[: key.index("_", 3) + 1] if key.count("_") >= 2 else ""
    return prefix + "*" * max(len(key) - len(prefix) - 4, 0) + key[-4:]


def _json(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    response = Response(json.dumps(body, indent=2), status=status, mimetype="application/json")
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def _limit(params: dict[str, Any]) -> int:
    limit = params.get("limit", 10)
    if not 1 <= limit <= 100:
        raise StripeApiError(
            400, "This value must be between 1 and 100.", param="limit", saved=False
        )
    return limit


def create_app(
    state_path: str | None = None,
    *,
    api_keys: list[str] | None = None,
    webhook_url: str | None = _DEFAULT,
    webhook_secret: str | None = None,
    public_base_url: str | None = None,
    webhook_attempts: int = 5,
    webhook_backoff_seconds: float = 0.5,
) -> Flask:
    """The emulator. ``webhook_url``: where events go (default: the URL last set through
    ``POST /_sandbox/webhook``, else ``$HUB_STRIPE_SANDBOX_WEBHOOK_URL``, else the
    receiver's ``/webhooks/stripe``); None or "" sends none. ``public_base_url``: the root
    of the hosted page URLs (default: the address the request came to)."""
    app = Flask("sandbox-stripe")
    store = SandboxStore(state_path)
    sandbox = StripeSandbox(store)
    controls = SandboxControls()
    extra = ExtraFaults()
    keys = set(api_keys or [STRIPE_SECRET_KEY])
    nodes = _nodes()

    saved_hook = store.get("sandbox.config", "webhook") or {}
    if webhook_url is _DEFAULT:
        url = saved_hook.get("url", os.environ.get(WEBHOOK_URL_ENV) or default_webhook_url())
    else:
        url = webhook_url or None
    endpoint = Endpoint(
        url=url,
        secret=webhook_secret or default_webhook_secret(),
        enabled_events=saved_hook.get("enabled_events", ["*"]),
        attempts=webhook_attempts,
        backoff_seconds=webhook_backoff_seconds,
    )
    sender = StripeWebhookSender(controls, endpoint)
    sandbox.emit = sender.dispatch
    sandbox.pending_webhooks = lambda: 1 if endpoint.url else 0
    sandbox.webhooks = sender  # type: ignore[attr-defined]
    app.extensions["sandbox"] = sandbox
    idem_lock = threading.Lock()
    in_flight: set[str] = set()

    def root() -> str:
        return (public_base_url or request.host_url).rstrip("/")

    # ------------------------------------------------------------------ faults, auth
    @app.before_request
    def _api_faults() -> Response | None:
        g.request_id = objects.new_id("req_", 14)
        if not request.path.startswith("/v1/"):
            return None
        if controls.latency_ms:
            time.sleep(controls.latency_ms / 1000.0)
        status = controls.take_failure()
        if status is not None:
            return _json(
                objects.error_body(
                    "An unknown error occurred (sandbox fault injection).", type_="api_error"
                ),
                status,
            )
        limiter = controls.rate_limiter
        if limiter is not None:
            wait = limiter.check("account")
            if wait is not None:
                return _json(
                    objects.error_body(
                        "Request rate limit exceeded. Learn more about rate limits here "
                        "https://stripe.com/docs/rate-limits.",
                        code="rate_limit",
                    ),
                    429,
                    {"Retry-After": retry_after_header(wait)},
                )
        return _authenticate()

    def _authenticate() -> Response | None:
        header = request.headers.get("Authorization", "")
        scheme, _, credential = header.partition(" ")
        key = ""
        if scheme.lower() == "bearer":
            key = credential.strip()
        elif scheme.lower() == "basic":
            try:
                key = base64.b64decode(credential).decode().partition(":")[0]
            except (ValueError, UnicodeDecodeError):
                key = ""
        if not key:
            message = (
                "You did not provide an API key. You need to provide your API key in the "
                "Authorization header, using Bearer auth (e.g. 'Authorization: Bearer "
                "YOUR_SECRET_KEY'). See https://stripe.com/docs/api#authentication for "
                "details, or we can help at https://support.stripe.com/."
            )
        elif any(hmac.compare_digest(key.encode(), k.encode()) for k in keys):
            return None
        else:
            message = f"Invalid API Key provided: {_mask(key)}"
        return _json(
            objects.error_body(message), 401, {"WWW-Authenticate": 'Bearer realm="Stripe"'}
        )

    @app.after_request
    def _headers(response: Response) -> Response:
        if request.path.startswith("/v1/"):
            response.headers["Request-Id"] = g.get("request_id", "")
            response.headers["Stripe-Version"] = request.headers.get(
                "Stripe-Version", objects.API_VERSION
            )
        return response

    # ------------------------------------------------------------------ API plumbing
    Handler = Callable[..., Any]

    def api(rule: str, method: str, node: str) -> Callable[[Handler], Handler]:
        def register(fn: Handler) -> Handler:
            def view(**kwargs: Any) -> Response:
                try:
                    raw = parse_form(
                        request.get_data() if method == "POST" else request.query_string
                    )
                except FormError as exc:
                    return _json(objects.error_body(str(exc), param=exc.param), 400)
                key = request.headers.get("Idempotency-Key") if method == "POST" else None
                info = RequestInfo(g.request_id, key)
                if key is None:
                    return _run(fn, raw, node, info, kwargs)
                return _idempotent(fn, raw, node, info, kwargs, key)

            view.__name__ = f"api_{fn.__name__}"
            app.add_url_rule(rule, view.__name__, view, methods=[method])
            return fn

        return register

    def _run(
        fn: Handler, raw: dict[str, Any], node: str, info: RequestInfo, kwargs: dict[str, Any]
    ) -> Response:
        status, body, _saved = _execute(fn, raw, node, info, kwargs)
        return _json(body, status)

    def _execute(
        fn: Handler, raw: dict[str, Any], node: str, info: RequestInfo, kwargs: dict[str, Any]
    ) -> tuple[int, Any, bool]:
        try:
            params = check(raw, nodes[node])
            return 200, fn(params, info, **kwargs), True
        except ParamError as exc:
            return 400, objects.error_body(str(exc), code=exc.code, param=exc.param), False
        except StripeApiError as exc:
            return exc.status, exc.body, exc.saved

    def _idempotent(
        fn: Handler,
        raw: dict[str, Any],
        node: str,
        info: RequestInfo,
        kwargs: dict[str, Any],
        key: str,
    ) -> Response:
        if len(key) > 255:
            return _json(
                objects.error_body(
                    f"Invalid idempotency key: must be at most 255 characters long, got {len(key)}",
                    type_="idempotency_error",
                ),
                400,
            )
        fingerprint = {"method": request.method, "path": request.path, "params": raw}
        with idem_lock:
            stored = store.get("idempotency", key)
            if stored and stored["at"] < time.time() - IDEMPOTENCY_TTL_SECONDS:
                store.delete("idempotency", key)
                stored = None
            if stored is None and key in in_flight:
                return _json(
                    objects.error_body(
                        "There is currently another in-progress request using this "
                        "Idempotent Key (that probably means you submitted twice, and the "
                        f"other request is still going through): {key}. Please try again "
                        "later.",
                        type_="idempotency_error",
                        code="idempotency_key_in_use",
                    ),
                    409,
                )
            if stored is None:
                in_flight.add(key)
        if stored is not None:
            if stored["fingerprint"] != fingerprint:
                return _json(
                    objects.error_body(
                        "Keys for idempotent requests can only be used with the same "
                        "parameters they were first used with. Try using a key other than "
                        f"'{key}' if you meant to execute a different request.",
                        type_="idempotency_error",
                    ),
                    400,
                )
            return _json(
                stored["body"],
                stored["status"],
                {
                    "Idempotent-Replayed": "true",
                    "Original-Request": stored["request_id"],
                    "Idempotency-Key": key,
                },
            )
        try:
            status, body, saved = _execute(fn, raw, node, info, kwargs)
            if saved:
                doc = {
                    "fingerprint": fingerprint,
                    "status": status,
                    "body": body,
                    "request_id": info.request_id,
                    "at": time.time(),
                }
                with idem_lock:
                    if store.get("idempotency", key) is None:
                        store.insert("idempotency", key, doc)
        finally:
            with idem_lock:
                in_flight.discard(key)
        if saved and extra.take_lost(controls.lock):
            return _json(
                objects.error_body(
                    "An unknown error occurred (sandbox fault: response lost).",
                    type_="api_error",
                ),
                500,
            )
        return _json(body, status, {"Idempotency-Key": key})

    def _expand_session(session: dict[str, Any], expand: list[str]) -> dict[str, Any]:
        out = public(session)
        if "line_items" in expand:
            out["line_items"] = objects.listing(
                f"/v1/checkout/sessions/{session['id']}/line_items",
                session[INTERNAL]["line_items"],
                False,
            )
        if "payment_intent" in expand and out.get("payment_intent"):
            out["payment_intent"] = sandbox.get_payment_intent(out["payment_intent"])
        return out

    # ------------------------------------------------------------------ API
    @api("/v1/checkout/sessions", "POST", "session.create")
    def session_create(params: dict[str, Any], info: RequestInfo) -> Any:
        session = sandbox.create_session(params, root_url=root(), request=info)
        return _expand_session(session, params.get("expand") or [])

    @api("/v1/checkout/sessions", "GET", "session.list")
    def session_list(params: dict[str, Any], info: RequestInfo) -> Any:
        found, more = sandbox.list_sessions(
            limit=_limit(params),
            payment_intent=params.get("payment_intent"),
            status=params.get("status"),
        )
        return objects.listing("/v1/checkout/sessions", [public(s) for s in found], more)

    @api("/v1/checkout/sessions/<session_id>", "GET", "session.retrieve")
    def session_retrieve(params: dict[str, Any], info: RequestInfo, session_id: str) -> Any:
        return _expand_session(sandbox.get_session(session_id), params.get("expand") or [])

    @api("/v1/checkout/sessions/<session_id>/expire", "POST", "session.expire")
    def session_expire(params: dict[str, Any], info: RequestInfo, session_id: str) -> Any:
        session = sandbox.expire_session(session_id, info)
        return _expand_session(session, params.get("expand") or [])

    @api("/v1/checkout/sessions/<session_id>/line_items", "GET", "session.line_items")
    def session_line_items(params: dict[str, Any], info: RequestInfo, session_id: str) -> Any:
        items = sandbox.line_items(session_id)
        limit = _limit(params)
        return objects.listing(
            f"/v1/checkout/sessions/{session_id}/line_items", items[:limit], len(items) > limit
        )

    @api("/v1/payment_intents/<pi_id>", "GET", "payment_intent.retrieve")
    def payment_intent_retrieve(params: dict[str, Any], info: RequestInfo, pi_id: str) -> Any:
        return sandbox.get_payment_intent(pi_id)

    @api("/v1/charges/<charge_id>", "GET", "charge.retrieve")
    def charge_retrieve(params: dict[str, Any], info: RequestInfo, charge_id: str) -> Any:
        return sandbox.get_charge(charge_id)

    @api("/v1/refunds", "POST", "refund.create")
    def refund_create(params: dict[str, Any], info: RequestInfo) -> Any:
        return sandbox.create_refund(params, info)

    @api("/v1/refunds/<refund_id>", "GET", "refund.retrieve")
    def refund_retrieve(params: dict[str, Any], info: RequestInfo, refund_id: str) -> Any:
        return sandbox.get_refund(refund_id)

    @api("/v1/events", "GET", "event.list")
    def event_list(params: dict[str, Any], info: RequestInfo) -> Any:
        types = params.get("types") or ([params["type"]] if params.get("type") else None)
        found, more = sandbox.list_events(
            limit=_limit(params), starting_after=params.get("starting_after"), types=types
        )
        return objects.listing("/v1/events", found, more)

    @api("/v1/events/<event_id>", "GET", "event.retrieve")
    def event_retrieve(params: dict[str, Any], info: RequestInfo, event_id: str) -> Any:
        return sandbox.get_event(event_id)

    @app.route("/v1/<path:rest>", methods=["GET", "POST", "DELETE"])
    def unknown(rest: str) -> Response:
        return _json(
            objects.error_body(
                f"Unrecognized request URL ({request.method}: /v1/{rest}). Please see "
                "https://stripe.com/docs or we can help at https://support.stripe.com/."
            ),
            404,
        )

    # ------------------------------------------------------------------ hosted page
    def _html(text: str, status: int = 200) -> Response:
        return Response(text, status=status, mimetype="text/html")

    def _success_url(session: dict[str, Any]) -> str:
        return (session.get("success_url") or "/").replace("{CHECKOUT_SESSION_ID}", session["id"])

    @app.get("/pay/<session_id>")
    def pay_page(session_id: str) -> Response:
        try:
            session = sandbox.get_session(session_id)
        except StripeApiError:
            return _html(pages.not_found_page(), 404)
        if session["status"] != "open":
            return _html(pages.closed_page(session), 410 if session["status"] == "expired" else 200)
        return _html(pages.pay_page(session, session[INTERNAL]["line_items"]))

    @app.post("/pay/<session_id>")
    def pay_submit(session_id: str) -> Response:
        action = request.form.get("action", "pay")
        email = (request.form.get("email") or "").strip() or None
        name = (request.form.get("name") or "").strip() or None
        try:
            session = sandbox.get_session(session_id)
        except StripeApiError:
            return _html(pages.not_found_page(), 404)
        if session["status"] == "complete":
            return redirect(_success_url(session), 303)
        if session["status"] != "open":
            return _html(pages.closed_page(session), 410)
        if action == "decline":
            session = sandbox.decline_session(session_id)
            page = pages.pay_page(
                session, session[INTERNAL]["line_items"], error="Your card was declined."
            )
            return _html(page, 402)
        session = sandbox.complete_session(session_id, email=email, name=name)
        return redirect(_success_url(session), 303)

    # ------------------------------------------------------------------ test controls
    def _body() -> dict[str, Any]:
        return request.get_json(force=True, silent=True) or {}

    def _control(fn: Callable[[], Any]) -> Response:
        try:
            return jsonify(fn())
        except StripeApiError as exc:
            return _json(exc.body, exc.status)

    @app.get(f"{CONTROL_PREFIX}/health")
    def health() -> Response:
        return jsonify(ok=True)

    def _faults_dict() -> dict[str, Any]:
        return {**controls.as_dict(), "lose_response_next": extra.lose_response_next}

    @app.route(f"{CONTROL_PREFIX}/config", methods=["GET", "POST"])
    def config() -> Response:
        if request.method == "POST":
            controls.apply(_body())
        return jsonify(_faults_dict())

    @app.post(f"{CONTROL_PREFIX}/faults")
    def faults() -> Response:
        body = _body()
        if body.get("clear"):
            controls.apply({"latency_ms": 0, "fail_next": None, "rate_limit": None})
            extra.lose_response_next = 0
        if "fail_next" in body:
            count = body["fail_next"]
            spec = (
                count
                if isinstance(count, dict)
                else {"count": int(count or 0), "status": int(body.get("status", 500))}
            )
            controls.apply({"fail_next": spec})
        for name in ("latency_ms", "rate_limit"):
            if name in body:
                controls.apply({name: body[name]})
        if "lose_response_next" in body:
            extra.lose_response_next = int(body["lose_response_next"] or 0)
        return jsonify(_faults_dict())

    @app.post(f"{CONTROL_PREFIX}/reset")
    def reset() -> Response:
        controls.apply({"latency_ms": 0, "fail_next": None, "rate_limit": None, "webhooks": None})
        extra.lose_response_next = 0
        sender.clear()
        sandbox.reset()
        return jsonify(_faults_dict())

    def _hook_dict() -> dict[str, Any]:
        return {
            **endpoint.as_dict(),
            "duplicate": controls.duplicate_webhooks,
            "out_of_order": controls.out_of_order_webhooks,
        }

    @app.route(f"{CONTROL_PREFIX}/webhook", methods=["GET", "POST"])
    def webhook_config() -> Response:
        if request.method == "POST":
            body = _body()
            if "url" in body:
                endpoint.url = body["url"] or None
            if "enabled_events" in body:
                endpoint.enabled_events = list(body["enabled_events"] or ["*"])
            if "attempts" in body:
                endpoint.attempts = max(1, int(body["attempts"]))
            if "backoff_seconds" in body:
                endpoint.backoff_seconds = float(body["backoff_seconds"])
            if "max_backoff_seconds" in body:
                endpoint.max_backoff_seconds = float(body["max_backoff_seconds"])
            hooks = {}
            for name in ("duplicate", "out_of_order"):
                if name in body:
                    hooks[name] = bool(body[name])
            if hooks:
                current = {
                    "duplicate": controls.duplicate_webhooks,
                    "out_of_order": controls.out_of_order_webhooks,
                }
                controls.apply({"webhooks": {**current, **hooks}})
            saved = {"url": endpoint.url, "enabled_events": endpoint.enabled_events}
            if store.get("sandbox.config", "webhook") is None:
                store.insert("sandbox.config", "webhook", saved)
            else:
                store.update("sandbox.config", "webhook", saved)
        return jsonify(_hook_dict())

    @app.get(f"{CONTROL_PREFIX}/deliveries")
    def deliveries() -> Response:
        wait = float(request.args.get("wait", 0) or 0)
        idle = sender.wait_idle(wait) if wait else sender.pending() == 0
        return jsonify(
            deliveries=sender.attempt_records(request.args.get("event_id")),
            pending=sender.pending(),
            idle=idle,
        )

    @app.post(f"{CONTROL_PREFIX}/sessions/<session_id>/complete")
    @app.post(f"{CONTROL_PREFIX}/sessions/<session_id>/pay")
    def control_complete(session_id: str) -> Response:
        body = _body()
        return _control(
            lambda: public(
                sandbox.complete_session(session_id, email=body.get("email"), name=body.get("name"))
            )
        )

    @app.post(f"{CONTROL_PREFIX}/sessions/<session_id>/decline")
    @app.post(f"{CONTROL_PREFIX}/sessions/<session_id>/fail")
    def control_decline(session_id: str) -> Response:
        return _control(lambda: public(sandbox.decline_session(session_id)))

    @app.post(f"{CONTROL_PREFIX}/sessions/<session_id>/expire-now")
    def control_expire(session_id: str) -> Response:
        return _control(lambda: public(sandbox.expire_now(session_id)))

    @app.get(f"{CONTROL_PREFIX}/events")
    def control_events() -> Response:
        """Every event, oldest first (``?type=`` filters), without a key."""
        wanted = request.args.getlist("type")
        events = list(reversed(sandbox.list_events(limit=10**6, types=wanted or None)[0]))
        return jsonify(events=events)

    @app.post(f"{CONTROL_PREFIX}/events/<event_id>/resend")
    def control_resend(event_id: str) -> Response:
        def run() -> dict[str, Any]:
            event = sandbox.get_event(event_id)
            return {"queued": sender.dispatch([event]) == 1, "event_id": event_id}

        return _control(run)

    @app.post(f"{CONTROL_PREFIX}/sweep")
    def control_sweep() -> Response:
        return jsonify(expired=sandbox.expire_due())

    return app
