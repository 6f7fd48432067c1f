"""The WhatsApp emulator over real HTTP: Graph errors for templates, the 24-hour window,
rate limits, and status webhooks signed so that the real receiver verifies and keeps them."""

from __future__ import annotations

import json
import time

import httpx
import pytest
from sqlalchemy import text
from whatsapp_site import whatsapp_site

from integrations.sandbox.credentials import RECEIVER_SECRETS
from integrations.sandbox.whatsapp import (
    GRAPH_VERSION,
    WHATSAPP_ACCESS_TOKEN,
    WHATSAPP_PHONE_NUMBER_ID,
    hub_signature,
)
from integrations.webhook_signatures import verify_whatsapp_signature

TO = "905321234567"
AUTH = {"Authorization": f"Bearer {WHATSAPP_ACCESS_TOKEN}"}


def send(url: str, body: dict, headers: dict | None = None) -> httpx.Response:
    path = f"{url}/{GRAPH_VERSION}/{WHATSAPP_PHONE_NUMBER_ID}/messages"
    return httpx.post(path, json=body, headers=AUTH if headers is None else headers, timeout=10)


def template(name: str, lang: str, params: list[str]) -> dict:
    return {
        "messaging_product": "whatsapp", "to": TO, "type": "template",
        "template": {"name": name, "language": {"code": lang}, "components": [
            {"type": "body", "parameters": [{"type": "text", "text": p} for p in params]}]},
    }  # fmt: skip


def graph_error(response: httpx.Response) -> dict:
    error = response.json()["error"]
    assert {"message", "type", "code", "fbtrace_id"} <= set(error)
    assert error["type"] == "OAuthException"
    return error


def statuses(box, wamid: str) -> list[dict]:
    box.idle()
    return box.get(f"/messages/{wamid}")["statuses"]


def test_template_validation_and_auth(tmp_path):
    with whatsapp_site(tmp_path, receiver=False) as box:
        ok = send(box.url, template("odeme_alindi", "tr", ["1.250,00 TL"]))
        assert ok.status_code == 200
        reply = ok.json()
        assert reply["contacts"] == [{"input": TO, "wa_id": TO}]
        assert reply["messages"][0]["id"].startswith("wamid.")
        assert reply["messages"][0]["message_status"] == "accepted"

        unknown = send(box.url, template("yok_boyle", "tr", []))
        assert unknown.status_code == 404 and graph_error(unknown)["code"] == 132001
        language = send(box.url, template("eksik_odeme", "en", ["a", "b", "c"]))
        assert graph_error(language)["code"] == 132001
        count = send(box.url, template("kayit_onaylandi", "tr", ["Ayşe", "PyIstanbul"]))
        assert count.status_code == 400 and graph_error(count)["code"] == 132000
        assert "(2)" in graph_error(count)["error_data"]["details"]

        box.control("/templates", {"odeme_alindi": {"en": {"body": 1, "status": "PAUSED"}}})
        assert graph_error(send(box.url, template("odeme_alindi", "en", ["x"])))["code"] == 132015

        for headers in ({}, {"Authorization": "Bearer EAAnotvalid"}):
            refused = send(box.url, template("odeme_alindi", "tr", ["x"]), headers)
            assert refused.status_code == 401 and graph_error(refused)["code"] == 190
        other = httpx.post(f"{box.url}/{GRAPH_VERSION}/999/messages", headers=AUTH,
                           json=template("odeme_alindi", "tr", ["x"]))  # fmt: skip
        assert graph_error(other)["code"] == 100 and graph_error(other)["error_subcode"] == 33
        assert graph_error(send(box.url, {"to": TO, "type": "text"}))["code"] == 100


def test_free_form_text_only_inside_the_24_hour_window(tmp_path):
    text_body = {"messaging_product": "whatsapp", "to": TO, "type": "text",
                 "text": {"body": "Biletiniz hazır 🎟"}}  # fmt: skip
    with whatsapp_site(tmp_path, receiver=False) as box:
        closed = send(box.url, text_body)
        assert closed.status_code == 200  # Meta accepts, then reports 131047 as a status
        (failed,) = statuses(box, closed.json()["messages"][0]["id"])
        assert failed["status"] == "failed" and failed["errors"][0]["code"] == 131047

        box.control("/inbound", {"from": TO, "text": "Merhaba", "hours_ago": 25})
        late = send(box.url, text_body).json()["messages"][0]["id"]
        assert statuses(box, late)[0]["errors"][0]["code"] == 131047

        opened = box.control("/inbound", {"from": TO, "text": "Merhaba", "hours_ago": 1})
        assert opened["window_open"] is True
        inside = send(box.url, text_body).json()["messages"][0]["id"]
        assert [s["status"] for s in statuses(box, inside)] == ["sent", "delivered", "read"]

    with whatsapp_site(tmp_path / "sync", receiver=False, window_errors="sync") as box:
        refused = send(box.url, text_body)
        assert refused.status_code == 400 and graph_error(refused)["code"] == 131047


def test_rate_limit_and_forced_failures(tmp_path):
    with whatsapp_site(tmp_path, receiver=False) as box:
        box.control("/faults", {"rate_limit": {"limit": 2, "window_seconds": 30}})
        codes = [send(box.url, template("odeme_alindi", "tr", ["x"])) for _ in range(3)]
        assert [r.status_code for r in codes[:2]] == [200, 200]
        assert graph_error(codes[2])["code"] == 130429
        box.control("/faults", {"clear": True, "fail_next": 1, "status": 503})
        broken = send(box.url, template("odeme_alindi", "tr", ["x"]))
        assert broken.status_code == 503 and graph_error(broken)["code"] == 131000
        assert send(box.url, template("odeme_alindi", "tr", ["x"])).status_code == 200


def _rows(engine) -> list[dict]:
    with engine.connect() as conn:
        rows = conn.execute(text(
            "select body, verified, flag, status, headers from raw.webhook_events "
            "where source = 'whatsapp' order by id")).all()  # fmt: skip
    return [dict(r._mapping) for r in rows]


def test_signed_statuses_reach_the_real_receiver(tmp_path, clean_db):
    with whatsapp_site(tmp_path) as box:
        assert box.control("/webhook", {"verify": True})["verified"] is True
        body = template("odeme_alindi", "tr", ["1.250,00 TL"])
        body["biz_opaque_callback_data"] = "notify.whatsapp:test:1"
        wamid = send(box.url, body).json()["messages"][0]["id"]
        forced = send(box.url, template("odeme_alindi", "tr", ["x"])).json()["messages"][0]["id"]
        box.idle()
        box.control(f"/messages/{forced}/status", {"status": "failed", "code": 131026})
        deadline = time.time() + 10
        while time.time() < deadline and len([r for r in _rows(clean_db) if r["body"]]) < 7:
            time.sleep(0.1)
        rows = _rows(clean_db)
        assert all(200 <= a["status"] < 300 for a in box.idle()["attempts"])
        posted = [r for r in rows if r["body"]]
        assert all(r["verified"] and r["flag"] is None for r in posted)
        seen = []
        for row in posted:
            payload = json.loads(bytes(row["body"]))
            for change in payload["entry"][0]["changes"]:
                for item in change["value"].get("statuses", []):
                    seen.append((item["id"], item["status"], item.get("biz_opaque_callback_data"),
                                 [e["code"] for e in item.get("errors", [])]))  # fmt: skip
        assert (wamid, "sent", "notify.whatsapp:test:1", []) in seen
        assert (wamid, "read", "notify.whatsapp:test:1", []) in seen
        assert (forced, "failed", None, [131026]) in seen


def test_signature_matches_the_receivers_verifier():
    body = json.dumps({"object": "whatsapp_business_account", "entry": []}).encode()
    secret = RECEIVER_SECRETS["whatsapp_app_secret"]
    assert verify_whatsapp_signature(secret, body, hub_signature(secret, body))
    assert not verify_whatsapp_signature(secret, body + b" ", hub_signature(secret, body))


@pytest.mark.parametrize("hours", [1])
def test_inbound_message_webhook_is_signed(tmp_path, clean_db, hours):
    with whatsapp_site(tmp_path) as box:
        box.control("/inbound", {"from": TO, "text": "Çarşamba geliyorum", "hours_ago": hours})
        box.idle()
        deadline = time.time() + 5
        while time.time() < deadline and not [r for r in _rows(clean_db) if r["body"]]:
            time.sleep(0.1)
        (row,) = [r for r in _rows(clean_db) if r["body"]]
        assert row["verified"]
        message = json.loads(bytes(row["body"]))["entry"][0]["changes"][0]["value"]["messages"][0]
        assert message["text"]["body"] == "Çarşamba geliyorum" and message["from"] == TO
