"""Log injection: untrusted values reach the log quoted (no raw newline) and cut to a bound."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from imbot_app.logsafe import safe, safe_text
from imbot_app.testing import EventFactory, FakeBitrix24, post_event
from tests.registration_kit import configure
from tests.test_install_page import Visit

pytestmark = pytest.mark.django_db

FORGED = "abc\n2026-01-01 00:00:00 ERROR imbot_app: forged line"
BOUND = 2000  # no record the app writes about a request is longer than this


def app_records(caplog: Any) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name.startswith("imbot_app")]


def assert_clean(messages: list[str]) -> None:
    assert messages, "the app logged nothing, so nothing was checked"
    for message in messages:
        assert "\n" not in message and "\r" not in message, message[:300]
        assert len(message) <= BOUND, len(message)


def test_a_member_id_with_a_newline_cannot_forge_a_line(client, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    payload = EventFactory(member_id=FORGED).message()

    response = post_event(client, payload)
    assert response.status_code == 403, response.content

    assert_clean(app_records(caplog))
    assert any("abc\\n2026" in m for m in app_records(caplog))  # still there, escaped


def test_an_event_name_with_a_newline_cannot_forge_a_line(client, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    factory = EventFactory.installed()
    payload = factory.message()
    payload["event"] = "ONIMBOTMESSAGEADD\nERROR forged"
    payload["auth"]["application_token"] = "wrong"

    assert post_event(client, payload).status_code in (400, 403)

    if app_records(caplog):
        assert_clean(app_records(caplog))


def test_install_page_fields_of_two_megabytes_give_a_bounded_line(
    client, settings, fake_b24: FakeBitrix24, caplog
) -> None:
    configure(settings, fake_b24)
    settings.IMBOT_MAX_BODY_BYTES = 4 * 1024 * 1024  # read the 2 MB field (not refused with 413)
    caplog.set_level(logging.DEBUG)
    visit = Visit(fake_b24)
    # A token of one portal, offered for another whose member_id is 2 MB with newlines.
    visit.form["member_id"] = ("x" * 999 + "\n") * 2000
    visit.form["LANG"] = "en\nforged"

    assert visit.post(client).status_code == 403

    assert_clean(app_records(caplog))
    assert any("install page refused" in m for m in app_records(caplog))


def test_safe_bounds_and_escapes() -> None:
    assert safe("a\nb") == "'a\\nb'"
    assert len(safe("y" * 2_000_000)) < 250
    assert safe("y" * 2_000_000).endswith("...(+1999800 chars)")
    assert safe(None) == "None"
    assert safe_text("reason: a\r\nb\x1b[31m") == "reason: a\\r\\nb\\x1b[31m"
    assert len(safe_text("z" * 10_000)) < 530
