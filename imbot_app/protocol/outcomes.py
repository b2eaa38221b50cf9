"""What a reply call did to the chat, in words every API version shares.

:class:`~imbot_app.outbound.sender.RestSender` keeps the bot's side of a chat's history: after
each call it asks the call's protocol adapter (``protocol.outcome_of``) what happened -- a
message written, edited or deleted -- because each version spells the call and its result
differently (v1 answers a bare id; Chatbots 2.0's ``Chat.Message.send`` answers
``{"id": ..., "uuidMap": {}}``).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Deleted", "Edited", "Outcome", "Written"]


@dataclass(frozen=True, slots=True)
class Written:
    """The bot wrote message ``message_id`` saying ``text`` to ``dialog_id``."""

    message_id: int
    text: str
    dialog_id: str = ""


@dataclass(frozen=True, slots=True)
class Edited:
    message_id: int
    text: str


@dataclass(frozen=True, slots=True)
class Deleted:
    message_id: int


Outcome = Written | Edited | Deleted
