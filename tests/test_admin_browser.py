"""The admin in a real browser: log in, read a chat's transcript, replay a failed event.

Runs the example project on a live server and drives headless Chromium with Selenium;
screenshots go to the test's temporary folder and to ``artifacts/admin/`` at the repository
root (git-ignored) for a human to look at.  Skipped only when ``/usr/bin/chromium`` is absent
(Debian packages ``chromium`` and ``chromium-driver``; ``.ci/run`` installs them).
"""

from __future__ import annotations

import math
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.urls import reverse

from imbot_app.models import Event
from imbot_app.testing import EventFactory, FakeBitrix24
from tests.admin_scenes import (
    Switch,
    chat_of,
    connect_handlers,
    connected_portal,
    send_replies_to,
    talk,
)

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
ARTIFACTS = Path(__file__).resolve().parent.parent / "artifacts" / "admin"
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--window-size=1400,1000",
)
WAIT_SECONDS = 15
VIEWPORT_WIDTH = 1400

pytestmark = [
    pytest.mark.skipif(not CHROMIUM.exists(), reason=f"{CHROMIUM} is absent"),
    pytest.mark.django_db(transaction=True),
]


@pytest.fixture
def browser() -> Iterator[Any]:
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    options = Options()
    options.binary_location = str(CHROMIUM)
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)
    driver.implicitly_wait(0)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture
def switch(isolated_routes: Any) -> Switch:
    switch = Switch()
    connect_handlers(switch)
    return switch


@pytest.fixture
def live(settings: Any, fake_b24: FakeBitrix24, switch: Switch) -> EventFactory:
    send_replies_to(fake_b24, settings)
    return connected_portal(fake_b24)


class Screenshots:
    """Full-page PNGs in the test's folder, copied to artifacts/admin/."""

    def __init__(self, driver: Any, folder: Path) -> None:
        self.driver = driver
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        self.taken: list[Path] = []

    def take(self, name: str) -> Path:
        # The viewport is resized to the whole page (through the DevTools protocol: a
        # window's size includes its frame), shot, and put back.
        size = self.driver.execute_cdp_cmd("Page.getLayoutMetrics", {})["cssContentSize"]
        self.driver.execute_cdp_cmd(
            "Emulation.setDeviceMetricsOverride",
            {
                "width": VIEWPORT_WIDTH,
                "height": math.ceil(size["height"]),
                "deviceScaleFactor": 1,
                "mobile": False,
            },
        )
        path = self.folder / f"{name}.png"
        try:
            assert self.driver.save_screenshot(str(path)), path
        finally:
            self.driver.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
        shutil.copyfile(path, ARTIFACTS / path.name)
        self.taken.append(path)
        return path


def wait_for(driver: Any, css: str) -> Any:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, WAIT_SECONDS).until(
        expected_conditions.presence_of_element_located((By.CSS_SELECTOR, css))
    )


def test_operator_reads_a_chat_and_replays_a_failed_event(
    live_server, browser, live, deliver, switch, tmp_path
) -> None:
    from selenium.webdriver.common.by import By

    texts = [f"question {n}" for n in range(1, 6)] + ["/echo repeat me"]
    events = talk(live, deliver, texts, chat_id=77)
    chat = chat_of(events[0])
    switch.broken = True
    [failed] = talk(live, deliver, ["please fail, [b]weather[/b] service"])
    assert failed.status == Event.Status.FAILED
    User.objects.create_superuser("operator", "operator@example.com", "s3cret-pass")
    shots = Screenshots(browser, tmp_path / "screenshots")

    # Log in.
    browser.get(live_server.url + reverse("admin:login"))
    browser.find_element(By.NAME, "username").send_keys("operator")
    browser.find_element(By.NAME, "password").send_keys("s3cret-pass")
    browser.find_element(By.CSS_SELECTOR, "input[type=submit]").click()
    wait_for(browser, "#user-tools")

    # The app's index: the overview chart above the models.
    browser.get(live_server.url + reverse("admin:app_list", args=["imbot_app"]))
    chart = wait_for(browser, "svg.imbot-chart")
    assert chart.is_displayed()
    hours = browser.find_elements(By.CSS_SELECTOR, "svg.imbot-chart g.imbot-hour")
    assert len(hours) == 24
    assert hours[-1].get_attribute("data-events") == "7"
    assert hours[-1].get_attribute("data-failures") == "1"
    shots.take("01-app-index-overview")

    # The chat: a dozen messages, both directions, in order.
    browser.get(live_server.url + reverse("admin:imbot_app_chat_change", args=[chat.pk]))
    wait_for(browser, "#transcript")
    entries = browser.find_elements(By.CSS_SELECTOR, "#transcript li.imbot-message")
    seen = [
        (
            entry.get_attribute("data-direction"),
            entry.find_element(By.CLASS_NAME, "imbot-text").text,
        )
        for entry in entries
    ]
    expected: list[tuple[str, str]] = []
    for text in texts[:-1]:
        expected += [("in", f"@Bot {text}"), ("out", f"you said: {text}")]
    expected += [("in", "/echo repeat me"), ("out", "repeat me")]
    assert seen == expected
    ran = browser.find_element(By.CSS_SELECTOR, "#transcript .imbot-invocation").text
    assert ran.startswith("ran /echo repeat me (typed) by John Smith")
    shots.take("02-chat-transcript")

    # The event list: status badges at a glance.
    browser.get(live_server.url + reverse("admin:imbot_app_event_changelist"))
    wait_for(browser, "#result_list")
    badges = browser.find_elements(By.CSS_SELECTOR, "#result_list .imbot-badge")
    assert {badge.text for badge in badges} == {"processed", "failed"}
    shots.take("03-event-list")

    # The failed event: payload, the failed run with its traceback; fix the bug, replay.
    browser.get(live_server.url + reverse("admin:imbot_app_event_change", args=[failed.pk]))
    wait_for(browser, "#handler-runs")
    assert browser.find_elements(By.CSS_SELECTOR, "#handler-runs tr[data-status=failed]")
    assert "[redacted]" in browser.find_element(By.CSS_SELECTOR, "pre.imbot-payload").text
    shots.take("04-event-failed")
    switch.broken = False
    browser.find_element(By.ID, "imbot-replay").click()
    message = wait_for(browser, "ul.messagelist li")
    assert message.text == f"Event #{failed.pk} processed"
    assert "success" in message.get_attribute("class")
    statuses = [
        row.get_attribute("data-status")
        for row in browser.find_elements(By.CSS_SELECTOR, "#handler-runs tr.imbot-run")
    ]
    assert statuses == ["succeeded", "failed", "succeeded", "succeeded"]
    status = browser.find_element(By.CSS_SELECTOR, ".field-status_badge .imbot-badge").text
    assert status == "processed"
    shots.take("05-event-replayed")

    failed.refresh_from_db()
    assert failed.status == Event.Status.PROCESSED
    assert all(path.stat().st_size > 10_000 for path in shots.taken)
