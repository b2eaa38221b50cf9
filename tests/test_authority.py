"""Issue 11, authority: nothing the wire says decides who owns a portal or where tokens go.

Each test here plays an attacker who holds something real (an ordinary user's access token, the
portal's member_id, its application token) and shows the app does not let it decide what only
Bitrix24 or an administrator of the portal may decide.
"""

from __future__ import annotations

from typing import Any

import pytest
import requests
from django.contrib.auth.models import Permission, User
from django.urls import reverse

from imbot_app import errors
from imbot_app.models import Credential, Event, Portal
from imbot_app.outbound import authority
from imbot_app.outbound.rest import RestClient
from imbot_app.sealing import token_matches
from imbot_app.testing import EventFactory, FakeBitrix24, post_event

pytestmark = pytest.mark.django_db

CLIENT_ID = "local.imbot.test"


@pytest.fixture
def verifying(settings: Any, fake_b24: FakeBitrix24) -> FakeBitrix24:
    settings.IMBOT_VERIFY_INSTALL = True
    settings.IMBOT_CLIENT_ID = CLIENT_ID
    settings.IMBOT_OAUTH_SERVERS = [fake_b24.rest_url]
    return fake_b24


def on_fake(fake: FakeBitrix24) -> EventFactory:
    """An installed portal living on the fake: its events carry tokens the fake issued."""
    events = EventFactory(server_endpoint=fake.rest_url, client_id=CLIENT_ID, fake=fake)
    events.install_portal()
    return events


def with_user_token(events: EventFactory, payload: dict[str, Any], user_id: int) -> None:
    """Replace the payload's access token by one of ``user_id``; the payload still claims
    to be the installer's (``auth[user_id]`` untouched)."""
    access, refresh = events.fake.issue_tokens(events.member_id, user_id, domain=events.domain)
    payload["auth"]["access_token"] = access
    payload["auth"]["refresh_token"] = refresh


# --------------------------------------------------------------------------- item 1


@pytest.mark.parametrize("kind", ["install", "update"])
def test_token_change_by_an_ordinary_user_is_refused(client, verifying, kind) -> None:
    events = on_fake(verifying)
    old = events.application_token
    events.application_token = "attacker-chosen-token"
    payload = events.install() if kind == "install" else events.update("2")
    with_user_token(events, payload, user_id=555)  # app.info vouches; user.admin says no

    response = post_event(client, payload)

    assert response.status_code == 403, response.content
    portal = Portal.objects.get()
    assert token_matches(portal.application_token, old)
    assert [c.token for c in verifying.calls_to("user.admin")] == [payload["auth"]["access_token"]]


@pytest.mark.parametrize("kind", ["install", "update"])
def test_token_change_by_an_administrator_is_accepted_installer_from_bitrix(
    client, verifying, kind
) -> None:
    events = on_fake(verifying)
    Portal.objects.update(installer_user_id=1)
    events.application_token = "rotated-by-bitrix24"
    payload = events.install() if kind == "install" else events.update("2")
    verifying.set_admin(events.member_id, 777)
    with_user_token(events, payload, user_id=777)
    payload["auth"]["user_id"] = "1"  # the payload's claim is not what is stored

    assert post_event(client, payload).status_code == 200
    portal = Portal.objects.get()
    assert token_matches(portal.application_token, "rotated-by-bitrix24")
    # An install makes the verified token's user the installer; an update keeps the installer.
    assert portal.installer_user_id == (777 if kind == "install" else 1)


def test_first_install_takes_the_installer_from_app_info(client, verifying) -> None:
    events = EventFactory(server_endpoint=verifying.rest_url, client_id=CLIENT_ID, fake=verifying)
    payload = events.install()
    with_user_token(events, payload, user_id=42)
    payload["auth"]["user_id"] = "1"
    assert post_event(client, payload).status_code == 200
    assert Portal.objects.get().installer_user_id == 42


# --------------------------------------------------------------------------- item 2


def test_unverified_install_never_sets_an_endpoint(client, settings) -> None:
    settings.IMBOT_VERIFY_INSTALL = False
    with FakeBitrix24() as attacker:
        events = EventFactory(domain="victim.bitrix24.com", server_endpoint=attacker.rest_url)
        payload = events.install()
        payload["auth"]["client_endpoint"] = attacker.rest_url
        assert post_event(client, payload).status_code == 200
        portal = Portal.objects.get()
        assert portal.server_endpoint in settings.IMBOT_OAUTH_SERVERS
        assert portal.client_endpoint == "https://victim.bitrix24.com/rest/"
        assert attacker.calls == []


def test_refresh_goes_only_to_an_allow_listed_oauth_server(settings) -> None:
    """A portal row naming another OAuth server (stored before this check) never gets the
    client secret and the refresh token sent there."""
    settings.IMBOT_CLIENT_ID = CLIENT_ID
    settings.IMBOT_CLIENT_SECRET = "the-real-secret"
    with FakeBitrix24() as attacker:
        portal = Portal.objects.create(
            member_id="m" * 32,
            domain="victim.bitrix24.com",
            client_endpoint=attacker.rest_url,
            server_endpoint=attacker.rest_url,
        )
        credential = Credential.objects.create(
            portal=portal, user_id=1, access_token="a" * 20, refresh_token="r" * 20
        )
        with pytest.raises(errors.BitrixError):
            RestClient(portal).refresh(credential)
        assert attacker.calls_to("oauth/token") == []
    credential.refresh_from_db()
    assert credential.refresh_token == "r" * 20


def test_portal_verified_by_the_install_page_is_not_trusted_on_first_use(
    client, settings, fake_b24
) -> None:
    settings.IMBOT_VERIFY_INSTALL = False
    settings.IMBOT_CLIENT_ID = CLIENT_ID
    settings.IMBOT_OAUTH_SERVERS = [fake_b24.rest_url]
    events = EventFactory(server_endpoint=fake_b24.rest_url, client_id=CLIENT_ID, fake=fake_b24)
    # What the install page leaves: a verified, installed portal without an application token.
    Portal.objects.create(
        member_id=events.member_id,
        domain=events.domain,
        client_endpoint=fake_b24.rest_url,
        server_endpoint=fake_b24.rest_url,
        installer_user_id=7,
    )
    forged = events.install()
    forged["auth"]["access_token"] = "made-up"
    assert post_event(client, forged).status_code == 403
    assert Portal.objects.get().application_token == ""
    # An ordinary user's real token does not do it either.
    payload = events.install()
    with_user_token(events, payload, user_id=555)
    assert post_event(client, payload).status_code == 403
    assert Portal.objects.get().application_token == ""
    # Bitrix24's own ONAPPINSTALL after installFinish carries the installing admin's token.
    fake_b24.set_admin(events.member_id, 7)
    payload = events.install()
    with_user_token(events, payload, user_id=7)
    assert post_event(client, payload).status_code == 200
    assert token_matches(Portal.objects.get().application_token, events.application_token)


# --------------------------------------------------------------------------- item 3


def test_an_authenticated_event_does_not_move_the_portal(client, factory) -> None:
    before = Portal.objects.get()
    payload = factory.message("hi")
    payload["auth"]["client_endpoint"] = "http://attacker.example:8080/steal/"
    payload["auth"]["domain"] = "attacker.example"
    assert post_event(client, payload).status_code == 200
    after = Portal.objects.get()
    assert (after.client_endpoint, after.domain) == (before.client_endpoint, before.domain)


def test_verified_endpoint_off_the_portals_domain_is_refused(client, verifying, settings) -> None:
    """app.info's word is needed, and so is https on the portal's own domain: the fake's
    http://127.0.0.1 endpoint passes only while the host is allow-listed."""
    settings.IMBOT_ENDPOINT_HOSTS = []
    events = EventFactory(server_endpoint=verifying.rest_url, client_id=CLIENT_ID, fake=verifying)
    assert post_event(client, events.install()).status_code == 403
    assert not Portal.objects.exists()
    settings.IMBOT_ENDPOINT_HOSTS = ["127.0.0.1"]
    assert post_event(client, events.install()).status_code == 200
    assert Portal.objects.get().client_endpoint == verifying.rest_url


@pytest.mark.parametrize(
    ("url", "allowed"),
    [
        ("https://portal.bitrix24.com/rest/", True),
        ("https://PORTAL.bitrix24.com:443/rest/", True),
        ("http://portal.bitrix24.com/rest/", False),
        ("https://portal.bitrix24.com.evil.example/rest/", False),
        ("https://portal.bitrix24.com@evil.example/rest/", False),
        ("https://user:pw@portal.bitrix24.com/rest/", False),
        ("https://portal.bitrix24.com:8443/rest/", False),
        ("https://evil.example/rest/", False),
        ("ftp://portal.bitrix24.com/rest/", False),
        ("https://[::1/rest/", False),
        ("http://127.0.0.1:9/rest/", True),  # allow-listed by the test settings
        ("", False),
    ],
)
def test_where_a_portals_tokens_may_go(url, allowed) -> None:
    assert authority.endpoint_allowed(url, "portal.bitrix24.com") is allowed


def test_an_uninstalled_portals_invalid_uninstall_is_not_stored(client, factory) -> None:
    assert post_event(client, factory.uninstall()).status_code == 200
    broken = factory.uninstall()
    broken["data"]["CLEAN"] = "perhaps"  # not a Y/N flag: invalid data, authenticated portal
    assert post_event(client, broken).status_code == 400
    assert Event.objects.count() == 1


# --------------------------------------------------------------------------- item 4


@pytest.mark.parametrize(
    ("model", "lookup"),
    [
        ("portal", "application_token__startswith"),
        ("portal", "credentials__access_token__startswith"),
        ("credential", "access_token__startswith"),
        ("credential", "refresh_token__startswith"),
        ("credential", "portal__application_token__startswith"),
        ("bot", "portal__application_token__startswith"),
    ],
)
def test_admin_refuses_lookups_on_secret_columns(client, factory, model, lookup) -> None:
    portal = Portal.objects.get()
    Credential.objects.create(portal=portal, user_id=1, access_token="sekrit", refresh_token="rr")
    viewer = User.objects.create_user("viewer", password="pw", is_staff=True)
    for name in ("view_portal", "view_credential", "view_bot"):
        viewer.user_permissions.add(Permission.objects.get(codename=name))
    client.force_login(viewer)
    url = reverse(f"admin:imbot_app_{model}_changelist")
    prefix = portal.application_token[:1] if "application" in lookup else "s"

    response = client.get(url, {lookup: prefix})

    assert response.status_code == 400, response.status_code
    assert client.get(url).status_code == 200


def test_the_fake_answers_user_admin(fake_b24: FakeBitrix24) -> None:
    """user.admin for a token the fake issued: false unless its user was made an admin."""
    access, _ = fake_b24.issue_tokens("m" * 32, 5)
    answer = requests.post(fake_b24.rest_url + "user.admin", data={"auth": access}, timeout=5)
    assert answer.json()["result"] is False
    fake_b24.set_admin("m" * 32, 5)
    answer = requests.post(fake_b24.rest_url + "user.admin", data={"auth": access}, timeout=5)
    assert answer.json()["result"] is True
