"""The install page of an application with a user interface, opened as Bitrix24 opens it."""

from __future__ import annotations

import logging
import secrets
from datetime import timedelta
from typing import Any
from urllib.parse import urlencode

import pytest
from django.test import Client
from django.utils import timezone

from imbot_app.models import Bot, Credential, Event, Portal
from imbot_app.sealing import token_matches
from imbot_app.testing import EventFactory, FakeBitrix24
from tests.registration_kit import HANDLER_URL, configure, rest_calls

pytestmark = pytest.mark.django_db

PATH = "/imbot/install/"
DOMAIN = "ui.bitrix24.com"
FINISH = "BX24.installFinish()"


@pytest.fixture
def fake(settings: Any, fake_b24: FakeBitrix24) -> FakeBitrix24:
    configure(settings, fake_b24)
    return fake_b24


class Visit:
    """What Bitrix24 sends when it opens the page for ``user_id`` of portal ``member_id``."""

    def __init__(self, fake: FakeBitrix24, member_id: str = "", user_id: int = 7) -> None:
        self.member_id = member_id or secrets.token_hex(16)
        self.user_id = user_id
        self.access, self.refresh = fake.issue_tokens(self.member_id, user_id, domain=DOMAIN)
        self.query = {
            "DOMAIN": DOMAIN,
            "PROTOCOL": "1",
            "LANG": "en",
            "APP_SID": secrets.token_hex(16),
        }
        self.form = {
            "AUTH_ID": self.access,
            "AUTH_EXPIRES": "3600",
            "REFRESH_ID": self.refresh,
            "member_id": self.member_id,
            "status": "L",
            "PLACEMENT": "DEFAULT",
            "PLACEMENT_OPTIONS": "{}",
        }

    def post(self, client: Client) -> Any:
        return client.post(f"{PATH}?{urlencode(self.query)}", self.form)

    def get(self, client: Client) -> Any:
        return client.get(f"{PATH}?{urlencode({**self.query, **self.form})}")


def test_the_page_verifies_stores_registers_and_finishes_the_install(client, fake) -> None:
    visit = Visit(fake)

    response = visit.post(client)

    assert response.status_code == 200
    html = response.content.decode()
    assert '<script src="//api.bitrix24.com/api/v1/"></script>' in html
    assert FINISH in html
    assert "X-Frame-Options" not in response.headers  # Bitrix24 shows it in an iframe
    # The token was checked with app.info before anything was stored.
    [info] = fake.calls_to("app.info")
    assert info.token == visit.access
    portal = Portal.objects.get(member_id=visit.member_id)
    assert portal.status == Portal.Status.INSTALLED
    assert portal.domain == DOMAIN
    assert portal.client_endpoint == fake.rest_url  # from app.info's answer
    assert portal.server_endpoint == fake.rest_url
    assert (portal.language, portal.installer_user_id) == ("en", visit.user_id)
    assert portal.application_token == ""  # the page gets none; the bound ONAPPINSTALL brings it
    credential = Credential.objects.get(portal=portal, user_id=visit.user_id)
    assert (credential.access_token, credential.refresh_token) == (visit.access, visit.refresh)
    assert credential.expires_at is not None
    assert abs(credential.expires_at - (timezone.now() + timedelta(hours=1))) < timedelta(minutes=1)
    # The bots are registered with the page's token, and ONAPPINSTALL is bound.
    assert fake.calls_to("imbot.register")[0].token == visit.access
    assert Bot.objects.filter(portal=portal, code="echobot", deleted_at=None).exists()
    assert ("ONAPPINSTALL", HANDLER_URL) in fake.bindings(visit.member_id)
    portal.refresh_from_db()
    assert portal.registered_at is not None
    assert "register bot" in html and "echobot" in html
    # The example project's restyled template (templates/imbot_app/install.html) is used.
    assert "<title>Echo bot</title>" in html
    assert "The echo bot is ready on ui.bitrix24.com" in html
    # No token is shown.
    assert visit.access not in html and visit.refresh not in html


def test_the_portal_comes_from_app_info_not_from_the_request(client, fake) -> None:
    visit = Visit(fake)
    visit.query["DOMAIN"] = "attacker.example"
    assert visit.post(client).status_code == 200
    portal = Portal.objects.get(member_id=visit.member_id)
    assert portal.domain == DOMAIN
    assert "attacker" not in portal.client_endpoint


def test_a_get_with_everything_in_the_query_string_works_too(client, fake) -> None:
    response = Visit(fake).get(client)
    assert response.status_code == 200
    assert FINISH in response.content.decode()


def test_bitrix24s_cross_site_post_needs_no_csrf_token(fake) -> None:
    response = Visit(fake).post(Client(enforce_csrf_checks=True))
    assert response.status_code == 200
    assert FINISH in response.content.decode()


def test_a_failed_registration_shows_the_error_and_does_not_finish(client, fake) -> None:
    fake.fail_method("imbot.command.register", error="LANG_ERROR", description="Lang set empty")
    visit = Visit(fake)

    response = visit.post(client)

    assert response.status_code == 200
    html = response.content.decode()
    assert FINISH not in html
    assert "The installation did not finish" in html
    assert "LANG_ERROR" in html and "Lang set empty" in html
    portal = Portal.objects.get(member_id=visit.member_id)
    assert "LANG_ERROR" in portal.registration_error
    # Opening the page again (the fault is gone) finishes the job.
    again = visit.post(client)
    assert FINISH in again.content.decode()


def test_a_missing_public_url_shows_the_error(client, fake, settings) -> None:
    settings.IMBOT_PUBLIC_URL = ""
    visit = Visit(fake)
    html = visit.post(client).content.decode()
    assert FINISH not in html
    assert "IMBOT_PUBLIC_URL is not set" in html
    portal = Portal.objects.get(member_id=visit.member_id)
    assert "IMBOT_PUBLIC_URL is not set" in portal.registration_error


@pytest.mark.parametrize("forgery", ["unknown_token", "other_portal", "other_app"])
def test_an_unverifiable_auth_id_is_refused_and_nothing_is_stored(
    client, fake, settings, caplog, forgery
) -> None:
    visit = Visit(fake)
    if forgery == "unknown_token":
        visit.form["AUTH_ID"] = secrets.token_hex(26)
    elif forgery == "other_portal":
        visit.form["member_id"] = secrets.token_hex(16)
    else:
        settings.IMBOT_CLIENT_ID = "app.someone.else"
    caplog.set_level(logging.WARNING, logger="imbot_app")

    response = visit.post(client)

    assert response.status_code == 403
    html = response.content.decode()
    assert FINISH not in html
    assert "Bitrix24 did not confirm this installation" in html
    assert not Portal.objects.exists()
    assert not Credential.objects.exists()
    assert rest_calls(fake) == []
    assert "install page refused" in caplog.text
    assert visit.form["AUTH_ID"] not in caplog.text


def test_the_page_without_bitrix24s_parameters_says_so(client, fake) -> None:
    response = client.get(PATH)
    assert response.status_code == 400
    assert "opened without Bitrix24&#x27;s AUTH_ID and member_id" in response.content.decode()
    assert not fake.calls


def test_without_registration_on_install_the_page_still_finishes(client, fake, settings):
    settings.IMBOT_REGISTER_ON_INSTALL = False
    visit = Visit(fake)
    assert FINISH in visit.post(client).content.decode()
    assert rest_calls(fake) == []
    assert Portal.objects.filter(member_id=visit.member_id).exists()


def test_a_later_visitor_does_not_become_the_installer(client, fake) -> None:
    first = Visit(fake)
    first.post(client)
    second = Visit(fake, member_id=first.member_id, user_id=9)

    assert FINISH in second.post(client).content.decode()

    portal = Portal.objects.get(member_id=first.member_id)
    assert portal.installer_user_id == first.user_id
    assert Credential.objects.filter(portal=portal).count() == 2
    assert len(fake.calls_to("imbot.register")) == 1  # nothing new to register


def test_a_visitor_finishing_a_reinstall_becomes_the_installer(client, fake) -> None:
    first = Visit(fake)
    first.post(client)
    second = Visit(fake, member_id=first.member_id, user_id=9)
    fake.add_install(
        member_id=first.member_id,
        client_id=fake.client_id,
        access_token=second.access,
        domain=DOMAIN,
        client_endpoint=fake.rest_url,
        user_id=9,
        installed=False,
    )
    second.post(client)
    assert Portal.objects.get(member_id=first.member_id).installer_user_id == 9


@pytest.mark.parametrize("verify", [True, False])
def test_the_bound_install_event_then_brings_the_application_token(
    client, fake, settings, deliver, verify
) -> None:
    settings.IMBOT_VERIFY_INSTALL = verify
    visit = Visit(fake)
    fake.set_admin(visit.member_id, visit.user_id)  # who installs is an administrator
    visit.post(client)
    registered = len(fake.calls_to("imbot.register"))
    # After installFinish Bitrix24 delivers the ONAPPINSTALL the page bound.
    events = EventFactory(
        member_id=visit.member_id,
        domain=DOMAIN,
        user_id=visit.user_id,
        server_endpoint=fake.rest_url,
        client_id=fake.client_id,
        fake=fake,
    )

    deliver(events.install())

    portal = Portal.objects.get(member_id=visit.member_id)
    assert token_matches(portal.application_token, events.application_token)
    assert len(fake.calls_to("imbot.register")) == registered  # already registered
    install = Event.objects.get(portal=portal, name="ONAPPINSTALL")
    assert install.status == "processed"
    # The bots' events are accepted from now on.
    deliver(events.message("hello"))
