"""Typed Bitrix24 events: what the serializers produce and what the store consumes.

Every value Bitrix24 sends is a string; by the time it reaches these classes it has been
converted once, at the serializer boundary ("Y" is ``True``, ids are ``int``).  Fields the
reference pages mark optional, or that only group chats carry, are ``None`` or empty here.

Token-bearing blocks (:class:`AuthBlock`) exist only for the store, which keeps tokens in
:class:`~imbot_app.models.Credential`; handlers receive context objects without them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar

MESSAGE_ADD = "ONIMBOTMESSAGEADD"
MESSAGE_UPDATE = "ONIMBOTMESSAGEUPDATE"
MESSAGE_DELETE = "ONIMBOTMESSAGEDELETE"
COMMAND_ADD = "ONIMCOMMANDADD"
BOT_JOIN_CHAT = "ONIMBOTJOINCHAT"
BOT_DELETE = "ONIMBOTDELETE"
APP_INSTALL = "ONAPPINSTALL"
APP_UPDATE = "ONAPPUPDATE"
APP_UNINSTALL = "ONAPPUNINSTALL"


@dataclass(frozen=True, slots=True)
class AuthBlock:
    """An ``auth`` block: who the tokens belong to and where the portal lives."""

    member_id: str = ""
    application_token: str = ""
    domain: str = ""
    client_endpoint: str = ""
    server_endpoint: str = ""
    access_token: str = field(default="", repr=False)
    refresh_token: str = field(default="", repr=False)
    expires: datetime | None = None
    scope: str = ""
    status: str = ""
    user_id: int | None = None
    client_id: str = ""

    @property
    def has_tokens(self) -> bool:
        return bool(self.access_token) and self.user_id is not None


@dataclass(frozen=True, slots=True)
class BotRef:
    """One ``data[BOT][<id>]`` entry: a bot of ours the event is addressed to."""

    bot_id: int
    code: str
    auth: AuthBlock | None


@dataclass(frozen=True, slots=True)
class UserInfo:
    """``data[USER]``: the person who wrote, ran a command or added the bot."""

    id: int
    name: str = ""
    first_name: str = ""
    last_name: str = ""
    work_position: str = ""
    gender: str = ""
    is_bot: bool = False
    is_connector: bool = False
    is_network: bool = False
    is_extranet: bool = False


@dataclass(frozen=True, slots=True)
class ChatInfo:
    """The chat fields of ``data[PARAMS]`` (the CHAT_* ones are absent in private chats)."""

    dialog_id: str
    type: str = ""
    chat_id: int | None = None
    title: str = ""
    entity_type: str = ""
    entity_id: str = ""
    user_count: int | None = None

    @property
    def is_private(self) -> bool:
        return self.type == "P" or (self.type == "" and not self.dialog_id.startswith("chat"))


@dataclass(frozen=True, slots=True)
class MessageInfo:
    """The message fields of ``data[PARAMS]``."""

    message_id: int
    author_id: int | None
    text: str
    text_original: str
    to_user_id: int | None = None
    language: str = ""
    mentions: tuple[int, ...] = ()
    files: dict[str, Any] = field(default_factory=dict)
    is_system: bool = False


@dataclass(frozen=True, slots=True)
class CommandRef:
    """One ``data[COMMAND][<id>]`` entry."""

    command_id: int
    command: str
    params: str
    context: str
    message_id: int | None
    bot_id: int | None
    bot_code: str
    auth: AuthBlock | None


@dataclass(frozen=True, slots=True)
class BitrixEvent:
    """The envelope every event shares."""

    name: str
    handler_id: int | None
    ts: datetime | None
    auth: AuthBlock

    KNOWN: ClassVar[bool] = True

    @property
    def bots(self) -> tuple[BotRef, ...]:
        return ()

    @property
    def token_blocks(self) -> tuple[AuthBlock, ...]:
        """Every token set the event carries: the top-level user's and each bot's."""
        blocks = [self.auth] if self.auth.has_tokens else []
        blocks.extend(b.auth for b in self.bots if b.auth is not None and b.auth.has_tokens)
        return tuple(blocks)


@dataclass(frozen=True, slots=True)
class _ChatEvent(BitrixEvent):
    bot_refs: tuple[BotRef, ...]
    chat: ChatInfo
    user: UserInfo | None

    @property
    def bots(self) -> tuple[BotRef, ...]:
        return self.bot_refs


@dataclass(frozen=True, slots=True)
class MessageAdd(_ChatEvent):
    """ONIMBOTMESSAGEADD: someone wrote to the bot, or mentioned it in a group chat."""

    message: MessageInfo


@dataclass(frozen=True, slots=True)
class MessageUpdate(_ChatEvent):
    """ONIMBOTMESSAGEUPDATE: a message the bot saw was edited."""

    message: MessageInfo


@dataclass(frozen=True, slots=True)
class MessageDelete(_ChatEvent):
    """ONIMBOTMESSAGEDELETE: a message the bot saw was deleted."""

    message: MessageInfo


@dataclass(frozen=True, slots=True)
class CommandAdd(_ChatEvent):
    """ONIMCOMMANDADD: a user ran one of the bot's commands."""

    commands: tuple[CommandRef, ...]
    message: MessageInfo | None

    @property
    def token_blocks(self) -> tuple[AuthBlock, ...]:
        blocks = [self.auth] if self.auth.has_tokens else []
        blocks.extend(c.auth for c in self.commands if c.auth is not None and c.auth.has_tokens)
        return tuple(blocks)


@dataclass(frozen=True, slots=True)
class BotJoinChat(_ChatEvent):
    """ONIMBOTJOINCHAT: the bot was added to a chat, or a user opened a dialog with it."""

    bot_id: int | None
    access_history: bool | None


@dataclass(frozen=True, slots=True)
class BotDelete(BitrixEvent):
    """ONIMBOTDELETE: the bot was unregistered from the portal."""

    bot_id: int
    bot_code: str


@dataclass(frozen=True, slots=True)
class AppInstall(BitrixEvent):
    """ONAPPINSTALL: the application was installed; ``auth`` carries the installer's tokens."""

    version: str
    active: bool | None
    installed: bool | None
    language: str


@dataclass(frozen=True, slots=True)
class AppUpdate(BitrixEvent):
    """ONAPPUPDATE: a new version was installed; may carry a new application token."""

    version: str
    previous_version: str
    language: str


@dataclass(frozen=True, slots=True)
class AppUninstall(BitrixEvent):
    """ONAPPUNINSTALL: the application was removed; ``clean`` asks us to delete its data."""

    language: str
    clean: bool


@dataclass(frozen=True, slots=True)
class GenericEvent(BitrixEvent):
    """An authenticated event of a type imbot_app has no class for; its data kept as sent."""

    data: dict[str, Any]

    KNOWN: ClassVar[bool] = False


# --------------------------------------------------------------------------- Chatbots 2.0 only
# Events v1 has no counterpart for.  Every other v2 event parses to the classes above.


@dataclass(frozen=True, slots=True)
class ReactionChange(_ChatEvent):
    """ONIMBOTV2REACTIONCHANGE: someone set or removed a reaction (``like`` ...) on a message.

    ``message`` is the message reacted to (often the bot's own); ``user`` who reacted.
    """

    reaction: str
    action: str  # "add" or "delete"
    message: MessageInfo

    @property
    def added(self) -> bool:
        return self.action == "add"


@dataclass(frozen=True, slots=True)
class ContextGet(_ChatEvent):
    """ONIMBOTV2CONTEXTGET: a user opened the bot from a ``BOT_CONTEXT`` link.

    ``context`` is the link's object as sent (e.g. ``{"entityType": "task", "entityId": 164}``);
    Bitrix24 asks that nothing happen on its strength without the user's confirmation.
    """

    context: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Envelope:
    """A validated envelope, any API version: enough to authenticate before ``data`` is read.

    ``payload`` is the decoded body as it came (tokens included): the store redacts it.
    """

    name: str
    handler_id: int | None
    ts: datetime | None
    auth: AuthBlock
    data: dict[str, Any]
    payload: dict[str, Any]
