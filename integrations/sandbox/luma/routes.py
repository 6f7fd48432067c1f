"""The Luma emulator as a Flask app: every API request is matched to an operation of
Luma's OpenAPI documents and validated against it before a handler runs, and every
answer is projected onto and validated against the operation's response schema.

- A path no document lists: 404. A documented operation the sandbox does not emulate: 501.
- A request that does not validate (a missing or mistyped parameter, a body with an
  undocumented property where the schema forbids them, a wrong enum value): 400 naming the
  field (the error body shape is undocumented, see :class:`state.ApiError`).
- An answer that does not validate is an emulator bug: 500 with the problems listed.

Sandbox controls (no API key): the common ``/_sandbox/{config,reset,health}`` plus
``POST /_sandbox/simulate/registrations`` ``{"event_id","count","seed"}`` -> ``{"ids"}``,
``POST /_sandbox/simulate/cancel`` and ``/_sandbox/simulate/checkin``
``{"event_id","guest_id"}``. Public pages: ``GET /<slug>`` (an event's ``url``).
"""

from __future__ import annotations

import hmac
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from html import escape
from typing import Any

from flask import Flask, Response, g, jsonify, request

from integrations.sandbox.common import (
    SandboxControls,
    SandboxStore,
    WebhookSender,
    install_controls,
    retry_after_header,
)
from integrations.sandbox.credentials import LUMA_API_KEY, LUMA_CALENDAR_ID
from integrations.sandbox.luma import views
from integrations.sandbox.luma.openapi import Operation, coerce_query, contract, project
from integrations.sandbox.luma.state import (
    ApiError,
    LumaSandbox,
    bad,
    decode_cursor,
    encode_cursor,
    now_iso,
    page_limit,
)
from integrations.sandbox.luma.webhooks import LumaWebhooks

log = logging.getLogger("sandbox.luma")

API_KEY_HEADER = "x-luma-api-key"
DEFAULT_ROOT = "http://127.0.0.1:8103"


@dataclass
class Call:
    """One validated request: typed query values, the JSON body, the sandbox's root URL."""

    query: dict[str, Any]
    body: dict[str, Any]
    root: str

    def q(self, *names: str) -> Any:
        return next((self.query[n] for n in names if self.query.get(n) not in (None, "")), None)

    def b(self, *names: str) -> Any:
        return next((self.body[n] for n in names if self.body.get(n) not in (None, "")), None)


Handler = Callable[[LumaSandbox, Call], Any]


def error_response(status: int, message: str, field: str | None = None) -> Response:
    """The one place that shapes an error body (Luma's is undocumented, Uncertain #7)."""
    body: dict[str, Any] = {"message": message}
    if field:
        body["field"] = field
    response = jsonify(body)
    response.status_code = status
    return response


def _required(value: Any, field: str) -> Any:
    if value in (None, ""):
        raise bad(f"{field} is required", field)
    return value


def _listing(entries: list[Any], has_more: bool, next_cursor: str | None) -> dict[str, Any]:
    """``next_cursor`` is a string in every document (never null): omitted when none."""
    out: dict[str, Any] = {"entries": entries, "has_more": has_more}
    if next_cursor is not None:
        out["next_cursor"] = next_cursor
    return out


# --------------------------------------------------------------------------- handlers

HANDLERS: dict[tuple[str, str], Handler] = {}
LEGACY, TRANSITIONAL = "/public/v1", "/v1"


def op(method: str, *paths: str) -> Callable[[Handler], Handler]:
    def register(fn: Handler) -> Handler:
        for path in paths:
            HANDLERS[(method, path)] = fn
        return fn

    return register


# -- legacy and transitional (same shapes, the transitional ones add the later names)
def _both(rule: str) -> tuple[str, str]:
    return LEGACY + rule, TRANSITIONAL + rule


@op("POST", *_both("/event/create"))
def event_create(sb: LumaSandbox, c: Call) -> Any:
    return {"api_id": sb.create_event(c.body)["api_id"]}


@op("POST", *_both("/event/update"))
def event_update(sb: LumaSandbox, c: Call) -> Any:
    sb.update_event(_required(c.b("event_api_id", "event_id"), "event_api_id"), c.body)
    return {}


@op("GET", *_both("/event/get"))
def event_get(sb: LumaSandbox, c: Call) -> Any:
    event = sb.require_event(c.q("api_id", "id", "event_api_id", "event_id"))
    return {"event": views.event_view(event, c.root), "hosts": [views.host_view()]}


@op("GET", *_both("/event/get-guests"))
def event_guests(sb: LumaSandbox, c: Call) -> Any:
    guests, has_more, cursor = sb.list_guests(
        _required(c.q("event_api_id", "event_id"), "event_api_id"),
        cursor=c.q("pagination_cursor"),
        limit=page_limit(c.q("pagination_limit"), sb.max_page_limit),
        approval_status=c.q("approval_status"),
        sort_column=c.q("sort_column"),
        sort_direction=c.q("sort_direction"),
    )
    view = views.guest_view
    entries = [{"api_id": g["api_id"], "guest": view(g, c.root)} for g in guests]
    return _listing(entries, has_more, cursor)


@op("GET", *_both("/event/get-guest"))
def event_guest(sb: LumaSandbox, c: Call) -> Any:
    guest = sb.find_guest(
        _required(c.q("event_api_id", "event_id"), "event_api_id"),
        guest_id=c.q("api_id", "id"),
        email=c.q("email"),
        proxy_key=c.q("proxy_key"),
    )
    return {"guest": views.guest_view(guest, c.root)}


@op("POST", *_both("/event/update-guest-status"))
def event_guest_status(sb: LumaSandbox, c: Call) -> Any:
    ref = c.body["guest"]
    sb.set_guest_status(
        c.body["event_api_id"],
        status=c.body["status"],
        guest_id=ref.get("api_id") if ref["type"] == "api_id" else None,
        email=ref.get("email") if ref["type"] == "email" else None,
        should_refund=bool(c.body.get("should_refund", False)),
    )
    return {}


@op("POST", *_both("/event/add-guests"))
def event_add_guests(sb: LumaSandbox, c: Call) -> Any:
    ticket = c.body.get("ticket") or {}
    sb.add_guests(
        c.body["event_api_id"], c.body["guests"], ticket_type_id=ticket.get("event_ticket_type_id")
    )
    return {}


@op("GET", *_both("/calendar/list-events"))
def calendar_events(sb: LumaSandbox, c: Call) -> Any:
    events, has_more, cursor = sb.list_events(
        cursor=c.q("pagination_cursor"),
        limit=page_limit(c.q("pagination_limit"), sb.max_page_limit),
        after=c.q("after"),
        before=c.q("before"),
        sort_direction=c.q("sort_direction"),
    )
    view = views.event_view
    entries = [{"api_id": e["api_id"], "event": view(e, c.root), "tags": []} for e in events]
    return _listing(entries, has_more, cursor)


@op("GET", *_both("/user/get-self"))
def user_self(sb: LumaSandbox, c: Call) -> Any:
    return {"user": views.host_view()}


# -- transitional ticket types
@op("GET", "/v1/event/ticket-types/list")
def t_ticket_types(sb: LumaSandbox, c: Call) -> Any:
    event_id = _required(c.q("event_api_id", "event_id"), "event_api_id")
    types = sb.ticket_types(event_id, include_hidden=_truthy(c.q("include_hidden")))
    return {"ticket_types": [views.ticket_type_transitional(t) for t in types]}


@op("GET", "/v1/event/ticket-types/get")
def t_ticket_type(sb: LumaSandbox, c: Call) -> Any:
    ticket_type = sb.require_ticket_type(
        _required(c.q("event_ticket_type_api_id", "id"), "event_ticket_type_api_id")
    )
    return {"ticket_type": views.ticket_type_transitional(ticket_type)}


@op("POST", "/v1/event/ticket-types/create")
def t_ticket_type_create(sb: LumaSandbox, c: Call) -> Any:
    ticket_type = sb.create_ticket_type(c.body["event_api_id"], c.body)
    return {"ticket_type": views.ticket_type_transitional(ticket_type)}


@op("POST", "/v1/event/ticket-types/update")
def t_ticket_type_update(sb: LumaSandbox, c: Call) -> Any:
    ticket_type = sb.update_ticket_type(c.body["event_ticket_type_api_id"], c.body)
    return {"ticket_type": views.ticket_type_transitional(ticket_type)}


# -- current
@op("POST", "/v1/events/create")
def events_create(sb: LumaSandbox, c: Call) -> Any:
    return {"id": sb.create_event(c.body)["api_id"]}


@op("POST", "/v1/events/update")
def events_update(sb: LumaSandbox, c: Call) -> Any:
    sb.update_event(c.body["event_id"], c.body)
    return {}


@op("GET", "/v1/events/get")
def events_get(sb: LumaSandbox, c: Call) -> Any:
    return views.event_view(sb.require_event(c.q("event_id")), c.root)


@op("GET", "/v1/calendars/events/list")
def calendars_events(sb: LumaSandbox, c: Call) -> Any:
    platforms = c.query.get("platforms") or ["luma"]
    events, has_more, cursor = sb.list_events(
        cursor=c.q("pagination_cursor"),
        limit=page_limit(c.q("pagination_limit"), sb.max_page_limit),
        after=c.q("after"),
        before=c.q("before"),
        sort_direction=c.q("sort_direction"),
    )
    if "luma" not in platforms:  # the sandbox holds no external events
        events, has_more, cursor = [], False, None
    return _listing([views.event_view(e, c.root) for e in events], has_more, cursor)


@op("GET", "/v1/events/guests/list")
def guests_list(sb: LumaSandbox, c: Call) -> Any:
    guests, has_more, cursor = sb.list_guests(
        c.q("event_id"),
        cursor=c.q("pagination_cursor"),
        limit=page_limit(c.q("pagination_limit"), sb.max_page_limit),
        approval_status=c.q("approval_status"),
        sort_column=c.q("sort_column"),
        sort_direction=c.q("sort_direction"),
    )
    return _listing([views.guest_view(g, c.root) for g in guests], has_more, cursor)


@op("GET", "/v1/events/guests/get")
def guests_get(sb: LumaSandbox, c: Call) -> Any:
    return views.guest_view(sb.find_guest(c.q("event_id"), guest_id=c.q("id")), c.root)


@op("POST", "/v1/events/guests/update-status")
def guests_status(sb: LumaSandbox, c: Call) -> Any:
    sb.set_guest_status(
        c.body["event_id"],
        guest_id=c.body["guest_id"],
        status=c.body["status"],
        should_refund=bool(c.body.get("should_refund", False)),
    )
    return {}


@op("POST", "/v1/events/guests/add")
def guests_add(sb: LumaSandbox, c: Call) -> Any:
    ticket = c.body.get("ticket") or {}
    sb.add_guests(
        c.body["event_id"],
        c.body["guests"],
        c.body.get("approval_status"),
        ticket_type_id=ticket.get("event_ticket_type_id"),
    )
    return {}


@op("GET", "/v1/users/get-self")
def users_self(sb: LumaSandbox, c: Call) -> Any:
    return views.host_view()


@op("GET", "/v1/events/ticket-types/list")
def ticket_types(sb: LumaSandbox, c: Call) -> Any:
    types = sb.ticket_types(c.q("event_id"), include_hidden=_truthy(c.q("include_hidden")))
    return {"entries": [views.ticket_type_view(t) for t in types]}


@op("GET", "/v1/events/ticket-types/get")
def ticket_type_get(sb: LumaSandbox, c: Call) -> Any:
    return views.ticket_type_view(sb.require_ticket_type(c.q("event_ticket_type_id")))


@op("POST", "/v1/events/ticket-types/create")
def ticket_type_create(sb: LumaSandbox, c: Call) -> Any:
    return views.ticket_type_view(sb.create_ticket_type(c.body["event_id"], c.body))


@op("POST", "/v1/events/ticket-types/update")
def ticket_type_update(sb: LumaSandbox, c: Call) -> Any:
    return views.ticket_type_view(sb.update_ticket_type(c.body["event_ticket_type_id"], c.body))


# -- webhooks (current)
@op("POST", "/v2/webhooks/create")
def webhook_create(sb: LumaSandbox, c: Call) -> Any:
    return sb.webhooks.create(c.body["url"], c.body["event_types"], now_iso())


@op("GET", "/v2/webhooks/get")
def webhook_get(sb: LumaSandbox, c: Call) -> Any:
    hook = sb.webhooks.get(c.q("id"))
    if hook is None:
        raise ApiError(404, f"Webhook {c.q('id')} not found")
    return hook


@op("GET", "/v1/webhooks/list")
def webhook_list(sb: LumaSandbox, c: Call) -> Any:
    hooks = sb.webhooks.all()
    limit = page_limit(c.q("pagination_limit"), sb.max_page_limit)
    offset = decode_cursor(c.q("pagination_cursor"), "w") or 0
    page = hooks[offset : offset + limit]
    has_more = offset + limit < len(hooks)
    return _listing(page, has_more, encode_cursor("w", offset + limit) if has_more else None)


@op("POST", "/v1/webhooks/delete")
def webhook_delete(sb: LumaSandbox, c: Call) -> Any:
    if not sb.webhooks.delete(c.body["id"]):
        raise ApiError(404, f"Webhook {c.body['id']} not found")
    return {}


def _truthy(value: Any) -> bool:
    return str(value).lower() in ("true", "1", "yes") if value is not None else False


# --------------------------------------------------------------------------- the app


def create_app(
    state_path: str | None = None,
    *,
    api_keys: tuple[str, ...] = (LUMA_API_KEY,),
    calendar_id: str = LUMA_CALENDAR_ID,
    max_page_limit: int = 100,
) -> Flask:
    """The Luma emulator; ``app.extensions["sandbox"]`` is its :class:`LumaSandbox`
    (``.store``, ``.controls``, ``.sender``, ``.webhooks``, ``.simulate_registrations``)."""
    app = Flask("luma-sandbox")
    store = SandboxStore(state_path)
    controls = SandboxControls()
    sender = WebhookSender(controls)
    hooks = LumaWebhooks(store, sender, calendar_id=calendar_id)
    sandbox = LumaSandbox(store, hooks, calendar_id=calendar_id, max_page_limit=max_page_limit)
    app.extensions["sandbox"] = sandbox
    roots = {"root": DEFAULT_ROOT}
    hooks.render_event = lambda e: views.event_view(e, roots["root"])
    hooks.render_guest = lambda g_: views.guest_view(g_, roots["root"])
    spec = contract()

    install_controls(
        app,
        controls,
        rate_limit_key=lambda: request.headers.get(API_KEY_HEADER) or request.remote_addr or "-",
        rate_limited_response=_rate_limited,
        server_error_response=lambda status: error_response(
            status, "Internal server error" if status == 500 else "Service unavailable"
        ),
    )

    @app.before_request
    def _authenticate_and_validate() -> Response | None:
        roots["root"] = request.host_url.rstrip("/")
        if request.path.startswith("/_sandbox"):
            return None
        operation = spec.operation(request.method, request.path)
        if operation is None:
            if spec.has_path(request.path):
                return error_response(405, "Method not allowed")
            if request.method == "GET" and _public_page(sandbox, request.path) is not None:
                return None  # a public event page, no key needed
            return error_response(404, "Not found")
        given = request.headers.get(API_KEY_HEADER, "")
        if not given or not any(hmac.compare_digest(given, key) for key in api_keys):
            return error_response(401, "Invalid API key")
        if (operation.method, operation.path) not in HANDLERS:
            return error_response(501, f"{operation.path} is not emulated by the sandbox")
        raw = request.get_data()
        body: Any = None
        if raw.strip():
            try:
                body = json.loads(raw)
            except ValueError:
                return error_response(400, "Request body must be JSON")
        query = {k: request.args.getlist(k) for k in request.args}
        problems = spec.request_errors(operation, query, body, has_body=bool(raw.strip()))
        if problems:
            first = problems[0]
            return error_response(400, "; ".join(map(str, problems[:5])), first.field)
        g.luma_call = (operation, Call(_typed(operation, query), body or {}, roots["root"]))
        return None

    @app.route("/<path:anything>", methods=["GET", "POST"])
    def _dispatch(anything: str) -> Response:
        del anything
        if "luma_call" not in g:  # a public page (the before_request let it through)
            return _page(_public_page(sandbox, request.path))
        operation, call = g.luma_call
        result = HANDLERS[(operation.method, operation.path)](sandbox, call)
        return _answer(operation, result)

    def _answer(operation: Operation, result: Any) -> Response:
        shown = project(result, operation.response_schema())
        problems = spec.response_errors(operation, shown)
        if problems:
            log.error("luma sandbox answer violates %s: %s", operation.path, problems[:5])
            return error_response(
                500,
                f"sandbox answer does not match the contract: {'; '.join(map(str, problems[:5]))}",
            )
        return jsonify(shown)

    @app.errorhandler(ApiError)
    def _api_error(exc: ApiError) -> Response:
        return error_response(exc.status, exc.message, exc.field)

    @app.errorhandler(404)
    def _not_found(_exc: Exception) -> Response:
        return error_response(404, "Not found")

    @app.errorhandler(405)
    def _method(_exc: Exception) -> Response:
        return error_response(405, "Method not allowed")

    @app.errorhandler(500)
    def _internal(_exc: Exception) -> Response:
        return error_response(500, "Internal server error")

    _install_simulation(app, sandbox)
    return app


def _typed(operation: Operation, query: dict[str, list[str]]) -> dict[str, Any]:
    """Query values typed as the operation's parameters declare (validated already)."""
    schemas = {p["name"]: p.get("schema") or {} for p in operation.parameters}
    return {k: coerce_query(v, schemas.get(k, {})) for k, v in query.items()}


def _public_page(sandbox: LumaSandbox, path: str) -> dict[str, Any] | None:
    slug = path.strip("/")
    if not slug or "/" in slug:
        return None
    return sandbox.event_by_slug(slug)


def _page(event: dict[str, Any] | None) -> Response:
    if event is None:
        return error_response(404, "Not found")
    html = (
        f"<!doctype html><title>{escape(event['name'])}</title>"
        f"<h1>{escape(event['name'])}</h1><p>{escape(event['start_at'])} "
        f"({escape(event['timezone'] or '')})</p><p>Luma sandbox event page</p>"
    )
    return Response(html, mimetype="text/html")


def _rate_limited(wait: float) -> Response:
    response = error_response(429, "Rate limit exceeded, please slow down")
    response.headers["Retry-After"] = retry_after_header(wait)
    return response


def _install_simulation(app: Flask, sandbox: LumaSandbox) -> None:
    def body() -> dict[str, Any]:
        data = request.get_json(silent=True)
        if not isinstance(data, dict):
            raise bad("Request body must be a JSON object")
        return data

    def text(data: dict[str, Any], name: str) -> str:
        value = data.get(name)
        if not isinstance(value, str) or not value.strip():
            raise bad(f"{name} is required", name)
        return value.strip()

    @app.post("/_sandbox/simulate/registrations")
    def simulate_registrations() -> Response:
        data = body()
        count = data.get("count", 1)
        if isinstance(count, bool) or not isinstance(count, int) or not 0 <= count <= 10_000:
            raise bad("count must be an integer between 0 and 10000", "count")
        seed = data.get("seed")
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
            raise bad("seed must be an integer or null", "seed")
        return jsonify(ids=sandbox.simulate_registrations(text(data, "event_id"), count, seed))

    @app.post("/_sandbox/simulate/cancel")
    def simulate_cancel() -> Response:
        data = body()
        guest = sandbox.simulate_cancel(text(data, "event_id"), text(data, "guest_id"))
        return jsonify(guest=views.guest_view(guest, request.host_url))

    @app.post("/_sandbox/simulate/checkin")
    def simulate_checkin() -> Response:
        data = body()
        guest = sandbox.simulate_check_in(text(data, "event_id"), text(data, "guest_id"))
        return jsonify(guest=views.guest_view(guest, request.host_url))
