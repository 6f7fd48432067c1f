"""WhatsApp Cloud API adapter (Meta Graph): template messages, free-form text inside the
24-hour customer-service window, and the parsing of status webhooks.

Contract: CONTRACTS.md Part 2 §4. ``POST {base}/{version}/{phone_number_id}/messages``
with ``Authorization: Bearer <token>``; the reply's ``messages[0].id`` (a ``wamid``) is
the message id, which status webhooks name later (sent, delivered, read, failed). The
reply is not proof of delivery.

Credentials: the vault entry ``whatsapp`` (``{"token", "phone_number_id"}``); without
it :meth:`WhatsAppCloud.from_vault` refuses (fail closed). The token never appears in an
error or a log line.

Errors are decided by the Graph ``code`` (Meta's advice; the HTTP status per code is
uncertain, CONTRACTS.md Uncertainties #4): throughput / rate limits and Meta's transient
failures are retryable, template, parameter, window and recipient errors are not.

No idempotency: the Cloud API has no idempotency key. The effect key travels as
``biz_opaque_callback_data`` and comes back on every status webhook, so a sender can
tell that an earlier attempt did go out (``integrations.notify_whatsapp`` does).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from pydantic import BaseModel

from hub.errors import (
    AdapterError,
    AuthError,
    RateLimited,
    ReconnectRequired,
    ServerError,
    ValidationFailed,
)

PLATFORM = "whatsapp"
GRAPH_VERSION = "v21.0"  # pinned (pywa supports v17.0-v25.0)
WINDOW = timedelta(hours=24)
E164 = re.compile(r"^\+[1-9]\d{7,14}$")
OPAQUE_MAX = 512

# Graph codes: retryable ones with a default wait (the Graph API sends no Retry-After).
RATE_LIMIT_WAIT = {4: 60.0, 80007: 60.0, 130429: 1.0, 131048: 60.0, 131056: 6.0}
TRANSIENT = {1, 2, 131000, 131016, 133004}  # unknown / service unavailable / server down
AUTH = {0, 190, 10, *range(200, 300)}
WINDOW_CLOSED = 131047


class WhatsAppRefused(ValidationFailed):
    """A request Meta will refuse again: template, parameters, recipient, policy.
    ``graph_code`` is Meta's code (e.g. 132001), ``code`` its string form."""

    def __init__(self, message: str, *, graph_code: int, status: int | None, body: Any) -> None:
        super().__init__(PLATFORM, message, code=str(graph_code), status=status, body=body)
        self.graph_code = graph_code


class WindowClosed(WhatsAppRefused):
    """Free-form text outside the 24-hour window (131047): only a template may go."""


def _digits(to_e164: str) -> str:
    if not E164.match(to_e164 or ""):
        raise ValidationFailed(PLATFORM, "recipient must be an E.164 number (+905...)",
                               field="to")  # fmt: skip
    return to_e164[1:]


def error_from_response(status: int, body: Any) -> AdapterError:
    """The hub's typed error for a Graph error reply (``{"error": {...}}``)."""
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        if status >= 500 or status == 429:
            return ServerError(PLATFORM, f"HTTP {status} without a Graph error", status=status)
        return ValidationFailed(PLATFORM, f"HTTP {status} without a Graph error", status=status)
    try:
        code = int(error.get("code"))
    except (TypeError, ValueError):
        code = -1
    details = (error.get("error_data") or {}).get("details") if isinstance(
        error.get("error_data"), dict) else None  # fmt: skip
    text = str(error.get("message") or "")[:200]
    head = text if text.startswith(f"(#{code})") else f"(#{code}) {text}"
    message = head + (f": {str(details)[:200]}" if details else "")
    if code in RATE_LIMIT_WAIT:
        return RateLimited(PLATFORM, message, retry_after=RATE_LIMIT_WAIT[code],
                           status=status, body=body)  # fmt: skip
    if code in AUTH or status == 401:
        return AuthError(PLATFORM, message, status=status, body=body)
    if code in TRANSIENT or status >= 500:
        return ServerError(PLATFORM, message, status=status, body=body)
    if code == WINDOW_CLOSED:
        return WindowClosed(message, graph_code=code, status=status, body=body)
    return WhatsAppRefused(message, graph_code=code, status=status, body=body)


class StatusUpdate(BaseModel):
    """One ``statuses[]`` item of a webhook."""

    wamid: str
    status: str  # sent | delivered | read | failed (and others Meta may add)
    timestamp: datetime | None
    recipient_id: str | None = None
    effect_key: str | None = None  # biz_opaque_callback_data
    error_code: int | None = None
    error_title: str | None = None
    phone_number_id: str | None = None


def parse_status_webhook(payload: dict[str, Any]) -> list[StatusUpdate]:
    """Every status in a (verified) webhook body; unknown shapes are skipped."""
    found: list[StatusUpdate] = []
    for entry in payload.get("entry") or []:
        for change in (entry.get("changes") or []) if isinstance(entry, dict) else []:
            value = change.get("value") if isinstance(change, dict) else None
            if not isinstance(value, dict):
                continue
            phone = (value.get("metadata") or {}).get("phone_number_id")
            for item in value.get("statuses") or []:
                if not isinstance(item, dict) or not item.get("id") or not item.get("status"):
                    continue
                errors = [e for e in item.get("errors") or [] if isinstance(e, dict)]
                try:
                    when = datetime.fromtimestamp(int(item.get("timestamp")), UTC)
                except (TypeError, ValueError, OverflowError):
                    when = None
                code = errors[0].get("code") if errors else None
                found.append(
                    StatusUpdate(
                        wamid=str(item["id"]),
                        status=str(item["status"]),
                        timestamp=when,
                        recipient_id=item.get("recipient_id"),
                        effect_key=item.get("biz_opaque_callback_data"),
                        error_code=int(code)
                        if isinstance(code, int | str) and str(code).isdigit()
                        else None,
                        error_title=errors[0].get("title") if errors else None,
                        phone_number_id=phone,
                    )
                )
    return found


class WhatsAppCloud:
    """Sends messages from one business phone number."""

    def __init__(
        self,
        base_url: str,
        *,
        token: str,
        phone_number_id: str,
        version: str = GRAPH_VERSION,
        client: httpx.AsyncClient | None = None,
        timeout: float = 20.0,
    ) -> None:
        if not token or not phone_number_id:
            raise ReconnectRequired(PLATFORM, "token and phone_number_id are required")
        self.base_url = base_url.rstrip("/")
        self.phone_number_id = str(phone_number_id)
        self.version = version
        self._token = token
        self._client = client or httpx.AsyncClient(timeout=timeout)
        self._owns_client = client is None

    @classmethod
    def from_vault(
        cls, settings: Any, vault: Any, client: httpx.AsyncClient | None = None
    ) -> WhatsAppCloud:
        """From the vault entry ``whatsapp``; refuses when it is missing or unreadable."""
        try:
            creds = vault.get(PLATFORM)
        except Exception as exc:  # an unreadable vault: fail closed, name no secret
            raise ReconnectRequired(
                PLATFORM, f"credentials unreadable ({type(exc).__name__})"
            ) from None
        if not creds or not creds.get("token") or not creds.get("phone_number_id"):
            raise ReconnectRequired(
                PLATFORM,
                "no credentials stored; run `hub integrations set whatsapp token phone_number_id`",
            )
        return cls(settings.base_url(PLATFORM), token=creds["token"],
                   phone_number_id=creds["phone_number_id"], client=client)  # fmt: skip

    async def aclose(self) -> None:
        if self._owns_client:
            await self._client.aclose()

    async def __aenter__(self) -> WhatsAppCloud:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # ------------------------------------------------------------------ sending
    async def send_template(
        self,
        to_e164: str,
        template: str,
        language: str,
        params: list[str],
        *,
        effect_key: str,
        header_params: list[str] | None = None,
    ) -> str:
        """Send an approved template; returns the ``wamid``. ``params`` fill the body's
        ``{{1}}..{{n}}``, ``header_params`` the header's."""
        components: list[dict[str, Any]] = []
        if header_params:
            components.append({"type": "header", "parameters": _texts(header_params)})
        if params:
            components.append({"type": "body", "parameters": _texts(params)})
        body: dict[str, Any] = {
            "messaging_product": "whatsapp",
            "recipient_type": "individual",
            "to": _digits(to_e164),
            "type": "template",
            "template": {"name": template, "language": {"code": language}},
        }
        if components:
            body["template"]["components"] = components
        return await self._send(body, effect_key)

    async def send_text(
        self,
        to_e164: str,
        text: str,
        *,
        effect_key: str,
        last_inbound_at: datetime | None,
        now: datetime | None = None,
    ) -> str:
        """Free-form text, only inside the window: ``last_inbound_at`` (the person's last
        message to us) must be under 24 hours old, else :class:`WindowClosed` before any
        request. Meta checks again and may report 131047 late, as a failed status."""
        now = now or datetime.now(UTC)
        if last_inbound_at is None or now - last_inbound_at >= WINDOW:
            raise WindowClosed(
                "(131047) the 24-hour window is closed; send a template",
                graph_code=WINDOW_CLOSED, status=None, body=None,
            )  # fmt: skip
        body = {
            "messaging_product": "whatsapp",
            "recipient_type": "individual",
            "to": _digits(to_e164),
            "type": "text",
            "text": {"body": text, "preview_url": False},
        }
        return await self._send(body, effect_key)

    async def _send(self, body: dict[str, Any], effect_key: str) -> str:
        if not effect_key or len(effect_key) > OPAQUE_MAX:
            raise ValidationFailed(PLATFORM, "effect_key must be 1-512 characters",
                                   field="biz_opaque_callback_data")  # fmt: skip
        body["biz_opaque_callback_data"] = effect_key
        url = f"{self.base_url}/{self.version}/{self.phone_number_id}/messages"
        try:
            response = await self._client.post(
                url, json=body, headers={"Authorization": f"Bearer {self._token}"}
            )
        except httpx.TimeoutException:
            raise ServerError(PLATFORM, "request timed out") from None
        except httpx.HTTPError as exc:
            raise ServerError(PLATFORM, f"connection failed ({type(exc).__name__})") from None
        try:
            data = response.json()
        except ValueError:
            data = None
        if response.status_code >= 400:
            raise error_from_response(response.status_code, data)
        try:
            return str(data["messages"][0]["id"])
        except (TypeError, KeyError, IndexError):
            raise ServerError(PLATFORM, "reply without messages[0].id",
                              status=response.status_code) from None  # fmt: skip


def _texts(values: list[str]) -> list[dict[str, str]]:
    return [{"type": "text", "text": str(v)} for v in values]
