"""The receiver's HTTP front: granian (Rust, hyper) in RSGI mode, buffering each request
before the Flask (WSGI) app sees it.

Why not plain WSGI under gunicorn or granian: both hand a connection to a worker thread
as soon as its headers arrive, and the thread then blocks reading the body; 40 clients
sending their bodies a byte at a time held every thread and a genuine Stripe delivery
waited 30 s. Here the body is read on granian's event loop (a slow client costs a
coroutine and a buffer, not a thread) and the WSGI app runs on a small thread pool only
once the request is complete:

- headers: granian's own read timeout (``HUB_RECEIVER_HEADER_TIMEOUT_MS``, 5 s);
- body: an idle timeout between chunks and a total deadline
  (``HUB_RECEIVER_BODY_IDLE_SECONDS`` 5 s, ``HUB_RECEIVER_BODY_SECONDS`` 15 s); past either
  the request still goes to the app, flagged, so it is kept (``body_timeout``) and
  answered 408;
- at most ``HUB_RECEIVER_MAX_SLOW`` (256) requests per worker may be reading a body at
  once; beyond that a new one is answered 503 at once (counted in the metrics), so slow
  clients can never take memory without bound;
- size: never more than the route's limit + 1 byte is buffered (the inbound e-mail
  limit under ``/inbound``, ``receiver_max_body_bytes`` elsewhere), a declared length
  over it only a 64 KiB preview; the app refuses those (413) as before. Bodies over
  1 MiB spool to a temporary file, not memory;
- a framing error while reading (a malformed chunked body) ends the body there and is
  flagged for the app (kept, 400).

Run with ``python -m webhook_receiver.serve`` (settings there).
"""

from __future__ import annotations

import asyncio
import io
import os
import sys
import tempfile
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import unquote_to_bytes

from webhook_receiver.core import FRONT_BODY_ERROR

PREVIEW_BYTES = 64 * 1024
SMALL_BODY_BYTES = 64 * 1024  # read under one deadline (see _read_small)
SPOOL_BYTES = 1024 * 1024


def _env_float(name: str, default: float) -> float:
    return float(os.environ.get(name, default))


class BufferingFront:
    """An RSGI application that buffers the request, then calls a WSGI app in a pool."""

    def __init__(
        self,
        factory: Callable[[], Any],
        *,
        threads: int | None = None,
        body_idle_seconds: float | None = None,
        body_seconds: float | None = None,
        max_slow: int | None = None,
    ) -> None:
        self._factory = factory
        self._app: Any = None
        self._lock = threading.Lock()
        self._threads = threads or int(os.environ.get("HUB_RECEIVER_THREADS", "4"))
        self._idle = body_idle_seconds or _env_float("HUB_RECEIVER_BODY_IDLE_SECONDS", 5.0)
        self._total = body_seconds or _env_float("HUB_RECEIVER_BODY_SECONDS", 15.0)
        self._max_slow = max_slow or int(os.environ.get("HUB_RECEIVER_MAX_SLOW", "256"))
        self._reading = 0
        self._pool: ThreadPoolExecutor | None = None
        self._limits: tuple[int, int] | None = None
        self._lean: Any = None

    # ---------------------------------------------------------------- lifecycle

    def _wsgi(self) -> Any:
        if self._app is None:
            with self._lock:
                if self._app is None:
                    self._app = self._factory()
        return self._app

    def _executor(self) -> ThreadPoolExecutor:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self._threads, thread_name_prefix="wsgi")
        return self._pool

    def __rsgi_init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._wsgi()  # build the app (and read its settings) before the first request

    def _lean_path(self) -> Any:
        if self._lean is None:
            from webhook_receiver.lean import LeanStripe

            self._lean = LeanStripe(self._wsgi())
        return self._lean

    def __rsgi_del__(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False)

    def _limit(self, path: str) -> int:
        if self._limits is None:
            from integrations.inbound_email import INBOUND_MAX_BODY_BYTES

            settings = self._wsgi().config["HUB_SETTINGS"]
            self._limits = (settings.receiver_max_body_bytes, INBOUND_MAX_BODY_BYTES)
        webhooks, inbound = self._limits
        return inbound if path.lstrip("/").startswith("inbound") else webhooks

    # ---------------------------------------------------------------- requests

    async def __rsgi__(self, scope: Any, proto: Any) -> None:
        if scope.proto != "http":
            return
        if self._reading >= self._max_slow:
            from webhook_receiver import metrics

            metrics.observe_other(503)
            proto.response_bytes(
                503,
                [("content-type", "application/json"), ("retry-after", "5")],
                b'{"error":"busy","message":"too many requests in progress; retry later"}',
            )
            return
        self._reading += 1
        try:
            body, declared, error = await self._read(scope, proto)
        finally:
            self._reading -= 1
        try:
            environ = self._environ(scope, body, declared, error)
            answer = None
            if self._lean_applies(scope, declared, error):
                # a genuine Stripe delivery is answered on the loop (webhook_receiver.lean);
                # None: anything else, answered by the Flask app as before
                answer = await self._lean_path().handle(environ, body.getvalue())
            if answer is None:
                loop = asyncio.get_running_loop()
                answer = await loop.run_in_executor(self._executor(), self._call, environ)
            else:
                body.close()
            status, headers, data = answer
        except Exception as exc:  # the app's own handlers answer everything; this is a bug
            from webhook_receiver.logs import access_logger, safe_path

            access_logger().error(
                "front failed",
                exc_info=exc,
                extra={"fields": {"message": "the HTTP front failed on a request",
                                  "method": scope.method, "path": safe_path(scope.path)}},
            )  # fmt: skip
            status, headers = 500, [("content-type", "application/json")]
            data = b'{"error":"internal","message":"internal error"}'
        try:
            proto.response_bytes(status, headers, data)
        except Exception:  # the client went away before its answer: nothing to send to
            return

    def _lean_applies(self, scope: Any, declared: int | None, error: str | None) -> bool:
        from webhook_receiver.lean import LeanStripe

        return LeanStripe.applies(scope, declared, error, self._limit(scope.path))

    async def _read(self, scope: Any, proto: Any) -> tuple[Any, int | None, str | None]:
        """(body file positioned at 0, declared Content-Length, error or None)."""
        declared = _content_length(scope.headers.get("content-length"))
        limit = self._limit(scope.path)
        oversize = declared is not None and declared > limit
        # Over the limit the answer (413) is already known: keep what arrives at once as
        # a preview, never wait for it.
        cap = PREVIEW_BYTES if oversize else limit + 1
        idle = 0.25 if oversize else self._idle
        if scope.method in ("GET", "HEAD", "OPTIONS", "DELETE") and not declared:
            return io.BytesIO(b""), declared, None
        if declared is not None and not oversize and declared <= SMALL_BODY_BYTES:
            return await self._read_small(proto, declared)
        buf: Any = io.BytesIO()
        size = 0
        error: str | None = None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._total
        chunks = proto.__aiter__()
        while size < cap:
            remaining = deadline - loop.time()
            if remaining <= 0:
                error = "timeout"
                break
            try:
                async with asyncio.timeout(min(idle, remaining)):
                    chunk = await chunks.__anext__()
            except StopAsyncIteration:
                break
            except TimeoutError:
                error = None if oversize else "timeout"
                break
            except Exception:  # framing error, client gone: the app keeps what came
                error = "framing"
                break
            if not chunk:
                continue
            chunk = bytes(chunk[: cap - size])
            if size + len(chunk) > SPOOL_BYTES and isinstance(buf, io.BytesIO):
                spooled = tempfile.TemporaryFile()  # noqa: SIM115 - closed after the app
                spooled.write(buf.getvalue())
                buf = spooled
            buf.write(chunk)
            size += len(chunk)
        if error is None and not oversize and declared is not None and size < declared:
            error = "framing"  # the connection ended before Content-Length bytes
        buf.seek(0)
        return buf, declared, error

    async def _read_small(self, proto: Any, declared: int) -> tuple[Any, int | None, str | None]:
        """A small declared body (most webhooks): one deadline (the idle timeout) for the
        whole of it instead of one per chunk; what arrived before it is kept."""
        parts: list[bytes] = []
        size = 0
        error: str | None = None
        try:
            async with asyncio.timeout(self._idle):
                async for chunk in proto:
                    parts.append(bytes(chunk))
                    size += len(chunk)
                    if size >= declared:
                        break
        except TimeoutError:
            error = "timeout"
        except Exception:  # framing error, client gone: the app keeps what came
            error = "framing"
        if error is None and size < declared:
            error = "framing"  # the connection ended before Content-Length bytes
        return io.BytesIO(b"".join(parts)[:declared]), declared, error

    def _environ(
        self, scope: Any, body: Any, declared: int | None, error: str | None
    ) -> dict[str, Any]:
        host, _, port = (scope.server or "127.0.0.1:80").rpartition(":")
        client_host, _, client_port = (scope.client or ":").rpartition(":")
        raw_path = unquote_to_bytes(scope.path)
        environ: dict[str, Any] = {
            "REQUEST_METHOD": scope.method,
            "SCRIPT_NAME": "",
            "PATH_INFO": raw_path.decode("latin-1"),
            "QUERY_STRING": scope.query_string,
            "SERVER_NAME": host,
            "SERVER_PORT": port,
            "SERVER_PROTOCOL": f"HTTP/{scope.http_version}",
            "REMOTE_ADDR": client_host,
            "REMOTE_PORT": client_port,
            "wsgi.version": (1, 0),
            "wsgi.url_scheme": scope.scheme,
            "wsgi.input": body,
            "wsgi.errors": sys.stderr,
            "wsgi.multithread": True,
            "wsgi.multiprocess": True,
            "wsgi.run_once": False,
            # the buffer ends where the body ended: werkzeug may read a body without a
            # Content-Length (chunked) to its end instead of treating it as empty
            "wsgi.input_terminated": True,
        }
        if error is not None:
            environ[FRONT_BODY_ERROR] = error
        for name, value in scope.headers.items():
            key = name.upper().replace("-", "_")
            if key == "CONTENT_TYPE":
                environ["CONTENT_TYPE"] = value
                continue
            if key == "CONTENT_LENGTH":
                environ["CONTENT_LENGTH"] = value
                continue
            key = f"HTTP_{key}"
            environ[key] = f"{environ[key]},{value}" if key in environ else value
        return environ

    def _call(self, environ: dict[str, Any]) -> tuple[int, list[tuple[str, str]], bytes]:
        state: dict[str, Any] = {}

        def start_response(status: str, headers: list, exc_info: Any = None) -> Callable:
            state["status"], state["headers"] = status, headers
            return chunks.append

        chunks: list[bytes] = []
        try:
            result: Iterable[bytes] = self._wsgi()(environ, start_response)
            try:
                chunks.extend(result)
            finally:
                close = getattr(result, "close", None)
                if close is not None:
                    close()
        finally:
            body = environ["wsgi.input"]
            body.close()
        status = int(str(state.get("status", "500")).split(" ", 1)[0])
        return status, [(str(k), str(v)) for k, v in state.get("headers", [])], b"".join(chunks)


def _content_length(value: str | None) -> int | None:
    if value is None:
        return None
    try:
        length = int(value.strip())
    except ValueError:
        return None
    return length if length >= 0 else None


def _create_app() -> Any:
    from webhook_receiver.app import create_app

    return create_app()


app = BufferingFront(_create_app)
