"""The sender that really talks to Bitrix24, and keeps what the bot said.

Reply helpers on the handler contexts describe each call as an
:class:`~imbot_app.outbound.calls.OutgoingCall`; :class:`RestSender` (the default ``IMBOT_SENDER``)
makes it with :class:`~imbot_app.outbound.rest.RestClient` as the bot, and stores every message
the bot
sends as a :class:`~imbot_app.models.Message` with direction "out" and the id Bitrix24 returned,
so a chat's history holds both sides.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.utils import timezone

from imbot_app.models import Bot, Chat, ChatUser, Message, Portal
from imbot_app.outbound.rest import RestClient
from imbot_app.protocol import (
    Deleted,
    Edited,
    Written,
    calls_as_bot,
    outcome_of,
    with_bot_token,
)

if TYPE_CHECKING:
    from imbot_app.outbound.calls import OutgoingCall


class RestSender:
    """Calls Bitrix24 as the bot and records outgoing messages.

    Which call wrote, edited or deleted a message, and where its id is in the result, is the
    call's protocol adapter's to say (``protocol.outcome_of``), so a v1 bot's
    ``imbot.message.add`` and a Chatbots 2.0 bot's ``Chat.Message.send`` are stored alike.  A
    v2 bot registered through an inbound webhook names itself with its sealed ``botToken``:
    added here, at the last moment, so it is in no ``OutgoingCall`` a log or a test sender sees.
    """

    def send(self, call: OutgoingCall) -> Any:
        params = with_bot_token(call.method, call.params, _bot_token(call))
        user_id = call.bot_id if calls_as_bot(call.method) else None
        result = RestClient(call.portal, user_id=user_id).call(call.method, params)
        done = outcome_of(call.method, call.params, result)
        if isinstance(done, Written):
            record_outgoing(call, done.message_id, text=done.text, dialog_id=done.dialog_id)
            # reply() returns the new message's id, whatever shape the version answers in (v2:
            # {"id": ..., "uuidMap": {}}), so a handler's update(message_id=...) serves both.
            return done.message_id
        elif isinstance(done, Edited):
            Message.objects.filter(
                portal=call.portal, message_id=done.message_id, direction=Message.Direction.OUT
            ).update(text=done.text, text_original=done.text, edited_at=timezone.now())
        elif isinstance(done, Deleted):
            Message.objects.filter(portal=call.portal, message_id=done.message_id).update(
                deleted_at=timezone.now()
            )
        return result


def _bot_token(call: OutgoingCall) -> str:
    """The bot's botToken on an inbound-webhook portal ("" elsewhere, and for v1 bots)."""
    if not call.portal.webhook or call.bot_id is None:
        return ""
    bot = Bot.objects.filter(portal=call.portal, bot_id=call.bot_id, api="v2").first()
    return bot.bot_token if bot is not None else ""


def record_outgoing(
    call: OutgoingCall, message_id: int, *, text: str | None = None, dialog_id: str | None = None
) -> Message:
    """Store a message the bot wrote (its author is the bot's own ChatUser)."""
    portal = call.portal
    bot = Bot.objects.filter(portal=portal, bot_id=call.bot_id).first() if call.bot_id else None
    if dialog_id is None:
        dialog_id = str(call.params.get("DIALOG_ID", ""))
    chat = call.chat or _chat_for(portal, dialog_id, bot)
    author = None
    if call.bot_id is not None:
        author, _ = ChatUser.objects.get_or_create(
            portal=portal,
            user_id=call.bot_id,
            defaults={"is_bot": True, "name": bot.code if bot else ""},
        )
    if text is None:
        text = str(call.params.get("MESSAGE", ""))
    message, _ = Message.objects.update_or_create(
        portal=portal,
        message_id=message_id,
        defaults={
            "chat": chat,
            "bot": bot,
            "author": author,
            "event": call.event,
            "direction": Message.Direction.OUT,
            "text": text,
            "text_original": text,
        },
    )
    return message


def _chat_for(portal: Portal, dialog_id: str, bot: Bot | None) -> Chat:
    private = not dialog_id.startswith("chat")
    owner = bot if private else None
    chat, _ = Chat.objects.get_or_create(
        portal=portal,
        dialog_id=dialog_id,
        bot=owner,
        defaults={"type": "P" if private else ""},
    )
    return chat
