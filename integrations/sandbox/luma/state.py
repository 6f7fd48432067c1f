"""State and behaviour of the emulated Luma calendar (events, ticket types, guests).

Documents are stored in one internal form (the legacy names: ``api_id``, ``event_api_id``,
``event_ticket_type_api_id``); :mod:`integrations.sandbox.luma.views` renders them per
generation and :func:`integrations.sandbox.luma.openapi.project` drops whatever the
operation's schema does not declare.

What the contracts say and this module does:

- **Approval** lives on ticket types (``require_approval``, transitional and current
  documents). A guest who registers on such a ticket type is ``pending_approval``; on
  any other ticket type ``approved``. No event-level approval switch exists in any
  document: the legacy create body forbids undocumented properties (refused by the
  request validation), the later ones allow unknown properties, which have no effect.
- ``max_capacity``: once full, registration is closed; a newcomer lands on the waitlist
  (``waitlist``). A guest ``approved`` or ``pending_approval`` holds a seat.

Choices where Luma documents nothing (each kept in one place):

- A new event gets one visible free ticket type "Standard" without approval; a guest
  registers on the most recently created visible ticket type.
- Error bodies are ``{"message": str, "field"?: str}`` (:class:`ApiError`, Uncertain #7).
- Guest order and cursors: :meth:`LumaSandbox.list_guests`.
- Guest e-mails are stored trimmed and lower-cased, phones in E.164.
- A guest who cancels becomes ``declined`` (Luma has no "cancelled" approval status).
"""

from __future__ import annotations

import base64
import binascii
import json
import secrets
import string
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from integrations.sandbox.common import PeopleFactory, SandboxStore, utcnow
from integrations.sandbox.luma.webhooks import LumaWebhooks

APPROVAL_STATUSES = ("approved", "session", "pending_approval", "invited", "declined", "waitlist")
SEAT_HOLDING = ("approved", "pending_approval")
DEFAULT_PAGE_LIMIT = 50
SANDBOX_HOST = {
    "api_id": "usr-sandboxhost0001",
    "email": "organizers@example.org",
    "name": "Sandbox Organizers",
    "first_name": "Sandbox",
    "last_name": "Organizers",
    "avatar_url": "https://images.lumacdn.com/avatars/default.png",
}
DEFAULT_COVER = "https://images.lumacdn.com/event-covers/default.png"

_ALNUM = string.ascii_letters + string.digits
_SLUG_CHARS = string.ascii_lowercase + string.digits


def new_id(prefix: str, length: int = 15) -> str:
    """``evt-`` / ``gst-`` / ``ttype-`` ... followed by random alphanumerics."""
    return prefix + "".join(secrets.choice(_ALNUM) for _ in range(length))


def iso_ms(when: datetime) -> str:
    """2022-10-19T03:27:13.673Z, the form the documents print."""
    utc = when.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


def now_iso() -> str:
    return iso_ms(utcnow())


def parse_iso(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


class ApiError(Exception):
    """A refusal: HTTP status, message and (where known) the field at fault."""

    def __init__(self, status: int, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.field = field


def bad(message: str, field: str | None = None) -> ApiError:
    return ApiError(400, message, field)


# --------------------------------------------------------------------------- cursors


def encode_cursor(mode: str, value: Any) -> str:
    raw = json.dumps([mode, value], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str | None, mode: str) -> Any:
    if not cursor:
        return None
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        kind, value = json.loads(base64.urlsafe_b64decode(padded.encode()))
    except (binascii.Error, ValueError, TypeError, UnicodeDecodeError):
        raise bad("Invalid pagination_cursor", "pagination_cursor") from None
    if kind != mode:
        raise bad("pagination_cursor does not match this listing's sort", "pagination_cursor")
    return value


# --------------------------------------------------------------------------- parsing


def _parse_time(value: Any, field: str, zone: ZoneInfo | None) -> datetime:
    if not isinstance(value, str) or not value.strip():
        raise bad(f"{field} must be an ISO 8601 datetime", field)
    try:
        parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise bad(f"{field} must be an ISO 8601 datetime", field) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=zone or ZoneInfo("UTC"))
    return parsed


def _parse_zone(value: Any) -> ZoneInfo:
    if not isinstance(value, str) or not value.strip():
        raise bad("timezone is required (an IANA name such as Europe/Istanbul)", "timezone")
    try:
        return ZoneInfo(value.strip())
    except (ZoneInfoNotFoundError, ValueError):
        raise bad(f"Unknown timezone {value!r}", "timezone") from None


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


def page_limit(value: Any, cap: int) -> int:
    """``pagination_limit`` (already typed by the request validation) capped by the server."""
    if value in (None, ""):
        return min(DEFAULT_PAGE_LIMIT, cap)
    limit = int(float(value))
    if limit < 1:
        raise bad("pagination_limit must be at least 1", "pagination_limit")
    return min(limit, cap)


def _normalize_phone(raw: str) -> str:
    import phonenumbers

    try:
        number = phonenumbers.parse(raw, "TR")
    except phonenumbers.NumberParseException:
        return raw.strip()
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def _int_or_none(value: Any, field: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise bad(f"{field} must be a non-negative number or null", field)
    if isinstance(value, float) and not value.is_integer():
        raise bad(f"{field} must be a whole number", field)
    return int(value)


# --------------------------------------------------------------------------- the sandbox


class LumaSandbox:
    """The emulated calendar. Route handlers are thin; validation of shapes and types is
    the OpenAPI documents' job (done before a handler runs), the rules here are the ones a
    schema cannot express (time zones, end after start, capacity, approval)."""

    def __init__(
        self,
        store: SandboxStore,
        webhooks: LumaWebhooks,
        *,
        calendar_id: str,
        max_page_limit: int,
    ) -> None:
        self.store = store
        self.webhooks = webhooks
        self.sender = webhooks.sender
        self.controls = webhooks.sender.controls
        self.calendar_id = calendar_id
        self.max_page_limit = max_page_limit

    # -- events ----------------------------------------------------------------
    def _apply_event_fields(self, event: dict[str, Any], body: dict[str, Any]) -> None:
        if "name" in body:
            if not str(body["name"]).strip():
                raise bad("name must not be empty", "name")
            event["name"] = str(body["name"]).strip()
        if "timezone" in body:
            event["timezone"] = _parse_zone(body["timezone"]).key
        zone = ZoneInfo(event["timezone"]) if event.get("timezone") else None
        if "start_at" in body:
            event["start_at"] = iso_ms(_parse_time(body["start_at"], "start_at", zone))
        if body.get("end_at") is not None:
            event["end_at"] = iso_ms(_parse_time(body["end_at"], "end_at", zone))
        for text_field in ("meeting_url", "cover_url"):
            if text_field in body:
                event[text_field] = body[text_field]
        if "description_md" in body:
            event["description_md"] = body["description_md"] or ""
            event["description"] = body["description_md"] or ""
        if "geo_address_json" in body:
            geo = body["geo_address_json"]
            if geo is not None and geo.get("type") == "google":
                geo = {"type": "google", "address": geo.get("description") or geo["place_id"]}
            event["geo_address_json"] = geo
        if "max_capacity" in body:
            event["max_capacity"] = _int_or_none(body["max_capacity"], "max_capacity")
        if "visibility" in body:
            event["visibility"] = body["visibility"]

    def _finish_event(self, event: dict[str, Any]) -> None:
        start = parse_iso(event["start_at"])
        if not event.get("end_at"):
            event["end_at"] = iso_ms(start + timedelta(hours=1))
        end = parse_iso(event["end_at"])
        if end < start:
            raise bad("end_at must be after start_at", "end_at")
        event["duration_interval"] = _iso_duration(end - start)

    def create_event(self, body: dict[str, Any]) -> dict[str, Any]:
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
            "slug": "".join(secrets.choice(_SLUG_CHARS) for _ in range(10)),
            "cover_url": DEFAULT_COVER,
            "visibility": "public",
            "meeting_url": None,
            "zoom_meeting_url": None,
            "geo_address_json": None,
            "geo_latitude": None,
            "geo_longitude": None,
            "max_capacity": None,
        }
        self._apply_event_fields(event, body)
        self._finish_event(event)
        with self.store.atomic():
            self.store.insert("event", event["api_id"], event, scope=self.calendar_id)
            ticket_type = self._new_ticket_type(
                event["api_id"], {"name": "Standard", "type": "free"}
            )
            self.store.insert("ticket_type", ticket_type["api_id"], ticket_type, event["api_id"])
        self.webhooks.event_changed("event.created", event)
        return event

    def update_event(self, event_id: str, body: dict[str, Any]) -> dict[str, Any]:
        with self.store.atomic():
            event = self.require_event(event_id)
            updated = dict(event)
            if body.get("end_at") is None and "start_at" in body:
                # keep the duration when only the start moves
                duration = parse_iso(event["end_at"]) - parse_iso(event["start_at"])
                updated["end_at"] = None
                self._apply_event_fields(updated, body)
                updated["end_at"] = iso_ms(parse_iso(updated["start_at"]) + duration)
            else:
                self._apply_event_fields(updated, body)
            self._finish_event(updated)
            updated["updated_at"] = now_iso()
            self.store.update("event", event_id, updated)
        self.webhooks.event_changed("event.updated", updated)
        return updated

    def require_event(self, event_id: str | None) -> dict[str, Any]:
        if not event_id:
            raise bad("event id is required", "event_id")
        event = self.store.get("event", event_id)
        if event is None or event.get("calendar_api_id") != self.calendar_id:
            raise ApiError(404, f"Event {event_id} not found")
        return event

    def event_by_slug(self, slug: str) -> dict[str, Any] | None:
        rows = self.store.page(
            "event", limit=1, where="json_extract(data, '$.slug') = ?", params=(slug,)
        )
        return rows[0][1] if rows else None

    def seats_taken(self, event_id: str) -> int:
        marks = ",".join("?" for _ in SEAT_HOLDING)
        return self.store.count(
            "guest",
            scope=event_id,
            where=f"json_extract(data, '$.approval_status') in ({marks})",
            params=SEAT_HOLDING,
        )

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
        events = [
            e
            for e in events
            if (lower is None or parse_iso(e["start_at"]) >= lower)
            and (upper is None or parse_iso(e["start_at"]) <= upper)
        ]
        desc = (sort_direction or "asc").startswith("desc")
        events.sort(key=lambda e: (e["start_at"], e["api_id"]), reverse=desc)
        last = decode_cursor(cursor, "e")
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
            encode_cursor("e", [page[-1]["start_at"], page[-1]["api_id"]]) if has_more else None
        )
        return page, has_more, next_cursor

    # -- ticket types ------------------------------------------------------------
    def _new_ticket_type(self, event_id: str, body: dict[str, Any]) -> dict[str, Any]:
        ticket_type = {
            "api_id": new_id("ttype-"),
            "event_api_id": event_id,
            "name": "",
            "type": "free",
            "require_approval": False,
            "is_hidden": False,
            "description": None,
            "valid_start_at": None,
            "valid_end_at": None,
            "max_capacity": None,
            "cents": None,
            "currency": None,
            "is_flexible": False,
            "min_cents": None,
            "created_at": now_iso(),
        }
        self._apply_ticket_fields(ticket_type, body)
        return ticket_type

    def _apply_ticket_fields(self, ticket_type: dict[str, Any], body: dict[str, Any]) -> None:
        for key in ("require_approval", "is_hidden", "is_flexible"):
            if key in body:
                ticket_type[key] = bool(body[key])
        for key in ("description", "valid_start_at", "valid_end_at"):
            if key in body:
                ticket_type[key] = body[key]
        if "name" in body:
            if not str(body["name"]).strip():
                raise bad("name must not be empty", "name")
            ticket_type["name"] = str(body["name"]).strip()
        if "max_capacity" in body:
            ticket_type["max_capacity"] = _int_or_none(body["max_capacity"], "max_capacity")
        if "type" in body:
            ticket_type["type"] = body["type"]
        if "cents" in body:
            ticket_type["cents"] = _int_or_none(body["cents"], "cents")
        if "min_cents" in body:
            ticket_type["min_cents"] = _int_or_none(body["min_cents"], "min_cents")
        if "currency" in body:
            ticket_type["currency"] = (body["currency"] or "").lower() or None
        if ticket_type["type"] == "paid":
            if not ticket_type["cents"] or not ticket_type["currency"]:
                raise bad("a paid ticket type needs cents > 0 and a currency", "cents")
        else:
            ticket_type.update(cents=None, currency=None, min_cents=None, is_flexible=False)

    def create_ticket_type(self, event_id: str, body: dict[str, Any]) -> dict[str, Any]:
        with self.store.atomic():
            self.require_event(event_id)
            ticket_type = self._new_ticket_type(event_id, body)
            self.store.insert("ticket_type", ticket_type["api_id"], ticket_type, event_id)
        return ticket_type

    def require_ticket_type(self, ticket_type_id: str | None) -> dict[str, Any]:
        ticket_type = self.store.get("ticket_type", ticket_type_id or "")
        if ticket_type is None:
            raise ApiError(404, f"Ticket type {ticket_type_id} not found")
        self.require_event(ticket_type["event_api_id"])  # of this calendar
        return ticket_type

    def update_ticket_type(self, ticket_type_id: str, body: dict[str, Any]) -> dict[str, Any]:
        with self.store.atomic():
            ticket_type = dict(self.require_ticket_type(ticket_type_id))
            self._apply_ticket_fields(ticket_type, body)
            self.store.update("ticket_type", ticket_type_id, ticket_type)
        return ticket_type

    def ticket_types(self, event_id: str, *, include_hidden: bool = True) -> list[dict[str, Any]]:
        self.require_event(event_id)
        types = self.store.all("ticket_type", scope=event_id)
        return [t for t in types if include_hidden or not t["is_hidden"]]

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
        ticket_type: dict[str, Any] | None,
    ) -> dict[str, Any]:
        now = now_iso()
        first, _, last = (name or "").partition(" ")
        tickets = []
        if ticket_type is not None:
            amount = ticket_type["cents"] or 0
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
            "api_id": new_id("gst-"),
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
            "proxy_key": new_id("g-", 12),
            "custom_source": None,
            "utm_source": None,
            "eth_address": None,
            "solana_address": None,
            "registration_answers": [],
            "event_tickets": tickets,
            "event_ticket_orders": [],
            "updated_at": now,
        }

    def _guest_by(self, event_id: str, key: str, value: str) -> dict[str, Any] | None:
        rows = self.store.page(
            "guest",
            scope=event_id,
            limit=1,
            where=f"json_extract(data, '$.{key}') = ?",
            params=(value,),
        )
        return rows[0][1] if rows else None

    def _status_for_newcomer(
        self, event: dict[str, Any], taken: int, ticket_type: dict[str, Any] | None
    ) -> str:
        cap = event.get("max_capacity")
        if cap is not None and taken >= cap:
            return "waitlist"
        if ticket_type is not None and ticket_type["require_approval"]:
            return "pending_approval"
        return "approved"

    def simulate_registrations(
        self, event_id: str, count: int, seed: int | None = None
    ) -> list[str]:
        """``count`` people register on the public page; returns their guest ids."""
        people = PeopleFactory(seed)
        created: list[dict[str, Any]] = []
        with self.store.atomic():
            event = self.require_event(event_id)
            taken = self.seats_taken(event_id)
            ticket_type = self._sale_ticket_type(event_id)
            emails = {g["user_email"] for g in self.store.all("guest", scope=event_id)}
            for _ in range(count):
                for _attempt in range(20):
                    person = people.person()
                    if person.email.strip().lower() not in emails:
                        break
                emails.add(person.email.strip().lower())
                status = self._status_for_newcomer(event, taken, ticket_type)
                if status in SEAT_HOLDING:
                    taken += 1
                guest = self._new_guest(
                    event,
                    name=person.full_name,
                    email=person.email,
                    phone=person.phone,
                    approval_status=status,
                    ticket_type=ticket_type,
                )
                self.store.insert("guest", guest["api_id"], guest, scope=event_id)
                created.append(guest)
        self.webhooks.guests_changed("guest.registered", event, created)
        return [g["api_id"] for g in created]

    def add_guests(
        self,
        event_id: str,
        guests: list[dict[str, Any]],
        approval_status: str | None = None,
        ticket_type_id: str | None = None,
    ) -> list[str]:
        """The host adds guests (as ``approved`` unless the current API's
        ``approval_status`` says otherwise); an e-mail already on the list is skipped."""
        created: list[dict[str, Any]] = []
        with self.store.atomic():
            event = self.require_event(event_id)
            ticket_type = (
                self.require_ticket_type(ticket_type_id)
                if ticket_type_id
                else self._sale_ticket_type(event_id)
            )
            for item in guests:
                email = item["email"]
                if "@" not in email:
                    raise bad("each guest needs a valid email", "guests")
                if self._guest_by(event_id, "user_email", email.strip().lower()) is not None:
                    continue
                guest = self._new_guest(
                    event,
                    name=item.get("name"),
                    email=email,
                    phone=item.get("phone_number"),
                    approval_status=approval_status or "approved",
                    ticket_type=ticket_type,
                )
                self.store.insert("guest", guest["api_id"], guest, scope=event_id)
                created.append(guest)
        self.webhooks.guests_changed("guest.registered", event, created)
        return [g["api_id"] for g in created]

    def find_guest(
        self,
        event_id: str,
        *,
        guest_id: str | None = None,
        email: str | None = None,
        proxy_key: str | None = None,
    ) -> dict[str, Any]:
        self.require_event(event_id)
        guest = None
        if guest_id:
            guest = self.store.get("guest", guest_id)
            if guest is not None and guest.get("event_api_id") != event_id:
                guest = None
        elif email:
            guest = self._guest_by(event_id, "user_email", email.strip().lower())
        elif proxy_key:
            guest = self._guest_by(event_id, "proxy_key", proxy_key)
        else:
            raise bad("a guest id, email or proxy_key is required", "id")
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
        should_refund: bool = False,
    ) -> dict[str, Any]:
        """Change a guest's approval status (``guest.updated`` webhook when it changes).

        The allowed values are the operation's enum (checked by the request validation).
        ``should_refund`` is accepted; sandbox tickets record no refund state."""
        del should_refund
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
        self.webhooks.guests_changed("guest.updated", event, [guest])
        return guest

    def simulate_cancel(self, event_id: str, guest_id: str) -> dict[str, Any]:
        """The guest cancels on Luma: they become ``declined`` (and free the seat)."""
        return self.set_guest_status(event_id, guest_id=guest_id, status="declined")

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
        self.webhooks.guests_changed("guest.updated", event, [guest])
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
        only guests who registered since. Luma has no changed-since filter: a status change
        of a guest already paged past is only announced by the ``guest.updated`` webhook
        (or seen when re-reading from the start).

        Other orders (``name``, ``email``, ``checked_in_at`` or descending) use an offset
        cursor and return ``next_cursor`` only while ``has_more``.
        """
        self.require_event(event_id)
        where, params = "", ()
        if approval_status:
            where, params = "json_extract(data, '$.approval_status') = ?", (approval_status,)
        descending = (sort_direction or "asc").startswith("desc")
        if sort_column in (None, "registered_at", "created_at") and not descending:
            after = decode_cursor(cursor, "s") or 0
            if not isinstance(after, int):
                raise bad("Invalid pagination_cursor", "pagination_cursor")
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
            return [doc for _, doc in rows], has_more, encode_cursor("s", last_seq)

        offset = decode_cursor(cursor, "o") or 0
        if not isinstance(offset, int) or offset < 0:
            raise bad("Invalid pagination_cursor", "pagination_cursor")
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
        return page, has_more, encode_cursor("o", offset + limit) if has_more else None
