"""imbot_simulate: a simulated portal installs itself on a live bot and gets its answers."""

from __future__ import annotations

import socket
from io import StringIO
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from imbot_app.models import Event, Message, Portal
from imbot_app.testing import FakeBitrix24


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.django_db(transaction=True)
def test_simulated_portal_gets_the_echo_bots_answers(live_server: Any, settings: Any) -> None:
    port = free_port()
    settings.IMBOT_OAUTH_SERVERS = [f"http://127.0.0.1:{port}/rest/"]
    settings.IMBOT_CLIENT_ID = FakeBitrix24.client_id
    settings.IMBOT_CLIENT_SECRET = FakeBitrix24.client_secret
    settings.IMBOT_SENDER = "imbot_app.outbound.sender.RestSender"
    out = StringIO()

    call_command(
        "imbot_simulate",
        url=f"{live_server.url}/imbot/events/",
        fake_port=port,
        keep=True,
        stdout=out,
    )

    text = out.getvalue()
    assert "installed (event" in text
    # Without --command / --message: each command the project declares (IMBOT_BOTS), once.
    assert "-> /echo text (ONIMCOMMANDADD): 200 accepted" in text
    assert "<- imbot.command.answer: 'text'" in text
    assert "-> /help (ONIMCOMMANDADD)" in text
    assert "<- imbot.command.answer: 'Hi! I am the echo bot." in text
    assert "<- imbot.message.add: 'Hi! I am the echo bot." in text
    assert "<- imbot.message.add: 'Hello! Type /echo" in text
    portal = Portal.objects.get()
    assert portal.client_endpoint == f"http://127.0.0.1:{port}/rest/"  # from app.info
    assert set(Event.objects.values_list("name", flat=True)) == {
        "ONAPPINSTALL",
        "ONIMCOMMANDADD",
        "ONIMBOTMESSAGEADD",
        "ONIMBOTJOINCHAT",
    }
    assert Message.objects.filter(direction="out").count() == 4


@pytest.mark.django_db(transaction=True)
def test_an_app_that_does_not_trust_the_fake_gets_a_clear_hint(live_server, settings) -> None:
    settings.IMBOT_OAUTH_SERVERS = ["https://oauth.bitrix.info/rest/"]
    settings.IMBOT_CLIENT_ID = FakeBitrix24.client_id
    with pytest.raises(CommandError, match=r"IMBOT_OAUTH_SERVERS=http://127\.0\.0\.1"):
        call_command(
            "imbot_simulate",
            url=f"{live_server.url}/imbot/events/",
            fake_port=free_port(),
            stdout=StringIO(),
        )
    assert not Portal.objects.exists()
