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
from imbot_app.protocol.v1 import events as v1_events
from imbot_app.protocol.v1 import methods as v1_methods
from imbot_app.protocol.v2 import events as v2_events
from imbot_app.protocol.v2 import methods as v2_methods
from imbot_app.protocol.v2 import schedule as fetch_schedule

__all__ = [
    "EVENT_CLASSES",
    "KNOWN_EVENTS",
    "adapter_for_event",
    "api_of_event",
    "dedup_for",
    "event_class_for",
    "fetch_schedule",
    "methods_for",
    "parse_envelope",
    "parse_event",
    "v2_events",
    "v2_methods",
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
