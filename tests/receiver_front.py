"""The receiver behind its real HTTP front (granian + webhook_receiver.front) in a
subprocess, for the tests that need real sockets: slow clients, framing errors, huge
declared lengths, a frozen database."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
from test_receiver_support import SECRETS

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class FrontServer:
    url: str
    port: int
    log_dir: Path
    proc: subprocess.Popen

    def logs(self) -> str:
        return (self.log_dir / "stdout.log").read_text() + (self.log_dir / "stderr.log").read_text()


@contextmanager
def front_server(tmp_path: Path, **env_overrides: str) -> Iterator[FrontServer]:
    """``python -m webhook_receiver.serve`` on a free port with the test secrets."""
    port = free_port()
    env = dict(os.environ)
    env.update({f"HUB_{name.upper()}": value for name, value in SECRETS.items()})
    env.update(
        HUB_RECEIVER_BIND=f"127.0.0.1:{port}",
        HUB_RECEIVER_WORKERS="2",
        HUB_DATA_DIR=str(tmp_path / "data"),
        PYTHONPATH=str(ROOT),
    )
    env.update(env_overrides)
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    out = open(tmp_path / "stdout.log", "wb")  # noqa: SIM115 - closed below
    err = open(tmp_path / "stderr.log", "wb")  # noqa: SIM115
    proc = subprocess.Popen(
        [sys.executable, "-m", "webhook_receiver.serve"],
        cwd=ROOT,
        env=env,
        stdout=out,
        stderr=err,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 40
        while True:
            try:
                if httpx.get(f"{url}/health", timeout=2).status_code in (200, 503):
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(
                    "the receiver did not come up: " + (tmp_path / "stderr.log").read_text()[-2000:]
                )
            time.sleep(0.2)
        yield FrontServer(url, port, tmp_path, proc)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)  # the session this fixture started
            proc.wait()
        out.close()
        err.close()


def raw_request(port: int, data: bytes, *, timeout: float = 10.0) -> bytes:
    """Send ``data`` as is on a new connection; the response bytes (until close/timeout)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(data)
        chunks = []
        try:
            while True:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                chunks.append(chunk)
                if b"\r\n\r\n" in b"".join(chunks) and _complete(b"".join(chunks)):
                    break
        except TimeoutError:
            pass
    return b"".join(chunks)


def _complete(response: bytes) -> bool:
    head, _, body = response.partition(b"\r\n\r\n")
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return len(body) >= int(value)
    return False


def status_of(response: bytes) -> int:
    return int(response.split(b" ", 2)[1]) if response.startswith(b"HTTP/") else 0
