"""The Meetup emulator's Flask app: routes, faults, and the sandbox-only controls."""

from __future__ import annotations

import argparse
import html
from collections.abc import Collection
from datetime import timedelta

from flask import Flask, Response, jsonify, request

from integrations.sandbox.common import (
    SandboxControls,
    SandboxStore,
    install_controls,
    iso_z,
    retry_after_header,
    serve_forever,
    utcnow,
)
from integrations.sandbox.credentials import (
    MEETUP_CLIENT_ID,
    MEETUP_CLIENT_SECRET,
    MEETUP_GROUP_URLNAME,
    MEETUP_REDIRECT_URI,
)
from integrations.sandbox.meetup.oauth import OAuthServer, install_oauth_routes
from integrations.sandbox.meetup.resolvers import request_error, run_graphql
from integrations.sandbox.meetup.state import MeetupSandbox


def _json(body: dict, status: int = 200) -> Response:
    resp = jsonify(body)
    resp.status_code = status
    return resp


def create_app(
    state_path: str | None = None,
    *,
    client_id: str = MEETUP_CLIENT_ID,
    client_secret: str = MEETUP_CLIENT_SECRET,
    redirect_uris: Collection[str] = (MEETUP_REDIRECT_URI,),
    group_urlname: str = MEETUP_GROUP_URLNAME,
    access_token_ttl: int = 3600,
    public_base_url: str | None = None,
) -> Flask:
    """The Meetup emulator as a Flask app; state in SQLite at ``state_path`` (memory if None).

    ``redirect_uris`` are the OAuth client's registered redirect URIs. Event and member
    links point at ``public_base_url`` (default: the address the request came to), so a
    sandbox event's ``eventUrl`` opens this emulator's own page, never meetup.com.
    """
    app = Flask("meetup_sandbox")
    app.json.sort_keys = False  # type: ignore[attr-defined]  # GraphQL keeps field order
    store = SandboxStore(state_path)
    controls = SandboxControls()
    oauth = OAuthServer(
        store,
        client_id=client_id,
        client_secret=client_secret,
        redirect_uris=redirect_uris,
        access_token_ttl=access_token_ttl,
    )
    sandbox = MeetupSandbox(store, controls, oauth, group_urlname=group_urlname)
    app.extensions["sandbox"] = sandbox

    def bearer() -> str | None:
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        return token.strip() if scheme.lower() == "bearer" and token.strip() else None

    def rate_limited(wait: float) -> Response:
        resp = _json(
            {
                "errors": [
                    {
                        "message": "Too many requests, please try again shortly.",
                        "extensions": {
                            "code": "RATE_LIMITED",
                            "resetAt": iso_z(utcnow() + timedelta(seconds=wait)),
                        },
                    }
                ]
            },
            429,
        )
        resp.headers["Retry-After"] = retry_after_header(wait)
        return resp

    def server_error(status: int) -> Response:
        return _json(
            {
                "errors": [
                    {
                        "message": "Internal server error",
                        "extensions": {"code": "INTERNAL_SERVER_ERROR"},
                    }
                ]
            },
            status,
        )

    install_controls(
        app,
        controls,
        rate_limit_key=lambda: bearer() or request.remote_addr or "anonymous",
        rate_limited_response=rate_limited,
        server_error_response=server_error,
    )
    install_oauth_routes(app, oauth)

    def base() -> str:
        return (public_base_url or request.host_url).rstrip("/")

    # ------------------------------------------------------------------ GraphQL
    @app.post("/gql-ext")
    @app.post("/gql")  # the endpoint before Feb 2025 [M2]
    def graphql() -> Response:
        if not sandbox.token_valid(bearer()):
            return _json(
                {
                    "errors": [
                        {
                            "message": "Invalid or expired token",
                            "extensions": {"code": "UNAUTHENTICATED"},
                        }
                    ]
                },
                401,
            )
        body = request.get_json(silent=True)
        if not isinstance(body, dict) or not isinstance(body.get("query"), str):
            return _json(
                {
                    "errors": [
                        request_error(
                            "Request body must be JSON with a 'query' string", "InvalidSyntax"
                        )
                    ]
                },
                400,
            )
        variables = body.get("variables")
        if variables is not None and not isinstance(variables, dict):
            return _json(
                {"errors": [request_error("'variables' must be an object", "ValidationError")]},
                400,
            )
        operation = body.get("operationName") or None
        return _json(
            run_graphql(sandbox, body["query"], variables, operation, public_base_url=base())
        )

    # ------------------------------------------------------------------ public pages
    @app.get("/<urlname>/events/<event_id>/")
    def event_page(urlname: str, event_id: str) -> Response:
        """The page an event's ``eventUrl`` opens (a plain page, no API)."""
        event = sandbox.get_event(event_id)
        if event is None or urlname != sandbox.group_urlname:
            return Response("Event not found", status=404, mimetype="text/plain")
        page = (
            "<!doctype html><meta charset='utf-8'>"
            f"<title>{html.escape(event['title'])} | Meetup sandbox</title>"
            f"<h1>{html.escape(event['title'])}</h1>"
            f"<p>{html.escape(event['dateTime'])} &middot; {html.escape(sandbox.status(event))}</p>"
            f"<div>{event['description']}</div>"  # the organizer's own simple HTML
        )
        return Response(page, mimetype="text/html")

    # ------------------------------------------------------------------ sandbox controls
    @app.post("/_sandbox/simulate/registrations")
    def simulate_registrations() -> Response:
        body = request.get_json(force=True, silent=True) or {}
        try:
            ids = sandbox.simulate_registrations(
                str(body.get("event_id", "")), int(body.get("count", 1)), body.get("seed")
            )
        except KeyError as exc:
            return _json({"error": str(exc.args[0])}, 404)
        except (ValueError, TypeError) as exc:
            return _json({"error": str(exc)}, 409)
        return jsonify({"ids": ids})

    @app.post("/_sandbox/simulate/status")
    def simulate_status() -> Response:
        body = request.get_json(force=True, silent=True) or {}
        try:
            rsvp = sandbox.set_rsvp_status(str(body.get("rsvp_id", "")), str(body.get("status")))
        except KeyError as exc:
            return _json({"error": str(exc.args[0])}, 404)
        except ValueError as exc:
            return _json({"error": str(exc)}, 400)
        return jsonify({"rsvp": rsvp})

    @app.post("/_sandbox/oauth/revoke")
    def revoke() -> Response:
        body = request.get_json(force=True, silent=True) or {}
        return jsonify({"revoked": sandbox.revoke(str(body.get("refresh_token", "")))})

    return app


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Meetup sandbox emulator")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8801)
    parser.add_argument("--state", default=None, help="SQLite file (default: in memory)")
    parser.add_argument("--access-token-ttl", type=int, default=3600)
    args = parser.parse_args(argv)
    serve_forever(
        create_app(args.state, access_token_ttl=args.access_token_ttl), args.host, args.port
    )
