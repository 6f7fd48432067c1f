"""The Eventbrite emulator's state and behaviour (CONTRACTS.md Part 1 section 2).

State lives in a :class:`SandboxStore` (SQLite), so a restarted process keeps events,
ticket classes, checkout settings, orders, attendees, webhooks and its id counters.

Modelling choices where Eventbrite leaves room:

- Attendee and order listings are ordered by last change (``changed_seq``), so a record that
  changes while a client pages through moves to the end and is seen again, never skipped;
  ``changed_since`` is inclusive ("changed on or after") with one-second resolution.
- Fees are absorbed by the organizer: an attendee's ``costs.gross`` is the ticket price,
  ``eventbrite_fee``/``payment_fee`` are what Eventbrite keeps from the payout.
- ``capacity`` on an event is custom once set (``capacity_is_custom``); otherwise it is the
  sum of the ticket classes' capacities. A sale must fit both the ticket class and the event.
- The public ``url`` of an event is this emulator's own page (``/e/<slug>-tickets-<id>``),
  on the emulator's base URL, never eventbrite.com.
- Checkout settings: [E1] documents the object ("Checkout Settings (object)") and the
  publish codes for a paid event without valid payment options, but not the endpoints that
  set them. The endpoints are those of Eventbrite's v3 reference (``POST /checkout_settings/``
  creates one, ``POST /events/{id}/checkout_settings/`` with ``checkout_settings_ids``
  links them to an event, replacing what was linked) under the organization path its
  changelog moved them to (``GET /v3/checkout_settings/`` ->
  ``GET /v3/organizations/{organization_id}/checkout_settings/``).
"""

from __future__ import annotations

import hashlib
import json
import math
from datetime import timedelta
from typing import Any

from flask import has_request_context, request

from hub.models import slugify
from integrations.sandbox.common import SandboxControls, SandboxStore, WebhookSender
from integrations.sandbox.eventbrite import validation as v
from integrations.sandbox.eventbrite.simulation import SimulationMixin
from integrations.sandbox.eventbrite.validation import (
    PAGE_SIZE,
    ApiError,
    ArgumentErrors,
    bad_argument,
    id_list,
    money,
    not_found,
    wrapped,
)
from integrations.sandbox.eventbrite.webhooks import TEST_PING_PATH, delivery, matches

API = "/v3"
USER_ID = "1000000042"

# (counter name, first value, stride): numeric ids shaped like Eventbrite's.
_ID_SHAPES = {
    "event": (700_000_000_000, 104_729),
    "ticket_class": (300_000_000, 811),
    "order": (4_000_000_000, 7_919),
    "attendee": (5_000_000_000, 3_571),
    "webhook": (1_000_000, 13),
    "venue": (60_000_000, 97),
    "discount": (800_000_000, 389),
    "checkout_settings": (90_000_000, 131),
}


def _now_z() -> str:
    return v.now_z()


def _hour_before(utc: str) -> str:
    when = v.parse_utc(utc)
    return v.iso_z(when - timedelta(hours=1)) if when else utc


def _public(doc: dict[str, Any]) -> dict[str, Any]:
    return {k: val for k, val in doc.items() if not k.startswith("_")}


def _fingerprint(*parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:16]


# --------------------------------------------------------------------------- the sandbox


class EventbriteSandbox(SimulationMixin):
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

    def public_url(self, doc: dict[str, Any]) -> str:
        """The event's page on this emulator (Eventbrite's ``/e/<slug>-tickets-<id>`` shape)."""
        return f"{self.base_url()}/e/{slugify(doc['name']['text'])}-tickets-{doc['id']}"

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
        out["url"] = self.public_url(doc)
        if expand and "checkout_settings" in expand:
            out["checkout_settings"] = self.event_checkout_settings(doc["id"])
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
            raise not_found("The event you requested does not exist.")
        return doc

    def ticket_class(self, event_id: str, tc_id: str) -> dict[str, Any]:
        doc = self.store.get("ticket_class", tc_id)
        if doc is None or doc["event_id"] != event_id:
            raise not_found("The ticket class you requested does not exist.")
        return doc

    # -- webhooks --------------------------------------------------------------
    def deliveries(self, action: str, api_path: str, event_id: str | None) -> list:
        api_url = self.api_url(api_path)
        return [
            delivery(hook, action, api_url)
            for hook in self.store.all("webhook", scope=self.organization_id)
            if matches(hook, action, event_id)
        ]

    def notify(self, action: str, api_path: str, event_id: str | None) -> None:
        self.sender.send(self.deliveries(action, api_path, event_id))

    # -- events ----------------------------------------------------------------
    def _validate_event(self, data: dict[str, Any], current: dict[str, Any] | None) -> dict:
        classes = self._ticket_classes(current["id"]) if current else []
        paid_sales = sum(int(tc["quantity_sold"]) for tc in classes if not tc["free"])
        return v.validate_event(
            data,
            current,
            now=_now_z(),
            venue_exists=lambda venue_id: self.store.get("venue", venue_id) is not None,
            has_paid_classes=any(not tc["free"] for tc in classes),
            paid_sales=paid_sales,
            sold=sum(int(tc["quantity_sold"]) for tc in classes),
        )

    def create_event(self, org_id: str, body: dict[str, Any]) -> dict[str, Any]:
        self.check_org(org_id)
        data = wrapped(body, "event")
        changes = self._validate_event(data, None)
        with self.store.atomic():
            event_id = self._new_id("event")
            now = _now_z()
            doc = {
                "id": event_id,
                "name": changes["name"],
                "description": changes.get("description", {"text": None, "html": None}),
                "summary": changes.get("summary"),
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
                # The Blueprint lists no update code for a canceled event; its cancel code.
                raise ApiError(400, "ALREADY_CANCELED", "This event has already been canceled.")
            changes = self._validate_event(wrapped(body, "event"), doc)
            doc.update(changes)
            doc["changed"] = _now_z()
            self.store.update("event", event_id, doc)
        self.notify("event.updated", f"events/{event_id}", event_id)
        return self.render_event(doc)

    def publish(self, event_id: str) -> dict[str, Any]:
        with self.store.atomic():
            doc = self.event(event_id)
            v.check_publishable(
                doc, self._ticket_classes(event_id), self.event_checkout_settings(event_id)
            )
            now = _now_z()
            doc.update(status="live", published=now, changed=now)
            self.store.update("event", event_id, doc)
        self.notify("event.published", f"events/{event_id}", event_id)
        return {"published": True}

    def unpublish(self, event_id: str) -> dict[str, Any]:
        # [E1] "Unpublish an Event": NOT_PUBLISHED, and CANNOT_UNPUBLISH with sales.
        with self.store.atomic():
            doc = self.event(event_id)
            if doc["status"] != "live":
                raise ApiError(
                    400,
                    "NOT_PUBLISHED",
                    "This event is not currently published and cannot be unpublished.",
                )
            if self._sold(event_id):
                raise ApiError(
                    400,
                    "CANNOT_UNPUBLISH",
                    "You cannot unpublish an event that has pending or completed sales.",
                )
            doc.update(status="draft", changed=_now_z())
            self.store.update("event", event_id, doc)
        self.notify("event.unpublished", f"events/{event_id}", event_id)
        return {"unpublished": True}

    def cancel(self, event_id: str) -> dict[str, Any]:
        # [E1] "Cancel an Event": ALREADY_CANCELED, and CANNOT_CANCEL with sales.
        with self.store.atomic():
            doc = self.event(event_id)
            if doc["status"] == "canceled":
                raise ApiError(400, "ALREADY_CANCELED", "This event has already been canceled.")
            if self._sold(event_id):
                raise ApiError(
                    400,
                    "CANNOT_CANCEL",
                    "You have attempted to cancel an event that has pending or completed "
                    "sales of tickets.",
                )
            doc.update(status="canceled", changed=_now_z())
            self.store.update("event", event_id, doc)
        return {"canceled": True}

    def delete_event(self, event_id: str) -> dict[str, Any]:
        # [E1] "Delete an Event": CANNOT_DELETE with orders.
        with self.store.atomic():
            doc = self.event(event_id)
            if self._sold(event_id):
                raise ApiError(
                    400,
                    "CANNOT_DELETE",
                    "You cannot delete an event that has pending or completed orders.",
                )
            doc.update(status="deleted", changed=_now_z())
            self.store.update("event", event_id, doc)
        return {"deleted": True}

    # -- checkout settings (payment options) -----------------------------------
    def render_checkout_settings(self, doc: dict[str, Any]) -> dict[str, Any]:
        out = _public(doc)
        out["resource_uri"] = self.api_url(
            f"organizations/{doc['_organization_id']}/checkout_settings/{doc['id']}"
        )
        return out

    def create_checkout_settings(self, org_id: str, body: dict[str, Any]) -> dict[str, Any]:
        self.check_org(org_id)
        fields = v.validate_checkout_settings(wrapped(body, "checkout_settings"))
        with self.store.atomic():
            settings_id = self._new_id("checkout_settings")
            now = _now_z()
            doc = {
                "id": settings_id,
                "created": now,
                "changed": now,
                **fields,
                "_organization_id": org_id,
            }
            self.store.insert("checkout_settings", settings_id, doc, scope=org_id)
        return self.render_checkout_settings(doc)

    def list_checkout_settings(self, org_id: str, args: dict[str, str]) -> dict[str, Any]:
        self.check_org(org_id)
        items = self.store.all("checkout_settings", scope=org_id)
        if args.get("currency"):
            items = [d for d in items if d["currency_code"] == args["currency"].upper()]
        if args.get("country"):
            items = [d for d in items if d["country_code"] == args["country"].upper()]
        if args.get("checkout_methods"):
            methods = set(id_list(args["checkout_methods"]))
            items = [d for d in items if d["checkout_method"] in methods]
        fingerprint = _fingerprint(
            "checkout_settings", org_id, args.get("currency"), args.get("country")
        )
        page, pagination = _paginate_list(items, fingerprint, args.get("continuation"))
        return {
            "pagination": pagination,
            "checkout_settings": [self.render_checkout_settings(d) for d in page],
        }

    def event_checkout_settings(self, event_id: str) -> list[dict[str, Any]]:
        link = self.store.get("event_checkout_settings", event_id) or {"ids": []}
        docs = [self.store.get("checkout_settings", sid) for sid in link["ids"]]
        return [self.render_checkout_settings(d) for d in docs if d]

    def set_event_checkout_settings(self, event_id: str, body: dict[str, Any]) -> dict:
        """Link checkout settings to an event, replacing those linked before."""
        event = self.event(event_id)
        ids = id_list(body.get("checkout_settings_ids"))
        if not ids:
            raise bad_argument("checkout_settings_ids", "MISSING")
        for settings_id in ids:
            doc = self.store.get("checkout_settings", settings_id)
            if doc is None or doc["_organization_id"] != event["organization_id"]:
                raise bad_argument("checkout_settings_ids")
        with self.store.atomic():
            if self.store.get("event_checkout_settings", event_id) is None:
                self.store.insert("event_checkout_settings", event_id, {"ids": ids})
            else:
                self.store.update("event_checkout_settings", event_id, {"ids": ids})
        return {"checkout_settings": self.event_checkout_settings(event_id)}

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
        data = wrapped(body, "capacity_tier")
        if "capacity_total" not in data:
            raise bad_argument("capacity_tier.capacity_total", "MISSING")
        errors = ArgumentErrors()
        total = v.as_int(data["capacity_total"], "capacity_tier.capacity_total", errors)
        errors.raise_if_any()
        with self.store.atomic():
            doc = self.event(event_id)
            if total is not None and total < self._sold(event_id):
                raise bad_argument("capacity_tier.capacity_total")
            doc.update(capacity=total, capacity_is_custom=True, changed=_now_z())
            self.store.update("event", event_id, doc)
        return self.capacity_tier(event_id)

    def list_org_events(self, org_id: str, args: dict[str, str]) -> dict[str, Any]:
        self.check_org(org_id)
        name_filter = (args.get("name_filter") or "").casefold()
        time_filter = args.get("time_filter") or "all"
        statuses = set(id_list(args.get("status") or "all"))
        order_by = args.get("order_by") or "start_asc"
        if time_filter not in ("all", "past", "current_future"):
            raise bad_argument("time_filter")
        if order_by not in ("start_asc", "start_desc", "created_asc", "created_desc"):
            raise bad_argument("order_by")
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
    def create_ticket_class(self, event_id: str, body: dict[str, Any]) -> dict[str, Any]:
        with self.store.atomic():
            event = self.event(event_id)
            changes = v.validate_ticket_class(event, wrapped(body, "ticket_class"), None)
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
                # [E1] "leave empty for 'one hour before event start'"
                "sales_end": changes.get("sales_end", _hour_before(event["start"]["utc"])),
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
            changes = v.validate_ticket_class(event, wrapped(body, "ticket_class"), doc)
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
            when = v.parse_utc(changed_since)
            if when is None:
                raise bad_argument("changed_since")
            where.append("json_extract(data, '$.changed') >= ?")
            params.append(v.iso_z(when))
        fingerprint = _fingerprint(kind, event_id, changed_since, status_key)
        after, page_number = 0, 1
        if args.get("continuation"):
            token = v.decode_continuation(args["continuation"], fingerprint)
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
            pagination["continuation"] = v.encode_token(
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
            raise bad_argument("status")
        docs, pagination = self._changed_page("order", event_id, args, where, params, status)
        expand = set(id_list(args.get("expand")))
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
            raise bad_argument("status")
        docs, pagination = self._changed_page("attendee", event_id, args, where, params, status)
        return {"pagination": pagination, "attendees": [self.render_attendee(d) for d in docs]}

    def order(self, order_id: str) -> dict[str, Any]:
        doc = self.store.get("order", order_id)
        if doc is None:
            raise not_found("The order you requested does not exist.")
        return doc

    def attendee(self, event_id: str | None, attendee_id: str) -> dict[str, Any]:
        doc = self.store.get("attendee", attendee_id)
        if doc is None or (event_id is not None and doc["event_id"] != event_id):
            raise not_found("The attendee you requested does not exist.")
        return doc

    # -- webhooks --------------------------------------------------------------
    def create_webhook(self, org_id: str, body: dict[str, Any]) -> dict[str, Any]:
        self.check_org(org_id)
        # [E1] "Create Webhooks by Organization ID": the Create Webhook attributes at the
        # top level of the body (a body wrapped in "webhook" is read the same way).
        endpoint, actions, event_id = v.validate_webhook(wrapped(body, "webhook"))
        if event_id:
            self.event(event_id)
        with self.store.atomic():
            hook_id = self._new_id("webhook")
            doc = {
                "id": hook_id,
                "endpoint_url": endpoint,
                "actions": actions,
                "event_id": event_id or None,
                "user_id": USER_ID,
                "created": _now_z(),
            }
            self.store.insert("webhook", hook_id, doc, scope=org_id)
        ping = delivery(doc, "test", f"{self.base_url()}/{TEST_PING_PATH}")
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
            raise not_found("The webhook you requested does not exist.")
        self.store.delete("webhook", hook_id)
        return {"success": True}

    # -- venues and discounts --------------------------------------------------
    def create_venue(self, org_id: str, body: dict[str, Any]) -> dict[str, Any]:
        self.check_org(org_id)
        data = wrapped(body, "venue")
        name = data.get("name")
        if not isinstance(name, str) or not name.strip():
            raise bad_argument("venue.name", "MISSING")
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
            changes["ticket_class_ids"] = id_list(data.get("ticket_class_ids"))
        if "quantity_available" in data:
            changes["quantity_available"] = v.as_int(
                data["quantity_available"], "discount.quantity_available", errors
            )
        for key in ("amount_off", "percent_off", "start_date", "end_date"):
            if key in data:
                changes[key] = data[key]
        errors.raise_if_any()
        merged = {**(current or {}), **changes}
        event = self.event(merged["event_id"])
        if event["organization_id"] != self.organization_id:
            raise bad_argument("discount.event_id")
        for tc_id in merged["ticket_class_ids"]:
            if self.store.get("ticket_class", tc_id) is None or (
                self.store.get("ticket_class", tc_id)["event_id"] != event["id"]
            ):
                raise bad_argument("discount.ticket_class_ids")
        codes = {
            d["code"]
            for d in self.store.all("discount", scope=self.organization_id)
            if d["event_id"] == event["id"] and (current is None or d["id"] != current["id"])
        }
        if merged["code"] in codes:
            raise bad_argument("discount.code", "DUPLICATE")
        return changes

    def create_discount(self, org_id: str, body: dict[str, Any]) -> dict[str, Any]:
        self.check_org(org_id)
        with self.store.atomic():
            changes = self._validate_discount(wrapped(body, "discount"), None)
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
            raise not_found("The discount you requested does not exist.")
        return doc

    def update_discount(self, discount_id: str, body: dict[str, Any]) -> dict[str, Any]:
        with self.store.atomic():
            doc = self.discount(discount_id)
            doc.update(self._validate_discount(wrapped(body, "discount"), doc))
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


def _paginate_list(
    items: list[dict[str, Any]], fingerprint: str, continuation: str | None
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Continuation pagination over a small in-memory list (offset inside the token)."""
    offset = 0
    if continuation:
        token = v.decode_continuation(continuation, fingerprint)
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
        pagination["continuation"] = v.encode_token({"f": fingerprint, "o": offset + PAGE_SIZE})
    return page, pagination
