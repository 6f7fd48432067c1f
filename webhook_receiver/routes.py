"""Webhook and inbound-mail endpoints: verify, keep raw, answer. Nothing is processed here.

Rows land in ``raw.webhook_events`` (eventbrite, luma, stripe, whatsapp, netgsm) and
``raw.inbound_emails`` (sendgrid, mailgun) with status ``received`` (for the ingest),
``ignored`` (nothing to do) or ``flagged`` (kept for the record, never processed; the
``flag`` column says why). Dedupe keys per source are documented on each endpoint.
"""

from __future__ import annotations

import json
import re
import time
from typing import Any
from urllib.parse import urlsplit

import redis as redis_lib
from flask import Blueprint, Response, g, request
from flask.typing import ResponseReturnValue
from werkzeug.exceptions import MethodNotAllowed
from werkzeug.routing import RequestRedirect

from hub.raw import STATUS_IGNORED, sha256_hex
from integrations.inbound_email import (
    SENDGRID_TEXT_FIELDS,
    decode_sendgrid_fields,
    mailgun_message_id,
    message_id_from_header_block,
    parse_charsets,
    parse_raw_mime,
)
from integrations.webhook_signatures import (
    PayloadError,
    WebhookVerificationError,
    constant_time_equals,
    verify_mailgun,
    verify_stripe_event,
    verify_whatsapp_signature,
)
from webhook_receiver.body import FormError, parse_form
from webhook_receiver.core import (
    INBOUND,
    WEBHOOKS,
    Delivery,
    accept,
    begin,
    evidence_table,
    json_object,
    malformed,
    not_configured,
    redis_client,
    reject,
    settings,
    source_of,
)

bp = Blueprint("receiver", __name__)

ALL_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]
KNOWN_ENDPOINTS = {
    "/webhooks/eventbrite": ["POST"],
    "/webhooks/luma": ["POST"],
    "/webhooks/stripe": ["POST"],
    "/webhooks/whatsapp": ["GET", "POST"],
    "/webhooks/netgsm": ["POST"],
    "/inbound/email/sendgrid": ["POST"],
    "/inbound/email/mailgun": ["POST"],
}
EVENTBRITE_HINT_BUCKET_SECONDS = 600


def _bad_signature(
    delivery: Delivery, message: str, flag: str = "bad_signature", **columns: Any
) -> None:
    reject(
        delivery,
        401,
        "bad_signature",
        message,
        outcome="bad_signature",
        flag=flag,
        **columns,
    )


def _bad_token(delivery: Delivery) -> None:
    reject(
        delivery,
        401,
        "bad_token",
        "the token does not match",
        outcome="bad_signature",
        flag="bad_token",
    )


# --------------------------------------------------------------------------- Eventbrite


def eventbrite_dedupe_key(
    action: str, api_url: str, delivery_id: str | None, *, now: float | None = None
) -> str:
    """Dedupe key of an Eventbrite delivery.

    With ``X-Eventbrite-Delivery``: ``delivery:<id>:<sha256(action \\n api_url)>``.
    The hint is unsigned, so the id alone cannot be the key: anyone could post a chosen
    id first and the genuine delivery with that id (another order) would be answered
    ``duplicate`` and never fetched. Keyed on the id AND what the hub will fetch,
    Eventbrite's retries of one delivery still collapse; a forged hint with the same id
    only collapses with a genuine one that names the same ``api_url`` and action, i.e.
    one whose fetch (the ingest GETs ``api_url`` and trusts nothing else) is the same.

    Without the header the body is all there is, and it carries no data or timestamp:
    two ``order.updated`` hints for the same order are byte-identical. A key of
    ``sha256(action + api_url)`` alone would therefore swallow every later update of
    that order for ever (the unique index has no time scope), and a swallowed hint is a
    missed update. So the hash also takes a 10-minute time bucket:
    ``hint:sha256(action \\n api_url \\n bucket)``. Retries and bursts inside a bucket
    collapse; a later hint makes a new row. A spare row only costs the ingest one more
    idempotent GET of ``api_url``, which always returns the current state.
    """
    if delivery_id and delivery_id.strip():
        return f"delivery:{delivery_id.strip()}:{sha256_hex(chr(10).join((action, api_url)))}"
    bucket = int((time.time() if now is None else now) // EVENTBRITE_HINT_BUCKET_SECONDS)
    digest = sha256_hex("\n".join((action, api_url, str(bucket))))
    return f"hint:{digest}"


def _origin(url: str) -> tuple[str, str, int | None] | None:
    try:
        parts = urlsplit(url)
        port = parts.port or {"https": 443, "http": 80}.get(parts.scheme.lower())
    except ValueError:
        return None
    if not parts.hostname or parts.username or parts.password:
        return None
    return parts.scheme.lower(), parts.hostname.lower(), port


def same_origin(url: str, base_url: str) -> bool:
    """``url`` points at the configured API host (scheme, host and port all equal)."""
    origin = _origin(url)
    return origin is not None and origin == _origin(base_url)


@bp.post("/webhooks/eventbrite")
def eventbrite() -> ResponseReturnValue:
    """Eventbrite sends a hint (no signature, no data); the ingest GETs ``api_url``.

    Accepted rows: ``verified=true`` (accepted for ingest), ``event_type`` = action.
    An ``api_url`` off the configured Eventbrite API origin is kept with
    ``flag='foreign_api_url'``, status ``flagged`` and answered 400: it must never be
    fetched (our token would be sent to that host). The ``test`` ping is stored as
    ``ignored``.
    """
    delivery = begin("eventbrite", WEBHOOKS)
    data = json_object(delivery)
    config = data.get("config")
    action = config.get("action") if isinstance(config, dict) else None
    if not isinstance(action, str) or not action.strip():
        malformed(delivery, "config.action", "config.action is missing")
    action = action.strip()
    api_url = data.get("api_url")
    if not isinstance(api_url, str) or not api_url.strip():
        malformed(delivery, "api_url", "api_url is missing", event_type=action)
    api_url = api_url.strip()
    key = eventbrite_dedupe_key(action, api_url, request.headers.get("X-Eventbrite-Delivery"))
    if action == "test":
        return accept(
            delivery,
            auth="none",
            dedupe_key=key,
            flag="test_ping",
            status=STATUS_IGNORED,
            event_type=action,
        )
    if not same_origin(api_url, settings().base_url("eventbrite")):
        reject(
            delivery,
            400,
            "foreign_api_url",
            "api_url is not on the Eventbrite API host",
            outcome="malformed",
            flag="foreign_api_url",
            field="api_url",
            verified=True,
            event_type=action,
        )
    return accept(delivery, auth="none", dedupe_key=key, event_type=action)


# --------------------------------------------------------------------------- Luma


@bp.post("/webhooks/luma")
def luma() -> ResponseReturnValue:
    """Luma ``{type, data}``, kept as an unverified hint. Dedupe: ``sha256:<hex of the raw
    body>`` (Luma sends no delivery id, so only byte-identical redeliveries collapse).

    Luma documents a webhook secret but no signature header or algorithm, so nothing is
    checked and no secret (settings or vault) is read: any header is ignored. The row is
    accepted for ingest (``verified=true`` means accepted, as for Eventbrite's unsigned
    hints; ``:auth = none``) and nothing in the body is trusted: the ingest uses the guest
    and event ids only to re-read the guest through Luma's API, and a hint naming a guest
    the API does not have creates nothing.
    """
    delivery = begin("luma", WEBHOOKS)
    data = json_object(delivery)
    event_type = data.get("type")
    if not isinstance(event_type, str) or not event_type:
        malformed(delivery, "type", "type is missing")
    if not isinstance(data.get("data"), dict):
        malformed(delivery, "data", "data is missing or not an object", event_type=event_type)
    return accept(
        delivery,
        auth="none",
        dedupe_key=f"sha256:{sha256_hex(delivery.body.data)}",
        event_type=event_type,
    )


# --------------------------------------------------------------------------- Stripe


@bp.post("/webhooks/stripe")
def stripe_webhook() -> ResponseReturnValue:
    """Stripe event. Dedupe: the event ``id`` (``evt_...``); ``event_type`` = ``type``.

    Whether ``checkout.session.completed`` counts (``payment_status == "paid"``) is the
    ingest's rule; every verified event is recorded.
    """
    delivery = begin("stripe", WEBHOOKS)
    secret = settings().secret("stripe_webhook_secret")
    if not secret:
        not_configured(delivery, "Stripe webhook secret")
    try:
        event = verify_stripe_event(
            delivery.body.data, request.headers.get("Stripe-Signature"), secret
        )
    except WebhookVerificationError as exc:
        _bad_signature(delivery, exc.message, flag=exc.reason)
    except PayloadError as exc:
        malformed(delivery, exc.field, exc.message)
    return accept(
        delivery, auth="stripe-signature", dedupe_key=event["id"], event_type=event["type"]
    )


# --------------------------------------------------------------------------- WhatsApp


@bp.get("/webhooks/whatsapp")
def whatsapp_verify() -> ResponseReturnValue:
    """Meta's subscription handshake: echo ``hub.challenge`` when the token matches.

    Kept either way (evidence): a matching handshake as ``ignored``, a refused one
    flagged ``bad_token``; the query is stored without ``hub.verify_token``."""
    query = [(k, v) for k, v in request.args.items(multi=True) if k != "hub.verify_token"]
    extra = {":query": "&".join(f"{k}={v}" for k, v in query)} if query else None
    delivery = begin("whatsapp", WEBHOOKS, extra_headers=extra)
    expected = settings().secret("whatsapp_verify_token")
    mode = request.args.get("hub.mode")
    challenge = request.args.get("hub.challenge")
    if (
        mode == "subscribe"
        and challenge is not None
        and len(challenge) <= 512
        and constant_time_equals(expected, request.args.get("hub.verify_token"))
    ):
        accept(delivery, auth="verify-token", dedupe_key=None, status=STATUS_IGNORED,
               event_type="subscribe")  # fmt: skip
        g.outcome = "accepted"
        return Response(challenge, 200, mimetype="text/plain")
    reject(delivery, 403, "forbidden", "verify token does not match",
           outcome="bad_signature", flag="bad_token")  # fmt: skip


def _whatsapp_event_type(data: dict[str, Any]) -> str:
    fields: list[str] = []
    for entry in data.get("entry") or []:
        for change in (entry.get("changes") or []) if isinstance(entry, dict) else []:
            field = change.get("field") if isinstance(change, dict) else None
            if isinstance(field, str) and field not in fields:
                fields.append(field)
    return ",".join(fields) or str(data.get("object"))


@bp.post("/webhooks/whatsapp")
def whatsapp() -> ResponseReturnValue:
    """One raw row per POST. Dedupe: ``sha256:<hex of the raw body>``; the ingest pulls
    the ``wamid`` ids out of ``entry[].changes[].value.statuses[]``. ``event_type`` =
    the change fields (e.g. ``messages``)."""
    delivery = begin("whatsapp", WEBHOOKS)
    secret = settings().secret("whatsapp_app_secret")
    if not secret:
        not_configured(delivery, "WhatsApp app secret")
    if not verify_whatsapp_signature(
        secret, delivery.body.data, request.headers.get("X-Hub-Signature-256")
    ):
        _bad_signature(delivery, "X-Hub-Signature-256 does not match the body")
    data = json_object(delivery)
    if not isinstance(data.get("object"), str):
        malformed(delivery, "object", "object is missing")
    if not isinstance(data.get("entry"), list):
        malformed(delivery, "entry", "entry is missing or not a list")
    return accept(
        delivery,
        auth="x-hub-signature-256",
        dedupe_key=f"sha256:{sha256_hex(delivery.body.data)}",
        event_type=_whatsapp_event_type(data),
    )


# --------------------------------------------------------------------------- Netgsm

_NETGSM_ALIASES = {
    "jobid": ("jobid", "job_id", "bulkid", "bulk_id"),
    "number": ("number", "gsmno", "no", "phone"),
    "status": ("status", "durum"),
}


def _netgsm_reports(delivery: Delivery) -> list[dict[str, Any]]:
    data = delivery.body.data
    content_type = request.mimetype or ""
    if not data.strip():
        return [{k: v for k, v in request.args.items() if not _is_token_field(k)}]
    if content_type == "application/json" or data.lstrip()[:1] in (b"{", b"["):
        try:
            parsed = json.loads(data)
        except ValueError:
            malformed(delivery, "body", "body is not valid JSON")
        if isinstance(parsed, dict) and isinstance(parsed.get("jobs"), list):
            parsed = parsed["jobs"]
        items = parsed if isinstance(parsed, list) else [parsed]
        if not items or not all(isinstance(i, dict) for i in items):
            malformed(delivery, "body", "body must be a report object or a list of them")
        return items
    try:
        form = parse_form(data, request.content_type)
    except FormError as exc:
        malformed(delivery, "body", str(exc))
    return [{k: v.decode("utf-8", "replace") for k, v in form.fields.items()}]


def _is_token_field(name: str) -> bool:
    """``token``, ``Token``, ``TOKEN``, ``token[]``, ``token[0]`` ...: never stored."""
    return name.split("[", 1)[0].strip().lower() == "token"


def _pick(item: dict[str, Any], name: str) -> str | None:
    for alias in _NETGSM_ALIASES[name]:
        value = item.get(alias)
        if value is not None and str(value).strip() != "":
            return str(value).strip()
    return None


@bp.post("/webhooks/netgsm")
def netgsm() -> ResponseReturnValue:
    """Netgsm delivery reports (JSON object/list, ``{"jobs": [...]}``, or form fields).

    Authenticated by ``?token=`` = ``HUB_NETGSM_REPORT_TOKEN`` (the token is never stored
    or logged; other query fields are kept in the ``:query`` pseudo-header). Each report
    needs ``jobid`` and ``status`` (``number`` optional). Dedupe:
    ``report:sha256(sorted (jobid, number, status) triples)``: a repeated report
    collapses, a status change makes a new row. ``event_type`` = ``delivery_report``.
    """
    query = [(k, v) for k, v in request.args.items(multi=True) if not _is_token_field(k)]
    extra = {":query": "&".join(f"{k}={v}" for k, v in query)} if query else None
    delivery = begin("netgsm", WEBHOOKS, extra_headers=extra)
    expected = settings().secret("netgsm_report_token")
    if not expected:
        not_configured(delivery, "Netgsm report token")
    if not constant_time_equals(expected, request.args.get("token")):
        _bad_token(delivery)
    triples = []
    for item in _netgsm_reports(delivery):
        jobid, status = _pick(item, "jobid"), _pick(item, "status")
        if jobid is None:
            malformed(delivery, "jobid", "jobid is missing", event_type="delivery_report")
        if status is None:
            malformed(delivery, "status", "status is missing", event_type="delivery_report")
        triples.append([jobid, _pick(item, "number") or "", status])
    key = f"report:{sha256_hex(json.dumps(sorted(triples)))}"
    return accept(delivery, auth="url-token", dedupe_key=key, event_type="delivery_report")


# --------------------------------------------------------------------------- SendGrid


@bp.post("/inbound/email/sendgrid", defaults={"token": None})
@bp.post("/inbound/email/sendgrid/<token>")
def sendgrid(token: str | None) -> ResponseReturnValue:
    """SendGrid Inbound Parse (parsed fields, or raw MIME in ``email``).

    The URL token is compared in constant time with ``HUB_SENDGRID_INBOUND_TOKEN``.
    ``sender``/``subject`` are stored decoded (per ``charsets``); the body bytes stay as
    received. Dedupe: ``message-id:<Message-ID>`` from the ``headers`` field (or the raw
    message), else ``sha256:`` of the fields' names and bytes (not of the body: a retry
    may come with another multipart boundary).
    """
    delivery = begin("sendgrid", INBOUND)
    expected = settings().secret("sendgrid_inbound_token")
    if not expected:
        not_configured(delivery, "SendGrid inbound token")
    if not constant_time_equals(expected, token):
        _bad_token(delivery)
    try:
        form = parse_form(delivery.body.data, request.content_type)
    except FormError as exc:
        malformed(delivery, "body", str(exc))
    if "email" in form.fields:
        parsed = parse_raw_mime(form.fields["email"])
        sender, subject, message_id = parsed["from"], parsed["subject"], parsed["message_id"]
    else:
        if "from" not in form.fields:
            malformed(delivery, "from", "from is missing")
        fields = {k: v for k, v in form.fields.items() if k in SENDGRID_TEXT_FIELDS}
        decoded = decode_sendgrid_fields(fields, parse_charsets(form.fields.get("charsets")))
        sender, subject = decoded.get("from"), decoded.get("subject")
        message_id = message_id_from_header_block(form.fields.get("headers"))
    if message_id:
        key = f"message-id:{message_id}"
    else:
        digest = [[name, sha256_hex(value)] for name, value in sorted(form.fields.items())]
        key = f"sha256:{sha256_hex(json.dumps(digest))}"
    return accept(delivery, auth="url-token", dedupe_key=key, sender=sender, subject=subject)


# --------------------------------------------------------------------------- Mailgun


@bp.post("/inbound/email/mailgun")
def mailgun() -> ResponseReturnValue:
    """Mailgun route ``forward()`` (urlencoded or multipart), signed with the webhook key.

    Every verification failure (bad or missing signature, timestamp more than 120 s old
    or ahead, reused token) answers **401**, not 406: 406 tells Mailgun to drop the
    message for good, and a genuine message refused because of *our* state (a clock
    skew, a rotated key not yet configured) would then be lost; on 401 Mailgun retries
    for about 8 hours, each attempt freshly signed. A forger gains nothing either way.
    Dedupe: ``message-id:<Message-Id>`` from ``message-headers``, else ``token:<token>``.
    """
    delivery = begin("mailgun", INBOUND)
    key = settings().secret("mailgun_signing_key")
    if not key:
        not_configured(delivery, "Mailgun signing key")
    try:
        form = parse_form(delivery.body.data, request.content_type)
    except FormError as exc:
        malformed(delivery, "body", str(exc))
    token = form.text("token")
    try:
        verify_mailgun(
            key,
            form.text("timestamp"),
            token,
            form.text("signature"),
            redis_client=redis_client(),
            replay_prefix=f"{settings().redis_namespace}:receiver:mailgun-token:",
        )
    except WebhookVerificationError as exc:
        _bad_signature(delivery, exc.message, flag=exc.reason)
    except redis_lib.RedisError:
        reject(
            delivery,
            503,
            "unavailable",
            "the replay check is unavailable; retry later",
            outcome="unavailable",
            flag="unverified",
        )
    sender = form.text("from") or form.text("sender")
    if not sender:
        malformed(delivery, "from", "from is missing")
    message_id = mailgun_message_id(form.text("message-headers"))
    dedupe = f"message-id:{message_id}" if message_id else f"token:{token}"
    return accept(
        delivery,
        auth="mailgun-signature",
        dedupe_key=dedupe,
        sender=sender,
        subject=form.text("subject"),
    )


# --------------------------------------------------------------------------- unknown

_SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")


def _source_name(rest: str) -> str:
    name = _SAFE_NAME.sub("_", rest.strip("/").split("/", 1)[0])[:64]
    return name or "unknown"


def _method_not_allowed(allowed: list[str] | set[str]) -> None:
    """A known endpoint asked with another method (HEAD and OPTIONS included): kept
    flagged ``method_not_allowed`` and answered 405 with ``Allow``."""
    allow = ", ".join(sorted(allowed))
    table = evidence_table(request.path) or WEBHOOKS
    delivery = begin(source_of(request.path), table)
    reject(delivery, 405, "method_not_allowed", f"use {allow}", outcome="malformed",
           flag="method_not_allowed", headers={"Allow": allow})  # fmt: skip


def refuse_unrouted() -> None:
    """Before a view runs: under /webhooks and /inbound, a request the routing refused
    (405, 404, a 308 redirect such as ``//`` -> ``/``) or one Flask would answer by itself
    (automatic OPTIONS, HEAD on a GET endpoint) is kept flagged, then answered as
    before (raises :class:`ReceiverError`). Elsewhere nothing happens here (such
    requests are counted in the metrics)."""
    if evidence_table(request.path) is None:
        return
    exc = request.routing_exception
    if isinstance(exc, RequestRedirect):
        delivery = begin(source_of(request.path), evidence_table(request.path) or WEBHOOKS)
        reject(delivery, exc.code, "redirect", f"use {exc.new_url}", outcome="malformed",
               flag="redirected", headers={"Location": exc.new_url})  # fmt: skip
    if isinstance(exc, MethodNotAllowed):
        _method_not_allowed(set(exc.valid_methods or []) - {"HEAD", "OPTIONS"})
    if exc is not None or request.url_rule is None:
        return  # a 404 is kept by the error handler
    delivery_methods = set(request.url_rule.methods or ()) - {"HEAD", "OPTIONS"}
    if request.endpoint not in _CATCH_ALL and request.method not in delivery_methods:
        _method_not_allowed(delivery_methods)


_CATCH_ALL = ("receiver.unknown_webhook", "receiver.unknown_inbound")


def _unknown(prefix: str, rest: str) -> ResponseReturnValue:
    path = request.path.rstrip("/")
    allowed = KNOWN_ENDPOINTS.get(path)
    if allowed is None and path.startswith("/inbound/email/sendgrid/") and path.count("/") == 4:
        allowed = ["POST"]
    if allowed is not None:  # a known endpoint, wrong method
        g.source = path.split("/")[-1] if "sendgrid" not in path else "sendgrid"
        _method_not_allowed(allowed)
    if prefix == "inbound" and rest.startswith("email/"):
        rest = rest[len("email/") :]
    delivery = begin(_source_name(rest), INBOUND if prefix == "inbound" else WEBHOOKS)
    g.metric_source = "unknown"
    reject(
        delivery,
        404,
        "unknown_source",
        "no receiver at this path",
        outcome="unknown_source",
        flag="unknown_source",
    )


@bp.route("/webhooks", defaults={"rest": ""}, methods=ALL_METHODS)
@bp.route("/webhooks/<path:rest>", methods=ALL_METHODS)
def unknown_webhook(rest: str) -> ResponseReturnValue:
    return _unknown("webhooks", rest)


@bp.route("/inbound", defaults={"rest": ""}, methods=ALL_METHODS)
@bp.route("/inbound/<path:rest>", methods=ALL_METHODS)
def unknown_inbound(rest: str) -> ResponseReturnValue:
    return _unknown("inbound", rest)
