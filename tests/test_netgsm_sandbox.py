"""The Netgsm emulator over real HTTP, every exchange checked against Netgsm's own OpenAPI
document (openapi-core): send (single and several messages, Turkish encoding, IYS), the
codes a sender must handle (30 auth, 40 header, 20 text, 50/51 IYS, 70 parameters,
80/85 limits), faults, cancel, the report query, and delivery reports pushed with
retries to a collector and to the real receiver with the right token."""

from __future__ import annotations

import json
import time

import httpx
import pytest
from sqlalchemy import text

from hub.settings import load_settings
from integrations.sandbox.common import serve_in_thread
from integrations.sandbox.credentials import RECEIVER_SECRETS
from tests.netgsm_box import (
    CREDS,
    collector,
    contract,
    document_errors,
    exchange_errors,
    running_netgsm,
)

AUTH = (CREDS["usercode"], CREDS["password"])
API = contract()
TOKEN = "netgsm-report-token-for-tests"


def call(box, method, path, body=None, auth=AUTH, **kwargs):
    """One request; asserts that both sides conform to the document."""
    with httpx.Client(timeout=10) as client:
        response = client.request(method, f"{box.url}{path}", json=body, auth=auth, **kwargs)
    problems = exchange_errors(API, response.request, response)
    return response, problems


def send(box, messages, *, faulted=False, **fields):
    """A send; its reply must conform to the document (``faulted``: an injected fault's
    reply, a status the document cannot know, may not)."""
    body = {"msgheader": CREDS["msgheader"], "messages": messages, **fields}
    response, problems = call(box, "POST", "/sms/rest/v2/send", body)
    if not (faulted and response.status_code >= 500):
        assert not [p for p in problems if p.startswith("response")], problems
    return response


def msg(no="5321234567", text="Merhaba"):
    return {"msg": text, "no": no}


@pytest.fixture()
def reports():
    with collector() as c:
        yield c


@pytest.fixture()
def box(tmp_path, reports):
    url = f"{reports.url}/webhooks/netgsm?token={TOKEN}"
    with running_netgsm(tmp_path, report_url=url) as b:
        yield b


def test_send_turkish_text_and_the_report_arrives(box, reports):
    response = send(box, [msg(text="Çağrı ŞİŞLİ, kaydınız onaylandı")], encoding="TR",
                    iysfilter="0")  # fmt: skip
    assert response.status_code == 200
    data = response.json()
    assert data["code"] == "00" and data["jobid"].isdigit()
    (job,) = box.jobs()
    (entry,) = job["messages"]
    assert (entry["encoding"], entry["segments"], entry["delivered_text"]) == (
        "TR",
        1,
        "Çağrı ŞİŞLİ, kaydınız onaylandı",
    )
    assert job["iysfilter"] == "0"
    (post,) = reports.wait_for(1)
    assert post["path"] == "/webhooks/netgsm" and post["args"] == {"token": TOKEN}
    (pushed,) = post["json"]["jobs"]
    assert pushed["jobid"] == data["jobid"] and pushed["status"] == 1
    assert pushed["number"] == "5321234567" and pushed["errorCode"] == 0
    # the pushed entries are ReportResponse jobs of the document (dates: date-time)
    assert "deliveredDate" in pushed
    report = {"code": "00", "description": "success", "jobs": [pushed]}
    assert document_errors("ReportResponse", report) == []
    assert document_errors("ReportResponse", {**report, "jobs": [{"status": "x"}]}) != []


def test_without_tr_turkish_letters_arrive_as_latin(box):
    send(box, [msg(text="Şişli'de buluşalım")])
    (entry,) = box.jobs()[0]["messages"]
    assert entry["delivered_text"] == "Sisli'de bulusalim" and entry["encoding"] == "GSM7"


def test_several_messages_one_job(box, reports):
    response = send(box, [msg("5321111111", "Bir"), msg("5442222222", "İki ğ"),
                          msg("5053333333", "😀 üç")], encoding="TR")  # fmt: skip
    jobid = response.json()["jobid"]
    (job,) = box.jobs()
    assert [m["encoding"] for m in job["messages"]] == ["GSM7", "TR", "UCS2"]
    (post,) = reports.wait_for(1)
    assert {e["number"] for e in post["json"]["jobs"]} == {"5321111111", "5442222222", "5053333333"}
    assert {e["jobid"] for e in post["json"]["jobs"]} == {jobid}
    assert {e["operator"] for e in post["json"]["jobs"]} == {30, 10, 20}


@pytest.mark.parametrize(
    "auth",
    [None, ("8508400000", "wrong"), ("someone", CREDS["password"])],
)
def test_bad_credentials_are_code_30(box, auth):
    body = {"msgheader": "HUBSANDBOX", "messages": [msg()]}
    response, problems = call(box, "POST", "/sms/rest/v2/send", body, auth=auth)
    assert response.status_code == 406 and response.json()["code"] == "30"
    assert not [p for p in problems if p.startswith("response")]
    assert box.jobs() == []


def test_malformed_basic_header_is_code_30(box):
    response, _ = call(box, "GET", "/sms/rest/v2/msgheader", auth=None,
                       headers={"Authorization": "Basic !!!not-base64"})  # fmt: skip
    assert response.json()["code"] == "30"


@pytest.mark.parametrize(
    "body, code",
    [
        ({"messages": [msg()]}, "70"),  # msgheader required
        ({"msgheader": "HUBSANDBOX"}, "70"),  # messages required
        ({"msgheader": "HUBSANDBOX", "messages": []}, "70"),
        ({"msgheader": "HUBSANDBOX12", "messages": [msg()]}, "70"),  # maxLength 11
        ({"msgheader": "OTHER", "messages": [msg()]}, "40"),
        ({"msgheader": "HUBSANDBOX", "messages": [msg(no="905321234567")]}, "70"),
        ({"msgheader": "HUBSANDBOX", "messages": [msg(no="532123456")]}, "70"),
        ({"msgheader": "HUBSANDBOX", "messages": [{"no": "5321234567"}]}, "70"),
        ({"msgheader": "HUBSANDBOX", "messages": [msg(text="  ")]}, "20"),
        ({"msgheader": "HUBSANDBOX", "messages": [msg(text="a" * 1200)]}, "20"),
        ({"msgheader": "HUBSANDBOX", "messages": [msg()], "iysfilter": "7"}, "70"),
        ({"msgheader": "HUBSANDBOX", "messages": [msg()], "encoding": "UTF8"}, "70"),
        ({"msgheader": "HUBSANDBOX", "messages": [msg()], "startdate": "tomorrow"}, "70"),
    ],
)
def test_refusals(box, body, code):
    response, problems = call(box, "POST", "/sms/rest/v2/send", body)
    assert response.status_code == 406 and response.json() == {
        "code": code,
        "description": response.json()["description"],
        "jobid": None,
    }
    assert not [p for p in problems if p.startswith("response")]
    assert box.jobs() == []


def test_emulator_refuses_what_the_document_refuses(box):
    """Where the document's schema rejects a request, the emulator answers 70."""
    for body in ({"msgheader": 5, "messages": [msg()]}, {"msgheader": "X", "messages": "no"}):
        response, problems = call(box, "POST", "/sms/rest/v2/send", body)
        assert any(p.startswith("request") for p in problems)
        assert response.json()["code"] == "70"


def test_commercial_needs_iys_rights_and_brand(box):
    assert send(box, [msg()], iysfilter="11").json()["code"] == "00"
    box.control("/account", {"iys_brand": False})
    assert send(box, [msg()], iysfilter="12").json()["code"] == "51"
    assert send(box, [msg()], iysfilter="0").json()["code"] == "00"  # informational is fine
    box.control("/account", {"iys": False})
    assert send(box, [msg()], iysfilter="11").json()["code"] == "50"


def test_send_rate_limit_code_80(box):
    box.faults(send_rate_limit={"limit": 2, "window_seconds": 60})
    codes = [send(box, [msg(no=f"53200000{i:02d}")]).json()["code"] for i in range(3)]
    assert codes == ["00", "00", "80"]


def test_per_number_limit_code_85(box):
    box.faults(per_number_limit=2)
    codes = [send(box, [msg()]).json()["code"] for _ in range(3)]
    assert codes == ["00", "00", "85"]
    assert send(box, [msg(no="5329999999")]).json()["code"] == "00"


def test_report_query_limit_is_ten_a_minute(box):
    body = {"startdate": "2020-01-01T00:00:00+03:00", "stopdate": "2030-01-01T00:00:00+03:00"}
    codes = [call(box, "POST", "/sms/rest/v2/report", body)[0].json()["code"] for _ in range(11)]
    assert codes == ["60"] * 10 + ["80"]


def test_faults_fail_next_then_recover(box):
    box.faults(fail_next=2, status=503)
    first = send(box, [msg()], faulted=True)
    assert first.status_code == 503 and first.json()["code"] == "100"
    assert send(box, [msg()], faulted=True).status_code == 503
    assert send(box, [msg()]).json()["code"] == "00"
    assert len(box.jobs()) == 1


def test_lost_response_still_sends(box, reports):
    box.faults(lose_response_next=1)
    response = send(box, [msg()], faulted=True)
    assert response.status_code == 500 and "code" not in response.text
    assert len(box.jobs()) == 1
    reports.wait_for(1)


def test_latency(box):
    box.faults(latency_ms=300)
    started = time.monotonic()
    send(box, [msg()])
    assert time.monotonic() - started >= 0.3


def test_forced_undelivered_status(box, reports):
    box.control("/force-status", {"status": 12, "errorCode": 101, "number": "5321234567"})
    send(box, [msg(), msg(no="5327654321")])
    (post,) = reports.wait_for(1)
    statuses = {e["number"]: (e["status"], e["errorCode"]) for e in post["json"]["jobs"]}
    assert statuses == {"5321234567": (12, 101), "5327654321": (1, 0)}


def test_status_changed_later_is_pushed_again(box, reports):
    jobid = send(box, [msg()]).json()["jobid"]
    reports.wait_for(1)
    box.control(f"/messages/{jobid}/status", {"status": 2, "errorCode": 0})
    second = reports.wait_for(2)[1]["json"]["jobs"][0]
    assert (second["jobid"], second["status"]) == (jobid, 2)


def test_report_push_is_retried(box, reports):
    reports.fail_first = 2
    send(box, [msg()])
    reports.wait_for(1)
    attempts = box.reports(wait=5)
    assert [(a["attempt"], a["ok"]) for a in attempts] == [(1, False), (2, False), (3, True)]


def test_report_query_and_cancel(box):
    box.control("/report-url", {"delay_seconds": 30})  # stays pending
    jobid = send(box, [msg(text="Yarın 19:00'da görüşürüz")], encoding="TR").json()["jobid"]
    body = {"jobids": [jobid], "startdate": "2020-01-01T00:00:00+03:00",
            "stopdate": "2030-01-01T00:00:00+03:00", "pagenumber": 0, "pagesize": 10}  # fmt: skip
    response, problems = call(box, "POST", "/sms/rest/v2/report", body)
    assert problems == []
    (job,) = response.json()["jobs"]
    assert (job["status"], job["msglen"]) == (0, len("Yarın 19:00'da görüşürüz"))
    response, problems = call(box, "POST", "/sms/rest/v2/cancel", {"jobid": jobid})
    assert problems == [] and response.json()["code"] == "00"
    response, problems = call(box, "POST", "/sms/rest/v2/cancel", {"jobid": jobid})
    assert problems == [] and response.json()["code"] == "60"
    # the python SDK's date form is accepted too
    legacy = {"startdate": "01.01.2020 00:00:00", "stopdate": "01.01.2030 00:00:00"}
    assert call(box, "POST", "/sms/rest/v2/report", legacy)[0].json()["code"] == "60"


def test_msgheader_and_inbox(box):
    response, problems = call(box, "GET", "/sms/rest/v2/msgheader")
    assert problems == [] and response.json()["msgheaders"] == ["HUBSANDBOX"]
    response, problems = call(box, "GET", "/sms/rest/v2/inbox")
    assert problems == [] and response.json()["code"] == "40"
    box.control("/inbox", {"messages": [{"message": "IPTAL", "sender": "5321234567",
                                         "receiver": "8508400000", "datetime": "x"}]})  # fmt: skip
    response, problems = call(box, "GET", "/sms/rest/v2/inbox")
    assert problems == [] and response.json()["messages"][0]["message"] == "IPTAL"


def test_restart_keeps_jobs(tmp_path):
    with running_netgsm(tmp_path) as first:
        send(first, [msg()])
    with running_netgsm(tmp_path) as second:
        assert len(second.jobs()) == 1


def test_reset_forgets_jobs_and_faults(box):
    send(box, [msg()])
    box.faults(fail_next=5)
    box.control("/reset")
    assert box.jobs() == [] and send(box, [msg()]).json()["code"] == "00"


def test_report_reaches_the_real_receiver(tmp_path, clean_db, monkeypatch):
    """The default target: the receiver's /webhooks/netgsm with HUB_NETGSM_REPORT_TOKEN."""
    monkeypatch.setenv("HUB_NETGSM_REPORT_TOKEN", TOKEN)
    from webhook_receiver.app import create_app as receiver_app

    receiver = serve_in_thread(receiver_app(load_settings()))
    monkeypatch.setenv("HUB_PUBLIC_BASE_URL", receiver.url)
    try:
        from integrations.sandbox.netgsm import create_app

        app = create_app(state_path=str(tmp_path / "n.sqlite"), report_delay_seconds=0.05)
        assert app.extensions["sandbox"].pusher.target.url == (
            f"{receiver.url}/webhooks/netgsm?token={TOKEN}"
        )
        server = serve_in_thread(app)
        try:
            with httpx.Client() as client:
                client.post(f"{server.url}/sms/rest/v2/send", auth=AUTH,
                            json={"msgheader": "HUBSANDBOX", "messages": [msg()]})  # fmt: skip
            app.extensions["sandbox"].pusher.wait_idle(10)
            attempts = app.extensions["sandbox"].pusher.attempts()
            assert [a["status"] for a in attempts] == [200]
        finally:
            server.stop()
            app.extensions["sandbox"].pusher.stop()
    finally:
        receiver.stop()
    with clean_db.connect() as conn:
        rows = conn.execute(
            text("select status, event_type, body from raw.webhook_events where source='netgsm'")
        ).all()
    assert len(rows) == 1 and rows[0].status == "received"
    assert rows[0].event_type == "delivery_report"
    body = rows[0].body if isinstance(rows[0].body, dict) else json.loads(bytes(rows[0].body))
    assert body["jobs"][0]["status"] == 1
    assert TOKEN not in json.dumps(body)


def test_default_token_is_the_sandbox_one(monkeypatch):
    monkeypatch.delenv("HUB_NETGSM_REPORT_TOKEN", raising=False)
    from integrations.sandbox.netgsm import default_report_url

    assert default_report_url().endswith(
        f"/webhooks/netgsm?token={RECEIVER_SECRETS['netgsm_report_token']}"
    )
