"""The channel port every platform adapter implements, its typed errors, and shared HTTP.

Adapters are async (httpx) so syndication can talk to all platforms at once. They speak
the real wire contracts (../shared/CONTRACTS.md); only base URL and credentials differ
between sandbox and live mode.
"""

from __future__ import annotations

import contextvars
import email.utils
import time
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Collection, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, ClassVar, Protocol

import httpx

# --------------------------------------------------------------------------- errors
# The port's typed errors live in the core (hub.errors) so that the core can decide on
# them without importing an adapter; they are re-exported here for the adapters.
from hub.errors import (
    AdapterError,
    AuthError,
    NotFound,
    RateLimited,
    ReconnectRequired,
    ServerError,
    Unsupported,
    ValidationFailed,
)
from hub.models import (
    ChannelPublication,
    Event,
    Platform,
    PlatformRegistration,
    RegistrationPage,
)

__all__ = [
    "AdapterError",
    "AuthError",
    "NotFound",
    "RateLimited",
    "ReconnectRequired",
    "RetryBudget",
    "ServerError",
    "Unsupported",
    "ValidationFailed",
]


def parse_retry_after(value: str | None, default: float | None = None) -> float | None:
    """Retry-After as seconds: delta-seconds or an HTTP date."""
    if not value:
        return default
    value = value.strip()
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return default
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max((when - datetime.now(UTC)).total_seconds(), 0.0)


def parse_timestamp(value: Any) -> datetime | None:
    """An ISO-8601 timestamp from a platform ("...Z", offset, or naive = UTC); None when
    absent or unreadable."""
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


# --------------------------------------------------------------------------- credentials


class TokenStore(Protocol):
    """Where an adapter's OAuth tokens live (the vault implements it)."""

    def load(self, platform: str) -> dict[str, Any] | None: ...

    def save(
        self, platform: str, credentials: dict[str, Any], expires_at: datetime | None
    ) -> None: ...


# --------------------------------------------------------------------------- the port


class ChannelAdapter(ABC):
    """One platform channel. Implementations live in integrations/<platform>.py."""

    platform: ClassVar[Platform]

    def __init__(
        self, base_url: str, *, client: httpx.AsyncClient | None = None, timeout: float = 30.0
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._client = client or httpx.AsyncClient(timeout=timeout)
        self._owns_client = client is None

    async def aclose(self) -> None:
        if self._owns_client:
            await self._client.aclose()

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # -- publishing ------------------------------------------------------------
    @abstractmethod
    async def find_existing(
        self, event: Event, exclude: Collection[str] = ()
    ) -> ChannelPublication | None:
        """The platform event already made for this hub event, if a lost reply hid it.

        The publisher calls this before creating, so a retry after a crash between the
        platform's create and our commit does not make a second event. Candidates match
        on title and start; ``exclude`` lists platform ids that belong to other hub
        events (two hub events may share a title and a time), which are skipped.
        """

    @abstractmethod
    async def publish_event(self, event: Event, capacity: int) -> ChannelPublication:
        """Create a new event on the platform with ``capacity`` seats and make it public.

        It looks nothing up: the publisher calls ``find_existing`` first and, on a match,
        ``adopt_existing`` instead.
        """

    async def adopt_existing(
        self, event: Event, existing: ChannelPublication, capacity: int
    ) -> ChannelPublication:
        """Finish a publication that a lost reply interrupted (found by find_existing).

        The default pushes the current fields; adapters whose publishing has several steps
        (a draft to publish, ticket classes to add) override it to complete the missing ones.
        """
        return await self.update_event(event, existing.platform_event_id, capacity)

    @abstractmethod
    async def update_event(
        self, event: Event, platform_event_id: str, capacity: int
    ) -> ChannelPublication:
        """Push title, description, times, venue and capacity to an existing event."""

    @abstractmethod
    async def update_capacity(self, platform_event_id: str, capacity: int) -> None: ...

    @abstractmethod
    async def close_sales(self, platform_event_id: str) -> None: ...

    # -- registrations ---------------------------------------------------------
    @abstractmethod
    async def list_registrations(
        self, platform_event_id: str, cursor: str | None = None, page_size: int = 100
    ) -> RegistrationPage:
        """One page of registrations after ``cursor`` (opaque, adapter-defined).

        ``cursor=None`` starts from the beginning. The returned ``next_cursor`` is what
        the caller stores; passing it later returns only what is new or changed since.
        """

    async def get_registration(
        self, platform_event_id: str, platform_registration_id: str
    ) -> PlatformRegistration:
        raise Unsupported(self.platform.value, "reading one registration is not supported")

    async def approve_registration(
        self, platform_event_id: str, platform_registration_id: str
    ) -> None:
        raise Unsupported(self.platform.value, "approving registrations is not supported")

    async def decline_registration(
        self, platform_event_id: str, platform_registration_id: str
    ) -> None:
        raise Unsupported(self.platform.value, "declining registrations is not supported")

    async def anonymize_registration(
        self, platform_event_id: str, platform_registration_id: str
    ) -> None:
        raise Unsupported(self.platform.value, "anonymizing registrations is not supported")

    # -- shared HTTP -----------------------------------------------------------
    # A 429 means the platform refused the request, so replaying it is always safe: the
    # shared sender waits out Retry-After and sends that one request again (a 429 costs
    # nothing to replay, while redoing a multi-step call would spend quota again). Under
    # ``with_retries`` those waits come out of the call's one budget: a wait that does not
    # fit in what is left returns the 429 at once (the caller sees RateLimited with its
    # Retry-After). Called directly, at most ``rate_limit_retries`` waits of
    # ``rate_limit_max_wait`` seconds in all.
    rate_limit_retries: int = 6
    rate_limit_max_wait: float = 60.0

    async def _send(
        self, method: str, url: str, *, headers: Mapping[str, str] | None = None, **kwargs: Any
    ) -> httpx.Response:
        """One request; transport failures become ServerError (retryable), and a 429 is
        sent again after its Retry-After, within the retry layer's budget when one is in
        charge (see "retries" below)."""
        import asyncio

        waited = 0.0
        attempt = 0
        while True:
            try:
                response = await self._client.request(method, url, headers=headers, **kwargs)
            except httpx.TimeoutException as exc:
                raise ServerError(self.platform.value, f"timeout on {method} {_path(url)}") from exc
            except httpx.TransportError as exc:
                raise ServerError(
                    self.platform.value, f"cannot reach {_path(url)}: {type(exc).__name__}"
                ) from exc
            if response.status_code != 429:
                return response
            delay = (
                parse_retry_after(response.headers.get("Retry-After"), RATE_LIMIT_DEFAULT_WAIT)
                or 0.5
            )
            deadline = _BUDGET_DEADLINE.get()
            if deadline is not None:  # the retry layer's budget decides
                if time.monotonic() + delay > deadline:
                    return response
            elif attempt >= self.rate_limit_retries or waited + delay > self.rate_limit_max_wait:
                return response
            attempt += 1
            waited += delay
            await asyncio.sleep(delay)

    def _raise_for_status(
        self,
        response: httpx.Response,
        *,
        field: str | None = None,
        message: str | None = None,
        code: str | None = None,
    ) -> None:
        """Map a non-2xx reply to the typed error (platform-specific parsing is the caller's)."""
        status = response.status_code
        if status < 400:
            return
        body = _safe_json(response)
        text = message or _short(response)
        platform = self.platform.value
        if status == 429:
            raise RateLimited(
                platform,
                f"rate limited: {text}",
                retry_after=parse_retry_after(response.headers.get("Retry-After")),
                body=body,
            )
        if status in (401, 403):
            raise AuthError(
                platform, f"not authorized ({status}): {text}", status=status, body=body
            )
        if status == 404:
            raise NotFound(platform, f"not found: {text}", status=status, body=body)
        if status >= 500:
            raise ServerError(platform, f"server error {status}: {text}", status=status, body=body)
        raise ValidationFailed(
            platform,
            f"refused ({status}): {text}",
            field=field,
            code=code,
            status=status,
            body=body,
        )


def _path(url: str) -> str:
    """A URL without its query string (which may carry a token)."""
    return url.split("?", 1)[0]


def _safe_json(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def _short(response: httpx.Response, limit: int = 300) -> str:
    return response.text[:limit].replace("\n", " ")


# --------------------------------------------------------------------------- retries
#
# One retry layer. A platform call made through ``with_retries`` spends at most its
# ``RetryBudget``: ``attempts`` tries of the whole call (on 5xx, timeouts, connection
# errors) and ``seconds`` of wall time in all. The shared sender's 429 waits (one request
# replayed after its Retry-After) come out of the same seconds, so nothing multiplies:
# whatever fails, the call ends within its budget. A Retry-After longer than what is
# left ends the call at once; the caller reads ``retry_after`` on the raised error as
# the earliest time of its next try.

# The monotonic deadline of the budget of the call running in this task (None: no layer).
_BUDGET_DEADLINE: contextvars.ContextVar[float | None] = contextvars.ContextVar(
    "hub_retry_budget_deadline", default=None
)


@dataclass(frozen=True)
class RetryBudget:
    """What one platform call may spend: ``attempts`` tries within ``seconds`` (waits
    included), exponential back-off from ``base_delay`` capped at ``max_delay``."""

    attempts: int = 5
    seconds: float = 300.0
    base_delay: float = 0.5
    max_delay: float = 30.0

    def __post_init__(self) -> None:
        if self.attempts < 1 or self.seconds <= 0:
            raise ValueError("a retry budget needs at least one attempt and some time")

    def backoff(self, attempt: int) -> float:
        """The jittered wait after failed try number ``attempt`` (1-based)."""
        import random

        delay = min(self.base_delay * 2 ** (attempt - 1), self.max_delay)
        return delay * (0.5 + random.random() / 2)


# The wait assumed after a 429 that names no Retry-After (sender and layer alike).
RATE_LIMIT_DEFAULT_WAIT = 1.0


def budget_deadline() -> float | None:
    """The monotonic time the running call's budget ends (None outside ``with_retries``)."""
    return _BUDGET_DEADLINE.get()


async def with_retries(
    call: Callable[[], Awaitable[Any]],
    *,
    budget: RetryBudget | None = None,
    attempts: int = 5,
    base_delay: float = 0.5,
    max_delay: float = 30.0,
    sleep: Callable[[float], Awaitable[None]] | None = None,
    on_retry: Callable[[int, AdapterError, float], None] | None = None,
) -> Any:
    """Run ``call`` with exponential back-off on retryable errors, within ``budget``
    (built from ``attempts``/``base_delay``/``max_delay`` when not given), honouring
    Retry-After. The last error is raised when the budget is spent; a RateLimited whose
    Retry-After does not fit in what is left is raised at once."""
    import asyncio

    budget = budget or RetryBudget(attempts=attempts, base_delay=base_delay, max_delay=max_delay)
    sleep = sleep or asyncio.sleep
    deadline = time.monotonic() + budget.seconds
    outer = _BUDGET_DEADLINE.get()
    if outer is not None:  # a call inside another call's budget ends with it at the latest
        deadline = min(deadline, outer)
    token = _BUDGET_DEADLINE.set(deadline)
    try:
        for attempt in range(1, budget.attempts + 1):
            try:
                return await call()
            except AdapterError as exc:
                if not exc.retryable or attempt == budget.attempts:
                    raise
                delay = budget.backoff(attempt)
                retry_after = getattr(exc, "retry_after", None)
                if retry_after is None and isinstance(exc, RateLimited):
                    # the wait the sender assumed (and found too long) when no
                    # Retry-After was sent: the layer does not retry sooner than that
                    retry_after = RATE_LIMIT_DEFAULT_WAIT
                if retry_after is not None:
                    delay = max(delay, retry_after)
                if time.monotonic() + delay > deadline:
                    raise
                if on_retry:
                    on_retry(attempt, exc, delay)
                await sleep(delay)
        raise AssertionError("unreachable")
    finally:
        _BUDGET_DEADLINE.reset(token)


def monotonic_ms() -> float:
    return time.monotonic() * 1000.0


AdapterFactory = Callable[..., ChannelAdapter]
