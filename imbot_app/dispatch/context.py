"""What handlers receive: typed context objects, rebuilt from the database alone.

A context holds the stored rows an event touched (portal, bot, chat, person, message, the
Event itself) and the event's own values (text, command params ...), never a raw payload dict
or an OAuth token.  :func:`load` builds them from a stored :class:`~imbot_app.models.Event`:
the typed event is parsed again from the (redacted) ``Event.payload`` with the same
serializers the endpoint used, and the rows are looked up by their Bitrix24 ids.  That is
what lets a Celery worker, or a replay months later, hand handlers the same objects the web
process would have.

Reply helpers (``message.reply()``, ``command.answer()``, ``update()``, ``send_typing()``)
describe the Bitrix24 call as an :class:`OutgoingCall` and hand it to the configured sender
(``IMBOT_SENDER``): :class:`~imbot_app.outbound.sender.RestSender` by default, which calls
Bitrix24 as
the bot and stores what it said; :class:`PendingSender` only logs the calls.  The call is
spelled for the bot's API version (``protocol.replies_for``): a Chatbots 2.0 bot's
``reply()`` is ``imbot.v2.Chat.Message.send``, so one handler serves v1 and v2 bots alike.
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType
from typing import Any

from imbot_app.models import Bot, Chat, ChatUser, CommandInvocation, Event, Message, Portal
from imbot_app.outbound import blocks
from imbot_app.outbound.calls import OutgoingCall, PendingSender, Sender
from imbot_app.protocol import api_of_event, replies_for

logger = logging.getLogger("imbot_app.context")


# --------------------------------------------------------------------------- contexts


class DispatchState:
    """What the contexts of one event share while its handlers run: the stop flag."""

    __slots__ = ("stopped",)

    def __init__(self) -> None:
        self.stopped = False


@dataclass(frozen=True, slots=True)
class FileInfo:
    """A file attached to a message (``PARAMS[FILES]``: undocumented, so fields may be blank)."""

    id: str
    name: str = ""
    type: str = ""
    size: int | None = None
    image: bool = False
    url_download: str = ""
    url_show: str = ""
    url_preview: str = ""

    @classmethod
    def from_entry(cls, key: str, entry: Any) -> FileInfo:
        values: Mapping[str, Any] = entry if isinstance(entry, Mapping) else {}
        raw_size = values.get("size")
        try:
            size = int(raw_size) if raw_size not in (None, "") else None
        except (TypeError, ValueError):
            size = None
        image = values.get("image")
        return cls(
            id=str(values.get("id") or key),
            name=str(values.get("name") or ""),
            type=str(values.get("type") or ""),
            size=size,
            image=bool(image) and image not in ("N", "0", "false"),
            url_download=str(values.get("urlDownload") or ""),
            url_show=str(values.get("urlShow") or ""),
            url_preview=str(values.get("urlPreview") or ""),
        )


@dataclass(frozen=True, eq=False, kw_only=True)
class EventContext:
    """What every handler gets: the stored Event, its portal, and a way to stop the rest.

    ``event`` is the :class:`~imbot_app.models.Event` row (``event.payload`` is the body with
    tokens redacted, for the curious); ``event_name`` is Bitrix24's name, e.g.
    ``ONIMBOTMESSAGEADD``.
    """

    event: Event
    portal: Portal
    event_name: str
    ts: datetime | None
    state: DispatchState = field(default_factory=DispatchState, repr=False)
    sender: Sender = field(default_factory=PendingSender, repr=False)

    def stop(self) -> None:
        """Skip the handlers that would run after this one for this event."""
        self.state.stopped = True

    @property
    def stopped(self) -> bool:
        return self.state.stopped

    def _send(
        self, method: str, params: dict[str, Any], bot: Bot | None, chat: Chat | None = None
    ) -> Any:
        """The one way out: every reply helper ends here (an extension point, see module doc)."""
        call = OutgoingCall(
            method=method,
            params=params,
            portal=self.portal,
            bot_id=bot.bot_id if bot is not None else None,
            event=self.event,
            chat=chat if chat is not None and chat.pk is not None else None,
        )
        return self.sender.send(call)


def _extras(keyboard: Any, attach: Any, params: dict[str, Any]) -> dict[str, Any]:
    """KEYBOARD / ATTACH from builders or raw structures, size-checked, plus other params."""
    extras = dict(params)
    for name, value in (("KEYBOARD", keyboard), ("ATTACH", attach)):
        if value is not None:
            extras[name] = blocks.to_bitrix(name, value)
    if "MENU" in extras:
        extras["MENU"] = blocks.to_bitrix("MENU", extras["MENU"])
    return extras


class _ChatReplies:
    """Replies for contexts that happen in a chat: write, edit, delete, show "typing"."""

    bot: Bot | None
    chat: Chat

    @property
    def _bot_id(self) -> int | None:
        return self.bot.bot_id if self.bot is not None else None

    @property
    def _methods(self) -> Any:
        """The bot's API version's reply calls: its row says, or the event's name (a bot only
        ever receives events in the version it was registered with)."""
        assert isinstance(self, EventContext)
        v2 = (self.bot is not None and self.bot.api == "v2") or (
            api_of_event(self.event_name) == "v2"
        )
        return replies_for("v2" if v2 else "v1")

    def _out(self, call: tuple[str, dict[str, Any]]) -> Any:
        assert isinstance(self, EventContext)
        method, params = call
        return self._send(method, params, self.bot, self.chat)

    def reply(self, text: str, keyboard: Any = None, attach: Any = None, **params: Any) -> Any:
        """Write ``text`` to the chat as the bot (``imbot.message.add`` to its DIALOG_ID).

        ``keyboard`` and ``attach`` take :class:`~imbot_app.outbound.blocks.Keyboard` /
        :class:`~imbot_app.outbound.blocks.Attach` builders or raw structures (refused over 30 KB);
        ``params`` are further ``imbot.message.add`` parameters (``SYSTEM``, ``URL_PREVIEW``
        ...).  Returns the new message's id (the message is stored with direction "out").
        """
        extras = _extras(keyboard, attach, params)
        return self._out(
            self._methods.send_message(self._bot_id, self.chat.dialog_id, text, extras)
        )

    def _update_target(self) -> int | None:
        return None

    def update(
        self,
        text: str,
        *,
        message_id: int | None = None,
        keyboard: Any = None,
        attach: Any = None,
        **params: Any,
    ) -> Any:
        """Edit a message the bot wrote (``imbot.message.update``); an empty text deletes it.

        ``message_id`` is the id ``reply()`` returned; for a command clicked on a keyboard it
        defaults to the message carrying that keyboard, as Bitrix24's EchoBot pages.
        """
        target = message_id if message_id is not None else self._update_target()
        if target is None:
            raise ValueError("update() needs the message_id of a message the bot wrote")
        extras = _extras(keyboard, attach, params)
        return self._out(self._methods.update_message(self._bot_id, target, text, extras))

    def delete(self, message_id: int) -> Any:
        """Delete a message the bot wrote (``imbot.message.delete``)."""
        return self._out(self._methods.delete_message(self._bot_id, message_id))

    def send_file(self, name: str, content: bytes, text: str = "") -> Any:
        """Post a file to the chat (``File.upload``, Chatbots 2.0 bots only), with an optional
        ``text``; returns the id of the message carrying it (stored like a reply)."""
        build = self._v2_only("upload_file", "file helpers")
        encoded = base64.b64encode(content).decode("ascii")
        return self._out(build(self._bot_id, self.chat.dialog_id, name, encoded, text))

    def file_url(self, file_id: int) -> str | None:
        """A one-time download URL of a file in the chat (``File.download``; v2 bots only),
        e.g. of ``message.files[0].id``; ``None`` with a sender that does not call."""
        build = self._v2_only("download_file", "file helpers")
        url: str | None = self._methods.download_url(self._out(build(self._bot_id, file_id)))
        return url

    def _v2_only(self, name: str, what: str) -> Any:
        build = getattr(self._methods, name, None)
        if build is None:
            raise ValueError(f'{what} need a Chatbots 2.0 bot (api="v2"); v1 has none')
        return build

    def send_typing(self) -> Any:
        """Show "the bot is typing..." in the chat (``imbot.chat.sendTyping``)."""
        return self._out(self._methods.send_typing(self._bot_id, self.chat.dialog_id))


@dataclass(frozen=True, eq=False, kw_only=True)
class MessageContext(_ChatReplies, EventContext):
    """A message written to the bot, edited or deleted.

    ``text`` is ``MESSAGE`` (group chats: mentions stripped), ``text_original`` keeps the BB
    codes and mentions; ``mentions`` are the mentioned user ids; ``files`` the attachments.
    ``message`` is the stored :class:`~imbot_app.models.Message` row (its current state, which
    a later edit may have changed); ``author`` the :class:`~imbot_app.models.ChatUser`.
    """

    bot: Bot | None
    chat: Chat
    author: ChatUser | None
    message: Message | None
    message_id: int
    text: str
    text_original: str
    mentions: tuple[int, ...] = ()
    files: tuple[FileInfo, ...] = ()
    language: str = ""
    is_system: bool = False
    author_flagged_bot: bool = False

    @property
    def chat_type(self) -> str:
        return self.chat.type

    def react(self, reaction: str = "like") -> Any:
        """Put a reaction (``like`` ...) on this message: Chatbots 2.0 bots only."""
        return self._out(self._reaction("add_reaction", reaction))

    def unreact(self, reaction: str = "like") -> Any:
        """Take the bot's reaction off this message: Chatbots 2.0 bots only."""
        return self._out(self._reaction("delete_reaction", reaction))

    def _reaction(self, name: str, reaction: str) -> tuple[str, dict[str, Any]]:
        build = self._v2_only(name, "reactions")
        call: tuple[str, dict[str, Any]] = build(self._bot_id, self.message_id, reaction)
        return call

    @property
    def is_private(self) -> bool:
        return self.chat.is_private

    @property
    def is_from_bot(self) -> bool:
        """Written by a bot (the author's ``ChatUser.is_bot``): such messages reach no handler."""
        if self.author is not None:
            return self.author.is_bot
        return self.author_flagged_bot


@dataclass(frozen=True, eq=False, kw_only=True)
class CommandContext(_ChatReplies, EventContext):
    """A command a user ran: ``/name params`` typed (TEXTAREA), clicked (KEYBOARD) or in a MENU."""

    bot: Bot | None
    chat: Chat
    user: ChatUser | None
    name: str
    command_id: int
    params: str
    context: str
    message_id: int | None
    invocation: CommandInvocation | None = None

    @property
    def args(self) -> tuple[str, ...]:
        """``params`` split on whitespace."""
        return tuple(self.params.split())

    def answer(self, text: str, keyboard: Any = None, attach: Any = None, **params: Any) -> Any:
        """Answer the command (``imbot.command.answer`` with its COMMAND_ID and MESSAGE_ID).

        ``keyboard`` / ``attach`` as for ``reply()``; ``params`` are further
        ``imbot.command.answer`` parameters.  Returns the answer's message id.
        """
        extras = _extras(keyboard, attach, params)
        method, payload = self._methods.answer_command(
            self.command_id,
            self.message_id,
            text,
            extras,
            bot_id=self._bot_id,
            dialog_id=self.chat.dialog_id,
        )
        return self._send(method, payload, self.bot, self.chat)

    def _update_target(self) -> int | None:
        return self.message_id if self.context == "KEYBOARD" else None


@dataclass(frozen=True, eq=False, kw_only=True)
class JoinContext(_ChatReplies, EventContext):
    """The bot joined a chat, or ``user`` opened a private dialog with it."""

    bot: Bot | None
    chat: Chat
    user: ChatUser | None
    access_history: bool | None = None

    @property
    def is_private(self) -> bool:
        return self.chat.is_private


@dataclass(frozen=True, eq=False, kw_only=True)
class ReactionContext(_ChatReplies, EventContext):
    """Chatbots 2.0: ``user`` set (``added``) or removed a ``reaction`` on a message.

    ``message_id`` is the message reacted to (often one the bot wrote); ``message`` its stored
    row when there is one; ``reaction`` Bitrix24's code (``like`` ...).
    """

    bot: Bot | None
    chat: Chat
    user: ChatUser | None
    message: Message | None
    message_id: int
    reaction: str
    action: str

    @property
    def added(self) -> bool:
        return self.action == "add"


@dataclass(frozen=True, eq=False, kw_only=True)
class ContextGetContext(_ChatReplies, EventContext):
    """Chatbots 2.0: ``user`` opened the bot from a ``BOT_CONTEXT`` link.

    ``context`` is the link's object as sent (``{"entityType": "task", "entityId": 164}``),
    read-only.  Bitrix24 asks that nothing happen on its strength without the user's
    confirmation: answer, ask, but do not act.
    """

    bot: Bot | None
    chat: Chat
    user: ChatUser | None
    context: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))

    @property
    def entity_type(self) -> str:
        return str(self.context.get("entityType") or "")

    @property
    def entity_id(self) -> Any:
        return self.context.get("entityId")


@dataclass(frozen=True, eq=False, kw_only=True)
class BotDeletedContext(EventContext):
    """The bot ``bot_id`` was unregistered; ``bot`` is its row (``deleted_at`` set)."""

    bot: Bot | None
    bot_id: int
    bot_code: str


@dataclass(frozen=True, eq=False, kw_only=True)
class AppContext(EventContext):
    """ONAPPINSTALL, ONAPPUPDATE or ONAPPUNINSTALL (``clean``: delete the portal's data)."""

    version: str = ""
    previous_version: str = ""
    language: str = ""
    clean: bool = False


@dataclass(frozen=True, eq=False, kw_only=True)
class GenericContext(EventContext):
    """An event type imbot_app has no class for: its ``data`` as stored, tokens redacted."""

    data: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
