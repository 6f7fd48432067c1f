"""Eventbrite channel adapter: REST v3 (CONTRACTS.md Part 1 §2).

The private token travels only in the ``Authorization: Bearer`` header, never in a URL,
a log line or an error message. Every write is a POST to a path ending in ``/`` with the
body wrapped in the resource name, exactly like the live API, so the sandbox and
www.eventbriteapi.com differ only in base URL and token.

How the hub runs Eventbrite:

- An event gets two ticket classes: the visible "General admission" (paid or free) that
  carries the channel's capacity, and a hidden "Waitlist" class of one seat that only an
  access code unlocks, for the next waitlisted person when a seat frees. Eventbrite refuses
  a capacity of 0 for a normal ticket class ([E1] "Ticket Class Create": "For normal
  ticket, null or 0 is not allowed"), so "no seats" is always said as a hidden class of
  capacity 1, never as capacity 0.
- A paid event is published only with payment options: checkout settings for its
  currency linked to the event ([E1] "Publish an Event": NO_PAYMENT_OPTIONS and the
  PAYMENT_OPTIONS_* codes). The adapter links the organization's existing settings for
  that currency (payouts are set up once in Eventbrite by the organizer) and creates
  Eventbrite Payment Processing settings for ``payout_country`` only when there are none.
- Publishing is resumable: a retry after a crash finds the event it already made
  (:meth:`EventbriteAdapter.find_existing`) and the ticket classes it already added.
- Webhooks carry no data and no signature: :meth:`EventbriteAdapter.fetch_api_url` reads
  the object they name, but only from this adapter's own API host.
"""

from __future__ import annotations

import base64
import binascii
import email.utils
import hashlib
import html
import json
import logging
import re
from collections.abc import Collection
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote

import httpx

from hub.models import (
    ChannelPublication,
    Event,
    PaymentStatus,
    Platform,
    PlatformRegistration,
    RegistrationPage,
    RegistrationStatus,
)
from integrations.base import (
    ChannelAdapter,
    NotFound,
    ServerError,
    Unsupported,
    ValidationFailed,
    _safe_json,
    parse_timestamp,
)

log = logging.getLogger("hub.integrations.eventbrite")

# The live base URL is hub.settings.LIVE_BASE_URLS["eventbrite"] (the one place).
API_PREFIX = "/v3"
ADMISSION_TICKET_NAME = "General admission"
WAITLIST_TICKET_NAME = "Waitlist"
TEST_PING_MARKER = "{api-endpoint-to-fetch-object-details}"
REGISTRATION_ACTIONS = ("order.placed", "order.updated", "order.refunded", "attendee.updated")
# [E1] "Checkout Settings (object)": Eventbrite Payment Processing.
CHECKOUT_METHOD = "eventbrite"
_ORDER_PATH = re.compile(r"^/v3/orders/(\d+)/?$")
_ATTENDEE_PATH = re.compile(r"^/v3/events/(\d+)/attendees/(\d+)/?$")
_MAX_PAGES = 10_000
_CAPACITY_RETRIES = 3
_BOUNDARY_LIMIT = 2_000  # attendees at the changed_since boundary the cursor remembers


def _utc(when: datetime) -> str:
    """Eventbrite's UTC form: 2026-05-01T17:00:00Z (no fractions, no offset)."""
    if when.tzinfo is None:
        raise ValueError("naive datetime given to the Eventbrite adapter")
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _seats(capacity: int) -> dict[str, Any]:
    """A visible class of ``capacity`` seats, or, for none, hidden at the minimum of 1."""
    return (
        {"capacity": capacity, "hidden": False}
        if capacity > 0
        else {
            "capacity": 1,
            "hidden": True,
        }
    )


def _usable_checkout(settings: dict[str, Any], currency: str) -> bool:
    """Checkout settings a paid event in ``currency`` can be published with ([E1] publish
    codes: a country, a checkout method, and PayPal's account when the method is PayPal)."""
    method = settings.get("checkout_method")
    return (
        settings.get("currency_code") == currency
        and bool(settings.get("country_code"))
        and bool(method)
        and (method != "paypal" or bool(settings.get("user_instrument_vault_id")))
    )


def _description_html(text: str) -> str:
    """Plain text to the small HTML Eventbrite accepts: paragraphs and line breaks."""
    paragraphs = [p.strip() for p in re.split(r"\n\s*\n", text or "") if p.strip()]
    return "".join(
        "<p>" + "<br>".join(html.escape(line) for line in p.splitlines()) + "</p>"
        for p in paragraphs
    )


def _origin(url: httpx.URL) -> tuple[str, str, int | None]:
    scheme = url.scheme.lower()
    port = url.port or {"http": 80, "https": 443}.get(scheme)
    return scheme, (url.host or "").lower(), port


def _split(value: Any) -> list[str]:
    if isinstance(value, str):
        return [v.strip() for v in value.split(",") if v.strip()]
    if isinstance(value, list | tuple):
        return [str(v).strip() for v in value if str(v).strip()]
    return []


def _encode_cursor(state: dict[str, Any]) -> str:
    raw = json.dumps({k: v for k, v in state.items() if v is not None}, separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def _decode_cursor(cursor: str) -> dict[str, Any]:
    try:
        state = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (ValueError, binascii.Error, json.JSONDecodeError):
        state = None
    if not isinstance(state, dict):
        raise ValidationFailed(
            Platform.EVENTBRITE.value, "unreadable registration cursor", code="BAD_CURSOR"
        )
    return state


def _fingerprint(attendee: dict[str, Any]) -> str:
    """Short digest of an attendee's JSON: equal means "nothing changed"."""
    raw = json.dumps(attendee, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(raw).hexdigest()[:16]


def _server_time(response: httpx.Response) -> str | None:
    """The server's clock from the Date header, in Eventbrite's UTC form."""
    value = response.headers.get("Date")
    if not value:
        return None
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return _utc(when if when.tzinfo else when.replace(tzinfo=UTC))


def parse_webhook(payload: Any) -> tuple[str, str] | None:
    """(action, api_url) of an Eventbrite webhook body, or None when it is not one."""
    if not isinstance(payload, dict):
        return None
    config = payload.get("config")
    action = config.get("action") if isinstance(config, dict) else None
    api_url = payload.get("api_url")
    if not isinstance(action, str) or not isinstance(api_url, str):
        return None
    return action, api_url


def attendee_to_registration(
    attendee: dict[str, Any], platform_event_id: str | None = None
) -> PlatformRegistration:
    """One Eventbrite attendee as the hub's registration (the attendee JSON kept as raw).

    The flags win over the status word (``refunded`` > ``cancelled`` > ``checked_in``)
    because Eventbrite prints the word for people ("Attending", "Not Attending",
    "Checked In") and the flags are what its own reports count.
    """
    word = str(attendee.get("status") or "").strip().lower().replace(" ", "_")
    refunded = bool(attendee.get("refunded")) or word == "refunded"
    cancelled = bool(attendee.get("cancelled")) or word in (
        "not_attending",
        "cancelled",
        "canceled",
        "deleted",
        "transferred",
    )
    checked_in = bool(attendee.get("checked_in")) or word == "checked_in"
    costs = attendee.get("costs") or {}
    gross = costs.get("gross") or {}
    amount = int(gross.get("value") or 0)
    currency = gross.get("currency") or None

    if refunded:
        status, payment = RegistrationStatus.CANCELLED, PaymentStatus.REFUNDED
    elif cancelled:
        status = RegistrationStatus.CANCELLED
        payment = PaymentStatus.PAID if amount > 0 else PaymentStatus.NONE
    elif checked_in:
        status = RegistrationStatus.ATTENDED
        payment = PaymentStatus.PAID if amount > 0 else PaymentStatus.NONE
    elif word == "unpaid":
        status, payment = RegistrationStatus.PENDING, PaymentStatus.UNPAID
    elif word in ("attending", ""):
        status = RegistrationStatus.APPROVED
        payment = PaymentStatus.PAID if amount > 0 else PaymentStatus.NONE
    else:  # a word we do not know: let a person look rather than hand out a seat
        log.warning("eventbrite attendee %s has unknown status %r", attendee.get("id"), word)
        status = RegistrationStatus.PENDING
        payment = PaymentStatus.PAID if amount > 0 else PaymentStatus.NONE

    profile = attendee.get("profile") or {}
    name = profile.get("name") or " ".join(
        p for p in (profile.get("first_name"), profile.get("last_name")) if p
    )
    return PlatformRegistration(
        platform=Platform.EVENTBRITE,
        platform_event_id=str(attendee.get("event_id") or platform_event_id or ""),
        platform_registration_id=str(attendee["id"]),
        full_name=name or None,
        email=profile.get("email") or None,
        phone=profile.get("cell_phone") or None,
        status=status,
        payment_status=payment,
        amount_minor=amount,
        currency=currency,
        registered_at=parse_timestamp(attendee.get("created")),
        updated_at=parse_timestamp(attendee.get("changed")),
        raw=attendee,
    )


class EventbriteAdapter(ChannelAdapter):
    """Eventbrite REST v3 for one organization, authenticated by a private token."""

    platform = Platform.EVENTBRITE

    def __init__(
        self,
        base_url: str,
        *,
        token: str,
        organization_id: str,
        client: httpx.AsyncClient | None = None,
        timeout: float = 30.0,
        payout_country: str | None = None,
    ) -> None:
        root = base_url.rstrip("/")
        if root.endswith(API_PREFIX):
            root = root[: -len(API_PREFIX)]
        super().__init__(root, client=client, timeout=timeout)
        self._token = token
        self.organization_id = str(organization_id)
        self.payout_country = payout_country.upper() if payout_country else None
        self._api_origin = _origin(httpx.URL(self.base_url))

    def __repr__(self) -> str:
        return f"EventbriteAdapter({self.base_url!r}, organization_id={self.organization_id!r})"

    # -- HTTP ------------------------------------------------------------------
    def _url(self, path: str) -> str:
        return f"{self.base_url}{API_PREFIX}/{path.strip('/')}/"

    def _scrub(self, text: str) -> str:
        return text.replace(self._token, "***") if self._token else text

    async def _request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        json_body: dict[str, Any] | None = None,
    ) -> tuple[dict[str, Any], httpx.Response]:
        headers = {"Authorization": f"Bearer {self._token}", "Accept": "application/json"}
        response = await self._send(
            method, self._url(path), headers=headers, params=params, json=json_body
        )
        log.debug("eventbrite %s /v3/%s -> %s", method, path.strip("/"), response.status_code)
        if response.status_code >= 400:
            self._raise_error(response)
        body = _safe_json(response)
        if not isinstance(body, dict):
            raise ServerError(
                self.platform.value,
                f"unreadable reply to {method} /v3/{path.strip('/')}/",
                status=response.status_code,
            )
        return body, response

    async def _call(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        json_body: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        body, _ = await self._request(method, path, params=params, json_body=json_body)
        return body

    def _raise_error(self, response: httpx.Response) -> None:
        """Eventbrite's ``{error, error_description, error_detail}`` as a typed error."""
        body = _safe_json(response)
        error = description = None
        field = None
        if isinstance(body, dict):
            error = body.get("error")
            description = body.get("error_description")
            detail = body.get("error_detail")
            if isinstance(detail, dict):
                fields = detail.get("ARGUMENTS_ERROR", detail)
                if isinstance(fields, dict) and fields:
                    field = str(next(iter(fields)))
        if error:
            message = f"{error}: {description}" if description else str(error)
        else:
            message = f"HTTP {response.status_code}: {response.text[:200]}"
        self._raise_for_status(
            response,
            field=field,
            message=self._scrub(message.replace("\n", " ")),
            code=str(error) if error else None,
        )

    async def _paged(
        self, path: str, key: str, params: dict[str, Any] | None = None
    ) -> list[dict[str, Any]]:
        """Every item of a continuation-paginated listing."""
        items: list[dict[str, Any]] = []
        query = dict(params or {})
        for _ in range(_MAX_PAGES):
            body = await self._call("GET", path, params=query)
            items.extend(body.get(key) or [])
            pagination = body.get("pagination") or {}
            continuation = pagination.get("continuation")
            if not pagination.get("has_more_items") or not continuation:
                return items
            query["continuation"] = continuation
        raise ServerError(self.platform.value, f"/v3/{path}/ never stopped paginating")

    # -- publishing ------------------------------------------------------------
    def _event_body(self, event: Event, capacity: int | None, venue_id: str | None) -> dict:
        # Publishing needs a description ([E1] "Publish an Event"): the title stands in
        # for an empty one.
        description = _description_html(event.description) or _description_html(event.title)
        body: dict[str, Any] = {
            "name": {"html": html.escape(event.title, quote=False)},
            "description": {"html": description},
            "start": {"timezone": event.timezone, "utc": _utc(event.starts_at)},
            "end": {"timezone": event.timezone, "utc": _utc(event.ends_at)},
            "currency": event.currency,
            "online_event": event.is_online,
            "listed": True,
            "venue_id": venue_id,
        }
        if capacity is not None:
            body["capacity"] = capacity
        return {"event": body}

    @staticmethod
    def _price_fields(event: Event) -> dict[str, Any]:
        if event.is_free:
            return {"free": True}
        return {"cost": f"{event.currency},{event.price_minor}"}

    async def _ensure_venue(self, event: Event) -> str | None:
        """The venue id for a physical event, reusing one with the same name and address."""
        if event.is_online or not (event.venue_name or event.venue_address):
            return None
        name = event.venue_name or event.venue_address or ""
        address = event.venue_address or None
        venues = await self._paged(f"organizations/{self.organization_id}/venues", "venues")
        for venue in venues:
            if (
                venue.get("name") == name
                and (venue.get("address") or {}).get("address_1") == address
            ):
                return str(venue["id"])
        created = await self._call(
            "POST",
            f"organizations/{self.organization_id}/venues",
            json_body={"venue": {"name": name, "address": {"address_1": address}}},
        )
        return str(created["id"])

    async def ticket_classes(self, platform_event_id: str) -> list[dict[str, Any]]:
        return await self._paged(f"events/{platform_event_id}/ticket_classes", "ticket_classes")

    @staticmethod
    def _find_class(classes: list[dict], name: str) -> dict[str, Any] | None:
        """The hub's class by name (the admission class is hidden while it has no seats)."""
        for tc in classes:
            if tc.get("name") == name:
                return tc
        return None

    async def _admission(self, platform_event_id: str) -> tuple[dict, list[dict]]:
        classes = await self.ticket_classes(platform_event_id)
        admission = self._find_class(classes, ADMISSION_TICKET_NAME)
        if admission is None:
            raise NotFound(
                self.platform.value,
                f"event {platform_event_id} has no '{ADMISSION_TICKET_NAME}' ticket class",
            )
        return admission, classes

    def _publication(
        self, event_json: dict[str, Any], status: str, raw: dict[str, Any]
    ) -> ChannelPublication:
        return ChannelPublication(
            platform=self.platform,
            platform_event_id=str(event_json["id"]),
            url=event_json.get("url"),
            status=status,
            raw=raw,
        )

    async def find_existing(
        self, event: Event, exclude: Collection[str] = ()
    ) -> ChannelPublication | None:
        """The organization's event with this title and start, unless canceled or deleted."""
        params = {
            "name_filter": event.title,
            "time_filter": "all",
            "status": "all",
            "order_by": "start_asc",
        }
        found = await self._paged(f"organizations/{self.organization_id}/events", "events", params)
        start = _utc(event.starts_at)
        escaped = html.escape(event.title, quote=False)
        for candidate in found:
            if candidate.get("status") in ("canceled", "deleted"):
                continue
            if str(candidate.get("id")) in exclude:
                continue
            name = candidate.get("name") or {}
            same_name = (name.get("text") or "").strip() == event.title.strip() or name.get(
                "html"
            ) == escaped
            if same_name and (candidate.get("start") or {}).get("utc") == start:
                return self._publication(
                    candidate, str(candidate.get("status")), {"event": candidate}
                )
        return None

    async def publish_event(self, event: Event, capacity: int) -> ChannelPublication:
        """Create the event with both ticket classes and publish it.

        The publisher looks for an event an interrupted attempt left behind first
        (:meth:`find_existing`) and finishes it with :meth:`adopt_existing`, whose steps
        each check what exists, so nothing is created twice.
        """
        venue_id = await self._ensure_venue(event)
        event_json = await self._call(
            "POST",
            f"organizations/{self.organization_id}/events",
            json_body=self._event_body(event, capacity, venue_id),
        )
        return await self._complete_publication(event, event_json, capacity)

    async def adopt_existing(
        self, event: Event, existing: ChannelPublication, capacity: int
    ) -> ChannelPublication:
        """Finish an event an interrupted publish left behind: add the ticket classes it
        lacks and publish it if it is still a draft (nothing is created twice)."""
        event_json = existing.raw.get("event") or await self._call(
            "GET", f"events/{existing.platform_event_id}"
        )
        return await self._complete_publication(event, event_json, capacity)

    async def _complete_publication(
        self, event: Event, event_json: dict[str, Any], capacity: int
    ) -> ChannelPublication:
        event_id = str(event_json["id"])
        draft = event_json.get("status") == "draft"

        classes = await self.ticket_classes(event_id)
        admission = self._find_class(classes, ADMISSION_TICKET_NAME)
        if admission is None:
            admission = await self._call(
                "POST",
                f"events/{event_id}/ticket_classes",
                json_body={
                    "ticket_class": {
                        "name": ADMISSION_TICKET_NAME,
                        **_seats(capacity),
                        "minimum_quantity": 1,
                        "sales_end": _utc(event.starts_at),
                        **self._price_fields(event),
                    }
                },
            )
        elif draft and (
            int(admission.get("capacity") or 0),
            bool(admission.get("hidden")),
        ) != tuple(_seats(capacity).values()):
            admission = await self._call(
                "POST",
                f"events/{event_id}/ticket_classes/{admission['id']}",
                json_body={"ticket_class": _seats(capacity)},
            )
        waitlist = self._find_class(classes, WAITLIST_TICKET_NAME)
        if waitlist is None:
            waitlist = await self._call(
                "POST",
                f"events/{event_id}/ticket_classes",
                json_body={
                    "ticket_class": {
                        "name": WAITLIST_TICKET_NAME,
                        "capacity": 1,  # the minimum; only an access code unlocks it
                        "hidden": True,
                        "minimum_quantity": 1,
                        "maximum_quantity": 1,
                        "sales_end": _utc(event.starts_at),
                        **self._price_fields(event),
                    }
                },
            )

        publish_reply: dict[str, Any] = {"published": True, "already": True}
        if draft and not event.is_free:
            await self._ensure_payment_options(event_id, event.currency)
        if draft:
            try:
                publish_reply = await self._call("POST", f"events/{event_id}/publish")
            except ValidationFailed as exc:
                # A lost reply to an earlier publish: fine if the event is live now.
                if exc.code != "ALREADY_PUBLISHED_OR_DELETED":
                    raise
                current = await self._call("GET", f"events/{event_id}")
                if current.get("status") in ("draft", "canceled", "deleted"):
                    raise
                publish_reply = {"published": True, "already": True}
        event_json = await self._call("GET", f"events/{event_id}")
        return self._publication(
            event_json,
            "live",
            {
                "event": event_json,
                "ticket_classes": [admission, waitlist],
                "publish": publish_reply,
            },
        )

    async def _ensure_payment_options(self, event_id: str, currency: str) -> dict[str, Any]:
        """Link checkout settings for ``currency`` to the event before it is published.

        Reuses what is linked already, then the organization's settings for the currency
        (set up once in Eventbrite with the payout account), and creates Eventbrite Payment
        Processing settings for :attr:`payout_country` only when there are none. Each step
        reads first, so a retry after a crash links once and creates nothing twice.
        """
        linked = await self._call("GET", f"events/{event_id}/checkout_settings")
        for settings in linked.get("checkout_settings") or []:
            if _usable_checkout(settings, currency):
                return settings
        known = await self._paged(
            f"organizations/{self.organization_id}/checkout_settings",
            "checkout_settings",
            {"currency": currency},
        )
        chosen = next((s for s in known if _usable_checkout(s, currency)), None)
        if chosen is None:
            if not self.payout_country:
                raise ValidationFailed(
                    self.platform.value,
                    f"no Eventbrite payment options for {currency} and no payout_country "
                    "configured: set up payouts for this currency in Eventbrite, or store "
                    "payout_country with the Eventbrite credentials",
                    field="payout_country",
                    code="NO_PAYMENT_OPTIONS",
                )
            chosen = await self._call(
                "POST",
                f"organizations/{self.organization_id}/checkout_settings",
                json_body={
                    "checkout_settings": {
                        "country_code": self.payout_country,
                        "currency_code": currency,
                        "checkout_method": CHECKOUT_METHOD,
                    }
                },
            )
        await self._call(
            "POST",
            f"events/{event_id}/checkout_settings",
            json_body={"checkout_settings_ids": [str(chosen["id"])]},
        )
        return chosen

    async def update_event(
        self, event: Event, platform_event_id: str, capacity: int
    ) -> ChannelPublication:
        """Title, description, times, venue, price and capacity (never below seats sold).

        The dates are sent only when they change: Eventbrite refuses any date in the past
        (INVALID_DATE), so resending unchanged dates would stop a started event from being
        renamed or resized.
        """
        admission, classes = await self._admission(platform_event_id)
        sold_total = sum(int(tc.get("quantity_sold") or 0) for tc in classes)
        venue_id = await self._ensure_venue(event)
        current = await self._call("GET", f"events/{platform_event_id}")
        body = self._event_body(event, max(capacity, sold_total), venue_id)
        fields = body["event"]
        if all(
            {k: (current.get(key) or {}).get(k) for k in ("timezone", "utc")} == fields[key]
            for key in ("start", "end")
        ):
            del fields["start"], fields["end"]
        if current.get("currency") == fields["currency"]:
            del fields["currency"]
        if not event.is_free:
            await self._ensure_payment_options(platform_event_id, event.currency)
        event_json = await self._call("POST", f"events/{platform_event_id}", json_body=body)
        others_sold = sold_total - int(admission.get("quantity_sold") or 0)
        admission = await self._set_admission_capacity(
            platform_event_id,
            admission,
            lambda tc: max(capacity - others_sold, int(tc.get("quantity_sold") or 0)),
            extra=self._ticket_changes(event, admission),
        )
        classes = [admission if tc.get("id") == admission["id"] else tc for tc in classes]
        return self._publication(
            event_json,
            str(event_json.get("status")),
            {"event": event_json, "ticket_classes": classes},
        )

    def _ticket_changes(self, event: Event, admission: dict[str, Any]) -> dict[str, Any]:
        """Sales end and price of the admission class, only where they differ from what
        Eventbrite holds (a sales end already in the past is refused once sales started)."""
        changes: dict[str, Any] = {}
        if admission.get("sales_end") != _utc(event.starts_at):
            changes["sales_end"] = _utc(event.starts_at)
        cost = admission.get("cost") or {}
        if bool(admission.get("free")) != event.is_free or (
            not event.is_free
            and (cost.get("currency"), cost.get("value")) != (event.currency, event.price_minor)
        ):
            changes.update(self._price_fields(event))
        return changes

    async def update_capacity(self, platform_event_id: str, capacity: int) -> None:
        """Event capacity and admission capacity to ``capacity`` seats, never below sold.

        Seats sold in other classes (the waitlist) count against ``capacity``.
        """
        admission, classes = await self._admission(platform_event_id)
        sold_total = sum(int(tc.get("quantity_sold") or 0) for tc in classes)
        others_sold = sold_total - int(admission.get("quantity_sold") or 0)
        await self._call(
            "POST",
            f"events/{platform_event_id}",
            json_body={"event": {"capacity": max(capacity, sold_total)}},
        )
        await self._set_admission_capacity(
            platform_event_id,
            admission,
            lambda tc: max(capacity - others_sold, int(tc.get("quantity_sold") or 0)),
        )

    async def close_sales(self, platform_event_id: str) -> None:
        """Pin the admission ticket class's capacity to its ``quantity_sold``.

        Why capacity and not ``sales_end = now``: the hub closes Eventbrite because the
        event is full everywhere, and a pinned capacity says exactly that on the page
        ("Sold out", which also lets Eventbrite offer its own waitlist), while an ended
        sales window says "Sales ended" and has to be undone separately. Reopening is
        then just :meth:`update_capacity` when a seat frees, there is no clock skew
        between our "now" and Eventbrite's, and the hidden waitlist class stays usable
        because the event's own capacity is left alone. If an order lands between our
        read and our write, Eventbrite refuses a capacity below sold and we re-read. With
        nothing sold the class is hidden instead (capacity 0 is refused, see the module
        docstring); :meth:`update_capacity` shows it again.
        """
        admission, _ = await self._admission(platform_event_id)
        await self._set_admission_capacity(
            platform_event_id, admission, lambda tc: int(tc.get("quantity_sold") or 0)
        )

    async def _set_admission_capacity(
        self,
        platform_event_id: str,
        admission: dict[str, Any],
        capacity_of: Any,
        *,
        extra: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """POST the admission capacity computed from a fresh read, retrying a sale race."""
        path = f"events/{platform_event_id}/ticket_classes/{admission['id']}"
        current = admission
        for attempt in range(_CAPACITY_RETRIES):
            try:
                return await self._call(
                    "POST",
                    path,
                    json_body={"ticket_class": {**_seats(capacity_of(current)), **(extra or {})}},
                )
            except ValidationFailed as exc:
                lost_race = exc.field is not None and exc.field.endswith("capacity")
                if not lost_race or attempt == _CAPACITY_RETRIES - 1:
                    raise
                current = await self._call("GET", path)
        raise AssertionError("unreachable")

    # -- registrations ---------------------------------------------------------
    async def list_registrations(
        self, platform_event_id: str, cursor: str | None = None, page_size: int = 100
    ) -> RegistrationPage:
        """One page (Eventbrite's fixed 50, ``page_size`` is ignored) of attendees.

        The cursor carries ``changed_since`` for the current pass and, mid-pass, the
        server's continuation. When a pass ends, the next ``changed_since`` is the
        smaller of the latest ``changed`` seen and the server time (Date header) at the
        start of the pass, so whatever changed while we paged is read again: nothing is
        ever skipped.

        ``changed_since`` is inclusive with one-second resolution, so the next pass
        re-reads the boundary second. The cursor remembers a fingerprint of each
        attendee it returned at that boundary and drops only exact repeats; an attendee
        that changed again within the same second differs and is returned. Past
        :data:`_BOUNDARY_LIMIT` such attendees the cursor stops remembering and the
        repeats are returned (the caller dedupes by attendee id anyway).
        """
        state = _decode_cursor(cursor) if cursor else {}
        changed_since = state.get("changed_since")
        continuation = state.get("continuation")
        skip: dict[str, str] = state.get("skip") or {}
        params: dict[str, Any] = {}
        if changed_since:
            params["changed_since"] = changed_since
        path = f"events/{platform_event_id}/attendees"
        try:
            query = {**params, "continuation": continuation} if continuation else params
            body, response = await self._request("GET", path, params=query)
        except ValidationFailed as exc:
            if not continuation or "CONTINUATION" not in str(exc.code or "").upper():
                raise
            # The server forgot our continuation: restart this pass (dupes, no gaps).
            continuation = None
            state = {"changed_since": changed_since, "skip": skip}
            body, response = await self._request("GET", path, params=params)

        if continuation:
            pass_start = state.get("pass_start")
            max_changed = state.get("max_changed")
            boundary: dict[str, list[str]] | None = (
                None if state.get("overflow") else state.get("boundary", {})
            )
        else:
            pass_start, max_changed, boundary = _server_time(response), None, {}
        attendees = body.get("attendees") or []
        items = []
        for attendee in attendees:
            changed = attendee.get("changed")
            fingerprint = _fingerprint(attendee)
            attendee_id = str(attendee.get("id"))
            if isinstance(changed, str):
                max_changed = max(max_changed or changed, changed)
                if boundary is not None:
                    boundary[attendee_id] = [changed, fingerprint]
            if skip.get(attendee_id) == fingerprint:
                continue  # returned by the previous pass and unchanged since
            items.append(attendee_to_registration(attendee, platform_event_id))
        horizon = min(max_changed, pass_start) if max_changed and pass_start else max_changed
        if boundary is not None and horizon:
            boundary = {k: v for k, v in boundary.items() if v[0] >= horizon}
            if len(boundary) > _BOUNDARY_LIMIT:
                boundary = None

        pagination = body.get("pagination") or {}
        next_continuation = pagination.get("continuation")
        if pagination.get("has_more_items") and next_continuation:
            next_state = {
                "changed_since": changed_since,
                "continuation": next_continuation,
                "pass_start": pass_start,
                "max_changed": max_changed,
                "skip": skip or None,
                "boundary": boundary,
                "overflow": True if boundary is None else None,
            }
            has_more = True
        elif horizon:
            next_skip = {k: v[1] for k, v in (boundary or {}).items()}
            next_state = {"changed_since": horizon, "skip": next_skip or None}
            has_more = False
        else:  # nothing new: keep the same window (and what it already returned)
            next_state = {"changed_since": changed_since, "skip": skip or None}
            has_more = False
        return RegistrationPage(
            items=items,
            next_cursor=_encode_cursor(next_state),
            has_more=has_more,
            raw={"pagination": pagination},
        )

    async def get_registration(
        self, platform_event_id: str, platform_registration_id: str
    ) -> PlatformRegistration:
        attendee = await self._call(
            "GET", f"events/{platform_event_id}/attendees/{platform_registration_id}"
        )
        return attendee_to_registration(attendee, platform_event_id)

    async def fetch_api_url(self, api_url: str) -> list[PlatformRegistration]:
        """The registrations a webhook's ``api_url`` names (order or attendee).

        A webhook is unsigned, so its ``api_url`` is a stranger's input: anything not on
        this adapter's own scheme, host and port is refused before any request is made
        (our token would otherwise go to whoever sent it). Other Eventbrite objects
        (events, ticket classes) name no registration and give an empty list.
        """
        try:
            url = httpx.URL(api_url)
        except (httpx.InvalidURL, TypeError) as exc:
            raise ValidationFailed(
                self.platform.value, "api_url is not a URL", field="api_url", code="BAD_API_URL"
            ) from exc
        if _origin(url) != self._api_origin or url.userinfo:
            raise ValidationFailed(
                self.platform.value,
                f"api_url host {url.host!r} is not this adapter's API host; refused",
                field="api_url",
                code="FOREIGN_HOST",
            )
        if TEST_PING_MARKER in unquote(api_url):
            raise ValidationFailed(
                self.platform.value,
                "api_url is the webhook test ping placeholder; nothing to fetch",
                field="api_url",
                code="TEST_PING",
            )
        path = unquote(url.path)
        if match := _ORDER_PATH.match(path):
            order = await self._call(
                "GET", f"orders/{match.group(1)}", params={"expand": "attendees"}
            )
            event_id = str(order.get("event_id") or "")
            return [attendee_to_registration(a, event_id) for a in order.get("attendees") or []]
        if match := _ATTENDEE_PATH.match(path):
            return [await self.get_registration(match.group(1), match.group(2))]
        return []

    async def approve_registration(
        self, platform_event_id: str, platform_registration_id: str
    ) -> None:
        raise Unsupported(
            self.platform.value,
            "Eventbrite has no approval flow: an attendee holds a ticket once the order is placed",
        )

    async def decline_registration(
        self, platform_event_id: str, platform_registration_id: str
    ) -> None:
        raise Unsupported(
            self.platform.value,
            "Eventbrite has no approval flow to decline; refund or cancel the order in "
            "Eventbrite instead",
        )

    async def anonymize_registration(
        self, platform_event_id: str, platform_registration_id: str
    ) -> None:
        raise Unsupported(
            self.platform.value,
            "Eventbrite's API cannot erase an attendee's personal data: only the attendee "
            "can delete it from their Eventbrite account (or Eventbrite support on request); "
            "record the request and tell the person",
        )

    # -- webhooks --------------------------------------------------------------
    async def list_webhooks(self) -> list[dict[str, Any]]:
        return await self._paged(f"organizations/{self.organization_id}/webhooks", "webhooks")

    async def register_webhook(
        self, endpoint_url: str, actions: list[str], event_id: str | None = None
    ) -> dict[str, Any]:
        """The organization's webhook for this endpoint and actions, created if missing."""
        wanted = sorted(set(actions))
        for hook in await self.list_webhooks():
            if (
                hook.get("endpoint_url") == endpoint_url
                and sorted(set(_split(hook.get("actions")))) == wanted
                and str(hook.get("event_id") or "") == str(event_id or "")
            ):
                return hook
        body: dict[str, Any] = {"endpoint_url": endpoint_url, "actions": ",".join(wanted)}
        if event_id:
            body["event_id"] = event_id
        return await self._call(
            "POST", f"organizations/{self.organization_id}/webhooks", json_body=body
        )

    async def delete_webhook(self, webhook_id: str) -> None:
        """Delete a webhook; one already gone counts as deleted."""
        try:
            await self._call("DELETE", f"webhooks/{webhook_id}")
        except NotFound:
            return
