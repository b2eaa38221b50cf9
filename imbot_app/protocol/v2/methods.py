"""Typed replies and registrations -> ``imbot.v2.*`` REST calls; v2 error codes -> advice.

Every builder returns a :class:`Call` (method + params, JSON-ready) for
``RestClient.call(call.method, call.params)``.  Parameters follow the reference: the bot is
``botId`` at the top level; ``botToken`` (inbound-webhook portals only: an OAuth bot is tied to
its application) is top level too, except in ``Bot.register`` where it is ``fields.botToken``;
what a message says goes in ``fields``.  Keyboards and attachments keep v1's UPPER_CASE
structures, so :mod:`imbot_app.outbound.blocks` builds them for both versions.

:func:`~.translate.from_v1` translates the v1 calls the handler contexts describe today
(``imbot.message.add``, ``imbot.command.answer``, ``imbot.message.update`` / ``.delete``,
``imbot.chat.sendTyping``) into their v2 counterparts, so one handler API serves both; and
:mod:`.advice` explains v2 error codes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = [
    "MAX_BOT_TOKEN",
    "Call",
    "add_reaction",
    "answer_command",
    "delete_message",
    "delete_reaction",
    "event_get",
    "notify_input",
    "register_bot",
    "register_command",
    "send_message",
    "unregister_bot",
    "unregister_command",
    "update_bot",
    "update_command",
    "update_message",
]

PREFIX = "imbot.v2."
MAX_BOT_TOKEN = 40  # Bot.register refuses longer ones (BOT_TOKEN_INVALID_LENGTH)
MAX_EVENT_LIMIT = 1000
MAX_TYPING_SECONDS = 600
BOT_TYPES = ("bot", "supervisor", "personal", "openline")
EVENT_MODES = ("fetch", "webhook")


@dataclass(frozen=True, slots=True)
class Call:
    """One ``imbot.v2`` REST call: ``RestClient(portal).call(call.method, call.params)``."""

    method: str
    params: dict[str, Any]


def _call(method: str, bot_id: int | None, bot_token: str | None, **params: Any) -> Call:
    body: dict[str, Any] = {}
    if bot_id is not None:
        body["botId"] = int(bot_id)
    body.update({k: v for k, v in params.items() if v is not None})
    if bot_token:
        body["botToken"] = _checked_token(bot_token)
    return Call(PREFIX + method, body)


def _checked_token(token: str) -> str:
    if not isinstance(token, str) or not token or len(token) > MAX_BOT_TOKEN:
        raise ValueError(f"a botToken is 1-{MAX_BOT_TOKEN} characters")
    return token


def _fields(**values: Any) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v is not None}


# --------------------------------------------------------------------------- messages


def send_message(
    bot_id: int,
    dialog_id: str,
    text: str,
    *,
    keyboard: Any = None,
    attach: Any = None,
    system: bool | None = None,
    url_preview: bool | None = None,
    reply_id: int | None = None,
    bot_token: str | None = None,
) -> Call:
    """``Chat.Message.send``: write to ``dialog_id`` (``chatN``, or the counterpart's id)."""
    fields = _fields(
        message=text,
        keyboard=keyboard,
        attach=attach,
        system=system,
        urlPreview=url_preview,
        replyId=reply_id,
    )
    return _call("Chat.Message.send", bot_id, bot_token, dialogId=str(dialog_id), fields=fields)


def answer_command(
    bot_id: int,
    command_id: int,
    message_id: int,
    dialog_id: str,
    text: str,
    *,
    keyboard: Any = None,
    attach: Any = None,
    system: bool | None = None,
    url_preview: bool | None = None,
    bot_token: str | None = None,
) -> Call:
    """``Command.answer``: works in chats the bot is not a member of (common commands)."""
    fields = _fields(
        message=text, keyboard=keyboard, attach=attach, system=system, urlPreview=url_preview
    )
    return _call(
        "Command.answer",
        bot_id,
        bot_token,
        commandId=int(command_id),
        messageId=int(message_id),
        dialogId=str(dialog_id),
        fields=fields,
    )


def update_message(
    bot_id: int,
    message_id: int,
    text: str | None = None,
    *,
    keyboard: Any = None,
    attach: Any = None,
    url_preview: bool | None = None,
    bot_token: str | None = None,
) -> Call:
    """``Chat.Message.update`` of one of the bot's own messages (``keyboard="N"`` removes it)."""
    fields = _fields(
        message=text,
        keyboard=keyboard,
        attach=attach,
        urlPreview=None if url_preview is None else ("Y" if url_preview else "N"),
    )
    if not fields:
        raise ValueError("update_message needs a text, keyboard, attach or url_preview")
    return _call("Chat.Message.update", bot_id, bot_token, messageId=int(message_id), fields=fields)


def delete_message(
    bot_id: int, message_id: int, *, complete: bool = False, bot_token: str | None = None
) -> Call:
    """``Chat.Message.delete``; ``complete`` removes it without the "deleted" trace."""
    return _call(
        "Chat.Message.delete",
        bot_id,
        bot_token,
        messageId=int(message_id),
        complete=True if complete else None,
    )


def notify_input(
    bot_id: int,
    dialog_id: str,
    *,
    status_code: str | None = None,
    duration: int | None = None,
    bot_token: str | None = None,
) -> Call:
    """``Chat.InputAction.notify``: "typing" (default) or a status such as
    ``IMBOT_AGENT_ACTION_THINKING``, for ``duration`` seconds (1-600)."""
    if duration is not None and not 1 <= int(duration) <= MAX_TYPING_SECONDS:
        raise ValueError(f"duration is 1-{MAX_TYPING_SECONDS} seconds, not {duration}")
    return _call(
        "Chat.InputAction.notify",
        bot_id,
        bot_token,
        dialogId=str(dialog_id),
        statusMessageCode=status_code,
        duration=duration,
    )


def add_reaction(
    bot_id: int, message_id: int, reaction: str, *, bot_token: str | None = None
) -> Call:
    """``Chat.Message.Reaction.add`` (e.g. ``like``)."""
    return _call(
        "Chat.Message.Reaction.add",
        bot_id,
        bot_token,
        messageId=int(message_id),
        reaction=_reaction(reaction),
    )


def delete_reaction(
    bot_id: int, message_id: int, reaction: str, *, bot_token: str | None = None
) -> Call:
    """``Chat.Message.Reaction.delete``."""
    return _call(
        "Chat.Message.Reaction.delete",
        bot_id,
        bot_token,
        messageId=int(message_id),
        reaction=_reaction(reaction),
    )


def _reaction(code: str) -> str:
    if not isinstance(code, str) or not code.strip() or len(code) > 64:
        raise ValueError("a reaction is a code such as 'like' (at most 64 characters)")
    return code.strip()


# --------------------------------------------------------------------------- bots, commands


def register_bot(
    code: str,
    properties: Mapping[str, Any],
    *,
    type: str = "bot",
    event_mode: str = "fetch",
    webhook_url: str | None = None,
    bot_token: str | None = None,
    is_hidden: bool | None = None,
    is_reactions_enabled: bool | None = None,
    is_support_openline: bool | None = None,
) -> Call:
    """``Bot.register`` (idempotent per code and owner: answers the existing bot).

    ``properties`` are v2's camelCase ones (``name`` required, ``lastName``, ``workPosition``,
    ``color``, ``gender``, ``avatar`` base64); ``bot_token`` is required on an inbound-webhook
    portal and goes in ``fields``.
    """
    if type not in BOT_TYPES:
        raise ValueError(f"type {type!r} is not one of {', '.join(BOT_TYPES)}")
    if event_mode not in EVENT_MODES:
        raise ValueError(f"event_mode {event_mode!r} is not one of {', '.join(EVENT_MODES)}")
    if event_mode == "webhook" and not webhook_url:
        raise ValueError("a webhook-mode bot needs webhook_url (where Bitrix24 posts events)")
    if not properties.get("name"):
        raise ValueError("properties need a 'name': people see it")
    fields = _fields(
        code=code,
        properties=dict(properties),
        type=type,
        eventMode=event_mode,
        webhookUrl=webhook_url,
        botToken=_checked_token(bot_token) if bot_token else None,
        isHidden=is_hidden,
        isReactionsEnabled=is_reactions_enabled,
        isSupportOpenline=is_support_openline,
    )
    return _call("Bot.register", None, None, fields=fields)


def update_bot(
    bot_id: int,
    fields: Mapping[str, Any],
    *,
    bot_token: str | None = None,
    new_bot_token: str | None = None,
) -> Call:
    """``Bot.update``: ``fields`` as ``Bot.register`` takes them (properties, eventMode ...).

    ``new_bot_token`` rotates the token: the old one (``bot_token``) stops working at once.
    """
    body = dict(fields)
    if not body and not new_bot_token:
        raise ValueError("update_bot needs fields to change")
    if new_bot_token:
        body["botToken"] = _checked_token(new_bot_token)
    return _call("Bot.update", bot_id, bot_token, fields=body)


def unregister_bot(bot_id: int, *, bot_token: str | None = None) -> Call:
    """``Bot.unregister`` (its private chats go with it)."""
    return _call("Bot.unregister", bot_id, bot_token)


def command_fields(
    command: str,
    title: Mapping[str, str],
    *,
    params: Mapping[str, str] | None = None,
    common: bool = False,
    hidden: bool = False,
    extranet: bool = False,
) -> dict[str, Any]:
    """``fields`` of ``Command.register`` / ``update``: the word without ``/``, texts by
    language."""
    word = command.strip()
    if not word or word.startswith("/"):
        raise ValueError("a command is the word without the slash, e.g. 'help'")
    if not title and not hidden:
        raise ValueError(f"command {word!r} needs a title (unless hidden)")
    return _fields(
        command=word,
        title=dict(title) or None,
        params=dict(params) if params else None,
        common=common,
        hidden=hidden,
        extranetSupport=extranet,
    )


def register_command(
    bot_id: int, fields: Mapping[str, Any], *, bot_token: str | None = None
) -> Call:
    """``Command.register`` (idempotent per bot and word); ``fields``: :func:`command_fields`."""
    return _call("Command.register", bot_id, bot_token, fields=dict(fields))


def update_command(
    bot_id: int, command_id: int, fields: Mapping[str, Any], *, bot_token: str | None = None
) -> Call:
    """``Command.update``; a title language set to ``None`` deletes it."""
    return _call(
        "Command.update", bot_id, bot_token, commandId=int(command_id), fields=dict(fields)
    )


def unregister_command(bot_id: int, command_id: int, *, bot_token: str | None = None) -> Call:
    return _call("Command.unregister", bot_id, bot_token, commandId=int(command_id))


# --------------------------------------------------------------------------- events


def event_get(
    bot_id: int,
    *,
    offset: int = 0,
    limit: int = 100,
    bot_token: str | None = None,
    with_user_events: bool = False,
) -> Call:
    """``Event.get``: ``offset`` acknowledges (deletes) every event below it; 0 sends none."""
    if not 1 <= int(limit) <= MAX_EVENT_LIMIT:
        raise ValueError(f"limit is 1-{MAX_EVENT_LIMIT}, not {limit}")
    if int(offset) < 0:
        raise ValueError("offset must not be negative")
    return _call(
        "Event.get",
        bot_id,
        bot_token,
        offset=int(offset) or None,
        limit=int(limit),
        withUserEvents=True if with_user_events else None,
    )
