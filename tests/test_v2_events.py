"""Chatbots 2.0 payloads -> the version-free typed events, form-encoded and fetch JSON alike."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from imbot_app import events as ev
from imbot_app.protocol.v1.events import InvalidPayload, parse_envelope
from imbot_app.protocol.v2 import events as v2
from imbot_app.testing import V2Event, V2EventFactory
from imbot_app.wire import decode_form

MEMBER = "a" * 32


def _webhook(payload: dict[str, Any]) -> ev.BitrixEvent:
    return v2.parse_event(parse_envelope(payload))


def _form(event: V2Event) -> ev.BitrixEvent:
    return _webhook(decode_form(event.as_form().encode()))


def _fetched(item: dict[str, Any]) -> ev.BitrixEvent:
    return _webhook(v2.fetch_payload(item, member_id=MEMBER))


def _errors(payload: dict[str, Any]) -> Any:
    with pytest.raises(InvalidPayload) as caught:
        _webhook(payload)
    return caught.value.errors


# --------------------------------------------------------------------------- corpus


def _corpus(corpus_dir: Path, number: str) -> dict[str, Any]:
    (path,) = corpus_dir.glob(f"{number}_*.json")
    return json.loads(path.read_text("utf-8"))


def test_corpus_075_is_a_message_in_a_group_chat(corpus_dir: Path) -> None:
    event = _webhook(_corpus(corpus_dir, "075"))
    assert isinstance(event, ev.MessageAdd)
    assert event.name == "ONIMBOTV2MESSAGEADD"
    assert [(b.bot_id, b.code) for b in event.bots] == [(456, "overdue_tasks_bot")]
    assert event.chat.dialog_id == "chat5"
    assert event.chat.type == "C"
    assert event.chat.chat_id == 5
    assert event.message.message_id == 790
    assert event.message.author_id == 1
    assert event.message.text == "что горит"
    assert event.user is not None and event.user.name == "Иван Иванов"
    assert event.auth.application_token == "51856fefc120afa4b628cc82d3935cce"


def test_corpus_077_is_the_bot_joining_a_chat(corpus_dir: Path) -> None:
    event = _webhook(_corpus(corpus_dir, "077"))
    assert isinstance(event, ev.BotJoinChat)
    assert event.bot_id == 456
    assert event.chat.dialog_id == "chat5"
    assert event.user is not None and event.user.id == 1


def test_corpus_074_placeholder_envelope_names_the_missing_message_id(corpus_dir: Path) -> None:
    """The docs' envelope sample has ``message: {}``: nothing to store a message under."""
    errors = _errors(_corpus(corpus_dir, "074"))
    assert errors == {"data": {"message": {"id": ["This field is required."]}}}


def test_corpus_076_fragment_names_what_it_lacks(corpus_dir: Path) -> None:
    """The open-lines tutorial shows only ``message.chatId`` and ``chat.entityType``."""
    errors = _errors(_corpus(corpus_dir, "076"))
    assert set(errors["data"]) == {"bot", "message"}
    assert errors["data"]["bot"] == ["This field is required."]


def test_corpus_074_keeps_its_tokens_out_of_the_typed_bot(corpus_dir: Path) -> None:
    payload = _corpus(corpus_dir, "074")
    payload["data"]["message"] = {"id": 1, "text": "x", "chatId": 5}
    payload["data"]["chat"] = {"id": 5, "type": "chat"}
    event = _webhook(payload)
    assert isinstance(event, ev.MessageAdd)
    assert event.chat.dialog_id == "chat5"  # derived from the chat id
    assert event.user is None  # an empty user object says nothing


# --------------------------------------------------------------------------- every event


EXPECTED = {
    "ONIMBOTV2MESSAGEADD": ev.MessageAdd,
    "ONIMBOTV2MESSAGEUPDATE": ev.MessageUpdate,
    "ONIMBOTV2MESSAGEDELETE": ev.MessageDelete,
    "ONIMBOTV2JOINCHAT": ev.BotJoinChat,
    "ONIMBOTV2DELETE": ev.BotDelete,
    "ONIMBOTV2CONTEXTGET": ev.ContextGet,
    "ONIMBOTV2COMMANDADD": ev.CommandAdd,
    "ONIMBOTV2REACTIONCHANGE": ev.ReactionChange,
}


def test_every_reference_event_is_mapped() -> None:
    assert set(EXPECTED) == v2.KNOWN_EVENTS
    assert v2.EVENT_CLASSES == EXPECTED
    assert {e.type for e in V2EventFactory().every_event()} == set(EXPECTED)


def _comparable(event: ev.BitrixEvent) -> Any:
    """The typed event without what differs between deliveries (auth, ts, bot tokens)."""
    fields = {k: getattr(event, k) for k in event.__slots__ if k not in ("auth", "ts", "bot_refs")}
    if isinstance(event, ev.CommandAdd):
        fields["commands"] = [c.__class__(**{**_asdict(c), "auth": None}) for c in event.commands]
    if isinstance(event, ev.ContextGet):
        # A free-form object: kept as sent, so a form delivery's values are strings.
        fields["context"] = {k: str(v) for k, v in event.context.items()}
    fields["bots"] = [(b.bot_id, b.code) for b in event.bots]
    return fields


def _asdict(ref: Any) -> dict[str, Any]:
    return {k: getattr(ref, k) for k in ref.__slots__}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_each_event_parses_the_same_from_form_webhook_json_and_fetch(name: str) -> None:
    factory = V2EventFactory()
    (event,) = [e for e in factory.every_event() if e.type == name]
    from_form = _form(event)
    from_json = _webhook(event.as_webhook())
    from_fetch = _fetched(event.as_fetch(event_id=1001))
    for typed in (from_form, from_json, from_fetch):
        assert type(typed) is EXPECTED[name]
        assert typed.name == name
    assert _comparable(from_form) == _comparable(from_json) == _comparable(from_fetch)


def test_form_values_are_all_strings_and_still_typed() -> None:
    event = V2EventFactory().message_add("Hello bot!", group=True, message_id=42)
    body = decode_form(event.as_form().encode())
    assert body["data"]["message"]["id"] == "42"
    assert body["data"]["user"]["extranet"] == "0"
    assert "forward" not in body["data"]["message"]  # null vanishes
    assert "params" not in body["data"]["message"]  # so does an empty array
    typed = _form(event)
    assert isinstance(typed, ev.MessageAdd)
    assert typed.message.message_id == 42
    assert typed.user is not None and typed.user.is_extranet is False
    assert typed.chat.dialog_id == "chat5" and typed.chat.type == "C"


def test_details_of_each_kind() -> None:
    f = V2EventFactory(user_id=17)
    private = _fetched(f.message_add("hi").as_fetch())
    assert isinstance(private, ev.MessageAdd)
    assert private.chat.dialog_id == "17" and private.chat.is_private
    deleted = _fetched(f.message_delete(901).as_fetch())
    assert isinstance(deleted, ev.MessageDelete)
    assert deleted.message.message_id == 901 and deleted.message.author_id == 17
    command = _fetched(f.command_add("help", "topic", command_id=78, context="keyboard").as_fetch())
    assert isinstance(command, ev.CommandAdd)
    (ref,) = command.commands
    assert (ref.command_id, ref.command, ref.params, ref.context) == (
        78,
        "help",
        "topic",
        "KEYBOARD",
    )
    assert ref.bot_id == 456 and ref.message_id == command.message.message_id  # type: ignore[union-attr]
    reaction = _fetched(f.reaction_change(789, "like", action="delete").as_fetch())
    assert isinstance(reaction, ev.ReactionChange)
    assert (reaction.reaction, reaction.action, reaction.added) == ("like", "delete", False)
    assert reaction.message.author_id == 456
    context = _fetched(f.context_get({"entityType": "task", "entityId": 164}).as_fetch())
    assert isinstance(context, ev.ContextGet)
    assert context.context == {"entityType": "task", "entityId": 164}
    assert context.chat.dialog_id == "17"
    deleted_bot = _fetched(f.bot_delete().as_fetch())
    assert isinstance(deleted_bot, ev.BotDelete)
    assert (deleted_bot.bot_id, deleted_bot.bot_code) == (456, "support_bot")


def test_webhook_bot_auth_becomes_the_bots_token_block() -> None:
    event = _webhook(V2EventFactory().message_add().as_webhook())
    (bot,) = event.bots
    assert bot.auth is not None and bot.auth.user_id == 456 and bot.auth.has_tokens
    assert bot.auth in event.token_blocks


def test_an_unknown_v2_event_is_kept_generic() -> None:
    event = _webhook({"event": "ONIMBOTV2SOMETHINGNEW", "data": {"bot": {"id": 1}}})
    assert isinstance(event, ev.GenericEvent)
    assert v2.is_v2("onimbotv2somethingnew") and not v2.is_v2("ONIMBOTMESSAGEADD")


def test_php_empty_arrays_read_as_empty_objects() -> None:
    data = V2EventFactory().message_add().data
    data["message"]["params"] = []
    data["chat"] = []
    data["message"]["chatId"] = 7
    event = _webhook({"event": "ONIMBOTV2MESSAGEADD", "data": data})
    assert isinstance(event, ev.MessageAdd)
    assert event.chat.dialog_id == "chat7"


# --------------------------------------------------------------------------- hostile input


def _message_payload(**changes: Any) -> dict[str, Any]:
    data = V2EventFactory().message_add().data
    for path, value in changes.items():
        node = data
        *parents, last = path.split("__")
        for key in parents:
            node = node[key]
        node[last] = value
    return {"event": "ONIMBOTV2MESSAGEADD", "data": data}


@pytest.mark.parametrize(
    ("changes", "where", "reason"),
    [
        ({"message__id": "x"}, ("message", "id"), "A valid integer is required."),
        ({"message__id": 2**63}, ("message", "id"), "less than or equal to"),
        ({"message__id": 0}, ("message", "id"), "greater than or equal to 1"),
        ({"message__text": "x" * 70_000}, ("message", "text"), "no more than 65536"),
        ({"message__params": "oops"}, ("message", "params"), "Expected an object"),
        ({"message__isSystem": "maybe"}, ("message", "isSystem"), "Must be a valid boolean."),
        ({"chat__dialogId": "c" * 65}, ("chat", "dialogId"), "no more than 64"),
        ({"user__id": [1]}, ("user", "id"), "A valid integer is required."),
        ({"user__name": {"a": 1}}, ("user", "name"), "Not a valid string."),
        ({"bot__id": None}, ("bot", "id"), "This field may not be null."),
        ({"bot__auth": "token"}, ("bot", "auth"), "Expected a dictionary"),
        ({"bot__auth": {"access_token": "t" * 300}}, ("bot", "auth"), "no more than 255"),
    ],
)
def test_hostile_fields_get_field_errors_with_reasons(
    changes: dict[str, Any], where: tuple[str, str], reason: str
) -> None:
    errors = _errors(_message_payload(**changes))
    detail = json.dumps(errors["data"][where[0]][where[1]])
    assert reason in detail, detail


def test_missing_objects_are_named() -> None:
    errors = _errors({"event": "ONIMBOTV2MESSAGEADD", "data": {}})
    assert set(errors["data"]) == {"bot", "message"}
    errors = _errors({"event": "ONIMBOTV2REACTIONCHANGE", "data": {"bot": {"id": 1}}})
    assert set(errors["data"]) == {"message", "reaction", "action"}


def test_a_reaction_action_is_add_or_delete() -> None:
    data = V2EventFactory().reaction_change(1).data
    data["action"] = "explode"
    errors = _errors({"event": "ONIMBOTV2REACTIONCHANGE", "data": data})
    assert "not a valid choice" in errors["data"]["action"][0]


def test_an_object_with_too_many_keys_is_refused() -> None:
    errors = _errors(_message_payload(message__params={str(i): i for i in range(201)}))
    assert "no more than 200 keys" in errors["data"]["message"]["params"][0]


def test_a_chat_without_any_address_is_refused() -> None:
    data = V2EventFactory().message_add().data
    data["chat"] = {"type": "chat"}
    data["message"].pop("chatId")
    errors = _errors({"event": "ONIMBOTV2MESSAGEADD", "data": data})
    assert "dialogId" in errors["data"]["chat"]


@pytest.mark.parametrize(
    ("item", "field"),
    [
        ({"type": "ONIMBOTV2MESSAGEADD", "data": {}}, "eventId"),
        ({"eventId": "x", "type": "ONIMBOTV2MESSAGEADD", "data": {}}, "eventId"),
        ({"eventId": 0, "type": "ONIMBOTV2MESSAGEADD", "data": {}}, "eventId"),
        ({"eventId": 1, "data": {}}, "type"),
        ({"eventId": 1, "type": "T" * 65, "data": {}}, "type"),
        ({"eventId": 1, "type": "ONIMBOTV2MESSAGEADD"}, "data"),
        ({"eventId": 1, "type": "ONIMBOTV2MESSAGEADD", "data": "x"}, "data"),
    ],
)
def test_broken_fetch_items_are_refused_with_the_field(item: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidPayload) as caught:
        v2.fetch_payload(item, member_id=MEMBER)
    assert field in caught.value.errors


def test_a_fetch_item_that_is_not_an_object_is_refused() -> None:
    with pytest.raises(InvalidPayload):
        v2.fetch_payload(["not", "an", "item"], member_id=MEMBER)


def test_fetch_payload_is_webhook_shaped_with_the_event_id() -> None:
    item = V2EventFactory().message_add().as_fetch(event_id=1001)
    item["date"] = "2025-01-15T10:30:00+02:00"
    payload = v2.fetch_payload(item, member_id=MEMBER)
    assert payload["event"] == "ONIMBOTV2MESSAGEADD"
    assert payload["eventId"] == 1001
    assert payload["ts"] == 1736929800
    assert payload["auth"] == {"member_id": MEMBER}
    envelope = parse_envelope(payload)
    assert v2.event_id(envelope) == 1001
    item["date"] = "not a date"
    assert "ts" not in v2.fetch_payload(item, member_id=MEMBER)


# --------------------------------------------------------------------------- dedup keys


def _key(payload: dict[str, Any]) -> str:
    envelope = parse_envelope(payload)
    return v2.dedup_key(envelope, v2.parse_event(envelope), payload)


def test_dedup_keys() -> None:
    f = V2EventFactory()
    fetched = v2.fetch_payload(f.message_add(message_id=5).as_fetch(event_id=77), member_id=MEMBER)
    assert _key(fetched) == "ONIMBOTV2MESSAGEADD:event:77"
    hook = f.message_add(message_id=5).as_webhook()
    assert _key(hook) == "ONIMBOTV2MESSAGEADD:bot456:5"
    other_bot = V2EventFactory(bot_id=457).message_add(message_id=5).as_webhook()
    assert _key(other_bot) != _key(hook)  # one call per bot: both must be stored
    first, second = f.message_update(5, "one").as_webhook(), f.message_update(5, "two").as_webhook()
    assert _key(first) != _key(second)
    assert _key(f.command_add(command_id=3).as_webhook()).startswith(
        "ONIMBOTV2COMMANDADD:bot456:3:"
    )
