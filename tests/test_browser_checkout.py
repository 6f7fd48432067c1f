"""A real headless Chromium (Debian's chromium + chromedriver, driven by Selenium) on the
landing pages: register on a free event (community theme), register and pay on the
Stripe emulator's hosted page (clean theme), land on the confirmation and the order
page, and be refused a second registration with the same e-mail. A screenshot of each
theme (phone and desktop widths) is kept under ``$HUB_ARTIFACTS_DIR`` (default
``tests/artifacts/``, not committed).

Skipped, saying why, when chromium or chromedriver is not installed."""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.engine import Engine

from hub.events import create_event, parse_spec
from hub.ingest import process_pending
from hub.models import Event
from hub.settings import Settings
from integrations.ingest_handlers import build_handlers

CHROMIUM = os.environ.get("HUB_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("HUB_CHROMEDRIVER", "/usr/bin/chromedriver")
ROOT = Path(__file__).resolve().parent


def _missing() -> str | None:
    for name, path in (("chromium", CHROMIUM), ("chromedriver", CHROMEDRIVER)):
        if not (Path(path).exists() or shutil.which(path)):
            return f"{name} not installed at {path} (apt-get install chromium chromium-driver)"
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed in the virtualenv"
    return None


pytestmark = pytest.mark.skipif(_missing() is not None, reason=_missing() or "")


def artifacts_dir() -> Path:
    folder = Path(os.environ.get("HUB_ARTIFACTS_DIR") or ROOT / "artifacts") / "browser"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture()
def browser() -> Iterator[Any]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-background-networking",
                "--disable-dev-shm-usage", "--disable-gpu", "--window-size=1280,1400",
                "--lang=tr-TR"):  # fmt: skip
        options.add_argument(arg)
    options.add_experimental_option("prefs", {"intl.accept_languages": "tr-TR,tr,en"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture()
def site(tmp_path, hub_settings: Settings, clean_db: Engine) -> Iterator[dict[str, Any]]:
    """The receiver (pages + webhooks) and the Stripe emulator, both on real ports."""
    from checkout_site import checkout_site

    with checkout_site(tmp_path) as running:
        yield {"url": running.url, "box": running.box, "engine": clean_db}


def make_event(engine: Engine, **overrides: Any) -> Event:
    start = datetime.now(UTC) + timedelta(days=14)
    spec = {
        "title": "Veri Bilimi Gecesi",
        "description": "Pandas, Polars ve bol sohbet.\n\nHerkes davetli.",
        "starts_at": start.isoformat(),
        "ends_at": (start + timedelta(hours=3)).isoformat(),
        "capacity": 30,
        "channels": {"native": 10, "meetup": None},
        "venue": {"name": "Kolektif House Levent", "address": "Esentepe, Büyükdere Cd. 201"},
        "slug": f"veri-{uuid.uuid4().hex[:8]}",
    } | overrides
    with engine.begin() as conn:
        return create_event(conn, parse_spec(spec), actor="test")


def shoot(driver: Any, name: str) -> Path:
    path = artifacts_dir() / f"{name}.png"
    driver.save_screenshot(str(path))
    assert path.stat().st_size > 1000
    return path


def fill_and_submit(driver: Any, *, name: str, email: str, phone: str) -> None:
    from selenium.webdriver.common.by import By

    driver.find_element(By.ID, "full_name").send_keys(name)
    driver.find_element(By.ID, "email").send_keys(email)
    driver.find_element(By.ID, "phone").send_keys(phone)
    driver.find_element(By.ID, "consent").click()
    driver.find_element(By.ID, "submit").click()


def wait_for(driver: Any, condition: Any, timeout: float = 20) -> Any:
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout).until(condition)


def theme_screenshots(driver: Any, url: str, theme: str) -> None:
    driver.set_window_size(390, 1500)  # a phone
    driver.get(url)
    shoot(driver, f"{theme}-phone")
    driver.set_window_size(1280, 1400)
    driver.get(url)
    shoot(driver, f"{theme}-desktop")


def test_free_registration_in_the_community_theme(browser: Any, site: dict[str, Any]) -> None:
    from selenium.webdriver.common.by import By

    event = make_event(site["engine"])
    page = f"{site['url']}/e/{event.slug}?ref=poster"
    theme_screenshots(browser, page, "community")
    browser.get(page)
    assert browser.find_element(By.TAG_NAME, "html").get_attribute("lang") == "tr"
    assert "theme-community" in browser.find_element(By.TAG_NAME, "body").get_attribute("class")
    # an error first: the browser does not block (novalidate), the server names the field
    fill_and_submit(browser, name="<b>Zeynep</b> Arslan", email="zeynep@example.com", phone="12")
    error = browser.find_element(By.ID, "phone-error")
    assert "telefon" in error.text.lower()
    assert browser.find_element(By.ID, "phone").get_attribute("aria-invalid") == "true"
    phone = browser.find_element(By.ID, "phone")
    phone.clear()
    phone.send_keys("0532 123 45 67")
    consent = browser.find_element(By.ID, "consent")
    if not consent.is_selected():
        consent.click()
    browser.find_element(By.ID, "submit").click()
    status = wait_for(browser, lambda d: d.find_element(By.ID, "order-status"))
    assert status.get_attribute("data-status") == "confirmed"
    assert browser.find_element(By.ID, "order-name").text == "<b>Zeynep</b> Arslan"
    shoot(browser, "community-order")
    with site["engine"].connect() as conn:
        reg = conn.execute(
            text("select * from app.registrations where event_id = :e"), {"e": event.id}
        ).one()
    assert reg.ref_code == "poster" and reg.phone_e164 == "+905321234567"
    assert reg.consent_text and reg.consent_at is not None


def test_paid_registration_in_the_clean_theme(browser: Any, site: dict[str, Any]) -> None:
    from selenium.webdriver.common.by import By

    event = make_event(site["engine"], theme="clean", price=350)
    page = f"{site['url']}/e/{event.slug}?lang=en"
    theme_screenshots(browser, page, "clean")
    browser.get(page)
    assert "theme-clean" in browser.find_element(By.TAG_NAME, "body").get_attribute("class")
    assert "seats left" in browser.find_element(By.ID, "seats-left").text
    email = f"deniz.{uuid.uuid4().hex[:6]}@example.com"
    fill_and_submit(browser, name="Deniz Kaya", email=email, phone="+44 20 7946 0958")
    pay = wait_for(browser, lambda d: d.find_element(By.ID, "pay"))  # the emulator's page
    assert browser.current_url.startswith(site["box"].url + "/pay/cs_")
    shoot(browser, "stripe-pay-page")
    pay.click()
    status = wait_for(browser, lambda d: d.find_element(By.ID, "order-status"))
    assert status.get_attribute("data-status") == "confirmed"
    assert "/orders/ord_" in browser.current_url
    assert "Your registration is confirmed" in status.text
    timeline = browser.find_element(By.ID, "timeline").text
    for label in ("Order created", "Seat held", "Redirected to payment", "Payment received"):
        assert label in timeline
    shoot(browser, "clean-order")
    order_url = browser.current_url
    # the webhook arrives too: nothing changes
    site["box"].deliveries(wait=10)
    process_pending(site["engine"], handlers=build_handlers())
    browser.get(order_url)
    assert browser.find_element(By.ID, "order-status").get_attribute("data-status") == ("confirmed")
    order_no = order_url.split("/orders/", 1)[1].split("?", 1)[0]
    order = httpx.get(f"{site['url']}/orders/{order_no}", headers={"Accept": "application/json"})
    assert [e["event"] for e in order.json()["timeline"]].count("confirmed") == 1

    # a second registration with the same e-mail is refused, no seat taken
    browser.get(page)
    fill_and_submit(browser, name="Deniz Kaya", email=email.upper(), phone="0533 111 22 33")
    notice = wait_for(browser, lambda d: d.find_element(By.ID, "notice"))
    assert "already registered" in notice.text and "this page" in notice.text
    shoot(browser, "clean-refused")
    with site["engine"].connect() as conn:
        holds = conn.execute(
            text("select count(*) from app.seat_holds where event_id = :e"), {"e": event.id}
        ).scalar()
    assert holds == 1
