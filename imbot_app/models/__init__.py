"""What imbot_app remembers: portals and their tokens, bots, chats, people, messages, events.

Every row belongs to a Portal, the Bitrix24 account identified by ``member_id``.  Bitrix24 ids
(bot, command, chat, user, message) are stored as they are on the portal and are unique only
within it, so every unique constraint starts with the portal.
"""

from imbot_app.models.chats import Chat, ChatType, ChatUser
from imbot_app.models.events import Event, HandlerRun
from imbot_app.models.fetch import BotFetchState
from imbot_app.models.messages import CommandInvocation, Message
from imbot_app.models.portals import Bot, Command, Credential, Portal
from imbot_app.models.workers import WorkerHeartbeat

__all__ = [
    "Bot",
    "BotFetchState",
    "Chat",
    "ChatType",
    "ChatUser",
    "Command",
    "CommandInvocation",
    "Credential",
    "Event",
    "HandlerRun",
    "Message",
    "Portal",
    "WorkerHeartbeat",
]
