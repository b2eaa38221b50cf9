"""Every known event, private and group, form and JSON: what the endpoint stores for it."""

from __future__ import annotations

from typing import Any

import pytest

from imbot_app.models import (
    Bot,
    Chat,
    ChatUser,
    Command,
    CommandInvocation,
    Credential,
    Event,
    Message,
)
from imbot_app.testing import EventFactory, post_event

pytestmark = pytest.mark.django_db

WIRES = [pytest.param(False, id="form"), pytest.param(True, id="json")]
CHATS = [pytest.param(None, id="private"), pytest.param(42, id="group")]


def accepted(response: Any) -> Event:
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["status"] == "accepted"
    return Event.objects.get(pk=body["event_id"])


@pytest.mark.parametrize("as_json", WIRES)
@pytest.mark.parametrize("chat_id", CHATS)
def test_message_add(client, factory: EventFactory, chat_id, as_json) -> None:
    payload = factory.message("Hello & welcome +1 100% ~ [b]bold[/b]", chat_id=chat_id)
    event = accepted(post_event(client, payload, as_json=as_json))

    message = Message.objects.select_related("chat", "author", "bot").get()
    params = payload["data"]["PARAMS"]
    assert message.text == "Hello & welcome +1 100% ~ [b]bold[/b]"
    assert message.text_original == params.get("MESSAGE_ORIGINAL", params["MESSAGE"])
    assert message.message_id == int(params["MESSAGE_ID"])
    assert message.event == event
    assert message.author is not None and message.author.user_id == factory.user_id
    assert message.bot is not None and message.bot.bot_id == factory.bot_id
    chat = message.chat
    if chat_id is None:
        assert (chat.dialog_id, chat.type, chat.bot) == (str(factory.user_id), "P", message.bot)
    else:
        assert (chat.dialog_id, chat.type, chat.chat_id) == (f"chat{chat_id}", "C", chat_id)
        assert chat.title == f"Chat {chat_id}"
        assert chat.bot is None
    assert event.status == Event.Status.RECEIVED
    assert event.remote_addr == "127.0.0.1"


@pytest.mark.parametrize("as_json", WIRES)
@pytest.mark.parametrize("chat_id", CHATS)
def test_message_update_edits_the_stored_message(client, factory, chat_id, as_json) -> None:
    accepted(post_event(client, factory.message("frist", chat_id=chat_id, message_id=501)))
    accepted(
        post_event(client, factory.message_update(501, "first", chat_id=chat_id), as_json=as_json)
    )

    message = Message.objects.get(message_id=501)
    assert message.text == "first"
    assert message.edited_at is not None
    assert message.deleted_at is None
    assert Message.objects.count() == 1


@pytest.mark.parametrize("as_json", WIRES)
@pytest.mark.parametrize("chat_id", CHATS)
def test_message_delete_marks_and_keeps_the_text(client, factory, chat_id, as_json) -> None:
    accepted(post_event(client, factory.message("keep me", chat_id=chat_id, message_id=502)))
    accepted(post_event(client, factory.message_delete(502, chat_id=chat_id), as_json=as_json))

    message = Message.objects.get(message_id=502)
    assert message.deleted_at is not None
    assert message.text == "keep me"


def test_update_of_a_message_never_seen_creates_it(client, factory) -> None:
    accepted(post_event(client, factory.message_update(777, "edited before we knew it")))
    message = Message.objects.get(message_id=777)
    assert message.text == "edited before we knew it"
    assert message.edited_at is not None


@pytest.mark.parametrize("as_json", WIRES)
@pytest.mark.parametrize("chat_id", CHATS)
@pytest.mark.parametrize("context", ["TEXTAREA", "KEYBOARD", "MENU"])
def test_command(client, factory, chat_id, context, as_json) -> None:
    payload = factory.command("echo", "hello world", command_id=7, context=context, chat_id=chat_id)
    event = accepted(post_event(client, payload, as_json=as_json))

    invocation = CommandInvocation.objects.select_related("command", "chat", "user").get()
    assert invocation.event == event
    assert (invocation.command.command, invocation.command.command_id) == ("echo", 7)
    assert invocation.command.bot == Bot.objects.get(bot_id=factory.bot_id)
    assert invocation.params == "hello world"
    assert invocation.context == context
    assert invocation.message_id == int(payload["data"]["PARAMS"]["MESSAGE_ID"])
    assert invocation.user is not None and invocation.user.user_id == factory.user_id
    assert invocation.chat is not None
    assert invocation.chat.type == ("P" if chat_id is None else "C")
    # The command's message is part of the chat's history too.
    assert Message.objects.get().text == "/echo hello world"


def test_second_run_of_a_command_reuses_the_command_row(client, factory) -> None:
    accepted(post_event(client, factory.command("echo", "one")))
    accepted(post_event(client, factory.command("echo", "two")))
    assert Command.objects.count() == 1
    assert list(CommandInvocation.objects.order_by("id").values_list("params", flat=True)) == [
        "one",
        "two",
    ]


@pytest.mark.parametrize("as_json", WIRES)
@pytest.mark.parametrize("chat_id", CHATS)
def test_join(client, factory, chat_id, as_json) -> None:
    accepted(post_event(client, factory.join(chat_id=chat_id), as_json=as_json))
    chat = Chat.objects.get()
    if chat_id is None:
        assert (chat.dialog_id, chat.type) == (str(factory.user_id), "P")
        assert chat.bot is not None and chat.bot.bot_id == factory.bot_id
    else:
        assert (chat.dialog_id, chat.type, chat.chat_id) == (f"chat{chat_id}", "C", chat_id)
    assert ChatUser.objects.get().user_id == factory.user_id
    assert not Message.objects.exists()


@pytest.mark.parametrize("as_json", WIRES)
def test_bot_delete_marks_the_bot(client, factory, as_json) -> None:
    accepted(post_event(client, factory.message("hi")))
    accepted(post_event(client, factory.bot_delete(), as_json=as_json))
    bot = Bot.objects.get(bot_id=factory.bot_id)
    assert bot.deleted_at is not None
    assert Message.objects.count() == 1  # history stays


def test_join_without_tokens_keeps_the_stored_refresh_token(client, factory) -> None:
    accepted(post_event(client, factory.message("hi")))
    before = Credential.objects.get(user_id=factory.bot_id).refresh_token
    assert before
    # ONIMBOTDELETE carries an access token but no refresh token (core does not send one).
    accepted(post_event(client, factory.bot_delete()))
    assert Credential.objects.get(user_id=factory.bot_id).refresh_token == before


def test_several_bots_addressed_at_once(client, factory) -> None:
    payload = factory.message("@both", chat_id=9)
    other = EventFactory(
        member_id=factory.member_id, application_token=factory.application_token, bot_id=2000
    )
    payload["data"]["BOT"].update(other.bot_block(code="second"))
    accepted(post_event(client, payload))
    assert set(Bot.objects.values_list("bot_id", "code")) == {
        (factory.bot_id, factory.bot_code),
        (2000, "second"),
    }
    assert set(Credential.objects.values_list("user_id", flat=True)) == {
        factory.user_id,
        factory.bot_id,
        2000,
    }
    assert Message.objects.count() == 1


def test_unknown_event_is_stored_as_generic(client, factory) -> None:
    payload = factory.message("x")
    payload["event"] = "ONCRMDEALADD"
    payload["data"] = {"FIELDS": {"ID": "42"}}
    event = accepted(post_event(client, payload))
    assert event.name == "ONCRMDEALADD"
    assert event.payload["data"] == {"FIELDS": {"ID": "42"}}
    assert not Message.objects.exists()


def test_unknown_keys_are_kept_in_the_payload(client, factory) -> None:
    payload = factory.message("x")
    payload["data"]["PARAMS"]["WAIT_FULL_EXECUTION"] = "Y"
    payload["data"]["SOMETHING_NEW"] = {"A": ["1", "2"]}
    event = accepted(post_event(client, payload))
    assert event.payload["data"]["PARAMS"]["WAIT_FULL_EXECUTION"] == "Y"
    assert event.payload["data"]["SOMETHING_NEW"] == {"A": {"0": "1", "1": "2"}}


def test_author_details_are_updated_when_they_change(client, factory) -> None:
    accepted(post_event(client, factory.message("one")))
    factory.user_name = "Jane Roe"
    accepted(post_event(client, factory.message("two")))
    user = ChatUser.objects.get()
    assert (user.name, user.first_name, user.last_name) == ("Jane Roe", "Jane", "Roe")


def test_bot_author_flag_is_stored(client, factory) -> None:
    payload = factory.message("beep")
    payload["data"]["USER"]["IS_BOT"] = "Y"
    accepted(post_event(client, payload))
    assert ChatUser.objects.get().is_bot is True


def test_deleting_a_portal_deletes_its_history_even_with_two_bots(client, factory) -> None:
    """Two bots in private chats with the same person: the portal still deletes cleanly."""
    from imbot_app.models import Portal

    second = EventFactory(
        member_id=factory.member_id, application_token=factory.application_token, bot_id=2000
    )
    accepted(post_event(client, factory.message("to the first bot")))
    accepted(post_event(client, second.message("to the second bot")))
    assert Chat.objects.filter(dialog_id=str(factory.user_id)).count() == 2

    Portal.objects.get(member_id=factory.member_id).delete()

    assert not Chat.objects.exists()
    assert not Message.objects.exists()
    assert not Event.objects.exists()
