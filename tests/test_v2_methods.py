"""Typed replies and registrations -> imbot.v2 calls, made for real against the fake."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from imbot_app import errors
from imbot_app.models import Portal
from imbot_app.outbound.rest import RestClient
from imbot_app.protocol.v2 import methods as m
from imbot_app.protocol.v2.advice import explain
from imbot_app.protocol.v2.translate import from_v1
from imbot_app.testing import FakeBitrix24, V2EventFactory


def test_send_message_shape() -> None:
    call = m.send_message(456, "chat5", "Hi", keyboard=[{"TEXT": "a"}], system=False)
    assert call.method == "imbot.v2.Chat.Message.send"
    assert call.params == {
        "botId": 456,
        "dialogId": "chat5",
        "fields": {"message": "Hi", "keyboard": [{"TEXT": "a"}], "system": False},
    }


def test_bot_token_is_top_level_except_in_register() -> None:
    assert m.unregister_bot(1, bot_token="s").params == {"botId": 1, "botToken": "s"}
    register = m.register_bot("b", {"name": "B"}, bot_token="s")
    assert "botToken" not in register.params
    assert register.params["fields"]["botToken"] == "s"
    rotate = m.update_bot(1, {}, bot_token="old", new_bot_token="new")
    assert rotate.params == {"botId": 1, "fields": {"botToken": "new"}, "botToken": "old"}


@pytest.mark.parametrize(
    "build",
    [
        lambda: m.register_bot("b", {"name": "B"}, bot_token="t" * 41),
        lambda: m.register_bot("b", {}),
        lambda: m.register_bot("b", {"name": "B"}, type="robot"),
        lambda: m.register_bot("b", {"name": "B"}, event_mode="push"),
        lambda: m.register_bot("b", {"name": "B"}, event_mode="webhook"),
        lambda: m.event_get(1, limit=1001),
        lambda: m.event_get(1, limit=0),
        lambda: m.event_get(1, offset=-1),
        lambda: m.notify_input(1, "chat5", duration=601),
        lambda: m.add_reaction(1, 2, ""),
        lambda: m.update_message(1, 2),
        lambda: m.update_bot(1, {}),
        lambda: m.command_fields("/help", {"en": "Help"}),
        lambda: m.command_fields("help", {}),
    ],
)
def test_bad_arguments_are_refused_before_any_call(build: object) -> None:
    with pytest.raises(ValueError):
        build()  # type: ignore[operator]


def test_event_get_sends_no_offset_on_the_first_call() -> None:
    assert m.event_get(7, limit=1000).params == {"botId": 7, "limit": 1000}
    assert m.event_get(7, offset=1002).params == {"botId": 7, "offset": 1002, "limit": 100}


def test_from_v1_translates_what_the_contexts_send() -> None:
    add = from_v1(
        "imbot.message.add",
        {"BOT_ID": 4, "DIALOG_ID": "chat5", "MESSAGE": "hi", "SYSTEM": "Y", "URL_PREVIEW": "N"},
        bot_id=4,
    )
    assert add == m.send_message(4, "chat5", "hi", system=True, url_preview=False)
    answer = from_v1(
        "imbot.command.answer",
        {"COMMAND_ID": 78, "MESSAGE_ID": 790, "MESSAGE": "ok", "KEYBOARD": [{"TEXT": "x"}]},
        bot_id=4,
        dialog_id="1",
    )
    assert answer == m.answer_command(4, 78, 790, "1", "ok", keyboard=[{"TEXT": "x"}])
    update = from_v1("imbot.message.update", {"MESSAGE_ID": 9, "MESSAGE": "new"}, bot_id=4)
    assert update.params == {"botId": 4, "messageId": 9, "fields": {"message": "new"}}
    delete = from_v1("imbot.message.delete", {"MESSAGE_ID": 9, "COMPLETE": "Y"}, bot_id=4)
    assert delete.params == {"botId": 4, "messageId": 9, "complete": True}
    typing = from_v1("imbot.chat.sendTyping", {"DIALOG_ID": "chat5"}, bot_id=4, bot_token="s")
    assert typing == m.notify_input(4, "chat5", bot_token="s")
    with pytest.raises(ValueError, match="MENU"):
        from_v1("imbot.message.add", {"MENU": [], "DIALOG_ID": "1"}, bot_id=4)
    with pytest.raises(ValueError, match="dialog id"):
        from_v1("imbot.command.answer", {"COMMAND_ID": 1, "MESSAGE_ID": 2}, bot_id=4)
    with pytest.raises(ValueError, match=r"no Chatbots 2\.0"):
        from_v1("imbot.bot.list", {}, bot_id=4)


def test_explain() -> None:
    text = explain("BOT_CODE_ALREADY_TAKEN", "Bot code is taken")
    assert text.startswith("BOT_CODE_ALREADY_TAKEN: another owner")
    assert text.endswith("(Bitrix24: Bot code is taken)")
    assert "back off" in explain("QUERY_LIMIT_EXCEEDED")
    assert explain("SOMETHING_NEW", "x") == "SOMETHING_NEW (Bitrix24: x)"


# --------------------------------------------------------------------------- for real


@pytest.fixture
def b24() -> Iterator[FakeBitrix24]:
    with FakeBitrix24() as fake:
        yield fake


@pytest.mark.django_db
def test_a_conversation_through_the_rest_client(b24: FakeBitrix24) -> None:
    events = V2EventFactory.connected(b24)
    client = RestClient(Portal.objects.get(member_id=events.member_id))
    bot = events.bot_id

    def run(call: m.Call) -> object:
        return client.call(call.method, call.params)

    registered = run(m.register_bot("helper", {"name": "Helper"}))
    assert isinstance(registered, dict) and registered["bot"]["code"] == "helper"
    command = run(m.register_command(bot, m.command_fields("help", {"en": "Help"})))
    assert isinstance(command, dict)
    command_id = command["command"]["id"]
    run(m.update_command(bot, command_id, {"title": {"de": "Hilfe"}}))
    sent = run(m.send_message(bot, "chat5", "Hello"))
    assert isinstance(sent, dict)
    run(m.update_message(bot, sent["id"], "Hello again"))
    run(m.answer_command(bot, command_id, 790, "chat5", "Help text"))
    run(m.notify_input(bot, "chat5", status_code="IMBOT_AGENT_ACTION_THINKING", duration=5))
    run(m.add_reaction(bot, sent["id"], "like"))
    run(m.delete_reaction(bot, sent["id"], "like"))
    run(m.delete_message(bot, sent["id"]))
    texts = [msg["text"] for msg in b24.v2.messages(events.member_id).values()]
    assert texts == ["Help text"]
    run(m.unregister_command(bot, command_id))
    run(m.unregister_bot(bot))
    with pytest.raises(errors.BitrixError) as caught:
        run(m.event_get(bot))
    assert caught.value.error == "BOT_NOT_FOUND"
    assert "register it again" in explain(caught.value.error)


@pytest.mark.django_db
def test_bot_code_already_taken_gets_a_clear_message(b24: FakeBitrix24) -> None:
    events = V2EventFactory.connected(b24)
    b24.v2.add_bot(events.member_id, "taken", client_id="another.app")
    client = RestClient(Portal.objects.get(member_id=events.member_id))
    call = m.register_bot("taken", {"name": "Mine"})
    with pytest.raises(errors.BitrixError) as caught:
        client.call(call.method, call.params)
    failure = caught.value
    assert failure.error == "BOT_CODE_ALREADY_TAKEN" and failure.status == 400
    assert "pick another code" in explain(failure.error, failure.description)
