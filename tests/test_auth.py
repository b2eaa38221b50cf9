"""Who is trusted: install verification against a real (fake) OAuth server, token checks."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from django.core.checks import run_checks

from imbot_app.models import Credential, Event, Message, Portal
from imbot_app.sealing import token_matches
from imbot_app.testing import EventFactory, FakeBitrix24, post_event

pytestmark = pytest.mark.django_db

CLIENT_ID = "local.imbot.test"


@pytest.fixture
def verifying(settings: Any, fake_b24: FakeBitrix24) -> FakeBitrix24:
    """Install verification on, against the fake's OAuth endpoint."""
    settings.IMBOT_VERIFY_INSTALL = True
    settings.IMBOT_CLIENT_ID = CLIENT_ID
    settings.IMBOT_OAUTH_SERVERS = [fake_b24.rest_url]
    return fake_b24


def new_portal(fake: FakeBitrix24) -> EventFactory:
    return EventFactory(server_endpoint=fake.rest_url, client_id=CLIENT_ID)


def forbidden(response: Any) -> None:
    assert response.status_code == 403, response.content
    assert response.json() == {
        "error": "forbidden",
        "detail": "the event could not be authenticated",
    }


def test_verified_install_creates_the_portal(client, verifying) -> None:
    events = new_portal(verifying)
    payload = events.install()
    verifying.add_install(
        member_id=events.member_id,
        client_id=CLIENT_ID,
        access_token=payload["auth"]["access_token"],
        domain="verified.bitrix24.com",
        user_id=events.user_id,  # the installer is whom app.info says the token belongs to
    )
    payload["auth"]["client_endpoint"] = "https://attacker.example/rest/"

    response = post_event(client, payload)

    assert response.status_code == 200, response.content
    portal = Portal.objects.get(member_id=events.member_id)
    assert portal.status == Portal.Status.INSTALLED
    assert token_matches(portal.application_token, events.application_token)
    assert portal.language == "en"
    assert portal.installer_user_id == events.user_id
    # The REST endpoint comes from app.info, never from the unauthenticated payload.
    assert portal.client_endpoint == "https://verified.bitrix24.com/rest/"
    assert portal.domain == "verified.bitrix24.com"
    credential = Credential.objects.get(portal=portal, user_id=events.user_id)
    assert credential.access_token == payload["auth"]["access_token"]
    assert credential.refresh_token == payload["auth"]["refresh_token"]
    [call] = verifying.calls_to("app.info")
    assert call.token == payload["auth"]["access_token"]
    # Later events of the portal are accepted with the stored token.
    assert post_event(client, events.message("hi")).json()["status"] == "accepted"


@pytest.mark.parametrize(
    ("tamper", "reason"),
    [
        ("other_member", "belongs to member_id"),
        ("other_client", "belongs to client_id"),
        ("unknown_token", "app.info refused"),
        ("server_not_allowed", "not in IMBOT_OAUTH_SERVERS"),
        ("no_access_token", "no access_token"),
    ],
)
def test_unverifiable_install_is_refused(client, verifying, caplog, tamper, reason) -> None:
    events = new_portal(verifying)
    payload = events.install()
    token = payload["auth"]["access_token"]
    member_id, client_id = events.member_id, CLIENT_ID
    if tamper == "other_member":
        member_id = "0" * 32
    elif tamper == "other_client":
        client_id = "app.someone.else"
    elif tamper == "server_not_allowed":
        payload["auth"]["server_endpoint"] = "https://oauth.evil.example/rest/"
    elif tamper == "no_access_token":
        del payload["auth"]["access_token"]
    if tamper != "unknown_token":
        verifying.add_install(member_id=member_id, client_id=client_id, access_token=token)

    with caplog.at_level(logging.WARNING, logger="imbot_app"):
        response = post_event(client, payload)

    forbidden(response)
    assert not Portal.objects.exists()
    assert not Event.objects.exists()
    assert reason in caplog.text
    assert token not in caplog.text
    assert events.application_token not in caplog.text


def test_install_refused_when_client_id_is_not_configured(client, verifying, settings, caplog):
    settings.IMBOT_CLIENT_ID = ""
    events = new_portal(verifying)
    with caplog.at_level(logging.WARNING, logger="imbot_app"):
        forbidden(post_event(client, events.install()))
    assert "IMBOT_CLIENT_ID is not set" in caplog.text
    assert not Portal.objects.exists()


def test_install_refused_when_oauth_server_is_down(client, settings, caplog) -> None:
    with FakeBitrix24() as fake:
        url = fake.rest_url
    settings.IMBOT_VERIFY_INSTALL = True
    settings.IMBOT_CLIENT_ID = CLIENT_ID
    settings.IMBOT_OAUTH_SERVERS = [url]
    settings.IMBOT_HTTP_TIMEOUT = 2
    events = EventFactory(server_endpoint=url)
    with caplog.at_level(logging.WARNING, logger="imbot_app"):
        forbidden(post_event(client, events.install()))
    assert "could not verify" in caplog.text
    assert not Portal.objects.exists()


def test_unverified_first_install_is_trusted_when_verification_is_off(client, settings) -> None:
    settings.IMBOT_VERIFY_INSTALL = False
    events = EventFactory()
    assert post_event(client, events.install()).status_code == 200
    assert token_matches(Portal.objects.get().application_token, events.application_token)


def test_takeover_of_an_installed_portal_is_refused_without_verification(
    client, settings, factory
) -> None:
    settings.IMBOT_VERIFY_INSTALL = False
    intruder = EventFactory(member_id=factory.member_id)  # same portal, another token
    forbidden(post_event(client, intruder.install()))
    assert token_matches(Portal.objects.get().application_token, factory.application_token)


def test_reinstall_after_uninstall_is_trusted_without_verification(client, settings, factory):
    settings.IMBOT_VERIFY_INSTALL = False
    assert post_event(client, factory.uninstall()).status_code == 200
    again = EventFactory(member_id=factory.member_id)
    assert post_event(client, again.install()).status_code == 200
    portal = Portal.objects.get()
    assert portal.status == Portal.Status.INSTALLED
    assert token_matches(portal.application_token, again.application_token)


def test_system_check_warns_when_install_verification_is_off_in_production(settings) -> None:
    settings.IMBOT_VERIFY_INSTALL = False
    settings.DEBUG = False
    ids = {message.id for message in run_checks()}
    assert "imbot_app.W001" in ids
    settings.IMBOT_VERIFY_INSTALL = True
    settings.IMBOT_CLIENT_ID = CLIENT_ID
    ids = {message.id for message in run_checks()}
    assert "imbot_app.W001" not in ids
    assert "imbot_app.W002" not in ids


def test_system_check_warns_when_verification_has_no_client_id(settings) -> None:
    settings.IMBOT_VERIFY_INSTALL = True
    settings.IMBOT_CLIENT_ID = ""
    assert "imbot_app.W002" in {message.id for message in run_checks()}


def test_update_with_the_same_token_is_accepted(client, factory) -> None:
    assert post_event(client, factory.update("3")).status_code == 200
    assert Portal.objects.get().app_version == "3"


def test_update_with_a_new_token_is_verified_and_stored(client, verifying) -> None:
    events = new_portal(verifying)
    events.install_portal()
    old = events.application_token
    events.application_token = "new-token-after-update"
    payload = events.update("2")
    verifying.add_install(
        member_id=events.member_id,
        client_id=CLIENT_ID,
        access_token=payload["auth"]["access_token"],
        client_endpoint=verifying.rest_url,  # where user.admin is asked
    )
    assert post_event(client, payload).status_code == 200
    portal = Portal.objects.get()
    assert token_matches(portal.application_token, "new-token-after-update")
    assert not token_matches(portal.application_token, old)


def test_update_with_a_new_unverifiable_token_is_refused(client, verifying) -> None:
    events = new_portal(verifying)
    events.install_portal()
    old = events.application_token
    events.application_token = "forged"
    forbidden(post_event(client, events.update("2")))
    assert token_matches(Portal.objects.get().application_token, old)


def test_uninstall_marks_the_portal_and_deletes_tokens_but_keeps_history(client, factory) -> None:
    assert post_event(client, factory.message("remember me")).status_code == 200
    assert Credential.objects.exists()

    response = post_event(client, factory.uninstall(clean=True))

    assert response.status_code == 200
    portal = Portal.objects.get()
    assert portal.status == Portal.Status.UNINSTALLED
    assert portal.uninstalled_at is not None
    assert not Credential.objects.exists()
    assert Message.objects.get().text == "remember me"
    # Nothing is accepted for an uninstalled portal any more.
    forbidden(post_event(client, factory.message("anyone there?")))


def test_uninstall_with_a_wrong_token_is_refused(client, factory) -> None:
    payload = factory.uninstall()
    payload["auth"]["application_token"] = "guess"
    forbidden(post_event(client, payload))
    assert Portal.objects.get().status == Portal.Status.INSTALLED


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ("wrong_token", "wrong application_token"),
        ("unknown_portal", "unknown portal"),
        ("no_member_id", "no auth[member_id]"),
        ("no_token", "no auth[application_token]"),
        ("no_auth", "no auth[member_id]"),
    ],
)
def test_events_that_cannot_be_authenticated(client, factory, caplog, change, reason) -> None:
    payload = factory.message("let me in")
    secret = payload["auth"]["application_token"]
    if change == "wrong_token":
        payload["auth"]["application_token"] = "not-the-token"
    elif change == "unknown_portal":
        payload["auth"]["member_id"] = "f" * 32
    elif change == "no_member_id":
        del payload["auth"]["member_id"]
    elif change == "no_token":
        del payload["auth"]["application_token"]
    else:
        del payload["auth"]

    with caplog.at_level(logging.WARNING, logger="imbot_app"):
        forbidden(post_event(client, payload))

    assert not Event.objects.exists()
    assert not Message.objects.exists()
    assert reason in caplog.text
    assert secret not in caplog.text
    assert payload.get("auth", {}).get("access_token", "absent") not in caplog.text
