"""The Eventbrite v3 emulator's HTTP surface: the real paths under ``/v3`` (all ending in
``/``; writes are POST, never PUT), Bearer or ``?token=`` auth, the legacy user endpoints
answered as the live API answers them, the sandbox's public event pages under ``/e/`` and
the ``/_sandbox`` controls and simulations."""

from __future__ import annotations

import html
from collections.abc import Callable
from typing import Any

from flask import Flask, Response, jsonify, request
from werkzeug.exceptions import HTTPException

from integrations.sandbox.common import (
    SandboxControls,
    SandboxStore,
    WebhookSender,
    install_controls,
    retry_after_header,
)
from integrations.sandbox.credentials import EVENTBRITE_ORGANIZATION_ID, EVENTBRITE_TOKEN
from integrations.sandbox.eventbrite.state import API, USER_ID, EventbriteSandbox, _paginate_list
from integrations.sandbox.eventbrite.validation import (
    ApiError,
    bad_argument,
    id_list,
    legacy_endpoint,
    nest_form,
    not_found,
)


def error_response(exc: ApiError) -> Response:
    resp = jsonify(exc.body())
    resp.status_code = exc.status
    for key, value in exc.headers.items():
        resp.headers[key] = value
    return resp


def _body() -> dict[str, Any]:
    data = request.get_json(silent=True)
    if isinstance(data, dict):
        return data
    if request.form:
        return nest_form(list(request.form.lists()))
    return {}


def _token_of_request() -> str | None:
    header = request.headers.get("Authorization", "")
    if header.lower().startswith("bearer "):
        return header[7:].strip() or None
    return request.args.get("token") or None


def _event_page(sandbox: EventbriteSandbox, event: dict[str, Any]) -> str:
    """A small public page for a sandbox event: what a buyer would see, minus checkout."""
    rendered = sandbox.render_event(event, expand={"ticket_classes"})
    rows = "".join(
        f"<li>{html.escape(tc['name'])}: "
        f"{'free' if tc['free'] else html.escape(tc['cost']['display'])} "
        f"({html.escape(tc['on_sale_status'])})</li>"
        for tc in rendered["ticket_classes"]
        if not tc["hidden"]
    )
    start = rendered["start"]
    # Text only (escaped): the sandbox does not sanitize HTML the way Eventbrite does.
    return (
        "<!doctype html><html><head><meta charset='utf-8'>"
        f"<title>{html.escape(rendered['name']['text'])} | Eventbrite sandbox</title></head>"
        f"<body><h1>{html.escape(rendered['name']['text'])}</h1>"
        f"<p>{html.escape(start['local'])} ({html.escape(start['timezone'])})"
        f" - status: {html.escape(rendered['status'])}</p>"
        f"<p>{html.escape(rendered['description']['text'] or '')}</p>"
        f"<ul>{rows}</ul></body></html>"
    )


def create_app(
    state_path: str | None = None,
    *,
    tokens: tuple[str, ...] = (EVENTBRITE_TOKEN,),
    organization_id: str = EVENTBRITE_ORGANIZATION_ID,
    public_base_url: str | None = None,
) -> Flask:
    """The Eventbrite v3 emulator as a Flask app (``app.extensions["sandbox"]``)."""
    app = Flask("sandbox-eventbrite")
    app.json.sort_keys = False  # type: ignore[attr-defined]
    store = SandboxStore(state_path)
    controls = SandboxControls()
    sender = WebhookSender(controls)
    sandbox = EventbriteSandbox(
        store, controls, sender, organization_id=organization_id, public_base_url=public_base_url
    )
    app.extensions["sandbox"] = sandbox
    accepted = set(tokens)

    def rate_limited(wait: float) -> Response:
        # [E1] "Common Errors": 429 HIT_RATE_LIMIT.
        return error_response(
            ApiError(
                429,
                "HIT_RATE_LIMIT",
                "Hourly rate limit has been reached for this token.",
                headers={"Retry-After": retry_after_header(wait)},
            )
        )

    def server_error(status: int) -> Response:
        # [E1] "Common Errors" has 500 INTERNAL_ERROR only; other 5xx are a proxy's.
        error = {503: "SERVICE_UNAVAILABLE", 502: "BAD_GATEWAY"}.get(status, "INTERNAL_ERROR")
        return error_response(ApiError(status, error, "Unhandled error occurred in Eventbrite."))

    install_controls(
        app,
        controls,
        rate_limit_key=lambda: _token_of_request() or request.remote_addr or "anonymous",
        rate_limited_response=rate_limited,
        server_error_response=server_error,
    )

    @app.before_request
    def _authenticate() -> Response | None:
        if not request.path.startswith(API + "/"):
            return None
        sandbox.remember_base_url()
        if _token_of_request() not in accepted:
            return error_response(ApiError(401, "NO_AUTH", "Authentication not provided."))
        return None

    @app.errorhandler(ApiError)
    def _api_error(exc: ApiError) -> Response:
        return error_response(exc)

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception) -> Response:
        if isinstance(exc, HTTPException):
            if exc.code == 404:
                return error_response(not_found())
            if exc.code == 405:
                return error_response(
                    ApiError(405, "METHOD_NOT_ALLOWED", "Method is not allowed for this endpoint.")
                )
            return error_response(ApiError(exc.code or 500, "HTTP_ERROR", exc.description or ""))
        app.logger.exception("sandbox error on %s %s", request.method, request.path)
        return error_response(ApiError(500, "INTERNAL_ERROR", "An unexpected error occurred."))

    def args() -> dict[str, str]:
        return {k: val for k, val in request.args.items() if k != "token"}

    def expand() -> set[str]:
        return set(id_list(request.args.get("expand")))

    def route(rule: str, methods: list[str]) -> Callable:
        return app.route(API + rule, methods=methods)

    # users and organizations
    @route("/users/me/", ["GET"])
    def users_me() -> Response:
        return jsonify(
            id=USER_ID,
            name="Sandbox Organizer",
            first_name="Sandbox",
            last_name="Organizer",
            is_public=False,
            image_id=None,
            emails=[{"email": "organizer@example.com", "verified": True, "primary": True}],
        )

    @route("/users/me/organizations/", ["GET"])
    def users_me_organizations() -> Response:
        orgs = [
            {"id": organization_id, "name": "Sandbox Community", "vertical": "default",
             "image_id": None}
        ]  # fmt: skip
        page, pagination = _paginate_list(orgs, "orgs", args().get("continuation"))
        return jsonify(organizations=page, pagination=pagination)

    # legacy user endpoints (retired 2020-06-01): the live API's documented 403
    @route("/events/", ["POST"])
    def legacy_create_event() -> Response:
        raise legacy_endpoint()

    @route("/webhooks/", ["GET", "POST"])
    def legacy_webhooks() -> Response:
        raise legacy_endpoint()

    @route("/checkout_settings/", ["GET", "POST"])
    def legacy_checkout_settings() -> Response:
        raise legacy_endpoint()

    # events
    @route("/organizations/<org_id>/events/", ["GET", "POST"])
    def org_events(org_id: str) -> Response:
        if request.method == "POST":
            return jsonify(sandbox.create_event(org_id, _body()))
        return jsonify(sandbox.list_org_events(org_id, args()))

    @route("/events/<event_id>/", ["GET", "POST", "DELETE"])
    def event(event_id: str) -> Response:
        if request.method == "POST":
            return jsonify(sandbox.update_event(event_id, _body()))
        if request.method == "DELETE":
            return jsonify(sandbox.delete_event(event_id))
        return jsonify(sandbox.render_event(sandbox.event(event_id), expand=expand()))

    @route("/events/<event_id>/publish/", ["POST"])
    def publish(event_id: str) -> Response:
        return jsonify(sandbox.publish(event_id))

    @route("/events/<event_id>/unpublish/", ["POST"])
    def unpublish(event_id: str) -> Response:
        return jsonify(sandbox.unpublish(event_id))

    @route("/events/<event_id>/cancel/", ["POST"])
    def cancel(event_id: str) -> Response:
        return jsonify(sandbox.cancel(event_id))

    @route("/events/<event_id>/capacity_tier/", ["GET", "POST"])
    def capacity_tier(event_id: str) -> Response:
        if request.method == "POST":
            return jsonify(sandbox.set_capacity_tier(event_id, _body()))
        return jsonify(sandbox.capacity_tier(event_id))

    # checkout settings (payment options)
    @route("/organizations/<org_id>/checkout_settings/", ["GET", "POST"])
    def org_checkout_settings(org_id: str) -> Response:
        if request.method == "POST":
            return jsonify(sandbox.create_checkout_settings(org_id, _body()))
        return jsonify(sandbox.list_checkout_settings(org_id, args()))

    @route("/events/<event_id>/checkout_settings/", ["GET", "POST"])
    def event_checkout_settings(event_id: str) -> Response:
        if request.method == "POST":
            return jsonify(sandbox.set_event_checkout_settings(event_id, _body()))
        sandbox.event(event_id)
        return jsonify(checkout_settings=sandbox.event_checkout_settings(event_id))

    # ticket classes
    @route("/events/<event_id>/ticket_classes/", ["GET", "POST"])
    def ticket_classes(event_id: str) -> Response:
        if request.method == "POST":
            return jsonify(sandbox.create_ticket_class(event_id, _body()))
        return jsonify(sandbox.list_ticket_classes(event_id, args()))

    @route("/events/<event_id>/ticket_classes/<tc_id>/", ["GET", "POST"])
    def ticket_class(event_id: str, tc_id: str) -> Response:
        if request.method == "POST":
            return jsonify(sandbox.update_ticket_class(event_id, tc_id, _body()))
        sandbox.event(event_id)
        return jsonify(sandbox.render_ticket_class(sandbox.ticket_class(event_id, tc_id)))

    # orders and attendees
    @route("/events/<event_id>/orders/", ["GET"])
    def event_orders(event_id: str) -> Response:
        return jsonify(sandbox.list_orders(event_id, args()))

    @route("/orders/<order_id>/", ["GET"])
    def order(order_id: str) -> Response:
        return jsonify(sandbox.render_order(sandbox.order(order_id), expand=expand()))

    @route("/events/<event_id>/attendees/", ["GET"])
    def event_attendees(event_id: str) -> Response:
        return jsonify(sandbox.list_attendees(event_id, args()))

    @route("/events/<event_id>/attendees/<attendee_id>/", ["GET"])
    def event_attendee(event_id: str, attendee_id: str) -> Response:
        return jsonify(sandbox.render_attendee(sandbox.attendee(event_id, attendee_id)))

    # webhooks
    @route("/organizations/<org_id>/webhooks/", ["GET", "POST"])
    def org_webhooks(org_id: str) -> Response:
        if request.method == "POST":
            return jsonify(sandbox.create_webhook(org_id, _body()))
        return jsonify(sandbox.list_webhooks(org_id, args()))

    @route("/webhooks/<hook_id>/", ["GET", "DELETE"])
    def webhook(hook_id: str) -> Response:
        if request.method == "DELETE":
            return jsonify(sandbox.delete_webhook(hook_id))
        doc = store.get("webhook", hook_id)
        if doc is None:
            raise not_found("The webhook you requested does not exist.")
        return jsonify(sandbox.render_webhook(doc))

    # venues and discounts
    @route("/organizations/<org_id>/venues/", ["GET", "POST"])
    def org_venues(org_id: str) -> Response:
        if request.method == "POST":
            return jsonify(sandbox.create_venue(org_id, _body()))
        return jsonify(sandbox.list_venues(org_id, args()))

    @route("/venues/<venue_id>/", ["GET"])
    def venue(venue_id: str) -> Response:
        doc = store.get("venue", venue_id)
        if doc is None:
            raise not_found("The venue you requested does not exist.")
        return jsonify(sandbox.render_venue(doc))

    @route("/organizations/<org_id>/discounts/", ["GET", "POST"])
    def org_discounts(org_id: str) -> Response:
        if request.method == "POST":
            return jsonify(sandbox.create_discount(org_id, _body()))
        return jsonify(sandbox.list_discounts(org_id, args()))

    @route("/discounts/<discount_id>/", ["GET", "POST"])
    def discount(discount_id: str) -> Response:
        if request.method == "POST":
            return jsonify(sandbox.update_discount(discount_id, _body()))
        return jsonify(sandbox.render_discount(sandbox.discount(discount_id)))

    # the sandbox's public event pages (what an event's ``url`` points at)
    @app.get("/e/<slug>")
    def public_event_page(slug: str) -> tuple[str, int, dict[str, str]]:
        _, _, event_id = slug.rpartition("-tickets-")
        doc = store.get("event", event_id) if event_id.isdigit() else None
        if doc is None or doc["status"] in ("draft", "deleted"):
            return "<!doctype html><h1>Event not found</h1>", 404, {"Content-Type": "text/html"}
        return _event_page(sandbox, doc), 200, {"Content-Type": "text/html; charset=utf-8"}

    _install_simulations(app, sandbox)
    return app


def _install_simulations(app: Flask, sandbox: EventbriteSandbox) -> None:
    """Sandbox-only: what buyers and door staff would do on Eventbrite itself."""

    @app.post("/_sandbox/simulate/registrations")
    def simulate_registrations() -> Response:
        data = request.get_json(force=True, silent=True) or {}
        if not data.get("event_id"):
            raise bad_argument("event_id", "MISSING")
        ids = sandbox.simulate_registrations(
            str(data["event_id"]),
            int(data.get("count", 1)),
            seed=data.get("seed"),
            paid_ratio=data.get("paid_ratio"),
            access_code=data.get("access_code"),
        )
        return jsonify(ids=ids)

    @app.post("/_sandbox/simulate/refund")
    def simulate_refund() -> Response:
        data = request.get_json(force=True, silent=True) or {}
        return jsonify(sandbox.refund(str(data.get("order_id"))))

    @app.post("/_sandbox/simulate/cancel")
    def simulate_cancel() -> Response:
        data = request.get_json(force=True, silent=True) or {}
        return jsonify(sandbox.cancel_attendee(str(data.get("attendee_id"))))

    @app.post("/_sandbox/simulate/checkin")
    def simulate_checkin() -> Response:
        data = request.get_json(force=True, silent=True) or {}
        return jsonify(sandbox.check_in(str(data.get("attendee_id"))))
