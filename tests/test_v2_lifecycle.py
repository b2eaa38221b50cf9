"""The install lifecycle registers Chatbots 2.0 bots beside v1 ones, through the endpoint."""

from __future__ import annotations

from typing import Any

import pytest

from imbot_app.models import Bot, Command, Portal
from imbot_app.testing import EventFactory, FakeBitrix24
from tests.registration_kit import configure, echo, rest_calls

pytestmark = pytest.mark.django_db

V2 = "imbot.v2."


@pytest.fixture
def events(settings: Any, fake_b24: FakeBitrix24, isolated_routes: Any) -> EventFactory:
    configure(settings, fake_b24, echo(), echo(code="helper", name="Helper", api="v2"))
    settings.IMBOT_VERIFY_INSTALL = True
    return EventFactory(
        server_endpoint=fake_b24.rest_url,
        client_id=fake_b24.client_id,
        fake=fake_b24,
        bot_code="legacy",
    )


def test_an_install_registers_the_v1_and_the_v2_bot(fake_b24, events, deliver) -> None:
    payload = events.install()
    deliver(payload)

    portal = Portal.objects.get(member_id=events.member_id)
    assert portal.registration_error == "" and portal.registered_at is not None
    calls = rest_calls(fake_b24)
    assert calls.count("imbot.register") == 1 and calls.count(V2 + "Bot.register") == 1
    [register] = fake_b24.calls_to(V2 + "Bot.register")
    assert register.token == payload["auth"]["access_token"]  # the installer's, as for v1
    helper = Bot.objects.get(portal=portal, code="helper")
    assert (helper.api, helper.event_mode) == ("v2", "fetch")
    assert fake_b24.v2.bot(events.member_id, helper.bot_id) is not None
    assert Bot.objects.get(portal=portal, code="echobot").api == "v1"
    v2_commands = Command.objects.filter(bot=helper, deleted_at=None)
    assert set(v2_commands.values_list("command", flat=True)) == {"echo", "help"}


def test_an_update_sends_a_changed_v2_declaration(settings, fake_b24, events, deliver) -> None:
    deliver(events.install())
    settings.IMBOT_BOTS = [echo(), echo(code="helper", name="Helper 2", api="v2")]
    fake_b24.calls.clear()

    deliver(events.update())

    assert [c for c in rest_calls(fake_b24) if c.startswith("imbot.")] == [V2 + "Bot.update"]
    [update] = fake_b24.calls_to(V2 + "Bot.update")
    assert update.params["fields"]["properties"]["name"] == "Helper 2"


def test_an_install_with_only_fetch_bots_needs_no_public_url(
    settings, fake_b24, events, deliver
) -> None:
    settings.IMBOT_PUBLIC_URL = ""
    settings.IMBOT_BOTS = [echo(code="helper", name="Helper", api="v2")]

    deliver(events.install())

    portal = Portal.objects.get(member_id=events.member_id)
    assert portal.registration_error == "" and portal.registered_at is not None
    assert Bot.objects.get(portal=portal, code="helper").api == "v2"
