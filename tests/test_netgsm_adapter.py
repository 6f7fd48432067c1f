"""The Netgsm adapter and the ``notify.sms`` relay handler against the emulator over real
HTTP: every request the adapter makes is checked against Netgsm's own OpenAPI document;
encoding/segments/cost computed before sending; codes mapped to retryable or permanent;
vault credentials or fail closed; and through the real outbox relay on PostgreSQL, one
message per effect even when an answer is lost or a relay died mid-send."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import datetime, timedelta

import httpx
import pytest
from sqlalchemy import text

from hub.db import transaction
from hub.errors import AuthError, RateLimited, ServerError, ValidationFailed
from hub.outbox import enqueue
from hub.outbox_relay import RelayPolicy, deliver_due
from hub.vault import Vault
from integrations import notify_sms
from integrations.netgsm import (
    ISTANBUL,
    ConfigurationError,
    NetgsmSms,
    SendOutcomeUnknown,
    national_number,
    parse_report,
)
from integrations.notify_sms import KIND, sms_handler
from tests.netgsm_box import CREDS, collector, contract, exchange_errors, running_netgsm

API = contract()
TO = "+905321234567"
FAST = RelayPolicy(base_delay=0.01, max_delay=0.05, lease_seconds=5.0, max_attempts=4)


@pytest.fixture()
def box(tmp_path):
    with (
        collector() as reports,
        running_netgsm(tmp_path, report_url=f"{reports.url}/webhooks/netgsm?token=t") as b,
    ):
        b.report_collector = reports
        yield b


class Checked:
    """An AsyncClient whose every exchange is checked against the document."""

    def __init__(self) -> None:
        self.problems: list[str] = []
        self.requests: list[dict] = []

    async def _hook(self, response: httpx.Response) -> None:
        await response.aread()
        self.requests.append(json.loads(response.request.content or b"null"))
        if response.status_code < 500:
            self.problems += [
                p
                for p in exchange_errors(API, response.request, response)
                # the document's report 406 names a schema it never defines
                if "ReportErrorResponse' does not exist" not in p
            ]

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(timeout=10, event_hooks={"response": [self._hook]})


def run(coro):
    return asyncio.run(coro)


async def _send(box, text_, *, creds=None, checked=None, **kwargs):
    checked = checked or Checked()
    async with checked.client() as client:
        sms = NetgsmSms(box.url, client=client, **(creds or CREDS))
        result = await sms.send(
            kwargs.pop("to", TO), text_, commercial=kwargs.pop("commercial", False),
            effect_key="test", **kwargs,
        )  # fmt: skip
    assert checked.problems == []
    return result, checked


def test_turkish_text_goes_with_tr_and_its_segments(box):
    result, checked = run(_send(box, "Çağrı ŞİŞLİ, kaydınız onaylandı. " * 6))
    assert (result.encoding, result.segments, result.cost_units) == ("TR", 2, 2)
    assert checked.requests[0]["encoding"] == "TR"
    assert checked.requests[0]["messages"] == [
        {"msg": "Çağrı ŞİŞLİ, kaydınız onaylandı. " * 6, "no": "5321234567"}
    ]
    (job,) = box.jobs()
    assert job["jobid"] == result.job_id
    (entry,) = job["messages"]
    # the emulator counts on its own and agrees
    assert (entry["encoding"], entry["segments"]) == ("TR", 2)


def test_gsm_text_sends_no_encoding_and_unicode_is_ucs2(box):
    plain, checked = run(_send(box, "Kaydiniz onaylandi"))
    assert plain.encoding == "GSM7" and "encoding" not in checked.requests[0]
    emoji, _ = run(_send(box, "Bilet hazır 🎟️ " * 5))
    assert (emoji.encoding, emoji.segments) == ("UCS2", 2)
    assert box.jobs()[-1]["messages"][0]["encoding"] == "UCS2"


def test_commercial_flag_is_the_iys_filter(box):
    info, _ = run(_send(box, "Bilgi", commercial=False))
    promo, _ = run(_send(box, "Kampanya", commercial=True))
    assert (info.iysfilter, promo.iysfilter) == ("0", "11")
    assert [j["iysfilter"] for j in box.jobs()] == ["0", "11"]
    box.control("/account", {"iys": False})
    with pytest.raises(ValidationFailed) as refused:
        run(_send(box, "Kampanya", commercial=True))
    assert refused.value.code == "50" and not refused.value.retryable


def test_bad_credentials_are_permanent_and_secret_free(box):
    creds = {**CREDS, "password": "wrong-Secret-9"}
    with pytest.raises(AuthError) as failed:
        run(_send(box, "x", creds=creds))
    assert not failed.value.retryable
    assert "wrong-Secret-9" not in str(failed.value)
    assert "wrong-Secret-9" not in repr(NetgsmSms(box.url, **creds))


def test_unknown_header_is_permanent(box):
    with pytest.raises(ValidationFailed) as failed:
        run(_send(box, "x", creds={**CREDS, "msgheader": "NOTMINE"}))
    assert failed.value.code == "40"


def test_rate_limits_are_retryable_with_a_wait(box):
    box.faults(send_rate_limit={"limit": 1, "window_seconds": 60})
    run(_send(box, "1"))
    with pytest.raises(RateLimited) as limited:
        run(_send(box, "2", to="+905320000001"))
    assert limited.value.retryable and limited.value.retry_after == 2.0
    box.faults(send_rate_limit={"limit": 100, "window_seconds": 1}, per_number_limit=1)
    with pytest.raises(RateLimited) as per_number:
        run(_send(box, "3"))
    assert per_number.value.retry_after == 60.0


def test_system_errors_retryable_lost_answers_unknown(box):
    box.faults(fail_next=1, status=503)
    with pytest.raises(ServerError) as failed:
        run(_send(box, "x"))
    assert failed.value.retryable and not isinstance(failed.value, SendOutcomeUnknown)
    assert box.jobs() == []
    box.faults(lose_response_next=1)
    with pytest.raises(SendOutcomeUnknown):
        run(_send(box, "x"))
    assert len(box.jobs()) == 1  # it was sent: the caller must not simply resend


def test_connection_refused_is_not_sent():
    async def go():
        sms = NetgsmSms("http://127.0.0.1:9", **CREDS)
        await sms.send(TO, "x", commercial=False, effect_key="k")

    with pytest.raises(ServerError) as failed:
        run(go())
    assert not isinstance(failed.value, SendOutcomeUnknown)


def test_refused_before_any_call(box):
    with pytest.raises(ValidationFailed):
        run(_send(box, "ş" * 600))  # 8 Turkish segments
    with pytest.raises(ValidationFailed):
        run(_send(box, "x", to="+4915112345678"))
    with pytest.raises(ValidationFailed):
        run(_send(box, "   "))
    assert box.jobs() == []
    assert national_number("+905321234567") == "5321234567"


def test_report_query_and_parse(box):
    result, _ = run(_send(box, "Merhaba"))
    box.report_collector.wait_for(1)

    async def go():
        checked = Checked()
        async with checked.client() as client:
            sms = NetgsmSms(box.url, client=client, **CREDS)
            now = datetime.now(ISTANBUL)
            jobs = await sms.report(job_ids=[result.job_id], start=now - timedelta(hours=1),
                                    stop=now + timedelta(minutes=1))  # fmt: skip
            none = await sms.report(start=now - timedelta(days=9), stop=now - timedelta(days=8))
            headers = await sms.msgheaders()
        assert checked.problems == []
        return jobs, none, headers

    jobs, none, headers = run(go())
    assert [(j.job_id, j.status_name, j.final) for j in jobs] == [
        (result.job_id, "delivered", True)
    ]
    assert none == [] and headers == ["HUBSANDBOX"]
    pushed = box.report_collector.posts[0]["json"]
    assert parse_report(json.dumps(pushed))[0].job_id == result.job_id


# --------------------------------------------------------------------------- vault


def test_credentials_from_the_vault_or_fail_closed(clean_db, hub_settings):
    vault = Vault(clean_db, hub_settings)
    with pytest.raises(ConfigurationError):
        NetgsmSms.from_vault(hub_settings, vault)
    vault.set("netgsm", {"usercode": "8508400000", "password": "s3cret-value"})
    with pytest.raises(ConfigurationError) as failed:
        NetgsmSms.from_vault(hub_settings, vault)
    assert "msgheader" in str(failed.value) and "s3cret-value" not in str(failed.value)
    vault.set("netgsm", CREDS)
    sms = NetgsmSms.from_vault(hub_settings, vault)
    assert sms.base_url == hub_settings.base_url("netgsm")


# --------------------------------------------------------------------------- relay


@pytest.fixture()
def relay_world(box, clean_db):
    notify_sms._credentials.clear()
    with box.settings and _env(box):
        Vault(clean_db).set("netgsm", CREDS)
        yield box, clean_db
    notify_sms._credentials.clear()


def _env(box):
    from hub.settings import environment

    return environment({"HUB_NETGSM_BASE_URL": box.url})


def _enqueue(key="sms:reg-1:approved", text_="Kaydınız onaylandı, Çağrı!", **extra):
    payload = {"to": TO, "text": text_, "commercial": False, "effect_key": key,
               "registration_id": "reg-1", **extra}  # fmt: skip
    with transaction() as conn:
        enqueue(conn, KIND, key, payload)


def _row(engine, key="sms:reg-1:approved"):
    with engine.connect() as conn:
        return conn.execute(
            text("select status, attempts, result, last_error from app.outbox "
                 "where idempotency_key = :k"), {"k": key},
        ).one()  # fmt: skip


def _deliver(box, engine, times=1):
    from hub.settings import load_settings

    outcomes = []
    for _ in range(times):
        outcomes += deliver_due(engine, load_settings(), {KIND: sms_handler}, policy=FAST)
        time.sleep(0.08)
    return outcomes


def test_relay_sends_once_and_records_the_plan(relay_world):
    box, engine = relay_world
    _enqueue()
    (outcome,) = _deliver(box, engine)
    assert outcome.status == "delivered"
    row = _row(engine)
    sms = row.result["sms"]
    assert row.status == "delivered"
    assert (sms["state"], sms["encoding"], sms["segments"], sms["cost_units"]) == (
        "accepted", "TR", 1, 1,
    )  # fmt: skip
    assert sms["commercial"] is False and sms["iysfilter"] == "0"
    assert sms["job_id"] == box.jobs()[0]["jobid"] and sms["registration_id"] == "reg-1"
    _enqueue()  # the same effect again: the row is made pending, but it is one effect
    assert len(box.jobs()) == 1


def test_relay_retries_faults_then_delivers_one_message(relay_world):
    box, engine = relay_world
    box.faults(fail_next=2, status=503)
    _enqueue()
    outcomes = _deliver(box, engine, times=4)
    assert [o.status for o in outcomes] == ["retry", "retry", "delivered"]
    assert len(box.jobs()) == 1
    assert _row(engine).result["sms"]["reconciled"] is False


def test_lost_answer_is_reconciled_not_resent(relay_world):
    box, engine = relay_world
    box.faults(lose_response_next=1)
    _enqueue()
    outcomes = _deliver(box, engine, times=3)
    assert [o.status for o in outcomes] == ["retry", "delivered"]
    assert len(box.jobs()) == 1  # never two messages for one effect
    sms = _row(engine).result["sms"]
    assert sms["reconciled"] is True and sms["job_id"] == box.jobs()[0]["jobid"]


def test_relay_killed_mid_send(relay_world):
    """A relay that wrote its marker and died: sent -> reconciled; not sent -> sent."""
    box, engine = relay_world
    started = (datetime.now(ISTANBUL) - timedelta(seconds=5)).isoformat()
    # different lengths: reconciliation matches number and length (see notify_sms)
    for key, sent in (("sms:a", True), ("sms:bb", False)):
        _enqueue(key=key, text_=f"Mesaj {key}")
        marker = {"sms": {"state": "sending", "started_at": started}}
        with transaction() as conn:
            conn.execute(
                text("update app.outbox set result = cast(:r as jsonb) where idempotency_key=:k"),
                {"r": json.dumps(marker), "k": key},
            )
        if sent:
            run(_send(box, f"Mesaj {key}"))  # what the dead relay's request did
    _deliver(box, engine)
    assert _row(engine, "sms:a").result["sms"]["reconciled"] is True
    assert _row(engine, "sms:bb").result["sms"]["reconciled"] is False
    assert len(box.jobs()) == 2


def test_refused_credentials_are_dead_at_once(relay_world):
    box, engine = relay_world
    Vault(engine).set("netgsm", {**CREDS, "password": "nope-Secret-1"})
    notify_sms._credentials.clear()
    _enqueue()
    (outcome,) = _deliver(box, engine)
    row = _row(engine)
    assert outcome.status == "dead" and row.status == "dead"
    assert "nope-Secret-1" not in (row.last_error or "")
    assert row.result["sms"]["state"] == "not_sent"


def test_missing_credentials_fail_closed(relay_world):
    box, engine = relay_world
    with transaction() as conn:
        conn.execute(text("delete from app.integrations where platform = 'netgsm'"))
    notify_sms._credentials.clear()
    _enqueue()
    (outcome,) = _deliver(box, engine)
    assert outcome.status == "dead" and "no credentials" in (outcome.error or "")
    assert box.jobs() == []


def test_bad_payload_is_dead(relay_world):
    box, engine = relay_world
    _enqueue(key="sms:x", text_="ş" * 700)
    (outcome,) = _deliver(box, engine)
    assert outcome.status == "dead" and box.jobs() == []
