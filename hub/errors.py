"""The typed errors of the platform port: what the core needs to know about a failed call.

The adapters (integrations/) raise these; the core (ingest, publisher) decides on them
(retry or not, wait how long) without importing any adapter. Messages never contain
credentials.
"""

from __future__ import annotations

from typing import Any, ClassVar


class AdapterError(Exception):
    """Base of every adapter error. Messages never contain credentials."""

    retryable: ClassVar[bool] = False

    def __init__(
        self, platform: str, message: str, *, status: int | None = None, body: Any = None
    ) -> None:
        super().__init__(f"{platform}: {message}")
        self.platform = platform
        self.status = status
        self.body = body


class AuthError(AdapterError):
    """401/403: credentials missing, wrong, expired or revoked."""


class ReconnectRequired(AuthError):
    """The refresh token was refused: a person must run `hub integrations connect` again."""


class RateLimited(AdapterError):
    retryable = True

    def __init__(
        self,
        platform: str,
        message: str,
        *,
        retry_after: float | None = None,
        status: int | None = 429,
        body: Any = None,
    ) -> None:
        super().__init__(platform, message, status=status, body=body)
        self.retry_after = retry_after


class NotFound(AdapterError):
    pass


class ValidationFailed(AdapterError):
    """The platform refused the input; ``field`` names the offending field when it says."""

    def __init__(
        self,
        platform: str,
        message: str,
        *,
        field: str | None = None,
        code: str | None = None,
        status: int | None = 400,
        body: Any = None,
    ) -> None:
        super().__init__(platform, message, status=status, body=body)
        self.field = field
        self.code = code


class ServerError(AdapterError):
    """5xx, timeouts and connection failures: try again later."""

    retryable = True


class Unsupported(AdapterError):
    """The platform has no such operation (e.g. Meetup cannot approve an RSVP)."""
