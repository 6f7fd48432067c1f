"""Graph API errors as the Cloud API returns them (CONTRACTS.md Part 2 §4).

Envelope: ``{"error": {"message": "(#<code>) <title>", "type": "OAuthException", "code",
"error_subcode"?, "error_data": {"messaging_product": "whatsapp", "details"},
"fbtrace_id"}}``.

HTTP status per code: CONTRACTS.md marks it uncertain (Uncertainties #4). The statuses
below follow the "HTTP Status" column of Meta's error-code table as copied by third-party
docs (0/190 -> 401; 10, 200-299, 368 -> 403; 132001 -> 404; 131000 -> 500; the rest 400,
130429 included, where CONTRACTS.md's table says 429). Meta recommends handling errors by
``code``, which the adapter does, so either status works with it. One table, easy to change.
"""

from __future__ import annotations

import base64
import os
from typing import Any

# code -> (HTTP status, title as Meta words it)
CODES: dict[int, tuple[int, str]] = {
    0: (401, "AuthException"),
    4: (400, "Application request limit reached"),
    10: (403, "Application does not have permission for this action"),
    100: (400, "Invalid parameter"),
    190: (401, "Invalid OAuth access token - Cannot parse access token"),
    200: (403, "Permissions error"),
    368: (403, "Temporarily blocked for policies violations"),
    80007: (400, "Rate limit issues"),
    130429: (400, "Rate limit hit"),
    131000: (500, "Something went wrong"),
    131008: (400, "Required parameter is missing"),
    131009: (400, "Parameter value is not valid"),
    131026: (400, "Message undeliverable"),
    131047: (400, "Re-engagement message"),
    131048: (400, "Spam rate limit hit"),
    131051: (400, "Unsupported message type"),
    131056: (400, "(Business Account, Consumer Account) pair rate limit hit"),
    132000: (400, "Number of parameters does not match the expected number of params"),
    132001: (404, "Template name does not exist in the translation"),
    132015: (400, "Template is Paused"),
    132016: (400, "Template is Disabled"),
}

DETAILS = {
    131026: "Message Undeliverable.",
    131047: "More than 24 hours have passed since the recipient last replied to the sender number.",
    130429: "Cloud API message throughput has been reached.",
    131000: "Something went wrong.",
}


def fbtrace_id() -> str:
    return base64.b64encode(os.urandom(8)).decode().rstrip("=").replace("+", "A")[:11]


class GraphError(Exception):
    """Raised inside the emulator; rendered as the Graph error envelope."""

    def __init__(
        self, code: int, details: str | None = None, *, subcode: int | None = None,
        message: str | None = None, status: int | None = None,
    ) -> None:  # fmt: skip
        http_status, title = CODES.get(code, (400, "Unknown error"))
        super().__init__(f"(#{code}) {title}")
        self.code = code
        self.status = status or http_status
        self.message = message or f"(#{code}) {title}"
        self.details = details or DETAILS.get(code, title)
        self.subcode = subcode

    def body(self) -> dict[str, Any]:
        error: dict[str, Any] = {
            "message": self.message,
            "type": "OAuthException",
            "code": self.code,
            "error_data": {"messaging_product": "whatsapp", "details": self.details},
            "fbtrace_id": fbtrace_id(),
        }
        if self.subcode is not None:
            error["error_subcode"] = self.subcode
        return {"error": error}


def status_error(code: int, details: str | None = None) -> dict[str, Any]:
    """The ``errors[]`` item of a ``failed`` status webhook (pywa's test data shape:
    code, title, message, error_data.details, href)."""
    _, title = CODES.get(code, (400, "Unknown error"))
    return {
        "code": code,
        "title": title,
        "message": title,
        "error_data": {"details": details or DETAILS.get(code, title)},
        "href": "https://developers.facebook.com/docs/whatsapp/cloud-api/support/error-codes/",
    }
