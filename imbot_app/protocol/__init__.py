"""The protocol registry: the one door to the API-version adapters (layer 2).

Everything that knows an API version's field or method names lives in ``protocol/vN/``; the
rest of the app (store, dispatch, context objects, admin) works with the version-free types of
:mod:`imbot_app.events` and asks this module which adapter handles an event name or a bot.
Nothing outside ``protocol/`` imports ``protocol.vN`` directly (tests/test_architecture.py
checks it).  The registry owns the choice of adapter; it and the adapters may import layer 1
(``events``, ``errors``, ``wire``) and nothing above.  ``fields`` and ``validation`` are what
every version's adapter shares.

Chat-bot API v1 (``ONIMBOT*`` events, ``imbot.*`` methods) and Chatbots 2.0 (``ONIMBOTV2*``
events, ``imbot.v2.*`` methods) share the envelope (``event``, ``ts``, ``auth``, ``data``), so
one :func:`parse_envelope` serves both and :func:`parse_event` picks the adapter by name.  A
third version goes in ``protocol/v3/`` with the same two modules (``events``: payload -> typed
event; ``methods``: typed call -> REST method and params) and one branch in
:func:`adapter_for_event` and :func:`methods_for`.
"""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType
from typing import Any

from imbot_app import events as ev
from imbot_app.protocol.outcomes import Deleted, Edited, Outcome, Written
from imbot_app.protocol.v1 import events as v1_events
from imbot_app.protocol.v1 import methods as v1_methods
from imbot_app.protocol.v2 import advice as v2_advice
from imbot_app.protocol.v2 import events as v2_events
from imbot_app.protocol.v2 import methods as v2_methods
from imbot_app.protocol.v2 import registration as v2_registration
from imbot_app.protocol.v2 import replies as v2_replies
from imbot_app.protocol.v2 import schedule as fetch_schedule

__all__ = [
    "APIS",
    "EVENT_CLASSES",
    "KNOWN_EVENTS",
    "MAX_BOT_TOKEN",
    "Deleted",
    "Edited",
    "Outcome",
    "Written",
    "adapter_for_event",
    "api_of_event",
    "calls_as_bot",
    "dedup_for",
    "event_class_for",
    "explain",
    "fetch_schedule",
    "methods_for",
    "outcome_of",
    "parse_envelope",
    "parse_event",
    "registration_for",
    "replies_for",
    "v2_events",
    "v2_methods",
    "with_bot_token",
]

#: The typed class each known event name parses to, any version: the signals' ``sender``, so
#: a handler for MessageAdd hears ONIMBOTMESSAGEADD and ONIMBOTV2MESSAGEADD alike.
EVENT_CLASSES: dict[str, type[ev.BitrixEvent]] = {
    ev.MESSAGE_ADD: ev.MessageAdd,
    ev.MESSAGE_UPDATE: ev.MessageUpdate,
    ev.MESSAGE_DELETE: ev.MessageDelete,
    ev.COMMAND_ADD: ev.CommandAdd,
    ev.BOT_JOIN_CHAT: ev.BotJoinChat,
    ev.BOT_DELETE: ev.BotDelete,
    ev.APP_INSTALL: ev.AppInstall,
    ev.APP_UPDATE: ev.AppUpdate,
    ev.APP_UNINSTALL: ev.AppUninstall,
    **v2_events.EVENT_CLASSES,
}

#: Event names some adapter builds a typed event for; others become GenericEvent.
KNOWN_EVENTS: frozenset[str] = v1_events.KNOWN_EVENTS | v2_events.KNOWN_EVENTS


def event_class_for(name: str) -> type[ev.BitrixEvent]:
    """The typed event class an event name parses to (GenericEvent for names none knows)."""
    return EVENT_CLASSES.get(name, ev.GenericEvent)


def api_of_event(name: str) -> str:
    """``"v2"`` for Chatbots 2.0's ``ONIMBOTV2*`` events, ``"v1"`` for the rest."""
    return "v2" if v2_events.is_v2(name) else "v1"


def adapter_for_event(name: str) -> ModuleType:
    """The ``events`` module of the API version that sends events called ``name``."""
    return v2_events if api_of_event(name) == "v2" else v1_events


def methods_for(api: str = "v1") -> ModuleType:
    """The ``methods`` module of API version ``api`` (a bot's declared version)."""
    if api == "v1":
        return v1_methods
    if api == "v2":
        return v2_methods
    raise ValueError(f"unknown chat-bot API version {api!r}")


#: The chat-bot API versions a bot can be declared and registered with.
APIS = ("v1", "v2")
#: The longest botToken Chatbots 2.0 accepts.
MAX_BOT_TOKEN = v2_methods.MAX_BOT_TOKEN


def replies_for(api: str = "v1") -> ModuleType:
    """What the handler contexts' reply helpers call, for a bot of API ``api``.

    Both modules offer ``send_message(bot_id, dialog_id, text, extras)``, ``update_message``,
    ``delete_message``, ``send_typing`` and ``answer_command`` with the same arguments.
    """
    return v2_replies if api == "v2" else _known(api, v1_methods)


def registration_for(api: str = "v1") -> ModuleType:
    """The registration steps (``register_bot(spec, url, ...)`` ...) of API ``api``."""
    return v2_registration if api == "v2" else _known(api, v1_methods)


def _known(api: str, module: ModuleType) -> ModuleType:
    if api != "v1":
        raise ValueError(f"unknown chat-bot API version {api!r}")
    return module


def _api_of_method(method: str) -> str:
    return "v2" if method.startswith(v2_methods.PREFIX) else "v1"


def outcome_of(method: str, params: dict[str, Any], result: Any) -> Outcome | None:
    """What a reply call did to the chat (a message written, edited, deleted), any version."""
    module = v2_replies if _api_of_method(method) == "v2" else v1_methods
    found: Outcome | None = module.outcome(method, params, result)
    return found


def calls_as_bot(method: str) -> bool:
    """Whether ``method`` is made with the bot's own tokens (those its events brought).

    v1 replies are; Chatbots 2.0 calls are made with the application's tokens (the
    installer's): the bot belongs to the application, and a fetch-mode bot's events carry no
    tokens at all.
    """
    return _api_of_method(method) == "v1"


def with_bot_token(method: str, params: dict[str, Any], token: str) -> dict[str, Any]:
    """``params`` as sent for a bot with ``token`` (v2 calls on inbound-webhook portals)."""
    if not token or _api_of_method(method) != "v2":
        return params
    sent: dict[str, Any] = v2_replies.with_bot_token(method, params, token)
    return sent


def explain(error: str, description: str = "") -> str:
    """A sentence a person can act on for a Chatbots 2.0 error code."""
    text: str = v2_advice.explain(error, description)
    return text


def parse_envelope(payload: dict[str, Any]) -> ev.Envelope:
    """Validate the parts every event shares; raises :class:`~imbot_app.errors.InvalidPayload`.

    The envelope is the same in both versions, so v1's envelope serializer reads both.
    """
    parsed: ev.Envelope = v1_events.parse_envelope(payload)
    return parsed


def parse_event(envelope: ev.Envelope) -> ev.BitrixEvent:
    """The typed event for a validated envelope; raises ``InvalidPayload`` with field errors."""
    typed: ev.BitrixEvent = adapter_for_event(envelope.name).parse_event(envelope)
    return typed


def dedup_for(name: str) -> Callable[[ev.Envelope, ev.BitrixEvent | None, Any], str] | None:
    """The dedup rule of the version that sends ``name``, when it has its own (v2 does)."""
    rule: Callable[[ev.Envelope, ev.BitrixEvent | None, Any], str] | None = (
        v2_events.dedup_key if api_of_event(name) == "v2" else None
    )
    return rule
