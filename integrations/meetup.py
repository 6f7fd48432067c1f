"""Meetup channel: OAuth2 tokens and the GraphQL (gql-ext) adapter.

Wire contract: ../shared/CONTRACTS.md, Part 1, section 1, and Meetup's own schema
(``contracts/meetup-gql-ext.introspection.json``): every document below uses only fields,
arguments, input fields and enum values that schema has (tests/test_contract_meetup.py
validates each one as sent on the wire). Every call is ``POST {base_url}{GRAPHQL_PATH}``
with ``Authorization: Bearer <access token>``; tokens come from Meetup's OAuth2 server
(``{oauth_base_url}{OAUTH_AUTHORIZE_PATH}`` and ``{OAUTH_TOKEN_PATH}``). The live hosts
are in one place, ``hub.settings.LIVE_BASE_URLS`` (``https://api.meetup.com`` and
``https://secure.meetup.com``); sandbox mode points both at the emulator in
``integrations/sandbox/meetup/``.

What Meetup cannot do (and this adapter therefore refuses with ``Unsupported``):
approve, decline or move an RSVP (contract Uncertain #3), and delete or anonymize a
member's RSVP as the organizer. Meetup never exposes attendees' e-mail or phone, and
sends no webhooks: registrations are polled with :meth:`MeetupAdapter.list_registrations`.

Tokens and secrets never appear in exception messages or logs.
"""

from __future__ import annotations

import asyncio
import html
import logging
import re
from collections.abc import Collection
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit
from zoneinfo import ZoneInfo

import httpx

from hub.models import (
    CURRENCY_EXPONENTS,
    ChannelPublication,
    Event,
    PaymentStatus,
    Platform,
    PlatformRegistration,
    RegistrationPage,
    RegistrationStatus,
    to_minor_units,
)
from integrations.base import (
    AuthError,
    ChannelAdapter,
    NotFound,
    RateLimited,
    ReconnectRequired,
    ServerError,
    TokenStore,
    Unsupported,
    ValidationFailed,
    parse_retry_after,
    parse_timestamp,
)

log = logging.getLogger("hub.integrations.meetup")

PLATFORM = Platform.MEETUP.value
RECONNECT_COMMAND = "hub integrations connect meetup"
REFRESH_MARGIN = timedelta(minutes=5)
MAX_PAGE_SIZE = 200  # Meetup caps `first`
DEFAULT_EXPIRES_IN = 3600

# Every RsvpStatus except HAVENT (a non-answer): Meetup's default filter is YES+ATTENDED only.
ALL_RSVP_STATUSES = (
    "YES",
    "WAITLIST",
    "NO",
    "ATTENDED",
    "NO_SHOW",
    "EXCUSED_ABSENCE",
    "MAYBE",
    "YES_PENDING_PAYMENT",
)
RSVP_STATUS_MAP: dict[str, RegistrationStatus] = {
    "YES": RegistrationStatus.APPROVED,
    "WAITLIST": RegistrationStatus.WAITLIST,
    "NO": RegistrationStatus.CANCELLED,
    "ATTENDED": RegistrationStatus.ATTENDED,
    "NO_SHOW": RegistrationStatus.NO_SHOW,
    "YES_PENDING_PAYMENT": RegistrationStatus.PENDING,
    "EXCUSED_ABSENCE": RegistrationStatus.CANCELLED,
    "MAYBE": RegistrationStatus.PENDING,
    "HAVENT": RegistrationStatus.PENDING,
}
PAID_RSVP_STATUSES = frozenset({"YES", "ATTENDED", "NO_SHOW"})
# GraphQL error codes that mean "slow down" when Meetup answers a rate limit with HTTP 200
# (contract Uncertain #1); kept here so it is easy to change.
RATE_LIMIT_CODES = frozenset({"RATE_LIMITED", "TOO_MANY_REQUESTS", "RATE_LIMIT_EXCEEDED"})

# Paths on the live hosts (hub.settings.LIVE_BASE_URLS): api.meetup.com/gql-ext and
# secure.meetup.com/oauth2/{authorize,access} (CONTRACTS.md [M2, M5]).
GRAPHQL_PATH = "/gql-ext"
OAUTH_AUTHORIZE_PATH = "/oauth2/authorize"
OAUTH_TOKEN_PATH = "/oauth2/access"

# From the schema's enums (the contract test checks they still match it):
# EventFeeCurrency, and PaymentMethod (CASH | PAYPAL). The hub collects payment itself
# (Stripe, bank transfer matched by reference), so a paid Meetup event is listed as CASH:
# "pay the organizer", never through a PayPal account the hub does not hold.
FEE_CURRENCIES = frozenset(
    {
        "AUD",
        "BRL",
        "CAD",
        "CHF",
        "EUR",
        "GBP",
        "INR",
        "JPY",
        "KRW",
        "PLN",
        "RUB",
        "THB",
        "TRY",
        "USD",
    }
)
PAYMENT_METHOD = "CASH"
# EventStatus -> the hub's word for a channel publication.
EVENT_STATUS_WORDS = {
    "ACTIVE": "published",
    "DRAFT": "draft",
    "AUTOSCHED_DRAFT": "draft",
    "PAST": "past",
    "CANCELLED": "cancelled",
    "CANCELLED_PERM": "cancelled",
    "AUTOSCHED_CANCELLED": "cancelled",
}


# =========================================================================== OAuth2


def _expires_at_iso(expires_in: Any) -> str:
    try:
        seconds = int(expires_in)
    except (TypeError, ValueError):
        seconds = DEFAULT_EXPIRES_IN
    return (datetime.now(UTC) + timedelta(seconds=seconds)).isoformat()


def _parse_expires_at(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, str) and value:
        try:
            when = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
        return when if when.tzinfo else when.replace(tzinfo=UTC)
    return None


class MeetupOAuth:
    """Meetup's OAuth2 server (authorization-code grant with rotating refresh tokens)."""

    def __init__(
        self,
        base_url: str,
        client_id: str,
        client_secret: str,
        redirect_uri: str,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.client_id = client_id
        self._client_secret = client_secret
        self.redirect_uri = redirect_uri
        self._client = client or httpx.AsyncClient(timeout=30.0)
        self._owns_client = client is None

    def __repr__(self) -> str:  # never show the secret
        return f"MeetupOAuth(base_url={self.base_url!r}, client_id={self.client_id!r})"

    async def aclose(self) -> None:
        if self._owns_client:
            await self._client.aclose()

    def authorization_url(self, state: str) -> str:
        query = urlencode(
            {
                "client_id": self.client_id,
                "response_type": "code",
                "redirect_uri": self.redirect_uri,
                "state": state,
            }
        )
        return f"{self.base_url}{OAUTH_AUTHORIZE_PATH}?{query}"

    async def exchange_code(self, code: str) -> dict[str, Any]:
        """Trade an authorization code for ``{access_token, refresh_token, expires_at}``."""
        return await self._token_request(
            {
                "grant_type": "authorization_code",
                "client_id": self.client_id,
                "client_secret": self._client_secret,
                "redirect_uri": self.redirect_uri,
                "code": code,
            },
            refreshing=False,
        )

    async def refresh(self, refresh_token: str) -> dict[str, Any]:
        """A new ``{access_token, refresh_token, expires_at}``; the old refresh token is spent.

        A refused refresh token (``invalid_grant``) raises :class:`ReconnectRequired`.
        """
        tokens = await self._token_request(
            {
                "grant_type": "refresh_token",
                "client_id": self.client_id,
                "client_secret": self._client_secret,
                "refresh_token": refresh_token,
            },
            refreshing=True,
        )
        tokens["refresh_token"] = tokens.get("refresh_token") or refresh_token
        return tokens

    async def _token_request(self, form: dict[str, str], *, refreshing: bool) -> dict[str, Any]:
        url = f"{self.base_url}{OAUTH_TOKEN_PATH}"
        try:
            response = await self._client.post(
                url, data=form, headers={"Accept": "application/json"}
            )
        except httpx.TimeoutException as exc:
            raise ServerError(PLATFORM, "timeout on the OAuth token endpoint") from exc
        except httpx.TransportError as exc:
            raise ServerError(
                PLATFORM, f"cannot reach the OAuth token endpoint: {type(exc).__name__}"
            ) from exc
        status = response.status_code
        body = _json_or_none(response)
        error = body.get("error") if isinstance(body, dict) else None
        # The server's own description; it never echoes our tokens.
        description = str(body.get("error_description") or "")[:200] if error else ""
        safe_body = {"error": error, "error_description": description} if error else None
        if status == 429:
            raise RateLimited(
                PLATFORM,
                "rate limited by the OAuth token endpoint",
                retry_after=parse_retry_after(response.headers.get("Retry-After")),
                body=safe_body,
            )
        if status >= 500:
            raise ServerError(PLATFORM, f"OAuth token endpoint error {status}", status=status)
        if error == "invalid_grant":
            if refreshing:
                raise ReconnectRequired(
                    PLATFORM,
                    f"Meetup refused the refresh token ({description or 'invalid_grant'}); "
                    f"the connection was revoked or expired: run `{RECONNECT_COMMAND}`",
                    status=status,
                    body=safe_body,
                )
            raise AuthError(
                PLATFORM,
                f"Meetup refused the authorization code ({description or 'invalid_grant'}); "
                f"run `{RECONNECT_COMMAND}` again to get a fresh code",
                status=status,
                body=safe_body,
            )
        if status in (401, 403) or error == "invalid_client":
            raise AuthError(
                PLATFORM,
                "Meetup refused the OAuth client credentials (invalid_client): check the "
                "configured Meetup client id and secret",
                status=status,
                body=safe_body,
            )
        if status >= 400 or not isinstance(body, dict) or not body.get("access_token"):
            raise AuthError(
                PLATFORM,
                f"unexpected OAuth token response ({status}, {error or 'no access_token'})",
                status=status,
                body=safe_body,
            )
        return {
            "access_token": body["access_token"],
            "refresh_token": body.get("refresh_token"),
            "expires_at": _expires_at_iso(body.get("expires_in")),
        }


def _json_or_none(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


class MeetupTokens:
    """The stored Meetup tokens, refreshed 5 minutes before they expire.

    Parallel callers share one refresh (an asyncio lock, re-created per event loop), so a
    rotating refresh token is never spent twice.
    """

    def __init__(self, oauth: MeetupOAuth, store: TokenStore, platform: str = "meetup") -> None:
        self.oauth = oauth
        self.store = store
        self.platform = platform
        self._lock: asyncio.Lock | None = None
        self._lock_loop: asyncio.AbstractEventLoop | None = None

    def _get_lock(self) -> asyncio.Lock:
        loop = asyncio.get_running_loop()
        if self._lock is None or self._lock_loop is not loop:
            self._lock, self._lock_loop = asyncio.Lock(), loop
        return self._lock

    def _load(self) -> dict[str, Any]:
        creds = self.store.load(self.platform)
        if not creds or not (creds.get("access_token") or creds.get("refresh_token")):
            raise ReconnectRequired(PLATFORM, f"Meetup is not connected: run `{RECONNECT_COMMAND}`")
        return creds

    @staticmethod
    def _fresh(creds: dict[str, Any]) -> bool:
        if not creds.get("access_token"):
            return False
        expires_at = _parse_expires_at(creds.get("expires_at"))
        if expires_at is None:  # unknown: use it, a 401 will force a refresh
            return True
        return expires_at - datetime.now(UTC) > REFRESH_MARGIN

    async def access_token(self) -> str:
        creds = self._load()
        if self._fresh(creds):
            return creds["access_token"]
        async with self._get_lock():
            creds = self._load()  # another task may have refreshed meanwhile
            if self._fresh(creds):
                return creds["access_token"]
            return await self._refresh(creds)

    async def force_refresh(self, failed_token: str | None = None) -> str:
        """Refresh after a 401. With ``failed_token``, a token already replaced by a
        concurrent refresh is returned instead of refreshing again."""
        async with self._get_lock():
            creds = self._load()
            current = creds.get("access_token")
            replaced = failed_token is not None and current and current != failed_token
            if replaced and self._fresh(creds):
                return current
            return await self._refresh(creds)

    async def _refresh(self, creds: dict[str, Any]) -> str:
        refresh_token = creds.get("refresh_token")
        if not refresh_token:
            raise ReconnectRequired(
                PLATFORM, f"no Meetup refresh token is stored: run `{RECONNECT_COMMAND}`"
            )
        tokens = await self.oauth.refresh(refresh_token)
        merged = {**creds, **tokens}
        self.store.save(self.platform, merged, _parse_expires_at(tokens["expires_at"]))
        log.info("meetup access token refreshed (expires %s)", tokens["expires_at"])
        return tokens["access_token"]


async def connect(oauth: MeetupOAuth, store: TokenStore, code: str) -> dict[str, Any]:
    """Exchange an authorization code and save the tokens (``hub integrations connect``)."""
    tokens = await oauth.exchange_code(code)
    store.save(PLATFORM, tokens, _parse_expires_at(tokens["expires_at"]))
    log.info("meetup connected (token expires %s)", tokens["expires_at"])
    return tokens


async def sandbox_authorize(oauth: MeetupOAuth, state: str) -> str:
    """Sandbox mode: do the authorize GET (the emulator auto-consents) and return the code
    from the redirect's Location header, without following it."""
    url = oauth.authorization_url(state)
    try:
        response = await oauth._client.get(url, follow_redirects=False)
    except httpx.TransportError as exc:
        raise ServerError(
            PLATFORM, f"cannot reach the OAuth authorize endpoint: {type(exc).__name__}"
        ) from exc
    location = response.headers.get("Location")
    if response.status_code not in (301, 302, 303, 307) or not location:
        body = _json_or_none(response)
        reason = body.get("error") if isinstance(body, dict) else response.status_code
        raise AuthError(
            PLATFORM, f"authorization was not granted ({reason})", status=response.status_code
        )
    query = parse_qs(urlsplit(location).query)
    if query.get("state", [None])[0] != state:
        raise AuthError(PLATFORM, "authorization redirect carried the wrong state")
    if "code" not in query:
        error = query.get("error", ["no code"])[0]
        raise AuthError(PLATFORM, f"authorization was not granted ({error})")
    return query["code"][0]


# =========================================================================== GraphQL documents

_OPERATION_NAME = re.compile(r"\s*(?:query|mutation)\s+([_A-Za-z][_0-9A-Za-z]*)")

# The RSVP limit is set with the input's rsvpSettings.rsvpLimit and read back as
# Event.maxTickets; whether RSVPs are open is Event.rsvpSettings.rsvpsClosed.
_EVENT_FIELDS = (
    "id token title eventUrl status dateTime duration maxTickets waitlistMode "
    "rsvpSettings { rsvpsClosed }"
)
_PAYLOAD = f"event {{ {_EVENT_FIELDS} }} errors {{ code field message }}"
_RSVPS_PAYLOAD = (
    "event { id maxTickets rsvpSettings { rsvpsClosed } } errors { code field message }"
)

CREATE_EVENT = f"""
mutation hubCreateEvent($input: CreateEventInput!) {{
  createEvent(input: $input) {{ {_PAYLOAD} }}
}}"""
EDIT_EVENT = f"""
mutation hubEditEvent($input: EditEventInput!) {{
  editEvent(input: $input) {{ {_PAYLOAD} }}
}}"""
PUBLISH_EVENT_DRAFT = f"""
mutation hubPublishEventDraft($input: PublishEventDraftInput!) {{
  publishEventDraft(input: $input) {{ {_PAYLOAD} }}
}}"""
CLOSE_EVENT_RSVPS = f"""
mutation hubCloseEventRsvps($input: CloseEventRsvpsInput!) {{
  closeEventRsvps(input: $input) {{ {_RSVPS_PAYLOAD} }}
}}"""
OPEN_EVENT_RSVPS = f"""
mutation hubOpenEventRsvps($input: OpenEventRsvpsInput!) {{
  openEventRsvps(input: $input) {{ {_RSVPS_PAYLOAD} }}
}}"""
GROUP_EVENTS = f"""
query hubGroupEvents($urlname: String!, $first: Int!, $after: String,
                     $from: DateTime, $to: DateTime) {{
  groupByUrlname(urlname: $urlname) {{
    events(first: $first, after: $after,
           filter: {{afterDateTime: $from, beforeDateTime: $to}}) {{
      pageInfo {{ hasNextPage endCursor }}
      edges {{ node {{ {_EVENT_FIELDS} }} }}
    }}
  }}
}}"""
EVENT_RSVPS = """
query hubEventRsvps($eventId: ID!, $first: Int!, $after: String, $statuses: [RsvpStatus!]) {
  event(id: $eventId) {
    id
    feeSettings { required amount currency }
    rsvps(first: $first, after: $after, filter: {rsvpStatus: $statuses}) {
      totalCount
      yesCount
      waitlistCount
      pageInfo { hasNextPage endCursor }
      edges { cursor node { id status guestsCount updated isHost member { id name } } }
    }
  }
}"""


# =========================================================================== mapping helpers


def _aware(when: datetime, zone: str) -> datetime:
    return when if when.tzinfo else when.replace(tzinfo=ZoneInfo(zone))


def iso_duration(delta: timedelta) -> str:
    """timedelta -> ISO-8601 duration (PT2H, PT1H30M, P1DT2H)."""
    total = max(int(delta.total_seconds()), 60)
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, seconds = divmod(rest, 60)
    clock = "".join(
        f"{value}{unit}" for value, unit in ((hours, "H"), (minutes, "M"), (seconds, "S")) if value
    )
    return "P" + (f"{days}D" if days else "") + (f"T{clock}" if clock else "")


def description_html(event: Event) -> str:
    """The hub's plain-text description as Meetup HTML: escaped, paragraphs and line breaks
    kept. A physical venue is added as a paragraph (Meetup venues need a separate venue id)."""
    paragraphs = [p.strip() for p in re.split(r"\n\s*\n", event.description or "") if p.strip()]
    if not paragraphs:
        paragraphs = [event.title]
    parts = [
        "<p>" + "<br>".join(html.escape(line.strip()) for line in p.splitlines()) + "</p>"
        for p in paragraphs
    ]
    if not event.is_online and (event.venue_name or event.venue_address):
        where = ", ".join(x for x in (event.venue_name, event.venue_address) if x)
        parts.append(f"<p><b>Venue:</b> {html.escape(where)}</p>")
    return "".join(parts)


def fee_option(event: Event) -> dict[str, Any]:
    """Meetup's ``EventFeeOption`` for a priced event: ``{amount, currency, paymentMethod}``.

    ``amount`` is ``Int!`` in whole currency units: the schema describes its limits as
    "may not exceed 4999 (for any currency)" in the US and "at least 1.0 USD" with WePay,
    and every other Meetup money field (``EventFeeSettings.amount``, promo codes: "in
    currency units (e.g. USD)", early bird: "in dollars") is in major units. So a price
    with a fractional part (150.50 TRY) cannot be listed on Meetup: it is refused here,
    before anything is sent, instead of being rounded into a different price. The
    currency must be one of ``EventFeeCurrency``.
    """
    if event.currency not in FEE_CURRENCIES:
        raise ValidationFailed(
            PLATFORM,
            f"Meetup cannot charge in {event.currency}; its fee currencies are "
            f"{', '.join(sorted(FEE_CURRENCIES))}",
            field="currency",
            code="UNSUPPORTED_CURRENCY",
            status=None,
        )
    exponent = CURRENCY_EXPONENTS.get(event.currency, 2)
    amount = Decimal(event.price_minor) / (Decimal(10) ** exponent)
    if amount != amount.to_integral_value():
        raise ValidationFailed(
            PLATFORM,
            f"Meetup takes whole-unit fees only (EventFeeOption.amount is an Int): a price of "
            f"{amount:.{exponent}f} {event.currency} cannot be listed; use a whole price such "
            f"as {int(amount)} or {int(amount) + 1} {event.currency}",
            field="price_minor",
            code="FRACTIONAL_PRICE",
            status=None,
        )
    return {"amount": int(amount), "currency": event.currency, "paymentMethod": PAYMENT_METHOD}


def publication_status(status: Any) -> str:
    """Meetup's EventStatus as the hub's publication word (ACTIVE -> published, ...)."""
    text = str(status or "unknown")
    return EVENT_STATUS_WORDS.get(text, text.lower())


# =========================================================================== the adapter


class MeetupAdapter(ChannelAdapter):
    """Meetup over GraphQL (gql-ext), with OAuth2 tokens from :class:`MeetupTokens`."""

    platform = Platform.MEETUP

    def __init__(
        self,
        base_url: str,
        *,
        tokens: MeetupTokens,
        group_urlname: str,
        client: httpx.AsyncClient | None = None,
        timeout: float = 30.0,
    ) -> None:
        super().__init__(base_url, client=client, timeout=timeout)
        self.tokens = tokens
        self.group_urlname = group_urlname
        self.endpoint = f"{self.base_url}{GRAPHQL_PATH}"

    # ----------------------------------------------------------------- transport
    async def _post(self, payload: dict[str, Any], token: str) -> httpx.Response:
        return await self._send(
            "POST",
            self.endpoint,
            headers={"Authorization": f"Bearer {token}", "Accept": "application/json"},
            json=payload,
        )

    async def _gql(self, query: str, variables: dict[str, Any]) -> dict[str, Any]:
        """Run one GraphQL operation and return its ``data``; every failure is typed."""
        match = _OPERATION_NAME.match(query)
        operation_name = match.group(1) if match else "anonymous"
        payload: dict[str, Any] = {"query": query, "variables": variables}
        if match:
            payload["operationName"] = operation_name
        token = await self.tokens.access_token()
        response = await self._post(payload, token)
        if response.status_code == 401:
            log.info("meetup %s: 401, refreshing the access token once", operation_name)
            token = await self.tokens.force_refresh(token)
            response = await self._post(payload, token)
            if response.status_code == 401:
                raise AuthError(
                    PLATFORM,
                    f"Meetup refused a freshly refreshed access token; run `{RECONNECT_COMMAND}`",
                    status=401,
                    body=_json_or_none(response),
                )
        self._raise_for_status(response)
        body = _json_or_none(response)
        if not isinstance(body, dict):
            raise ServerError(PLATFORM, f"{operation_name}: reply is not a JSON object")
        if body.get("errors"):
            self._raise_graphql_errors(operation_name, body)
        data = body.get("data")
        if not isinstance(data, dict):
            raise ServerError(PLATFORM, f"{operation_name}: reply has no data")
        return data

    def _raise_graphql_errors(self, operation_name: str, body: dict[str, Any]) -> None:
        errors = [e for e in body["errors"] if isinstance(e, dict)] or [{"message": "error"}]
        codes = {str((e.get("extensions") or {}).get("code") or "") for e in errors} | {
            str((e.get("extensions") or {}).get("classification") or "") for e in errors
        }
        message = "; ".join(str(e.get("message", ""))[:200] for e in errors[:3])
        if codes & RATE_LIMIT_CODES:
            reset = next(
                (
                    (e.get("extensions") or {}).get("resetAt")
                    for e in errors
                    if (e.get("extensions") or {}).get("resetAt")
                ),
                None,
            )
            reset_at = parse_timestamp(reset)
            retry_after = (
                max((reset_at - datetime.now(UTC)).total_seconds(), 0.0) if reset_at else None
            )
            raise RateLimited(
                PLATFORM, f"{operation_name}: rate limited: {message}", retry_after=retry_after,
                status=200, body=body,
            )  # fmt: skip
        if "UNAUTHENTICATED" in codes:
            raise AuthError(PLATFORM, f"{operation_name}: {message}", status=200, body=body)
        first = errors[0].get("extensions") or {}
        raise ValidationFailed(
            PLATFORM,
            f"{operation_name}: {message}",
            code=first.get("classification") or first.get("code"),
            status=200,
            body=body,
        )

    async def _mutate(self, field: str, query: str, input_: dict[str, Any]) -> dict[str, Any]:
        """Run a mutation and return its payload; payload ``errors`` raise ValidationFailed."""
        data = await self._gql(query, {"input": input_})
        payload = data.get(field)
        if not isinstance(payload, dict):
            raise ServerError(PLATFORM, f"{field}: reply has no payload")
        errors = [e for e in payload.get("errors") or [] if isinstance(e, dict)]
        if errors:
            first = errors[0]
            text = "; ".join(
                f"{e.get('field')}: {e.get('message')}" if e.get("field") else str(e.get("message"))
                for e in errors
            )
            raise ValidationFailed(
                PLATFORM,
                f"{field} refused: {text}",
                field=first.get("field"),
                code=first.get("code"),
                status=200,
                body=payload,
            )
        return payload

    # ----------------------------------------------------------------- mapping
    def _event_input(self, event: Event, *, editing: bool = False) -> dict[str, Any]:
        zone = ZoneInfo(event.timezone)
        starts = _aware(event.starts_at, event.timezone).astimezone(zone)
        ends = _aware(event.ends_at, event.timezone).astimezone(zone)
        data: dict[str, Any] = {
            "title": event.title,
            "description": description_html(event),
            "startDateTime": starts.isoformat(timespec="seconds"),
            "duration": iso_duration(ends - starts),
        }
        if event.is_online:
            # venueId "online" is the schema's alias; howToFindUs "for online events ...
            # is used for the event's url".
            data["venueId"] = "online"
            data["howToFindUs"] = event.online_url
        elif editing:  # moved off-line: "To unset this field, provide a value of "0""
            data["venueId"] = "0"
            data["howToFindUs"] = ""  # "To unset this field, provide a empty string"
        if editing:  # EditEventInput.feeOption is an EventFeeOptionEdit {enabled, fee}
            data["feeOption"] = (
                {"enabled": False} if event.is_free else {"enabled": True, "fee": fee_option(event)}
            )
        elif not event.is_free:  # CreateEventInput.feeOption is an EventFeeOption
            data["feeOption"] = fee_option(event)
        return data

    def _publication(self, node: dict[str, Any], raw: dict[str, Any]) -> ChannelPublication:
        return ChannelPublication(
            platform=self.platform,
            platform_event_id=str(node["id"]),
            url=node.get("eventUrl"),
            status=publication_status(node.get("status")),
            raw=raw,
        )

    async def _close(self, platform_event_id: str) -> dict[str, Any]:
        payload = await self._mutate(
            "closeEventRsvps", CLOSE_EVENT_RSVPS, {"eventId": platform_event_id}
        )
        self._check_rsvps_closed(payload, closed=True)
        return payload

    @staticmethod
    def _check_rsvps_closed(payload: dict[str, Any], *, closed: bool) -> None:
        """The payload's ``event`` is the truth: RSVPs must now be closed (or open)."""
        settings = (payload.get("event") or {}).get("rsvpSettings") or {}
        if settings.get("rsvpsClosed") is not None and bool(settings["rsvpsClosed"]) != closed:
            state = "open" if closed else "closed"
            raise ServerError(
                PLATFORM, f"Meetup answered without error but RSVPs are still {state}"
            )

    async def _publish_draft(self, platform_event_id: str) -> dict[str, Any]:
        return await self._mutate(
            "publishEventDraft", PUBLISH_EVENT_DRAFT, {"eventId": platform_event_id}
        )

    # ----------------------------------------------------------------- publishing
    async def publish_event(self, event: Event, capacity: int) -> ChannelPublication:
        """Create the event as a DRAFT, then publish it.

        ``rsvpSettings.rsvpLimit`` is ``capacity``; since Meetup reads a limit of 0 as "no
        limit", a capacity of 0 leaves the limit unset and closes RSVPs instead. The host
        is not RSVP'd (``selfRsvp: false``) so the organizer takes no seat. If publishing
        fails after the create, a retry finds the draft with :meth:`find_existing`.
        """
        data = {
            "groupUrlname": self.group_urlname,
            **self._event_input(event),
            "publishStatus": "DRAFT",
            "selfRsvp": False,
        }
        if capacity > 0:
            data["rsvpSettings"] = {"rsvpLimit": capacity}
        created = await self._mutate("createEvent", CREATE_EVENT, data)
        node = created.get("event") or {}
        if not node.get("id"):
            raise ServerError(PLATFORM, "createEvent returned no event id")
        raw: dict[str, Any] = {"create": created}
        if capacity <= 0:
            raw["close"] = await self._close(node["id"])
        published = await self._publish_draft(node["id"])
        raw["publish"] = published
        log.info("meetup event %s created and published", node["id"])
        return self._publication(published.get("event") or node, raw)

    async def find_existing(
        self, event: Event, exclude: Collection[str] = ()
    ) -> ChannelPublication | None:
        """The group's event with this title and start time, if a lost reply hid it.

        A DRAFT found here is what an interrupted :meth:`publish_event` left behind, so it
        is published before being returned.
        """
        starts = _aware(event.starts_at, event.timezone)
        title = event.title.strip()
        variables: dict[str, Any] = {
            "urlname": self.group_urlname,
            "first": 50,
            "after": None,
            "from": (starts - timedelta(minutes=1)).isoformat(),
            "to": (starts + timedelta(minutes=1)).isoformat(),
        }
        for _ in range(100):  # bounded: at most 5,000 events around one start time
            data = await self._gql(GROUP_EVENTS, variables)
            group = data.get("groupByUrlname")
            if group is None:
                raise ValidationFailed(
                    PLATFORM,
                    f"group {self.group_urlname!r} not found or not organized by this account",
                    field="groupUrlname",
                )
            connection = group.get("events") or {}
            for edge in connection.get("edges") or []:
                node = edge.get("node") or {}
                when = parse_timestamp(node.get("dateTime"))
                if str(node.get("id")) in exclude:
                    continue
                if str(node.get("title", "")).strip() == title and when == starts:
                    raw: dict[str, Any] = {"found": node}
                    if node.get("status") == "DRAFT":
                        raw["publish"] = await self._publish_draft(str(node["id"]))
                        node = raw["publish"].get("event") or node
                    return self._publication(node, raw)
            page = connection.get("pageInfo") or {}
            if not page.get("hasNextPage") or not page.get("endCursor"):
                return None
            variables["after"] = page["endCursor"]
        return None

    async def update_event(
        self, event: Event, platform_event_id: str, capacity: int
    ) -> ChannelPublication:
        """editEvent with every field; capacity 0 closes RSVPs (rsvpLimit 0 means no limit)."""
        data = {"eventId": platform_event_id, **self._event_input(event, editing=True)}
        if capacity > 0:
            data["rsvpSettings"] = {"rsvpLimit": capacity}
        edited = await self._mutate("editEvent", EDIT_EVENT, data)
        raw: dict[str, Any] = {"edit": edited}
        if capacity <= 0:
            raw["close"] = await self._close(platform_event_id)
        node = edited.get("event") or {"id": platform_event_id}
        return self._publication(node, raw)

    async def update_capacity(self, platform_event_id: str, capacity: int) -> None:
        """Set ``rsvpLimit``; a capacity of 0 closes RSVPs instead (a 0 limit is "none").

        RSVPs closed this way or by :meth:`close_sales` stay closed until
        :meth:`open_sales`.
        """
        if capacity <= 0:
            await self._close(platform_event_id)
            return
        await self._mutate(
            "editEvent",
            EDIT_EVENT,
            {"eventId": platform_event_id, "rsvpSettings": {"rsvpLimit": capacity}},
        )

    async def close_sales(self, platform_event_id: str) -> None:
        await self._close(platform_event_id)

    async def open_sales(self, platform_event_id: str) -> None:
        """Re-open RSVPs closed by :meth:`close_sales` (Meetup-only; not in the port)."""
        payload = await self._mutate(
            "openEventRsvps", OPEN_EVENT_RSVPS, {"eventId": platform_event_id}
        )
        self._check_rsvps_closed(payload, closed=False)

    # ----------------------------------------------------------------- registrations
    async def list_registrations(
        self, platform_event_id: str, cursor: str | None = None, page_size: int = 100
    ) -> RegistrationPage:
        """One page of RSVPs (every status, host RSVPs left out) after ``cursor``.

        The cursor is Meetup's own Relay cursor (a base64 offset into the event's RSVPs,
        which Meetup keeps in RSVP order): ``next_cursor`` is the ``endCursor`` of this page,
        or the given cursor when nothing new came, so a later call with it returns only
        RSVPs added since. Meetup has no "changed since" filter, so a status change of an
        RSVP already seen (a YES turning NO, a waitlist promotion) is only picked up by a
        periodic full re-scan with ``cursor=None``; callers should schedule one.
        """
        first = max(1, min(page_size, MAX_PAGE_SIZE))
        data = await self._gql(
            EVENT_RSVPS,
            {
                "eventId": platform_event_id,
                "first": first,
                "after": cursor,
                "statuses": list(ALL_RSVP_STATUSES),
            },
        )
        event = data.get("event")
        if event is None:
            raise NotFound(PLATFORM, f"event {platform_event_id} not found", status=200)
        connection = event.get("rsvps") or {}
        fee = event.get("feeSettings") or None
        items: list[PlatformRegistration] = []
        hosts = 0
        for edge in connection.get("edges") or []:
            node = edge.get("node") or {}
            if node.get("isHost"):
                hosts += 1
                continue
            items.append(self._registration(platform_event_id, node, fee))
        page = connection.get("pageInfo") or {}
        return RegistrationPage(
            items=items,
            next_cursor=page.get("endCursor") or cursor,
            has_more=bool(page.get("hasNextPage")),
            raw={
                "totalCount": connection.get("totalCount"),
                "yesCount": connection.get("yesCount"),
                "waitlistCount": connection.get("waitlistCount"),
                "pageInfo": page,
                "hostsSkipped": hosts,
            },
        )

    def _registration(
        self, event_id: str, node: dict[str, Any], fee: dict[str, Any] | None
    ) -> PlatformRegistration:
        status = str(node.get("status") or "")
        member = node.get("member") or {}
        payment, amount, currency = PaymentStatus.NONE, 0, None
        if fee and fee.get("required") and fee.get("amount"):
            currency = str(fee.get("currency") or "").upper() or None
            if status in PAID_RSVP_STATUSES:
                payment = PaymentStatus.PAID
            elif status == "YES_PENDING_PAYMENT":
                payment = PaymentStatus.UNPAID
            if payment is not PaymentStatus.NONE and currency in CURRENCY_EXPONENTS:
                try:
                    amount = to_minor_units(str(fee["amount"]), currency)
                except ValueError:
                    amount = 0
        return PlatformRegistration(
            platform=self.platform,
            platform_event_id=event_id,
            platform_registration_id=str(node["id"]),
            full_name=member.get("name"),
            email=None,  # Meetup does not expose members' e-mail or phone
            phone=None,
            status=RSVP_STATUS_MAP.get(status, RegistrationStatus.PENDING),
            payment_status=payment,
            amount_minor=amount,
            currency=currency if payment is not PaymentStatus.NONE else None,
            updated_at=parse_timestamp(node.get("updated")),
            raw=node,
        )

    async def approve_registration(
        self, platform_event_id: str, platform_registration_id: str
    ) -> None:
        raise Unsupported(
            PLATFORM,
            "Meetup has no API to approve an RSVP; a YES holds a seat and the waitlist "
            "moves up by itself",
        )

    async def decline_registration(
        self, platform_event_id: str, platform_registration_id: str
    ) -> None:
        raise Unsupported(
            PLATFORM,
            "Meetup has no API to decline or move an RSVP; lower rsvpLimit or close RSVPs instead",
        )

    async def anonymize_registration(
        self, platform_event_id: str, platform_registration_id: str
    ) -> None:
        raise Unsupported(
            PLATFORM,
            "an organizer cannot delete or anonymize a member's RSVP through Meetup's API; "
            "the member must remove it, or Meetup support must erase the account (Meetup "
            "only holds the member's id and name)",
        )


__all__ = [
    "ALL_RSVP_STATUSES",
    "RSVP_STATUS_MAP",
    "MeetupAdapter",
    "MeetupOAuth",
    "MeetupTokens",
    "connect",
    "description_html",
    "iso_duration",
    "sandbox_authorize",
]
