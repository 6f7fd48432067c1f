"""The Netgsm emulator's HTTP surface (``create_app``).

API (REST v2, Basic auth ``usercode:password``, JSON; every request body validated
against ``contracts/netgsm-openapi.json``; replies with the codes of
``contracts/netgsm-enums.ts``, HTTP 200 for ``00`` and 406 otherwise):
``POST /sms/rest/v2/send``, ``POST /sms/rest/v2/report``, ``POST /sms/rest/v2/cancel``,
``GET /sms/rest/v2/msgheader``, ``GET /sms/rest/v2/inbox``.

Rate limits: documented ones as documented: more than 20 send tasks to one number in
a minute -> ``85``; more than 10 report queries a minute -> ``80``. The general send
limit (code ``80``) has no published figure: the emulator's assumption is
``send_rate_limit`` requests per ``send_rate_window`` seconds per account (default 50
per second), settable at start and through ``/_sandbox/faults``.

Test controls (no auth): ``GET /_sandbox/health``; ``GET|POST /_sandbox/config`` (the
common faults); ``POST /_sandbox/faults`` ``{"fail_next": N, "status": 503,
"latency_ms": 0, "lose_response_next": N, "rate_limit": {"limit", "window_seconds"},
"per_number_limit": 20}`` (a lost response is executed, then answered 500 without a
Netgsm code: the sender cannot know whether it was sent); ``POST /_sandbox/reset``
(faults off, jobs, forced statuses and report attempts forgotten, the account back to
its defaults; the report target kept); ``GET /_sandbox/messages[?number=]`` (every job,
oldest first), ``GET /_sandbox/messages/<jobid>``; ``GET|POST /_sandbox/report-url``
``{"url", "delay_seconds", "attempts", "backoff_seconds"}``; ``POST
/_sandbox/force-status`` ``{"status": 12, "errorCode": 1, "number"?: "5...", "count"?:
1}`` (``count`` null: until reset) for the next reports; ``POST
/_sandbox/messages/<jobid>/status`` ``{"status", "errorCode", "number"?}`` (changes a
sent message and pushes a new report); ``GET /_sandbox/reports[?wait=seconds]`` (every
push attempt); ``POST /_sandbox/account`` ``{"msgheaders", "iys", "iys_brand",
"password"}``; ``POST /_sandbox/inbox`` ``{"messages": [...]}`` (incoming SMS to list).
"""

from __future__ import annotations

import base64
import hmac
import json
import os
import re
import threading
import time
from collections import deque
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from flask import Flask, Response, jsonify, request

from integrations.sandbox.common import CONTROL_PREFIX, RateLimiter, SandboxControls, SandboxStore
from integrations.sandbox.credentials import RECEIVER_SECRETS
from integrations.sandbox.netgsm.reports import ReportPusher, ReportTarget
from integrations.sandbox.netgsm.state import DATE_FORMAT, ForcedStatus, NetgsmSandbox
from integrations.sandbox.netgsm.wire import (
    CANCEL_CODES,
    IYS_FILTERS,
    REPORT_CODES,
    SEND_CODES,
    reply,
    schema_errors,
    system_error,
)

REPORT_URL_ENV = "HUB_NETGSM_SANDBOX_REPORT_URL"
API_PREFIX = "/sms/rest/v2/"
MAX_SEGMENTS = 7  # the emulator's "standard maximum" (undocumented figure): code 20 above
SCHEDULE_RE = re.compile(r"^\d{12}$")  # ddMMyyyyHHmm (startdate / stopdate of a send)
_DEFAULT: Any = object()
# Netgsm prints and reads dates in Turkey's time (an assumption: the contract names no zone).
ISTANBUL = ZoneInfo("Europe/Istanbul")


def _now() -> datetime:
    return datetime.now(ISTANBUL)


def default_report_url() -> str:
    """``<public_base_url>/webhooks/netgsm?token=<token>``: the receiver's endpoint and the
    token it checks (``HUB_NETGSM_REPORT_TOKEN``, else the sandbox one)."""
    try:
        from hub.settings import load_settings

        settings = load_settings()
        base, token = settings.public_base_url, settings.secret("netgsm_report_token")
    except Exception:
        base, token = "http://127.0.0.1:5000", None
    token = token or RECEIVER_SECRETS["netgsm_report_token"]
    return f"{base.rstrip('/')}/webhooks/netgsm?token={token}"


@dataclass
class NetgsmFaults:
    lose_response_next: int = 0
    per_number_limit: int = 20


class _PerNumber:
    """More than ``limit`` tasks to one number within 60 s (code 85)."""

    def __init__(self) -> None:
        self._hits: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def allow(self, numbers: list[str], limit: int) -> bool:
        now = time.monotonic()
        with self._lock:
            for number in set(numbers):
                hits = self._hits.setdefault(number, deque())
                while hits and hits[0] <= now - 60:
                    hits.popleft()
                if len(hits) + numbers.count(number) > limit:
                    return False
            for number in numbers:
                self._hits[number].append(now)
            return True

    def clear(self) -> None:
        with self._lock:
            self._hits.clear()


def _parse_report_date(value: str) -> datetime | None:
    """RFC 3339 (the document's ``date-time``), ``dd.MM.yyyy HH:mm:ss`` (its example, the
    python SDK) or ``ddMMyyyyHHmmss`` (the JS SDK); naive times are Turkey's."""
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=ISTANBUL)
    except ValueError:
        pass
    for fmt in (DATE_FORMAT, "%d%m%Y%H%M%S", "%d%m%Y%H%M"):
        try:
            return datetime.strptime(value, fmt).replace(tzinfo=ISTANBUL)
        except ValueError:
            continue
    return None


def create_app(
    state_path: str | None = None,
    *,
    report_url: str | None = _DEFAULT,
    report_delay_seconds: float = 0.5,
    report_attempts: int = 5,
    report_backoff_seconds: float = 0.5,
    send_rate_limit: int = 50,
    send_rate_window: float = 1.0,
    report_query_limit: int = 10,
) -> Flask:
    """The emulator. ``report_url``: where delivery reports go (default: the URL last set
    through ``POST /_sandbox/report-url``, else ``$HUB_NETGSM_SANDBOX_REPORT_URL``, else
    the receiver's endpoint); None or "" sends none (the report query still answers)."""
    app = Flask("sandbox-netgsm")
    store = SandboxStore(state_path)
    sandbox = NetgsmSandbox(store)
    controls = SandboxControls()
    faults = NetgsmFaults()
    send_limiter = RateLimiter(send_rate_limit, send_rate_window)
    limits = {"send": send_limiter}
    report_limiter = RateLimiter(report_query_limit, 60.0)
    per_number = _PerNumber()
    inbox: list[dict[str, Any]] = []

    saved = store.get("sandbox.config", "report") or {}
    if report_url is _DEFAULT:
        url = saved.get("url", os.environ.get(REPORT_URL_ENV) or default_report_url())
    else:
        url = report_url or None
    target = ReportTarget(
        url=url,
        delay_seconds=report_delay_seconds,
        attempts=report_attempts,
        backoff_seconds=report_backoff_seconds,
    )
    pusher = ReportPusher(target, lambda jobid: sandbox.resolve(jobid, _now()))
    sandbox.pusher = pusher  # type: ignore[attr-defined]
    app.extensions["sandbox"] = sandbox

    def _save_target() -> None:
        doc = target.as_dict()
        with store.atomic():
            if store.get("sandbox.config", "report") is None:
                store.insert("sandbox.config", "report", doc)
            else:
                store.update("sandbox.config", "report", doc)

    # ------------------------------------------------------------------ faults, auth
    @app.before_request
    def _api_faults() -> Response | None:
        if not request.path.startswith(API_PREFIX):
            return None
        if controls.latency_ms:
            time.sleep(controls.latency_ms / 1000.0)
        status = controls.take_failure()
        if status is not None:
            return system_error(status)
        limiter = controls.rate_limiter
        if limiter is not None and limiter.check("account") is not None:
            return reply("80", SEND_CODES, jobid=None)
        if not _authenticated():
            return reply("30", SEND_CODES, jobid=None)
        return None

    def _authenticated() -> bool:
        scheme, _, credential = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            user, sep, password = (
                base64.b64decode(credential, validate=True).decode().partition(":")
            )
        except (ValueError, UnicodeDecodeError):
            return False
        account = sandbox.account()
        return bool(sep) and all(
            hmac.compare_digest(a.encode(), b.encode())
            for a, b in ((user, account["usercode"]), (password, account["password"]))
        )

    def _body(schema: str, codes: dict[str, str]) -> tuple[dict[str, Any] | None, Response | None]:
        try:
            body = json.loads(request.get_data() or b"null")
        except ValueError:
            return None, reply("70", codes, jobid=None)
        if not isinstance(body, dict) or schema_errors(schema, body):
            return None, reply("70", codes, jobid=None)
        return body, None

    # ------------------------------------------------------------------ API
    @app.post("/sms/rest/v2/send")
    def send() -> Response:
        body, error = _body("RestSendRequest", SEND_CODES)
        if error is not None:
            return error
        assert body is not None
        messages = body["messages"]
        if not messages or any(
            not isinstance(m.get("no"), str) or not isinstance(m.get("msg"), str) for m in messages
        ):
            return reply("70", SEND_CODES, jobid=None)
        encoding = body.get("encoding")
        if encoding not in (None, "") and str(encoding).upper() != "TR":
            return reply("70", SEND_CODES, jobid=None)
        iys = body.get("iysfilter")
        if iys not in (None, "") and iys not in IYS_FILTERS:
            return reply("70", SEND_CODES, jobid=None)
        for name in ("startdate", "stopdate"):
            if body.get(name) not in (None, "") and not SCHEDULE_RE.match(str(body[name])):
                return reply("70", SEND_CODES, jobid=None)
        account = sandbox.account()
        if body["msgheader"] not in account["msgheaders"]:
            return reply("40", SEND_CODES, jobid=None)
        if iys in ("11", "12"):
            if not account["iys"]:
                return reply("50", SEND_CODES, jobid=None)
            if not account["iys_brand"]:
                return reply("51", SEND_CODES, jobid=None)
        from integrations.sandbox.netgsm import charset

        for m in messages:
            if not m["msg"].strip():
                return reply("20", SEND_CODES, jobid=None)
            enc, _, groups = charset.encode(m["msg"], str(encoding or "").upper() == "TR")
            if charset.segment_count(groups, enc) > MAX_SEGMENTS:
                return reply("20", SEND_CODES, jobid=None)
        if limits["send"].check("account") is not None:
            return reply("80", SEND_CODES, jobid=None)
        if not per_number.allow([m["no"] for m in messages], faults.per_number_limit):
            return reply("85", SEND_CODES, jobid=None)
        job = sandbox.create_job(body, _now())
        pusher.schedule(job["jobid"])
        with controls.lock:
            lost = faults.lose_response_next > 0
            if lost:
                faults.lose_response_next -= 1
        if lost:
            return Response("Internal Server Error", status=500, mimetype="text/plain")
        return reply("00", SEND_CODES, jobid=job["jobid"])

    @app.post("/sms/rest/v2/report")
    def report() -> Response:
        body, error = _body("ReportRequest", REPORT_CODES)
        if error is not None:
            return error
        assert body is not None
        if report_limiter.check("account") is not None:
            return reply("80", REPORT_CODES)
        start = _parse_report_date(str(body["startdate"]))
        stop = _parse_report_date(str(body["stopdate"]))
        if start is None or stop is None or stop < start:
            return reply("70", REPORT_CODES)
        jobids = [str(j) for j in body.get("jobids") or []]
        rows = sandbox.report_rows(jobids, start, stop)
        size = int(body.get("pagesize") or 100)
        page = int(body.get("pagenumber") or 0)
        rows = rows[page * size : (page + 1) * size]
        if not rows:
            return reply("60", REPORT_CODES)
        return reply("00", REPORT_CODES, jobs=rows)

    @app.post("/sms/rest/v2/cancel")
    def cancel() -> Response:
        body, error = _body("CancelRequest", CANCEL_CODES)
        if error is not None:
            return error
        assert body is not None
        jobid = str(body["jobid"])
        if not sandbox.cancel(jobid):
            return reply("60", CANCEL_CODES, jobid=jobid)
        return reply("00", CANCEL_CODES, jobid=jobid)

    @app.get("/sms/rest/v2/msgheader")
    def msgheader() -> Response:
        return reply("00", REPORT_CODES, msgheaders=list(sandbox.account()["msgheaders"]))

    @app.get("/sms/rest/v2/inbox")
    def inbox_list() -> Response:
        if not inbox:
            return reply("40", {"40": "You have no messages to display."})
        listed = list(inbox)
        inbox.clear()  # without dates, listed messages are not listed again (enums.ts)
        return reply("00", SEND_CODES, messages=listed)

    # ------------------------------------------------------------------ controls
    @app.get(f"{CONTROL_PREFIX}/health")
    def _health() -> Response:
        return jsonify(ok=True)

    @app.route(f"{CONTROL_PREFIX}/config", methods=["GET", "POST"])
    def _config() -> Response:
        if request.method == "POST":
            controls.apply(request.get_json(force=True) or {})
        return jsonify(controls.as_dict())

    @app.post(f"{CONTROL_PREFIX}/faults")
    def _faults() -> Response:
        data = request.get_json(force=True) or {}
        config: dict[str, Any] = {}
        if "fail_next" in data:
            config["fail_next"] = {"count": data["fail_next"], "status": data.get("status", 503)}
        for name in ("latency_ms", "rate_limit"):
            if name in data:
                config[name] = data[name]
        controls.apply(config)
        with controls.lock:
            if "lose_response_next" in data:
                faults.lose_response_next = int(data["lose_response_next"])
            if "per_number_limit" in data:
                faults.per_number_limit = int(data["per_number_limit"])
            if "send_rate_limit" in data:
                limit = data["send_rate_limit"] or {}
                limits["send"] = RateLimiter(
                    int(limit.get("limit", send_rate_limit)),
                    float(limit.get("window_seconds", send_rate_window)),
                )
        return jsonify(
            {
                **controls.as_dict(),
                "lose_response_next": faults.lose_response_next,
                "per_number_limit": faults.per_number_limit,
                "send_rate_limit": {
                    "limit": limits["send"].limit,
                    "window_seconds": limits["send"].window,
                },
            }
        )

    @app.post(f"{CONTROL_PREFIX}/reset")
    def _reset() -> Response:
        controls.apply({"latency_ms": 0, "fail_next": None, "rate_limit": None, "webhooks": None})
        faults.lose_response_next = 0
        faults.per_number_limit = 20
        limits["send"] = RateLimiter(send_rate_limit, send_rate_window)
        report_limiter._hits.clear()
        per_number.clear()
        pusher.clear()
        sandbox.reset()
        inbox.clear()
        return jsonify(ok=True)

    @app.get(f"{CONTROL_PREFIX}/messages")
    def _messages() -> Response:
        number = request.args.get("number")
        jobs = sandbox.jobs()
        if number:
            jobs = [j for j in jobs if any(m["number"] == number for m in j["messages"])]
        return jsonify(jobs=jobs)

    @app.get(f"{CONTROL_PREFIX}/messages/<jobid>")
    def _message(jobid: str) -> Response:
        job = sandbox.job(jobid)
        return jsonify(job) if job else (jsonify(error="no such job"), 404)  # type: ignore[return-value]

    @app.post(f"{CONTROL_PREFIX}/messages/<jobid>/status")
    def _message_status(jobid: str) -> Response:
        data = request.get_json(force=True) or {}
        try:
            entries = sandbox.set_status(
                jobid,
                int(data["status"]),
                int(data.get("errorCode", 0)),
                data.get("number"),
                _now(),
            )
        except KeyError:
            return jsonify(error="no such job"), 404  # type: ignore[return-value]
        if entries:
            pusher.push_now(entries)
        return jsonify(jobs=entries)

    @app.route(f"{CONTROL_PREFIX}/report-url", methods=["GET", "POST"])
    def _report_url() -> Response:
        if request.method == "POST":
            data = request.get_json(force=True) or {}
            if "url" in data:
                target.url = data["url"] or None
            for name in ("delay_seconds", "backoff_seconds"):
                if name in data:
                    setattr(target, name, float(data[name]))
            if "attempts" in data:
                target.attempts = int(data["attempts"])
            _save_target()
        return jsonify(target.as_dict())

    @app.post(f"{CONTROL_PREFIX}/force-status")
    def _force_status() -> Response:
        data = request.get_json(force=True) or {}
        rule = ForcedStatus(
            status=int(data["status"]),
            error_code=int(data.get("errorCode", 0)),
            number=data.get("number"),
            remaining=data.get("count", 1),
        )
        with sandbox.lock:
            sandbox.forced.append(rule)
            rules = [r.as_dict() for r in sandbox.forced]
        return jsonify(forced=rules)

    @app.get(f"{CONTROL_PREFIX}/reports")
    def _reports() -> Response:
        wait = float(request.args.get("wait", 0) or 0)
        if wait:
            pusher.wait_idle(wait)
        return jsonify(attempts=pusher.attempts())

    @app.post(f"{CONTROL_PREFIX}/account")
    def _account() -> Response:
        data = request.get_json(force=True) or {}
        allowed = {k: data[k] for k in ("msgheaders", "iys", "iys_brand", "password") if k in data}
        account = sandbox.set_account(allowed)
        return jsonify({k: v for k, v in account.items() if k != "password"})

    @app.post(f"{CONTROL_PREFIX}/inbox")
    def _inbox() -> Response:
        data = request.get_json(force=True) or {}
        inbox.extend(data.get("messages") or [])
        return jsonify(count=len(inbox))

    return app
