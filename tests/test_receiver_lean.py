"""The front's lean path for genuine Stripe deliveries (webhook_receiver.lean) against
the Flask endpoint it stands in for: the same answer bytes, the same stored row, the
same access log line; everything it does not answer (refusals, other paths, a query,
a cut body) is answered by Flask and kept as before. In process: the front's RSGI
handler is driven with a scope and a body, the database is the real one."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import pytest
from pydantic import SecretStr
from sqlalchemy.engine import Engine
from test_receiver_endpoints import LogCapture
from test_receiver_support import SECRETS, rows, stripe_event, stripe_headers

from hub.settings import Settings
from webhook_receiver.app import create_app
from webhook_receiver.front import BufferingFront
from webhook_receiver.lean import LeanStripe
from webhook_receiver.logs import ACCESS_LOGGER

STRIPE = SECRETS["stripe_webhook_secret"]


class Scope:
    proto = "http"
    server = "127.0.0.1:5000"
    client = "127.0.0.1:40000"
    http_version = "1.1"
    scheme = "http"

    def __init__(self, method: str, path: str, query: str, headers: dict[str, str]) -> None:
        self.method, self.path, self.query_string, self.headers = method, path, query, headers


class Proto:
    """The RSGI protocol object: the body in one chunk, the answer recorded."""

    def __init__(self, body: bytes) -> None:
        self.body = body
        self.answer: tuple[int, list[tuple[str, str]], bytes] | None = None

    def __aiter__(self):
        return self._chunks()

    async def _chunks(self):
        if self.body:
            yield self.body

    def response_bytes(self, status: int, headers: list, data: bytes) -> None:
        self.answer = (status, headers, data)


def _request(
    body: bytes,
    *,
    path: str = "/webhooks/stripe",
    query: str = "",
    signature: str | None = None,
    length: int | None = None,
) -> tuple[Scope, Proto]:
    headers = {"host": "127.0.0.1:5000", "user-agent": "Stripe/1.0",
               **{k.lower(): v for k, v in stripe_headers(body, STRIPE).items()},
               "content-length": str(len(body) if length is None else length)}  # fmt: skip
    if signature is not None:
        headers["stripe-signature"] = signature
    return Scope("POST", path, query, headers), Proto(body)


@pytest.fixture()
def front(hub_settings: Settings, clean_db: Engine):
    settings = hub_settings.model_copy(
        update={name: SecretStr(value) for name, value in SECRETS.items()}
    )
    app = create_app(settings)
    return BufferingFront(lambda: app, threads=2)


@pytest.fixture()
def access_log():
    handler = LogCapture()
    logger = logging.getLogger(ACCESS_LOGGER)
    logger.addHandler(handler)
    yield handler
    logger.removeHandler(handler)


def _through_front(front: BufferingFront, scope: Scope, proto: Proto) -> tuple:
    asyncio.run(front.__rsgi__(scope, proto))
    assert proto.answer is not None
    return proto.answer


def _through_flask(front: BufferingFront, scope: Scope, proto: Proto) -> tuple:
    """The same request straight to the Flask app (what the front did before)."""

    async def call() -> tuple:
        body, declared, error = await front._read(scope, proto)
        return front._call(front._environ(scope, body, declared, error))

    return asyncio.run(call())


def _comparable(row: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in row.items() if k not in ("id", "received_at", "dedupe_key", "body")}
    out["headers"] = {k: v for k, v in row["headers"].items()
                      if k not in ("Stripe-Signature", "Content-Length")}  # fmt: skip
    return out


def _fields(line: str) -> dict[str, Any]:
    data = json.loads(line)
    return {k: v for k, v in data.items() if k not in ("timestamp", "duration_ms", "raw_id")}


def test_a_genuine_delivery_is_answered_and_stored_exactly_as_by_flask(front, clean_db, access_log):
    lean_body = json.dumps(stripe_event(), ensure_ascii=False).encode()
    flask_body = json.dumps(stripe_event(), ensure_ascii=False).encode()
    assert len(lean_body) == len(flask_body)

    lean = _through_front(front, *_request(lean_body))
    flask = _through_flask(front, *_request(flask_body))

    assert lean[0] == flask[0] == 200
    assert lean[1] == flask[1]  # same headers, same order (ids of the same width)
    lean_answer, flask_answer = json.loads(lean[2]), json.loads(flask[2])
    assert lean_answer["status"] == flask_answer["status"] == "accepted"
    assert lean[2].endswith(b"\n") and flask[2].endswith(b"\n")
    stored = rows(clean_db, "webhook_events", "stripe")
    assert [r["id"] for r in stored] == [lean_answer["id"], flask_answer["id"]]
    assert _comparable(stored[0]) == _comparable(stored[1])
    assert bytes(stored[0]["body"]) == lean_body
    assert stored[0]["dedupe_key"] == json.loads(lean_body)["id"]
    assert stored[0]["headers"][":auth"] == "stripe-signature"
    assert stored[0]["status"] == "received" and stored[0]["verified"] is True
    assert [_fields(line) for line in access_log.lines] == [
        {"level": "info", "logger": ACCESS_LOGGER, "method": "POST",
         "path": "/webhooks/stripe", "status": 200, "source": "stripe",
         "outcome": "accepted"}] * 2  # fmt: skip

    again = _through_front(front, *_request(lean_body))
    assert json.loads(again[2]) == {"status": "duplicate", "id": lean_answer["id"]}
    assert len(rows(clean_db, "webhook_events", "stripe")) == 2


@pytest.mark.parametrize(
    ("request_kw", "status", "flag"),
    [
        ({"signature": "t=1,v1=00"}, 401, "bad_signature"),
        ({"signature": None, "length": 10_000}, 400, "bad_framing"),  # body shorter
        ({"query": "x=1"}, 200, None),  # a query: Flask's (kept as it was)
        ({"path": "/webhooks/stripe/"}, 405, "method_not_allowed"),  # as before
    ],
)
def test_what_the_lean_path_does_not_answer_is_kept_by_flask(
    front, clean_db, request_kw, status, flag
):
    body = json.dumps(stripe_event()).encode()
    answer = _through_front(front, *_request(body, **request_kw))
    assert answer[0] == status, answer
    stored = rows(clean_db, "webhook_events")
    assert len(stored) == 1  # kept once, never twice
    assert stored[0]["flag"] == flag


def test_the_lean_path_declines_refusals_without_storing(front, clean_db):
    lean = LeanStripe(front._wsgi())
    body = json.dumps(stripe_event()).encode()
    scope, _ = _request(body, signature="t=1,v1=00")
    environ = front._environ(scope, None, len(body), None)
    assert asyncio.run(lean.handle(environ, body)) is None
    assert rows(clean_db, "webhook_events") == []


def test_a_secret_that_cannot_be_read_is_left_to_the_flask_path(front, clean_db, monkeypatch):
    """Reading the secret fails (a vault error): the lean path answers nothing and
    stores nothing, so the Flask path fails closed as it always did."""
    settings = front._wsgi().config["HUB_SETTINGS"]

    def broken(self, name: str) -> str | None:
        raise OSError("vault unreadable")

    monkeypatch.setattr(type(settings), "secret", broken)
    body = json.dumps(stripe_event()).encode()
    scope, _ = _request(body)
    environ = front._environ(scope, None, len(body), None)
    assert asyncio.run(LeanStripe(front._wsgi()).handle(environ, body)) is None
    assert rows(clean_db, "webhook_events") == []
