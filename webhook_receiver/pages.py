"""The hub's own pages: landing pages, checkout, order status, sitemap and robots.

* ``GET /e/<slug>``: server-rendered landing page (no JavaScript needed), two themes
  (``community`` / ``clean``, from ``events.native_theme``), Turkish or English from
  ``Accept-Language`` (``?lang=`` wins), live seats left from the seat ledger, SEO
  (title, description, canonical, OpenGraph, schema.org Event JSON-LD with offers).
* ``POST /checkout``: a form post or JSON. Every request is kept in
  ``raw.checkout_requests`` first (good or bad; flagged when refused), then: size cap
  (413), per-client rate limit in Redis (429 + Retry-After), validation naming the
  field (422), Idempotency-Key (header, or the form's hidden field made per page load),
  and hub.checkout's decision (409 sold out / already registered, 503 ledger or payment
  unavailable with Retry-After, nothing sold).
* ``GET /checkout/success?session_id=``: Stripe sends the person back here; the session
  is re-read through the API and the order completed (same as the webhook would).
* ``GET /orders/<order_no>``: the order's status page (HTML, or JSON on
  ``Accept: application/json``), reachable only with its unguessable number.

Pages answer HTML errors; JSON clients get ``{"error", "message", "fields"?}``.
"""

from __future__ import annotations

import json
import logging
import os
import re
import secrets
import time
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, urlencode
from xml.sax.saxutils import escape as xml_escape

import psycopg
import redis as redis_lib
from flask import Blueprint, Response, current_app, g, redirect, render_template, request
from markupsafe import Markup
from sqlalchemy import select, text
from sqlalchemy.exc import DBAPIError, OperationalError

from hub import checkout as hub_checkout
from hub.db import checkout_requests, events, get_engine
from hub.events import get_event
from hub.models import Event
from hub.raw import STATUS_FLAGGED, sha256_hex, storable_text
from hub.seat_counts import seat_counts
from webhook_receiver import i18n
from webhook_receiver.body import Body, FormError, parse_form, read_body
from webhook_receiver.core import configured_secrets, redis_client, settings, stored_headers

log = logging.getLogger(__name__)

pages = Blueprint("pages", __name__)

CHECKOUT_MAX_BODY = int(os.environ.get("HUB_CHECKOUT_MAX_BODY_BYTES", str(16 * 1024)))
RETRY_AFTER = "5"
SLUG = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
SESSION_ID = re.compile(r"^cs_[A-Za-z0-9_]{1,250}$")
FORM_FIELDS = (
    "full_name",
    "email",
    "phone",
    "consent",
    "ref",
    "event",
    "event_id",
    "idempotency_key",
    "lang",
    "consent_version",
)


def rate_limit_config() -> tuple[int, int]:
    """(attempts, window seconds) per client address: ``HUB_CHECKOUT_RATE_LIMIT=30/60``."""
    value = os.environ.get("HUB_CHECKOUT_RATE_LIMIT", "30/60")
    count, _, window = value.partition("/")
    return max(int(count), 1), max(int(window or 60), 1)


# --------------------------------------------------------------------------- services


def _ledger() -> Any:
    """The app's SeatLedger (hub.capacity), built once."""
    ledger = current_app.extensions.get("hub_ledger")
    if ledger is None:
        from hub.capacity import SeatLedger

        ledger = SeatLedger.from_settings(settings())
        current_app.extensions["hub_ledger"] = ledger
    return ledger


def _payments_factory() -> Any:
    app = current_app._get_current_object()  # type: ignore[attr-defined]

    def build() -> Any:
        client = app.extensions.get("hub_stripe")
        if client is None:
            from integrations.stripe_checkout import StripeCheckout

            client = StripeCheckout.from_settings(app.config["HUB_SETTINGS"])
            app.extensions["hub_stripe"] = client
        return client

    return build


@pages.record_once
def _configure(state: Any) -> None:
    """The hold-expiry hook of hub.checkout expires Stripe sessions with this app's client."""
    app = state.app

    def build() -> Any:
        with app.app_context():
            return _payments_factory()()

    hub_checkout.configure_payments(build)


def _ledger_errors() -> tuple[type[BaseException], ...]:
    errors: list[type[BaseException]] = [
        redis_lib.RedisError,
        OperationalError,
        psycopg.OperationalError,
    ]
    try:
        from hub.capacity import LedgerError  # unavailable, or a conflict to retry

        errors.append(LedgerError)
    except ImportError:
        errors.append(ImportError)
    return tuple(errors)


def _engine() -> Any:
    return get_engine(settings())


def _base_url() -> str:
    return settings().public_base_url.rstrip("/")


# --------------------------------------------------------------------------- language


def _language(override: str | None = None) -> str:
    return i18n.negotiate(
        request.headers.get("Accept-Language"), override or request.args.get("lang")
    )


def _wants_json() -> bool:
    if request.mimetype == "application/json":
        return True
    best = request.accept_mimetypes.best_match(["text/html", "application/json"])
    return (
        best == "application/json"
        and request.accept_mimetypes["application/json"] > request.accept_mimetypes["text/html"]
    )


def _json(body: dict[str, Any], status: int, headers: dict[str, str] | None = None) -> Response:
    response = Response(
        json.dumps(body, ensure_ascii=False, default=str), status, mimetype="application/json"
    )
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def _html(
    body: str, status: int = 200, headers: dict[str, str] | None = None, *, cache: str = "no-store"
) -> Response:
    response = Response(body, status, mimetype="text/html")
    response.headers["Cache-Control"] = cache
    response.headers["Vary"] = "Accept-Language, Accept"
    response.headers.setdefault(
        "Content-Security-Policy",
        "default-src 'none'; style-src 'self' 'unsafe-inline'; "
        "img-src 'self' data:; form-action 'self' https: http:; "
        "base-uri 'none'; frame-ancestors 'none'",
    )
    response.headers["Referrer-Policy"] = "same-origin"
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def _css() -> Markup:
    """The stylesheet, inlined (one request per page, first paint without waiting)."""
    css = current_app.extensions.get("hub_pages_css")
    if css is None:
        path = os.path.join(current_app.root_path, "static", "pages.css")
        with open(path, encoding="utf-8") as handle:
            css = handle.read()
        current_app.extensions["hub_pages_css"] = css
    return Markup(css)  # our own file, never user input


def _render(template: str, lang: str, **context: Any) -> str:
    return render_template(
        template, lang=lang, tr=lambda key, **kw: i18n.t(lang, key, **kw), css=_css(), **context
    )


def _error_page(
    status: int, lang: str, key: str, headers: dict[str, str] | None = None, **values: Any
) -> Response:
    title = i18n.t(lang, "not_found_title") if status == 404 else i18n.t(lang, key, **values)
    body = _render(
        "error.html",
        lang,
        status=status,
        title=title,
        message=i18n.t(lang, key, **values),
        theme="clean",
    )
    return _html(body, status, headers)


# --------------------------------------------------------------------------- events


def _event_by_slug(slug: str) -> Event | None:
    if not SLUG.match(slug or "") or len(slug) > 80:
        return None
    with _engine().connect() as conn:
        event_id = conn.execute(select(events.c.id).where(events.c.slug == slug)).scalar()
        if event_id is None:
            return None
        event = get_event(conn, event_id)
    return None if event.status == "draft" else event


def _event_by_id(value: str) -> Event | None:
    try:
        with _engine().connect() as conn:
            event = get_event(conn, value)
    except (LookupError, DBAPIError, ValueError):
        return None
    return None if event.status == "draft" else event


def seats_left(event: Event) -> int:
    """Native seats left now: the ledger's fast read, or PostgreSQL's arithmetic while
    the ledger is unavailable (a page must render even when Redis is being rebuilt)."""
    try:
        return max(int(_ledger().availability(event.id).native_left), 0)
    except Exception as exc:  # any ledger trouble: fall back to PostgreSQL
        log.warning("ledger availability failed, reading PostgreSQL: %s", type(exc).__name__)
    with _engine().connect() as conn:
        return seat_counts(conn, event.id).available("native")


def _ended(event: Event) -> bool:
    return event.ends_at <= datetime.now(UTC)


def event_jsonld(event: Event, *, url: str, sold_out: bool, lang: str) -> dict[str, Any]:
    """schema.org Event with its offer (price, currency, InStock / SoldOut, url)."""
    online = bool(event.online_url)
    physical = bool(event.venue_name or event.venue_address)
    mode = (
        "MixedEventAttendanceMode"
        if online and physical
        else "OnlineEventAttendanceMode"
        if online
        else "OfflineEventAttendanceMode"
    )
    locations: list[dict[str, Any]] = []
    if physical:
        place: dict[str, Any] = {"@type": "Place", "name": event.venue_name or event.venue_address}
        if event.venue_address:
            place["address"] = {"@type": "PostalAddress", "streetAddress": event.venue_address}
        locations.append(place)
    if online:
        locations.append({"@type": "VirtualLocation", "url": event.online_url})
    status = "EventCancelled" if event.status == "cancelled" else "EventScheduled"
    data: dict[str, Any] = {
        "@context": "https://schema.org",
        "@type": "Event",
        "name": event.title,
        "description": _summary(event.description, 300) or event.title,
        "startDate": i18n.local_time(event.starts_at, event.timezone).isoformat(),
        "endDate": i18n.local_time(event.ends_at, event.timezone).isoformat(),
        "eventStatus": f"https://schema.org/{status}",
        "eventAttendanceMode": f"https://schema.org/{mode}",
        "inLanguage": lang,
        "url": url,
        "offers": {
            "@type": "Offer",
            "price": i18n.major_amount(event.price_minor, event.currency),
            "priceCurrency": event.currency,
            "availability": "https://schema.org/" + ("SoldOut" if sold_out else "InStock"),
            "url": url,
        },
    }
    if locations:
        data["location"] = locations[0] if len(locations) == 1 else locations
    return data


def _summary(value: str | None, limit: int) -> str:
    words = " ".join((value or "").split())
    return words if len(words) <= limit else words[: limit - 1].rsplit(" ", 1)[0] + "…"


def _jsonld_markup(data: dict[str, Any]) -> Markup:
    """JSON for a <script> element: ``<``, ``>`` and ``&`` escaped, so no text can close
    the element (``</script>`` in a title stays inert)."""
    raw = json.dumps(data, ensure_ascii=False)
    safe = raw.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    return Markup(safe.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029"))


def _event_page(
    event: Event,
    lang: str,
    *,
    status: int = 200,
    values: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
    notice: str | None = None,
    notice_link: str | None = None,
    idempotency_key: str | None = None,
    ref: str | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    left = seats_left(event)
    sold_out = left <= 0
    closed = event.status == "cancelled" or _ended(event)
    url = f"{_base_url()}/e/{event.slug}"
    description = _summary(event.description, 160) or event.title
    if ref is not None and not hub_checkout.REF_PATTERN.match(ref):
        ref = None
    field_errors = {name: i18n.t(lang, key) for name, key in (errors or {}).items()}
    body = _render(
        "event.html",
        lang,
        event=event,
        theme=event.native_theme if event.native_theme in ("community", "clean") else "community",
        title=f"{event.title}",
        description=description,
        canonical=url,
        og_locale="tr_TR" if lang == "tr" else "en_US",
        jsonld=_jsonld_markup(event_jsonld(event, url=url, sold_out=sold_out, lang=lang)),
        when=i18n.format_datetime(event.starts_at, event.timezone, lang),
        ends=i18n.format_time(event.ends_at, event.timezone),
        starts_iso=i18n.local_time(event.starts_at, event.timezone).isoformat(),
        price=i18n.format_money(event.price_minor, event.currency, lang),
        seats_left=left,
        sold_out=sold_out,
        closed=closed,
        closed_message=i18n.t(lang, "cancelled" if event.status == "cancelled" else "ended"),
        values=values or {},
        errors=field_errors,
        error_order=[
            f
            for f in ("full_name", "email", "phone", "consent", "ref", "idempotency_key")
            if f in field_errors
        ],
        notice=notice,
        notice_link=notice_link,
        idempotency_key=idempotency_key or secrets.token_urlsafe(24),
        ref=ref,
        consent_text=i18n.CONSENT_TEXTS[lang],
        consent_version=i18n.consent_version(lang),
        other_lang="en" if lang == "tr" else "tr",
    )
    return _html(body, status, headers)


@pages.get("/e/<slug>")
def event_page(slug: str) -> Response:
    lang = _language()
    event = _event_by_slug(slug)
    if event is None:
        return _error_page(404, lang, "not_found")
    return _event_page(event, lang, ref=request.args.get("ref"))


# --------------------------------------------------------------------------- SEO files


@pages.get("/sitemap.xml")
def sitemap() -> Response:
    """Every scheduled event's landing page, with its last change."""
    with _engine().connect() as conn:
        rows = conn.execute(
            select(events.c.slug, events.c.updated_at)
            .where(events.c.status == "scheduled")
            .order_by(events.c.starts_at)
        ).all()
    base = _base_url()
    lines = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        '<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">',
    ]
    for row in rows:
        loc = xml_escape(f"{base}/e/{quote(row.slug)}")
        lastmod = row.updated_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        lines.append(f"  <url><loc>{loc}</loc><lastmod>{lastmod}</lastmod></url>")
    lines.append("</urlset>")
    response = Response("\n".join(lines) + "\n", 200, mimetype="application/xml")
    response.headers["Cache-Control"] = "public, max-age=300"
    return response


@pages.get("/robots.txt")
def robots() -> Response:
    body = "\n".join(
        [
            "User-agent: *",
            "Allow: /e/",
            "Disallow: /checkout",
            "Disallow: /orders/",
            "Disallow: /webhooks/",
            "Disallow: /inbound/",
            "Disallow: /metrics",
            f"Sitemap: {_base_url()}/sitemap.xml",
            "",
        ]
    )
    response = Response(body, 200, mimetype="text/plain")
    response.headers["Cache-Control"] = "public, max-age=3600"
    return response


# --------------------------------------------------------------------------- raw rows


def _store_raw(body: Body, key: str | None) -> int:
    """Keep the request (raw first) before anything acts on it; 503 if PostgreSQL cannot."""
    client = request.remote_addr or ""
    headers = stored_headers(
        request.headers.items(),
        request.method,
        request.path,
        configured_secrets(),
        {":client": client},
    )
    with _engine().begin() as conn:
        raw_id = conn.execute(
            checkout_requests.insert()
            .values(
                source="native",
                dedupe_key=None,  # every attempt is kept, replays included
                headers=headers,
                body=body.data,
                body_size=body.size,
                body_truncated=body.truncated,
                verified=False,
                status="received",
                idempotency_key=storable_text((key or "")[:200]) or None,
            )
            .returning(checkout_requests.c.id)
        ).scalar_one()
    g.raw_id = raw_id
    return int(raw_id)


def _mark_raw(
    status: str, flag: str | None, note: str | None = None, key: str | None = None
) -> None:
    raw_id = g.get("raw_id")
    if raw_id is None:
        return
    try:
        with _engine().begin() as conn:
            conn.execute(
                text(
                    "update raw.checkout_requests set status = :status, flag = :flag, "
                    "last_error = :note, processed_at = now(), "
                    "idempotency_key = coalesce(idempotency_key, :key) where id = :id"
                ),
                {
                    "status": status,
                    "flag": flag,
                    "note": storable_text(note),
                    "id": raw_id,
                    "key": storable_text(key[:200]) if key else None,
                },
            )
    except Exception:  # the row is kept; only its outcome note is missing
        log.exception("marking raw.checkout_requests#%s failed", raw_id)


# --------------------------------------------------------------------------- limits


def _rate_limited() -> int | None:
    """Seconds to wait when this client is over its attempts in the current window
    (fixed window in Redis: SET NX EX + INCR in one round trip), else None."""
    limit, window = current_app.config.get("CHECKOUT_RATE_LIMIT") or rate_limit_config()
    now = time.time()
    start = int(now // window) * window
    client = request.remote_addr or "unknown"
    key = f"{settings().redis_namespace}:checkout:rate:{sha256_hex(client)[:24]}:{start}"
    pipe = redis_client().pipeline(transaction=False)
    pipe.set(key, 0, ex=window + 1, nx=True)  # the window's counter, with its expiry
    pipe.incr(key)
    _, count = pipe.execute()
    if int(count) > limit:
        return max(int(start + window - now) + 1, 1)
    return None


# --------------------------------------------------------------------------- checkout


class _Refusal(Exception):
    def __init__(self, response: Response, flag: str, note: str | None = None) -> None:
        super().__init__(flag)
        self.response = response
        self.flag = flag
        self.note = note


def _fields(body: Body, as_json: bool) -> dict[str, str]:
    if as_json:
        try:
            data = json.loads(body.data.decode("utf-8"))
        except (ValueError, RecursionError):
            raise ValueError("body is not valid JSON") from None
        if not isinstance(data, dict):
            raise ValueError("body is not a JSON object")
        out: dict[str, str] = {}
        for name in FORM_FIELDS:
            value = data.get(name)
            if isinstance(value, bool):
                out[name] = "true" if value else ""
            elif isinstance(value, str | int | float):
                out[name] = str(value)
        return out
    try:
        form = parse_form(body.data, request.content_type)
    except FormError as exc:
        raise ValueError(str(exc)) from None
    return {name: form.text(name) or "" for name in FORM_FIELDS if name in form.fields}


def _refuse_json(
    status: int,
    error: str,
    message: str,
    *,
    fields: dict[str, str] | None = None,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> Response:
    body: dict[str, Any] = {"error": error, "message": message}
    if fields:
        body["fields"] = fields
    body.update({k: v for k, v in extra.items() if v is not None})
    return _json(body, status, headers)


@pages.post("/checkout")
def checkout() -> Response:
    g.source = "checkout"
    as_json = request.mimetype == "application/json"
    header_key = request.headers.get("Idempotency-Key")
    body = read_body(request.stream, request.content_length, CHECKOUT_MAX_BODY)
    lang = _language()
    try:
        _store_raw(body, header_key)
    except (DBAPIError, OperationalError, psycopg.Error) as exc:
        g.outcome = "unavailable"
        log.error("checkout raw store failed: %s", type(exc).__name__)
        return _unavailable(as_json, lang)
    try:
        response, note = _checkout(body, as_json, lang, header_key)
    except _Refusal as refusal:
        g.outcome = refusal.flag
        _mark_raw(STATUS_FLAGGED, refusal.flag, refusal.note, g.get("checkout_key"))
        return refusal.response
    g.outcome = "accepted"
    _mark_raw("processed", None, note, g.get("checkout_key"))
    return response


def _unavailable(as_json: bool, lang: str, message: str | None = None) -> Response:
    headers = {"Retry-After": RETRY_AFTER}
    if as_json:
        return _refuse_json(
            503, "unavailable", message or i18n.t("en", "unavailable"), headers=headers
        )
    return _error_page(503, lang, "unavailable", headers)


def _checkout(body: Body, as_json: bool, lang: str, header_key: str | None) -> tuple[Response, str]:
    if body.truncated:
        message = f"the body exceeds {CHECKOUT_MAX_BODY} bytes"
        response = (
            _refuse_json(413, "too_large", message, fields={"body": message})
            if as_json
            else _error_page(413, lang, "too_large")
        )
        raise _Refusal(response, "oversize", message)
    try:
        try:
            wait = _rate_limited()
        except (redis_lib.ConnectionError, redis_lib.TimeoutError, ValueError):
            # one more try on a fresh connection: redis-py raises ValueError ("I/O
            # operation on closed file") when its timeout closed a socket mid-handshake
            wait = _rate_limited()
    except (redis_lib.RedisError, ValueError):
        raise _Refusal(
            _unavailable(as_json, lang), "unavailable", "rate limiter unavailable"
        ) from None
    if wait is not None:
        headers = {"Retry-After": str(wait)}
        response = (
            _refuse_json(
                429,
                "rate_limited",
                i18n.t("en", "rate_limited", seconds=wait),
                headers=headers,
                retry_after=wait,
            )
            if as_json
            else _error_page(429, lang, "rate_limited", headers, seconds=wait)
        )
        raise _Refusal(response, "rate_limited")
    try:
        fields = _fields(body, as_json)
    except ValueError as exc:
        response = (
            _refuse_json(400, "malformed", str(exc), fields={"body": str(exc)})
            if as_json
            else _error_page(400, lang, "malformed")
        )
        raise _Refusal(response, "malformed", str(exc)) from None
    if fields.get("lang"):
        lang = _language(fields.get("lang"))
    key = header_key or fields.get("idempotency_key") or None
    g.checkout_key = key
    event = _event_by_id(fields["event_id"]) if fields.get("event_id") else None
    if event is None and fields.get("event"):
        event = _event_by_slug(fields["event"])
    if event is None:
        message = i18n.t(lang, "err_event")
        response = (
            _refuse_json(404, "unknown_event", message, fields={"event": message})
            if as_json
            else _error_page(404, lang, "not_found")
        )
        raise _Refusal(response, "unknown_event")
    data, errors = hub_checkout.validate_checkout(fields)
    if not hub_checkout.valid_idempotency_key(key):
        errors["idempotency_key"] = "err_idempotency_key"
        key = None
    values = {name: fields.get(name, "") for name in ("full_name", "email", "phone")}
    values["consent"] = "on" if hub_checkout.truthy(fields.get("consent")) else ""
    if errors or data is None:
        messages = {name: i18n.t(lang, code) for name, code in errors.items()}
        response = (
            _refuse_json(422, "invalid", "some fields are not valid", fields=messages)
            if as_json
            else _event_page(
                event,
                lang,
                status=422,
                values=values,
                errors=errors,
                idempotency_key=key,
                ref=fields.get("ref"),
            )
        )
        raise _Refusal(response, "invalid", ",".join(sorted(errors)))
    assert key is not None
    consent_text = i18n.consent_text_for(fields.get("consent_version"), lang)
    base = _base_url()
    urls = hub_checkout.CheckoutUrls(
        success_url=f"{base}/checkout/success?session_id={{CHECKOUT_SESSION_ID}}&lang={lang}",
        cancel_url=f"{base}/e/{event.slug}?" + urlencode({"lang": lang}),
    )
    try:
        order = hub_checkout.create_order(
            _ledger(),
            event=event,
            data=data,
            idempotency_key=key,
            consent_text=consent_text,
            locale=lang,
            payments=_payments_factory(),
            urls=urls,
        )
    except hub_checkout.CheckoutError as exc:
        raise _Refusal(
            _checkout_refusal(exc, event, lang, as_json, values, key, fields),
            exc.error,
            exc.message,
        ) from None
    except _ledger_errors() as exc:
        log.warning("checkout unavailable: %s", type(exc).__name__)
        raise _Refusal(_unavailable(as_json, lang), "unavailable", type(exc).__name__) from None
    note = f"order {order.order_no} {order.status}" + (" (replayed)" if order.replayed else "")
    headers = {"Idempotent-Replayed": "true"} if order.replayed else {}
    if as_json:
        payload = order.public() | {"order_url": f"{base}/orders/{order.order_no}"}
        return _json(payload, 201, headers | {"Location": f"/orders/{order.order_no}"}), note
    target = order.payment_url if order.status == "awaiting_payment" else None
    target = target or f"/orders/{order.order_no}?" + urlencode({"lang": lang})
    response = redirect(target, 303)
    response.headers.update(headers)
    return response, note


def _checkout_refusal(
    exc: hub_checkout.CheckoutError,
    event: Event,
    lang: str,
    as_json: bool,
    values: dict[str, str],
    key: str,
    fields: dict[str, str],
) -> Response:
    headers = {"Retry-After": RETRY_AFTER} if exc.status == 503 else {}
    link = None
    if isinstance(exc, hub_checkout.AlreadyRegistered):
        registered_at = exc.data.get("registered_at") or datetime.now(UTC)
        platform = exc.data.get("platform") or "native"
        message = i18n.t(
            lang,
            "already_registered",
            platform=i18n.platform_name(platform, lang),
            date=i18n.format_short_date(registered_at, event.timezone, lang),
        )
        # never a link to the other order: its number is the key to that person's page,
        # and anyone can type an e-mail address
        if as_json:
            return _refuse_json(
                409, exc.error, message, platform=platform, registered_at=registered_at.isoformat()
            )
    elif isinstance(exc, hub_checkout.OrderInProgress):
        message = i18n.t(lang, exc.message_key)  # no link to it either (see above)
        if as_json:
            return _refuse_json(409, exc.error, message)
    elif isinstance(exc, hub_checkout.IdempotencyConflict):
        conflict = exc.data.get("fields") or ["body"]
        message = "this Idempotency-Key was already used with a different " + ", ".join(conflict)
        if as_json:
            return _refuse_json(
                422,
                exc.error,
                message,
                fields=dict.fromkeys(["idempotency_key", *conflict], message),
            )
        return _event_page(
            event,
            lang,
            status=422,
            values=values,
            errors={"idempotency_key": "err_idempotency_key"},
            ref=fields.get("ref"),
        )
    else:
        message = i18n.t(lang, exc.message_key)
        if as_json:
            return _refuse_json(exc.status, exc.error, message, headers=headers)
    if exc.status == 503:
        return _error_page(503, lang, "unavailable", headers)
    return _event_page(
        event,
        lang,
        status=exc.status,
        values=values,
        notice=message,
        notice_link=link,
        ref=fields.get("ref"),
        headers=headers,
    )


# --------------------------------------------------------------------------- orders


@pages.get("/checkout/success")
def checkout_success() -> Response:
    """Stripe's success_url: re-read the session (never trust the query), complete the
    order when paid, then show the order page."""
    lang = _language()
    session_id = request.args.get("session_id", "")
    if not SESSION_ID.match(session_id):
        return _error_page(404, lang, "not_found")
    order_no = None
    try:
        payments = _payments_factory()
        session = payments().retrieve_session(session_id)
        order_no = hub_checkout.order_no_of(session)
        if order_no is not None and session.status == "complete":
            hub_checkout.complete_order_from_session(session, ledger=_ledger(), payments=payments)
    except (
        Exception
    ) as exc:  # Stripe or the ledger down: show what we have; the webhook completes it
        log.warning("success page could not complete %s: %s", session_id, type(exc).__name__)
    if order_no is None:
        with _engine().connect() as conn:
            order_no = conn.execute(
                text("select order_no from app.orders where stripe_session_id = :s"),
                {"s": session_id},
            ).scalar()
    if order_no is None:
        return _error_page(404, lang, "not_found")
    return redirect(f"/orders/{order_no}?" + urlencode({"lang": lang}), 303)


@pages.get("/orders/<order_no>")
def order_page(order_no: str) -> Response:
    lang = _language()
    with _engine().connect() as conn:
        order = hub_checkout.get_order(conn, order_no)
        event = get_event(conn, order.event_id) if order else None
    if order is not None and _hold_ended(order):
        # the expiry job has not run yet: end the order now (its session with it)
        try:
            order = (
                hub_checkout.expire_order(
                    order.order_no,
                    ledger=_ledger(),
                    payments=_payments_factory(),
                    reason="hold_expired",
                )
                or order
            )
        except Exception as exc:  # shown as it is; the job ends it
            log.warning("lazy expiry of %s failed: %s", order.order_no, type(exc).__name__)
    if order is None or event is None:
        if _wants_json():
            return _refuse_json(404, "not_found", "no such order")
        return _error_page(404, lang, "not_found")
    if _wants_json():
        response = _json(
            order.public() | {"event": {"slug": event.slug, "title": event.title}}, 200
        )
        response.headers["Cache-Control"] = "no-store"
        return response
    status_key = f"status_{order.status}"
    if order.status == "confirmed" and order.registration_status == "pending":
        status_key = "status_pending"
    timeline = [
        {
            "label": i18n.t(lang, f"ev_{entry.get('event')}"),
            "at": _format_at(entry.get("at"), event.timezone),
            "iso": entry.get("at"),
        }
        for entry in order.timeline
    ]
    body = _render(
        "order.html",
        lang,
        order=order,
        event=event,
        theme=event.native_theme if event.native_theme in ("community", "clean") else "community",
        title=f"{i18n.t(lang, 'order')} · {event.title}",
        status_text=i18n.t(lang, status_key),
        confirmed=order.status == "confirmed",
        refunded=order.status == "refunded",
        timeline=timeline,
        when=i18n.format_datetime(event.starts_at, event.timezone, lang),
        price=i18n.format_money(order.amount_minor, order.currency, lang),
        event_url=f"/e/{event.slug}?" + urlencode({"lang": lang}),
    )
    return _html(body, 200)


def _hold_ended(order: hub_checkout.OrderView) -> bool:
    return (
        order.status in ("held", "awaiting_payment")
        and order.hold_expires_at is not None
        and order.hold_expires_at <= datetime.now(UTC)
    )


def _format_at(value: Any, zone: str) -> str:
    try:
        when = datetime.fromisoformat(str(value))
    except ValueError:
        return ""
    local = i18n.local_time(when, zone)
    return f"{local:%d.%m.%Y %H:%M:%S}"
