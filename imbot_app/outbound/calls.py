"""Outgoing calls: what a handler asked Bitrix24 for, and the senders that deliver it.

Reply helpers on the context objects describe each REST call as an :class:`OutgoingCall`
(method and params from the bot's protocol adapter) and hand it to the configured sender
(``IMBOT_SENDER``): :class:`~imbot_app.outbound.sender.RestSender` by default, which calls
Bitrix24 as the bot and stores what it said; :class:`PendingSender` only logs the calls.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from django.utils.module_loading import import_string

from imbot_app.conf import imbot_settings
from imbot_app.logsafe import safe
from imbot_app.models import Chat, Event, Portal

pending_logger = logging.getLogger("imbot_app.pending")


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


#: Where the two built-in senders lived before the rooms (0.1), so old settings keep working.
MOVED_SENDERS = {
    "imbot_app.sender.RestSender": "imbot_app.outbound.sender.RestSender",
    "imbot_app.context.PendingSender": "imbot_app.outbound.calls.PendingSender",
}


def sender_factory() -> Callable[[], Sender]:
    """What makes :func:`get_sender`'s sender: resolved once, called for each event.

    A batch of events imports the dotted path once; a configured class is still instantiated
    for every event, as :func:`get_sender` would, so a sender may keep per-event state.
    """
    configured: Any = imbot_settings.SENDER
    if isinstance(configured, str):
        configured = import_string(MOVED_SENDERS.get(configured, configured))
    if isinstance(configured, type):
        sender_class = configured
        return lambda: _checked_sender(sender_class())
    sender = _checked_sender(configured)
    return lambda: sender


def _checked_sender(configured: Any) -> Sender:
    if not isinstance(configured, Sender):
        raise TypeError(f"IMBOT_SENDER must have a send(call) method, got {configured!r}")
    return configured
