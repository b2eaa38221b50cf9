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
from imbot_app.protocol import methods_for

if TYPE_CHECKING:
    from imbot_app.outbound.calls import OutgoingCall

#: How the calls that write, edit and delete messages are named (v1 until bots declare).
methods = methods_for("v1")


class RestSender:
    """Calls Bitrix24 as the bot and records outgoing messages."""

    def send(self, call: OutgoingCall) -> Any:
        result = RestClient(call.portal, user_id=call.bot_id).call(call.method, call.params)
        if call.method in methods.WRITES_MESSAGE and _is_id(result):
            record_outgoing(call, int(result))
        elif call.method == methods.UPDATES_MESSAGE and result:
            Message.objects.filter(
                portal=call.portal,
                message_id=int(call.params["MESSAGE_ID"]),
                direction=Message.Direction.OUT,
            ).update(
                text=str(call.params.get("MESSAGE", "")),
                text_original=str(call.params.get("MESSAGE", "")),
                edited_at=timezone.now(),
            )
        elif call.method == methods.DELETES_MESSAGE and result:
            Message.objects.filter(
                portal=call.portal, message_id=int(call.params["MESSAGE_ID"])
            ).update(deleted_at=timezone.now())
        return result


def _is_id(value: Any) -> bool:
    return isinstance(value, int) or (isinstance(value, str) and value.isdigit())


def record_outgoing(call: OutgoingCall, message_id: int) -> Message:
    """Store a message the bot wrote (its author is the bot's own ChatUser)."""
    portal = call.portal
    bot = Bot.objects.filter(portal=portal, bot_id=call.bot_id).first() if call.bot_id else None
    chat = call.chat or _chat_for(portal, str(call.params.get("DIALOG_ID", "")), bot)
    author = None
    if call.bot_id is not None:
        author, _ = ChatUser.objects.get_or_create(
            portal=portal,
            user_id=call.bot_id,
            defaults={"is_bot": True, "name": bot.code if bot else ""},
        )
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
