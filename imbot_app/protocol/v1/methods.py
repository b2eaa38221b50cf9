"""v1 REST calls: a typed reply or registration step -> ``(method, params)``.

The context objects and the registration runner describe *what* to do (write to this chat,
answer that command, register this bot); this module is the only place that knows what v1
calls it and how its parameters are spelled.  Declarations are read through the small
protocols below, so this layer imports nothing above it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from imbot_app.protocol.declarations import BotDeclaration, CommandDeclaration
from imbot_app.protocol.outcomes import Deleted, Edited, Outcome, Written

Call = tuple[str, dict[str, Any]]

#: Calls whose result is the id of a message the bot just wrote.
WRITES_MESSAGE = frozenset({"imbot.message.add", "imbot.command.answer"})
UPDATES_MESSAGE = "imbot.message.update"
DELETES_MESSAGE = "imbot.message.delete"

#: Errors meaning Bitrix24 no longer knows the bot or command the database holds as live.
BOT_GONE = "BOT_ID_ERROR"
COMMAND_GONE = "COMMAND_ID_ERROR"
#: imbot.command.update cannot change COMMON: the command is unregistered and registered again.
UPDATE_CHANGES_COMMON = False

#: The methods each registration step calls, in order (keys are the steps' values).
STEP_METHODS: dict[str, tuple[str, ...]] = {
    "register bot": ("imbot.register", "imbot.update"),
    "update bot": ("imbot.update",),
    "unregister bot": ("imbot.unregister",),
    "register command": ("imbot.command.register",),
    "update command": ("imbot.command.update",),
    "replace command": ("imbot.command.unregister", "imbot.command.register"),
    "unregister command": ("imbot.command.unregister",),
    "bind event": ("event.bind",),
}


def _yn(flag: bool) -> str:
    return "Y" if flag else "N"


def _as_bot(bot_id: int | None, params: dict[str, Any]) -> dict[str, Any]:
    return {"BOT_ID": bot_id, **params} if bot_id is not None else params


# --------------------------------------------------------------------------- replies


def send_message(bot_id: int | None, dialog_id: str, text: str, extras: Mapping[str, Any]) -> Call:
    """Write ``text`` to a chat as the bot."""
    return "imbot.message.add", _as_bot(bot_id, {"DIALOG_ID": dialog_id, "MESSAGE": text, **extras})


def update_message(
    bot_id: int | None, message_id: int, text: str, extras: Mapping[str, Any]
) -> Call:
    """Edit a message the bot wrote (an empty text deletes it)."""
    params = {"MESSAGE_ID": message_id, "MESSAGE": text, **extras}
    return UPDATES_MESSAGE, _as_bot(bot_id, params)


def delete_message(bot_id: int | None, message_id: int) -> Call:
    return DELETES_MESSAGE, _as_bot(bot_id, {"MESSAGE_ID": message_id})


def send_typing(bot_id: int | None, dialog_id: str) -> Call:
    return "imbot.chat.sendTyping", _as_bot(bot_id, {"DIALOG_ID": dialog_id})


def answer_command(
    command_id: int,
    message_id: int | None,
    text: str,
    extras: Mapping[str, Any],
    *,
    bot_id: int | None = None,
    dialog_id: str = "",
) -> Call:
    """Answer a command with its COMMAND_ID and MESSAGE_ID (v1 needs neither bot nor chat)."""
    params = {"COMMAND_ID": command_id, "MESSAGE_ID": message_id, "MESSAGE": text, **extras}
    return "imbot.command.answer", params


# --------------------------------------------------------------------------- registration


def bot_fields(spec: BotDeclaration, url: str) -> dict[str, Any]:
    """``FIELDS`` for imbot.update: every handler the bot wants, and its PROPERTIES."""
    fields: dict[str, Any] = {
        "EVENT_MESSAGE_ADD": url,
        "EVENT_WELCOME_MESSAGE": url,
        "EVENT_BOT_DELETE": url,
    }
    if spec.message_edits:
        fields["EVENT_MESSAGE_UPDATE"] = url
        fields["EVENT_MESSAGE_DELETE"] = url
    fields["PROPERTIES"] = spec.properties_payload()
    return fields


def register_params(spec: BotDeclaration, url: str) -> dict[str, Any]:
    """imbot.register's parameters (update/delete handlers only where Bitrix24 honours them)."""
    params: dict[str, Any] = {
        "CODE": spec.code,
        "TYPE": spec.type,
        "OPENLINE": _yn(spec.openline),
        **bot_fields(spec, url),
    }
    if not spec.edits_bound_at_registration:
        params.pop("EVENT_MESSAGE_UPDATE", None)
        params.pop("EVENT_MESSAGE_DELETE", None)
    return params


def command_fields(command: CommandDeclaration, url: str) -> dict[str, Any]:
    """``FIELDS`` for imbot.command.update (everything but COMMON, which it cannot change)."""
    return {
        "COMMAND": command.command,
        "EVENT_COMMAND_ADD": url,
        "HIDDEN": _yn(command.hidden),
        "EXTRANET_SUPPORT": _yn(command.extranet),
        "LANG": command.lang(),
    }


# The registration steps take the keyword arguments Chatbots 2.0's need (``bot_token``,
# ``bot_id`` of a command's bot), so the runner calls either version alike; v1 needs neither.


def register_bot(spec: BotDeclaration, url: str, *, bot_token: str = "") -> Call:
    return "imbot.register", register_params(spec, url)


def update_bot(bot_id: int, spec: BotDeclaration, url: str, *, bot_token: str = "") -> Call:
    return "imbot.update", {"BOT_ID": bot_id, "FIELDS": bot_fields(spec, url)}


def unregister_bot(bot_id: int, *, bot_token: str = "") -> Call:
    return "imbot.unregister", {"BOT_ID": bot_id}


def register_command(
    bot_id: int, command: CommandDeclaration, url: str, *, bot_token: str = ""
) -> Call:
    params = {
        "BOT_ID": bot_id,
        "COMMAND": command.command,
        "COMMON": _yn(command.common),
        "HIDDEN": _yn(command.hidden),
        "EXTRANET_SUPPORT": _yn(command.extranet),
        "EVENT_COMMAND_ADD": url,
        "LANG": command.lang(),
    }
    return "imbot.command.register", params


def update_command(
    command_id: int,
    command: CommandDeclaration,
    url: str,
    *,
    bot_id: int | None = None,
    bot_token: str = "",
) -> Call:
    return "imbot.command.update", {
        "COMMAND_ID": command_id,
        "FIELDS": command_fields(command, url),
    }


def unregister_command(command_id: int, *, bot_id: int | None = None, bot_token: str = "") -> Call:
    return "imbot.command.unregister", {"COMMAND_ID": command_id}


def bind_event(event: str, url: str) -> Call:
    return "event.bind", {"event": event, "handler": url}


def unbind_event(event: str, url: str) -> Call:
    return "event.unbind", {"event": event, "handler": url}


def id_of(result: Any, kind: str) -> Any:
    """v1 answers registrations with the bare id."""
    return result


def outcome(method: str, params: Mapping[str, Any], result: Any) -> Outcome | None:
    """What a reply call did to the chat (see :mod:`imbot_app.protocol.outcomes`)."""
    text = str(params.get("MESSAGE", ""))
    if method in WRITES_MESSAGE:
        is_id = isinstance(result, int) and not isinstance(result, bool)
        if is_id or (isinstance(result, str) and result.isdigit()):
            return Written(int(result), text, str(params.get("DIALOG_ID", "")))
        return None
    if not result or params.get("MESSAGE_ID") in (None, ""):
        return None
    if method == UPDATES_MESSAGE:
        return Edited(int(params["MESSAGE_ID"]), text)
    if method == DELETES_MESSAGE:
        return Deleted(int(params["MESSAGE_ID"]))
    return None
