"""Delivery details of Chatbots 2.0 events: fetch items as payloads, and dedup keys.

A fetch item (``{eventId, type, date, data}``) is turned into the webhook's shape so that both
deliveries are stored, and parsed again from the database, the same way; :func:`dedup_key` is
the key ``store_event(..., dedup=dedup_key)`` stores a v2 event under.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from imbot_app import events as ev
from imbot_app.errors import InvalidPayload
from imbot_app.events import Envelope
from imbot_app.protocol.v2.objects import FetchItemSerializer
from imbot_app.protocol.validation import validate

__all__ = ["dedup_key", "event_id", "fetch_payload"]


def _epoch(date: str | None) -> int | None:
    """An ISO 8601 ``date`` as a Unix time, or ``None`` if absent or unreadable."""
    if not date:
        return None
    try:
        return int(datetime.fromisoformat(date).timestamp())
    except (ValueError, OverflowError, OSError):
        return None


def fetch_payload(item: Any, *, member_id: str) -> dict[str, Any]:
    """An ``Event.get`` item as a webhook-shaped payload, ready for ``parse_envelope``.

    ``{eventId, type, date, data}`` -> ``{event, data, ts, eventId, date, auth: {member_id}}``.
    Fetch items carry no ``auth`` (the poller was authenticated when it called Event.get), so
    the portal's ``member_id`` is added for the store to find it; there are no tokens to
    redact.  Raises :class:`~imbot_app.protocol.v1.events.InvalidPayload` for an item without a
    usable ``eventId``/``type``/``data``: such an item cannot be acknowledged individually and
    is reported, not guessed at.
    """
    if not isinstance(item, Mapping):
        raise InvalidPayload({"non_field_errors": ["An Event.get item must be an object."]})
    values = validate(FetchItemSerializer, item)
    payload: dict[str, Any] = {
        "event": values["type"].strip().upper(),
        "data": values["data"],
        "eventId": values["eventId"],
        "auth": {"member_id": member_id},
    }
    date = values.get("date")
    if date:
        payload["date"] = date
        ts = _epoch(date)
        if ts is not None:
            payload["ts"] = ts
    return payload


def event_id(envelope: Envelope) -> int | None:
    """The ``eventId`` of a fetched event (``None`` for a webhook delivery)."""
    value = envelope.payload.get("eventId")
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def dedup_key(envelope: Envelope, event: ev.BitrixEvent | None, redacted: Any) -> str:
    """What makes two deliveries of a v2 event "the same" (for ``store_event``).

    Fetched: ``eventId`` (unique per portal: Bitrix24's event log ids), so a page fetched again
    after a crash stores nothing twice.  Webhook: v1's rule
    (:func:`imbot_app.inbound.store.dedup_key`:
    message id, an edit's text, command and message ids, else the payload digest) scoped to
    the bot, because v2 posts once per bot and two bots in one chat see the same message.
    """
    fetched = event_id(envelope)
    if fetched is not None:
        return f"{envelope.name}:event:{fetched}"
    scope = envelope.name
    if isinstance(event, ev.BotDelete):
        scope = f"{scope}:bot{event.bot_id}"
    elif event is not None and event.bots:
        scope = f"{scope}:bot{event.bots[0].bot_id}"
    if isinstance(event, ev.MessageAdd | ev.MessageDelete):
        return f"{scope}:{event.message.message_id}"
    if isinstance(event, ev.MessageUpdate):
        digest = hashlib.sha256(event.message.text.encode("utf-8")).hexdigest()[:16]
        return f"{scope}:{event.message.message_id}:{digest}"
    canonical = json.dumps(redacted, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    if isinstance(event, ev.CommandAdd) and not any(
        c.context in ("KEYBOARD", "MENU") for c in event.commands
    ):
        ids = ",".join(f"{c.command_id}:{c.message_id}" for c in event.commands)
        return f"{scope}:{ids}"[:255]
    # Keyboard clicks repeat on one message, reactions flip back and forth: the whole payload
    # (its ts included) tells them apart.
    return f"{scope}:{hashlib.sha256(canonical.encode('utf-8')).hexdigest()}"[:255]
