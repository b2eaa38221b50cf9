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
(``IMBOT_SENDER``): :class:`~imbot_app.sender.RestSender` by default, which calls Bitrix24 as
the bot and stores what it said; :class:`PendingSender` only logs the calls.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, MutableMapping
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType
from typing import Any, Protocol, runtime_checkable

from django.utils.module_loading import import_string

from . import blocks
from . import events as ev
from .conf import imbot_settings
from .logsafe import safe
from .models import Bot, Chat, ChatUser, CommandInvocation, Event, Message, Portal
from .serializers import parse_envelope, parse_event

logger = logging.getLogger("imbot_app.context")
pending_logger = logging.getLogger("imbot_app.pending")

__all__ = [
    "AppContext",
    "BotDeletedContext",
    "CommandContext",
    "EventContext",
    "FileInfo",
    "GenericContext",
    "JoinContext",
    "LoadedEvent",
    "MessageContext",
    "OutgoingCall",
    "PendingSender",
    "Sender",
    "get_sender",
    "load",
    "message_key",
    "parse_stored",
    "prefetch_messages",
    "sender_factory",
]


# --------------------------------------------------------------------------- outgoing calls


@dataclass(frozen=True, slots=True)
class OutgoingCall:
    """One Bitrix24 REST call a handler asked for, before anything is sent.

    ``bot_id`` is the bot whose tokens the call needs; ``event`` is the event it answers.
    """

    method: str
    params: dict[str, Any]
    portal: Portal
    bot_id: int | None
    event: Event
    chat: Chat | None = None


@runtime_checkable
class Sender(Protocol):
    """Where reply helpers deliver :class:`OutgoingCall` objects (``IMBOT_SENDER``)."""

    def send(self, call: OutgoingCall) -> Any:
        """Deliver the call; return what Bitrix24 answered (e.g. the new message id)."""


class PendingSender:
    """A sender that only logs: for dry runs and for trying handlers without Bitrix24.

    Each call is logged on ``imbot_app.pending`` (method, portal, bot and parameters; there
    are no tokens in a call) and ``None`` is returned, as no message id exists.
    """

    def send(self, call: OutgoingCall) -> None:
        pending_logger.info(
            "pending (not sent): %s on %s as bot %s for event %s: %s",
            call.method,
            safe(str(call.portal)),
            call.bot_id,
            call.event.pk,
            safe(call.params, 2000),
        )
        return None


def get_sender() -> Sender:
    """The sender ``IMBOT_SENDER`` names: a dotted path or a class (instantiated), or an object."""
    return sender_factory()()


def sender_factory() -> Callable[[], Sender]:
    """What makes :func:`get_sender`'s sender: resolved once, called for each event.

    A batch of events imports the dotted path once; a configured class is still instantiated
    for every event, as :func:`get_sender` would, so a sender may keep per-event state.
    """
    configured: Any = imbot_settings.SENDER
    if isinstance(configured, str):
        configured = import_string(configured)
    if isinstance(configured, type):
        sender_class = configured
        return lambda: _checked_sender(sender_class())
    sender = _checked_sender(configured)
    return lambda: sender


def _checked_sender(configured: Any) -> Sender:
    if not isinstance(configured, Sender):
        raise TypeError(f"IMBOT_SENDER must have a send(call) method, got {configured!r}")
    return configured


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

    def _as_bot(self, payload: dict[str, Any]) -> dict[str, Any]:
        if self.bot is not None:
            return {"BOT_ID": self.bot.bot_id, **payload}
        return payload

    def _out(self, method: str, payload: dict[str, Any]) -> Any:
        assert isinstance(self, EventContext)
        return self._send(method, self._as_bot(payload), self.bot, self.chat)

    def reply(self, text: str, keyboard: Any = None, attach: Any = None, **params: Any) -> Any:
        """Write ``text`` to the chat as the bot (``imbot.message.add`` to its DIALOG_ID).

        ``keyboard`` and ``attach`` take :class:`~imbot_app.blocks.Keyboard` /
        :class:`~imbot_app.blocks.Attach` builders or raw structures (refused over 30 KB);
        ``params`` are further ``imbot.message.add`` parameters (``SYSTEM``, ``URL_PREVIEW``
        ...).  Returns the new message's id (the message is stored with direction "out").
        """
        payload = {"DIALOG_ID": self.chat.dialog_id, "MESSAGE": text}
        return self._out("imbot.message.add", {**payload, **_extras(keyboard, attach, params)})

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
        payload = {"MESSAGE_ID": target, "MESSAGE": text}
        return self._out("imbot.message.update", {**payload, **_extras(keyboard, attach, params)})

    def delete(self, message_id: int) -> Any:
        """Delete a message the bot wrote (``imbot.message.delete``)."""
        return self._out("imbot.message.delete", {"MESSAGE_ID": message_id})

    def send_typing(self) -> Any:
        """Show "the bot is typing..." in the chat (``imbot.chat.sendTyping``)."""
        return self._out("imbot.chat.sendTyping", {"DIALOG_ID": self.chat.dialog_id})


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
        payload: dict[str, Any] = {
            "COMMAND_ID": self.command_id,
            "MESSAGE_ID": self.message_id,
            "MESSAGE": text,
            **_extras(keyboard, attach, params),
        }
        return self._send("imbot.command.answer", payload, self.bot, self.chat)

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


# --------------------------------------------------------------------------- loading


class ContextUnavailable(Exception):
    """The stored event cannot be turned back into a typed event (its payload no longer parses)."""


@dataclass(frozen=True, slots=True)
class LoadedEvent:
    """Everything dispatch needs: the typed event's class, the contexts, their shared state.

    ``primary`` goes to :data:`~imbot_app.signals.event_received`; the kind signal is sent
    once per entry of ``items`` (one per command for ONIMCOMMANDADD, else ``(primary,)``).
    """

    event_class: type[ev.BitrixEvent]
    primary: EventContext
    items: tuple[EventContext, ...]
    state: DispatchState


# A stored message as the store keys it: (portal pk, Bitrix24 message id).
MessageKey = tuple[int, int]
MESSAGE_EVENTS = (ev.MessageAdd, ev.MessageUpdate, ev.MessageDelete)


def load(
    event: Event,
    *,
    sender: Sender | None = None,
    parsed: ev.BitrixEvent | None = None,
    messages: MutableMapping[MessageKey, Message] | None = None,
    make_sender: Callable[[], Sender] | None = None,
) -> LoadedEvent:
    """Rebuild the contexts of a stored event from the database alone.

    ``parsed`` is the typed event when the caller has it already (the endpoint, dispatching
    inline, or a batch that parsed it to prefetch its rows); otherwise it is parsed again from
    the stored, redacted payload.  ``messages`` are rows :func:`prefetch_messages` read for a
    batch: the one this event needs is taken out (so no two contexts share an instance), and
    looked up as usual when it is not there.  ``make_sender`` is a batch's
    :func:`sender_factory`, when no ``sender`` is given (default: :func:`get_sender`).
    """
    typed = parsed if parsed is not None else parse_stored(event)
    state = DispatchState()
    base: dict[str, Any] = {
        "event": event,
        "portal": event.portal,
        "event_name": event.name,
        "ts": event.ts or typed.ts,
        "state": state,
        "sender": sender if sender is not None else (make_sender or get_sender)(),
    }
    items: tuple[EventContext, ...]
    if isinstance(typed, ev.MessageAdd | ev.MessageUpdate | ev.MessageDelete):
        items = (_message_context(base, typed, messages),)
    elif isinstance(typed, ev.CommandAdd):
        items = _command_contexts(base, typed)
    elif isinstance(typed, ev.BotJoinChat):
        items = (_join_context(base, typed),)
    elif isinstance(typed, ev.BotDelete):
        bot = Bot.objects.filter(portal=event.portal, bot_id=typed.bot_id).first()
        items = (BotDeletedContext(**base, bot=bot, bot_id=typed.bot_id, bot_code=typed.bot_code),)
    elif isinstance(typed, ev.AppInstall | ev.AppUpdate | ev.AppUninstall):
        items = (_app_context(base, typed),)
    else:
        data = event.payload.get("data") if isinstance(event.payload, dict) else None
        items = (GenericContext(**base, data=MappingProxyType(dict(data or {}))),)
    return LoadedEvent(event_class=type(typed), primary=items[0], items=items, state=state)


def _find_bot(portal: Portal, bot_id: int | None) -> Bot | None:
    if bot_id is None:
        return None
    return Bot.objects.filter(portal=portal, bot_id=bot_id).first()


def _find_chat(portal: Portal, info: ev.ChatInfo, bot: Bot | None) -> Chat:
    """The chat as the store keyed it: private dialogs per bot, others per portal.

    Falls back to an unsaved Chat built from the payload when the row is gone (pruned).
    """
    owner = bot if info.is_private else None
    chat = Chat.objects.filter(portal=portal, dialog_id=info.dialog_id, bot=owner).first()
    if chat is None:
        chat = Chat(portal=portal, bot=owner, dialog_id=info.dialog_id, type=info.type[:2])
    return chat


def _find_user(portal: Portal, user_id: int | None) -> ChatUser | None:
    if not user_id:
        return None
    return ChatUser.objects.filter(portal=portal, user_id=user_id).first()


def parse_stored(event: Event) -> ev.BitrixEvent:
    """The typed event parsed again from the stored, redacted payload.

    Raises :class:`ContextUnavailable` when it no longer parses (the serializers changed, or
    the row was edited), with the field errors.
    """
    try:
        return parse_event(parse_envelope(event.payload))
    except Exception as exc:
        detail = getattr(exc, "errors", None) or exc
        raise ContextUnavailable(f"the stored payload no longer parses: {detail}") from exc


def message_key(event: Event, typed: ev.BitrixEvent) -> MessageKey | None:
    """The stored message a message event's context holds, or None for other events."""
    if isinstance(typed, MESSAGE_EVENTS):
        return (event.portal_id, typed.message.message_id)
    return None


def prefetch_messages(keys: Iterable[MessageKey]) -> dict[MessageKey, Message]:
    """The stored messages (with chat, author and bot) of many events, in one query.

    What :func:`load` would read for each of them one by one.  Messages not stored are left
    out: :func:`load` then looks up the bot, chat and author as it always does.
    """
    wanted = set(keys)
    if not wanted:
        return {}
    rows = Message.objects.select_related("chat", "author", "bot").filter(
        portal_id__in={portal for portal, _ in wanted},
        message_id__in={message for _, message in wanted},
    )
    found = {(row.portal_id, row.message_id): row for row in rows}
    return {key: row for key, row in found.items() if key in wanted}


def _message_context(
    base: dict[str, Any],
    typed: ev.MessageAdd | ev.MessageUpdate | ev.MessageDelete,
    messages: MutableMapping[MessageKey, Message] | None = None,
) -> MessageContext:
    portal: Portal = base["portal"]
    info = typed.message
    message = messages.pop((portal.pk, info.message_id), None) if messages else None
    if message is None:
        message = (
            Message.objects.select_related("chat", "author", "bot")
            .filter(portal=portal, message_id=info.message_id)
            .first()
        )
    if message is not None:
        bot, chat, author = message.bot, message.chat, message.author
    else:
        bot = _find_bot(portal, typed.bots[0].bot_id if typed.bots else None)
        chat = _find_chat(portal, typed.chat, bot)
        author = _find_user(portal, typed.user.id if typed.user else info.author_id)
    return MessageContext(
        **base,
        bot=bot,
        chat=chat,
        author=author,
        message=message,
        message_id=info.message_id,
        text=info.text,
        text_original=info.text_original,
        mentions=info.mentions,
        files=tuple(FileInfo.from_entry(str(k), v) for k, v in info.files.items()),
        language=info.language,
        is_system=info.is_system,
        author_flagged_bot=bool(typed.user and typed.user.is_bot),
    )


def _command_contexts(base: dict[str, Any], typed: ev.CommandAdd) -> tuple[CommandContext, ...]:
    portal: Portal = base["portal"]
    invocations = {
        inv.command.command_id: inv
        for inv in CommandInvocation.objects.filter(event=base["event"])
        .select_related("command", "command__bot", "chat", "user")
        .order_by("id")
    }
    contexts = []
    for ref in typed.commands:
        invocation = invocations.get(ref.command_id)
        if invocation is not None:
            bot = invocation.command.bot or _find_bot(portal, ref.bot_id)
            chat = invocation.chat or _find_chat(portal, typed.chat, bot)
            user = invocation.user
        else:
            bot = _find_bot(portal, ref.bot_id)
            chat = _find_chat(portal, typed.chat, bot)
            user = _find_user(portal, typed.user.id if typed.user else None)
        contexts.append(
            CommandContext(
                **base,
                bot=bot,
                chat=chat,
                user=user,
                name=ref.command,
                command_id=ref.command_id,
                params=ref.params,
                context=ref.context,
                message_id=ref.message_id,
                invocation=invocation,
            )
        )
    return tuple(contexts)


def _join_context(base: dict[str, Any], typed: ev.BotJoinChat) -> JoinContext:
    portal: Portal = base["portal"]
    bot_id = typed.bot_id
    if bot_id is None and typed.bots:
        bot_id = typed.bots[0].bot_id
    bot = _find_bot(portal, bot_id)
    return JoinContext(
        **base,
        bot=bot,
        chat=_find_chat(portal, typed.chat, bot),
        user=_find_user(portal, typed.user.id if typed.user else None),
        access_history=typed.access_history,
    )


def _app_context(
    base: dict[str, Any], typed: ev.AppInstall | ev.AppUpdate | ev.AppUninstall
) -> AppContext:
    if isinstance(typed, ev.AppInstall):
        return AppContext(**base, version=typed.version, language=typed.language)
    if isinstance(typed, ev.AppUpdate):
        return AppContext(
            **base,
            version=typed.version,
            previous_version=typed.previous_version,
            language=typed.language,
        )
    return AppContext(**base, language=typed.language, clean=typed.clean)
