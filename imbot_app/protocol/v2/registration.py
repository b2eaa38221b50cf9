"""Registration steps for a Chatbots 2.0 bot: a declaration -> ``imbot.v2.Bot.*`` / ``Command.*``.

The same functions, with the same roles, as ``protocol.v1.methods`` offers the registration
runner (``register_bot``, ``update_bot``, ``register_command`` ...), reading the declaration
(``lifecycle.specs.BotSpec``) through the protocols of ``protocol.v1.methods``.  Differences
the runner must know are constants here: what Bitrix24 answers (a ``{bot: {...}}`` /
``{command: {...}}`` object, not a bare id, read by :func:`id_of`), which errors mean "gone"
(``BOT_NOT_FOUND`` / ``COMMAND_NOT_FOUND``), and that ``Command.update`` can change
``common`` (v1 had to unregister and register again).  v2 has no per-command handler URL: the
bot's ``eventMode`` says how every event arrives.  ``bot_token`` is the bot's secret on an
inbound-webhook portal ("" on OAuth portals, where the application owns the bot).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from imbot_app.protocol.declarations import BotDeclaration, CommandDeclaration
from imbot_app.protocol.v2 import methods

Call = tuple[str, dict[str, Any]]

BOT_GONE = "BOT_NOT_FOUND"
COMMAND_GONE = "COMMAND_NOT_FOUND"
#: Command.update changes ``common`` too: no unregister-and-register-again.
UPDATE_CHANGES_COMMON = True

#: The methods each registration step calls, in order (keys are the steps' values).
STEP_METHODS: dict[str, tuple[str, ...]] = {
    "register bot": (methods.PREFIX + "Bot.register", methods.PREFIX + "Bot.update"),
    "update bot": (methods.PREFIX + "Bot.update",),
    "unregister bot": (methods.PREFIX + "Bot.unregister",),
    "register command": (methods.PREFIX + "Command.register",),
    "update command": (methods.PREFIX + "Command.update",),
    "replace command": (methods.PREFIX + "Command.unregister", methods.PREFIX + "Command.register"),
    "unregister command": (methods.PREFIX + "Command.unregister",),
    "bind event": ("event.bind",),
}

#: v1 TYPE letters -> v2 types (H, "human-like", has none: declarations refuse it).
TYPES = {"B": "bot", "O": "openline", "S": "supervisor"}


def properties(spec: BotDeclaration) -> dict[str, str]:
    """v2's camelCase properties from the declaration's (EMAIL, PERSONAL_WWW and
    PERSONAL_BIRTHDAY have no v2 counterpart and are not sent)."""
    v1 = spec.properties_payload()
    names = {
        "NAME": "name",
        "LAST_NAME": "lastName",
        "WORK_POSITION": "workPosition",
        "COLOR": "color",
        "PERSONAL_GENDER": "gender",
        "PERSONAL_PHOTO": "avatar",
    }
    found = {v2: v1[key] for key, v2 in names.items() if v1.get(key)}
    found.setdefault("name", v1.get("LAST_NAME", ""))
    return found


def bot_fields(spec: BotDeclaration, url: str) -> dict[str, Any]:
    """``fields`` of Bot.update: what the declaration says (its fingerprint is built from it)."""
    fields: dict[str, Any] = {
        "properties": properties(spec),
        "eventMode": spec.event_mode or "fetch",
        "isSupportOpenline": bool(spec.openline),
    }
    if fields["eventMode"] == "webhook":
        fields["webhookUrl"] = url
    return fields


def register_bot(spec: BotDeclaration, url: str, *, bot_token: str = "") -> Call:
    """``Bot.register`` (idempotent per code and owner; it does not update an existing bot)."""
    fields = bot_fields(spec, url)
    call = methods.register_bot(
        spec.code,
        fields["properties"],
        type=TYPES[spec.type],
        event_mode=fields["eventMode"],
        webhook_url=fields.get("webhookUrl"),
        bot_token=bot_token or None,
        is_support_openline=fields["isSupportOpenline"],
    )
    return call.method, call.params


def update_bot(bot_id: int, spec: BotDeclaration, url: str, *, bot_token: str = "") -> Call:
    call = methods.update_bot(bot_id, bot_fields(spec, url), bot_token=bot_token or None)
    return call.method, call.params


def unregister_bot(bot_id: int, *, bot_token: str = "") -> Call:
    call = methods.unregister_bot(bot_id, bot_token=bot_token or None)
    return call.method, call.params


def command_fields(command: CommandDeclaration, url: str = "") -> dict[str, Any]:
    """``fields`` of Command.register / update (``url`` unused: v2 has no command handler)."""
    return methods.command_fields(
        command.command,
        dict(command.titles),
        params=dict(command.params_texts) or None,
        common=command.common,
        hidden=command.hidden,
        extranet=command.extranet,
    )


def register_command(
    bot_id: int, command: CommandDeclaration, url: str = "", *, bot_token: str = ""
) -> Call:
    call = methods.register_command(bot_id, command_fields(command), bot_token=bot_token or None)
    return call.method, call.params


def update_command(
    command_id: int,
    command: CommandDeclaration,
    url: str = "",
    *,
    bot_id: int | None = None,
    bot_token: str = "",
) -> Call:
    """``Command.update`` (v2 names the bot, unlike v1)."""
    if bot_id is None:
        raise ValueError("Command.update needs the bot's id")
    call = methods.update_command(
        bot_id, command_id, command_fields(command), bot_token=bot_token or None
    )
    return call.method, call.params


def unregister_command(command_id: int, *, bot_id: int | None = None, bot_token: str = "") -> Call:
    if bot_id is None:
        raise ValueError("Command.unregister needs the bot's id")
    call = methods.unregister_command(bot_id, command_id, bot_token=bot_token or None)
    return call.method, call.params


def id_of(result: Any, kind: str) -> Any:
    """The id in ``{"bot": {"id": ...}}`` / ``{"command": {"id": ...}}`` (else the result)."""
    if isinstance(result, Mapping) and isinstance(result.get(kind), Mapping):
        return result[kind].get("id")
    return result
