"""The receiver under gunicorn (2 gthread workers) over real HTTP, metrics across workers."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from test_receiver_support import SECRETS, rows, sendgrid_body, stripe_event, stripe_headers

ROOT = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture()
def gunicorn_url(clean_db, tmp_path):
    port = _free_port()
    env = dict(os.environ)
    env.update({f"HUB_{name.upper()}": value for name, value in SECRETS.items()})
    env.update(
        HUB_RECEIVER_BIND=f"127.0.0.1:{port}",
        HUB_RECEIVER_WORKERS="2",
        HUB_DATA_DIR=str(tmp_path / "data"),
        PYTHONPATH=str(ROOT),
    )
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    out = open(tmp_path / "stdout.log", "wb")  # noqa: SIM115 - closed below
    err = open(tmp_path / "stderr.log", "wb")  # noqa: SIM115
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "-c",
            "webhook_receiver/gunicorn_conf.py",
            "webhook_receiver.app:create_app()",
        ],
        cwd=ROOT,
        env=env,
        stdout=out,
        stderr=err,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(
                    "gunicorn did not come up: " + (tmp_path / "stderr.log").read_text()[-2000:]
                )
            time.sleep(0.2)
        yield url, tmp_path
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        out.close()
        err.close()


def _counter(text: str, source: str, outcome: str) -> float:
    pattern = (
        r"^hub_receiver_requests_total\{"
        + rf'(?=[^}}]*outcome="{outcome}")(?=[^}}]*source="{source}")[^}}]*\}} (\S+)$'
    )
    match = re.search(pattern, text, re.MULTILINE)
    return float(match.group(1)) if match else 0.0


def test_gunicorn_end_to_end(gunicorn_url, clean_db):
    url, tmp_path = gunicorn_url
    secret = SECRETS["stripe_webhook_secret"]
    body = json.dumps(stripe_event()).encode()
    with httpx.Client(base_url=url, timeout=10) as client:
        for _ in range(2):
            resp = client.post(
                "/webhooks/stripe", content=body, headers=stripe_headers(body, secret)
            )
            assert resp.status_code == 200
        assert resp.json()["status"] == "duplicate"
        bad = client.post(
            "/webhooks/stripe", content=body, headers={"Stripe-Signature": "t=1,v1=0"}
        )
        assert bad.status_code == 401

        sg, ct = sendgrid_body("iso-8859-9")
        token = SECRETS["sendgrid_inbound_token"]
        resp = client.post(
            f"/inbound/email/sendgrid/{token}", content=sg, headers={"Content-Type": ct}
        )
        assert resp.status_code == 200, resp.text

        big = b"x" * (1024 * 1024 + 10)  # default cap: 1 MiB, declared Content-Length
        resp = client.post("/webhooks/stripe", content=big)
        assert resp.status_code == 413

        def chunks():  # no Content-Length: cut while streaming
            for _ in range(40):
                yield b"y" * 65536

        resp = client.post("/webhooks/luma", content=chunks())
        assert resp.status_code == 413

        texts = [client.get("/metrics").text for _ in range(4)]  # whichever worker answers
    for text in texts:
        assert _counter(text, "stripe", "accepted") == 1.0
        assert _counter(text, "stripe", "duplicate") == 1.0
        assert _counter(text, "stripe", "bad_signature") == 1.0
        assert _counter(text, "stripe", "oversize") == 1.0
        assert _counter(text, "sendgrid", "accepted") == 1.0
        assert "hub_receiver_request_duration_seconds_bucket" in text
    assert (tmp_path / "data" / "prometheus").is_dir()

    stripe_rows = rows(clean_db, "webhook_events", "stripe")
    assert [r["status"] for r in stripe_rows] == ["received", "flagged", "flagged"]
    assert stripe_rows[2]["body_size"] == len(big) and stripe_rows[2]["body_truncated"]
    luma = rows(clean_db, "webhook_events", "luma")
    assert luma[0]["flag"] == "oversize" and luma[0]["body_size"] > 1024 * 1024

    time.sleep(0.3)  # let the access lines flush
    stdout = (tmp_path / "stdout.log").read_text()
    stderr = (tmp_path / "stderr.log").read_text()
    # One JSON line per request, from the app (gunicorn's own access line is off by
    # default: it would repeat it), with the token in the path masked.
    lines = [json.loads(line) for line in (stdout + stderr).splitlines() if line.startswith("{")]
    requests = [x for x in lines if x.get("path") and x.get("status")]
    assert any(x["path"] == "/inbound/email/sendgrid/***" for x in requests)
    for secret_value in SECRETS.values():
        assert secret_value not in stdout and secret_value not in stderr
