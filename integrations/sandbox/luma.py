"""Luma public API emulator (sandbox mode), speaking the wire contract of CONTRACTS.md §3.

Served paths, all behind the ``x-luma-api-key`` header:

- **Legacy** (primary, what :class:`integrations.luma.LumaAdapter` speaks):
  ``/public/v1/event/{create,update,get,get-guests,get-guest,update-guest-status,add-guests}``
  and ``/public/v1/calendar/list-events``; ids are named ``api_id`` / ``event_api_id``.
- **Transitional**: the same handlers under ``/v1/event/*`` and ``/v1/calendar/list-events``.
- **Current**: ``/v1/events/{create,update,get}``, ``/v1/events/guests/{list,get,add,
  update-status}``, ``/v1/events/ticket-types/{create,list}``; ids are named ``id`` /
  ``event_id`` / ``guest_id`` and objects are flat.
- **Webhooks** (current API only): ``POST /v2/webhooks/create``, ``GET /v2/webhooks/get``,
  ``GET /v1/webhooks/list``, ``POST /v1/webhooks/delete``.

Sandbox controls (no API key): the common ``/_sandbox/{config,reset,health}`` plus
``POST /_sandbox/simulate/registrations`` ``{"event_id","count","seed"}`` -> ``{"ids"}``,
``POST /_sandbox/simulate/cancel`` ``{"event_id","guest_id"}`` and
``POST /_sandbox/simulate/checkin`` ``{"event_id","guest_id"}``.

Choices this emulator makes where Luma documents nothing (each kept in one place):

- Error bodies (contract Uncertain #7): ``{"message": str, "field"?: str}``, see
  :func:`_error`.
- Webhook signature (Uncertain #6): ``integrations.luma.WEBHOOK_SIGNATURE_HEADER`` carrying
  :func:`integrations.luma.sign_webhook` of the raw body.
- ``require_rsvp_approval`` (Uncertain #5) is accepted and stored on the event; a guest who
  registers for such an event is ``pending_approval``. A guest in ``approved`` or
  ``pending_approval`` holds a seat against ``max_capacity``; once full, newcomers are
  ``waitlist``.
- Guest e-mails are stored trimmed and lower-cased, phones in E.164 (Luma's phone input
  produces E.164), names as typed.
- Guest order and cursors: see :meth:`LumaSandbox.list_guests`.
- Luma has no "changed since" listing: a status change of a guest already paged past is
  only announced by a ``guest.updated`` webhook (or seen on a full re-read).
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import secrets
import string
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlparse
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from flask import Flask, Response, jsonify, request

from integrations.luma import WEBHOOK_SIGNATURE_HEADER, sign_webhook
from integrations.sandbox.common import (
    PeopleFactory,
    SandboxControls,
    SandboxStore,
    WebhookDelivery,
    WebhookSender,
    install_controls,
    retry_after_header,
    utcnow,
)
from integrations.sandbox.credentials import LUMA_API_KEY, LUMA_CALENDAR_ID

API_KEY_HEADER = "x-luma-api-key"
APPROVAL_STATUSES = ("approved", "session", "pending_approval", "invited", "declined", "waitlist")
SEAT_HOLDING = ("approved", "pending_approval")
VISIBILITIES = ("public", "members-only", "private")
WEBHOOK_EVENT_TYPES = (
    "*",
    "guest.registered",
    "guest.updated",
    "ticket.registered",
    "event.created",
    "event.updated",
    "event.canceled",
    "calendar.*",
    "calendar.event.added",
    "calendar.person.subscribed",
)
GUEST_SORT_COLUMNS = ("name", "email", "created_at", "registered_at", "checked_in_at")
SORT_DIRECTIONS = ("asc", "desc", "asc nulls last", "desc nulls last")
DEFAULT_PAGE_LIMIT = 50
SANDBOX_HOST = {
    "api_id": "usr-sandboxhost0001",
    "email": "organizers@example.org",
    "name": "Sandbox Organizers",
    "first_name": "Sandbox",
    "last_name": "Organizers",
    "avatar_url": "https://images.lumacdn.com/avatars/default.png",
}

_ALNUM = string.ascii_letters + string.digits
_SLUG_CHARS = string.ascii_lowercase + string.digits


def new_id(prefix: str, length: int = 15) -> str:
    """``evt-`` / ``gst-`` / ``whk-`` ... followed by random alphanumerics."""
    return prefix + "".join(secrets.choice(_ALNUM) for _ in range(length))


def iso_ms(when: datetime) -> str:
    """2022-10-19T03:27:13.673Z, the form Luma prints."""
    from datetime import UTC

    utc = when.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


def now_iso() -> str:
    return iso_ms(utcnow())


# --------------------------------------------------------------------------- errors


class ApiError(Exception):
    def __init__(self, status: int, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.field = field


def _error(status: int, message: str, field: str | None = None) -> Response:
    """The one place that shapes an error body (Luma's is undocumented)."""
    body: dict[str, Any] = {"message": message}
    if field:
        body["field"] = field
    response = jsonify(body)
    response.status_code = status
    return response


def _bad(message: str, field: str | None = None) -> ApiError:
    return ApiError(400, message, field)


# --------------------------------------------------------------------------- cursors


def _encode_cursor(mode: str, value: Any) -> str:
    raw = json.dumps([mode, value], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(cursor: str | None, mode: str) -> Any:
    if not cursor:
        return None
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        kind, value = json.loads(base64.urlsafe_b64decode(padded.encode()))
    except (binascii.Error, ValueError, TypeError, UnicodeDecodeError):
        raise _bad("Invalid pagination_cursor", "pagination_cursor") from None
    if kind != mode:
        raise _bad("pagination_cursor does not match this listing's sort", "pagination_cursor")
    return value


# --------------------------------------------------------------------------- parsing


def _parse_time(value: Any, field: str, zone: ZoneInfo | None) -> datetime:
    if not isinstance(value, str) or not value.strip():
        raise _bad(f"{field} must be an ISO 8601 datetime", field)
    try:
        parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise _bad(f"{field} must be an ISO 8601 datetime", field) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=zone or ZoneInfo("UTC"))
    return parsed


def _parse_zone(value: Any) -> ZoneInfo:
    if not isinstance(value, str) or not value.strip():
        raise _bad("timezone is required (an IANA name such as Europe/Istanbul)", "timezone")
    try:
        return ZoneInfo(value.strip())
    except (ZoneInfoNotFoundError, ValueError):
        raise _bad(f"Unknown timezone {value!r}", "timezone") from None


def _iso_duration(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    out = "PT"
    if hours:
        out += f"{hours}H"
    if minutes:
        out += f"{minutes}M"
    if secs or out == "PT":
        out += f"{secs}S"
    return out


def _limit(value: str | None, cap: int) -> int:
    if value in (None, ""):
        return min(DEFAULT_PAGE_LIMIT, cap)
    try:
        limit = int(float(value))
    except ValueError:
        raise _bad("pagination_limit must be a number", "pagination_limit") from None
    if limit < 1:
        raise _bad("pagination_limit must be at least 1", "pagination_limit")
    return min(limit, cap)


def _normalize_phone(raw: str) -> str:
    import phonenumbers

    try:
        number = phonenumbers.parse(raw, "TR")
    except phonenumbers.NumberParseException:
        return raw.strip()
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


_RENAMES = {
    "api_id": "id",
    "event_api_id": "event_id",
    "user_api_id": "user_id",
    "calendar_api_id": "calendar_id",
    "event_ticket_type_api_id": "event_ticket_type_id",
}


def _current(obj: Any) -> Any:
    """Legacy naming (``api_id``) to the current API's (``id``), recursively."""
    if isinstance(obj, dict):
        return {_RENAMES.get(k, k): _current(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_current(v) for v in obj]
    return obj


def _both(obj: dict[str, Any]) -> dict[str, Any]:
    """Webhook payloads carry both namings so either generation of client can read them."""
    merged = dict(_current(obj))
    for key, value in obj.items():
        if key in _RENAMES:
            merged[key] = value
    return merged


# --------------------------------------------------------------------------- the sandbox


class LumaSandbox:
    """State and behaviour of the emulated Luma calendar; the Flask routes are thin."""

    def __init__(
        self,
        store: SandboxStore,
        controls: SandboxControls,
        sender: WebhookSender,
        *,
        calendar_id: str,
        max_page_limit: int,
    ) -> None:
        self.store = store
        self.controls = controls
        self.sender = sender
        self.calendar_id = calendar_id
        self.max_page_limit = max_page_limit

    # -- events ----------------------------------------------------------------
    def _apply_event_fields(self, event: dict[str, Any], body: dict[str, Any]) -> None:
        if "name" in body:
            name = body["name"]
            if not isinstance(name, str) or not name.strip():
                raise _bad("name is required", "name")
            event["name"] = name.strip()
        if "timezone" in body:
            event["timezone"] = _parse_zone(body["timezone"]).key
        zone = ZoneInfo(event["timezone"]) if event.get("timezone") else None
        if "start_at" in body:
            event["start_at"] = iso_ms(_parse_time(body["start_at"], "start_at", zone))
        if body.get("end_at") is not None:
            event["end_at"] = iso_ms(_parse_time(body["end_at"], "end_at", zone))
        for text_field in ("description_md", "meeting_url", "cover_url"):
            if text_field in body:
                value = body[text_field]
                if value is not None and not isinstance(value, str):
                    raise _bad(f"{text_field} must be a string", text_field)
                event[text_field] = value
        if "description_md" in body:
            event["description"] = body["description_md"] or ""
        if "geo_address_json" in body:
            geo = body["geo_address_json"]
            if geo is not None and (
                not isinstance(geo, dict) or not isinstance(geo.get("address"), str)
            ):
                raise _bad(
                    'geo_address_json must be {"type": "manual", "address": str}',
                    "geo_address_json",
                )
            event["geo_address_json"] = (
                None if geo is None else {**geo, "type": geo.get("type", "manual")}
            )
        if "max_capacity" in body:
            cap = body["max_capacity"]
            if cap is not None and (isinstance(cap, bool) or not isinstance(cap, int) or cap < 0):
                raise _bad("max_capacity must be a non-negative integer or null", "max_capacity")
            event["max_capacity"] = cap
        if "visibility" in body:
            if body["visibility"] not in VISIBILITIES:
                raise _bad(f"visibility must be one of {', '.join(VISIBILITIES)}", "visibility")
            event["visibility"] = body["visibility"]
        if "require_rsvp_approval" in body:
            event["require_rsvp_approval"] = bool(body["require_rsvp_approval"])

    def _finish_event(self, event: dict[str, Any]) -> None:
        start = datetime.fromisoformat(event["start_at"].replace("Z", "+00:00"))
        if not event.get("end_at"):
            event["end_at"] = iso_ms(start + timedelta(hours=1))
        end = datetime.fromisoformat(event["end_at"].replace("Z", "+00:00"))
        if end < start:
            raise _bad("end_at must be after start_at", "end_at")
        event["duration_interval"] = _iso_duration(end - start)

    def create_event(self, body: dict[str, Any]) -> dict[str, Any]:
        for required in ("name", "start_at", "timezone"):
            if body.get(required) in (None, ""):
                raise _bad(f"{required} is required", required)
        now = now_iso()
        event: dict[str, Any] = {
            "api_id": new_id("evt-"),
            "calendar_api_id": self.calendar_id,
            "user_api_id": SANDBOX_HOST["api_id"],
            "created_at": now,
            "updated_at": now,
            "name": "",
            "description": "",
            "description_md": "",
            "timezone": None,
            "start_at": None,
            "end_at": None,
            "url": "https://lu.ma/" + "".join(secrets.choice(_SLUG_CHARS) for _ in range(10)),
            "cover_url": "https://images.lumacdn.com/event-covers/default.png",
            "visibility": "public",
            "meeting_url": None,
            "zoom_meeting_url": None,
            "geo_address_json": None,
            "geo_latitude": None,
            "geo_longitude": None,
            "max_capacity": None,
            "require_rsvp_approval": False,
        }
        self._apply_event_fields(event, body)
        self._finish_event(event)
        with self.store.atomic():
            self.store.insert("event", event["api_id"], event, scope=self.calendar_id)
            ticket_type = self._new_ticket_type(
                event["api_id"], {"name": "Standard", "type": "free"}
            )
            self.store.insert("ticket_type", ticket_type["api_id"], ticket_type, event["api_id"])
        self._dispatch("event.created", [self._event_payload(event)])
        return event

    def update_event(self, event_id: str, body: dict[str, Any]) -> dict[str, Any]:
        with self.store.atomic():
            event = self.require_event(event_id)
            updated = dict(event)
            if body.get("end_at") is None and "start_at" in body:
                # keep the duration when only the start moves
                old_start = datetime.fromisoformat(event["start_at"].replace("Z", "+00:00"))
                old_end = datetime.fromisoformat(event["end_at"].replace("Z", "+00:00"))
                updated["end_at"] = None
                self._apply_event_fields(updated, body)
                new_start = datetime.fromisoformat(updated["start_at"].replace("Z", "+00:00"))
                updated["end_at"] = iso_ms(new_start + (old_end - old_start))
            else:
                self._apply_event_fields(updated, body)
            self._finish_event(updated)
            updated["updated_at"] = now_iso()
            self.store.update("event", event_id, updated)
        self._dispatch("event.updated", [self._event_payload(updated)])
        return updated

    def require_event(self, event_id: str | None) -> dict[str, Any]:
        if not event_id:
            raise _bad("event id is required", "event_api_id")
        event = self.store.get("event", event_id)
        if event is None or event.get("calendar_api_id") != self.calendar_id:
            raise ApiError(404, f"Event {event_id} not found")
        return event

    def seats_taken(self, event_id: str) -> int:
        marks = ",".join("?" for _ in SEAT_HOLDING)
        return self.store.count(
            "guest",
            scope=event_id,
            where=f"json_extract(data, '$.approval_status') in ({marks})",
            params=SEAT_HOLDING,
        )

    def current_event(self, event: dict[str, Any]) -> dict[str, Any]:
        flat = _current(event)
        flat["waitlist_status"] = "enabled" if event.get("max_capacity") is not None else "disabled"
        return flat

    def list_events(
        self,
        *,
        cursor: str | None,
        limit: int,
        after: str | None = None,
        before: str | None = None,
        sort_direction: str | None = None,
    ) -> tuple[list[dict[str, Any]], bool, str | None]:
        """Calendar events by (start_at, api_id), keyset cursor; ``after``/``before`` filter
        on start_at."""
        events = self.store.all("event", scope=self.calendar_id)
        lower = _parse_time(after, "after", None) if after else None
        upper = _parse_time(before, "before", None) if before else None

        def start(e: dict[str, Any]) -> datetime:
            return datetime.fromisoformat(e["start_at"].replace("Z", "+00:00"))

        events = [
            e
            for e in events
            if (lower is None or start(e) >= lower) and (upper is None or start(e) <= upper)
        ]
        desc = (sort_direction or "asc").startswith("desc")
        events.sort(key=lambda e: (e["start_at"], e["api_id"]), reverse=desc)
        last = _decode_cursor(cursor, "e")
        if last is not None:
            key = tuple(last)
            events = [
                e
                for e in events
                if (
                    (e["start_at"], e["api_id"]) < key
                    if desc
                    else (e["start_at"], e["api_id"]) > key
                )
            ]
        page, has_more = events[:limit], len(events) > limit
        next_cursor = (
            _encode_cursor("e", [page[-1]["start_at"], page[-1]["api_id"]]) if has_more else None
        )
        return page, has_more, next_cursor

    # -- ticket types ------------------------------------------------------------
    def _new_ticket_type(self, event_id: str, body: dict[str, Any]) -> dict[str, Any]:
        name = body.get("name")
        if not isinstance(name, str) or not name.strip():
            raise _bad("name is required", "name")
        kind = body.get("type")
        if kind not in ("free", "paid"):
            raise _bad("type must be free or paid", "type")
        cents = body.get("cents") or 0
        if isinstance(cents, bool) or not isinstance(cents, int) or cents < 0:
            raise _bad("cents must be a non-negative integer", "cents")
        if kind == "paid" and (cents <= 0 or not body.get("currency")):
            raise _bad("a paid ticket type needs cents > 0 and a currency", "cents")
        cap = body.get("max_capacity")
        if cap is not None and (isinstance(cap, bool) or not isinstance(cap, int) or cap < 0):
            raise _bad("max_capacity must be a non-negative integer or null", "max_capacity")
        return {
            "api_id": new_id("ett-"),
            "event_api_id": event_id,
            "name": name.strip(),
            "type": kind,
            "require_approval": bool(body.get("require_approval", False)),
            "is_hidden": bool(body.get("is_hidden", False)),
            "max_capacity": cap,
            "cents": cents if kind == "paid" else 0,
            "currency": (body.get("currency") or "").lower() or None if kind == "paid" else None,
            "created_at": now_iso(),
        }

    def create_ticket_type(self, event_id: str, body: dict[str, Any]) -> dict[str, Any]:
        with self.store.atomic():
            self.require_event(event_id)
            ticket_type = self._new_ticket_type(event_id, body)
            self.store.insert("ticket_type", ticket_type["api_id"], ticket_type, event_id)
        return ticket_type

    def _sale_ticket_type(self, event_id: str) -> dict[str, Any] | None:
        visible = [t for t in self.store.all("ticket_type", scope=event_id) if not t["is_hidden"]]
        return visible[-1] if visible else None

    # -- guests -----------------------------------------------------------------
    def _new_guest(
        self,
        event: dict[str, Any],
        *,
        name: str | None,
        email: str,
        phone: str | None,
        approval_status: str,
    ) -> dict[str, Any]:
        now = now_iso()
        guest_id = new_id("gst-")
        first, _, last = (name or "").partition(" ")
        ticket_type = self._sale_ticket_type(event["api_id"])
        tickets = []
        if ticket_type is not None:
            amount = ticket_type["cents"]
            tickets.append(
                {
                    "api_id": new_id("evtticket-"),
                    "name": ticket_type["name"],
                    "amount": amount,
                    "amount_discount": 0,
                    "amount_tax": 0,
                    "currency": ticket_type["currency"],
                    "checked_in_at": None,
                    "event_ticket_type_api_id": ticket_type["api_id"],
                    # a paid seat is authorized at registration, captured on approval
                    "is_captured": amount == 0 or approval_status == "approved",
                }
            )
        return {
            "api_id": guest_id,
            "event_api_id": event["api_id"],
            "user_api_id": new_id("usr-"),
            "user_email": email.strip().lower(),
            "user_name": name,
            "user_first_name": first or None,
            "user_last_name": last or None,
            "phone_number": _normalize_phone(phone) if phone else None,
            "approval_status": approval_status,
            "registered_at": now,
            "created_at": now,
            "invited_at": None,
            "joined_at": None,
            "checked_in_at": None,
            "check_in_qr_code": f"https://lu.ma/check-in/{event['api_id']}?pk={new_id('g-', 12)}",
            "registration_answers": [],
            "event_tickets": tickets,
            "updated_at": now,
        }

    def _guest_by_email(self, event_id: str, email: str) -> dict[str, Any] | None:
        rows = self.store.page(
            "guest",
            scope=event_id,
            limit=1,
            where="json_extract(data, '$.user_email') = ?",
            params=(email.strip().lower(),),
        )
        return rows[0][1] if rows else None

    def _status_for_newcomer(self, event: dict[str, Any], taken: int, wanted: str | None) -> str:
        cap = event.get("max_capacity")
        if cap is not None and taken >= cap:
            return "waitlist"
        if wanted:
            return wanted
        return "pending_approval" if event.get("require_rsvp_approval") else "approved"

    def simulate_registrations(
        self, event_id: str, count: int, seed: int | None = None
    ) -> list[str]:
        """``count`` people register on the public page; returns their guest ids."""
        people = PeopleFactory(seed)
        created: list[dict[str, Any]] = []
        with self.store.atomic():
            event = self.require_event(event_id)
            taken = self.seats_taken(event_id)
            emails = {g["user_email"] for g in self.store.all("guest", scope=event_id)}
            for _ in range(count):
                for _attempt in range(20):
                    person = people.person()
                    if person.email.strip().lower() not in emails:
                        break
                emails.add(person.email.strip().lower())
                status = self._status_for_newcomer(event, taken, None)
                if status in SEAT_HOLDING:
                    taken += 1
                guest = self._new_guest(
                    event,
                    name=person.full_name,
                    email=person.email,
                    phone=person.phone,
                    approval_status=status,
                )
                self.store.insert("guest", guest["api_id"], guest, scope=event_id)
                created.append(guest)
        self._dispatch("guest.registered", [self._guest_payload(event, g) for g in created])
        return [g["api_id"] for g in created]

    def add_guests(
        self, event_id: str, guests: Any, approval_status: str | None = None
    ) -> list[str]:
        """Host adds guests (legacy: as Going; current: optionally another status)."""
        if not isinstance(guests, list) or not guests:
            raise _bad("guests must be a non-empty list", "guests")
        if approval_status is not None and approval_status not in APPROVAL_STATUSES:
            raise _bad("invalid approval_status", "approval_status")
        created: list[dict[str, Any]] = []
        with self.store.atomic():
            event = self.require_event(event_id)
            taken = self.seats_taken(event_id)
            for item in guests:
                email = item.get("email") if isinstance(item, dict) else None
                if not isinstance(email, str) or "@" not in email:
                    raise _bad("each guest needs a valid email", "guests")
                if self._guest_by_email(event_id, email) is not None:
                    continue
                status = approval_status or "approved"
                if status in SEAT_HOLDING:
                    taken += 1
                guest = self._new_guest(
                    event,
                    name=item.get("name"),
                    email=email,
                    phone=item.get("phone_number"),
                    approval_status=status,
                )
                self.store.insert("guest", guest["api_id"], guest, scope=event_id)
                created.append(guest)
        self._dispatch("guest.registered", [self._guest_payload(event, g) for g in created])
        return [g["api_id"] for g in created]

    def find_guest(
        self, event_id: str, *, guest_id: str | None = None, email: str | None = None
    ) -> dict[str, Any]:
        self.require_event(event_id)
        guest = None
        if guest_id:
            guest = self.store.get("guest", guest_id)
            if guest is not None and guest.get("event_api_id") != event_id:
                guest = None
        elif email:
            guest = self._guest_by_email(event_id, email)
        else:
            raise _bad("api_id or email is required", "api_id")
        if guest is None:
            raise ApiError(404, "Guest not found")
        return guest

    def set_guest_status(
        self,
        event_id: str,
        *,
        status: str,
        guest_id: str | None = None,
        email: str | None = None,
        allowed: tuple[str, ...] = ("approved", "declined"),
        should_refund: bool = False,
    ) -> dict[str, Any]:
        """Change a guest's approval status (``guest.updated`` webhook when it changes).

        ``should_refund`` is accepted; sandbox tickets record no refund state."""
        del should_refund
        if status not in allowed:
            raise _bad(f"status must be one of {', '.join(allowed)}", "status")
        with self.store.atomic():
            guest = self.find_guest(event_id, guest_id=guest_id, email=email)
            event = self.require_event(event_id)
            if guest["approval_status"] == status:
                return guest
            guest = dict(guest)
            guest["approval_status"] = status
            guest["updated_at"] = now_iso()
            if status == "approved":
                for ticket in guest["event_tickets"]:
                    ticket["is_captured"] = True
            self.store.update("guest", guest["api_id"], guest)
        self._dispatch("guest.updated", [self._guest_payload(event, guest)])
        return guest

    def simulate_cancel(self, event_id: str, guest_id: str) -> dict[str, Any]:
        """The guest cancels on Luma: Luma has no separate "cancelled" approval status, so
        the guest becomes ``declined`` (and frees the seat)."""
        return self.set_guest_status(
            event_id, guest_id=guest_id, status="declined", allowed=("declined",)
        )

    def simulate_check_in(self, event_id: str, guest_id: str) -> dict[str, Any]:
        with self.store.atomic():
            guest = dict(self.find_guest(event_id, guest_id=guest_id))
            event = self.require_event(event_id)
            now = now_iso()
            guest["checked_in_at"] = now
            guest["updated_at"] = now
            for ticket in guest["event_tickets"]:
                ticket["checked_in_at"] = now
            self.store.update("guest", guest_id, guest)
        self._dispatch("guest.updated", [self._guest_payload(event, guest)])
        return guest

    def list_guests(
        self,
        event_id: str,
        *,
        cursor: str | None,
        limit: int,
        approval_status: str | None = None,
        sort_column: str | None = None,
        sort_direction: str | None = None,
    ) -> tuple[list[dict[str, Any]], bool, str | None]:
        """One page of an event's guests.

        Default order (no sort, or ``registered_at``/``created_at`` ascending) is insertion
        order, which never changes, with a keyset cursor. **Emulator choice for an
        undocumented behaviour:** in that order ``next_cursor`` is returned on every page,
        the last one included, pointing just after the last guest returned (or echoing the
        given cursor on an empty page). A client that stores it and asks again later gets
        only guests who registered since. Luma has no ``updated_after``/changed-since
        filter: a status change of a guest already paged past is only announced by the
        ``guest.updated`` webhook (or seen when re-reading from the start).

        Other orders (``name``, ``email``, ``checked_in_at`` or descending) use an offset
        cursor and return ``next_cursor`` only while ``has_more``.
        """
        self.require_event(event_id)
        where, params = "", ()
        if approval_status:
            if approval_status not in APPROVAL_STATUSES:
                raise _bad("invalid approval_status", "approval_status")
            where, params = "json_extract(data, '$.approval_status') = ?", (approval_status,)
        if sort_column is not None and sort_column not in GUEST_SORT_COLUMNS:
            raise _bad(f"sort_column must be one of {', '.join(GUEST_SORT_COLUMNS)}", "sort_column")
        if sort_direction is not None and sort_direction not in SORT_DIRECTIONS:
            raise _bad("invalid sort_direction", "sort_direction")
        descending = (sort_direction or "asc").startswith("desc")
        if sort_column in (None, "registered_at", "created_at") and not descending:
            after = _decode_cursor(cursor, "s") or 0
            if not isinstance(after, int):
                raise _bad("Invalid pagination_cursor", "pagination_cursor")
            rows = self.store.page(
                "guest",
                scope=event_id,
                after_seq=after,
                limit=limit + 1,
                where=where,
                params=params,
            )
            has_more = len(rows) > limit
            rows = rows[:limit]
            last_seq = rows[-1][0] if rows else after
            return [doc for _, doc in rows], has_more, _encode_cursor("s", last_seq)

        offset = _decode_cursor(cursor, "o") or 0
        if not isinstance(offset, int) or offset < 0:
            raise _bad("Invalid pagination_cursor", "pagination_cursor")
        rows = self.store.page("guest", scope=event_id, limit=10**9, where=where, params=params)
        docs = [doc for _, doc in rows]
        column = {"name": "user_name", "email": "user_email"}.get(sort_column or "", sort_column)
        if column:
            present = [d for d in docs if d.get(column) is not None]
            missing = [d for d in docs if d.get(column) is None]
            present.sort(key=lambda d: str(d[column]).lower(), reverse=descending)
            docs = present + missing  # nulls last either way
        elif descending:
            docs.reverse()
        page = docs[offset : offset + limit]
        has_more = offset + limit < len(docs)
        return page, has_more, _encode_cursor("o", offset + limit) if has_more else None

    # -- webhooks -----------------------------------------------------------------
    def create_webhook(self, body: dict[str, Any]) -> dict[str, Any]:
        url = body.get("url")
        parsed = urlparse(url) if isinstance(url, str) else None
        if parsed is None or parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise _bad("url must be an http(s) URL", "url")
        types = body.get("event_types")
        if (
            not isinstance(types, list)
            or not types
            or not all(isinstance(t, str) and t in WEBHOOK_EVENT_TYPES for t in types)
        ):
            raise _bad(
                f"event_types must be a non-empty list of {', '.join(WEBHOOK_EVENT_TYPES)}",
                "event_types",
            )
        hook = {
            "id": new_id("whk-"),
            "url": url,
            "event_types": list(dict.fromkeys(types)),
            "status": "active",
            "secret": "whsec_" + "".join(secrets.choice(_ALNUM) for _ in range(32)),
            "created_at": now_iso(),
        }
        self.store.insert("webhook", hook["id"], hook, scope=self.calendar_id)
        return hook

    def list_webhooks(self) -> list[dict[str, Any]]:
        return self.store.all("webhook", scope=self.calendar_id)

    def get_webhook(self, hook_id: str | None) -> dict[str, Any]:
        hook = self.store.get("webhook", hook_id or "")
        if hook is None:
            raise ApiError(404, f"Webhook {hook_id} not found")
        return hook

    def delete_webhook(self, hook_id: str | None) -> None:
        if not hook_id:
            raise _bad("id is required", "id")
        if not self.store.delete("webhook", hook_id):
            raise ApiError(404, f"Webhook {hook_id} not found")

    def _event_payload(self, event: dict[str, Any]) -> dict[str, Any]:
        return _both(event)

    def _guest_payload(self, event: dict[str, Any], guest: dict[str, Any]) -> dict[str, Any]:
        data = _both(guest)
        data["event"] = self._event_payload(event)
        return data

    def _dispatch(self, event_type: str, payloads: list[dict[str, Any]]) -> None:
        """Sign and queue one delivery per (payload, subscribed webhook), as one batch so
        the out-of-order fault reverses it."""
        if not payloads:
            return
        deliveries: list[WebhookDelivery] = []
        hooks = [
            h
            for h in self.list_webhooks()
            if h["status"] == "active" and _subscribed(h["event_types"], event_type)
        ]
        for data in payloads:
            for hook in hooks:
                body = json.dumps({"type": event_type, "data": data}).encode()
                deliveries.append(
                    WebhookDelivery(
                        url=hook["url"],
                        body=body,
                        headers={
                            "content-type": "application/json",
                            "user-agent": "Luma-Webhooks (sandbox)",
                            WEBHOOK_SIGNATURE_HEADER: sign_webhook(hook["secret"], body),
                        },
                    )
                )
        self.sender.send(deliveries)


def _subscribed(types: list[str], event_type: str) -> bool:
    return any(
        t == "*" or t == event_type or (t.endswith(".*") and event_type.startswith(t[:-1]))
        for t in types
    )


# --------------------------------------------------------------------------- the app


def create_app(
    state_path: str | None = None,
    *,
    api_keys: tuple[str, ...] = (LUMA_API_KEY,),
    calendar_id: str = LUMA_CALENDAR_ID,
    max_page_limit: int = 100,
) -> Flask:
    """The Luma emulator as a Flask app; ``app.extensions["sandbox"]`` is its
    :class:`LumaSandbox` (``.store``, ``.controls``, ``.sender``,
    ``.simulate_registrations``)."""
    app = Flask("luma-sandbox")
    store = SandboxStore(state_path)
    controls = SandboxControls()
    sender = WebhookSender(controls)
    sandbox = LumaSandbox(
        store, controls, sender, calendar_id=calendar_id, max_page_limit=max_page_limit
    )
    app.extensions["sandbox"] = sandbox

    install_controls(
        app,
        controls,
        rate_limit_key=lambda: request.headers.get(API_KEY_HEADER) or request.remote_addr or "-",
        rate_limited_response=_rate_limited,
        server_error_response=lambda status: _error(
            status, "Internal server error" if status == 500 else "Service unavailable"
        ),
    )

    @app.before_request
    def _authenticate() -> Response | None:
        if request.path.startswith("/_sandbox"):
            return None
        given = request.headers.get(API_KEY_HEADER, "")
        if not given or not any(hmac.compare_digest(given, key) for key in api_keys):
            return _error(401, "Invalid API key")
        return None

    @app.errorhandler(ApiError)
    def _api_error(exc: ApiError) -> Response:
        return _error(exc.status, exc.message, exc.field)

    @app.errorhandler(404)
    def _not_found(_exc: Exception) -> Response:
        return _error(404, "Not found")

    @app.errorhandler(405)
    def _method(_exc: Exception) -> Response:
        return _error(405, "Method not allowed")

    @app.errorhandler(500)
    def _internal(_exc: Exception) -> Response:
        return _error(500, "Internal server error")

    limit = lambda: _limit(request.args.get("pagination_limit"), max_page_limit)  # noqa: E731

    def route(rule: str, methods: list[str], prefixes: tuple[str, ...] = ("",)):
        def decorate(view: Callable[..., Any]) -> Callable[..., Any]:
            for prefix in prefixes:
                app.add_url_rule(
                    prefix + rule,
                    endpoint=f"{view.__name__}:{prefix}{rule}",
                    view_func=view,
                    methods=methods,
                )
            return view

        return decorate

    legacy = ("/public/v1", "/v1")  # legacy and transitional: same shapes

    # -- legacy / transitional ----------------------------------------------------
    @route("/event/create", ["POST"], legacy)
    def legacy_create() -> Response:
        return jsonify(api_id=sandbox.create_event(_body())["api_id"])

    @route("/event/update", ["POST"], legacy)
    def legacy_update() -> Response:
        body = _body()
        sandbox.update_event(_required(body, "event_api_id"), body)
        return jsonify({})

    @route("/event/get", ["GET"], legacy)
    def legacy_get() -> Response:
        event = sandbox.require_event(
            request.args.get("api_id") or request.args.get("event_api_id")
        )
        return jsonify(event=event, hosts=[SANDBOX_HOST])

    @route("/event/get-guests", ["GET"], legacy)
    def legacy_guests() -> Response:
        args = request.args
        guests, has_more, next_cursor = sandbox.list_guests(
            _required(args, "event_api_id"),
            cursor=args.get("pagination_cursor"),
            limit=limit(),
            approval_status=args.get("approval_status"),
            sort_column=args.get("sort_column"),
            sort_direction=args.get("sort_direction"),
        )
        entries = [{"api_id": g["api_id"], "guest": g} for g in guests]
        return jsonify(entries=entries, has_more=has_more, next_cursor=next_cursor)

    @route("/event/get-guest", ["GET"], legacy)
    def legacy_guest() -> Response:
        args = request.args
        guest = sandbox.find_guest(
            _required(args, "event_api_id"),
            guest_id=args.get("api_id") or args.get("proxy_key"),
            email=args.get("email"),
        )
        return jsonify(guest=guest)

    @route("/event/update-guest-status", ["POST"], legacy)
    def legacy_guest_status() -> Response:
        body = _body()
        ref = body.get("guest")
        if not isinstance(ref, dict) or ref.get("type") not in ("email", "api_id"):
            raise _bad('guest must be {"type": "email"|"api_id", ...}', "guest")
        key = "email" if ref["type"] == "email" else "api_id"
        if not ref.get(key):
            raise _bad(f"guest.{key} is required", "guest")
        sandbox.set_guest_status(
            _required(body, "event_api_id"),
            status=body.get("status"),
            guest_id=ref.get("api_id") if key == "api_id" else None,
            email=ref.get("email") if key == "email" else None,
            should_refund=bool(body.get("should_refund", False)),
        )
        return jsonify({})

    @route("/event/add-guests", ["POST"], legacy)
    def legacy_add_guests() -> Response:
        body = _body()
        sandbox.add_guests(_required(body, "event_api_id"), body.get("guests"))
        return jsonify({})

    @route("/calendar/list-events", ["GET"], legacy)
    def legacy_list_events() -> Response:
        args = request.args
        events, has_more, next_cursor = sandbox.list_events(
            cursor=args.get("pagination_cursor"),
            limit=limit(),
            after=args.get("after"),
            before=args.get("before"),
            sort_direction=args.get("sort_direction"),
        )
        entries = [{"api_id": e["api_id"], "event": e, "tags": []} for e in events]
        return jsonify(entries=entries, has_more=has_more, next_cursor=next_cursor)

    # -- current ------------------------------------------------------------------
    @route("/v1/events/create", ["POST"])
    def current_create() -> Response:
        return jsonify(id=sandbox.create_event(_body())["api_id"])

    @route("/v1/events/update", ["POST"])
    def current_update() -> Response:
        body = _body()
        sandbox.update_event(_required(body, "event_id"), body)
        return jsonify({})

    @route("/v1/events/get", ["GET"])
    def current_get() -> Response:
        event = sandbox.require_event(_required(request.args, "event_id"))
        return jsonify(sandbox.current_event(event))

    @route("/v1/events/guests/list", ["GET"])
    def current_guests() -> Response:
        args = request.args
        guests, has_more, next_cursor = sandbox.list_guests(
            _required(args, "event_id"),
            cursor=args.get("pagination_cursor"),
            limit=limit(),
            approval_status=args.get("approval_status"),
            sort_column=args.get("sort_column"),
            sort_direction=args.get("sort_direction"),
        )
        return jsonify(entries=_current(guests), has_more=has_more, next_cursor=next_cursor)

    @route("/v1/events/guests/get", ["GET"])
    def current_guest() -> Response:
        args = request.args
        guest = sandbox.find_guest(
            _required(args, "event_id"),
            guest_id=args.get("id") or args.get("guest_id"),
            email=args.get("email"),
        )
        return jsonify(guest=_current(guest))

    @route("/v1/events/guests/update-status", ["POST"])
    def current_guest_status() -> Response:
        body = _body()
        sandbox.set_guest_status(
            _required(body, "event_id"),
            guest_id=_required(body, "guest_id"),
            status=body.get("status"),
            allowed=("approved", "declined", "pending_approval", "waitlist"),
        )
        return jsonify({})

    @route("/v1/events/guests/add", ["POST"])
    def current_add_guests() -> Response:
        body = _body()
        sandbox.add_guests(
            _required(body, "event_id"), body.get("guests"), body.get("approval_status")
        )
        return jsonify({})

    @route("/v1/events/ticket-types/create", ["POST"])
    def current_ticket_type() -> Response:
        body = _body()
        return jsonify(_current(sandbox.create_ticket_type(_required(body, "event_id"), body)))

    @route("/v1/events/ticket-types/list", ["GET"])
    def current_ticket_types() -> Response:
        event_id = _required(request.args, "event_id")
        sandbox.require_event(event_id)
        entries = _current(store.all("ticket_type", scope=event_id))
        return jsonify(entries=entries, has_more=False, next_cursor=None)

    @route("/v1/calendars/events/list", ["GET"])
    def current_list_events() -> Response:
        args = request.args
        events, has_more, next_cursor = sandbox.list_events(
            cursor=args.get("pagination_cursor"),
            limit=limit(),
            after=args.get("after"),
            before=args.get("before"),
            sort_direction=args.get("sort_direction"),
        )
        entries = [sandbox.current_event(e) for e in events]
        return jsonify(entries=entries, has_more=has_more, next_cursor=next_cursor)

    # -- webhooks (current API) ---------------------------------------------------------
    @route("/v2/webhooks/create", ["POST"])
    def webhook_create() -> Response:
        return jsonify(sandbox.create_webhook(_body()))

    @route("/v2/webhooks/get", ["GET"])
    def webhook_get() -> Response:
        return jsonify(sandbox.get_webhook(request.args.get("id")))

    @route("/v1/webhooks/list", ["GET"])
    def webhook_list() -> Response:
        return jsonify(entries=sandbox.list_webhooks(), has_more=False, next_cursor=None)

    @route("/v1/webhooks/delete", ["POST"])
    def webhook_delete() -> Response:
        sandbox.delete_webhook(_body().get("id"))
        return jsonify({})

    # -- simulation -------------------------------------------------------------------
    @app.post("/_sandbox/simulate/registrations")
    def simulate_registrations() -> Response:
        body = _body()
        count = body.get("count", 1)
        if isinstance(count, bool) or not isinstance(count, int) or not 0 <= count <= 10_000:
            raise _bad("count must be an integer between 0 and 10000", "count")
        seed = body.get("seed")
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
            raise _bad("seed must be an integer or null", "seed")
        ids = sandbox.simulate_registrations(_required(body, "event_id"), count, seed)
        return jsonify(ids=ids)

    @app.post("/_sandbox/simulate/cancel")
    def simulate_cancel() -> Response:
        body = _body()
        guest = sandbox.simulate_cancel(_required(body, "event_id"), _required(body, "guest_id"))
        return jsonify(guest=guest)

    @app.post("/_sandbox/simulate/checkin")
    def simulate_checkin() -> Response:
        body = _body()
        guest = sandbox.simulate_check_in(_required(body, "event_id"), _required(body, "guest_id"))
        return jsonify(guest=guest)

    return app


def _rate_limited(wait: float) -> Response:
    response = _error(429, "Rate limit exceeded, please slow down")
    response.headers["Retry-After"] = retry_after_header(wait)
    return response


def _body() -> dict[str, Any]:
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise _bad("Request body must be a JSON object")
    return body


def _required(source: Any, name: str) -> str:
    value = source.get(name)
    if not isinstance(value, str) or not value.strip():
        raise _bad(f"{name} is required", name)
    return value.strip()
