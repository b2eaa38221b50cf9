"""imbot_simulate --api v2: a Chatbots 2.0 bot answering, in fetch mode with no address at all."""

from __future__ import annotations

from io import StringIO
from typing import Any

import pytest
from django.core.management import call_command

from imbot_app.models import Bot, BotFetchState, Event, Message, Portal

from .test_simulate import free_port

pytestmark = pytest.mark.django_db(transaction=True)


def test_fetch_mode_answers_with_nothing_served_but_the_fake() -> None:
    out = StringIO()

    call_command(
        "imbot_simulate", api="v2", mode="fetch", fake_port=free_port(), keep=True, stdout=out
    )

    text = out.getvalue()
    assert "in fetch mode" in text and "no public address" in text
    assert "-> /echo text (ONIMBOTV2COMMANDADD) queued as event" in text
    assert "Event.get: polled (1 stored" in text
    assert "<- imbot.v2.Command.answer: 'text'" in text
    assert "<- imbot.v2.Command.answer: 'Hi! I am the echo bot." in text
    assert "<- imbot.v2.Chat.Message.send: 'Hi! I am the echo bot." in text
    assert "<- imbot.v2.Chat.Message.send: 'Hello! Type /echo" in text
    bot = Bot.objects.get()
    assert (bot.api, bot.event_mode) == ("v2", "fetch")
    state = BotFetchState.objects.get(bot=bot)
    assert state.events_stored == 5 and state.last_error == ""
    assert set(Event.objects.values_list("name", flat=True)) == {
        "ONIMBOTV2COMMANDADD",
        "ONIMBOTV2MESSAGEADD",
        "ONIMBOTV2JOINCHAT",
    }
    assert set(Event.objects.values_list("status", flat=True)) == {Event.Status.PROCESSED}
    # The two Chat.Message.send replies are stored; a v2 Command.answer returns true, not a
    # message id, so the two command answers leave no outgoing Message row.
    assert Message.objects.filter(direction="out").count() == 2


def test_the_simulated_portal_is_removed_afterwards() -> None:
    out = StringIO()
    call_command("imbot_simulate", api="v2", fake_port=free_port(), stdout=out)
    assert "Removed the simulated portal" in out.getvalue()
    assert not Portal.objects.exists() and not Event.objects.exists()


def test_webhook_mode_posts_form_encoded_v2_events(live_server: Any, settings: Any) -> None:
    settings.IMBOT_SENDER = "imbot_app.outbound.sender.RestSender"
    out = StringIO()

    call_command(
        "imbot_simulate",
        api="v2",
        mode="webhook",
        url=f"{live_server.url}/imbot/events/",
        fake_port=free_port(),
        keep=True,
        stdout=out,
    )

    text = out.getvalue()
    assert "-> /echo text (ONIMBOTV2COMMANDADD) posted: 200 accepted" in text
    assert "<- imbot.v2.Command.answer: 'text'" in text
    assert "<- imbot.v2.Chat.Message.send: 'Hello! Type /echo" in text
    assert Bot.objects.get().event_mode == "webhook"
    assert not BotFetchState.objects.exists()
