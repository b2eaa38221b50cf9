"""The install page may be framed by Bitrix24 and the portal only (CSP frame-ancestors)."""

from __future__ import annotations

import secrets
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from imbot_app.testing import FakeBitrix24
from imbot_app.web.framing import BITRIX24_CLOUD_ZONES
from tests.registration_kit import configure
from tests.test_install_page import PATH, Visit

FORM = "application/x-www-form-urlencoded"

pytestmark = pytest.mark.django_db


@pytest.fixture
def fake(settings: Any, fake_b24: FakeBitrix24) -> FakeBitrix24:
    configure(settings, fake_b24)
    return fake_b24


def ancestors(response: Any) -> list[str]:
    """The sources of the response's frame-ancestors directive (and nothing else in the CSP)."""
    policy = response.headers["Content-Security-Policy"]
    directives = [d.strip() for d in policy.split(";") if d.strip()]
    assert len(directives) == 1, policy
    name, *sources = directives[0].split()
    assert name == "frame-ancestors"
    return sources


def assert_only_bitrix24_may_frame(response: Any, *portal_origins: str) -> None:
    sources = ancestors(response)
    assert "*" not in sources and "https:" not in sources and "http:" not in sources
    expected = {"'self'", *(f"https://*.{zone}" for zone in BITRIX24_CLOUD_ZONES), *portal_origins}
    assert set(sources) == expected, sources
    # X-Frame-Options cannot name a list of sites; it must not be there to contradict the CSP
    # (DENY or SAMEORIGIN would block Bitrix24's iframe in browsers that honour it first).
    assert "X-Frame-Options" not in response.headers


@pytest.mark.parametrize("method", ["post", "get"])
def test_a_successful_install_may_be_framed_by_bitrix24_only(client, fake, method) -> None:
    visit = Visit(fake)
    response = getattr(visit, method)(client)
    assert response.status_code == 200
    # ui.bitrix24.com is covered by https://*.bitrix24.com: no need to name it again.
    assert_only_bitrix24_may_frame(response)


@pytest.mark.parametrize("method", ["post", "get"])
def test_an_on_premise_portal_confirmed_by_app_info_may_frame_it(
    client, fake: FakeBitrix24, method
) -> None:
    member_id = secrets.token_hex(16)
    fake.issue_tokens(member_id, 7, domain="crm.example.org")  # app.info's domain
    visit = Visit(fake, member_id=member_id)
    visit.query["DOMAIN"] = "attacker.example"  # the request's word counts for nothing
    response = getattr(visit, method)(client)
    assert response.status_code == 200
    assert_only_bitrix24_may_frame(response, "https://crm.example.org")


def test_refused_and_malformed_visits_carry_the_policy_too(client, fake) -> None:
    visit = Visit(fake)
    visit.form["AUTH_ID"] = secrets.token_hex(26)
    visit.query["DOMAIN"] = "attacker.example"
    refused = visit.post(client)
    assert refused.status_code == 403
    assert_only_bitrix24_may_frame(refused)
    empty = client.get(PATH)
    assert empty.status_code == 400
    assert_only_bitrix24_may_frame(empty)
    wrong_method = Client().put(PATH)
    assert wrong_method.status_code == 405
    assert_only_bitrix24_may_frame(wrong_method)


def test_configured_extra_ancestors_are_added_and_must_be_csp_sources(
    client, fake, settings
) -> None:
    settings.IMBOT_FRAME_ANCESTORS = ["https://box.example.net"]
    assert_only_bitrix24_may_frame(Visit(fake).post(client), "https://box.example.net")
    settings.IMBOT_FRAME_ANCESTORS = ["https://x.example; script-src *"]
    with pytest.raises(ValueError, match="not a CSP source"):
        Visit(fake).post(client)


def test_other_pages_stay_unframeable(client) -> None:
    response = client.get("/admin/login/")
    assert response.headers["X-Frame-Options"] == "DENY"


# --------------------------------------------------------------------------- hostile bodies


def test_an_upload_larger_than_the_body_limit_is_refused_before_it_is_read(client) -> None:
    # Multipart files are not bounded by DATA_UPLOAD_MAX_MEMORY_SIZE: Django would read them
    # to the end and spool them to disk.  Bitrix24's own form is a few hundred bytes.
    upload = SimpleUploadedFile("big.bin", b"x" * (3 * 1024 * 1024))
    response = client.post(PATH, {"AUTH_ID": "a", "member_id": "b", "file": upload})
    assert response.status_code == 413
    assert_only_bitrix24_may_frame(response)


def test_a_form_larger_than_the_body_limit_is_413(client, settings) -> None:
    settings.IMBOT_MAX_BODY_BYTES = 1000
    response = client.post(
        PATH, "AUTH_ID=a&member_id=b&PLACEMENT_OPTIONS=" + "x" * 1000, content_type=FORM
    )
    assert response.status_code == 413
    assert_only_bitrix24_may_frame(response)
    response = client.post(PATH, "AUTH_ID=a", content_type=FORM, CONTENT_LENGTH="ten")
    assert response.status_code == 400
