"""The Chatbots 2.0 half of :class:`~imbot_app.testing.FakeBitrix24`: ``imbot.v2.*``.

Reached as ``fake.v2``.  It answers the v2 methods a bot uses (``Bot.register`` / ``update`` /
``unregister``, ``Command.*``, ``Chat.Message.*``, reactions, ``Chat.InputAction.notify``) and
keeps each fetch-mode bot's event queue exactly as the reference describes ``Event.get``:

- ``offset > 0`` first **deletes** every queued event with an id below it, then the events with
  ids ``>= offset`` come back in ascending order, at most ``limit`` (1-1000, default 100);
- ``nextOffset`` = ``max(offset, last id + 1)``, and ``0`` when nothing came back;
- ``hasMore`` means "returned ``limit`` events" (so a full last page says ``true`` once more);
- ids come from one log shared by every bot (not contiguous per bot);
- an event older than 24 hours is gone, acknowledged or not (``clock`` is injectable:
  ``fake.v2.advance(25 * 3600)``);
- a webhook-mode bot's events are POSTed, never queued: its ``Event.get`` is empty.

Authorisation as documented: an OAuth caller owns the bots its application registered; an
inbound-webhook caller must name the bot's ``botToken`` (top level; ``fields.botToken`` for
``Bot.register``).  Errors are v2's payloads (``BOT_NOT_FOUND``, ``BOT_OWNERSHIP_ERROR``,
``BOT_CODE_ALREADY_TAKEN`` ...).  Tests put events in a queue with :meth:`FakeV2.enqueue`.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from imbot_app.testing.fake_state import FakePortal
from imbot_app.testing.fake_v2_chat import Answer, ChatMethods, _error, _int


class FakeBitrix24(Protocol):
    """What the v2 part reads of the :class:`~imbot_app.testing.FakeBitrix24` it belongs to."""

    client_id: str
    _lock: threading.RLock
    _portals: dict[str, FakePortal]
    v2: FakeV2

    def next_id(self) -> int: ...


__all__ = ["FakeV2", "QueuedEvent"]

Handler = Callable[[Any, Any, dict[str, Any]], Answer]

RETENTION_SECONDS = 24 * 3600
MAX_LIMIT = 1000
DEFAULT_LIMIT = 100
BOT_TYPES = ("bot", "supervisor", "personal", "openline")
EVENT_MODES = ("fetch", "webhook")


@dataclass
class QueuedEvent:
    """One row of the fake's event log."""

    event_id: int
    type: str
    data: dict[str, Any]
    created: float
    date: str

    def as_item(self) -> dict[str, Any]:
        return {"eventId": self.event_id, "type": self.type, "date": self.date, "data": self.data}


@dataclass
class _Bot:
    id: int
    member_id: str
    code: str
    client_id: str  # the application that registered it ("" through a webhook)
    bot_token: str  # the webhook caller's secret ("" for OAuth bots)
    type: str = "bot"
    event_mode: str = "fetch"
    webhook_url: str = ""
    properties: dict[str, Any] = field(default_factory=dict)
    flags: dict[str, Any] = field(default_factory=dict)
    queue: list[QueuedEvent] = field(default_factory=list)

    def as_result(self) -> dict[str, Any]:
        return {
            "bot": {
                "id": self.id,
                "code": self.code,
                "type": self.type,
                "isHidden": bool(self.flags.get("isHidden", False)),
                "isSupportOpenline": bool(self.flags.get("isSupportOpenline", False)),
                "isReactionsEnabled": bool(self.flags.get("isReactionsEnabled", True)),
                "backgroundId": self.flags.get("backgroundId"),
                "language": "en",
                "moduleId": "rest",
                "eventMode": self.event_mode,
            },
            "users": [{"id": self.id, "name": self.properties.get("name", ""), "bot": True}],
        }


class FakeV2(ChatMethods):
    """``imbot.v2.*`` state and handlers of one :class:`FakeBitrix24` (``fake.v2``)."""

    def __init__(self, fake: FakeBitrix24) -> None:
        self.fake = fake
        self.clock: Callable[[], float] = time.time
        self._skew = 0.0
        self._bots: dict[tuple[str, int], _Bot] = {}
        self._commands: dict[tuple[str, int], dict[str, Any]] = {}
        self._messages: dict[tuple[str, int], dict[str, Any]] = {}
        self._reactions: set[tuple[str, int, int, str]] = set()
        self.files: dict[tuple[str, int], dict[str, Any]] = {}  # uploads: id, name, content
        self._log_ids = itertools.count(1)

    def methods(self) -> dict[str, Handler]:
        """The method table :class:`FakeBitrix24` merges into its own."""
        return {
            "imbot.v2.Bot.register": self._bot_register,
            "imbot.v2.Bot.update": self._owned(self._bot_update),
            "imbot.v2.Bot.unregister": self._owned(self._bot_unregister),
            "imbot.v2.Command.register": self._owned(self._command_register),
            "imbot.v2.Command.update": self._owned(self._command_update),
            "imbot.v2.Command.unregister": self._owned(self._command_unregister),
            "imbot.v2.Command.answer": self._owned(self._command_answer),
            "imbot.v2.Chat.Message.send": self._owned(self._message_send),
            "imbot.v2.Chat.Message.update": self._owned(self._message_update),
            "imbot.v2.Chat.Message.delete": self._owned(self._message_delete),
            "imbot.v2.Chat.Message.Reaction.add": self._owned(self._reaction(add=True)),
            "imbot.v2.Chat.Message.Reaction.delete": self._owned(self._reaction(add=False)),
            "imbot.v2.Chat.InputAction.notify": self._owned(self._input_action),
            "imbot.v2.File.upload": self._owned(self._file_upload),
            "imbot.v2.File.download": self._owned(self._file_download),
            "imbot.v2.Event.get": self._owned(self._event_get),
        }

    # ------------------------------------------------------------------ for tests

    def now(self) -> float:
        return self.clock() + self._skew

    def advance(self, seconds: float) -> None:
        """Move the fake's clock forward (queued events expire after 24 hours)."""
        with self.fake._lock:
            self._skew += seconds

    def add_bot(
        self,
        member_id: str,
        code: str,
        *,
        bot_id: int | None = None,
        event_mode: str = "fetch",
        bot_token: str = "",
        client_id: str | None = None,
    ) -> int:
        """A v2 bot the portal already has, owned by the fake's application (or a webhook)."""
        with self.fake._lock:
            self.fake._portals.setdefault(member_id, _new_portal(self.fake, member_id))
            new_id = bot_id if bot_id is not None else self.fake.next_id()
            owner = (
                client_id if client_id is not None else ("" if bot_token else self.fake.client_id)
            )
            self._bots[(member_id, new_id)] = _Bot(
                new_id, member_id, code, owner, bot_token, event_mode=event_mode
            )
            return new_id

    def add_command(self, member_id: str, bot_id: int, command: str) -> int:
        """A command ``/command`` of the bot the portal already has; returns its id."""
        with self.fake._lock:
            command_id = self.fake.next_id()
            self._commands[(member_id, command_id)] = {
                "id": command_id,
                "botId": bot_id,
                "command": "/" + command.lstrip("/"),
                "common": False,
                "hidden": False,
                "extranetSupport": False,
                "title": {"en": command},
                "params": {},
            }
            return command_id

    def enqueue(
        self, member_id: str, bot_id: int, type: str, data: dict[str, Any], *, date: str = ""
    ) -> int:
        """Log an event for a fetch-mode bot; returns its ``eventId``."""
        with self.fake._lock:
            bot = self._bots[(member_id, bot_id)]
            if bot.event_mode != "fetch":
                raise ValueError(f"bot {bot_id} is in {bot.event_mode} mode: nothing is queued")
            now = self.now()
            stamp = date or datetime.fromtimestamp(now, tz=UTC).isoformat(timespec="seconds")
            event = QueuedEvent(next(self._log_ids), type, data, now, stamp)
            bot.queue.append(event)
            # Other bots' events take ids from the same log: never contiguous per bot.
            next(self._log_ids)
            return event.event_id

    def queued(self, member_id: str, bot_id: int) -> list[int]:
        """Ids still in the bot's queue (not yet deleted by an offset, not expired)."""
        with self.fake._lock:
            bot = self._bots[(member_id, bot_id)]
            self._expire(bot)
            return [e.event_id for e in bot.queue]

    def bot(self, member_id: str, bot_id: int) -> dict[str, Any] | None:
        with self.fake._lock:
            found = self._bots.get((member_id, bot_id))
            return None if found is None else {**found.as_result()["bot"], "token": found.bot_token}

    def messages(self, member_id: str) -> dict[int, dict[str, Any]]:
        with self.fake._lock:
            return {
                mid: dict(m) for (member, mid), m in self._messages.items() if member == member_id
            }

    def commands(self, member_id: str) -> dict[int, dict[str, Any]]:
        with self.fake._lock:
            return {
                cid: dict(c) for (member, cid), c in self._commands.items() if member == member_id
            }

    def reactions(self, member_id: str) -> set[tuple[int, int, str]]:
        with self.fake._lock:
            return {(b, m, r) for (member, b, m, r) in self._reactions if member == member_id}

    # ------------------------------------------------------------------ ownership

    def _owned(self, handler: Callable[[Any, _Bot, dict[str, Any]], Answer]) -> Handler:
        """The common checks every method but Bot.register makes, then ``handler``."""

        def checked(portal: Any, info: Any, p: dict[str, Any]) -> Answer:
            if getattr(info, "webhook", False) and not p.get("botToken"):
                return _error(400, "BOT_TOKEN_NOT_SPECIFIED", "botToken is required")
            bot_id = _int(p.get("botId"))
            if bot_id is None:
                return _error(400, "BOT_ID_REQUIRED", "botId is required")
            bot = self._bots.get((portal.member_id, bot_id))
            if bot is None:
                return _error(400, "BOT_NOT_FOUND", "Bot not found")
            if not self._owns(info, bot, str(p.get("botToken") or "")):
                return _error(403, "BOT_OWNERSHIP_ERROR", "The bot belongs to another owner")
            return handler(portal, bot, p)

        return checked

    @staticmethod
    def _owns(info: Any, bot: _Bot, token: str) -> bool:
        if getattr(info, "webhook", False):
            return bool(bot.bot_token) and token == bot.bot_token
        return bool(bot.client_id) and bot.client_id == info.client_id

    # ------------------------------------------------------------------ bots

    def _bot_register(self, portal: Any, info: Any, p: dict[str, Any]) -> Answer:
        fields = p.get("fields")
        if not isinstance(fields, dict):
            fields = {}
        code = str(fields.get("code") or "").strip()
        if not code:
            return _error(400, "BOT_CODE_REQUIRED", "fields.code is required")
        properties = fields.get("properties")
        if not isinstance(properties, dict) or not properties.get("name"):
            return _error(400, "BOT_PROPERTIES_REQUIRED", "fields.properties.name is required")
        webhook = bool(getattr(info, "webhook", False))
        token = str(fields.get("botToken") or "")
        if webhook and not token:
            return _error(400, "BOT_TOKEN_NOT_SPECIFIED", "fields.botToken is required")
        if len(token) > 40:
            return _error(400, "BOT_TOKEN_INVALID_LENGTH", "botToken is longer than 40 characters")
        bot_type = str(fields.get("type") or "bot")
        if bot_type not in BOT_TYPES:
            return _error(400, "BOT_INVALID_TYPE", f"Unknown bot type {bot_type}")
        mode = str(fields.get("eventMode") or "fetch")
        if mode not in EVENT_MODES:
            return _error(400, "BOT_INVALID_EVENT_MODE", f"Unknown event mode {mode}")
        if mode == "webhook" and not fields.get("webhookUrl"):
            return _error(400, "BOT_WEBHOOK_URL_REQUIRED", "fields.webhookUrl is required")
        for bot in self._bots.values():
            if bot.member_id == portal.member_id and bot.code == code:
                if self._owns(info, bot, token):
                    return 200, {"result": bot.as_result()}  # idempotent: no update
                return _error(400, "BOT_CODE_ALREADY_TAKEN", f"Bot code {code} is already taken")
        bot_id = self.fake.next_id()
        bot = _Bot(
            bot_id,
            portal.member_id,
            code,
            "" if webhook else info.client_id,
            token if webhook else "",
            type=bot_type,
            event_mode=mode,
            webhook_url=str(fields.get("webhookUrl") or ""),
            properties=dict(properties),
            flags={k: fields[k] for k in _BOT_FLAGS if k in fields},
        )
        self._bots[(portal.member_id, bot_id)] = bot
        return 200, {"result": bot.as_result()}

    def _bot_update(self, portal: Any, bot: _Bot, p: dict[str, Any]) -> Answer:
        fields = p.get("fields")
        if not isinstance(fields, dict) or not fields:
            return _error(400, "FIELDS_REQUIRED", "fields are required")
        mode = fields.get("eventMode")
        if mode is not None and mode not in EVENT_MODES:
            return _error(400, "BOT_INVALID_EVENT_MODE", f"Unknown event mode {mode}")
        if mode == "webhook" and not (fields.get("webhookUrl") or bot.webhook_url):
            return _error(400, "BOT_INVALID_CALLBACK", "webhookUrl is required in webhook mode")
        if isinstance(fields.get("properties"), dict):
            bot.properties.update(fields["properties"])
        if mode is not None:
            bot.event_mode = mode
        if fields.get("webhookUrl"):
            bot.webhook_url = str(fields["webhookUrl"])
        if fields.get("botToken") and bot.bot_token:
            if len(str(fields["botToken"])) > 40:
                return _error(400, "BOT_TOKEN_ROTATION_FAILED", "botToken is too long")
            bot.bot_token = str(fields["botToken"])  # the old one loses access at once
        bot.flags.update({k: fields[k] for k in _BOT_FLAGS if k in fields})
        return 200, {"result": bot.as_result()}

    def _bot_unregister(self, portal: Any, bot: _Bot, p: dict[str, Any]) -> Answer:
        del self._bots[(bot.member_id, bot.id)]
        for key in [k for k, c in self._commands.items() if c["botId"] == bot.id]:
            del self._commands[key]
        return 200, {"result": True}

    # ------------------------------------------------------------------ Event.get

    def _expire(self, bot: _Bot) -> None:
        cutoff = self.now() - RETENTION_SECONDS
        bot.queue[:] = [e for e in bot.queue if e.created > cutoff]

    def _event_get(self, portal: Any, bot: _Bot, p: dict[str, Any]) -> Answer:
        offset = _int(p.get("offset")) or 0
        if offset < 0:
            return _error(400, "INVALID_OFFSET", "offset must not be negative")
        limit = _int(p.get("limit")) or DEFAULT_LIMIT
        limit = max(1, min(MAX_LIMIT, limit))
        self._expire(bot)
        if offset > 0:
            bot.queue[:] = [e for e in bot.queue if e.event_id >= offset]
        page = [e for e in bot.queue if e.event_id >= offset][:limit]
        next_offset = max(offset, page[-1].event_id + 1) if page else 0
        return 200, {
            "result": {
                "events": [e.as_item() for e in page],
                "nextOffset": next_offset,
                "hasMore": len(page) >= limit,
            }
        }


_BOT_FLAGS = ("isHidden", "isReactionsEnabled", "isSupportOpenline", "backgroundId")


def _new_portal(fake: FakeBitrix24, member_id: str) -> Any:
    return FakePortal(member_id=member_id, domain="example.bitrix24.com")
