"""Delivery reports pushed to the hub as Netgsm's report service would: after a short
delay each message of a job gets its final status, and the job's entries are POSTed as
JSON ``{"jobs": [{jobid, number, status, operator, msglen, deliveredDate, errorCode,
referansID}]}`` to the report URL (by default the receiver's
``<public_base_url>/webhooks/netgsm?token=<netgsm_report_token>``).

The contract documents no push format (CONTRACTS.md "3. Netgsm SMS" has the report
*query*); the emulator's assumption is that a push carries the same job objects as the
REST v2 report reply, which the receiver accepts (it also takes a bare object, a list or
form fields). A push that gets no 2xx is retried with backoff; every attempt is
recorded (``GET /_sandbox/reports``).
"""

from __future__ import annotations

import heapq
import itertools
import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx

log = logging.getLogger("sandbox.netgsm.reports")


@dataclass
class ReportTarget:
    url: str | None
    delay_seconds: float = 0.5
    attempts: int = 5
    backoff_seconds: float = 0.5
    max_backoff_seconds: float = 8.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "url": self.url,
            "delay_seconds": self.delay_seconds,
            "attempts": self.attempts,
            "backoff_seconds": self.backoff_seconds,
            "max_backoff_seconds": self.max_backoff_seconds,
        }


class ReportPusher:
    """One background thread with a schedule: ``resolve(jobid)`` (called when a job's
    delay is over) returns the report entries to push, then each push is attempted
    until a 2xx or ``attempts`` tries."""

    def __init__(self, target: ReportTarget, resolve: Callable[[str], list[dict]]) -> None:
        self.target = target
        self.resolve = resolve
        self.attempt_log: list[dict[str, Any]] = []
        self._cond = threading.Condition()
        self._queue: list[tuple[float, int, str, Any, int]] = []  # due, seq, kind, item, n
        self._seq = itertools.count()
        self._busy = 0
        self._thread: threading.Thread | None = None
        self._stopped = False

    def schedule(self, jobid: str, delay: float | None = None) -> None:
        wait = self.target.delay_seconds if delay is None else delay
        self._push(time.monotonic() + max(wait, 0.0), "resolve", jobid, 0)

    def push_now(self, entries: list[dict[str, Any]]) -> None:
        self._push(time.monotonic(), "post", entries, 1)

    def _push(self, due: float, kind: str, item: Any, attempt: int) -> None:
        with self._cond:
            heapq.heappush(self._queue, (due, next(self._seq), kind, item, attempt))
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="netgsm-reports",
                                                daemon=True)  # fmt: skip
                self._thread.start()
            self._cond.notify_all()

    def _run(self) -> None:
        with httpx.Client(timeout=10.0) as client:
            while True:
                with self._cond:
                    while True:
                        if self._stopped or not self._queue:
                            self._thread = None
                            self._cond.notify_all()
                            return
                        due, _, kind, item, attempt = self._queue[0]
                        if due <= time.monotonic():
                            heapq.heappop(self._queue)
                            self._busy += 1
                            break
                        self._cond.wait(due - time.monotonic())
                try:
                    if kind == "resolve":
                        entries = self.resolve(item)
                        if entries:
                            self._push(time.monotonic(), "post", entries, 1)
                    else:
                        self._post(client, item, attempt)
                except Exception:  # a broken report must not stop the others
                    log.exception("netgsm report failed")
                finally:
                    with self._cond:
                        self._busy -= 1
                        self._cond.notify_all()

    def _post(self, client: httpx.Client, entries: list[dict[str, Any]], attempt: int) -> None:
        url = self.target.url
        if not url:
            return
        body = json.dumps({"jobs": entries}).encode()
        error = None
        try:
            status = client.post(
                url, content=body, headers={"Content-Type": "application/json"}
            ).status_code
        except httpx.HTTPError as exc:
            status, error = 0, type(exc).__name__
        ok = 200 <= status < 300
        with self._cond:
            self.attempt_log.append(
                {
                    "jobids": sorted({e["jobid"] for e in entries}),
                    "jobs": entries,
                    "attempt": attempt,
                    "status": status,
                    "error": error,
                    "ok": ok,
                    "at": time.time(),
                }
            )
        if not ok and attempt < self.target.attempts:
            delay = min(
                self.target.backoff_seconds * 2 ** (attempt - 1), self.target.max_backoff_seconds
            )
            self._push(time.monotonic() + delay, "post", entries, attempt + 1)

    def attempts(self) -> list[dict[str, Any]]:
        with self._cond:
            return list(self.attempt_log)

    def wait_idle(self, timeout: float = 30.0) -> bool:
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._queue or self._busy:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._cond.wait(min(remaining, 0.1))
        return True

    def clear(self) -> None:
        with self._cond:
            self._queue.clear()
            self.attempt_log.clear()
            self._cond.notify_all()

    def stop(self) -> None:
        with self._cond:
            self._stopped = True
            self._queue.clear()
            self._cond.notify_all()
