"""The handler contexts' reply helpers, spelled for a Chatbots 2.0 bot.

The same functions, with the same arguments, as ``protocol.v1.methods`` offers the contexts
(``send_message(bot_id, dialog_id, text, extras)`` ...), so ``methods_for``'s caller never
branches on the version: the v1-shaped extras (``KEYBOARD``, ``ATTACH``, ``SYSTEM``,
``URL_PREVIEW``) are carried over by :func:`~.translate.from_v1`.  The ``botToken`` of a bot
registered through an inbound webhook is not added here: the sender adds it when it calls
(:func:`with_bot_token`), so it never sits in an ``OutgoingCall`` a log could show.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from imbot_app.protocol.outcomes import Deleted, Edited, Outcome, Written
from imbot_app.protocol.v2 import methods
from imbot_app.protocol.v2.translate import from_v1

Call = tuple[str, dict[str, Any]]

SEND = methods.PREFIX + "Chat.Message.send"
ANSWER = methods.PREFIX + "Command.answer"
UPDATE = methods.PREFIX + "Chat.Message.update"
DELETE = methods.PREFIX + "Chat.Message.delete"
FILE_UPLOAD = methods.PREFIX + "File.upload"


def _bot(bot_id: int | None) -> int:
    if bot_id is None:
        raise ValueError("a Chatbots 2.0 call needs the bot's id (botId)")
    return int(bot_id)


def _v1(method: str, params: Mapping[str, Any], bot_id: int | None, dialog_id: str = "") -> Call:
    call = from_v1(method, params, bot_id=_bot(bot_id), dialog_id=dialog_id or None)
    return call.method, call.params


def send_message(bot_id: int | None, dialog_id: str, text: str, extras: Mapping[str, Any]) -> Call:
    """``Chat.Message.send`` to ``dialog_id``."""
    return _v1("imbot.message.add", {"DIALOG_ID": dialog_id, "MESSAGE": text, **extras}, bot_id)


def update_message(
    bot_id: int | None, message_id: int, text: str, extras: Mapping[str, Any]
) -> Call:
    """``Chat.Message.update`` of one of the bot's messages."""
    params = {"MESSAGE_ID": message_id, "MESSAGE": text, **extras}
    return _v1("imbot.message.update", params, bot_id)


def delete_message(bot_id: int | None, message_id: int) -> Call:
    return _v1("imbot.message.delete", {"MESSAGE_ID": message_id}, bot_id)


def send_typing(bot_id: int | None, dialog_id: str) -> Call:
    """``Chat.InputAction.notify`` ("typing")."""
    return _v1("imbot.chat.sendTyping", {"DIALOG_ID": dialog_id}, bot_id)


def answer_command(
    command_id: int,
    message_id: int | None,
    text: str,
    extras: Mapping[str, Any],
    *,
    bot_id: int | None = None,
    dialog_id: str = "",
) -> Call:
    """``Command.answer``: unlike v1's, it names the bot and the chat."""
    params = {"COMMAND_ID": command_id, "MESSAGE_ID": message_id, "MESSAGE": text, **extras}
    return _v1("imbot.command.answer", params, bot_id, dialog_id)


def add_reaction(bot_id: int | None, message_id: int, reaction: str) -> Call:
    call = methods.add_reaction(_bot(bot_id), message_id, reaction)
    return call.method, call.params


def delete_reaction(bot_id: int | None, message_id: int, reaction: str) -> Call:
    call = methods.delete_reaction(_bot(bot_id), message_id, reaction)
    return call.method, call.params


def upload_file(
    bot_id: int | None, dialog_id: str, name: str, content: str, text: str = ""
) -> Call:
    """``File.upload``: ``content`` is the file base64-encoded (at most 100 MB decoded)."""
    if not name or not content:
        raise ValueError("a file needs a name and some content")
    fields = {"name": name, "content": content, **({"message": text} if text else {})}
    return FILE_UPLOAD, {"botId": _bot(bot_id), "dialogId": str(dialog_id), "fields": fields}


def download_file(bot_id: int | None, file_id: int) -> Call:
    """``File.download``: a one-time download URL for a file in a chat the bot is in."""
    return methods.PREFIX + "File.download", {"botId": _bot(bot_id), "fileId": int(file_id)}


def download_url(result: Any) -> str | None:
    """The URL in File.download's answer (None from a sender that did not call)."""
    if isinstance(result, Mapping) and result.get("downloadUrl"):
        return str(result["downloadUrl"])
    return None


def with_bot_token(method: str, params: Mapping[str, Any], token: str) -> dict[str, Any]:
    """``params`` with the bot's ``botToken`` (top level; ``fields.botToken`` in Bot.register)."""
    if (
        not token
        or not method.startswith(methods.PREFIX)
        or method == methods.PREFIX + "Bot.register"
    ):
        return dict(params)
    return {**params, "botToken": token}


def _message_id(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, Mapping):
        value = value.get("id")
    try:
        return int(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None


def outcome(method: str, params: Mapping[str, Any], result: Any) -> Outcome | None:
    """What a reply call did.  ``Command.answer`` answers ``true``, not an id: not recorded."""
    fields = params.get("fields") if isinstance(params.get("fields"), Mapping) else {}
    assert isinstance(fields, Mapping)
    text = str(fields.get("message") or "")
    if method == FILE_UPLOAD:  # {"file": {...}, "messageId": ..., "dialogId": ...}
        message_id = _message_id(result.get("messageId") if isinstance(result, Mapping) else None)
        if message_id is None:
            return None
        return Written(message_id, text, str(params.get("dialogId") or ""))
    if method == SEND:
        message_id = _message_id(result)
        if message_id is None:
            return None
        return Written(message_id, text, str(params.get("dialogId") or ""))
    target = _message_id(params.get("messageId"))
    if target is None or not result:
        return None
    if method == UPDATE and "message" in fields:
        return Edited(target, text)
    if method == DELETE:
        return Deleted(target)
    return None
