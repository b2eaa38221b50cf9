"""Issue 11, item 10: inputs that answered 500 get a 4xx or a 200, never a 5xx."""

from __future__ import annotations

import secrets
import threading
from typing import Any

import pytest
from django.db import connection
from django.test import Client

from imbot_app import wire
from imbot_app.models import Credential, Event, Portal
from imbot_app.sealing import token_matches
from imbot_app.testing import EventFactory, post_event

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("expires", ["99999999999999999999", "²", "-5", "1e9", " 3600 ", ""])
def test_install_page_survives_any_auth_expires(client, settings, fake_b24, expires) -> None:
    settings.IMBOT_CLIENT_ID = fake_b24.client_id
    settings.IMBOT_OAUTH_SERVERS = [fake_b24.rest_url]
    settings.IMBOT_REGISTER_ON_INSTALL = False
    member_id = secrets.token_hex(16)
    access, refresh = fake_b24.issue_tokens(member_id, 7, domain="ui.bitrix24.com")
    form = {"AUTH_ID": access, "AUTH_EXPIRES": expires, "REFRESH_ID": refresh}

    response = client.post("/imbot/install/", {**form, "member_id": member_id})

    assert response.status_code == 200, response.status_code
    credential = Credential.objects.get(portal__member_id=member_id, user_id=7)
    if expires.strip() in ("99999999999999999999", "²", "-5", "1e9", ""):
        assert credential.expires_at is None
    else:
        assert credential.expires_at is not None


def test_json_containers_count_as_fields(client, factory) -> None:
    body = '{"event":"ONIMBOTMESSAGEADD","data":[' + ",".join(["{}"] * 70_000) + "]}"
    with pytest.raises(wire.WireError) as caught:
        wire.decode_json(body.encode(), max_fields=1000, max_depth=16)
    assert caught.value.code == "too_many_fields"

    response = client.post("/imbot/events/", body, content_type="application/json")

    assert response.status_code == 400, response.content
    assert response.json()["error"] == "too_many_fields"
    # An ordinary JSON event with its containers still fits.
    assert post_event(client, factory.message("fits"), as_json=True).status_code == 200


@pytest.mark.postgres
@pytest.mark.skipif(connection.vendor != "postgresql", reason="concurrent writers need PostgreSQL")
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("same_payload", [True, False], ids=["redelivered", "different-tokens"])
def test_concurrent_installs_of_a_new_portal_never_answer_500(settings, same_payload) -> None:
    settings.IMBOT_VERIFY_INSTALL = False
    copies = 6
    member_id = secrets.token_hex(16)
    payloads = [EventFactory(member_id=member_id).install(ts="1772109486")]
    if same_payload:
        payloads *= copies
    else:
        payloads += [EventFactory(member_id=member_id).install() for _ in range(copies - 1)]
    barrier = threading.Barrier(copies)
    answers: list[Any] = []
    errors: list[BaseException] = []

    def deliver(payload: dict[str, Any]) -> None:
        try:
            client = Client(raise_request_exception=False)
            barrier.wait(timeout=10)
            answers.append(post_event(client, payload))
        except BaseException as exc:  # surfaced below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=deliver, args=(p,)) for p in payloads]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert not errors
    codes = sorted(a.status_code for a in answers)
    assert len(codes) == copies
    assert all(code in (200, 403) for code in codes), codes
    portal = Portal.objects.get(member_id=member_id)
    if same_payload:
        assert codes == [200] * copies
        assert sorted(a.json()["status"] for a in answers) == ["accepted"] + ["duplicate"] * (
            copies - 1
        )
        assert Event.objects.filter(name="ONAPPINSTALL").count() == 1
    else:
        # One installation won; the others named another token for a portal now installed.
        assert codes.count(200) >= 1
        winners = {p["auth"]["application_token"] for p in payloads}
        assert any(token_matches(portal.application_token, token) for token in winners)
