"""Bot and command declarations: what a bot is, checked when it is declared.

:class:`BotSpec` and :class:`CommandSpec` hold one declaration each and refuse a bad one with a
:class:`DeclarationError` that names the bot, the command and what is wrong.  A title or params
given as a plain string is English (``"en"``).  Where declarations are collected and which URL
they are registered with: :mod:`imbot_app.lifecycle.bots`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, TypeVar

from django.core.exceptions import ImproperlyConfigured

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

_T = TypeVar("_T", bound="DataclassInstance")

__all__ = [
    "APIS",
    "BOT_TYPES",
    "COLORS",
    "EVENT_MODES",
    "BotSpec",
    "CommandSpec",
    "DeclarationError",
]

#: The chat-bot APIs a bot can be registered with: v1 (``imbot.*``) or Chatbots 2.0.
APIS = ("v1", "v2")
#: How a Chatbots 2.0 bot receives its events: pulled with Event.get, or POSTed to us.
EVENT_MODES = ("fetch", "webhook")
#: imbot.register TYPE letters Chatbots 2.0 has a type for (H, "human-like", has none).
V2_TYPES = frozenset({"B", "O", "S"})

#: imbot.register's TYPE letters.
BOT_TYPES = {
    "B": "chat bot (answers at once)",
    "O": "open lines bot",
    "H": "human-like bot (shows typing before its answers)",
    "S": "supervisor bot (receives every message in its chats)",
}

#: imbot.register's PROPERTIES[COLOR] values.
COLORS = frozenset(
    {
        "RED",
        "GREEN",
        "MINT",
        "LIGHT_BLUE",
        "DARK_BLUE",
        "PURPLE",
        "AQUA",
        "PINK",
        "LIME",
        "BROWN",
        "AZURE",
        "KHAKI",
        "SAND",
        "MARENGO",
        "GRAY",
        "GRAPHITE",
    }
)

#: PROPERTIES keys besides NAME, LAST_NAME, COLOR and WORK_POSITION (which have fields).
EXTRA_PROPERTIES = frozenset(
    {"EMAIL", "PERSONAL_BIRTHDAY", "PERSONAL_WWW", "PERSONAL_GENDER", "PERSONAL_PHOTO"}
)

DEFAULT_LANGUAGE = "en"

_CODE = re.compile(r"^[A-Za-z0-9_.-]+$")
_COMMAND = re.compile(r"^[A-Za-z0-9_]+$")
_LANGUAGE = re.compile(r"^[a-z]{2}$")
_BIRTHDAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")


class DeclarationError(ImproperlyConfigured):
    """A declared bot or command is invalid; the message says which one and why."""


# --------------------------------------------------------------------------- specs


def _texts(value: Any, what: str) -> dict[str, str]:
    """``"text"`` or ``{"en": "text", ...}`` -> ``{"en": "text", ...}``, checked."""
    if value is None or value == "":
        return {}
    if isinstance(value, str):
        return {DEFAULT_LANGUAGE: value.strip()} if value.strip() else {}
    if not isinstance(value, Mapping):
        raise DeclarationError(
            f"{what} must be a string or a mapping of language to text, not {value!r}"
        )
    texts: dict[str, str] = {}
    for language, text in value.items():
        if not isinstance(language, str) or not _LANGUAGE.match(language):
            raise DeclarationError(
                f"{what} has language {language!r}: use two lower-case letters, e.g. 'en', 'de'"
            )
        if not isinstance(text, str) or not text.strip():
            raise DeclarationError(f"{what} in {language!r} is empty")
        texts[language] = text.strip()
    return texts


def _flag(value: Any, what: str) -> bool:
    if not isinstance(value, bool):
        raise DeclarationError(f"{what} must be True or False, not {value!r}")
    return value


def _from_mapping(cls: type[_T], data: Any, what: str, required: str, need: str) -> _T:
    """``cls`` built from ``data``'s keys; unknown keys, or no ``required`` key, are an error.

    Commands and bots are read from settings the same way; only the key they need differs.
    """
    if not isinstance(data, Mapping):
        raise DeclarationError(f"{what} must be a mapping, not {data!r}")
    known = {f.name for f in fields(cls)}
    unknown = sorted(str(k) for k in data if k not in known)
    if unknown:
        raise DeclarationError(
            f"{what} has unknown keys {', '.join(unknown)} (known: {', '.join(sorted(known))})"
        )
    if required not in data:
        raise DeclarationError(f"{what} needs {need}: {data!r}")
    return cls(**dict(data))


@dataclass(frozen=True)
class CommandSpec:
    """One slash command of a bot, as ``imbot.command.register`` takes it.

    ``command`` is the word without the slash (Latin letters, digits, ``_``); ``title`` and
    ``params`` are what the command list shows, per language (a plain string is English).
    ``common``: usable in any chat, not only those the bot is in; ``hidden``: not listed;
    ``extranet``: available to extranet users.
    """

    command: str
    title: Mapping[str, str] | str = ""
    params: Mapping[str, str] | str = ""
    common: bool = False
    hidden: bool = False
    extranet: bool = False

    def __post_init__(self) -> None:
        word = self.command.strip() if isinstance(self.command, str) else ""
        what = f"command {word or self.command!r}"
        if word.startswith("/"):
            raise DeclarationError(f"{what}: write the command without the slash")
        if not _COMMAND.match(word):
            raise DeclarationError(
                f"{what}: a command is Latin letters, digits and '_' only (Bitrix24's rule)"
            )
        titles = _texts(self.title, f"{what} title")
        if not titles:
            raise DeclarationError(
                f'{what} needs a title, e.g. title="Repeat a text" or title={{"en": "..."}}'
            )
        params = _texts(self.params, f"{what} params")
        untitled = sorted(set(params) - set(titles))
        if untitled:
            raise DeclarationError(
                f"{what} has params in {', '.join(untitled)} but no title in that language"
            )
        for name in ("common", "hidden", "extranet"):
            _flag(getattr(self, name), f"{what} {name}")
        object.__setattr__(self, "command", word)
        object.__setattr__(self, "title", MappingProxyType(titles))
        object.__setattr__(self, "params", MappingProxyType(params))

    @classmethod
    def from_dict(cls, data: Any) -> CommandSpec:
        """A command from a settings entry: ``{"command": "echo", "title": ..., ...}``."""
        return _from_mapping(cls, data, "a command", "command", "'command' (the word)")

    @property
    def main_title(self) -> str:
        """The title in the first declared language (what the admin shows)."""
        titles = self.titles
        return next(iter(titles.values()), "")

    @property
    def titles(self) -> Mapping[str, str]:
        assert not isinstance(self.title, str)  # normalised in __post_init__
        return self.title

    @property
    def params_texts(self) -> Mapping[str, str]:
        assert not isinstance(self.params, str)
        return self.params

    def lang(self) -> list[dict[str, str]]:
        """``LANG`` for imbot.command.register / update: one entry per title language."""
        entries = []
        for language, title in self.titles.items():
            entry = {"LANGUAGE_ID": language, "TITLE": title}
            if language in self.params_texts:
                entry["PARAMS"] = self.params_texts[language]
            entries.append(entry)
        return entries


@dataclass(frozen=True)
class BotSpec:
    """One bot, as ``imbot.register`` takes it, with its commands.

    ``code`` identifies the bot on every portal (Bitrix24 answers the existing bot's id when a
    code is registered twice).  ``name`` (or ``last_name``), ``color``, ``work_position`` and
    ``properties`` (further PROPERTIES: EMAIL, PERSONAL_WWW, PERSONAL_GENDER M/F,
    PERSONAL_BIRTHDAY YYYY-MM-DD, PERSONAL_PHOTO base64) are how people see it.  ``type`` is
    one of :data:`BOT_TYPES`; ``openline`` lets a chat bot serve open lines too (always on
    for type O).  ``message_edits``: also receive ONIMBOTMESSAGEUPDATE / ONIMBOTMESSAGEDELETE,
    so the stored history follows edits and deletions.  TYPE and OPENLINE cannot change once
    a bot is registered (only by unregistering it, which deletes its private chats).

    ``api`` is the chat-bot API the bot is registered with: ``"v1"`` (the default, so bots
    declared before Chatbots 2.0 keep working) or ``"v2"``.  A v2 bot's ``event_mode`` is
    ``"fetch"`` (the default: the worker pulls its events, no public address needed) or
    ``"webhook"`` (Bitrix24 POSTs them to IMBOT_PUBLIC_URL); a v1 bot has none.  Bitrix24 never
    turns a v1 bot into a v2 one: a v2 registration is a new bot (docs/chatbots-v2.md).
    """

    code: str
    name: str = ""
    last_name: str = ""
    type: str = "B"
    openline: bool = False
    color: str = ""
    work_position: str = ""
    properties: Mapping[str, str] = field(default_factory=dict)
    message_edits: bool = True
    commands: Sequence[CommandSpec | Mapping[str, Any]] = ()
    api: str = "v1"
    event_mode: str = ""

    def __post_init__(self) -> None:
        code = self.code.strip() if isinstance(self.code, str) else ""
        what = f"bot {code or self.code!r}"
        if not _CODE.match(code) or len(code) > 255:
            raise DeclarationError(
                f"{what}: a code is letters, digits, '_', '.' and '-' (it identifies the bot "
                "on every portal)"
            )
        for name in ("name", "last_name", "work_position", "color", "type"):
            if not isinstance(getattr(self, name), str):
                raise DeclarationError(f"{what} {name} must be a string")
        if not (self.name.strip() or self.last_name.strip()):
            raise DeclarationError(f"{what} needs a name (or a last_name): people see it")
        bot_type = self.type.strip().upper()
        if bot_type not in BOT_TYPES:
            raise DeclarationError(
                f"{what}: type {self.type!r} is not one of "
                + ", ".join(f"{k} ({v})" for k, v in BOT_TYPES.items())
            )
        color = self.color.strip().upper()
        if color and color not in COLORS:
            raise DeclarationError(
                f"{what}: color {self.color!r} is not one of {', '.join(sorted(COLORS))}"
            )
        _flag(self.openline, f"{what} openline")
        _flag(self.message_edits, f"{what} message_edits")
        properties = self._checked_properties(what)
        commands = self._checked_commands(what)
        api, event_mode = self._checked_api(what, bot_type)
        object.__setattr__(self, "api", api)
        object.__setattr__(self, "event_mode", event_mode)
        object.__setattr__(self, "code", code)
        object.__setattr__(self, "type", bot_type)
        object.__setattr__(self, "color", color)
        object.__setattr__(self, "openline", self.openline or bot_type == "O")
        object.__setattr__(self, "properties", MappingProxyType(properties))
        object.__setattr__(self, "commands", commands)

    def _checked_api(self, what: str, bot_type: str) -> tuple[str, str]:
        """``(api, event_mode)``, checked: a v1 bot has none, a v2 one defaults to fetch."""
        if not isinstance(self.api, str) or self.api.strip().lower() not in APIS:
            raise DeclarationError(
                f"{what}: api {self.api!r} is not one of {', '.join(APIS)} "
                "(v1: imbot.* methods; v2: Chatbots 2.0, imbot.v2.*)"
            )
        api = self.api.strip().lower()
        if not isinstance(self.event_mode, str):
            raise DeclarationError(f"{what} event_mode must be a string")
        mode = self.event_mode.strip().lower()
        if api == "v1":
            if mode:
                raise DeclarationError(
                    f"{what}: event_mode is for Chatbots 2.0 bots; a v1 bot always receives its "
                    'events at IMBOT_PUBLIC_URL (declare api="v2" for fetch or webhook mode)'
                )
            return api, ""
        mode = mode or "fetch"
        if mode not in EVENT_MODES:
            raise DeclarationError(
                f"{what}: event_mode {self.event_mode!r} is not one of {', '.join(EVENT_MODES)}"
            )
        if bot_type not in V2_TYPES:
            raise DeclarationError(
                f"{what}: Chatbots 2.0 has no type {bot_type} ({BOT_TYPES[bot_type]}); use "
                + ", ".join(sorted(V2_TYPES))
            )
        return api, mode

    def _checked_properties(self, what: str) -> dict[str, str]:
        if not isinstance(self.properties, Mapping):
            raise DeclarationError(f"{what} properties must be a mapping")
        properties: dict[str, str] = {}
        for key, value in self.properties.items():
            upper = str(key).upper()
            if upper not in EXTRA_PROPERTIES:
                raise DeclarationError(
                    f"{what}: property {key!r} is not one of {', '.join(sorted(EXTRA_PROPERTIES))}"
                    " (NAME, LAST_NAME, COLOR and WORK_POSITION are fields of their own)"
                )
            if not isinstance(value, str):
                raise DeclarationError(f"{what}: property {upper} must be a string")
            properties[upper] = value
        birthday = properties.get("PERSONAL_BIRTHDAY", "")
        if birthday and not _BIRTHDAY.match(birthday):
            raise DeclarationError(f"{what}: PERSONAL_BIRTHDAY is YYYY-MM-DD, not {birthday!r}")
        gender = properties.get("PERSONAL_GENDER", "")
        if gender and gender not in ("M", "F"):
            raise DeclarationError(f"{what}: PERSONAL_GENDER is M or F, not {gender!r}")
        return properties

    def _checked_commands(self, what: str) -> tuple[CommandSpec, ...]:
        if isinstance(self.commands, str | Mapping) or not isinstance(self.commands, Sequence):
            raise DeclarationError(f"{what} commands must be a list")
        commands: list[CommandSpec] = []
        seen: set[str] = set()
        for entry in self.commands:
            try:
                command = entry if isinstance(entry, CommandSpec) else CommandSpec.from_dict(entry)
            except DeclarationError as exc:
                raise DeclarationError(f"{what}: {exc}") from None
            if command.command.casefold() in seen:
                raise DeclarationError(f"{what} declares /{command.command} twice")
            seen.add(command.command.casefold())
            commands.append(command)
        return tuple(commands)

    @classmethod
    def from_dict(cls, data: Any) -> BotSpec:
        """A bot from an ``IMBOT_BOTS`` entry."""
        return _from_mapping(cls, data, "a bot", "code", "a 'code'")

    @property
    def command_specs(self) -> tuple[CommandSpec, ...]:
        return tuple(c for c in self.commands if isinstance(c, CommandSpec))

    @property
    def display_name(self) -> str:
        return " ".join(part for part in (self.name.strip(), self.last_name.strip()) if part)

    @property
    def edits_bound_at_registration(self) -> bool:
        """Whether imbot.register honours EVENT_MESSAGE_UPDATE / DELETE for this bot.

        Bitrix24 silently ignores those two for plain chat bots; they are bound afterwards
        with imbot.update.
        """
        return self.type in ("S", "O") or self.openline

    def properties_payload(self) -> dict[str, str]:
        """``PROPERTIES`` for imbot.register / imbot.update."""
        payload = {
            "NAME": self.name.strip(),
            "LAST_NAME": self.last_name.strip(),
            "COLOR": self.color,
            "WORK_POSITION": self.work_position.strip(),
            **self.properties,
        }
        return {key: value for key, value in payload.items() if value}
