"""Pydantic models at the hub's boundaries: what adapters, the receiver and the CLI exchange.

Adapters map each platform's wire format to these models and back; nothing outside
``integrations/`` sees a platform's JSON except as an opaque ``raw`` dict.
"""

from __future__ import annotations

import re
import unicodedata
from datetime import datetime
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from typing import Any, Literal
from uuid import UUID
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

# ISO 4217 currencies with their minor-unit exponent (the ones a community here meets).
CURRENCY_EXPONENTS: dict[str, int] = {
    "TRY": 2, "EUR": 2, "USD": 2, "GBP": 2, "CHF": 2, "SEK": 2, "NOK": 2, "DKK": 2,
    "PLN": 2, "CZK": 2, "HUF": 2, "RON": 2, "BGN": 2, "CAD": 2, "AUD": 2, "NZD": 2,
    "AED": 2, "SAR": 2, "QAR": 2, "ILS": 2, "INR": 2, "BRL": 2, "MXN": 2, "ZAR": 2,
    "SGD": 2, "HKD": 2, "CNY": 2, "RUB": 2, "UAH": 2, "GEL": 2, "AZN": 2, "EGP": 2,
    "JPY": 0, "KRW": 0, "CLP": 0, "ISK": 0, "KWD": 3, "BHD": 3, "JOD": 3, "TND": 3,
}  # fmt: skip


class Platform(StrEnum):
    NATIVE = "native"
    MEETUP = "meetup"
    EVENTBRITE = "eventbrite"
    LUMA = "luma"


SYNDICATED_PLATFORMS = (Platform.MEETUP, Platform.EVENTBRITE, Platform.LUMA)


class RegistrationStatus(StrEnum):
    """The hub's one status vocabulary; adapters map each platform's onto it."""

    PENDING = "pending"  # waiting for approval or payment
    APPROVED = "approved"  # has a seat (Meetup YES, Eventbrite attending, Luma approved)
    WAITLIST = "waitlist"
    DECLINED = "declined"
    CANCELLED = "cancelled"  # the person withdrew / order refunded or deleted
    ATTENDED = "attended"
    NO_SHOW = "no_show"


class PaymentStatus(StrEnum):
    NONE = "none"  # free
    UNPAID = "unpaid"
    PAID = "paid"
    REFUNDED = "refunded"


def slugify(text: str) -> str:
    """ASCII slug; Turkish letters folded (ı->i, ş->s, ğ->g ...)."""
    folded = text.translate(str.maketrans("ıİşŞğĞüÜöÖçÇ", "iIsSgGuUoOcC"))
    folded = unicodedata.normalize("NFKD", folded).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-zA-Z0-9]+", "-", folded).strip("-").lower()
    return slug[:80] or "event"


def to_minor_units(amount: Decimal | int | float | str, currency: str) -> int:
    """Major-unit amount to minor units (250.5 TRY -> 25050), refusing sub-minor precision."""
    exponent = CURRENCY_EXPONENTS[currency]
    try:
        value = Decimal(str(amount))
    except InvalidOperation as exc:
        raise ValueError(f"not a number: {amount!r}") from exc
    scaled = value * (Decimal(10) ** exponent)
    if scaled != scaled.to_integral_value():
        raise ValueError(f"{amount} has more decimals than {currency} allows ({exponent})")
    return int(scaled)


class Venue(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str | None = None
    address: str | None = None
    online_url: str | None = None


class EventSpec(BaseModel):
    """What an organizer writes (YAML file, admin API, Dagster config) to create an event.

    ``channels`` maps a platform to its allocation: a number of seats reserved for that
    channel, or ``null`` to sell from the shared pool. Reserved seats must fit capacity.
    """

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    title: str = Field(min_length=1, max_length=80)  # Meetup's limit is the strictest
    description: str = Field(default="", max_length=50_000)
    starts_at: datetime
    ends_at: datetime
    timezone: str = "Europe/Istanbul"
    venue: Venue = Field(default_factory=Venue)
    total_capacity: int = Field(
        ge=0, le=1_000_000, validation_alias=AliasChoices("total_capacity", "capacity")
    )
    price: Decimal = Field(default=Decimal(0), ge=0)
    currency: str = "TRY"
    slug: str | None = Field(default=None, pattern=r"^[a-z0-9]+(?:-[a-z0-9]+)*$", max_length=80)
    channels: dict[Platform, int | None] = Field(
        default_factory=lambda: {p: None for p in (Platform.NATIVE, *SYNDICATED_PLATFORMS)}
    )
    # The native landing page's look: "community" (in the spirit of Meetup's group pages)
    # or "clean" (in the spirit of Luma's).
    theme: Literal["community", "clean"] = "community"
    # A platform registration that arrives when the room is already full: "keep" it
    # (recorded as overbooked) or move it to the waitlist status.
    overbooking: Literal["keep", "waitlist"] = "keep"
    # Native registrations wait for a person's yes (status pending) instead of approved.
    approval_required: bool = False

    @field_validator("venue", mode="before")
    @classmethod
    def _venue_from_text(cls, value: Any) -> Any:
        """``venue: Kolektif House`` is the venue's name."""
        return {"name": value} if isinstance(value, str) else value

    @field_validator("channels", mode="before")
    @classmethod
    def _channels_from_list(cls, value: Any) -> Any:
        """``channels: [native, meetup]``: those channels, all selling the shared pool."""
        if isinstance(value, list | tuple):
            return dict.fromkeys(value)
        return value

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r} (use an IANA name)") from None
        return value

    @field_validator("currency")
    @classmethod
    def _known_currency(cls, value: str) -> str:
        code = value.upper()
        if code not in CURRENCY_EXPONENTS:
            raise ValueError(f"unknown currency {value!r} (ISO 4217 code such as TRY, EUR)")
        return code

    @field_validator("channels")
    @classmethod
    def _allocations_not_negative(cls, value: dict[Platform, int | None]) -> dict:
        for platform, seats in value.items():
            if seats is not None and seats < 0:
                raise ValueError(f"allocation for {platform.value} must be >= 0")
        if not value:
            raise ValueError("at least one channel is required")
        return value

    @model_validator(mode="after")
    def _coherent(self) -> EventSpec:
        zone = ZoneInfo(self.timezone)
        if self.starts_at.tzinfo is None:
            self.starts_at = self.starts_at.replace(tzinfo=zone)
        if self.ends_at.tzinfo is None:
            self.ends_at = self.ends_at.replace(tzinfo=zone)
        if self.ends_at <= self.starts_at:
            raise ValueError("ends_at: must be after starts_at")
        reserved = sum(v for v in self.channels.values() if v is not None)
        if reserved > self.total_capacity:
            raise ValueError(
                f"channels: allocations sum to {reserved}, over total_capacity "
                f"{self.total_capacity}"
            )
        try:
            to_minor_units(self.price, self.currency)
        except ValueError as exc:
            raise ValueError(f"price: {exc}") from None
        if self.slug is None:
            self.slug = slugify(f"{self.title} {self.starts_at:%Y-%m-%d}")
        return self

    @property
    def price_minor(self) -> int:
        return to_minor_units(self.price, self.currency)


class Event(BaseModel):
    """A stored event, as adapters receive it to publish or update."""

    model_config = ConfigDict(from_attributes=True)

    id: UUID
    slug: str
    title: str
    description: str
    starts_at: datetime
    ends_at: datetime
    timezone: str
    venue_name: str | None = None
    venue_address: str | None = None
    online_url: str | None = None
    total_capacity: int
    price_minor: int
    currency: str
    status: str
    version: int
    allocations: dict[str, int | None] = Field(default_factory=dict)
    native_theme: str = "community"
    overbooking_policy: str = "keep"
    approval_required: bool = False

    @property
    def native_quota(self) -> int:
        """Seats reserved for the hub's own pages (the native allocation; 0 if none)."""
        return self.allocations.get("native") or 0

    @property
    def is_free(self) -> bool:
        return self.price_minor == 0

    @property
    def is_online(self) -> bool:
        return bool(self.online_url) and not self.venue_address

    def capacity_for(self, platform: str, sold_elsewhere: int = 0) -> int:
        """Seats a platform may sell: its reserved allocation plus the shared pool.

        The shared pool is the capacity not reserved by any channel. A platform with a
        reservation gets that reservation plus the shared pool; ``sold_elsewhere`` (seats
        taken through other channels from the shared pool) reduces what remains.
        """
        reserved_total = sum(v for v in self.allocations.values() if v is not None)
        shared = max(self.total_capacity - reserved_total, 0)
        own = self.allocations.get(platform) or 0
        return max(own + shared - sold_elsewhere, 0)


class ChannelPublication(BaseModel):
    """Where an event lives on one platform, as the adapter reports it."""

    platform: Platform
    platform_event_id: str
    url: str | None = None
    status: str  # the platform's own word: draft, live, published ...
    raw: dict[str, Any] = Field(default_factory=dict)


class PlatformRegistration(BaseModel):
    """One registration (RSVP, order attendee, guest) as read from a platform."""

    platform: Platform
    platform_event_id: str
    platform_registration_id: str
    full_name: str | None = None
    email: str | None = None
    phone: str | None = None
    status: RegistrationStatus
    payment_status: PaymentStatus = PaymentStatus.NONE
    amount_minor: int = 0
    currency: str | None = None
    registered_at: datetime | None = None
    updated_at: datetime | None = None
    raw: dict[str, Any] = Field(default_factory=dict)


class RegistrationPage(BaseModel):
    """One page of a platform's registration listing; ``next_cursor`` resumes after it."""

    items: list[PlatformRegistration]
    next_cursor: str | None
    has_more: bool
    raw: dict[str, Any] = Field(default_factory=dict)
