"""Replies from handlers reach the fake Bitrix24 and are kept as the chat's outgoing history."""

from __future__ import annotations

from typing import Any

import pytest

from imbot_app import on_command, on_message
from imbot_app.dispatch.context import CommandContext, MessageContext
from imbot_app.models import Credential, HandlerRun, Message
from imbot_app.outbound.blocks import Attach, Keyboard
from imbot_app.testing import EventFactory, FakeBitrix24
from project.imbot_handlers import HELP_TEXT


@pytest.fixture
def live(db: None, settings: Any, fake_b24: FakeBitrix24) -> EventFactory:
    """A portal on the fake, with replies really sent (RestSender)."""
    settings.IMBOT_SENDER = "imbot_app.outbound.sender.RestSender"
    settings.IMBOT_CLIENT_ID = fake_b24.client_id
    settings.IMBOT_CLIENT_SECRET = fake_b24.client_secret
    settings.IMBOT_OAUTH_SERVERS = [fake_b24.rest_url]  # refreshes go only to these
    settings.IMBOT_RATE_LIMIT, settings.IMBOT_RATE_BURST = 1000.0, 1000
    return EventFactory.connected(fake_b24, commands={"echo": 103, "page": 7})


def test_echo_command_ends_in_one_answer_on_the_fake(live, fake_b24, deliver) -> None:
    response = deliver(live.command("echo", "test", command_id=103, message_id=33899))

    [answer] = fake_b24.calls_to("imbot.command.answer")
    assert answer.params["COMMAND_ID"] == 103
    assert answer.params["MESSAGE_ID"] == 33899
    assert answer.params["MESSAGE"] == "test"
    # As the bot, with the bot's token from the event's COMMAND block.
    assert answer.token == Credential.objects.get(user_id=live.bot_id).access_token

    [sent_id] = fake_b24.messages(live.member_id)
    out = Message.objects.get(direction=Message.Direction.OUT)
    assert out.message_id == sent_id
    assert out.text == "test"
    assert out.event_id == response.json()["event_id"]
    typed = Message.objects.get(direction=Message.Direction.IN)
    assert out.chat_id == typed.chat_id
    assert out.author is not None and out.author.is_bot
    assert out.bot is not None and out.bot.bot_id == live.bot_id
    [run] = HandlerRun.objects.all()
    assert run.status == HandlerRun.Status.SUCCEEDED


def test_private_message_gets_help_and_the_history_holds_both_sides(live, fake_b24, deliver):
    deliver(live.message("hello?"))

    [call] = fake_b24.calls_to("imbot.message.add")
    assert call.params == {
        "BOT_ID": live.bot_id,
        "DIALOG_ID": str(live.user_id),
        "MESSAGE": HELP_TEXT,
    }
    history = list(
        Message.objects.order_by("message_id").values_list("direction", "text", "chat__dialog_id")
    )
    assert history == [
        ("in", "hello?", str(live.user_id)),
        ("out", HELP_TEXT, str(live.user_id)),
    ]


def test_keyboard_and_attach_reach_bitrix24_as_structures(
    live, fake_b24, deliver, isolated_routes
) -> None:
    @on_message()
    def rich(message: MessageContext) -> None:
        message.reply(
            "Pick one",
            keyboard=Keyboard().button("Next", command="page", params="2"),
            attach=Attach(color="#29619b").grid([("Status", "open")]),
        )

    deliver(live.message("menu please"))

    [call] = fake_b24.calls_to("imbot.message.add")
    assert call.params["KEYBOARD"] == [
        {"TEXT": "Next", "DISPLAY": "LINE", "COMMAND": "page", "COMMAND_PARAMS": "2"}
    ]
    assert call.params["ATTACH"] == {
        "COLOR": "#29619b",
        "BLOCKS": [
            {"GRID": [{"NAME": "Status", "VALUE": "open", "DISPLAY": "LINE", "WIDTH": 100}]}
        ],
    }


def test_oversized_attach_is_refused_before_any_call(live, fake_b24, deliver, isolated_routes):
    @on_message()
    def huge(message: MessageContext) -> None:
        message.reply("x", attach=Attach().message("y" * 40_000))

    deliver(live.message("go"))

    assert fake_b24.calls_to("imbot.message.add") == []
    [run] = HandlerRun.objects.all()
    assert run.status == HandlerRun.Status.FAILED
    assert "ATTACH is" in run.error and "30720" in run.error


def test_keyboard_click_edits_the_message_carrying_the_keyboard(
    live, fake_b24, deliver, isolated_routes
) -> None:
    @on_message()
    def menu(message: MessageContext) -> None:
        message.reply("Page 1", keyboard=Keyboard().button("Next", command="page", params="2"))

    @on_command("page")
    def page(command: CommandContext) -> None:
        command.update(
            f"Page {command.params}", keyboard=Keyboard().button("Back", command="page", params="1")
        )

    deliver(live.message("menu"))
    keyboard_message = Message.objects.get(direction=Message.Direction.OUT)
    deliver(
        live.command(
            "page", "2", command_id=7, context="KEYBOARD", message_id=keyboard_message.message_id
        )
    )

    [update] = fake_b24.calls_to("imbot.message.update")
    assert update.params["MESSAGE_ID"] == keyboard_message.message_id
    assert update.params["MESSAGE"] == "Page 2"
    assert fake_b24.messages(live.member_id)[keyboard_message.message_id]["MESSAGE"] == "Page 2"
    keyboard_message.refresh_from_db()
    assert keyboard_message.text == "Page 2"
    assert keyboard_message.edited_at is not None


def test_update_of_a_reply_and_typing(live, fake_b24, deliver, isolated_routes) -> None:
    seen: dict[str, Any] = {}

    @on_message()
    def think(message: MessageContext) -> None:
        message.send_typing()
        first = message.reply("thinking...")
        message.update("done: 42", message_id=first)
        with pytest.raises(ValueError, match="message_id"):
            message.update("no target")
        seen["id"] = first

    deliver(live.message("question"))

    [typing] = fake_b24.calls_to("imbot.chat.sendTyping")
    assert typing.params == {"BOT_ID": live.bot_id, "DIALOG_ID": str(live.user_id)}
    out = Message.objects.get(message_id=seen["id"])
    assert (out.direction, out.text) == ("out", "done: 42")
    assert fake_b24.messages(live.member_id)[seen["id"]]["MESSAGE"] == "done: 42"


def test_reply_survives_an_expired_token(live, fake_b24, deliver) -> None:
    payload = live.command("echo", "still here")
    fake_b24.expire()  # every token issued so far, the event's own included
    deliver(payload)

    # Refused once with expired_token, refreshed, then answered.
    refused, answer = fake_b24.calls_to("imbot.command.answer")
    assert refused.token != answer.token
    assert fake_b24.refreshes == 1
    assert Message.objects.get(direction="out").text == "still here"
    assert answer.params["MESSAGE"] == "still here"
