"""Chatbots 2.0 events -> the version-free typed events of :mod:`imbot_app.events`.

Two deliveries, one stored shape.  A webhook POST is ``{event, data, ts, auth}`` (form-encoded
with every scalar a string, or JSON); an ``imbot.v2.Event.get`` item is ``{eventId, type,
date, data}`` with typed JSON.  :func:`fetch_payload` turns a fetch item into the webhook shape
(plus ``eventId`` and ``date``), so both are parsed, stored and re-parsed from the database by
the same two calls::

    envelope = serializers.parse_envelope(payload)   # shared with v1: event, ts, auth, data
    event = protocol.v2.events.parse_event(envelope)  # data -> MessageAdd, CommandAdd, ...

:func:`parse_event` raises :class:`~imbot_app.protocol.v1.events.InvalidPayload` with DRF field
errors nested under ``data`` (as v1 does), so the endpoint can keep an invalid event and say
why.  :func:`dedup_key` is what ``store_event(..., dedup=...)`` should be given for a v2
event: ``eventId`` when there is one, else the v1 rule scoped to the bot (v2 sends one call per
bot, so two bots in one chat see the same message id).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rest_framework import serializers

from imbot_app import events as ev
from imbot_app.errors import InvalidPayload
from imbot_app.events import Envelope
from imbot_app.protocol.fields import auth_block
from imbot_app.protocol.v2.delivery import dedup_key, event_id, fetch_payload
from imbot_app.protocol.v2.objects import (
    BotDeleteData,
    CommandData,
    ContextData,
    JoinData,
    MessageData,
    MessageDeleteData,
    ReactionData,
)
from imbot_app.protocol.validation import Builder, build_event

__all__ = [
    "EVENT_CLASSES",
    "KNOWN_EVENTS",
    "V2_PREFIX",
    "dedup_key",
    "event_id",
    "fetch_payload",
    "is_v2",
    "parse_event",
]

V2_PREFIX = "ONIMBOTV2"
MESSAGE_ADD = "ONIMBOTV2MESSAGEADD"
MESSAGE_UPDATE = "ONIMBOTV2MESSAGEUPDATE"
MESSAGE_DELETE = "ONIMBOTV2MESSAGEDELETE"
JOIN_CHAT = "ONIMBOTV2JOINCHAT"
BOT_DELETE = "ONIMBOTV2DELETE"
CONTEXT_GET = "ONIMBOTV2CONTEXTGET"
COMMAND_ADD = "ONIMBOTV2COMMANDADD"
REACTION_CHANGE = "ONIMBOTV2REACTIONCHANGE"

# v2 chat ``type`` words -> the MESSAGE_TYPE letters v1 (and the Chat model) use.
CHAT_TYPES = {
    "private": "P",
    "chat": "C",
    "open": "O",
    "lines": "L",
    "system": "S",
    "channel": "N",
    "openchannel": "J",
    "comment": "T",
    "copilot": "A",
    "collab": "B",
    "external": "X",
}


def is_v2(name: str) -> bool:
    """Whether an event name belongs to Chatbots 2.0."""
    return name.strip().upper().startswith(V2_PREFIX)


# --------------------------------------------------------------------------- builders


def _bot_ref(bot: Mapping[str, Any]) -> ev.BotRef:
    auth = bot.get("auth")
    block = auth_block(auth) if auth else None
    if block is not None and not (block.access_token or block.application_token):
        block = None
    return ev.BotRef(bot_id=bot["id"], code=bot.get("code") or "", auth=block)


def _user(values: Mapping[str, Any] | None) -> ev.UserInfo | None:
    if not values or not values.get("id"):
        return None
    return ev.UserInfo(
        id=values["id"],
        name=values.get("name") or "",
        first_name=values.get("firstName") or "",
        last_name=values.get("lastName") or "",
        work_position=values.get("workPosition") or "",
        gender=values.get("gender") or "",
        is_bot=bool(values.get("bot")),
        is_connector=bool(values.get("connector")),
        is_network=(values.get("externalAuthId") or "") == "network",
        is_extranet=bool(values.get("extranet")),
    )


def _chat_type(chat: Mapping[str, Any]) -> str:
    letter = chat.get("messageType") or ""
    if letter:
        return str(letter).upper()
    return CHAT_TYPES.get(str(chat.get("type") or "").lower(), "")


def _chat(values: Mapping[str, Any]) -> ev.ChatInfo:
    """The chat, addressed the way replies are: ``chatN``, or the counterpart's user id."""
    chat = values.get("chat") or {}
    message = values.get("message") or {}
    user = values.get("user") or {}
    chat_type = _chat_type(chat)
    chat_id = chat.get("id") or message.get("chatId")
    dialog_id = values.get("dialogId") or chat.get("dialogId") or ""
    if not dialog_id:
        if chat_type == "P" and user.get("id"):
            dialog_id = str(user["id"])
        elif chat_id and chat_type != "P":
            dialog_id = f"chat{chat_id}"
    if not dialog_id:
        raise InvalidPayload(
            {"data": {"chat": {"dialogId": ["This field is required (no chat id to derive it)."]}}}
        )
    return ev.ChatInfo(
        dialog_id=dialog_id,
        type=chat_type,
        chat_id=chat_id,
        title=chat.get("name") or "",
        entity_type=chat.get("entityType") or "",
        entity_id=chat.get("entityId") or "",
    )


def _message(values: Mapping[str, Any], message: Mapping[str, Any]) -> ev.MessageInfo:
    body = message.get("text") or ""
    params = message.get("params") or {}
    files = params.get("FILES") or params.get("files") or {}
    return ev.MessageInfo(
        message_id=message["id"],
        author_id=message.get("authorId"),
        text=body,
        text_original=body,
        language=values.get("language") or "",
        files=dict(files) if isinstance(files, Mapping) else {},
        is_system=bool(message.get("isSystem")),
    )


def _common(env: Envelope, values: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "name": env.name,
        "handler_id": env.handler_id,
        "ts": env.ts,
        "auth": env.auth,
        "bot_refs": (_bot_ref(values["bot"]),),
        "chat": _chat(values),
        "user": _user(values.get("user")),
    }


def _message_event(cls: type[ev.MessageAdd | ev.MessageUpdate]) -> Builder:
    def build(env: Envelope, values: dict[str, Any]) -> ev.BitrixEvent:
        return cls(**_common(env, values), message=_message(values, values["message"]))

    return build


def _message_delete(env: Envelope, values: dict[str, Any]) -> ev.BitrixEvent:
    """Only the id of a deleted message is sent; ``user`` is its author (the reference)."""
    user = values.get("user") or {}
    message = ev.MessageInfo(
        message_id=values["messageId"],
        author_id=user.get("id"),
        text="",
        text_original="",
        language=values.get("language") or "",
    )
    return ev.MessageDelete(**_common(env, values), message=message)


def _command_event(env: Envelope, values: dict[str, Any]) -> ev.BitrixEvent:
    bot = _bot_ref(values["bot"])
    command = values["command"]
    message = values.get("message")
    ref = ev.CommandRef(
        command_id=command["id"],
        command=command["command"],
        params=command.get("params") or "",
        context=(command.get("context") or "").upper(),
        message_id=message["id"] if message else None,
        bot_id=bot.bot_id,
        bot_code=bot.code,
        auth=bot.auth,
    )
    return ev.CommandAdd(
        **_common(env, values),
        commands=(ref,),
        message=_message(values, message) if message else None,
    )


def _join_event(env: Envelope, values: dict[str, Any]) -> ev.BitrixEvent:
    return ev.BotJoinChat(**_common(env, values), bot_id=values["bot"]["id"], access_history=None)


def _context_event(env: Envelope, values: dict[str, Any]) -> ev.BitrixEvent:
    return ev.ContextGet(**_common(env, values), context=dict(values.get("context") or {}))


def _reaction_event(env: Envelope, values: dict[str, Any]) -> ev.BitrixEvent:
    return ev.ReactionChange(
        **_common(env, values),
        reaction=values["reaction"],
        action=values["action"],
        message=_message(values, values["message"]),
    )


def _bot_delete_event(env: Envelope, values: dict[str, Any]) -> ev.BitrixEvent:
    bot = values["bot"]
    return ev.BotDelete(
        name=env.name,
        handler_id=env.handler_id,
        ts=env.ts,
        auth=env.auth,
        bot_id=bot["id"],
        bot_code=bot.get("code") or "",
    )


_BUILDERS: dict[str, tuple[type[serializers.Serializer], Builder]] = {
    MESSAGE_ADD: (MessageData, _message_event(ev.MessageAdd)),
    MESSAGE_UPDATE: (MessageData, _message_event(ev.MessageUpdate)),
    MESSAGE_DELETE: (MessageDeleteData, _message_delete),
    COMMAND_ADD: (CommandData, _command_event),
    JOIN_CHAT: (JoinData, _join_event),
    BOT_DELETE: (BotDeleteData, _bot_delete_event),
    CONTEXT_GET: (ContextData, _context_event),
    REACTION_CHANGE: (ReactionData, _reaction_event),
}

KNOWN_EVENTS = frozenset(_BUILDERS)

#: The typed class each v2 event name parses to (the signals' ``sender``).
EVENT_CLASSES: dict[str, type[ev.BitrixEvent]] = {
    MESSAGE_ADD: ev.MessageAdd,
    MESSAGE_UPDATE: ev.MessageUpdate,
    MESSAGE_DELETE: ev.MessageDelete,
    COMMAND_ADD: ev.CommandAdd,
    JOIN_CHAT: ev.BotJoinChat,
    BOT_DELETE: ev.BotDelete,
    CONTEXT_GET: ev.ContextGet,
    REACTION_CHANGE: ev.ReactionChange,
}


def parse_event(envelope: Envelope) -> ev.BitrixEvent:
    """Validate ``data`` of a v2 event and build the typed event.

    An ``ONIMBOTV2*`` name this module does not know becomes a
    :class:`~imbot_app.events.GenericEvent` (kept, never refused).  Raises
    :class:`~imbot_app.protocol.v1.events.InvalidPayload` with the field errors under ``data``.
    """
    return build_event(envelope, _BUILDERS)
