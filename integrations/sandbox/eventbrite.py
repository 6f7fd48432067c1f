"""Eventbrite REST v3 emulator: the real paths under ``/v3``, the real bodies, errors,
continuation pagination and content-free webhooks (CONTRACTS.md, Part 1, section 2).

Switching the adapter from this sandbox to www.eventbriteapi.com changes only the base URL
and the token. State lives in a :class:`SandboxStore` (SQLite), so a restarted process keeps
events, ticket classes, orders, attendees, webhooks and its id counters.

Modelling choices where Eventbrite leaves room:

- Attendee and order listings are ordered by last change (``changed_seq``), so a record that
  changes while a client pages through moves to the end and is seen again, never skipped;
  ``changed_since`` is inclusive ("changed on or after") with one-second resolution.
- Fees are absorbed by the organizer: an attendee's ``costs.gross`` is the ticket price,
  ``eventbrite_fee``/``payment_fee`` are what Eventbrite keeps from the payout.
- ``capacity`` on an event is custom once set (``capacity_is_custom``); otherwise it is the
  sum of the ticket classes' capacities. A sale must fit both the ticket class and the event.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import math
import random
import re
from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from flask import Flask, Response, has_request_context, jsonify, request
from werkzeug.exceptions import HTTPException

from hub.models import CURRENCY_EXPONENTS, slugify
from integrations.sandbox.common import (
    PeopleFactory,
    SandboxControls,
    SandboxStore,
    WebhookDelivery,
    WebhookSender,
    install_controls,
    iso_z,
    new_delivery_id,
    retry_after_header,
    utcnow,
)
from integrations.sandbox.credentials import EVENTBRITE_ORGANIZATION_ID, EVENTBRITE_TOKEN

API = "/v3"
PAGE_SIZE = 50
USER_ID = "1000000042"
TEST_PING_PATH = "{api-endpoint-to-fetch-object-details}/"
USER_AGENT = "Eventbrite Hookshot 12345"
WEBHOOK_ACTIONS = frozenset(
    {
        "order.placed",
        "order.updated",
        "order.refunded",
        "attendee.updated",
        "attendee.checked_in",
        "attendee.checked_out",
        "event.created",
        "event.published",
        "event.unpublished",
        "event.updated",
        "ticket_class.created",
        "ticket_class.updated",
        "ticket_class.deleted",
        "organizer.updated",
        "venue.updated",
    }
)
_UTC_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
_COST_RE = re.compile(r"^([A-Za-z]{3}),(\d+)$")

# (counter name, first value, stride): numeric ids shaped like Eventbrite's.
_ID_SHAPES = {
    "event": (700_000_000_000, 104_729),
    "ticket_class": (300_000_000, 811),
    "order": (4_000_000_000, 7_919),
    "attendee": (5_000_000_000, 3_571),
    "webhook": (1_000_000, 13),
    "venue": (60_000_000, 97),
    "discount": (800_000_000, 389),
}


# --------------------------------------------------------------------------- errors


class ApiError(Exception):
    """An Eventbrite error reply: ``{"error", "error_description", "status_code"}``."""

    def __init__(
        self,
        status: int,
        error: str,
        description: str,
        *,
        detail: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(f"{status} {error}: {description}")
        self.status = status
        self.error = error
        self.description = description
        self.detail = detail
        self.headers = headers or {}

    def response(self) -> Response:
        body: dict[str, Any] = {
            "status_code": self.status,
            "error_description": self.description,
            "error": self.error,
        }
        if self.detail is not None:
            body["error_detail"] = self.detail
        resp = jsonify(body)
        resp.status_code = self.status
        for key, value in self.headers.items():
            resp.headers[key] = value
        return resp


class ArgumentErrors:
    """Collects ``field -> [codes]`` and raises one ARGUMENTS_ERROR naming them all."""

    def __init__(self) -> None:
        self.fields: dict[str, list[str]] = {}

    def add(self, field: str, code: str) -> None:
        self.fields.setdefault(field, []).append(code)

    def raise_if_any(self) -> None:
        if self.fields:
            listed = ", ".join(f"{k} - {'/'.join(v)}" for k, v in self.fields.items())
            raise ApiError(
                400,
                "ARGUMENTS_ERROR",
                f"There are errors with your arguments: {listed}",
                detail={"ARGUMENTS_ERROR": self.fields},
            )


def _bad_argument(field: str, code: str = "INVALID") -> ApiError:
    errors = ArgumentErrors()
    errors.add(field, code)
    try:
        errors.raise_if_any()
    except ApiError as exc:
        return exc
    raise AssertionError("unreachable")


def _not_found(what: str = "The path you requested does not exist.") -> ApiError:
    return ApiError(404, "NOT_FOUND", what)


# --------------------------------------------------------------------------- helpers


def _now_z() -> str:
    return iso_z(utcnow())


def _parse_utc(value: Any) -> datetime | None:
    if not isinstance(value, str) or not _UTC_RE.match(value):
        return None
    try:
        return datetime.strptime(value, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=ZoneInfo("UTC"))
    except ValueError:
        return None


def _local(when: datetime, tz: str) -> str:
    return when.astimezone(ZoneInfo(tz)).strftime("%Y-%m-%dT%H:%M:%S")


def _as_bool(value: Any, field: str, errors: ArgumentErrors, default: bool = False) -> bool:
    if value is None:
        return default
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "1", "on", "yes"):
        return True
    if isinstance(value, str) and value.lower() in ("false", "0", "off", "no", ""):
        return False
    if isinstance(value, int):
        return bool(value)
    errors.add(field, "INVALID")
    return default


def _as_int(value: Any, field: str, errors: ArgumentErrors, *, minimum: int = 0) -> int | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        errors.add(field, "INVALID")
        return None
    try:
        number = int(value)
    except (TypeError, ValueError):
        errors.add(field, "INVALID")
        return None
    if number < minimum:
        errors.add(field, "INVALID")
        return None
    return number


def _text_of(html_text: str) -> str:
    return html.unescape(re.sub(r"<[^>]+>", "", html_text)).strip()


def money(value: int, currency: str) -> dict[str, Any]:
    exponent = CURRENCY_EXPONENTS.get(currency, 2)
    major = Decimal(value) / (Decimal(10) ** exponent)
    major_text = f"{major:.{exponent}f}"
    return {
        "currency": currency,
        "value": value,
        "major_value": major_text,
        "display": f"{currency}{major_text}",
    }


def _nest_form(pairs: list[tuple[str, list[str]]]) -> dict[str, Any]:
    """Old-style dotted form fields (``event.name.html=...``) as the nested JSON body."""
    out: dict[str, Any] = {}
    for key, values in pairs:
        node = out
        parts = key.split(".")
        for part in parts[:-1]:
            child = node.get(part)
            if not isinstance(child, dict):
                child = {}
                node[part] = child
            node = child
        node[parts[-1]] = values[0] if len(values) == 1 else values
    return out


def _body() -> dict[str, Any]:
    data = request.get_json(silent=True)
    if isinstance(data, dict):
        return data
    if request.form:
        return _nest_form(list(request.form.lists()))
    return {}


def _wrapped(body: dict[str, Any], name: str) -> dict[str, Any]:
    inner = body.get(name)
    if isinstance(inner, dict):
        return inner
    # Some clients send the resource's fields unwrapped; Eventbrite tolerates it.
    return {k: v for k, v in body.items() if k != name}


def _id_list(value: Any) -> list[str]:
    if value is None or value == "":
        return []
    if isinstance(value, str):
        return [v.strip() for v in value.split(",") if v.strip()]
    if isinstance(value, list | tuple):
        return [str(v).strip() for v in value if str(v).strip()]
    return [str(value)]


def _public(doc: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in doc.items() if not k.startswith("_")}


def _encode_token(data: dict[str, Any]) -> str:
    raw = json.dumps(data, separators=(",", ":"), sort_keys=True).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_token(token: str) -> dict[str, Any] | None:
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        data = json.loads(raw)
    except (ValueError, json.JSONDecodeError):
        return None
    return data if isinstance(data, dict) else None


def _fingerprint(*parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:16]


# --------------------------------------------------------------------------- the sandbox


class EventbriteSandbox:
    """The emulator's state and behaviour; HTTP routes and ``/_sandbox`` calls use it."""

    def __init__(
        self,
        store: SandboxStore,
        controls: SandboxControls,
        sender: WebhookSender,
        *,
        organization_id: str,
        public_base_url: str | None,
    ) -> None:
        self.store = store
        self.controls = controls
        self.sender = sender
        self.organization_id = organization_id
        self._public_base_url = public_base_url.rstrip("/") if public_base_url else None
        self._seen_base_url: str | None = None

    # -- urls and ids ----------------------------------------------------------
    def base_url(self) -> str:
        """Root for ``api_url``/``resource_uri``: configured, else the request's host."""
        if self._public_base_url:
            return self._public_base_url
        if has_request_context():
            return request.host_url.rstrip("/")
        if self._seen_base_url:
            return self._seen_base_url
        meta = self.store.get("meta", "base_url")
        return (meta or {}).get("url", "http://127.0.0.1:8102")

    def remember_base_url(self) -> None:
        url = request.host_url.rstrip("/")
        if url != self._seen_base_url:
            self._seen_base_url = url
            doc = {"url": url}
            if self.store.get("meta", "base_url") is None:
                self.store.insert("meta", "base_url", doc)
            else:
                self.store.update("meta", "base_url", doc)

    def api_url(self, path: str) -> str:
        return f"{self.base_url()}{API}/{path.strip('/')}/"

    def _new_id(self, kind: str) -> str:
        first, stride = _ID_SHAPES[kind]
        n = self.store.next_counter(f"id:{kind}", 1)
        return str(first + n * stride)

    # -- rendering -------------------------------------------------------------
    def _ticket_classes(self, event_id: str) -> list[dict[str, Any]]:
        return self.store.all("ticket_class", scope=event_id)

    def _sold(self, event_id: str) -> int:
        return sum(int(tc["quantity_sold"]) for tc in self._ticket_classes(event_id))

    def render_event(self, doc: dict[str, Any], *, expand: set[str] | None = None) -> dict:
        out = _public(doc)
        classes = self._ticket_classes(doc["id"])
        if not doc.get("capacity_is_custom"):
            out["capacity"] = sum(int(tc["capacity"]) for tc in classes)
        out["is_free"] = all(tc["free"] for tc in classes) if classes else True
        out["status"] = self._time_status(doc)
        out["resource_uri"] = self.api_url(f"events/{doc['id']}")
        if expand and "ticket_classes" in expand:
            out["ticket_classes"] = [self.render_ticket_class(tc) for tc in classes]
        if expand and "venue" in expand:
            venue = self.store.get("venue", doc["venue_id"]) if doc.get("venue_id") else None
            out["venue"] = self.render_venue(venue) if venue else None
        return out

    @staticmethod
    def _time_status(doc: dict[str, Any]) -> str:
        status = doc["status"]
        if status != "live":
            return status
        now = _now_z()
        if now >= doc["end"]["utc"]:
            return "ended"
        if now >= doc["start"]["utc"]:
            return "started"
        return status

    def render_ticket_class(self, tc: dict[str, Any]) -> dict[str, Any]:
        out = _public(tc)
        now = _now_z()
        if tc.get("sales_end") and now >= tc["sales_end"]:
            status = "SALES_ENDED"
        elif tc.get("sales_start") and now < tc["sales_start"]:
            status = "NOT_YET_ON_SALE"
        elif int(tc["quantity_sold"]) >= int(tc["capacity"]):
            status = "SOLD_OUT"
        else:
            status = "AVAILABLE"
        out["on_sale_status"] = status
        out["quantity_total"] = tc["capacity"]
        out["resource_uri"] = self.api_url(f"events/{tc['event_id']}/ticket_classes/{tc['id']}")
        return out

    def render_attendee(self, doc: dict[str, Any]) -> dict[str, Any]:
        out = _public(doc)
        out["resource_uri"] = self.api_url(f"events/{doc['event_id']}/attendees/{doc['id']}")
        return out

    def render_order(self, doc: dict[str, Any], *, expand: set[str] | None = None) -> dict:
        out = _public(doc)
        out["resource_uri"] = self.api_url(f"orders/{doc['id']}")
        if expand and "attendees" in expand:
            attendees = [self.store.get("attendee", aid) for aid in doc.get("_attendee_ids", [])]
            out["attendees"] = [self.render_attendee(a) for a in attendees if a]
        return out

    def render_webhook(self, doc: dict[str, Any]) -> dict[str, Any]:
        out = _public(doc)
        out["resource_uri"] = self.api_url(f"webhooks/{doc['id']}")
        return out

    def render_venue(self, doc: dict[str, Any]) -> dict[str, Any]:
        out = _public(doc)
        out["resource_uri"] = self.api_url(f"venues/{doc['id']}")
        return out

    def render_discount(self, doc: dict[str, Any]) -> dict[str, Any]:
        out = _public(doc)
        out["resource_uri"] = self.api_url(f"discounts/{doc['id']}")
        return out

    # -- lookups ---------------------------------------------------------------
    def check_org(self, org_id: str) -> None:
        if org_id != self.organization_id:
            raise ApiError(
                403, "NOT_AUTHORIZED", "You do not have permission to access this organization."
            )

    def event(self, event_id: str) -> dict[str, Any]:
        doc = self.store.get("event", event_id)
        if doc is None or doc["status"] == "deleted":
            raise _not_found("The event you requested does not exist.")
        return doc

    def ticket_class(self, event_id: str, tc_id: str) -> dict[str, Any]:
        doc = self.store.get("ticket_class", tc_id)
        if doc is None or doc["event_id"] != event_id:
            raise _not_found("The ticket class you requested does not exist.")
        return doc

    # -- webhooks --------------------------------------------------------------
    def _hook_delivery(self, hook: dict[str, Any], action: str, api_url: str) -> WebhookDelivery:
        body = {
            "config": {
                "action": action,
                "user_id": hook["user_id"],
                "endpoint_url": hook["endpoint_url"],
                "webhook_id": hook["id"],
            },
            "api_url": api_url,
        }
        headers = {
            "Content-Type": "application/json",
            "X-Eventbrite-Event": action,
            "X-Eventbrite-Delivery": new_delivery_id(),
            "User-Agent": USER_AGENT,
        }
        return WebhookDelivery(hook["endpoint_url"], json.dumps(body).encode(), headers)

    def deliveries(self, action: str, api_path: str, event_id: str | None) -> list:
        api_url = self.api_url(api_path)
        out = []
        for hook in self.store.all("webhook", scope=self.organization_id):
            if action not in hook["actions"]:
                continue
            if hook.get("event_id") and event_id and hook["event_id"] != event_id:
                continue
            out.append(self._hook_delivery(hook, action, api_url))
        return out

    def notify(self, action: str, api_path: str, event_id: str | None) -> None:
        self.sender.send(self.deliveries(action, api_path, event_id))

    # -- events ----------------------------------------------------------------
    def _validate_event_fields(
        self, data: dict[str, Any], current: dict[str, Any] | None
    ) -> dict[str, Any]:
        """Validate a create (current=None) or partial update; returns fields to store."""
        errors = ArgumentErrors()
        changes: dict[str, Any] = {}
        creating = current is None

        name = data.get("name")
        if name is not None or creating:
            name_html = name.get("html") if isinstance(name, dict) else None
            if not isinstance(name_html, str) or not name_html.strip():
                errors.add("event.name.html", "MISSING" if not name_html else "INVALID")
            else:
                changes["name"] = {"text": _text_of(name_html), "html": name_html}
        desc = data.get("description")
        if desc is not None:
            desc_html = desc.get("html") if isinstance(desc, dict) else None
            if desc_html is not None and not isinstance(desc_html, str):
                errors.add("event.description.html", "INVALID")
            else:
                desc_html = desc_html or ""
                changes["description"] = {"text": _text_of(desc_html), "html": desc_html}
                changes["summary"] = _text_of(desc_html)[:140]
        for key in ("start", "end"):
            block = data.get(key)
            if block is None and not creating:
                continue
            if not isinstance(block, dict):
                errors.add(f"event.{key}.utc", "MISSING")
                errors.add(f"event.{key}.timezone", "MISSING")
                continue
            tz = block.get("timezone")
            when = _parse_utc(block.get("utc"))
            if not tz:
                errors.add(f"event.{key}.timezone", "MISSING")
            else:
                try:
                    ZoneInfo(str(tz))
                except (ZoneInfoNotFoundError, ValueError):
                    errors.add(f"event.{key}.timezone", "INVALID")
                    tz = None
            if block.get("utc") in (None, ""):
                errors.add(f"event.{key}.utc", "MISSING")
            elif when is None:
                errors.add(f"event.{key}.utc", "INVALID")
            if tz and when:
                changes[key] = {"timezone": tz, "local": _local(when, tz), "utc": iso_z(when)}
        currency = data.get("currency")
        if currency is not None or creating:
            if not currency:
                errors.add("event.currency", "MISSING")
            elif str(currency).upper() not in CURRENCY_EXPONENTS:
                errors.add("event.currency", "INVALID")
            else:
                currency = str(currency).upper()
                if (
                    current
                    and currency != current["currency"]
                    and self._ticket_classes(current["id"])
                ):
                    raise ApiError(
                        400,
                        "CURRENCY_MISMATCH",
                        "The currency cannot change once the event has ticket classes.",
                    )
                changes["currency"] = currency
        if "capacity" in data:
            capacity = _as_int(data["capacity"], "event.capacity", errors)
            if capacity is not None:
                changes["capacity"] = capacity
                changes["capacity_is_custom"] = True
        for flag in ("online_event", "listed", "shareable"):
            if flag in data:
                changes[flag] = _as_bool(data[flag], f"event.{flag}", errors)
        if "venue_id" in data:
            venue_id = data["venue_id"] or None
            if venue_id and self.store.get("venue", str(venue_id)) is None:
                errors.add("event.venue_id", "INVALID")
            changes["venue_id"] = str(venue_id) if venue_id else None
        errors.raise_if_any()

        merged = {**(current or {}), **changes}
        if merged["end"]["utc"] <= merged["start"]["utc"]:
            raise ApiError(400, "DATE_CONFLICT", "The event end must be after its start.")
        if merged.get("venue_id") and merged.get("online_event"):
            raise ApiError(
                400, "VENUE_AND_ONLINE", "An event cannot have a venue and be online at once."
            )
        if (
            current
            and changes.get("capacity") is not None
            and changes["capacity"] < self._sold(current["id"])
        ):
            raise _bad_argument("event.capacity")
        return changes

    def create_event(self, org_id: str, body: dict[str, Any]) -> dict[str, Any]:
        self.check_org(org_id)
        data = _wrapped(body, "event")
        changes = self._validate_event_fields(data, None)
        with self.store.atomic():
            event_id = self._new_id("event")
            now = _now_z()
            doc = {
                "id": event_id,
                "name": changes["name"],
                "description": changes.get("description", {"text": None, "html": None}),
                "summary": changes.get("summary"),
                "url": f"https://www.eventbrite.com/e/{slugify(changes['name']['text'])}"
                f"-tickets-{event_id}",
                "start": changes["start"],
                "end": changes["end"],
                "organization_id": org_id,
                "organizer_id": USER_ID,
                "created": now,
                "changed": now,
                "published": None,
                "capacity": changes.get("capacity"),
                "capacity_is_custom": bool(changes.get("capacity_is_custom")),
                "status": "draft",
                "currency": changes["currency"],
                "listed": changes.get("listed", True),
                "shareable": changes.get("shareable", False),
                "online_event": changes.get("online_event", False),
                "tx_time_limit": 480,
                "hide_start_date": False,
                "hide_end_date": False,
                "locale": "en_US",
                "is_locked": False,
                "privacy_setting": "unlocked",
                "is_series": False,
                "is_series_parent": False,
                "inventory_type": "limited",
                "is_reserved_seating": False,
                "show_pick_a_seat": False,
                "show_seatmap_thumbnail": False,
                "show_colors_in_seatmap_thumbnail": False,
                "source": "api",
                "version": None,
                "logo_id": None,
                "logo": None,
                "venue_id": changes.get("venue_id"),
                "category_id": None,
                "subcategory_id": None,
                "format_id": None,
                "is_externally_ticketed": False,
            }
            self.store.insert("event", event_id, doc, scope=org_id)
        self.notify("event.created", f"events/{event_id}", event_id)
        return self.render_event(doc)

    def update_event(self, event_id: str, body: dict[str, Any]) -> dict[str, Any]:
        with self.store.atomic():
            doc = self.event(event_id)
            if doc["status"] == "canceled":
                raise ApiError(400, "ALREADY_CANCELED", "This event has been canceled.")
            changes = self._validate_event_fields(_wrapped(body, "event"), doc)
            doc.update(changes)
            doc["changed"] = _now_z()
            self.store.update("event", event_id, doc)
        self.notify("event.updated", f"events/{event_id}", event_id)
        return self.render_event(doc)

    def publish(self, event_id: str) -> dict[str, Any]:
        with self.store.atomic():
            doc = self.event(event_id)
            if doc["status"] != "draft":
                raise ApiError(
                    400,
                    "ALREADY_PUBLISHED_OR_DELETED",
                    "This event has already been published or deleted.",
                )
            if not self._ticket_classes(event_id):
                raise ApiError(400, "CANNOT_PUBLISH", "Event must have at least one ticket class.")
            now = _now_z()
            doc.update(status="live", published=now, changed=now)
            self.store.update("event", event_id, doc)
        self.notify("event.published", f"events/{event_id}", event_id)
        return {"published": True}

    def unpublish(self, event_id: str) -> dict[str, Any]:
        with self.store.atomic():
            doc = self.event(event_id)
            if doc["status"] != "live":
                raise ApiError(400, "CANNOT_UNPUBLISH", "This event is not published.")
            if self._sold(event_id):
                raise ApiError(
                    400, "CANNOT_UNPUBLISH", "An event with orders cannot be unpublished."
                )
            doc.update(status="draft", changed=_now_z())
            self.store.update("event", event_id, doc)
        self.notify("event.unpublished", f"events/{event_id}", event_id)
        return {"unpublished": True}

    def cancel(self, event_id: str) -> dict[str, Any]:
        with self.store.atomic():
            doc = self.event(event_id)
            if doc["status"] == "canceled":
                raise ApiError(400, "ALREADY_CANCELED", "This event has already been canceled.")
            doc.update(status="canceled", changed=_now_z())
            self.store.update("event", event_id, doc)
        return {"canceled": True}

    def capacity_tier(self, event_id: str) -> dict[str, Any]:
        doc = self.event(event_id)
        rendered = self.render_event(doc)
        sold = self._sold(event_id)
        total = int(rendered["capacity"] or 0)
        return {
            "event_id": event_id,
            "capacity_total": total,
            "capacity_sold": sold,
            "capacity_pending": 0,
            "capacity_available": max(total - sold, 0),
            "capacity_is_custom": bool(doc.get("capacity_is_custom")),
            "quantity_total": total,
            "quantity_sold": sold,
            "quantity_pending": 0,
            "holds": [],
            "resource_uri": self.api_url(f"events/{event_id}/capacity_tier"),
        }

    def set_capacity_tier(self, event_id: str, body: dict[str, Any]) -> dict[str, Any]:
        data = _wrapped(body, "capacity_tier")
        if "capacity_total" not in data:
            raise _bad_argument("capacity_tier.capacity_total", "MISSING")
        errors = ArgumentErrors()
        total = _as_int(data["capacity_total"], "capacity_tier.capacity_total", errors)
        errors.raise_if_any()
        with self.store.atomic():
            doc = self.event(event_id)
            if total is not None and total < self._sold(event_id):
                raise _bad_argument("capacity_tier.capacity_total")
            doc.update(capacity=total, capacity_is_custom=True, changed=_now_z())
            self.store.update("event", event_id, doc)
        return self.capacity_tier(event_id)

    def list_org_events(self, org_id: str, args: dict[str, str]) -> dict[str, Any]:
        self.check_org(org_id)
        name_filter = (args.get("name_filter") or "").casefold()
        time_filter = args.get("time_filter") or "all"
        statuses = set(_id_list(args.get("status") or "all"))
        order_by = args.get("order_by") or "start_asc"
        if time_filter not in ("all", "past", "current_future"):
            raise _bad_argument("time_filter")
        if order_by not in ("start_asc", "start_desc", "created_asc", "created_desc"):
            raise _bad_argument("order_by")
        now = _now_z()
        items = []
        for doc in self.store.all("event", scope=org_id):
            status = self._time_status(doc)
            if doc["status"] == "deleted":
                continue
            if "all" not in statuses and status not in statuses and doc["status"] not in statuses:
                continue
            if name_filter and name_filter not in doc["name"]["text"].casefold():
                continue
            if time_filter == "past" and doc["end"]["utc"] >= now:
                continue
            if time_filter == "current_future" and doc["end"]["utc"] < now:
                continue
            items.append(doc)
        key, _, direction = order_by.partition("_")
        items.sort(
            key=lambda d: (d["start"]["utc"] if key == "start" else d["created"], d["id"]),
            reverse=direction == "desc",
        )
        fingerprint = _fingerprint(
            "org_events", org_id, name_filter, time_filter, sorted(statuses), order_by
        )
        page, pagination = _paginate_list(items, fingerprint, args.get("continuation"))
        return {"pagination": pagination, "events": [self.render_event(d) for d in page]}

    # -- ticket classes --------------------------------------------------------
    def _validate_ticket_class(
        self, event: dict[str, Any], data: dict[str, Any], current: dict[str, Any] | None
    ) -> dict[str, Any]:
        errors = ArgumentErrors()
        changes: dict[str, Any] = {}
        creating = current is None
        if "name" in data or creating:
            name = data.get("name")
            if not isinstance(name, str) or not name.strip():
                errors.add("ticket_class.name", "MISSING")
            else:
                changes["name"] = name.strip()
                changes["display_name"] = name.strip()
        if "description" in data:
            changes["description"] = data["description"]
        capacity_raw = data.get("capacity", data.get("quantity_total"))
        if capacity_raw is not None:
            capacity = _as_int(capacity_raw, "ticket_class.capacity", errors)
            if capacity is not None:
                changes["capacity"] = capacity
        elif creating:
            errors.add("ticket_class.capacity", "MISSING")
        for key in ("hidden", "auto_hide", "include_fee"):
            if key in data:
                changes[key] = _as_bool(data[key], f"ticket_class.{key}", errors)
        for key in ("minimum_quantity", "maximum_quantity"):
            if key in data:
                changes[key] = _as_int(data[key], f"ticket_class.{key}", errors, minimum=1)
        for key in ("sales_start", "sales_end"):
            if key in data and data[key] not in (None, ""):
                when = _parse_utc(data[key])
                if when is None:
                    errors.add(f"ticket_class.{key}", "INVALID")
                else:
                    changes[key] = iso_z(when)
        free = _as_bool(data.get("free"), "ticket_class.free", errors) if "free" in data else None
        cost_raw = data.get("cost")
        errors.raise_if_any()

        if free and cost_raw not in (None, ""):
            raise ApiError(
                400, "FREE_AND_COST", "A ticket class cannot be free and have a cost at once."
            )
        if cost_raw not in (None, ""):
            if isinstance(cost_raw, dict):
                currency, value = cost_raw.get("currency"), cost_raw.get("value")
            else:
                match = _COST_RE.match(str(cost_raw).strip())
                currency, value = (match.group(1), match.group(2)) if match else (None, None)
            try:
                minor = int(value) if value is not None else None
            except (TypeError, ValueError):
                minor = None
            if not currency or minor is None or minor < 0:
                raise _bad_argument("ticket_class.cost")
            if str(currency).upper() != event["currency"]:
                raise ApiError(
                    400,
                    "CURRENCY_MISMATCH",
                    f"The ticket currency must be the event's currency ({event['currency']}).",
                )
            changes.update(free=False, cost=money(minor, event["currency"]))
        elif free:
            changes.update(free=True, cost=None)
        elif creating or free is False:
            raise ApiError(400, "NO_COST", "A paid ticket class needs a cost.")
        capacity = changes.get("capacity")
        if current and capacity is not None and capacity < int(current["quantity_sold"]):
            raise _bad_argument("ticket_class.capacity")
        merged = {**(current or {}), **changes}
        start, end = merged.get("sales_start"), merged.get("sales_end")
        if start and end and end <= start:
            raise ApiError(400, "DATE_CONFLICT", "Sales must end after they start.")
        return changes

    def create_ticket_class(self, event_id: str, body: dict[str, Any]) -> dict[str, Any]:
        with self.store.atomic():
            event = self.event(event_id)
            changes = self._validate_ticket_class(event, _wrapped(body, "ticket_class"), None)
            tc_id = self._new_id("ticket_class")
            sorting = len(self._ticket_classes(event_id)) + 1
            doc = {
                "id": tc_id,
                "event_id": event_id,
                "name": changes["name"],
                "display_name": changes["display_name"],
                "description": changes.get("description"),
                "sorting": sorting,
                "donation": False,
                "free": changes["free"],
                "cost": changes["cost"],
                "fee": money(0, event["currency"]) if not changes["free"] else None,
                "tax": money(0, event["currency"]) if not changes["free"] else None,
                "capacity": changes["capacity"],
                "quantity_sold": 0,
                "minimum_quantity": changes.get("minimum_quantity") or 1,
                "maximum_quantity": changes.get("maximum_quantity"),
                "maximum_quantity_per_order": 10,
                "sales_start": changes.get("sales_start", _now_z()),
                "sales_end": changes.get("sales_end", event["start"]["utc"]),
                "sales_end_relative": None,
                "hidden": changes.get("hidden", False),
                "hidden_currently": changes.get("hidden", False),
                "auto_hide": changes.get("auto_hide", False),
                "include_fee": changes.get("include_fee", False),
                "split_fee": False,
                "hide_description": True,
                "hide_sale_dates": False,
                "has_pdf_ticket": True,
                "delivery_methods": ["electronic"],
                "category": "admission",
                "sales_channels": ["online", "atd"],
                "order_confirmation_message": None,
                "payment_constraints": [],
                "image_id": None,
            }
            self.store.insert("ticket_class", tc_id, doc, scope=event_id)
            event["changed"] = _now_z()
            self.store.update("event", event_id, event)
        self.notify("ticket_class.created", f"events/{event_id}/ticket_classes/{tc_id}", event_id)
        return self.render_ticket_class(doc)

    def update_ticket_class(self, event_id: str, tc_id: str, body: dict[str, Any]) -> dict:
        with self.store.atomic():
            event = self.event(event_id)
            doc = self.ticket_class(event_id, tc_id)
            changes = self._validate_ticket_class(event, _wrapped(body, "ticket_class"), doc)
            doc.update(changes)
            if "hidden" in changes:
                doc["hidden_currently"] = changes["hidden"]
            self.store.update("ticket_class", tc_id, doc)
        self.notify("ticket_class.updated", f"events/{event_id}/ticket_classes/{tc_id}", event_id)
        return self.render_ticket_class(doc)

    def list_ticket_classes(self, event_id: str, args: dict[str, str]) -> dict[str, Any]:
        self.event(event_id)
        items = self._ticket_classes(event_id)
        page, pagination = _paginate_list(
            items, _fingerprint("tc", event_id), args.get("continuation")
        )
        return {
            "pagination": pagination,
            "ticket_classes": [self.render_ticket_class(tc) for tc in page],
        }

    # -- orders and attendees --------------------------------------------------
    def _changed_page(
        self,
        kind: str,
        event_id: str,
        args: dict[str, str],
        where: list[str],
        params: list[Any],
        status_key: str,
    ) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        changed_since = args.get("changed_since") or None
        if changed_since is not None:
            when = _parse_utc(changed_since)
            if when is None:
                raise _bad_argument("changed_since")
            where.append("json_extract(data, '$.changed') >= ?")
            params.append(iso_z(when))
        fingerprint = _fingerprint(kind, event_id, changed_since, status_key)
        after, page_number = 0, 1
        if args.get("continuation"):
            token = _decode_token(args["continuation"])
            if not token or token.get("f") != fingerprint:
                raise ApiError(
                    400,
                    "INVALID_CONTINUATION",
                    "The continuation token is invalid or does not match this request.",
                )
            after, page_number = int(token["a"]), int(token["p"])
        where_sql = " and ".join(where)
        total = self.store.count(kind, scope=event_id, where=where_sql, params=tuple(params))
        rows = self.store.page(
            kind,
            scope=event_id,
            after_seq=after,
            limit=PAGE_SIZE + 1,
            order="changed_seq",
            where=where_sql,
            params=tuple(params),
        )
        has_more = len(rows) > PAGE_SIZE
        rows = rows[:PAGE_SIZE]
        pagination: dict[str, Any] = {
            "object_count": total,
            "page_number": page_number,
            "page_size": PAGE_SIZE,
            "page_count": max(math.ceil(total / PAGE_SIZE), 1),
            "has_more_items": has_more,
        }
        if has_more:
            pagination["continuation"] = _encode_token(
                {"f": fingerprint, "a": rows[-1][0], "p": page_number + 1}
            )
        return [doc for _, doc in rows], pagination

    def list_orders(self, event_id: str, args: dict[str, str]) -> dict[str, Any]:
        self.event(event_id)
        status = args.get("status") or "all_not_deleted"
        where, params = ["1=1"], []
        if status == "active":
            where.append("json_extract(data, '$.status') = 'placed'")
        elif status == "inactive":
            where.append("json_extract(data, '$.status') != 'placed'")
        elif status == "all_not_deleted":
            where.append("json_extract(data, '$.status') != 'deleted'")
        elif status != "both":
            raise _bad_argument("status")
        docs, pagination = self._changed_page("order", event_id, args, where, params, status)
        expand = set(_id_list(args.get("expand")))
        return {
            "pagination": pagination,
            "orders": [self.render_order(d, expand=expand) for d in docs],
        }

    def list_attendees(self, event_id: str, args: dict[str, str]) -> dict[str, Any]:
        self.event(event_id)
        status = args.get("status") or ""
        where, params = ["1=1"], []
        if status == "attending":
            where.append(
                "json_extract(data, '$.cancelled') = 0 and json_extract(data, '$.refunded') = 0"
            )
        elif status == "not_attending":
            where.append(
                "(json_extract(data, '$.cancelled') = 1 or json_extract(data, '$.refunded') = 1)"
            )
        elif status == "unpaid":
            where.append("json_extract(data, '$.status') = 'Unpaid'")
        elif status:
            raise _bad_argument("status")
        docs, pagination = self._changed_page("attendee", event_id, args, where, params, status)
        return {"pagination": pagination, "attendees": [self.render_attendee(d) for d in docs]}

    def order(self, order_id: str) -> dict[str, Any]:
        doc = self.store.get("order", order_id)
        if doc is None:
            raise _not_found("The order you requested does not exist.")
        return doc

    def attendee(self, event_id: str | None, attendee_id: str) -> dict[str, Any]:
        doc = self.store.get("attendee", attendee_id)
        if doc is None or (event_id is not None and doc["event_id"] != event_id):
            raise _not_found("The attendee you requested does not exist.")
        return doc

    # -- simulation ------------------------------------------------------------
    def simulate_registrations(
        self,
        event_id: str,
        count: int,
        seed: int | None = None,
        paid_ratio: float | None = None,
        *,
        access_code: str | None = None,
    ) -> list[str]:
        """Place up to ``count`` orders (1 attendee, sometimes 2) and send ``order.placed``.

        Orders go to the event's visible ticket classes that are on sale; ``paid_ratio``
        is the chance an order picks a paid class when the event has free and paid ones.
        ``access_code`` (an access discount) unlocks its hidden ticket classes instead.
        Stops early when the event sells out; returns the ids of the orders placed.
        """
        rng = random.Random(seed)
        people = PeopleFactory(seed)
        order_ids: list[str] = []
        deliveries: list[WebhookDelivery] = []
        for _ in range(max(int(count), 0)):
            buyer = people.person()
            quantity = 2 if rng.random() < 0.15 else 1
            extra = people.person() if quantity == 2 else None
            placed = self._place_order(event_id, rng, buyer, extra, paid_ratio, access_code)
            if placed is None:
                break
            order_ids.append(placed)
            deliveries.extend(self.deliveries("order.placed", f"orders/{placed}", event_id))
        self.sender.send(deliveries)
        return order_ids

    def _sellable_classes(
        self, event: dict[str, Any], access_code: str | None
    ) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
        classes = self._ticket_classes(event["id"])
        discount = None
        if access_code:
            for doc in self.store.all("discount", scope=self.organization_id):
                if doc["code"] == access_code and doc["event_id"] == event["id"]:
                    discount = doc
            if discount is None:
                raise _bad_argument("access_code")
            if discount["quantity_available"] is not None and (
                discount["quantity_sold"] >= discount["quantity_available"]
            ):
                return [], discount
            allowed = set(discount["ticket_class_ids"])
            classes = [tc for tc in classes if tc["id"] in allowed]
        else:
            classes = [tc for tc in classes if not tc["hidden"]]
        now = _now_z()
        sellable = [
            tc
            for tc in classes
            if int(tc["capacity"]) > int(tc["quantity_sold"])
            and (not tc.get("sales_end") or now < tc["sales_end"])
            and (not tc.get("sales_start") or now >= tc["sales_start"])
        ]
        return sellable, discount

    def _place_order(
        self,
        event_id: str,
        rng: random.Random,
        buyer: Any,
        extra: Any,
        paid_ratio: float | None,
        access_code: str | None,
    ) -> str | None:
        with self.store.atomic():
            event = self.event(event_id)
            if event["status"] != "live":
                return None
            classes, discount = self._sellable_classes(event, access_code)
            if not classes:
                return None
            paid = [tc for tc in classes if not tc["free"]]
            free = [tc for tc in classes if tc["free"]]
            if paid and free and paid_ratio is not None:
                pool = paid if rng.random() < paid_ratio else free
            else:
                pool = classes
            tc = rng.choice(pool)
            quantity = 2 if extra is not None else 1
            quantity = min(quantity, int(tc["capacity"]) - int(tc["quantity_sold"]))
            if event.get("capacity_is_custom"):
                quantity = min(quantity, int(event["capacity"] or 0) - self._sold(event_id))
            if quantity <= 0:
                return None
            order_id = self._new_id("order")
            now = _now_z()
            currency = event["currency"]
            price = 0 if tc["free"] else int(tc["cost"]["value"])
            attendee_ids = []
            for index, person in enumerate([buyer, extra][:quantity]):
                attendee_id = self._new_id("attendee")
                attendee_ids.append(attendee_id)
                attendee = {
                    "id": attendee_id,
                    "created": now,
                    "changed": now,
                    "ticket_class_id": tc["id"],
                    "ticket_class_name": tc["name"],
                    "variant_id": None,
                    "profile": {
                        "first_name": person.first_name,
                        "last_name": person.last_name,
                        "name": person.full_name,
                        "email": person.email,
                        "cell_phone": person.phone,
                        "addresses": {},
                    },
                    "questions": [],
                    "answers": [],
                    "barcodes": [
                        {
                            "status": "unused",
                            "barcode": f"{order_id}{attendee_id[-6:]}{index + 1:03d}",
                            "checkin_type": 0,
                            "created": now,
                            "changed": now,
                        }
                    ],
                    "team": None,
                    "affiliate": "api",
                    "checked_in": False,
                    "cancelled": False,
                    "refunded": False,
                    "costs": _costs(price, currency),
                    "status": "Attending",
                    "event_id": event_id,
                    "order_id": order_id,
                    "guestlist_id": None,
                    "invited_by": None,
                    "delivery_method": "electronic",
                    "quantity": 1,
                }
                self.store.insert("attendee", attendee_id, attendee, scope=event_id)
            order = {
                "id": order_id,
                "created": now,
                "changed": now,
                "name": buyer.full_name,
                "first_name": buyer.first_name,
                "last_name": buyer.last_name,
                "email": buyer.email,
                "costs": _costs(price * quantity, currency),
                "event_id": event_id,
                "time_remaining": None,
                "status": "placed",
                "promo_code": discount["code"] if discount else None,
                "_attendee_ids": attendee_ids,
            }
            self.store.insert("order", order_id, order, scope=event_id)
            tc["quantity_sold"] = int(tc["quantity_sold"]) + quantity
            self.store.update("ticket_class", tc["id"], tc)
            if discount is not None:
                discount["quantity_sold"] = int(discount["quantity_sold"]) + quantity
                self.store.update("discount", discount["id"], discount)
        return order_id

    def _release(self, attendee: dict[str, Any]) -> None:
        tc = self.store.get("ticket_class", attendee["ticket_class_id"])
        if tc is not None:
            tc["quantity_sold"] = max(int(tc["quantity_sold"]) - 1, 0)
            self.store.update("ticket_class", tc["id"], tc)

    def refund(self, order_id: str) -> dict[str, Any]:
        with self.store.atomic():
            order = self.order(order_id)
            now = _now_z()
            for attendee_id in order["_attendee_ids"]:
                attendee = self.store.get("attendee", attendee_id)
                if attendee is None:
                    continue
                if not attendee["cancelled"] and not attendee["refunded"]:
                    self._release(attendee)
                attendee.update(refunded=True, cancelled=True, status="Not Attending", changed=now)
                self.store.update("attendee", attendee_id, attendee)
            order.update(status="refunded", changed=now)
            self.store.update("order", order_id, order)
        self.notify("order.refunded", f"orders/{order_id}", order["event_id"])
        return self.render_order(order, expand={"attendees"})

    def cancel_attendee(self, attendee_id: str) -> dict[str, Any]:
        with self.store.atomic():
            attendee = self.attendee(None, attendee_id)
            if not attendee["cancelled"] and not attendee["refunded"]:
                self._release(attendee)
            attendee.update(cancelled=True, status="Not Attending", changed=_now_z())
            self.store.update("attendee", attendee_id, attendee)
            order = self.store.get("order", attendee["order_id"])
            if order is not None:
                order["changed"] = attendee["changed"]
                self.store.update("order", order["id"], order)
        path = f"events/{attendee['event_id']}/attendees/{attendee_id}"
        self.notify("attendee.updated", path, attendee["event_id"])
        return self.render_attendee(attendee)

    def check_in(self, attendee_id: str) -> dict[str, Any]:
        with self.store.atomic():
            attendee = self.attendee(None, attendee_id)
            if attendee["cancelled"] or attendee["refunded"]:
                raise ApiError(400, "ATTENDEE_NOT_ATTENDING", "This attendee has no valid ticket.")
            now = _now_z()
            for barcode in attendee["barcodes"]:
                barcode.update(status="used", changed=now)
            attendee.update(checked_in=True, status="Checked In", changed=now)
            self.store.update("attendee", attendee_id, attendee)
        path = f"events/{attendee['event_id']}/attendees/{attendee_id}"
        self.notify("attendee.checked_in", path, attendee["event_id"])
        return self.render_attendee(attendee)

    # -- webhooks --------------------------------------------------------------
    def create_webhook(self, org_id: str, body: dict[str, Any]) -> dict[str, Any]:
        self.check_org(org_id)
        data = _wrapped(body, "webhook")
        errors = ArgumentErrors()
        endpoint = data.get("endpoint_url")
        if not isinstance(endpoint, str) or not endpoint.strip():
            errors.add("endpoint_url", "MISSING")
        elif not re.match(r"^https?://[^\s/]+", endpoint.strip()):
            errors.add("endpoint_url", "INVALID")
        actions = _id_list(data.get("actions"))
        if not actions:
            errors.add("actions", "MISSING")
        elif any(a not in WEBHOOK_ACTIONS for a in actions):
            errors.add("actions", "INVALID")
        event_id = str(data.get("event_id") or "")
        errors.raise_if_any()
        if event_id:
            self.event(event_id)
        with self.store.atomic():
            hook_id = self._new_id("webhook")
            doc = {
                "id": hook_id,
                "endpoint_url": endpoint.strip(),
                "actions": actions,
                "event_id": event_id or None,
                "user_id": USER_ID,
                "created": _now_z(),
            }
            self.store.insert("webhook", hook_id, doc, scope=org_id)
        ping = self._hook_delivery(doc, "test", f"{self.base_url()}/{TEST_PING_PATH}")
        self.sender.send([ping])
        return self.render_webhook(doc)

    def list_webhooks(self, org_id: str, args: dict[str, str]) -> dict[str, Any]:
        self.check_org(org_id)
        items = self.store.all("webhook", scope=org_id)
        page, pagination = _paginate_list(
            items, _fingerprint("webhooks", org_id), args.get("continuation")
        )
        return {"pagination": pagination, "webhooks": [self.render_webhook(d) for d in page]}

    def delete_webhook(self, hook_id: str) -> dict[str, Any]:
        doc = self.store.get("webhook", hook_id)
        if doc is None:
            raise _not_found("The webhook you requested does not exist.")
        self.store.delete("webhook", hook_id)
        return {"success": True}

    # -- venues and discounts --------------------------------------------------
    def create_venue(self, org_id: str, body: dict[str, Any]) -> dict[str, Any]:
        self.check_org(org_id)
        data = _wrapped(body, "venue")
        name = data.get("name")
        if not isinstance(name, str) or not name.strip():
            raise _bad_argument("venue.name", "MISSING")
        address = data.get("address") if isinstance(data.get("address"), dict) else {}
        keys = ("address_1", "address_2", "city", "region", "postal_code", "country")
        address = {k: address.get(k) for k in keys}
        parts = [address[k] for k in ("address_1", "address_2", "city", "region") if address[k]]
        address["localized_address_display"] = ", ".join(parts) or None
        with self.store.atomic():
            venue_id = self._new_id("venue")
            doc = {
                "id": venue_id,
                "name": name.strip(),
                "address": address,
                "capacity": data.get("capacity"),
                "age_restriction": None,
                "latitude": None,
                "longitude": None,
            }
            self.store.insert("venue", venue_id, doc, scope=org_id)
        return self.render_venue(doc)

    def list_venues(self, org_id: str, args: dict[str, str]) -> dict[str, Any]:
        self.check_org(org_id)
        items = self.store.all("venue", scope=org_id)
        page, pagination = _paginate_list(
            items, _fingerprint("venues", org_id), args.get("continuation")
        )
        return {"pagination": pagination, "venues": [self.render_venue(d) for d in page]}

    def _validate_discount(
        self, data: dict[str, Any], current: dict[str, Any] | None
    ) -> dict[str, Any]:
        errors = ArgumentErrors()
        changes: dict[str, Any] = {}
        creating = current is None
        if creating or "type" in data:
            kind = data.get("type")
            if kind not in ("access", "coded", "public", "hold"):
                errors.add("discount.type", "MISSING" if not kind else "INVALID")
            changes["type"] = kind
        if creating or "code" in data:
            code = data.get("code")
            if not isinstance(code, str) or not code.strip():
                errors.add("discount.code", "MISSING")
            else:
                changes["code"] = code.strip()
        if creating or "event_id" in data:
            event_id = str(data.get("event_id") or "")
            if not event_id:
                errors.add("discount.event_id", "MISSING")
            changes["event_id"] = event_id
        if "ticket_class_ids" in data or creating:
            changes["ticket_class_ids"] = _id_list(data.get("ticket_class_ids"))
        if "quantity_available" in data:
            changes["quantity_available"] = _as_int(
                data["quantity_available"], "discount.quantity_available", errors
            )
        for key in ("amount_off", "percent_off", "start_date", "end_date"):
            if key in data:
                changes[key] = data[key]
        errors.raise_if_any()
        merged = {**(current or {}), **changes}
        event = self.event(merged["event_id"])
        if event["organization_id"] != self.organization_id:
            raise _bad_argument("discount.event_id")
        for tc_id in merged["ticket_class_ids"]:
            if self.store.get("ticket_class", tc_id) is None or (
                self.store.get("ticket_class", tc_id)["event_id"] != event["id"]
            ):
                raise _bad_argument("discount.ticket_class_ids")
        codes = {
            d["code"]
            for d in self.store.all("discount", scope=self.organization_id)
            if d["event_id"] == event["id"] and (current is None or d["id"] != current["id"])
        }
        if merged["code"] in codes:
            raise _bad_argument("discount.code", "DUPLICATE")
        return changes

    def create_discount(self, org_id: str, body: dict[str, Any]) -> dict[str, Any]:
        self.check_org(org_id)
        with self.store.atomic():
            changes = self._validate_discount(_wrapped(body, "discount"), None)
            discount_id = self._new_id("discount")
            doc = {
                "id": discount_id,
                "quantity_available": None,
                "quantity_sold": 0,
                "amount_off": None,
                "percent_off": None,
                "start_date": None,
                "end_date": None,
                **changes,
            }
            self.store.insert("discount", discount_id, doc, scope=org_id)
        return self.render_discount(doc)

    def discount(self, discount_id: str) -> dict[str, Any]:
        doc = self.store.get("discount", discount_id)
        if doc is None:
            raise _not_found("The discount you requested does not exist.")
        return doc

    def update_discount(self, discount_id: str, body: dict[str, Any]) -> dict[str, Any]:
        with self.store.atomic():
            doc = self.discount(discount_id)
            doc.update(self._validate_discount(_wrapped(body, "discount"), doc))
            self.store.update("discount", discount_id, doc)
        return self.render_discount(doc)

    def list_discounts(self, org_id: str, args: dict[str, str]) -> dict[str, Any]:
        self.check_org(org_id)
        items = self.store.all("discount", scope=org_id)
        if args.get("event_id"):
            items = [d for d in items if d["event_id"] == args["event_id"]]
        page, pagination = _paginate_list(
            items, _fingerprint("discounts", org_id, args.get("event_id")), args.get("continuation")
        )
        return {"pagination": pagination, "discounts": [self.render_discount(d) for d in page]}


def _costs(price: int, currency: str) -> dict[str, Any]:
    """Attendee/order costs with the fee absorbed by the organizer (gross = ticket price)."""
    fee = round(price * 0.035) + (0 if price == 0 else 59)
    payment_fee = round(price * 0.029)
    return {
        "base_price": money(price, currency),
        "eventbrite_fee": money(min(fee, price), currency),
        "gross": money(price, currency),
        "payment_fee": money(min(payment_fee, price), currency),
        "tax": money(0, currency),
    }


def _paginate_list(
    items: list[dict[str, Any]], fingerprint: str, continuation: str | None
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Continuation pagination over a small in-memory list (offset inside the token)."""
    offset = 0
    if continuation:
        token = _decode_token(continuation)
        if not token or token.get("f") != fingerprint:
            raise ApiError(
                400,
                "INVALID_CONTINUATION",
                "The continuation token is invalid or does not match this request.",
            )
        offset = int(token["o"])
    page = items[offset : offset + PAGE_SIZE]
    has_more = offset + PAGE_SIZE < len(items)
    pagination: dict[str, Any] = {
        "object_count": len(items),
        "page_number": offset // PAGE_SIZE + 1,
        "page_size": PAGE_SIZE,
        "page_count": max(math.ceil(len(items) / PAGE_SIZE), 1),
        "has_more_items": has_more,
    }
    if has_more:
        pagination["continuation"] = _encode_token({"f": fingerprint, "o": offset + PAGE_SIZE})
    return page, pagination


# --------------------------------------------------------------------------- the app


def _token_of_request() -> str | None:
    header = request.headers.get("Authorization", "")
    if header.lower().startswith("bearer "):
        return header[7:].strip() or None
    return request.args.get("token") or None


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
        return ApiError(
            429,
            "HIT_RATE_LIMIT",
            "Hit rate limiting.",
            headers={"Retry-After": retry_after_header(wait)},
        ).response()

    def server_error(status: int) -> Response:
        error = {503: "SERVICE_UNAVAILABLE", 502: "BAD_GATEWAY"}.get(status, "INTERNAL_ERROR")
        return ApiError(status, error, "Something went wrong; please try again later.").response()

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
            return ApiError(
                401, "NO_AUTH", "An OAuth token is required for all requests"
            ).response()
        return None

    @app.errorhandler(ApiError)
    def _api_error(exc: ApiError) -> Response:
        return exc.response()

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception) -> Response:
        if isinstance(exc, HTTPException):
            return ApiError(exc.code or 500, "HTTP_ERROR", exc.description or "").response()
        app.logger.exception("sandbox error on %s %s", request.method, request.path)
        return ApiError(500, "INTERNAL_ERROR", "An unexpected error occurred.").response()

    @app.errorhandler(404)
    def _no_route(_exc: Exception) -> Response:
        return _not_found().response()

    @app.errorhandler(405)
    def _bad_method(_exc: Exception) -> Response:
        return ApiError(405, "METHOD_NOT_ALLOWED", "This method is not allowed here.").response()

    def args() -> dict[str, str]:
        return {k: v for k, v in request.args.items() if k != "token"}

    def route(rule: str, methods: list[str]) -> Callable:
        return app.route(API + rule, methods=methods)

    # users
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
        orgs = [{"id": organization_id, "name": "Sandbox Community", "vertical": "default"}]
        page, pagination = _paginate_list(orgs, "orgs", args().get("continuation"))
        return jsonify(organizations=page, pagination=pagination)

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
            with store.atomic():
                doc = sandbox.event(event_id)
                if sandbox._sold(event_id):
                    raise ApiError(400, "CANNOT_DELETE", "An event with orders cannot be deleted.")
                doc.update(status="deleted", changed=_now_z())
                store.update("event", event_id, doc)
            return jsonify(deleted=True)
        expand = set(_id_list(request.args.get("expand")))
        return jsonify(sandbox.render_event(sandbox.event(event_id), expand=expand))

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
        expand = set(_id_list(request.args.get("expand")))
        return jsonify(sandbox.render_order(sandbox.order(order_id), expand=expand))

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
            raise _not_found("The webhook you requested does not exist.")
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
            raise _not_found("The venue you requested does not exist.")
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

    # sandbox-only simulation
    @app.post("/_sandbox/simulate/registrations")
    def simulate_registrations() -> Response:
        data = request.get_json(force=True, silent=True) or {}
        if not data.get("event_id"):
            raise _bad_argument("event_id", "MISSING")
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

    return app
