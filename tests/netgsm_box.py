"""Test helpers for Netgsm: the emulator on a free loopback port (wired into the hub's
settings like sandbox mode: ``HUB_NETGSM_BASE_URL``), a small HTTP server that collects
delivery reports, and a checker of request/response pairs against Netgsm's own OpenAPI
document (openapi-core), independent of both the emulator and the adapter."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from flask import Flask, request
from openapi_core import Config, OpenAPI
from openapi_core.contrib.werkzeug import WerkzeugOpenAPIRequest, WerkzeugOpenAPIResponse
from werkzeug.test import EnvironBuilder
from werkzeug.wrappers import Response as WerkzeugResponse

from hub.settings import PROJECT_ROOT, Settings, environment, load_settings
from integrations.sandbox.common import ServerHandle, serve_in_thread
from integrations.sandbox.netgsm import create_app

CREDS = {"usercode": "8508400000", "password": "sandbox-netgsm-Pa55", "msgheader": "HUBSANDBOX"}


def contract() -> OpenAPI:
    """The published document as openapi-core reads it. Its ``ErrorResponse`` uses
    ``type: null`` (not OpenAPI 3.0), so the document-level check is off; every schema is
    still applied to bodies as written."""
    spec = json.loads((PROJECT_ROOT / "contracts" / "netgsm-openapi.json").read_text())
    spec["servers"] = [{"url": "/"}]
    return OpenAPI.from_dict(spec, config=Config(spec_validator_cls=None))


def exchange_errors(api: OpenAPI, req: httpx.Request, resp: httpx.Response) -> list[str]:
    """The document's complaints about one exchange (empty when both sides conform)."""
    builder = EnvironBuilder(
        method=req.method,
        path=req.url.path,
        query_string=req.url.query.decode(),
        headers=dict(req.headers),
        data=req.content,
        base_url=f"{req.url.scheme}://{req.url.netloc.decode()}",
    )
    wreq = WerkzeugOpenAPIRequest(builder.get_request())
    errors = []
    try:
        api.validate_request(wreq)
    except Exception as exc:
        errors.append(f"request: {exc}")
    wresp = WerkzeugResponse(resp.content, status=resp.status_code,
                             headers=dict(resp.headers))  # fmt: skip
    try:
        api.validate_response(wreq, WerkzeugOpenAPIResponse(wresp))
    except Exception as exc:
        errors.append(f"response: {exc}")
    return errors


@dataclass
class Collector:
    """An HTTP server recording every POST (path, query, body); answers ``fail_first``
    requests with 503 first (to see the emulator retry)."""

    server: ServerHandle
    posts: list[dict[str, Any]] = field(default_factory=list)
    fail_first: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        return self.server.url

    def wait_for(self, count: int, timeout: float = 10.0) -> list[dict[str, Any]]:
        import time

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                ok = [p for p in self.posts if p["status"] == 200]
                if len(ok) >= count:
                    return ok
            time.sleep(0.02)
        raise AssertionError(f"only {len(self.posts)} report posts: {self.posts}")


@contextmanager
def collector() -> Iterator[Collector]:
    app = Flask("report-collector")
    box: dict[str, Collector] = {}

    @app.post("/<path:path>")
    def collect(path: str):
        c = box["c"]
        with c.lock:
            status = 503 if c.fail_first > 0 else 200
            c.fail_first = max(c.fail_first - 1, 0)
            c.posts.append(
                {
                    "path": "/" + path,
                    "args": dict(request.args),
                    "json": request.get_json(silent=True),
                    "status": status,
                }
            )
        return ("ok", status)

    server = serve_in_thread(app)
    box["c"] = Collector(server)
    try:
        yield box["c"]
    finally:
        server.stop()


@dataclass
class NetgsmBox:
    server: ServerHandle
    settings: Settings

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def sandbox(self) -> Any:
        return self.server.app.extensions["sandbox"]

    def control(self, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        response = httpx.post(f"{self.url}/_sandbox{path}", json=body or {}, timeout=30)
        response.raise_for_status()
        return response.json()

    def faults(self, **faults: Any) -> dict[str, Any]:
        return self.control("/faults", faults)

    def jobs(self, number: str | None = None) -> list[dict[str, Any]]:
        params = {"number": number} if number else {}
        return httpx.get(f"{self.url}/_sandbox/messages", params=params).json()["jobs"]

    def reports(self, wait: float = 0) -> list[dict[str, Any]]:
        return httpx.get(
            f"{self.url}/_sandbox/reports", params={"wait": wait}, timeout=wait + 10
        ).json()["attempts"]


@contextmanager
def running_netgsm(
    state_dir: Path, *, report_url: str | None = None, port: int = 0, **options: Any
) -> Iterator[NetgsmBox]:
    """``report_url`` None: reports are only answered to queries, never pushed."""
    options.setdefault("report_delay_seconds", 0.05)
    options.setdefault("report_backoff_seconds", 0.05)
    app = create_app(state_path=str(state_dir / "netgsm.sqlite"), report_url=report_url, **options)
    server = serve_in_thread(app, port=port)
    try:
        with environment({"HUB_NETGSM_BASE_URL": server.url}):
            yield NetgsmBox(server, load_settings())
    finally:
        server.stop()
        app.extensions["sandbox"].pusher.stop()
        app.extensions["sandbox"].store.close()


def document_errors(schema_name: str, body: Any) -> list[str]:
    """The document's complaints about ``body`` under one of its component schemas,
    formats included (``date-time``)."""
    from openapi_schema_validator import OAS30Validator, oas30_format_checker

    spec = json.loads((PROJECT_ROOT / "contracts" / "netgsm-openapi.json").read_text())
    schemas = spec["components"]["schemas"]

    def inline(node: Any) -> Any:
        if isinstance(node, dict):
            if "$ref" in node:
                return inline(schemas[node["$ref"].rsplit("/", 1)[1]])
            return {k: inline(v) for k, v in node.items()}
        if isinstance(node, list):
            return [inline(v) for v in node]
        return node

    validator = OAS30Validator(inline(schemas[schema_name]), format_checker=oas30_format_checker)
    return [e.message for e in validator.iter_errors(body)]
