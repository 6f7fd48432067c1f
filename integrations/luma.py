"""Luma channel adapter: the current public API (``/v1/events/...``, ``/v1/calendars/...``,
``/v1/webhooks/...``) on ``https://public-api.luma.com`` (``hub.settings.LIVE_BASE_URLS``).

Contract: ``contracts/luma-openapi-current.json`` (CONTRACTS.md Part 1 §3). Authentication
is the ``x-luma-api-key`` header, scoped to one calendar; the key never appears in an error
message or log line of this module.

How the hub runs Luma: every event's ticket types require approval (``require_approval``,
the documented mechanism; Luma has no event-level approval switch), so a guest waits in
``pending_approval`` until the hub has matched their payment and approves them through
:meth:`LumaAdapter.approve_registration`.

Webhooks: Luma returns a webhook secret but documents no signature header or algorithm
(contract Uncertain #6), so this module verifies nothing: a delivery is a hint naming a
guest, which the ingest re-reads with :meth:`LumaAdapter.get_registration`.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Collection
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

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
from integrations.base import ChannelAdapter, ServerError, parse_timestamp

log = logging.getLogger("hub.integrations.luma")

API_KEY_HEADER = "x-luma-api-key"
TICKET_TYPE_NAME = "General admission"  # only when an event has no ticket type at all


def webhook_guest_ref(payload: dict[str, Any]) -> tuple[str, str] | None:
    """(event id, guest id) named by a ``guest.*`` webhook payload, or None.

    Only these ids are read from a delivery (an unverified hint); the guest itself is
    re-read with :meth:`LumaAdapter.get_registration`. Both the legacy (``api_id``) and
    current (``id``) names are read.
    """
    if not str(payload.get("type", "")).startswith("guest."):
        return None
    data = payload.get("data")
    if not isinstance(data, dict):
        return None
    event = data.get("event") if isinstance(data.get("event"), dict) else {}
    guest_id = data.get("api_id") or data.get("id")
    event_id = (
        event.get("api_id") or event.get("id") or data.get("event_api_id") or data.get("event_id")
    )
    if not guest_id or not event_id:
        return None
    return str(event_id), str(guest_id)


# --------------------------------------------------------------------------- mapping

_STATUS = {
    "approved": RegistrationStatus.APPROVED,
    "pending_approval": RegistrationStatus.PENDING,
    "invited": RegistrationStatus.PENDING,
    "session": RegistrationStatus.PENDING,
    "waitlist": RegistrationStatus.WAITLIST,
    "declined": RegistrationStatus.DECLINED,
}


def _iso(when: datetime) -> str:
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + (
        f"{when.microsecond // 1000:03d}Z"
    )


def _aware(when: datetime, zone: str) -> datetime:
    """An event time with its zone (a naive time is local to the event's time zone)."""
    if when.tzinfo is not None:
        return when
    try:
        return when.replace(tzinfo=ZoneInfo(zone))
    except (ZoneInfoNotFoundError, ValueError):
        return when.replace(tzinfo=UTC)


def registration_from_guest(
    platform_event_id: str, guest: dict[str, Any], raw: dict[str, Any] | None = None
) -> PlatformRegistration:
    """A Luma guest (legacy or current naming, or a webhook's ``data``) as the hub's model.

    ``checked_in_at`` wins over the approval status (-> attended). Payment comes from
    ``event_tickets``: amounts are in minor units; a ticket not yet captured (a paid seat
    waiting for approval) is unpaid.
    """
    status = _STATUS.get(str(guest.get("approval_status")), RegistrationStatus.PENDING)
    tickets = [t for t in guest.get("event_tickets") or [] if isinstance(t, dict)]
    if guest.get("checked_in_at") or any(t.get("checked_in_at") for t in tickets):
        status = RegistrationStatus.ATTENDED
    amount = sum(int(t.get("amount") or 0) for t in tickets)
    currency = next((str(t["currency"]).upper() for t in tickets if t.get("currency")), None)
    if amount > 0:
        captured = all(t.get("is_captured", True) for t in tickets if t.get("amount"))
        payment = PaymentStatus.PAID if captured else PaymentStatus.UNPAID
    else:
        payment = PaymentStatus.NONE
    return PlatformRegistration(
        platform=Platform.LUMA,
        platform_event_id=platform_event_id,
        platform_registration_id=str(guest.get("api_id") or guest.get("id")),
        full_name=guest.get("user_name") or None,
        email=guest.get("user_email") or None,
        phone=guest.get("phone_number") or None,
        status=status,
        payment_status=payment,
        amount_minor=amount,
        currency=currency if amount > 0 else None,
        registered_at=parse_timestamp(guest.get("registered_at") or guest.get("created_at")),
        updated_at=parse_timestamp(guest.get("updated_at")),
        raw=raw if raw is not None else guest,
    )


# --------------------------------------------------------------------------- the adapter


class LumaAdapter(ChannelAdapter):
    """Luma through its current public API (``{base_url}/v1/...``).

    ``base_url`` is ``https://public-api.luma.com`` live (the ``servers`` entry of the
    current document) or the sandbox (``http://127.0.0.1:8103``).
    """

    platform = Platform.LUMA

    def __init__(
        self,
        base_url: str,
        *,
        api_key: str,
        client: httpx.AsyncClient | None = None,
        timeout: float = 30.0,
    ) -> None:
        super().__init__(base_url, client=client, timeout=timeout)
        self._api_key = api_key

    def __repr__(self) -> str:  # never show the key
        return f"LumaAdapter(base_url={self.base_url!r})"

    # -- HTTP ----------------------------------------------------------------------
    async def _call(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        json_body: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        url = f"{self.base_url}{path}"
        headers = {API_KEY_HEADER: self._api_key, "accept": "application/json"}
        clean = {k: v for k, v in (params or {}).items() if v is not None}
        response = await self._send(method, url, headers=headers, params=clean, json=json_body)
        if response.status_code >= 400:
            body = _json(response)
            field = body.get("field") if isinstance(body, dict) else None
            message = body.get("message") if isinstance(body, dict) else None
            text = str(message) if message else response.text[:300].replace("\n", " ")
            self._raise_for_status(
                response,
                field=field if isinstance(field, str) else None,
                message=self._scrub(text) or f"HTTP {response.status_code}",
            )
        body = _json(response)
        if not isinstance(body, dict):
            raise ServerError(
                self.platform.value,
                f"unexpected non-JSON reply from {path} ({response.status_code})",
                status=response.status_code,
            )
        return body

    def _scrub(self, text: str) -> str:
        return text.replace(self._api_key, "***") if self._api_key else text

    async def _pages(self, path: str, params: dict[str, Any]) -> list[dict[str, Any]]:
        """Every entry of a cursor-paginated listing."""
        entries: list[dict[str, Any]] = []
        cursor: str | None = None
        while True:
            body = await self._call("GET", path, params={**params, "pagination_cursor": cursor})
            entries.extend(e for e in body.get("entries") or [] if isinstance(e, dict))
            cursor = body.get("next_cursor")
            if not body.get("has_more") or not cursor:
                return entries

    # -- publishing ------------------------------------------------------------------
    def _event_payload(self, event: Event, capacity: int) -> dict[str, Any]:
        """The ``/v1/events/create`` body (also the update body, with ``event_id``)."""
        payload: dict[str, Any] = {
            "name": event.title,
            "start_at": _iso(_aware(event.starts_at, event.timezone)),
            "end_at": _iso(_aware(event.ends_at, event.timezone)),
            "timezone": event.timezone,
            "description_md": event.description,
            "max_capacity": capacity,
            "visibility": "public",
        }
        if event.venue_address:
            address = event.venue_address
            if event.venue_name and event.venue_name not in address:
                address = f"{event.venue_name}, {address}"
            payload["geo_address_json"] = {"type": "manual", "address": address}
        if event.online_url:
            payload["meeting_url"] = event.online_url
        return payload

    async def _publication(self, platform_event_id: str) -> ChannelPublication:
        body = await self._call("GET", "/v1/events/get", params={"event_id": platform_event_id})
        return ChannelPublication(
            platform=Platform.LUMA,
            platform_event_id=platform_event_id,
            url=body.get("url"),
            status="published",
            raw=body,
        )

    async def require_approval(self, platform_event_id: str) -> None:
        """Make every ticket type of the event require approval (hidden ones included).

        Approval is a property of ticket types in Luma's API (``require_approval``); an
        event with no ticket type gets one free ticket type that requires approval.
        """
        types = await self._call(
            "GET",
            "/v1/events/ticket-types/list",
            params={"event_id": platform_event_id, "include_hidden": "true"},
        )
        entries = [t for t in types.get("entries") or [] if isinstance(t, dict)]
        for ticket_type in entries:
            if ticket_type.get("require_approval") is not True:
                await self._call(
                    "POST",
                    "/v1/events/ticket-types/update",
                    json_body={"event_ticket_type_id": ticket_type["id"], "require_approval": True},
                )
        if not entries:
            await self._call(
                "POST",
                "/v1/events/ticket-types/create",
                json_body={
                    "event_id": platform_event_id,
                    "name": TICKET_TYPE_NAME,
                    "type": "free",
                    "require_approval": True,
                },
            )

    async def publish_event(self, event: Event, capacity: int) -> ChannelPublication:
        """Create the event (``capacity`` seats), make its ticket types require approval
        and read back its URL.

        Luma events made through the API are public at once; there is no draft step. The
        approval is set before the URL is returned, so before anyone is sent to the page.
        Call :meth:`find_existing` first when retrying (the port's idempotency rule); a
        retried publish that finds its event calls :meth:`update_event`, which sets the
        approval again.
        """
        created = await self._call(
            "POST", "/v1/events/create", json_body=self._event_payload(event, capacity)
        )
        event_id = created.get("id")
        if not event_id:
            raise ServerError(self.platform.value, "events/create returned no id")
        await self.require_approval(str(event_id))
        return await self._publication(str(event_id))

    async def find_existing(
        self, event: Event, exclude: Collection[str] = ()
    ) -> ChannelPublication | None:
        """The calendar's event with the same name and start instant (oldest first)."""
        window = timedelta(days=1)
        starts_at = _aware(event.starts_at, event.timezone)
        cursor: str | None = None
        while True:
            body = await self._call(
                "GET",
                "/v1/calendars/events/list",
                params={
                    "after": _iso(starts_at - window),
                    "before": _iso(starts_at + window),
                    "pagination_cursor": cursor,
                    "pagination_limit": 50,
                },
            )
            for luma_event in body.get("entries") or []:
                if not isinstance(luma_event, dict) or str(luma_event.get("id")) in exclude:
                    continue
                start = parse_timestamp(luma_event.get("start_at"))
                same_start = start is not None and abs(start - starts_at) < timedelta(seconds=1)
                if (luma_event.get("name") or "").strip() == event.title.strip() and same_start:
                    return ChannelPublication(
                        platform=Platform.LUMA,
                        platform_event_id=str(luma_event["id"]),
                        url=luma_event.get("url"),
                        status="published",
                        raw=luma_event,
                    )
            cursor = body.get("next_cursor")
            if not body.get("has_more") or not cursor:
                return None

    async def update_event(
        self, event: Event, platform_event_id: str, capacity: int
    ) -> ChannelPublication:
        payload = self._event_payload(event, capacity)
        payload["event_id"] = platform_event_id
        await self._call("POST", "/v1/events/update", json_body=payload)
        await self.require_approval(platform_event_id)
        return await self._publication(platform_event_id)

    async def update_capacity(self, platform_event_id: str, capacity: int) -> None:
        await self._call(
            "POST",
            "/v1/events/update",
            json_body={"event_id": platform_event_id, "max_capacity": capacity},
        )

    async def close_sales(self, platform_event_id: str) -> None:
        """Stop Luma from giving anyone a new seat, without touching those who hold one.

        The API has no "close registration" switch, so ``max_capacity`` is pinned to the
        number of guests holding a seat now (``approved`` + ``pending_approval``: pending
        guests are people the hub may still approve after payment). Anyone registering
        afterwards lands on Luma's waitlist, which the hub reads and can promote from
        when a seat frees.
        """
        holding = 0
        for status in ("approved", "pending_approval"):
            guests = await self._pages(
                "/v1/events/guests/list",
                {"event_id": platform_event_id, "approval_status": status, "pagination_limit": 100},
            )
            holding += len(guests)
        await self.update_capacity(platform_event_id, holding)

    # -- registrations ------------------------------------------------------------------
    async def list_registrations(
        self, platform_event_id: str, cursor: str | None = None, page_size: int = 100
    ) -> RegistrationPage:
        """One page of guests in registration order, after ``cursor``.

        The returned ``next_cursor`` resumes after the last guest seen, so a later call
        returns only guests who registered since. Luma has no changed-since filter: status
        changes of guests already seen arrive by the ``guest.updated`` webhook (or a full
        re-read with ``cursor=None`` during reconciliation). ``next_cursor`` is optional in
        the contract; when a page has none, the given cursor is returned, so the next poll
        re-reads that page (duplicates are harmless, ingest is idempotent) rather than
        starting over.
        """
        body = await self._call(
            "GET",
            "/v1/events/guests/list",
            params={
                "event_id": platform_event_id,
                "pagination_cursor": cursor,
                "pagination_limit": page_size,
                "sort_column": "registered_at",
                "sort_direction": "asc",
            },
        )
        items = [
            registration_from_guest(platform_event_id, guest)
            for guest in body.get("entries") or []
            if isinstance(guest, dict)
        ]
        return RegistrationPage(
            items=items,
            next_cursor=body.get("next_cursor") or cursor,
            has_more=bool(body.get("has_more")),
            raw={k: v for k, v in body.items() if k != "entries"},
        )

    async def get_registration(
        self, platform_event_id: str, platform_registration_id: str
    ) -> PlatformRegistration:
        guest = await self._call(
            "GET",
            "/v1/events/guests/get",
            params={"event_id": platform_event_id, "id": platform_registration_id},
        )
        return registration_from_guest(platform_event_id, guest)

    async def _set_status(
        self, platform_event_id: str, guest_id: str, status: str, should_refund: bool
    ) -> None:
        await self._call(
            "POST",
            "/v1/events/guests/update-status",
            json_body={
                "event_id": platform_event_id,
                "guest_id": guest_id,
                "status": status,
                "should_refund": should_refund,
            },
        )

    async def approve_registration(
        self, platform_event_id: str, platform_registration_id: str
    ) -> None:
        await self._set_status(platform_event_id, platform_registration_id, "approved", False)

    async def decline_registration(
        self,
        platform_event_id: str,
        platform_registration_id: str,
        *,
        should_refund: bool = False,
    ) -> None:
        """Decline the guest. No refund by default: the hub collects payments itself
        (Stripe, transfers) and refunds through its own payment flow."""
        await self._set_status(
            platform_event_id, platform_registration_id, "declined", should_refund
        )

    async def anonymize_registration(
        self, platform_event_id: str, platform_registration_id: str
    ) -> None:
        """Best effort KVKK erasure on Luma: decline the guest (no refund) and return.

        Luma's public API has no way to delete a guest or redact their name, e-mail or
        phone. Declining removes them from the guest list and frees their seat; erasing
        the Luma account data itself must be requested from Luma support by the
        organizer. The hub's own copies are erased by ``hub.privacy`` regardless.
        """
        await self._set_status(platform_event_id, platform_registration_id, "declined", False)
        log.info(
            "luma guest %s declined for erasure; Luma has no erasure API (ask Luma support)",
            platform_registration_id,
        )

    # -- the key ----------------------------------------------------------------------------
    async def get_self(self) -> dict[str, Any]:
        """The user the API key belongs to (``/v1/users/get-self``): a cheap check that the
        key works, e.g. when credentials are stored."""
        return await self._call("GET", "/v1/users/get-self")

    # -- webhooks -----------------------------------------------------------------------
    async def list_webhooks(self) -> list[dict[str, Any]]:
        return await self._pages("/v1/webhooks/list", {})

    async def register_webhook(self, url: str, event_types: list[str]) -> dict[str, Any]:
        """Create the webhook, or return the one already registered for ``url`` with the
        same event types. One for ``url`` with other types is replaced (new secret)."""
        for hook in await self.list_webhooks():
            if hook.get("url") != url:
                continue
            if sorted(hook.get("event_types") or []) == sorted(event_types):
                return hook
            await self.delete_webhook(str(hook["id"]))
        return await self._call(
            "POST", "/v2/webhooks/create", json_body={"url": url, "event_types": list(event_types)}
        )

    async def delete_webhook(self, webhook_id: str) -> None:
        await self._call("POST", "/v1/webhooks/delete", json_body={"id": webhook_id})


def _json(response: httpx.Response) -> Any:
    try:
        return response.json()
    except (ValueError, json.JSONDecodeError):
        return None
