"""What the Eventbrite emulator accepts and the errors it answers with.

Every error code here is one Eventbrite documents for that operation in its API Blueprint
(vishalsachdev/eventbrite-mcp ``api-docs/eventbriteapiv3public.apib``, cited as [E1] in
CONTRACTS.md Part 1 section 2); the section each rule comes from is named next to it. Where
the Blueprint names no code for a case, the generic ``ARGUMENTS_ERROR`` with the field in
``error_detail`` is used and the comment says so.

The functions are pure: they get what they need to know about the stored state as
arguments and return the fields to store, or raise :class:`ApiError`.
"""

from __future__ import annotations

import base64
import html
import json
import re
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from hub.models import CURRENCY_EXPONENTS

PAGE_SIZE = 50

# [E1] "Create Webhook (object)": the actions a webhook may name.
WEBHOOK_ACTIONS = (
    "attendee.checked_in",
    "attendee.checked_out",
    "attendee.updated",
    "event.created",
    "event.published",
    "event.updated",
    "event.unpublished",
    "order.placed",
    "order.refunded",
    "order.updated",
    "organizer.updated",
    "ticket_class.created",
    "ticket_class.deleted",
    "ticket_class.updated",
    "venue.updated",
)
# [E1] "Checkout Settings (object)": checkout_method.
CHECKOUT_METHODS = ("paypal", "eventbrite", "authnet", "offline")
OFFLINE_PAYMENT_METHODS = ("CASH", "CHECK", "INVOICE")

_UTC_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
_COST_RE = re.compile(r"^([A-Za-z]{3}),(\d+)$")
_COUNTRY_RE = re.compile(r"^[A-Z]{2}$")

# [E1] "Create Webhooks - deprecated [POST /webhooks/]" and "List of Webhooks - deprecation
# [GET /webhooks/]": the 403 a legacy user endpoint answers with since June 1st, 2020.
# Eventbrite's changelog lists POST /v3/events/ among the same legacy user endpoints (its
# organization equivalent is POST /v3/organizations/{organization_id}/events/).
LEGACY_DESCRIPTION = (
    "This user is not able to use legacy user endpoints, please use the organization equivalent."
)


# --------------------------------------------------------------------------- errors


class ApiError(Exception):
    """An Eventbrite error reply ([E1] "Errors"): ``{"error", "error_description",
    "status_code"}``, plus ``error_detail`` for ARGUMENTS_ERROR ([E1] "Error (object)")."""

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

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "status_code": self.status,
            "error_description": self.description,
            "error": self.error,
        }
        if self.detail is not None:
            body["error_detail"] = self.detail
        return body


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


def bad_argument(field: str, code: str = "INVALID") -> ApiError:
    errors = ArgumentErrors()
    errors.add(field, code)
    try:
        errors.raise_if_any()
    except ApiError as exc:
        return exc
    raise AssertionError("unreachable")


def not_found(what: str = "The path you requested does not exist.") -> ApiError:
    return ApiError(404, "NOT_FOUND", what)


def legacy_endpoint() -> ApiError:
    return ApiError(403, "NOT_AUTHORIZED", LEGACY_DESCRIPTION)


# --------------------------------------------------------------------------- values


def now_z() -> str:
    return iso_z(datetime.now(UTC))


def iso_z(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_utc(value: Any) -> datetime | None:
    """``2026-05-01T17:00:00Z`` ([E1] datetime-tz-utc: UTC, no fractions, no offset)."""
    if not isinstance(value, str) or not _UTC_RE.match(value):
        return None
    try:
        return datetime.strptime(value, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    except ValueError:
        return None


def local_time(when: datetime, tz: str) -> str:
    return when.astimezone(ZoneInfo(tz)).strftime("%Y-%m-%dT%H:%M:%S")


def as_bool(value: Any, field: str, errors: ArgumentErrors, default: bool = False) -> bool:
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


def as_int(value: Any, field: str, errors: ArgumentErrors, *, minimum: int = 0) -> int | None:
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


def text_of(html_text: str) -> str:
    return html.unescape(re.sub(r"<[^>]+>", "", html_text)).strip()


def money(value: int, currency: str) -> dict[str, Any]:
    """[E1] "Currency Cost": minor units in ``value``, the major amount as text."""
    exponent = CURRENCY_EXPONENTS.get(currency, 2)
    major = Decimal(value) / (Decimal(10) ** exponent)
    major_text = f"{major:.{exponent}f}"
    return {
        "currency": currency,
        "value": value,
        "major_value": major_text,
        "display": f"{currency}{major_text}",
    }


def id_list(value: Any) -> list[str]:
    if value is None or value == "":
        return []
    if isinstance(value, str):
        return [v.strip() for v in value.split(",") if v.strip()]
    if isinstance(value, list | tuple):
        return [str(v).strip() for v in value if str(v).strip()]
    return [str(value)]


def nest_form(pairs: list[tuple[str, list[str]]]) -> dict[str, Any]:
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


def wrapped(body: dict[str, Any], name: str) -> dict[str, Any]:
    """The resource's fields from a body wrapped in its name ([E1]: ``{"event": {..}}``)."""
    inner = body.get(name)
    if isinstance(inner, dict):
        return inner
    # Some clients send the resource's fields unwrapped; Eventbrite tolerates it.
    return {k: v for k, v in body.items() if k != name}


# --------------------------------------------------------------------------- continuation


def encode_token(data: dict[str, Any]) -> str:
    raw = json.dumps(data, separators=(",", ":"), sort_keys=True).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_continuation(token: str, fingerprint: str) -> dict[str, Any]:
    """A continuation this emulator issued for the same listing, or [E1] "Common Errors"
    ``400 BAD_CONTINUATION_TOKEN``."""
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        data = json.loads(raw)
    except (ValueError, json.JSONDecodeError):
        data = None
    if not isinstance(data, dict) or data.get("f") != fingerprint:
        raise ApiError(400, "BAD_CONTINUATION_TOKEN", "Invalid continuation token passed.")
    return data


# --------------------------------------------------------------------------- events


def _time_block(
    data: dict[str, Any], key: str, errors: ArgumentErrors
) -> tuple[str | None, datetime | None]:
    """(timezone, utc) of ``start``/``end``; an unknown zone comes back as "?" (checked
    after the argument errors, it has its own code)."""
    block = data.get(key)
    if not isinstance(block, dict):
        errors.add(f"event.{key}.utc", "MISSING")
        errors.add(f"event.{key}.timezone", "MISSING")
        return None, None
    tz = block.get("timezone")
    if not tz:
        errors.add(f"event.{key}.timezone", "MISSING")
    when = parse_utc(block.get("utc"))
    if block.get("utc") in (None, ""):
        errors.add(f"event.{key}.utc", "MISSING")
    elif when is None:
        errors.add(f"event.{key}.utc", "INVALID")
    return (str(tz) if tz else None), when


def _zone_exists(tz: str) -> bool:
    try:
        ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True


def validate_event(
    data: dict[str, Any],
    current: dict[str, Any] | None,
    *,
    now: str,
    venue_exists: Callable[[str], bool],
    has_paid_classes: bool = False,
    paid_sales: int = 0,
    sold: int = 0,
) -> dict[str, Any]:
    """Fields to store for a create (``current`` None) or a partial update ([E1] "Event
    Create", "Event Update" and the 400 codes of "Create an Event" / "Update an Event")."""
    errors = ArgumentErrors()
    changes: dict[str, Any] = {}
    creating = current is None

    name = data.get("name")
    if name is not None or creating:
        name_html = name.get("html") if isinstance(name, dict) else None
        if not isinstance(name_html, str) or not name_html.strip():
            # "Value cannot be empty nor whitespace"
            errors.add("event.name.html", "MISSING" if not name_html else "INVALID")
        else:
            changes["name"] = {"text": text_of(name_html), "html": name_html}
    summary = data.get("summary")
    desc = data.get("description")
    if summary is not None and not isinstance(summary, str):
        errors.add("event.summary", "INVALID")
    desc_html = desc.get("html") if isinstance(desc, dict) else desc
    if desc is not None and desc_html is not None and not isinstance(desc_html, str):
        errors.add("event.description.html", "INVALID")
    times: dict[str, tuple[str | None, datetime | None]] = {}
    for key in ("start", "end"):
        if data.get(key) is None and not creating:
            continue
        times[key] = _time_block(data, key, errors)
    currency = data.get("currency")
    if currency is not None or creating:
        if not currency:
            errors.add("event.currency", "MISSING")
        elif str(currency).upper() not in CURRENCY_EXPONENTS:
            errors.add("event.currency", "INVALID")
    capacity = None
    if "capacity" in data:
        capacity = as_int(data["capacity"], "event.capacity", errors)
    for flag in ("online_event", "listed", "shareable"):
        if flag in data:
            changes[flag] = as_bool(data[flag], f"event.{flag}", errors)
    if "venue_id" in data:
        venue_id = str(data["venue_id"]) if data["venue_id"] else None
        if venue_id and not venue_exists(venue_id):
            errors.add("event.venue_id", "INVALID")
        changes["venue_id"] = venue_id
    errors.raise_if_any()

    # "SUMMARY_DESCRIPTION_CONFLICT - You have set values for both summary and
    # description; these two options are mutually exclusive".
    if summary is not None and desc is not None:
        raise ApiError(
            400,
            "SUMMARY_DESCRIPTION_CONFLICT",
            "You have set values for both summary and description; these two options are "
            "mutually exclusive, and you may only set one.",
        )
    if summary is not None:
        # "plaintext ... any supplied HTML removed ... Maximum of 140 characters"
        plain = text_of(summary)
        if len(plain) > 140:
            raise bad_argument("event.summary")
        changes["summary"] = plain
        changes["description"] = {"text": plain, "html": html.escape(plain, quote=False)}
    elif desc is not None:
        desc_html = desc_html or ""
        changes["description"] = {"text": text_of(desc_html), "html": desc_html}
        changes["summary"] = text_of(desc_html)[:140]

    for key, (tz, _) in times.items():
        if tz and not _zone_exists(tz):
            # "UNSUPPORTED_TIMEZONE - The time zone for the start and end times does not exist."
            raise ApiError(
                400,
                "UNSUPPORTED_TIMEZONE",
                f"The time zone for the {key} time does not exist.",
            )
    for key, (tz, when) in times.items():
        if tz and when:
            changes[key] = {"timezone": tz, "local": local_time(when, tz), "utc": iso_z(when)}

    merged = {**(current or {}), **changes}
    if merged["start"]["timezone"] != merged["end"]["timezone"]:
        raise ApiError(
            400,
            "DIFFERENT_TIMEZONES",
            "You have passed different timezones for the start and end times; they must be "
            "the same.",
        )
    if merged["end"]["utc"] <= merged["start"]["utc"]:
        raise ApiError(400, "DATE_CONFLICT", "End date must be after start date.")
    if times and (merged["start"]["utc"] < now or merged["end"]["utc"] < now):
        # Only when this request sets a date: an event that has started can still be renamed.
        raise ApiError(400, "INVALID_DATE", "Start and end dates cannot be in the past.")

    if currency is not None:
        currency = str(currency).upper()
        if current and currency != current["currency"] and (paid_sales or has_paid_classes):
            # "CANNOT_UPDATE_CURRENCY - Cannot update event with paid sales or reserved
            # seats." The Blueprint names paid sales; paid ticket classes without sales are
            # refused too, as their costs would be left in the old currency (the rule
            # CURRENCY_MISMATCH enforces from the ticket side) rather than invent a conversion.
            raise ApiError(
                400,
                "CANNOT_UPDATE_CURRENCY",
                "Cannot update event with paid sales or reserved seats.",
            )
        changes["currency"] = currency
        merged["currency"] = currency
    if merged.get("venue_id") and merged.get("online_event"):
        raise ApiError(
            400,
            "VENUE_AND_ONLINE",
            "You have set both online_event and venue_id; an event can either have a venue "
            "or be online, but not both at the same time.",
        )
    if capacity is not None:
        if current and capacity < sold:
            # No documented code for a capacity below the seats sold: the generic one.
            raise bad_argument("event.capacity")
        changes["capacity"] = capacity
        changes["capacity_is_custom"] = True
    return changes


# --------------------------------------------------------------------------- ticket classes


def parse_cost(cost_raw: Any) -> tuple[str | None, int | None]:
    """``"USD,4500"`` ([E1] "Ticket Class Create": cost) or a Currency Cost object."""
    if isinstance(cost_raw, dict):
        currency, value = cost_raw.get("currency"), cost_raw.get("value")
    else:
        match = _COST_RE.match(str(cost_raw).strip())
        currency, value = (match.group(1), match.group(2)) if match else (None, None)
    try:
        minor = int(value) if value is not None else None
    except (TypeError, ValueError):
        minor = None
    return (str(currency).upper() if currency else None), minor


def validate_ticket_class(
    event: dict[str, Any], data: dict[str, Any], current: dict[str, Any] | None
) -> dict[str, Any]:
    """Fields to store ([E1] "Ticket Class Create" and the 400 codes of "Create a Ticket
    Class" / "Update a Ticket Class")."""
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
    capacity_given = "capacity" in data or "quantity_total" in data
    capacity_raw = data.get("capacity", data.get("quantity_total"))
    capacity = as_int(capacity_raw, "ticket_class.capacity", errors) if capacity_given else None
    for key in ("hidden", "auto_hide", "include_fee"):
        if key in data:
            changes[key] = as_bool(data[key], f"ticket_class.{key}", errors)
    for key in ("minimum_quantity", "maximum_quantity"):
        if key in data:
            changes[key] = as_int(data[key], f"ticket_class.{key}", errors, minimum=1)
    for key in ("sales_start", "sales_end"):
        if key in data and data[key] not in (None, ""):
            when = parse_utc(data[key])
            if when is None:
                errors.add(f"ticket_class.{key}", "INVALID")
            else:
                changes[key] = iso_z(when)
    free = as_bool(data.get("free"), "ticket_class.free", errors) if "free" in data else None
    cost_raw = data.get("cost")
    errors.raise_if_any()

    # "capacity ... required for non-donation and non-tiered ticket classes. For normal
    # ticket, null or 0 is not allowed." -> "NO_QUANTITY_TOTAL - A quantity total must be
    # set for this ticket."
    if (creating and not capacity_given) or (capacity_given and not capacity):
        raise ApiError(400, "NO_QUANTITY_TOTAL", "A quantity total must be set for this ticket.")
    if capacity is not None:
        if current and capacity < int(current["quantity_sold"]):
            # Undocumented case (a capacity below the tickets sold): the generic code.
            raise bad_argument("ticket_class.capacity")
        changes["capacity"] = capacity

    if free and cost_raw not in (None, ""):
        raise ApiError(
            400, "FREE_AND_COST", "A ticket cannot be a free ticket and a charged ticket."
        )
    if cost_raw not in (None, ""):
        currency, minor = parse_cost(cost_raw)
        if not currency or minor is None or minor < 0:
            raise bad_argument("ticket_class.cost")
        if currency != event["currency"]:
            raise ApiError(400, "CURRENCY_MISMATCH", "Event currency ticket currency must match.")
        if (
            current
            and not current["free"]
            and int(current["quantity_sold"])
            and minor != int(current["cost"]["value"])
        ):
            raise ApiError(
                400,
                "CANNOT_UPDATE_COST",
                "Cannot change the ticket price after tickets have been sold",
            )
        changes.update(free=False, cost=money(minor, event["currency"]))
    elif free:
        changes.update(free=True, cost=None)
    elif creating or free is False:
        raise ApiError(400, "NO_COST", "A price must be set for a charged ticket.")
    merged = {**(current or {}), **changes}
    start, end = merged.get("sales_start"), merged.get("sales_end")
    if start and end and end <= start:
        # No code of its own in the Blueprint for sales dates: the generic one.
        raise bad_argument("ticket_class.sales_end")
    return changes


# --------------------------------------------------------------------------- publishing


def check_publishable(
    event: dict[str, Any],
    classes: list[dict[str, Any]],
    checkout_settings: list[dict[str, Any]],
) -> None:
    """[E1] "Publish an Event": "the event must have all necessary information, including a
    name and description, an organizer, at least one ticket, and valid payment options.
    This API endpoint will return argument errors for event fields that fail to validate
    the publish requirements."

    Payment options are the event's checkout settings ([E1] "Checkout Settings (object)":
    country_code, currency_code, checkout_method, user_instrument_vault_id). A paid ticket
    class needs one for the event's currency, with a country and a checkout method, and
    PayPal needs its account; the codes are the Blueprint's for publish.
    """
    if event["status"] != "draft":
        raise ApiError(
            400,
            "ALREADY_PUBLISHED_OR_DELETED",
            "This event has already been published or deleted.",
        )
    errors = ArgumentErrors()
    if not (event.get("description") or {}).get("html"):
        errors.add("event.description", "MISSING")
    if not classes:
        # The Blueprint names no code, only "argument errors for event fields".
        errors.add("event.ticket_classes", "MISSING")
    errors.raise_if_any()
    if all(tc["free"] for tc in classes):
        return  # [E1] "An Event with only free Ticket Classes ... doesn't require payout"
    usable = [s for s in checkout_settings if s.get("currency_code") == event["currency"]]
    if not usable:
        raise ApiError(
            400,
            "NO_PAYMENT_OPTIONS",
            "This event has paid tickets but no payment options configured.",
        )
    if not any(s.get("country_code") for s in usable):
        raise ApiError(
            400,
            "PAYMENT_OPTIONS_NO_COUNTRY",
            "This event has paid tickets but no payment country configured.",
        )
    if not any(s.get("checkout_method") for s in usable):
        raise ApiError(
            400,
            "PAYMENT_OPTIONS_NO_PAYMENT_TYPE",
            "This event has paid tickets but no payment type configured.",
        )
    if all(
        s.get("checkout_method") == "paypal" and not s.get("user_instrument_vault_id")
        for s in usable
        if s.get("checkout_method")
    ):
        raise ApiError(
            400,
            "PAYMENT_OPTIONS_PAYPAL_NO_EMAIL",
            "This event has paid tickets and is configured to use PayPal, but no PayPal "
            "email address has been specified.",
        )


def validate_checkout_settings(data: dict[str, Any]) -> dict[str, Any]:
    """[E1] "Checkout Settings (object)". Country and method may be left out here: the
    Blueprint's publish codes (PAYMENT_OPTIONS_NO_COUNTRY, _NO_PAYMENT_TYPE) are how Eventbrite
    says they are missing, so they are checked when the event is published."""
    errors = ArgumentErrors()
    out: dict[str, Any] = {}
    currency = data.get("currency_code")
    if not currency:
        errors.add("checkout_settings.currency_code", "MISSING")
    elif str(currency).upper() not in CURRENCY_EXPONENTS:
        errors.add("checkout_settings.currency_code", "INVALID")
    else:
        out["currency_code"] = str(currency).upper()
    country = data.get("country_code")
    if country not in (None, ""):
        if not _COUNTRY_RE.match(str(country).upper()):
            errors.add("checkout_settings.country_code", "INVALID")
        out["country_code"] = str(country).upper()
    else:
        out["country_code"] = None
    method = data.get("checkout_method")
    if method not in (None, "") and method not in CHECKOUT_METHODS:
        errors.add("checkout_settings.checkout_method", "INVALID")
    out["checkout_method"] = method or None
    offline = data.get("offline_settings") or []
    if not isinstance(offline, list) or any(
        not isinstance(o, dict) or o.get("payment_method") not in OFFLINE_PAYMENT_METHODS
        for o in offline
    ):
        errors.add("checkout_settings.offline_settings", "INVALID")
    out["offline_settings"] = offline if isinstance(offline, list) else []
    vault_id = data.get("user_instrument_vault_id")
    out["user_instrument_vault_id"] = str(vault_id) if vault_id else None
    errors.raise_if_any()
    return out


# --------------------------------------------------------------------------- webhooks


def validate_webhook(data: dict[str, Any]) -> tuple[str, list[str], str | None]:
    """(endpoint_url, actions, event_id) of a [E1] "Create Webhook (object)": endpoint_url
    required; actions optional (absent means every action); event_id optional ("Leave
    blank for all events")."""
    errors = ArgumentErrors()
    endpoint = data.get("endpoint_url")
    if not isinstance(endpoint, str) or not endpoint.strip():
        errors.add("endpoint_url", "MISSING")
    elif not re.match(r"^https?://[^\s/]+", endpoint.strip()):
        errors.add("endpoint_url", "INVALID")
    actions = id_list(data.get("actions"))
    if any(a not in WEBHOOK_ACTIONS for a in actions):
        errors.add("actions", "INVALID")
    errors.raise_if_any()
    event_id = str(data.get("event_id") or "") or None
    return str(endpoint).strip(), actions or list(WEBHOOK_ACTIONS), event_id
