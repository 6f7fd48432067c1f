"""Netgsm SMS over REST v2 (CONTRACTS.md "3. Netgsm SMS", ``contracts/netgsm-openapi.json``,
``contracts/netgsm-enums.ts``).

``NetgsmSms.send`` computes the encoding, segments and cost first
(:mod:`integrations.sms_encoding`): a text with Turkish letters goes with
``encoding: "TR"`` (Turkish single shift, 155/149 septets) instead of UCS-2 at 70; a
text longer than :data:`~integrations.sms_encoding.MAX_SEGMENTS` is refused before any
call. ``commercial`` is the IYS flag: ``iysfilter`` ``"11"`` (commercial, to an
individual) or ``"0"`` (informational).

One call per ``send``: the adapter never retries a send itself, because Netgsm has no
idempotency key and a retry after an unanswered request could deliver the message twice.
The caller (the outbox row of one effect key) decides; :class:`SendOutcomeUnknown` tells
it that the request may have been carried out (reconcile through :meth:`NetgsmSms.report`
before sending again).

Errors (HTTP 406 with a ``code``) map to the hub's typed errors: ``30`` -> AuthError,
``20/40/50/51/70`` -> ValidationFailed (retrying cannot help), ``80`` and ``85`` ->
RateLimited (``85``: 20 tasks to one number a minute, so wait a minute), ``100/101`` and
other system codes, connection failures and 502/503 -> ServerError (not sent, retry).

Credentials: the vault entry ``netgsm`` ``{usercode, password, msgheader}``; missing or
incomplete is a :class:`ConfigurationError` (fail closed). Neither the password nor the
Authorization header ever appears in a message or a log line.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx

from hub.errors import AdapterError, AuthError, RateLimited, ServerError, ValidationFailed
from integrations.sms_encoding import MAX_SEGMENTS, Encoding, SmsPlan, plan

log = logging.getLogger(__name__)

PLATFORM = "netgsm"
VAULT_KEY = "netgsm"
SEND_PATH = "/sms/rest/v2/send"
REPORT_PATH = "/sms/rest/v2/report"
CANCEL_PATH = "/sms/rest/v2/cancel"
MSGHEADER_PATH = "/sms/rest/v2/msgheader"
IYS_INFORMATIONAL = "0"
IYS_COMMERCIAL_INDIVIDUAL = "11"
IYS_COMMERCIAL_MERCHANT = "12"
# Netgsm reads and prints dates in Turkey's time (an assumption: the contract names no zone).
ISTANBUL = ZoneInfo("Europe/Istanbul")

# Delivery statuses (SmsStatus in netgsm-enums.ts): name and whether it is final.
DELIVERY_STATUS: dict[int, tuple[str, bool]] = {
    0: ("pending", False),
    1: ("delivered", True),
    2: ("expired", True),
    3: ("invalid_number", True),
    4: ("not_sent", True),
    11: ("rejected", True),
    12: ("delivery_error", True),
    13: ("duplicate", True),
    14: ("insufficient_balance", True),
    15: ("blacklisted", True),
    16: ("iys_rejected", True),
    17: ("iys_error", True),
}
_PERMANENT_CODES = {"20", "40", "50", "51", "60", "70"}
_SYSTEM_CODES = {"100", "101", "110", "5000"}


class ConfigurationError(RuntimeError):
    """Netgsm cannot be used: no usable credentials (the message never holds them)."""


class SendOutcomeUnknown(ServerError):
    """The request may have reached Netgsm and been carried out (no answer, a 500 or 504
    without a Netgsm code): sending again could deliver the message twice."""


@dataclass(frozen=True)
class SendResult:
    job_id: str
    segments: int
    encoding: str  # GSM7 | TR | UCS2
    cost_units: int
    iysfilter: str
    number: str  # the 10-digit number sent to
    characters: int

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class ReportJob:
    """One entry of a report (the query's ``jobs[]`` or a pushed report)."""

    job_id: str
    number: str
    status: int
    error_code: int
    operator: int | None
    msglen: int | None
    delivered_at: str | None

    @property
    def status_name(self) -> str:
        return DELIVERY_STATUS.get(self.status, (f"unknown_{self.status}", True))[0]

    @property
    def final(self) -> bool:
        return DELIVERY_STATUS.get(self.status, ("", True))[1]


def national_number(to_e164: str) -> str:
    """``+905321234567`` -> ``5321234567`` (the 10 digits the contract takes); other
    countries are refused (the REST v2 send takes Turkish numbers only)."""
    digits = to_e164.strip()
    if not digits.startswith("+90") or not digits[3:].isdigit() or len(digits) != 13:
        raise ValidationFailed(PLATFORM, "not a Turkish E.164 number (+90 and 10 digits)",
                               field="no", status=None)  # fmt: skip
    return digits[3:]


def plan_message(text: str) -> SmsPlan:
    """Encoding, segments and cost of ``text``; ValidationFailed above MAX_SEGMENTS or
    for an empty text."""
    if not text.strip():
        raise ValidationFailed(PLATFORM, "empty message text", field="msg", status=None)
    found = plan(text)
    if found.segments > MAX_SEGMENTS:
        raise ValidationFailed(
            PLATFORM,
            f"text needs {found.segments} segments ({found.encoding}); at most {MAX_SEGMENTS}",
            field="msg",
            status=None,
        )
    return found


def parse_report(body: bytes | str | dict | list) -> list[ReportJob]:
    """Report entries from a report reply or a pushed report (``{"jobs": [...]}``, a list,
    or one object), for whoever feeds statuses back into the messages."""
    data = json.loads(body) if isinstance(body, bytes | str) else body
    if isinstance(data, dict) and isinstance(data.get("jobs"), list):
        data = data["jobs"]
    items = data if isinstance(data, list) else [data]
    out = []
    for item in items:
        if not isinstance(item, dict) or item.get("jobid") in (None, ""):
            continue
        out.append(
            ReportJob(
                job_id=str(item["jobid"]),
                number=str(item.get("number") or ""),
                status=_int(item.get("status"), 0),
                error_code=_int(item.get("errorCode"), 0),
                operator=_int(item.get("operator"), None),
                msglen=_int(item.get("msglen"), None),
                delivered_at=item.get("deliveredDate") or None,
            )
        )
    return out


def _int(value: Any, default: Any) -> Any:
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


def error_for(code: str, http_status: int | None, description: str = "") -> AdapterError:
    """The hub's typed error of a Netgsm result code."""
    text = f"code {code}" + (f" ({description[:120]})" if description else "")
    if code == "30":
        return AuthError(PLATFORM, f"credentials refused: {text}", status=http_status)
    if code == "80":
        return RateLimited(PLATFORM, f"rate limit: {text}", retry_after=2.0, status=http_status)
    if code == "85":
        return RateLimited(
            PLATFORM, f"per-number limit: {text}", retry_after=60.0, status=http_status
        )
    if code in _PERMANENT_CODES:
        return ValidationFailed(PLATFORM, f"refused: {text}", code=code, status=http_status)
    if code in _SYSTEM_CODES:
        return ServerError(PLATFORM, f"system error: {text}", status=http_status)
    return ServerError(PLATFORM, f"unexpected reply: {text}", status=http_status)


class NetgsmSms:
    """Netgsm's SMS API for one account (async, httpx)."""

    def __init__(
        self,
        base_url: str,
        *,
        usercode: str,
        password: str,
        msgheader: str,
        client: httpx.AsyncClient | None = None,
        timeout: float = 10.0,
        appname: str | None = None,
    ) -> None:
        if not usercode or not password or not msgheader:
            raise ConfigurationError("Netgsm: usercode, password and msgheader are required")
        self.base_url = base_url.rstrip("/")
        self.msgheader = msgheader
        self.appname = appname
        self._auth = httpx.BasicAuth(usercode, password)
        self._client = client
        self._timeout = timeout

    def __repr__(self) -> str:  # never the password
        return f"NetgsmSms({self.base_url!r}, msgheader={self.msgheader!r})"

    @classmethod
    def from_vault(
        cls, settings: Any, vault: Any, *, client: httpx.AsyncClient | None = None
    ) -> NetgsmSms:
        """From the vault entry ``netgsm``; ConfigurationError when it is missing,
        unreadable or incomplete (the reason, never the values)."""
        try:
            creds = vault.get(VAULT_KEY)
        except Exception as exc:
            raise ConfigurationError(
                f"Netgsm: the vault entry cannot be read ({type(exc).__name__})"
            ) from None
        if not creds:
            raise ConfigurationError(
                "Netgsm: no credentials in the vault (hub integrations set netgsm "
                "usercode password msgheader)"
            )
        missing = [k for k in ("usercode", "password", "msgheader") if not creds.get(k)]
        if missing:
            raise ConfigurationError(f"Netgsm: the vault entry lacks {', '.join(missing)}")
        return cls(
            settings.base_url("netgsm"),
            usercode=str(creds["usercode"]),
            password=str(creds["password"]),
            msgheader=str(creds["msgheader"]),
            client=client,
            appname=creds.get("appname"),
        )

    # ------------------------------------------------------------------ HTTP
    async def _request(self, method: str, path: str, body: Any = None) -> httpx.Response:
        kwargs: dict[str, Any] = {"auth": self._auth, "timeout": self._timeout}
        if body is not None:
            kwargs["json"] = body
        url = f"{self.base_url}{path}"
        if self._client is not None:
            return await self._client.request(method, url, **kwargs)
        async with httpx.AsyncClient() as client:
            return await client.request(method, url, **kwargs)

    @staticmethod
    def _decode(response: httpx.Response) -> dict[str, Any] | None:
        try:
            data = response.json()
        except ValueError:
            return None
        return data if isinstance(data, dict) and isinstance(data.get("code"), str) else None

    # ------------------------------------------------------------------ send
    async def send(
        self,
        to_e164: str,
        text: str,
        *,
        commercial: bool,
        effect_key: str,
        merchant: bool = False,
    ) -> SendResult:
        """Send one message; one HTTP call, never retried here (see the module doc).

        ``effect_key`` names the effect in logs (the hub's outbox keeps it unique)."""
        number = national_number(to_e164)
        found = plan_message(text)
        iys = (
            (IYS_COMMERCIAL_MERCHANT if merchant else IYS_COMMERCIAL_INDIVIDUAL)
            if commercial
            else IYS_INFORMATIONAL
        )
        body: dict[str, Any] = {
            "msgheader": self.msgheader,
            "messages": [{"msg": text, "no": number}],
            "iysfilter": iys,
        }
        if found.encoding is not Encoding.GSM7:
            # TR: Turkish single shift; UCS-2 texts go with "TR" too (the contract names
            # no other value; Netgsm then sends what the Turkish table cannot carry as
            # Unicode, and segments/cost above are UCS-2's).
            body["encoding"] = "TR"
        if self.appname:
            body["appname"] = self.appname
        try:
            response = await self._request("POST", SEND_PATH, body)
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            raise ServerError(PLATFORM, f"not connected: {type(exc).__name__}") from None
        except (httpx.WriteError, httpx.WriteTimeout) as exc:
            # The request did not get out whole: Netgsm cannot have acted on it.
            raise ServerError(PLATFORM, f"request not sent: {type(exc).__name__}") from None
        except httpx.HTTPError as exc:
            raise SendOutcomeUnknown(
                PLATFORM, f"no answer to the send ({type(exc).__name__})"
            ) from None
        data = self._decode(response)
        if response.status_code == 200 and data and data["code"] == "00" and data.get("jobid"):
            log.info(
                "netgsm send %s: job %s, %s segment(s) %s",
                effect_key,
                data["jobid"],
                found.segments,
                found.encoding,
            )
            return SendResult(
                job_id=str(data["jobid"]),
                segments=found.segments,
                encoding=str(found.encoding),
                cost_units=found.cost_units,
                iysfilter=iys,
                number=number,
                characters=found.characters,
            )
        if data is not None and data["code"] != "00":
            raise error_for(data["code"], response.status_code, str(data.get("description", "")))
        if response.status_code in (502, 503):
            raise ServerError(PLATFORM, f"HTTP {response.status_code}", status=response.status_code)
        raise SendOutcomeUnknown(
            PLATFORM,
            f"HTTP {response.status_code} without a Netgsm result code",
            status=response.status_code,
        )

    # ------------------------------------------------------------------ queries
    async def report(
        self,
        *,
        job_ids: list[str] | None = None,
        start: datetime,
        stop: datetime,
        page: int = 0,
        page_size: int = 100,
    ) -> list[ReportJob]:
        """Delivery report entries (REST v2 report); code 60 (no records) is an empty list."""
        body: dict[str, Any] = {
            "startdate": _report_date(start),
            "stopdate": _report_date(stop),
            "pagenumber": page,
            "pagesize": page_size,
        }
        if job_ids:
            body["jobids"] = list(job_ids)
        try:
            response = await self._request("POST", REPORT_PATH, body)
        except httpx.HTTPError as exc:
            raise ServerError(PLATFORM, f"report: {type(exc).__name__}") from None
        data = self._decode(response)
        if data is None:
            raise ServerError(PLATFORM, f"report: HTTP {response.status_code}")
        if data["code"] == "60":
            return []
        if data["code"] != "00":
            raise error_for(data["code"], response.status_code, str(data.get("description", "")))
        return parse_report(data)

    async def find_sent(self, number: str, msglen: int, since: datetime) -> ReportJob | None:
        """A job to ``number`` of ``msglen`` characters accepted since ``since`` (a minute
        of clock slack), for reconciling a send whose outcome is unknown."""
        now = datetime.now(ISTANBUL)
        for job in await self.report(
            start=since - timedelta(minutes=1), stop=now + timedelta(minutes=1)
        ):
            if job.number == number and (job.msglen is None or job.msglen == msglen):
                return job
        return None

    async def cancel(self, job_id: str) -> bool:
        response = await self._request("POST", CANCEL_PATH, {"jobid": job_id})
        data = self._decode(response)
        if data is None:
            raise ServerError(PLATFORM, f"cancel: HTTP {response.status_code}")
        if data["code"] == "60":
            return False
        if data["code"] != "00":
            raise error_for(data["code"], response.status_code)
        return True

    async def msgheaders(self) -> list[str]:
        response = await self._request("GET", MSGHEADER_PATH)
        data = self._decode(response)
        if data is None or data["code"] != "00":
            code = data["code"] if data else str(response.status_code)
            raise error_for(code, response.status_code)
        return [str(h) for h in data.get("msgheaders") or []]


def _report_date(when: datetime) -> str:
    """RFC 3339, as the document's ``format: date-time`` says (its example and the python
    SDK use ``dd.MM.yyyy HH:mm:ss``: see CONTRACTS.md's uncertainties). Naive: Turkey's."""
    when = when.replace(tzinfo=ISTANBUL) if when.tzinfo is None else when.astimezone(ISTANBUL)
    return when.isoformat(timespec="seconds")
