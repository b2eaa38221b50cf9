"""A Chatbots 2.0 bot's replies: every helper calls its imbot.v2 method on the fake, the
bot's messages are stored, and the example project's handlers answer unchanged.

The endpoint does not take v2 webhooks on this branch, so events go the way it will send them:
``protocol.parse_envelope`` -> ``protocol.parse_event`` -> ``store_event`` -> ``run_event``.
"""

from __future__ import annotations

import logging
from io import StringIO
from typing import Any

import pytest
from django.core.management import call_command

from imbot_app import on_command, on_message
from imbot_app.dispatch.context import CommandContext, MessageContext
from imbot_app.dispatch.runner import run_event
from imbot_app.inbound.auth import Authenticated
from imbot_app.inbound.store import store_event
from imbot_app.lifecycle.registration import sync_portal
from imbot_app.models import Bot, Command, HandlerRun, Message, Portal
from imbot_app.outbound.blocks import Keyboard
from imbot_app.protocol import dedup_for, parse_envelope, parse_event
from imbot_app.testing import EventFactory, FakeBitrix24, V2Event, V2EventFactory
from project.imbot_handlers import HELP_TEXT

from .registration_kit import configure, echo, portal_on

pytestmark = pytest.mark.django_db

V2 = "imbot.v2."


@pytest.fixture
def v2bot(settings: Any, fake_b24: FakeBitrix24) -> tuple[Portal, Bot, V2EventFactory]:
    """The example's echo bot declared as a v2 bot, registered on a portal on the fake."""
    configure(settings, fake_b24, echo(api="v2"))
    settings.IMBOT_SENDER = "imbot_app.outbound.sender.RestSender"
    _, portal = portal_on(fake_b24)
    assert sync_portal(portal).ok
    bot = Bot.objects.get(portal=portal, code="echobot", deleted_at__isnull=True)
    events = V2EventFactory(member_id=portal.member_id, bot_id=bot.bot_id, bot_code="echobot")
    fake_b24.calls.clear()
    return portal, bot, events


def run(portal: Portal, event: V2Event) -> int:
    """Store ``event`` as the endpoint (or the fetch poller) would, then run its handlers."""
    envelope = parse_envelope(event.as_webhook())
    typed = parse_event(envelope)
    stored = store_event(
        envelope, typed, Authenticated(portal=portal), "127.0.0.1", dedup=dedup_for(envelope.name)
    )
    run_event(stored.event.pk)
    failed = HandlerRun.objects.exclude(status=HandlerRun.Status.SUCCEEDED)
    assert not failed.exists(), [r.error for r in failed]
    return stored.event.pk


def command_id(portal: Portal, word: str) -> int:
    return Command.objects.get(portal=portal, command=word, deleted_at__isnull=True).command_id


# --------------------------------------------------------------------------- the example


def test_the_example_echo_command_answers_with_command_answer(v2bot, fake_b24) -> None:
    portal, bot, events = v2bot
    event = events.command_add("echo", "test", command_id=command_id(portal, "echo"), group=True)

    run(portal, event)

    [answer] = fake_b24.calls_to(V2 + "Command.answer")
    assert answer.params == {
        "botId": bot.bot_id,
        "commandId": command_id(portal, "echo"),
        "messageId": event.data["message"]["id"],
        "dialogId": "chat5",
        "fields": {"message": "test"},
    }
    assert fake_b24.calls_to("imbot.command.answer") == []
    [written] = fake_b24.v2.messages(portal.member_id).values()
    assert written["text"] == "test" and written["answerTo"] == event.data["message"]["id"]


def test_the_example_private_help_is_sent_and_stored(v2bot, fake_b24) -> None:
    portal, bot, events = v2bot
    event_pk = run(portal, events.message_add("hello?"))

    [send] = fake_b24.calls_to(V2 + "Chat.Message.send")
    assert send.params == {
        "botId": bot.bot_id,
        "dialogId": str(events.user_id),
        "fields": {"message": HELP_TEXT},
    }
    [sent_id] = fake_b24.v2.messages(portal.member_id)
    out = Message.objects.get(direction=Message.Direction.OUT)
    assert (out.message_id, out.text, out.event_id) == (sent_id, HELP_TEXT, event_pk)
    assert out.bot == bot and out.author is not None and out.author.is_bot
    incoming = Message.objects.get(direction=Message.Direction.IN)
    assert out.chat_id == incoming.chat_id


def test_the_example_welcome_on_join(v2bot, fake_b24) -> None:
    portal, _, events = v2bot
    run(portal, events.join_chat())

    [send] = fake_b24.calls_to(V2 + "Chat.Message.send")
    assert send.params["dialogId"] == "chat5"
    assert send.params["fields"]["message"].startswith("Hello! Type /echo")
    assert Message.objects.filter(direction=Message.Direction.OUT, chat__dialog_id="chat5").exists()


# --------------------------------------------------------------------------- every helper


def test_every_reply_helper_calls_its_v2_method(v2bot, fake_b24, isolated_routes) -> None:
    portal, bot, events = v2bot
    seen: dict[str, Any] = {}

    @on_message()
    def helpers(message: MessageContext) -> None:
        message.send_typing()
        first = message.reply("first", keyboard=Keyboard().button("Next", command="echo"))
        seen["first"] = first
        message.update("first, edited", message_id=first)
        second = message.reply("second")
        message.delete(second)
        message.react("like")
        message.unreact("like")
        message.stop()

    run(portal, events.message_add("go", group=True, message_id=4242))

    methods = [c.method for c in fake_b24.calls if c.method.startswith(V2)]
    assert methods == [
        V2 + "Chat.InputAction.notify",
        V2 + "Chat.Message.send",
        V2 + "Chat.Message.update",
        V2 + "Chat.Message.send",
        V2 + "Chat.Message.delete",
        V2 + "Chat.Message.Reaction.add",
        V2 + "Chat.Message.Reaction.delete",
    ]
    assert not [c for c in fake_b24.calls if c.method.startswith("imbot.") and V2 not in c.method]
    [typing] = fake_b24.calls_to(V2 + "Chat.InputAction.notify")
    assert typing.params == {"botId": bot.bot_id, "dialogId": "chat5"}
    send = fake_b24.calls_to(V2 + "Chat.Message.send")[0]
    assert send.params["fields"]["keyboard"] == [
        {"TEXT": "Next", "DISPLAY": "LINE", "COMMAND": "echo", "COMMAND_PARAMS": ""}
    ]
    [react] = fake_b24.calls_to(V2 + "Chat.Message.Reaction.add")
    assert react.params == {"botId": bot.bot_id, "messageId": 4242, "reaction": "like"}
    assert fake_b24.v2.reactions(portal.member_id) == set()  # added, then taken off

    first_id = seen["first"]
    assert isinstance(first_id, int)  # reply() returns the id, not v2's {"id", "uuidMap"}
    out = {m.message_id: m for m in Message.objects.filter(direction=Message.Direction.OUT)}
    assert out[first_id].text == "first, edited" and out[first_id].edited_at is not None
    [second_id] = set(out) - {first_id}
    assert out[second_id].deleted_at is not None
    on_fake = fake_b24.v2.messages(portal.member_id)
    assert on_fake[first_id]["text"] == "first, edited" and second_id not in on_fake


def test_a_command_answer_carries_its_attachment(v2bot, fake_b24, isolated_routes) -> None:
    portal, bot, events = v2bot

    @on_command("help")
    def help_(command: CommandContext) -> None:
        command.answer("helped", attach=[{"MESSAGE": "more"}])
        command.stop()

    run(portal, events.command_add("help", command_id=command_id(portal, "help")))

    [answer] = fake_b24.calls_to(V2 + "Command.answer")
    assert answer.params["botId"] == bot.bot_id
    assert answer.params["dialogId"] == str(events.user_id)
    assert answer.params["fields"] == {"message": "helped", "attach": [{"MESSAGE": "more"}]}


def test_reactions_need_a_v2_bot(settings, fake_b24, deliver, isolated_routes) -> None:
    configure(settings, fake_b24)
    settings.IMBOT_SENDER = "imbot_app.outbound.sender.RestSender"
    live = EventFactory.connected(fake_b24, commands={})

    @on_message()
    def like(message: MessageContext) -> None:
        message.react()

    deliver(live.message("hi"))
    [run_row] = HandlerRun.objects.filter(handler__endswith="like")
    assert run_row.status == HandlerRun.Status.FAILED
    assert "reactions need a Chatbots 2.0 bot" in run_row.error


def test_on_a_webhook_portal_replies_name_the_sealed_bot_token(settings, fake_b24, caplog):
    url = fake_b24.add_webhook("f" * 32, user_id=1, domain="127.0.0.1")
    settings.IMBOT_WEBHOOK_URL, settings.IMBOT_WEBHOOK_CLIENT_ID = url, "c" * 32
    settings.IMBOT_PUBLIC_URL = "https://bot.example.com"
    settings.IMBOT_RATE_LIMIT, settings.IMBOT_RATE_BURST = 1000.0, 1000
    settings.IMBOT_BOTS = [echo(api="v2")]
    settings.IMBOT_SENDER = "imbot_app.outbound.sender.RestSender"
    caplog.set_level(logging.DEBUG)
    call_command("imbot_register", stdout=StringIO())
    portal = Portal.objects.get()
    bot = Bot.objects.get(portal=portal, code="echobot", deleted_at__isnull=True)
    events = V2EventFactory(member_id=portal.member_id, bot_id=bot.bot_id, bot_code="echobot")

    run(portal, events.message_add("hello?"))

    [send] = fake_b24.calls_to(V2 + "Chat.Message.send")
    assert send.webhook is True and send.token is None
    assert send.params["botToken"] == bot.bot_token and len(bot.bot_token) == 40
    assert "CLIENT_ID" not in send.params
    assert Message.objects.filter(direction=Message.Direction.OUT, text=HELP_TEXT).exists()
    assert bot.bot_token not in caplog.text


def test_a_pending_sender_logs_the_v2_call_without_the_bot_token(settings, fake_b24, caplog):
    url = fake_b24.add_webhook("f" * 32, user_id=1, domain="127.0.0.1")
    settings.IMBOT_WEBHOOK_URL, settings.IMBOT_WEBHOOK_CLIENT_ID = url, "c" * 32
    settings.IMBOT_PUBLIC_URL = "https://bot.example.com"
    settings.IMBOT_BOTS = [echo(api="v2")]
    settings.IMBOT_SENDER = "imbot_app.outbound.calls.PendingSender"
    call_command("imbot_register", stdout=StringIO())
    portal = Portal.objects.get()
    bot = Bot.objects.get(portal=portal, code="echobot", deleted_at__isnull=True)
    events = V2EventFactory(member_id=portal.member_id, bot_id=bot.bot_id, bot_code="echobot")
    caplog.set_level(logging.INFO, logger="imbot_app.pending")

    run(portal, events.message_add("hello?"))

    assert "pending (not sent): imbot.v2.Chat.Message.send" in caplog.text
    assert bot.bot_token not in caplog.text
    assert fake_b24.calls_to(V2 + "Chat.Message.send") == []


def test_send_file_and_file_url(v2bot, fake_b24, isolated_routes) -> None:
    portal, bot, events = v2bot
    seen: dict[str, Any] = {}

    @on_message()
    def files(message: MessageContext) -> None:
        seen["message_id"] = message.send_file("report.txt", b"hello, file", text="Your report")
        [upload] = fake_b24.calls_to(V2 + "File.upload")
        seen["file_id"] = fake_b24.v2.messages(portal.member_id)[seen["message_id"]]["files"][0]
        seen["url"] = message.file_url(seen["file_id"])
        seen["upload"] = upload
        message.stop()

    run(portal, events.message_add("send me the report", group=True))

    upload = seen["upload"]
    assert upload.params == {
        "botId": bot.bot_id,
        "dialogId": "chat5",
        "fields": {"name": "report.txt", "content": "aGVsbG8sIGZpbGU=", "message": "Your report"},
    }
    stored = fake_b24.v2.files[(portal.member_id, seen["file_id"])]
    assert stored["content"] == b"hello, file"
    out = Message.objects.get(direction=Message.Direction.OUT)
    assert (out.message_id, out.text, out.chat.dialog_id) == (
        seen["message_id"],
        "Your report",
        "chat5",
    )
    [download] = fake_b24.calls_to(V2 + "File.download")
    assert download.params == {"botId": bot.bot_id, "fileId": seen["file_id"]}
    assert seen["url"].startswith(fake_b24.url + "/download/")


def test_file_helpers_need_a_v2_bot(settings, fake_b24, deliver, isolated_routes) -> None:
    configure(settings, fake_b24)
    live = EventFactory.connected(fake_b24, commands={})

    @on_message()
    def upload(message: MessageContext) -> None:
        message.send_file("a.txt", b"a")

    deliver(live.message("hi"))
    [run_row] = HandlerRun.objects.filter(handler__endswith="upload")
    assert "file helpers need a Chatbots 2.0 bot" in run_row.error
