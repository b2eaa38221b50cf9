"""The signals every stored event fans out through, one per kind of event.

Connect to them like any Django signal; the routing decorators (:mod:`imbot_app.dispatch.routing`)
are
a thin layer over them.  Receivers are called by :mod:`imbot_app.dispatch.runner` after the event's
transaction has committed, one at a time, each run recorded as a
:class:`~imbot_app.models.HandlerRun`; an exception in one receiver is recorded, sent through
:data:`handler_failed` and never stops the others.

Every receiver gets ``sender`` (the typed event class, e.g. :class:`imbot_app.events.MessageAdd`,
so ``connect(..., sender=MessageAdd)`` works) and one context object named below.  Context
objects (:mod:`imbot_app.dispatch.context`) hold model rows and plain values, never raw payload
dicts or
OAuth tokens, and can be rebuilt from the database alone, so a Celery worker or a replay gives
receivers exactly what the web process would have.  Calling ``context.stop()`` skips the
receivers after the current one.

    from django.dispatch import receiver
    from imbot_app import signals

    @receiver(signals.message_added)
    def log_message(sender, message, **kwargs):
        print(message.chat.dialog_id, message.text)
"""

from __future__ import annotations

from typing import Any

from django.dispatch import Signal

from imbot_app import events as ev

#: Every event of any type, known or not.  ``event``: the kind-specific context
#: (:class:`~imbot_app.dispatch.context.MessageContext`,
#: :class:`~imbot_app.dispatch.context.CommandContext`
#: for the event's first command, ..., :class:`~imbot_app.dispatch.context.GenericContext` for event
#: types imbot_app has no class for).  Sent before the kind-specific signal.
event_received = Signal()

#: ONIMBOTMESSAGEADD: someone wrote to the bot (or mentioned it in a group chat).
#: ``message``: :class:`~imbot_app.dispatch.context.MessageContext`.  Never sent for messages whose
#: author is a bot (``ChatUser.is_bot``), so two bots cannot talk each other into a loop.
message_added = Signal()

#: ONIMBOTMESSAGEUPDATE: a message the bot saw was edited.  ``message``: MessageContext
#: (``text`` is the new text).  Not sent for messages written by bots.
message_updated = Signal()

#: ONIMBOTMESSAGEDELETE: a message the bot saw was deleted.  ``message``: MessageContext
#: (``message.message.deleted_at`` is set).  Not sent for messages written by bots.
message_deleted = Signal()

#: ONIMCOMMANDADD: a user ran one of the bot's commands (typed, keyboard button or menu).
#: ``command``: :class:`~imbot_app.dispatch.context.CommandContext`.  Sent once per command the
#: event
#: carries (practically always one).
command_received = Signal()

#: ONIMBOTJOINCHAT: the bot was added to a chat, or a user opened a private dialog with it.
#: ``join``: :class:`~imbot_app.dispatch.context.JoinContext`.
bot_joined_chat = Signal()

#: ONIMBOTDELETE: the bot was unregistered from the portal.
#: ``deletion``: :class:`~imbot_app.dispatch.context.BotDeletedContext`.
bot_deleted = Signal()

#: ONIMBOTV2REACTIONCHANGE (Chatbots 2.0): someone set or removed a reaction on a message.
#: ``reaction``: :class:`~imbot_app.dispatch.context.ReactionContext`.
reaction_changed = Signal()

#: ONIMBOTV2CONTEXTGET (Chatbots 2.0): a user opened the bot from a ``BOT_CONTEXT`` link.
#: ``context``: :class:`~imbot_app.dispatch.context.ContextGetContext`.
context_requested = Signal()

#: ONAPPINSTALL: the application was installed on a portal.
#: ``app``: :class:`~imbot_app.dispatch.context.AppContext`.
app_installed = Signal()

#: ONAPPUPDATE: a new version of the application was installed.  ``app``: AppContext.
app_updated = Signal()

#: ONAPPUNINSTALL: the application was removed (``app.clean``: the user asked to delete its
#: data; the portal's tokens are already gone).  ``app``: AppContext.
app_uninstalled = Signal()

#: A handler raised.  ``handler``: its dotted path; ``exception``: what it raised;
#: ``context``: what it was given; ``run``: the failed
#: :class:`~imbot_app.models.HandlerRun` (``run.traceback`` holds the traceback).  Sent with
#: ``send_robust``: a failing receiver here is logged and changes nothing.  ``sender`` is the
#: handler function.
handler_failed = Signal()

#: Sent by the REST client (delivered with it) after it refreshed a token set.
#: ``portal``: :class:`~imbot_app.models.Portal`; ``user_id``: whose tokens;
#: ``expires_at``: the new access token's expiry.  Never the tokens themselves.
token_refreshed = Signal()

#: Sent by the REST client (delivered with it) when a refresh was refused, e.g. an expired
#: refresh token: the portal needs re-authorisation.  ``portal``, ``user_id``, ``error``: the
#: OAuth server's error code.
token_refresh_failed = Signal()


# Which signal, and under which keyword, each typed event is sent with.
KIND_SIGNALS: dict[type[ev.BitrixEvent], tuple[Signal, str]] = {
    ev.MessageAdd: (message_added, "message"),
    ev.MessageUpdate: (message_updated, "message"),
    ev.MessageDelete: (message_deleted, "message"),
    ev.CommandAdd: (command_received, "command"),
    ev.BotJoinChat: (bot_joined_chat, "join"),
    ev.BotDelete: (bot_deleted, "deletion"),
    ev.AppInstall: (app_installed, "app"),
    ev.AppUpdate: (app_updated, "app"),
    ev.AppUninstall: (app_uninstalled, "app"),
    ev.ReactionChange: (reaction_changed, "reaction"),
    ev.ContextGet: (context_requested, "context"),
}

#: The keyword :data:`event_received` sends its context under.
EVENT_KEYWORD = "event"


def kind_signal(event_class: type[Any]) -> tuple[Signal, str] | None:
    """The kind-specific signal and keyword for a typed event class (None for generic ones)."""
    return KIND_SIGNALS.get(event_class)
