"""The README's test-kit example, run as written (plus this suite's offline default undone)."""

from __future__ import annotations

import pytest

from imbot_app.models import Message
from imbot_app.testing import EventFactory, FakeBitrix24, post_event


@pytest.mark.django_db(transaction=True)  # so the handlers run after the commit
def test_echo_answers(client, settings):
    settings.IMBOT_SENDER = (
        "imbot_app.outbound.sender.RestSender"  # tests/conftest.py keeps replies offline
    )
    with FakeBitrix24() as b24:
        settings.IMBOT_CLIENT_ID, settings.IMBOT_CLIENT_SECRET = b24.client_id, b24.client_secret
        events = EventFactory.connected(b24)
        post_event(client, events.command("echo", "hello", command_id=103))
        [answer] = b24.calls_to("imbot.command.answer")
        assert answer.params["MESSAGE"] == "hello"
        assert Message.objects.get(direction="out").text == "hello"
