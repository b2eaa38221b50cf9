"""FakeBitrix24 speaks Chatbots 2.0: the Event.get queue as documented, methods, v2 errors.

Every call goes over HTTP to the real fake server, as a bot's would.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import requests

from imbot_app.testing import FakeBitrix24, V2EventFactory

MEMBER = "b" * 32


@pytest.fixture
def b24() -> Iterator[tuple[FakeBitrix24, str]]:
    with FakeBitrix24() as fake:
        access, _ = fake.issue_tokens(MEMBER, user_id=1)
        yield fake, access


def call(b24: tuple[FakeBitrix24, str], method: str, **params: Any) -> tuple[int, dict[str, Any]]:
    fake, access = b24
    response = requests.post(
        f"{fake.rest_url}imbot.v2.{method}", json={**params, "auth": access}, timeout=10
    )
    return response.status_code, response.json()


def result(b24: tuple[FakeBitrix24, str], method: str, **params: Any) -> Any:
    status, body = call(b24, method, **params)
    assert status == 200, body
    return body["result"]


def error(b24: tuple[FakeBitrix24, str], method: str, **params: Any) -> str:
    status, body = call(b24, method, **params)
    assert status in (400, 403), body
    assert set(body) == {"error", "error_description"}
    return str(body["error"])


@pytest.fixture
def bot(b24: tuple[FakeBitrix24, str]) -> int:
    return b24[0].v2.add_bot(MEMBER, "support_bot")


def _queue(b24: tuple[FakeBitrix24, str], bot_id: int, count: int) -> list[int]:
    events = V2EventFactory(member_id=MEMBER, bot_id=bot_id)
    return [events.enqueue(b24[0], events.message_add(f"m{i}")) for i in range(count)]


# --------------------------------------------------------------------------- Event.get


def test_first_call_without_offset_returns_events_and_next_offset(b24: Any, bot: int) -> None:
    ids = _queue(b24, bot, 3)
    page = result(b24, "Event.get", botId=bot)
    assert [e["eventId"] for e in page["events"]] == ids
    assert page["nextOffset"] == ids[-1] + 1
    assert page["hasMore"] is False
    item = page["events"][0]
    assert set(item) == {"eventId", "type", "date", "data"}
    assert item["type"] == "ONIMBOTV2MESSAGEADD" and item["data"]["message"]["text"] == "m0"


def test_without_an_offset_nothing_is_deleted(b24: Any, bot: int) -> None:
    ids = _queue(b24, bot, 2)
    result(b24, "Event.get", botId=bot)
    again = result(b24, "Event.get", botId=bot)
    assert [e["eventId"] for e in again["events"]] == ids
    assert b24[0].v2.queued(MEMBER, bot) == ids


def test_offset_deletes_everything_below_it(b24: Any, bot: int) -> None:
    ids = _queue(b24, bot, 4)
    page = result(b24, "Event.get", botId=bot, offset=ids[2])
    assert [e["eventId"] for e in page["events"]] == ids[2:]
    assert b24[0].v2.queued(MEMBER, bot) == ids[2:]
    # Going back is impossible: the rows are gone.
    assert [e["eventId"] for e in result(b24, "Event.get", botId=bot)["events"]] == ids[2:]


def test_empty_queue_answers_next_offset_zero(b24: Any, bot: int) -> None:
    assert result(b24, "Event.get", botId=bot) == {"events": [], "nextOffset": 0, "hasMore": False}
    ids = _queue(b24, bot, 1)
    page = result(b24, "Event.get", botId=bot)
    drained = result(b24, "Event.get", botId=bot, offset=page["nextOffset"])
    assert drained == {"events": [], "nextOffset": 0, "hasMore": False}
    assert b24[0].v2.queued(MEMBER, bot) == []
    assert ids


def test_has_more_means_limit_events_were_returned(b24: Any, bot: int) -> None:
    ids = _queue(b24, bot, 4)
    first = result(b24, "Event.get", botId=bot, limit=2)
    assert [e["eventId"] for e in first["events"]] == ids[:2] and first["hasMore"] is True
    second = result(b24, "Event.get", botId=bot, limit=2, offset=first["nextOffset"])
    # Exactly the last two: still "hasMore", because hasMore only says the page was full.
    assert [e["eventId"] for e in second["events"]] == ids[2:] and second["hasMore"] is True
    third = result(b24, "Event.get", botId=bot, limit=2, offset=second["nextOffset"])
    assert third == {"events": [], "nextOffset": 0, "hasMore": False}


def test_limit_is_clamped_to_1000_and_defaults_to_100(b24: Any, bot: int) -> None:
    _queue(b24, bot, 120)
    assert len(result(b24, "Event.get", botId=bot)["events"]) == 100
    assert len(result(b24, "Event.get", botId=bot, limit=5000)["events"]) == 120


def test_ids_are_shared_between_bots_and_queues_are_separate(b24: Any, bot: int) -> None:
    other = b24[0].v2.add_bot(MEMBER, "other_bot")
    mine, theirs = _queue(b24, bot, 2), _queue(b24, other, 2)
    assert mine[1] - mine[0] > 1  # not contiguous per bot
    assert [e["eventId"] for e in result(b24, "Event.get", botId=bot)["events"]] == mine
    assert [e["eventId"] for e in result(b24, "Event.get", botId=other)["events"]] == theirs


def test_events_expire_after_24_hours(b24: Any, bot: int) -> None:
    fake = b24[0]
    old = _queue(b24, bot, 2)
    fake.v2.advance(23 * 3600)
    new = _queue(b24, bot, 1)
    assert fake.v2.queued(MEMBER, bot) == old + new
    fake.v2.advance(2 * 3600)  # the first two are now 25 hours old
    page = result(b24, "Event.get", botId=bot)
    assert [e["eventId"] for e in page["events"]] == new


def test_injectable_clock(b24: Any, bot: int) -> None:
    fake = b24[0]
    now = [1_000_000.0]
    fake.v2.clock = lambda: now[0]
    _queue(b24, bot, 1)
    now[0] += 24 * 3600 + 1
    assert fake.v2.queued(MEMBER, bot) == []


def test_a_webhook_mode_bot_has_no_queue(b24: Any) -> None:
    fake = b24[0]
    hooked = fake.v2.add_bot(MEMBER, "hooked", event_mode="webhook")
    with pytest.raises(ValueError, match="webhook mode"):
        fake.v2.enqueue(MEMBER, hooked, "ONIMBOTV2MESSAGEADD", {})
    assert result(b24, "Event.get", botId=hooked)["events"] == []


def test_event_get_errors(b24: Any, bot: int) -> None:
    assert error(b24, "Event.get") == "BOT_ID_REQUIRED"
    assert error(b24, "Event.get", botId=999999) == "BOT_NOT_FOUND"
    assert error(b24, "Event.get", botId=bot, offset=-1) == "INVALID_OFFSET"
    foreign = b24[0].v2.add_bot(MEMBER, "foreign", client_id="another.app")
    assert error(b24, "Event.get", botId=foreign) == "BOT_OWNERSHIP_ERROR"


def test_faults_and_throttling_apply_to_v2(b24: Any, bot: int) -> None:
    fake = b24[0]
    fake.throttle(1)
    status, body = call(b24, "Event.get", botId=bot)
    assert (status, body["error"]) == (503, "QUERY_LIMIT_EXCEEDED")
    fake.fail_method("imbot.v2.Event.get", status=429, error="OPERATION_TIME_LIMIT")
    status, body = call(b24, "Event.get", botId=bot)
    assert (status, body["error"]) == (429, "OPERATION_TIME_LIMIT")
    assert call(b24, "Event.get", botId=bot)[0] == 200


# --------------------------------------------------------------------------- bots and commands


def _register(b24: Any, code: str = "helper", **fields: Any) -> Any:
    return call(b24, "Bot.register", fields={"code": code, "properties": {"name": "H"}, **fields})


def test_bot_register_is_idempotent_per_code(b24: Any) -> None:
    status, first = _register(b24)
    assert status == 200
    bot = first["result"]["bot"]
    assert bot["code"] == "helper" and bot["eventMode"] == "fetch" and bot["type"] == "bot"
    assert _register(b24, properties={"name": "Other"})[1]["result"]["bot"]["id"] == bot["id"]


def test_bot_register_errors(b24: Any) -> None:
    assert error(b24, "Bot.register", fields={"properties": {"name": "x"}}) == "BOT_CODE_REQUIRED"
    assert error(b24, "Bot.register", fields={"code": "x"}) == "BOT_PROPERTIES_REQUIRED"
    assert _register(b24, type="robot")[1]["error"] == "BOT_INVALID_TYPE"
    assert _register(b24, eventMode="push")[1]["error"] == "BOT_INVALID_EVENT_MODE"
    assert _register(b24, eventMode="webhook")[1]["error"] == "BOT_WEBHOOK_URL_REQUIRED"
    assert _register(b24, botToken="t" * 41)[1]["error"] == "BOT_TOKEN_INVALID_LENGTH"
    b24[0].v2.add_bot(MEMBER, "taken", client_id="another.app")
    assert _register(b24, "taken")[1]["error"] == "BOT_CODE_ALREADY_TAKEN"


def test_inbound_webhook_callers_need_the_bot_token(b24: Any) -> None:
    fake = b24[0]
    hook = fake.add_webhook(MEMBER)

    def post(method: str, **params: Any) -> dict[str, Any]:
        return dict(requests.post(f"{hook}imbot.v2.{method}", json=params, timeout=10).json())

    fields = {"code": "hooked", "properties": {"name": "H"}}
    assert post("Bot.register", fields=fields)["error"] == "BOT_TOKEN_NOT_SPECIFIED"
    bot_id = post("Bot.register", fields={**fields, "botToken": "s1"})["result"]["bot"]["id"]
    assert post("Bot.register", fields={**fields, "botToken": "s2"})["error"] == (
        "BOT_CODE_ALREADY_TAKEN"
    )
    assert post("Event.get", botId=bot_id)["error"] == "BOT_TOKEN_NOT_SPECIFIED"
    assert post("Event.get", botId=bot_id, botToken="s2")["error"] == "BOT_OWNERSHIP_ERROR"
    assert "events" in post("Event.get", botId=bot_id, botToken="s1")["result"]
    # Rotation: the old token loses access at once.
    post("Bot.update", botId=bot_id, botToken="s1", fields={"botToken": "s3"})
    assert post("Event.get", botId=bot_id, botToken="s1")["error"] == "BOT_OWNERSHIP_ERROR"
    assert "result" in post("Event.get", botId=bot_id, botToken="s3")


def test_bot_update_and_unregister(b24: Any, bot: int) -> None:
    updated = result(b24, "Bot.update", botId=bot, fields={"isHidden": True})
    assert updated["bot"]["isHidden"] is True
    assert error(b24, "Bot.update", botId=bot, fields={}) == "FIELDS_REQUIRED"
    assert error(b24, "Bot.update", botId=bot, fields={"eventMode": "x"}) == (
        "BOT_INVALID_EVENT_MODE"
    )
    assert result(b24, "Bot.unregister", botId=bot) is True
    assert error(b24, "Event.get", botId=bot) == "BOT_NOT_FOUND"


def test_commands(b24: Any, bot: int) -> None:
    fields = {"command": "help", "title": {"en": "Help"}}
    command = result(b24, "Command.register", botId=bot, fields=fields)["command"]
    assert command["command"] == "/help" and command["botId"] == bot
    again = result(b24, "Command.register", botId=bot, fields=fields)["command"]
    assert again["id"] == command["id"]
    assert error(b24, "Command.register", botId=bot, fields={}) == "COMMAND_REQUIRED"
    assert error(b24, "Command.register", botId=bot, fields={"command": "/x", "title": {}}) == (
        "COMMAND_NAME_INVALID"
    )
    assert error(b24, "Command.register", botId=bot, fields={"command": "x"}) == (
        "COMMAND_TITLE_REQUIRED"
    )
    updated = result(
        b24, "Command.update", botId=bot, commandId=command["id"], fields={"title": {"en": None}}
    )["command"]
    assert updated["title"] == {}
    assert error(b24, "Command.update", botId=bot, commandId=1, fields={"hidden": True}) == (
        "COMMAND_NOT_FOUND"
    )
    answered = result(
        b24,
        "Command.answer",
        botId=bot,
        commandId=command["id"],
        messageId=790,
        dialogId="chat5",
        fields={"message": "Here is help"},
    )
    assert answered is True
    (message,) = b24[0].v2.messages(MEMBER).values()
    assert message["answerTo"] == 790 and message["text"] == "Here is help"
    assert result(b24, "Command.unregister", botId=bot, commandId=command["id"]) is True
    assert b24[0].v2.commands(MEMBER) == {}


# --------------------------------------------------------------------------- messages


def test_messages_and_reactions(b24: Any, bot: int) -> None:
    sent = result(b24, "Chat.Message.send", botId=bot, dialogId="chat5", fields={"message": "Hi"})
    message_id = sent["id"]
    assert sent["uuidMap"] == {}
    assert error(b24, "Chat.Message.send", botId=bot, dialogId="chat5", fields={}) == (
        "EMPTY_MESSAGE"
    )
    long = result(
        b24, "Chat.Message.send", botId=bot, dialogId="1", fields={"message": "x" * 20_001}
    )
    assert b24[0].v2.messages(MEMBER)[long["id"]]["text"].endswith(" (...)")
    assert result(
        b24, "Chat.Message.update", botId=bot, messageId=message_id, fields={"message": "Hey"}
    )
    assert b24[0].v2.messages(MEMBER)[message_id]["text"] == "Hey"
    assert error(b24, "Chat.Message.update", botId=bot, messageId=1, fields={"message": "x"}) == (
        "ACCESS_DENIED"
    )
    assert result(b24, "Chat.Message.Reaction.add", botId=bot, messageId=55, reaction="like")
    assert error(b24, "Chat.Message.Reaction.add", botId=bot, messageId=55, reaction="like") == (
        "REACTION_ALREADY_SET"
    )
    assert b24[0].v2.reactions(MEMBER) == {(bot, 55, "like")}
    assert result(b24, "Chat.Message.Reaction.delete", botId=bot, messageId=55, reaction="like")
    assert error(b24, "Chat.Message.Reaction.delete", botId=bot, messageId=55, reaction="like") == (
        "REACTION_NOT_FOUND"
    )
    assert result(b24, "Chat.InputAction.notify", botId=bot, dialogId="chat5", duration=30)
    assert error(b24, "Chat.InputAction.notify", botId=bot, dialogId="chat5", duration=601) == (
        "INVALID_DURATION"
    )
    assert result(b24, "Chat.Message.delete", botId=bot, messageId=message_id) is True
    assert message_id not in b24[0].v2.messages(MEMBER)
