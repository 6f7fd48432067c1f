"""One JSON object per log line, with secrets kept out.

The receiver logs one line per request on ``webhook_receiver.access`` (timestamp, method,
path, status, source, outcome, duration_ms, raw_id): never a body, a header or a query
string. Paths can carry a secret (SendGrid's URL token), so they pass through
:func:`safe_path` first. :class:`GunicornJsonLogger` gives gunicorn the same treatment
for its access and error logs.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import traceback
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from gunicorn.glogging import Logger as _GunicornLogger

ACCESS_LOGGER = "webhook_receiver.access"
MASK = "***"
# Path segments that are secrets by construction: /inbound/email/sendgrid/<token>
_TOKEN_PATH = re.compile(r"^(/inbound/email/sendgrid/)[^/]+", re.IGNORECASE)
_MAX_PATH = 200
_MAX_TRACEBACK = 8000


def utc_timestamp() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def safe_path(path: str, secrets: Iterable[str | None] = ()) -> str:
    """The request path fit for a log: URL tokens masked, any known secret replaced."""
    path = _TOKEN_PATH.sub(rf"\g<1>{MASK}", path or "")
    for secret in secrets:
        if secret and len(secret) >= 4 and secret in path:
            path = path.replace(secret, MASK)
    return path[:_MAX_PATH]


# Credentials that can appear in exception text (URLs, headers, DSNs) whatever we know.
_SECRET_PATTERNS = (
    (re.compile(r"(?i)\b(bearer|basic)\s+[\w.~+/=-]+"), r"\1 ***"),
    (re.compile(r"\b(?:sk|rk|pk|whsec)_\w+"), "***"),
    (re.compile(r"(?i)([?&;](?:token|api_key|apikey|key|access_token|password|secret|"
                r"signature|hub\.verify_token)(?:\[\])?=)[^&\s'\"]+"), r"\1***"),
    (re.compile(r"(?i)(password=|://[^:/\s]+:)[^@\s]+@"), r"\1***@"),
)  # fmt: skip


def mask_values(text: str, secrets: Iterable[str | None]) -> str:
    """``text`` with every known secret value replaced by ``***`` (cheap: per header)."""
    for secret in secrets:
        if secret and len(secret) >= 4 and secret in text:
            text = text.replace(secret, MASK)
    return text


def mask_secrets(text: str, secrets: Iterable[str | None] = ()) -> str:
    """``text`` with every known secret value and anything shaped like a credential
    (bearer tokens, ``whsec_``/``sk_`` keys, ``token=`` in a URL, a DSN's password)
    replaced by ``***``."""
    text = mask_values(text, secrets)
    for pattern, replacement in _SECRET_PATTERNS:
        text = pattern.sub(replacement, text)
    return text


class JsonFormatter(logging.Formatter):
    """``{"timestamp", "level", "logger", ...fields}``; fields come from ``extra={"fields":}``."""

    def formatException(self, ei) -> str:
        exc = ei[1]
        if exc is not None and type(exc).__module__.startswith("psycopg"):
            # psycopg messages carry DETAIL lines that quote the row's values.
            frames = "".join(traceback.format_tb(ei[2]))
            return (
                f"Traceback (most recent call last):\n{frames}{type(exc).__name__}: "
                f"(message withheld: it can quote row values; sqlstate "
                f"{getattr(exc, 'sqlstate', None)})"
            )
        return super().formatException(ei)

    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "timestamp": datetime.fromtimestamp(record.created, UTC)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "level": record.levelname.lower(),
            "logger": record.name,
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            data.update(fields)
        else:
            data["message"] = record.getMessage()
        if record.exc_info and record.exc_info[0] is not None:
            data["error_type"] = record.exc_info[0].__name__
            # The traceback (file, line, code) with credentials masked. Not the message
            # of a database error: it can quote SQL parameters, i.e. request bodies.
            data["traceback"] = mask_secrets(
                self.formatException(record.exc_info), getattr(record, "secrets", ())
            )[-_MAX_TRACEBACK:]
        return json.dumps(data, default=str, ensure_ascii=False)


def access_logger() -> logging.Logger:
    """The per-request logger, with a JSON stderr handler installed once."""
    logger = logging.getLogger(ACCESS_LOGGER)
    if not any(getattr(h, "_hub_json", False) for h in logger.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(JsonFormatter())
        handler._hub_json = True  # type: ignore[attr-defined]
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False
    return logger


class GunicornJsonLogger(_GunicornLogger):
    """gunicorn's logger with JSON access lines (path masked, no query) and JSON errors."""

    def setup(self, cfg: Any) -> None:
        super().setup(cfg)
        for handler in self.error_log.handlers:
            handler.setFormatter(JsonFormatter())

    def access(self, resp: Any, req: Any, environ: dict, request_time: Any) -> None:
        if not self.cfg.accesslog:
            return
        try:
            status = int(str(resp.status).split()[0])
        except (ValueError, IndexError):
            status = None
        line = {
            "timestamp": utc_timestamp(),
            "logger": "gunicorn.access",
            "remote": environ.get("REMOTE_ADDR"),
            "method": environ.get("REQUEST_METHOD"),
            "path": safe_path(environ.get("PATH_INFO", "")),
            "status": status,
            "bytes": getattr(resp, "sent", None),
            "duration_ms": round(request_time.total_seconds() * 1000, 2),
            "user_agent": (environ.get("HTTP_USER_AGENT") or "")[:200],
        }
        try:
            self.access_log.info(json.dumps(line, ensure_ascii=False))
        except Exception:
            self.error("access log failed")
