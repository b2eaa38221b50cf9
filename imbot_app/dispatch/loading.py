"""Loading a stored event: the typed event parsed again and its context objects rebuilt.

:func:`load` builds the contexts from a stored :class:`~imbot_app.models.Event` alone: the
typed event is parsed again from the (redacted) ``Event.payload`` through the protocol
registry, and the rows are looked up by their Bitrix24 ids.  That is what lets a worker, or a
replay months later, hand handlers the same objects the web process would have.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, MutableMapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from imbot_app import events as ev
from imbot_app.dispatch.context import (
    AppContext,
    BotDeletedContext,
    CommandContext,
    ContextGetContext,
    DispatchState,
    EventContext,
    FileInfo,
    GenericContext,
    JoinContext,
    MessageContext,
    ReactionContext,
)
from imbot_app.models import Bot, Chat, ChatUser, CommandInvocation, Event, Message, Portal
from imbot_app.outbound.calls import Sender, get_sender
from imbot_app.protocol import parse_envelope, parse_event

logger = logging.getLogger("imbot_app.context")


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
    elif isinstance(typed, ev.ReactionChange):
        items = (_reaction_context(base, typed),)
    elif isinstance(typed, ev.ContextGet):
        items = (_context_get_context(base, typed),)
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


def _find_parties(
    portal: Portal,
    info: ev.ChatInfo,
    bot_id: int | None,
    user_id: int | None,
    person: str = "user",
) -> dict[str, Any]:
    """A context's bot, chat and person (``user`` or ``author``) from the payload's ids.

    One lookup, in one order (bot, its chat, the person), for every event kind that carries them.
    """
    bot = _find_bot(portal, bot_id)
    return {"bot": bot, "chat": _find_chat(portal, info, bot), person: _find_user(portal, user_id)}


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
    parties: dict[str, Any]
    if message is not None:
        parties = {"bot": message.bot, "chat": message.chat, "author": message.author}
    else:
        bot_id = typed.bots[0].bot_id if typed.bots else None
        author_id = typed.user.id if typed.user else info.author_id
        parties = _find_parties(portal, typed.chat, bot_id, author_id, person="author")
    return MessageContext(
        **base,
        **parties,
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
        parties: dict[str, Any]
        if invocation is not None:
            bot = invocation.command.bot or _find_bot(portal, ref.bot_id)
            chat = invocation.chat or _find_chat(portal, typed.chat, bot)
            parties = {"bot": bot, "chat": chat, "user": invocation.user}
        else:
            user_id = typed.user.id if typed.user else None
            parties = _find_parties(portal, typed.chat, ref.bot_id, user_id)
        contexts.append(
            CommandContext(
                **base,
                **parties,
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
    user_id = typed.user.id if typed.user else None
    return JoinContext(
        **base,
        **_find_parties(portal, typed.chat, bot_id, user_id),
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


def _chat_parties(base: dict[str, Any], typed: ev.ReactionChange | ev.ContextGet) -> dict[str, Any]:
    bot_id = typed.bots[0].bot_id if typed.bots else None
    user_id = typed.user.id if typed.user else None
    return _find_parties(base["portal"], typed.chat, bot_id, user_id)


def _reaction_context(base: dict[str, Any], typed: ev.ReactionChange) -> ReactionContext:
    info = typed.message
    message = (
        Message.objects.filter(portal=base["portal"], message_id=info.message_id).first()
        if info.message_id
        else None
    )
    return ReactionContext(
        **base,
        **_chat_parties(base, typed),
        message=message,
        message_id=info.message_id,
        reaction=typed.reaction,
        action=typed.action,
    )


def _context_get_context(base: dict[str, Any], typed: ev.ContextGet) -> ContextGetContext:
    return ContextGetContext(
        **base,
        **_chat_parties(base, typed),
        context=MappingProxyType(dict(typed.context)),
    )
