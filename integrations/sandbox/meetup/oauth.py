"""Meetup's OAuth2 server as the emulator plays it (CONTRACTS.md Part 1 section 1, [M5]).

- ``GET /oauth2/authorize?client_id&response_type=code&redirect_uri[&state]``: auto-consents
  and redirects to ``redirect_uri?code=..&state=..``. The ``redirect_uri`` must be the one
  registered for the client (exact match): any other is refused with a 400 and *no*
  redirect, as Meetup does and as RFC 6749 4.1.2.1 requires (a server never sends a code
  to an unregistered address).
- ``POST /oauth2/access`` (form): ``authorization_code`` (the ``redirect_uri`` must be the
  registered one and the one the code was issued for) and ``refresh_token`` (tokens rotate:
  a refresh token works once). Errors are OAuth-style ``{error, error_description}``.
"""

from __future__ import annotations

import secrets
import string
import time
from collections.abc import Collection
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from flask import Flask, Response, jsonify, redirect, request

from integrations.sandbox.common import SandboxStore

CODE_TTL_SECONDS = 120


def random_token(length: int = 32) -> str:
    alphabet = string.ascii_lowercase + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(length))


class OAuthServer:
    """Codes and tokens, kept in the emulator's store so a restart keeps them."""

    def __init__(
        self,
        store: SandboxStore,
        *,
        client_id: str,
        client_secret: str,
        redirect_uris: Collection[str],
        access_token_ttl: int,
    ) -> None:
        self.store = store
        self.client_id = client_id
        self.client_secret = client_secret
        self.redirect_uris = frozenset(redirect_uris)
        self.access_token_ttl = access_token_ttl

    def registered(self, redirect_uri: str | None) -> bool:
        return redirect_uri is not None and redirect_uri in self.redirect_uris

    def issue_code(self, redirect_uri: str) -> str:
        code = random_token(32)
        self.store.insert(
            "oauth_code",
            code,
            {
                "client_id": self.client_id,
                "redirect_uri": redirect_uri,
                "expires_at": time.time() + CODE_TTL_SECONDS,
                "used": False,
            },
        )
        return code

    def issue_tokens(self) -> dict[str, Any]:
        access, refresh = random_token(32), random_token(32)
        with self.store.atomic():
            self.store.insert(
                "access_token",
                access,
                {
                    "id": access,
                    "expires_at": time.time() + self.access_token_ttl,
                    "refresh_token": refresh,
                    "revoked": False,
                },
            )
            self.store.insert("refresh_token", refresh, {"revoked": False})
        return {
            "access_token": access,
            "refresh_token": refresh,
            "token_type": "bearer",
            "expires_in": self.access_token_ttl,
        }

    def exchange_code(self, code: str, redirect_uri: str | None) -> dict[str, Any] | str:
        """Tokens, or the invalid_grant description."""
        with self.store.atomic():
            doc = self.store.get("oauth_code", code) if code else None
            if doc is None:
                return "Invalid authorization code"
            if doc["used"]:
                return "Authorization code has already been used"
            if doc["expires_at"] < time.time():
                return "Authorization code has expired"
            if redirect_uri != doc["redirect_uri"] or not self.registered(redirect_uri):
                return "redirect_uri does not match the registered redirect URI"
            doc["used"] = True
            self.store.update("oauth_code", code, doc)
            return self.issue_tokens()

    def refresh(self, refresh_token: str) -> dict[str, Any] | str:
        with self.store.atomic():
            doc = self.store.get("refresh_token", refresh_token) if refresh_token else None
            if doc is None or doc["revoked"]:
                return "Invalid refresh token"
            doc["revoked"] = True  # rotation: a refresh token works once
            self.store.update("refresh_token", refresh_token, doc)
            return self.issue_tokens()

    def revoke(self, refresh_token: str) -> int:
        """Revoke a refresh token and every access token issued with it."""
        revoked = 0
        with self.store.atomic():
            doc = self.store.get("refresh_token", refresh_token)
            if doc is None:
                return 0
            doc["revoked"] = True
            self.store.update("refresh_token", refresh_token, doc)
            revoked += 1
            for _, access in self.store.page(
                "access_token",
                limit=10**9,
                where="json_extract(data, '$.refresh_token') = ?",
                params=(refresh_token,),
            ):
                if not access["revoked"]:
                    access["revoked"] = True
                    self.store.update("access_token", access["id"], access)
                    revoked += 1
        return revoked

    def token_valid(self, access_token: str | None) -> bool:
        if not access_token:
            return False
        doc = self.store.get("access_token", access_token)
        return bool(doc) and not doc["revoked"] and doc["expires_at"] > time.time()


def oauth_error(error: str, description: str, status: int = 400) -> Response:
    resp = jsonify({"error": error, "error_description": description})
    resp.status_code = status
    resp.headers["Cache-Control"] = "no-store"
    return resp


def install_oauth_routes(app: Flask, server: OAuthServer) -> None:
    @app.get("/oauth2/authorize")
    def authorize() -> Response:
        args = request.args
        if args.get("client_id") != server.client_id:
            return oauth_error("invalid_client", "Unknown client_id")
        redirect_uri = args.get("redirect_uri")
        if not redirect_uri:
            return oauth_error("invalid_request", "redirect_uri is required")
        if not server.registered(redirect_uri):
            # Never redirect to an address the client did not register (RFC 6749 4.1.2.1).
            return oauth_error(
                "invalid_request",
                "redirect_uri does not match the redirect URI registered for this client",
            )
        if args.get("response_type") != "code":
            return oauth_error("unsupported_response_type", "response_type must be 'code'")
        code = server.issue_code(redirect_uri)
        parts = urlsplit(redirect_uri)
        query = parse_qsl(parts.query, keep_blank_values=True)
        query.append(("code", code))
        if args.get("state") is not None:
            query.append(("state", args["state"]))
        return redirect(urlunsplit(parts._replace(query=urlencode(query))), code=302)

    @app.post("/oauth2/access")
    def access() -> Response:
        form = request.form
        cid, secret = form.get("client_id"), form.get("client_secret")
        if request.authorization and request.authorization.type == "basic":
            cid = cid or request.authorization.username
            secret = secret or request.authorization.password
        if (
            cid != server.client_id
            or not secret
            or not secrets.compare_digest(secret, server.client_secret)
        ):
            return oauth_error("invalid_client", "Client authentication failed", 401)
        grant = form.get("grant_type")
        if grant == "authorization_code":
            result = server.exchange_code(form.get("code", ""), form.get("redirect_uri"))
        elif grant == "refresh_token":
            result = server.refresh(form.get("refresh_token", ""))
        else:
            return oauth_error("unsupported_grant_type", f"Unsupported grant_type {grant!r}")
        if isinstance(result, str):
            return oauth_error("invalid_grant", result)
        resp = jsonify(result)
        resp.headers["Cache-Control"] = "no-store"
        return resp
