"""The emulated Netgsm account: its credentials, headers and IYS rights, every job sent
(kept in SQLite, so a restarted emulator still reports on it) and the rules that decide
a message's delivery status.

Rules (CONTRACTS.md "3. Netgsm SMS", ``contracts/netgsm-enums.ts``):
- one job id per accepted send request, one entry per recipient message;
- a message is ``0`` (pending) until its report is due, then ``1`` (delivered), or ``3``
  (invalid number) for a number that is not a mobile one (not ``5...``), or what a
  forced status (``/_sandbox/force-status``) says;
- ``iysfilter`` ``11``/``12`` (commercial) needs an account with IYS rights (else ``50``)
  and an IYS brand (else ``51``);
- a cancelled job (``/sms/rest/v2/cancel``, only while it is pending) is never reported.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from integrations.sandbox.common import SandboxStore
from integrations.sandbox.netgsm import charset
from integrations.sandbox.netgsm.keys import NETGSM_MSGHEADER, NETGSM_PASSWORD, NETGSM_USERCODE
from integrations.sandbox.netgsm.wire import OPERATORS

JOBID_START = 1737000000001
# Dates in replies are RFC 3339 date-times, as the document's ``format: date-time`` says
# (its example and the python SDK say ``dd.MM.yyyy HH:mm:ss``: a conflict CONTRACTS.md
# lists; requests may use any of the three forms, see routes._parse_report_date).
DATE_FORMAT = "%d.%m.%Y %H:%M:%S"


def stamp(when: datetime) -> str:
    return when.isoformat(timespec="seconds")


def default_account() -> dict[str, Any]:
    return {
        "usercode": NETGSM_USERCODE,
        "password": NETGSM_PASSWORD,
        "msgheaders": [NETGSM_MSGHEADER],
        "iys": True,
        "iys_brand": True,
    }


@dataclass
class ForcedStatus:
    status: int
    error_code: int = 0
    number: str | None = None  # None: any number
    remaining: int | None = 1  # None: until reset

    def as_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "errorCode": self.error_code,
            "number": self.number,
            "remaining": self.remaining,
        }


@dataclass
class NetgsmSandbox:
    store: SandboxStore
    forced: list[ForcedStatus] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    # ------------------------------------------------------------------ account
    def account(self) -> dict[str, Any]:
        return self.store.get("account", "main") or default_account()

    def set_account(self, changes: dict[str, Any]) -> dict[str, Any]:
        account = {**self.account(), **changes}
        with self.store.atomic():
            if self.store.get("account", "main") is None:
                self.store.insert("account", "main", account)
            else:
                self.store.update("account", "main", account)
        return account

    # ------------------------------------------------------------------ jobs
    def create_job(self, request: dict[str, Any], now: datetime) -> dict[str, Any]:
        turkish = str(request.get("encoding") or "").upper() == "TR"
        jobid = str(self.store.next_counter("jobid", JOBID_START))
        messages = []
        for item in request["messages"]:
            encoding, delivered, groups = charset.encode(item["msg"], turkish)
            messages.append(
                {
                    "number": item["no"],
                    "msg": item["msg"],
                    "delivered_text": delivered,
                    "encoding": encoding,
                    "segments": charset.segment_count(groups, encoding),
                    "msglen": len(item["msg"]),
                    "status": 0,
                    "errorCode": 0,
                    "operator": OPERATORS.get(item["no"][:2], 70),
                    "deliveredDate": None,
                }
            )
        job = {
            "jobid": jobid,
            "created_at": stamp(now),
            "created_ts": now.timestamp(),
            "msgheader": request["msgheader"],
            "encoding": request.get("encoding"),
            "iysfilter": request.get("iysfilter"),
            "partnercode": request.get("partnercode"),
            "appname": request.get("appname"),
            "startdate": request.get("startdate"),
            "stopdate": request.get("stopdate"),
            "cancelled": False,
            "messages": messages,
        }
        self.store.insert("job", jobid, job)
        return job

    def job(self, jobid: str) -> dict[str, Any] | None:
        return self.store.get("job", jobid)

    def jobs(self) -> list[dict[str, Any]]:
        return self.store.all("job")

    def cancel(self, jobid: str) -> bool:
        with self.store.atomic():
            job = self.job(jobid)
            if job is None or job["cancelled"] or any(m["status"] for m in job["messages"]):
                return False
            job["cancelled"] = True
            self.store.update("job", jobid, job)
            return True

    def _forced_for(self, number: str) -> ForcedStatus | None:
        with self.lock:
            for rule in self.forced:
                if rule.number in (None, number) and rule.remaining != 0:
                    if rule.remaining is not None:
                        rule.remaining -= 1
                    return rule
            return None

    def resolve(self, jobid: str, now: datetime) -> list[dict[str, Any]]:
        """Give every pending message of the job its final status; the report entries."""
        with self.store.atomic():
            job = self.job(jobid)
            if job is None or job["cancelled"]:
                return []
            for message in job["messages"]:
                if message["status"] != 0:
                    continue
                rule = self._forced_for(message["number"])
                if rule is not None:
                    message["status"], message["errorCode"] = rule.status, rule.error_code
                elif not message["number"].startswith("5"):
                    message["status"], message["errorCode"] = 3, 0
                else:
                    message["status"], message["errorCode"] = 1, 0
                message["deliveredDate"] = stamp(now)
            self.store.update("job", jobid, job)
        return [report_entry(job, m) for m in job["messages"]]

    def set_status(
        self, jobid: str, status: int, error_code: int, number: str | None, now: datetime
    ) -> list[dict[str, Any]]:
        """Change a sent message's status (e.g. delivered, later undelivered)."""
        with self.store.atomic():
            job = self.job(jobid)
            if job is None:
                raise KeyError(jobid)
            changed = []
            for message in job["messages"]:
                if number is None or message["number"] == number:
                    message["status"], message["errorCode"] = status, error_code
                    message["deliveredDate"] = stamp(now)
                    changed.append(report_entry(job, message))
            self.store.update("job", jobid, job)
        return changed

    def report_rows(
        self, jobids: list[str] | None, start: datetime, stop: datetime
    ) -> list[dict[str, Any]]:
        rows = []
        for job in self.jobs():
            if jobids and job["jobid"] not in jobids:
                continue
            if not start.timestamp() <= job["created_ts"] <= stop.timestamp() + 1:
                continue
            if job["cancelled"]:
                continue
            rows.extend(report_entry(job, m) for m in job["messages"])
        return rows

    def reset(self) -> None:
        with self.store.atomic():
            for job in self.jobs():
                self.store.delete("job", job["jobid"])
            self.store.delete("account", "main")
        with self.lock:
            self.forced.clear()


def report_entry(job: dict[str, Any], message: dict[str, Any]) -> dict[str, Any]:
    """One job object of the REST v2 report (``ReportResponse.jobs[]``)."""
    entry = {
        "jobid": job["jobid"],
        "number": message["number"],
        "status": message["status"],
        "operator": message["operator"],
        "msglen": message["msglen"],
        "errorCode": message["errorCode"],
        "referansID": f"{job['jobid']}-{message['number']}",
    }
    if message["deliveredDate"]:  # none while pending
        entry["deliveredDate"] = message["deliveredDate"]
    return entry
