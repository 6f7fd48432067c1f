"""Luma channel adapter: the legacy public API (``/public/v1/event/*``) plus current webhooks.

Contract: CONTRACTS.md Part 1 §3. Authentication is the ``x-luma-api-key`` header, scoped to
one calendar; the key never appears in an error message or log line of this module.

How the hub runs Luma: every event is created with ``require_rsvp_approval`` so a guest
waits in ``pending_approval`` until the hub has matched their payment and approves them
through :meth:`LumaAdapter.approve_registration`.

Webhook signing is undocumented by Luma (contract Uncertain #6). The header name and the
algorithm live only in :data:`WEBHOOK_SIGNATURE_HEADER` and :func:`sign_webhook`; the
sandbox imports them from here, so changing them changes both sides.
"""

from __future__ import annotations

import hashlib
import hmac
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
LIVE_BASE_URL = "https://api.lu.ma"
LIVE_WEBHOOKS_BASE_URL = "https://public-api.luma.com"  # webhooks exist on the current API only
LEGACY = "/public/v1"

# --------------------------------------------------------------------------- webhooks signing

WEBHOOK_SIGNATURE_HEADER = "x-luma-signature"
"""Header carrying the signature of a webhook delivery (third-party guess, unconfirmed)."""


def sign_webhook(secret: str, body: bytes) -> str:
    """Signature of a delivery: hex HMAC-SHA256 of the raw body keyed by the webhook secret."""
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify_webhook_signature(secret: str, body: bytes, header_value: str | None) -> bool:
    """Constant-time check of :data:`WEBHOOK_SIGNATURE_HEADER` against ``body``.

    Accepts the bare hex digest or a ``sha256=`` prefixed one; anything else is False.
    """
    if not secret or not header_value:
        return False
    given = header_value.strip()
    if given.lower().startswith("sha256="):
        given = given[7:]
    try:
        return hmac.compare_digest(sign_webhook(secret, body), given.lower())
    except TypeError:  # non-ASCII header value
        return False


def webhook_guest_ref(payload: dict[str, Any]) -> tuple[str, str] | None:
    """(event id, guest id) named by a ``guest.*`` webhook payload, or None.

    The receiver re-reads that guest with :meth:`LumaAdapter.get_registration` before
    trusting the payload. Both the legacy (``api_id``) and current (``id``) names are read.
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
    """Luma through its legacy public API (``{base_url}/public/v1/...``).

    ``base_url`` is ``https://api.lu.ma`` live or the sandbox (``http://127.0.0.1:8103``).
    Webhooks exist only on the current API host; ``webhooks_base_url`` defaults to
    ``https://public-api.luma.com`` when ``base_url`` is the live legacy host, else to
    ``base_url`` (the sandbox serves both).
    """

    platform = Platform.LUMA

    def __init__(
        self,
        base_url: str,
        *,
        api_key: str,
        client: httpx.AsyncClient | None = None,
        webhooks_base_url: str | None = None,
        timeout: float = 30.0,
    ) -> None:
        super().__init__(base_url, client=client, timeout=timeout)
        self._api_key = api_key
        if webhooks_base_url is None:
            live = self.base_url in (LIVE_BASE_URL, "https://public-api.lu.ma")
            webhooks_base_url = LIVE_WEBHOOKS_BASE_URL if live else self.base_url
        self.webhooks_base_url = webhooks_base_url.rstrip("/")

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
        base: str | None = None,
    ) -> dict[str, Any]:
        url = f"{base or self.base_url}{path}"
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

    # -- publishing ------------------------------------------------------------------
    def _event_payload(self, event: Event, capacity: int) -> dict[str, Any]:
        payload: dict[str, Any] = {
            "name": event.title,
            "start_at": _iso(_aware(event.starts_at, event.timezone)),
            "end_at": _iso(_aware(event.ends_at, event.timezone)),
            "timezone": event.timezone,
            "description_md": event.description,
            "max_capacity": capacity,
            "visibility": "public",
            "require_rsvp_approval": True,
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
        body = await self._call("GET", f"{LEGACY}/event/get", params={"api_id": platform_event_id})
        luma_event = body.get("event") or {}
        return ChannelPublication(
            platform=Platform.LUMA,
            platform_event_id=platform_event_id,
            url=luma_event.get("url"),
            status="published",
            raw=body,
        )

    async def publish_event(self, event: Event, capacity: int) -> ChannelPublication:
        """Create the event (approval required, ``capacity`` seats) and read back its URL.

        Luma events made through the API are public at once; there is no draft step. Call
        :meth:`find_existing` first when retrying (the port's idempotency rule).
        """
        created = await self._call(
            "POST", f"{LEGACY}/event/create", json_body=self._event_payload(event, capacity)
        )
        event_id = created.get("api_id") or created.get("id")
        if not event_id:
            raise ServerError(self.platform.value, "event/create returned no api_id")
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
                f"{LEGACY}/calendar/list-events",
                params={
                    "after": _iso(starts_at - window),
                    "before": _iso(starts_at + window),
                    "pagination_cursor": cursor,
                    "pagination_limit": 50,
                },
            )
            for entry in body.get("entries") or []:
                luma_event = entry.get("event") or {}
                if str(luma_event.get("api_id") or entry.get("api_id")) in exclude:
                    continue
                start = parse_timestamp(luma_event.get("start_at"))
                same_start = start is not None and abs(start - starts_at) < timedelta(seconds=1)
                if (luma_event.get("name") or "").strip() == event.title.strip() and same_start:
                    return ChannelPublication(
                        platform=Platform.LUMA,
                        platform_event_id=str(luma_event.get("api_id") or entry.get("api_id")),
                        url=luma_event.get("url"),
                        status="published",
                        raw=entry,
                    )
            cursor = body.get("next_cursor")
            if not body.get("has_more") or not cursor:
                return None

    async def update_event(
        self, event: Event, platform_event_id: str, capacity: int
    ) -> ChannelPublication:
        payload = self._event_payload(event, capacity)
        payload["event_api_id"] = platform_event_id
        await self._call("POST", f"{LEGACY}/event/update", json_body=payload)
        return await self._publication(platform_event_id)

    async def update_capacity(self, platform_event_id: str, capacity: int) -> None:
        await self._call(
            "POST",
            f"{LEGACY}/event/update",
            json_body={"event_api_id": platform_event_id, "max_capacity": capacity},
        )

    async def close_sales(self, platform_event_id: str) -> None:
        """Stop Luma from giving anyone a new seat, without touching those who hold one.

        The legacy API has no "close registration" switch, so ``max_capacity`` is pinned to
        the number of guests holding a seat now (``approved`` + ``pending_approval``: pending
        guests are people the hub may still approve after payment). Anyone registering
        afterwards lands on Luma's waitlist, which the hub reads and can promote from
        when a seat frees (Luma then waitlists rather than refusing, which is the behaviour
        the hub wants).
        """
        holding = 0
        for status in ("approved", "pending_approval"):
            cursor: str | None = None
            while True:
                body = await self._call(
                    "GET",
                    f"{LEGACY}/event/get-guests",
                    params={
                        "event_api_id": platform_event_id,
                        "approval_status": status,
                        "pagination_cursor": cursor,
                        "pagination_limit": 100,
                    },
                )
                holding += len(body.get("entries") or [])
                cursor = body.get("next_cursor")
                if not body.get("has_more") or not cursor:
                    break
        await self.update_capacity(platform_event_id, holding)

    # -- registrations ------------------------------------------------------------------
    async def list_registrations(
        self, platform_event_id: str, cursor: str | None = None, page_size: int = 100
    ) -> RegistrationPage:
        """One page of guests in registration order, after ``cursor``.

        The returned ``next_cursor`` resumes after the last guest seen, so a later call
        returns only guests who registered since. Luma has no changed-since filter: status
        changes of guests already seen arrive by the ``guest.updated`` webhook (or a full
        re-read with ``cursor=None`` during reconciliation). If a server omits
        ``next_cursor`` on the last page, the given cursor is returned, so the next poll
        re-reads that page (duplicates are harmless, ingest is idempotent) rather than
        starting over.
        """
        body = await self._call(
            "GET",
            f"{LEGACY}/event/get-guests",
            params={
                "event_api_id": platform_event_id,
                "pagination_cursor": cursor,
                "pagination_limit": page_size,
                "sort_column": "registered_at",
                "sort_direction": "asc",
            },
        )
        items = []
        for entry in body.get("entries") or []:
            guest = entry.get("guest") if isinstance(entry.get("guest"), dict) else entry
            items.append(registration_from_guest(platform_event_id, guest, raw=entry))
        has_more = bool(body.get("has_more"))
        return RegistrationPage(
            items=items,
            next_cursor=body.get("next_cursor") or cursor,
            has_more=has_more,
            raw={k: v for k, v in body.items() if k != "entries"},
        )

    async def get_registration(
        self, platform_event_id: str, platform_registration_id: str
    ) -> PlatformRegistration:
        body = await self._call(
            "GET",
            f"{LEGACY}/event/get-guest",
            params={"event_api_id": platform_event_id, "api_id": platform_registration_id},
        )
        guest = body.get("guest") or {}
        return registration_from_guest(platform_event_id, guest, raw=body)

    async def _set_status(
        self, platform_event_id: str, guest_id: str, status: str, should_refund: bool
    ) -> None:
        await self._call(
            "POST",
            f"{LEGACY}/event/update-guest-status",
            json_body={
                "event_api_id": platform_event_id,
                "guest": {"type": "api_id", "api_id": guest_id},
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

    # -- webhooks (current API) -----------------------------------------------------------
    async def list_webhooks(self) -> list[dict[str, Any]]:
        hooks: list[dict[str, Any]] = []
        cursor: str | None = None
        while True:
            body = await self._call(
                "GET",
                "/v1/webhooks/list",
                params={"pagination_cursor": cursor},
                base=self.webhooks_base_url,
            )
            hooks.extend(body.get("entries") or [])
            cursor = body.get("next_cursor")
            if not body.get("has_more") or not cursor:
                return hooks

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
            "POST",
            "/v2/webhooks/create",
            json_body={"url": url, "event_types": list(event_types)},
            base=self.webhooks_base_url,
        )

    async def delete_webhook(self, webhook_id: str) -> None:
        await self._call(
            "POST", "/v1/webhooks/delete", json_body={"id": webhook_id}, base=self.webhooks_base_url
        )


def _json(response: httpx.Response) -> Any:
    try:
        return response.json()
    except (ValueError, json.JSONDecodeError):
        return None
