"""WhatsAppCloud against the emulator over real HTTP, and the notify.whatsapp relay
handler through the real outbox (PostgreSQL), deduplicating on status webhooks."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text
from whatsapp_site import whatsapp_site

from hub.errors import AuthError, RateLimited, ReconnectRequired, ServerError
from hub.outbox import enqueue
from hub.outbox_relay import deliver_due
from hub.vault import Vault
from integrations.notify_whatsapp import KIND, whatsapp_handler
from integrations.sandbox.whatsapp import WHATSAPP_ACCESS_TOKEN, WHATSAPP_PHONE_NUMBER_ID
from integrations.whatsapp import WhatsAppCloud, WhatsAppRefused, WindowClosed

TO = "+905321234567"


def cloud(url: str, token: str = WHATSAPP_ACCESS_TOKEN) -> WhatsAppCloud:
    return WhatsAppCloud(url, token=token, phone_number_id=WHATSAPP_PHONE_NUMBER_ID)


def run(coro):
    return asyncio.run(coro)


def test_templates_errors_and_window(tmp_path):
    async def scenario(box) -> None:
        async with cloud(box.url) as wa:
            wamid = await wa.send_template(
                TO, "bilet_hazir", "tr", ["Ayşe", "https://t/x"],
                header_params=["PyIstanbul"], effect_key="e:1",
            )  # fmt: skip
            assert wamid.startswith("wamid.")
            with pytest.raises(WhatsAppRefused) as unknown:
                await wa.send_template(TO, "odeme_alindi", "de", ["x"], effect_key="e:2")
            assert unknown.value.graph_code == 132001 and not unknown.value.retryable
            with pytest.raises(WhatsAppRefused) as count:
                await wa.send_template(TO, "odeme_alindi", "tr", [], effect_key="e:3")
            assert count.value.graph_code == 132000
            with pytest.raises(WindowClosed):
                await wa.send_text(TO, "selam", effect_key="e:4", last_inbound_at=None)
            stale = datetime.now(UTC) - timedelta(hours=25)
            with pytest.raises(WindowClosed):
                await wa.send_text(TO, "selam", effect_key="e:5", last_inbound_at=stale)
            box.control("/inbound", {"from": TO, "hours_ago": 2})
            recent = datetime.now(UTC) - timedelta(hours=2)
            assert (await wa.send_text(TO, "Görüşmek üzere", effect_key="e:6",
                                       last_inbound_at=recent)).startswith("wamid.")  # fmt: skip
            box.control("/faults", {"rate_limit": {"limit": 1, "window_seconds": 30}})
            await wa.send_template(TO, "odeme_alindi", "tr", ["x"], effect_key="e:7a")
            with pytest.raises(RateLimited) as limited:
                await wa.send_template(TO, "odeme_alindi", "tr", ["x"], effect_key="e:7")
            assert limited.value.retryable and limited.value.retry_after
            box.control("/faults", {"clear": True, "fail_next": 1, "status": 500})
            with pytest.raises(ServerError):
                await wa.send_template(TO, "odeme_alindi", "tr", ["x"], effect_key="e:8")
        async with cloud(box.url, "EAAwrong-token-value") as bad:
            with pytest.raises(AuthError) as refused:
                await bad.send_template(TO, "odeme_alindi", "tr", ["x"], effect_key="e:9")
            assert "EAAwrong" not in str(refused.value)

    with whatsapp_site(tmp_path, receiver=False) as box:
        run(scenario(box))
        sent = box.get("/messages", biz_opaque_callback_data="e:1")["messages"]
        assert sent[0]["template"]["parameters"] == {"header": ["PyIstanbul"],
                                                     "body": ["Ayşe", "https://t/x"]}  # fmt: skip


def test_from_vault_fails_closed(hub_settings, clean_db):
    vault = Vault(clean_db, hub_settings)
    vault.delete("whatsapp")
    with pytest.raises(ReconnectRequired):
        WhatsAppCloud.from_vault(hub_settings, vault)
    vault.set("whatsapp", {"token": WHATSAPP_ACCESS_TOKEN,
                           "phone_number_id": WHATSAPP_PHONE_NUMBER_ID})  # fmt: skip
    assert WhatsAppCloud.from_vault(hub_settings, vault).phone_number_id == WHATSAPP_PHONE_NUMBER_ID


def _status(engine, key: str) -> tuple[str, dict | None, str | None]:
    with engine.connect() as conn:
        row = conn.execute(text("select status, result, last_error from app.outbox "
                                "where idempotency_key = :k"), {"k": key}).one()  # fmt: skip
    return row.status, row.result, row.last_error


def test_relay_handler_sends_once_and_refusals_go_dead(tmp_path, hub_settings, clean_db):
    with whatsapp_site(tmp_path) as box:
        factory = lambda name: cloud(box.url)  # noqa: E731
        handlers = {KIND: whatsapp_handler}
        with clean_db.begin() as conn:
            enqueue(conn, KIND, "notify.whatsapp:approved:r1", {
                "to": TO, "template": "odeme_alindi", "language": "tr",
                "params": ["1.250,00 TL"]})  # fmt: skip
            enqueue(
                conn,
                KIND,
                "notify.whatsapp:bad:r2",
                {"to": TO, "template": "odeme_alindi", "language": "xx", "params": ["x"]},
            )
        outcomes = deliver_due(clean_db, hub_settings, handlers, adapter_factory=factory)
        assert sorted(o.status for o in outcomes) == ["dead", "delivered"]
        status, result, _ = _status(clean_db, "notify.whatsapp:approved:r1")
        assert status == "delivered" and result["message_id"].startswith("wamid.")
        assert _status(clean_db, "notify.whatsapp:bad:r2")[2].count("132001") == 1

        # The relay "died" after Meta accepted: the row is due again with no result, but
        # the status webhook naming the effect key has landed, so nothing is sent again.
        box.idle()
        deadline = time.time() + 5
        while time.time() < deadline:
            with clean_db.connect() as conn:
                if conn.scalar(text("select count(*) from raw.webhook_events "
                                    "where source='whatsapp'")) >= 3:  # fmt: skip
                    break
            time.sleep(0.1)
        with clean_db.begin() as conn:
            conn.execute(text("update app.outbox set status='pending', result=null, "
                              "next_attempt_at=now() where idempotency_key=:k"),
                         {"k": "notify.whatsapp:approved:r1"})  # fmt: skip
        (again,) = deliver_due(clean_db, hub_settings, handlers, adapter_factory=factory)
        assert again.status == "delivered" and again.result["deduplicated"] is True
        assert again.result["message_id"] == result["message_id"]
        sent = box.get("/messages", biz_opaque_callback_data="notify.whatsapp:approved:r1")
        assert len(sent["messages"]) == 1
