"""The protocol registry: the one door to the API-version adapters (layer 2).

Everything that knows an API version's field or method names lives in ``protocol/vN/``; the
rest of the app (store, dispatch, context objects, admin) works with the version-free types of
:mod:`imbot_app.events` and asks this module which adapter handles an event name or a bot.
Nothing outside ``protocol/`` imports ``protocol.vN`` directly (tests/test_architecture.py
checks it).  The registry owns the choice of adapter; it and the adapters may import layer 1
(``events``, ``errors``, ``wire``) and nothing above.

A third version goes in ``protocol/v3/`` with the same two modules (``events``: payload ->
typed event; ``methods``: typed call -> REST method and params) and one line in
:func:`adapter_for_event` / :func:`methods_for`.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

from imbot_app import events as ev
from imbot_app.protocol.v1 import events as v1_events
from imbot_app.protocol.v1 import methods as v1_methods

#: Event names some adapter builds a typed event for; others become GenericEvent.
KNOWN_EVENTS: frozenset[str] = v1_events.KNOWN_EVENTS


def adapter_for_event(name: str) -> ModuleType:
    """The ``events`` module of the API version that sends events called ``name``."""
    return v1_events


def methods_for(api: str = "v1") -> ModuleType:
    """The ``methods`` module of API version ``api`` (a bot's declared version)."""
    if api != "v1":
        raise ValueError(f"unknown chat-bot API version {api!r}")
    return v1_methods


def parse_envelope(payload: dict[str, Any]) -> ev.Envelope:
    """Validate the parts every event shares; raises :class:`~imbot_app.errors.InvalidPayload`."""
    name = str(payload.get("event", "")) if isinstance(payload, dict) else ""
    parsed: ev.Envelope = adapter_for_event(name.strip().upper()).parse_envelope(payload)
    return parsed


def parse_event(envelope: ev.Envelope) -> ev.BitrixEvent:
    """The typed event for a validated envelope; raises ``InvalidPayload`` with field errors."""
    typed: ev.BitrixEvent = adapter_for_event(envelope.name).parse_event(envelope)
    return typed
