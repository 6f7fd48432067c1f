"""Netgsm's wire format as published: the OpenAPI document and the result codes of
``contracts/netgsm-openapi.json`` and ``contracts/netgsm-enums.ts`` (CONTRACTS.md
"3. Netgsm SMS"). Request bodies are validated against the document's own schemas."""

from __future__ import annotations

import copy
import json
from functools import cache, lru_cache
from typing import Any

from flask import Response
from openapi_schema_validator import OAS30Validator

from hub.settings import PROJECT_ROOT

OPENAPI_PATH = PROJECT_ROOT / "contracts" / "netgsm-openapi.json"

# /sms/rest/v2/send codes (SendSmsErrorCode in netgsm-enums.ts).
SEND_CODES = {
    "00": "queued",
    "20": "Could not be sent due to a problem in the message text or exceeded the standard "
    "maximum message character count",
    "30": "Invalid username, password or no API access. If IP restriction exists, request "
    "may have been made from an unauthorized IP",
    "40": "Message header (sender name) is not defined in the system",
    "50": "IYS controlled submissions cannot be made with your subscriber account",
    "51": "No IYS Brand information found for your subscription",
    "70": "Invalid query. One of the parameters is incorrect or a required field is missing",
    "80": "Sending rate limit exceeded",
    "85": "Duplicate sending rate limit exceeded. Cannot create more than 20 tasks for the "
    "same number within 1 minute",
    "100": "System error",
    "101": "System error",
}
# /sms/rest/v2/report codes (ReportErrorCode).
REPORT_CODES = {
    "00": "success",
    "30": SEND_CODES["30"],
    "60": "Indicates that there are no records to be listed according to your search criteria.",
    "70": SEND_CODES["70"],
    "80": "Limit exceeded, can be queried 10 times per minute.",
    "100": "System error",
}
# /sms/rest/v2/cancel codes (CancelErrorCode).
CANCEL_CODES = {
    "00": "success",
    "30": SEND_CODES["30"],
    "60": "Specified JobID not found",
    "70": SEND_CODES["70"],
    "100": "System error",
}
# SmsStatus (delivery statuses) in netgsm-enums.ts.
SMS_STATUS = {
    0: "PENDING",
    1: "SENT",
    2: "EXPIRED",
    3: "INVALID_NUMBER",
    4: "NOT_SENT",
    11: "REJECTED",
    12: "DELIVERY_ERROR",
    13: "DUPLICATE",
    14: "INSUFFICIENT_BALANCE",
    15: "BLACKLISTED",
    16: "IYS_REJECTED",
    17: "IYS_ERROR",
}
STATUS_ALL = 100
# OperatorCode in netgsm-enums.ts, by the first digits of a Turkish mobile number.
OPERATORS = {"50": 20, "53": 30, "54": 10, "55": 20, "56": 30, "51": 41}
IYS_FILTERS = {"0": "informational", "11": "commercial-individual", "12": "commercial-merchant"}


@lru_cache(maxsize=1)
def openapi_document() -> dict[str, Any]:
    return json.loads(OPENAPI_PATH.read_text())


def _inline(node: Any, components: dict[str, Any]) -> Any:
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/components/schemas/"):
            return _inline(components[ref.rsplit("/", 1)[1]], components)
        return {k: _inline(v, components) for k, v in node.items()}
    if isinstance(node, list):
        return [_inline(v, components) for v in node]
    return node


@cache
def _validator(schema_name: str) -> OAS30Validator:
    components = openapi_document()["components"]["schemas"]
    return OAS30Validator(_inline(copy.deepcopy(components[schema_name]), components))


def schema_errors(schema_name: str, body: Any) -> list[str]:
    """The document's complaints about ``body`` under ``components.schemas[schema_name]``
    (empty when valid), each as ``field: message``."""
    out = []
    for error in _validator(schema_name).iter_errors(body):
        where = ".".join(str(p) for p in error.absolute_path) or "body"
        out.append(f"{where}: {error.message}")
    return out


def reply(code: str, codes: dict[str, str], *, ok_status: int = 200, **fields: Any) -> Response:
    """Netgsm's reply: 200 for ``00``, 406 with the code otherwise (the document's only
    error status; whether an auth failure is 406 or 401 is an open question in
    CONTRACTS.md, the document says 406)."""
    body = {"code": code, "description": codes.get(code, "Undefined error"), **fields}
    status = ok_status if code == "00" else 406
    return Response(json.dumps(body), status=status, mimetype="application/json")


def system_error(status: int) -> Response:
    """An injected fault: Netgsm's system error code at the given HTTP status."""
    body = {"code": "100", "description": SEND_CODES["100"], "jobid": None}
    return Response(json.dumps(body), status=status, mimetype="application/json")
