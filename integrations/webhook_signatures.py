"""Pure verification of inbound webhook signatures (no Flask, no I/O but Redis for replays).

Every function takes the raw body bytes exactly as received and the secret from settings
(never from the request). Failures raise :class:`WebhookVerificationError` whose
``reason`` is one of ``missing_signature``, ``bad_signature``, ``stale_timestamp``,
``future_timestamp``, ``replayed_token``; a payload that verifies but cannot be used
raises :class:`PayloadError` naming the field. Messages never contain the secret.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from typing import Any, Protocol

import stripe

STRIPE_TOLERANCE_SECONDS = 300
MAILGUN_MAX_AGE_SECONDS = 120
# A token must be remembered while its timestamp can still pass the freshness check
# (up to max_age in the future plus max_age of age), with a margin.
MAILGUN_TOKEN_TTL_SECONDS = 4 * MAILGUN_MAX_AGE_SECONDS


class WebhookVerificationError(Exception):
    """The request is not provably from the sender; ``reason`` is a short code."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


class PayloadError(ValueError):
    """The request verified but its body is unusable; ``field`` names what is wrong."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


def constant_time_equals(expected: str | None, given: str | None) -> bool:
    """Compare a configured token with a presented one without leaking timing."""
    if not expected or given is None:
        return False
    return hmac.compare_digest(expected.encode("utf-8"), given.encode("utf-8"))


def hmac_sha256_hex(key: str | bytes, message: bytes) -> str:
    if isinstance(key, str):
        key = key.encode("utf-8")
    return hmac.new(key, message, hashlib.sha256).hexdigest()


# --------------------------------------------------------------------------- Stripe


def _stripe_timestamp(sig_header: str) -> int | None:
    """The ``t=`` value of a Stripe-Signature header, as the SDK reads it."""
    for item in sig_header.split(","):
        name, _, value = item.strip().partition("=")
        if name == "t":
            try:
                return int(value)
            except ValueError:
                return None
    return None


def verify_stripe_event(
    payload: bytes,
    sig_header: str | None,
    secret: str,
    *,
    tolerance: int = STRIPE_TOLERANCE_SECONDS,
    now: float | None = None,
) -> dict[str, Any]:
    """Verify a Stripe webhook and return its event as a dict (``id``, ``type``, ...).

    Verifies with ``stripe.WebhookSignature.verify_header`` (HMAC-SHA256 over
    ``"{t}.{body}"`` with the ``whsec_`` secret, any ``v1``; refuses ``t`` older than
    ``tolerance``), also refuses ``t`` more than ``tolerance`` seconds in the future,
    which the SDK lets pass, then parses the body once with ``json.loads`` (what
    ``stripe.Webhook.construct_event`` does, without building its StripeObject tree,
    which cost more than the rest of the check).
    """
    if not sig_header:
        raise WebhookVerificationError("missing_signature", "Stripe-Signature header is missing")
    timestamp = _stripe_timestamp(sig_header)
    if timestamp is None:
        raise WebhookVerificationError("bad_signature", "Stripe-Signature header has no timestamp")
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError:
        raise PayloadError("body", "body is not UTF-8") from None
    current = time.time() if now is None else now
    try:
        stripe.WebhookSignature.verify_header(text, sig_header, secret, tolerance=tolerance)
    except stripe.SignatureVerificationError:
        if timestamp < current - tolerance and _stripe_signature_matches(text, sig_header, secret):
            raise WebhookVerificationError(
                "stale_timestamp", "Stripe-Signature timestamp is too old"
            ) from None
        raise WebhookVerificationError(
            "bad_signature", "Stripe-Signature does not match the body"
        ) from None
    if timestamp > current + tolerance:
        raise WebhookVerificationError(
            "future_timestamp", "Stripe-Signature timestamp is in the future"
        )
    try:
        event = json.loads(text)
    except ValueError:
        raise PayloadError("body", "body is not valid JSON") from None
    if not isinstance(event, dict):
        raise PayloadError("body", "body is not a JSON object")
    if event.get("object") == "v2.core.event":
        # construct_event refuses a thin event notification (ValueError) the same way
        raise PayloadError("body", "body is not valid JSON")
    for field in ("id", "type"):
        if not isinstance(event.get(field), str) or not event[field]:
            raise PayloadError(field, f"event has no {field}")
    return event


def _stripe_signature_matches(text: str, sig_header: str, secret: str) -> bool:
    """True when a v1 signature is right (only to tell "stale" from "forged")."""
    try:
        stripe.WebhookSignature.verify_header(text, sig_header, secret, tolerance=None)
    except stripe.SignatureVerificationError:
        return False
    return True


# --------------------------------------------------------------------------- Mailgun


class _SetNX(Protocol):
    def set(self, name: str, value: str, *, nx: bool = ..., ex: int = ...) -> Any: ...


def verify_mailgun(
    signing_key: str,
    timestamp: str | None,
    token: str | None,
    signature: str | None,
    *,
    redis_client: _SetNX | None,
    replay_prefix: str = "hub:receiver:mailgun-token:",
    max_age: int = MAILGUN_MAX_AGE_SECONDS,
    now: float | None = None,
) -> None:
    """Verify a Mailgun forward/webhook signature; raise on any failure.

    ``signature == hex HMAC-SHA256(signing_key, timestamp + token)``; the timestamp must
    be within ``max_age`` seconds of now (either way); the token must not have been seen
    before (Redis ``SET NX`` with a TTL, checked last so forgeries cannot burn tokens).
    Redis errors propagate: without the replay check nothing is accepted.
    """
    if not (timestamp and token and signature):
        raise WebhookVerificationError(
            "missing_signature", "timestamp, token and signature are required"
        )
    expected = hmac_sha256_hex(signing_key, f"{timestamp}{token}".encode())
    if not hmac.compare_digest(expected.encode(), signature.strip().lower().encode()):
        raise WebhookVerificationError("bad_signature", "signature does not match")
    try:
        ts = int(float(timestamp))
    except (ValueError, OverflowError):  # "abc", "nan"; "inf" and "1e400" overflow
        raise WebhookVerificationError("bad_signature", "timestamp is not a number") from None
    current = time.time() if now is None else now
    if ts < current - max_age:
        raise WebhookVerificationError("stale_timestamp", "timestamp is too old")
    if ts > current + max_age:
        raise WebhookVerificationError("future_timestamp", "timestamp is in the future")
    if redis_client is not None:
        key = f"{replay_prefix}{hashlib.sha256(token.encode()).hexdigest()}"
        ttl = max(MAILGUN_TOKEN_TTL_SECONDS, 4 * max_age)
        if not redis_client.set(key, str(ts), nx=True, ex=ttl):
            raise WebhookVerificationError("replayed_token", "token was already used")


# --------------------------------------------------------------------------- WhatsApp


def verify_whatsapp_signature(app_secret: str, body: bytes, header_value: str | None) -> bool:
    """``X-Hub-Signature-256: sha256=<hex HMAC-SHA256(app_secret, raw body)>``."""
    if not app_secret or not header_value:
        return False
    scheme, _, given = header_value.strip().partition("=")
    if scheme.lower() != "sha256" or not given:
        return False
    expected = hmac_sha256_hex(app_secret, body)
    return hmac.compare_digest(expected.encode(), given.strip().lower().encode())


# --------------------------------------------------------------------------- Luma
#
# No Luma verifier on purpose. Luma returns a webhook ``secret`` but documents no header
# and no algorithm (CONTRACTS.md Part 1 Uncertain #6; neither OpenAPI document in
# contracts/ names one). Checking a guessed scheme would reject genuine live deliveries
# and prove nothing, so a Luma delivery is an unverified hint: the receiver keeps it and
# the ingest re-reads the guest through Luma's API before anything acts on it
# (integrations.ingest_handlers.LumaHandler). Add a verifier here only when Luma
# documents a scheme.
