"""Receiver under slow clients (issue 8 #5): the latency of genuine Stripe deliveries
while 40 connections send their headers or bodies a byte at a time, against the same
deliveries with no slow client, for the shipped front (granian + the buffering front)
and, for comparison, gunicorn gthread (the previous front).

Genuine deliveries: 2 client threads, one keep-alive connection each, paced (not a
throughput test), each request Stripe-signed; latency client-side. Slow clients: 20
connections trickle headers, 20 declare a 400-byte body and trickle it, one byte every
0.5 s each; a connection the server closes (its read timeout) is opened again at once,
so 40 are slow at every moment.
"""

from __future__ import annotations

import socket
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from bench.common import (
    LOOPBACK,
    Figure,
    free_port,
    log,
    percentile,
    start_process,
    stop_process,
    wait_http,
)
from bench.loadgen import http_sender
from bench.receiver import SECRET, _drop_metrics_dir, _gunicorn_env, front_argv

SLOW = 40
GENUINE_THREADS = 2
GENUINE_PER_THREAD = 300
PACE_S = 0.05  # ~15 s a phase: every slow connection hits a read timeout and comes back
TRICKLE_S = 0.5
PHASE_LIMIT_S = 25.0
TARGET_FACTOR = 2.0


def _genuine(port: int, tag: str) -> dict[str, Any]:
    make = http_sender(f"http://{LOOPBACK}:{port}/webhooks/stripe", SECRET)
    latencies: list[float] = []
    failures: list[str] = []
    deadline = time.monotonic() + PHASE_LIMIT_S
    lock = threading.Lock()

    def worker(index: int) -> None:
        try:
            send = make()
        except OSError as exc:
            with lock:
                failures.append(type(exc).__name__)
            return
        for n in range(GENUINE_PER_THREAD):
            if time.monotonic() > deadline:
                return
            started = time.perf_counter()
            outcome = send(f"evt_slow{tag}{index:02d}x{n:06d}")
            elapsed = (time.perf_counter() - started) * 1000
            with lock:
                if outcome.startswith("2"):
                    latencies.append(elapsed)
                else:
                    failures.append(outcome)
            time.sleep(PACE_S)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(GENUINE_THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(PHASE_LIMIT_S + 30)
    return {
        "ok": len(latencies),
        "failures": len(failures),
        "p50": percentile(latencies, 50) if latencies else float("inf"),
        "p99": percentile(latencies, 99) if latencies else float("inf"),
        "max": max(latencies) if latencies else float("inf"),
    }


class SlowClients:
    """Keeps ``SLOW`` connections trickling bytes until stopped."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.stop = threading.Event()
        self.reopened = 0
        self.threads = [threading.Thread(target=self._run, args=(i,), daemon=True)
                        for i in range(SLOW)]  # fmt: skip

    def _payload(self, index: int) -> tuple[bytes, bytes]:
        if index % 2:
            head = b"POST /webhooks/stripe HTTP/1.1\r\nHost: x\r\nContent-Length: 400\r\n\r\n"
            return head, b"{" * 400
        return b"", b"POST /webhooks/stripe HTTP/1.1\r\nHost: x\r\n" + b"X-Slow: a\r\n" * 200

    def _run(self, index: int) -> None:
        head, trickle = self._payload(index)
        while not self.stop.is_set():
            try:
                with socket.create_connection((LOOPBACK, self.port), timeout=30) as sock:
                    if head:
                        sock.sendall(head)
                    for byte in trickle:
                        if self.stop.wait(TRICKLE_S):
                            return
                        sock.sendall(bytes([byte]))
            except OSError:
                pass
            self.reopened += 1

    def __enter__(self) -> SlowClients:
        for thread in self.threads:
            thread.start()
        time.sleep(1.0)
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(5)


def _front(tmp: Path, front: str) -> dict[str, Any]:
    port = free_port()
    proc = start_process(front_argv(front, port), tmp / f"{front}.log", _gunicorn_env(port))
    try:
        wait_http(f"http://{LOOPBACK}:{port}/health", timeout=60, proc=proc)
        log(f"slow clients ({front}): unloaded")
        unloaded = _genuine(port, f"{front[:2]}u")
        log(f"slow clients ({front}): {SLOW} slow connections")
        with SlowClients(port) as slow:
            loaded = _genuine(port, f"{front[:2]}l")
        reopened = slow.reopened
    finally:
        stop_process(proc)
        _drop_metrics_dir(port)
    return {"unloaded": unloaded, "loaded": loaded, "reopened": reopened}


def run() -> list[Figure]:
    results = {}
    with tempfile.TemporaryDirectory(prefix="hub-bench-slow-") as tmp:
        for front in ("granian", "gunicorn"):
            results[front] = _front(Path(tmp), front)
            r = results[front]
            log(f"slow clients ({front}): p99 {r['unloaded']['p99']:.1f} -> "
                f"{r['loaded']['p99']:.1f} ms")  # fmt: skip
    shipped = results["granian"]
    ratio = shipped["loaded"]["p99"] / max(shipped["unloaded"]["p99"], 1e-9)
    passed = ratio <= TARGET_FACTOR and shipped["loaded"]["failures"] == 0
    rows = []
    for front, r in results.items():
        u, lo = r["unloaded"], r["loaded"]
        rows.append(
            f"| {front}{' (shipped)' if front == 'granian' else ''} | {u['p50']:.1f} / "
            f"{u['p99']:.1f} | {lo['p50']:.1f} / **{lo['p99']:.1f}** | {lo['max']:.1f} | "
            f"{lo['p99'] / max(u['p99'], 1e-9):.2f}x | {lo['ok']} / {lo['failures']} |"
        )
    lines = [
        f"Genuine deliveries: {GENUINE_THREADS} keep-alive connections, each "
        f"{GENUINE_PER_THREAD} Stripe-signed events paced {PACE_S * 1000:.0f} ms apart "
        f"(phase capped at {PHASE_LIMIT_S:.0f} s). Slow clients: {SLOW} connections, half "
        f"trickling headers, half a declared 400-byte body, one byte every {TRICKLE_S} s; "
        "each one the server closes is reopened at once.",
        "Fronts as shipped: granian = `python -m webhook_receiver.serve` (headers read by "
        "granian with a 5 s timeout, bodies buffered on the event loop with 5 s idle / 15 s "
        "total timeouts before the WSGI threads see them); gunicorn = gthread 2 x 4 "
        "(a thread reads the body itself).",
        "",
        "| front | unloaded p50 / p99 ms | 40 slow: p50 / p99 ms | 40 slow: max ms | p99 "
        "factor | answered 2xx / failed |",
        "|---|---|---|---|---|---|",
        *rows,
        "",
        f"Slow connections reopened after the server closed them (granian run): "
        f"{shipped['reopened']}.",
    ]
    return [
        Figure(
            key="receiver-slow-clients",
            title="Receiver: genuine Stripe deliveries under 40 slow connections",
            target=f"p99 under 40 slow connections within {TARGET_FACTOR:.0f}x of the unloaded "
            "p99, no genuine delivery refused",
            passed=passed,
            summary=f"granian: p99 {shipped['unloaded']['p99']:.1f} ms unloaded -> "
            f"{shipped['loaded']['p99']:.1f} ms with {SLOW} slow connections ({ratio:.2f}x); "
            f"gunicorn: {results['gunicorn']['loaded']['p99']:.0f} ms "
            f"({results['gunicorn']['loaded']['failures']} failed)",
            lines=lines,
            data={"ratio": ratio},
        )
    ]
