"""Validating a payload part with a DRF serializer, reusing idle serializer instances.

Shared by every API version's adapter: building a serializer deep-copies its declared fields,
which is most of what a parse costs, so instances are kept per thread and reused.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from typing import Any

from rest_framework import serializers

from imbot_app import events as ev
from imbot_app.errors import InvalidPayload

__all__ = ["Builder", "build_event", "validate"]

#: Builds a typed event from its envelope and its validated ``data``.
Builder = Callable[[ev.Envelope, dict[str, Any]], ev.BitrixEvent]


class _IdleSerializers(threading.local):
    """Per thread: the serializers not in use, by class."""

    def __init__(self) -> None:
        self.by_class: dict[type[serializers.Serializer], list[serializers.Serializer]] = {}


_idle = _IdleSerializers()


def validate(serializer_class: type[serializers.Serializer], data: Any) -> dict[str, Any]:
    """``serializer_class(data=data)``'s validated data; raises :class:`InvalidPayload`.

    Building a serializer deep-copies every declared field, nested ones included: most of
    what a parse costs, paid again for every event a replay rebuilds.  Validating keeps no
    state in a serializer but ``initial_data``, ``_validated_data`` and ``_errors``, so an
    instance is reused once those are cleared.  Idle instances are kept per thread (fields
    are not safe to share between threads) and taken out while in use (a validation that
    parsed another payload would get its own); one that found errors is dropped, as its
    ``errors`` live on in the exception.
    """
    idle = _idle.by_class.setdefault(serializer_class, [])
    serializer = idle.pop() if idle else serializer_class()
    serializer.initial_data = data
    if not serializer.is_valid():
        raise InvalidPayload(serializer.errors)
    values = dict(serializer.validated_data)
    for attribute in ("initial_data", "_validated_data", "_errors", "_data"):
        serializer.__dict__.pop(attribute, None)
    idle.append(serializer)
    return values


def build_event(
    envelope: ev.Envelope,
    builders: Mapping[str, tuple[type[serializers.Serializer], Builder]],
) -> ev.BitrixEvent:
    """Validate ``data`` with the serializer ``builders`` names for the event, then build it.

    An event no builder knows becomes a :class:`~imbot_app.events.GenericEvent` (kept, never
    refused).  Raises :class:`InvalidPayload` with DRF's field errors nested under ``data``.
    """
    spec = builders.get(envelope.name)
    if spec is None:
        return ev.GenericEvent(
            name=envelope.name,
            handler_id=envelope.handler_id,
            ts=envelope.ts,
            auth=envelope.auth,
            data=envelope.data,
        )
    serializer_class, build = spec
    try:
        values = validate(serializer_class, envelope.data)
    except InvalidPayload as exc:
        raise InvalidPayload({"data": exc.errors}) from None
    return build(envelope, values)
