"""Chatbots 2.0 events built the way Bitrix24 delivers them, for webhook and fetch mode.

The objects follow the reference's examples (``bot`` = B, ``user`` = U of
``docs: imbot.v2/events/events.md``).  Each builder returns a :class:`V2Event` (type + ``data``)
that renders as either delivery::

    events = V2EventFactory(member_id=portal.member_id, bot_id=456)
    event = events.message_add("Hello bot!")
    event.as_fetch(event_id=1001)     # an Event.get item {eventId, type, date, data}
    event.as_webhook()                # the JSON webhook body {event, data, ts, auth}
    event.as_form()                   # the same, form-encoded: every scalar a string
    events.enqueue(fake, event)       # into the fake's Event.get queue for the bot
"""

from __future__ import annotations

import itertools
import secrets
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from imbot_app.wire import encode_form

__all__ = ["V2Event", "V2EventFactory"]

_ids = itertools.count(5000)


@dataclass(frozen=True)
class V2Event:
    """One v2 event: its ``type`` and ``data``, renderable for either delivery."""

    type: str
    data: dict[str, Any]
    factory: V2EventFactory = field(repr=False)
    ts: int = field(default_factory=lambda: int(time.time()))

    def as_fetch(self, event_id: int | None = None) -> dict[str, Any]:
        """An ``Event.get`` item (typed JSON, ``data.bot`` the extended Bot, no auth)."""
        date = datetime.fromtimestamp(self.ts, tz=UTC).isoformat(timespec="seconds")
        return {
            "eventId": event_id if event_id is not None else next(_ids),
            "type": self.type,
            "date": date,
            "data": self.data,
        }

    def as_webhook(self) -> dict[str, Any]:
        """The webhook body: ``data.bot`` = ``{id, code, auth}``, top-level ``auth``, ``ts``."""
        f = self.factory
        data = dict(self.data)
        data["bot"] = {"id": f.bot_id, "code": f.bot_code, "auth": f.auth(user_id=f.bot_id)}
        return {"event": self.type, "data": data, "ts": self.ts, "auth": f.auth()}

    def as_form(self) -> str:
        """:meth:`as_webhook` as PHP's ``http_build_query`` writes it (``null``/``[]`` vanish)."""
        return encode_form(self.as_webhook())


@dataclass
class V2EventFactory:
    """Builds a portal's v2 events for one bot; ``next_message_id`` numbers messages."""

    member_id: str = field(default_factory=lambda: secrets.token_hex(16))
    application_token: str = field(default_factory=lambda: secrets.token_hex(16))
    domain: str = "example.bitrix24.com"
    bot_id: int = 456
    bot_code: str = "support_bot"
    user_id: int = 1
    user_name: str = "John Smith"
    language: str = "en"
    group_chat_id: int = 5
    private_chat_id: int = 7
    event_mode: str = "fetch"
    message_ids: Any = field(default_factory=lambda: itertools.count(789), repr=False)

    @classmethod
    def connected(cls, fake: Any, *, code: str = "support_bot", **kwargs: Any) -> V2EventFactory:
        """A portal installed on ``fake`` with a fetch-mode v2 bot both sides know.

        The Portal row points at the fake, the installer (user 1) has a Credential the fake
        accepts (OAuth: the application's token serves every v2 call), ``fake.v2`` has the bot
        (``self.bot_id`` is its id) and so has the database (a Bot row).
        """
        from imbot_app.models import Bot, Credential, Portal

        factory = cls(bot_code=code, **kwargs)
        factory.bot_id = fake.v2.add_bot(factory.member_id, code, event_mode=factory.event_mode)
        portal = Portal.objects.create(
            member_id=factory.member_id,
            domain=factory.domain,
            client_endpoint=fake.rest_url,
            server_endpoint=fake.rest_url,
            application_token=factory.application_token,
            installer_user_id=factory.user_id,
        )
        access, refresh = fake.issue_tokens(factory.member_id, factory.user_id)
        Credential.objects.create(
            portal=portal, user_id=factory.user_id, access_token=access, refresh_token=refresh
        )
        Bot.objects.create(portal=portal, bot_id=factory.bot_id, code=code)
        return factory

    # ---------------------------------------------------------------- objects

    def auth(self, *, user_id: int | None = None) -> dict[str, Any]:
        """An OAuth ``auth`` block (fresh random tokens: they are only ever redacted)."""
        return {
            "access_token": secrets.token_hex(26),
            "expires": int(time.time()) + 3600,
            "expires_in": 3600,
            "scope": "imbot",
            "domain": self.domain,
            "server_endpoint": "https://oauth.bitrix.info/rest/",
            "status": "L",
            "client_endpoint": f"https://{self.domain}/rest/",
            "member_id": self.member_id,
            "user_id": user_id if user_id is not None else self.user_id,
            "refresh_token": secrets.token_hex(26),
            "application_token": self.application_token,
        }

    def bot(self) -> dict[str, Any]:
        """The extended Bot object of a fetch-mode event (reference example B)."""
        return {
            "id": self.bot_id,
            "code": self.bot_code,
            "type": "bot",
            "isHidden": False,
            "isSupportOpenline": False,
            "isReactionsEnabled": True,
            "backgroundId": None,
            "language": self.language,
            "moduleId": "rest",
            "eventMode": self.event_mode,
            "countMessage": 150,
            "countCommand": 3,
            "countChat": 12,
            "countUser": 45,
        }

    def user(self, user_id: int | None = None, name: str | None = None) -> dict[str, Any]:
        """A User object (reference example U)."""
        full = name if name is not None else self.user_name
        first, _, last = full.partition(" ")
        return {
            "id": user_id if user_id is not None else self.user_id,
            "active": True,
            "name": full,
            "firstName": first,
            "lastName": last,
            "workPosition": "Developer",
            "color": "#df532d",
            "avatar": "",
            "gender": "M",
            "birthday": "",
            "extranet": False,
            "bot": False,
            "connector": False,
            "externalAuthId": "default",
            "status": "online",
            "idle": False,
            "lastActivityDate": "2025-01-15T10:29:00+02:00",
            "absent": False,
            "departments": [1],
            "phones": False,
            "type": "employee",
        }

    def chat(self, *, group: bool = False) -> dict[str, Any]:
        """A group chat (``chatN``) or the private dialog (dialogId = the user's id)."""
        if group:
            chat_id, dialog_id, kind, name = (
                self.group_chat_id,
                f"chat{self.group_chat_id}",
                "chat",
                "Support Chat",
            )
        else:
            chat_id, dialog_id, kind, name = self.private_chat_id, str(self.user_id), "private", ""
        return {
            "id": chat_id,
            "dialogId": dialog_id,
            "type": kind,
            "name": name,
            "entityType": "",
            "owner": self.user_id,
            "avatar": "",
            "color": "#ab7761",
        }

    def message(
        self, text: str, *, message_id: int | None = None, group: bool = False, author: int = 0
    ) -> dict[str, Any]:
        return {
            "id": message_id if message_id is not None else next(self.message_ids),
            "chatId": self.group_chat_id if group else self.private_chat_id,
            "authorId": author or self.user_id,
            "date": "2025-01-15T10:30:00+02:00",
            "text": text,
            "isSystem": False,
            "uuid": "",
            "forward": None,
            "params": {},
            "viewedByOthers": False,
        }

    def _event(self, type: str, **data: Any) -> V2Event:
        return V2Event(type, {"bot": self.bot(), **data}, self)

    def _in_chat(self, group: bool) -> dict[str, Any]:
        return {"chat": self.chat(group=group), "user": self.user(), "language": self.language}

    # ---------------------------------------------------------------- events

    def message_add(
        self, text: str = "Hello bot!", *, group: bool = False, message_id: int | None = None
    ) -> V2Event:
        message = self.message(text, message_id=message_id, group=group)
        return self._event("ONIMBOTV2MESSAGEADD", message=message, **self._in_chat(group))

    def message_update(self, message_id: int, text: str, *, group: bool = False) -> V2Event:
        message = self.message(text, message_id=message_id, group=group)
        return self._event("ONIMBOTV2MESSAGEUPDATE", message=message, **self._in_chat(group))

    def message_delete(self, message_id: int, *, group: bool = False) -> V2Event:
        return self._event("ONIMBOTV2MESSAGEDELETE", messageId=message_id, **self._in_chat(group))

    def join_chat(self, *, group: bool = True) -> V2Event:
        chat = self.chat(group=group)
        return self._event("ONIMBOTV2JOINCHAT", dialogId=chat["dialogId"], **self._in_chat(group))

    def bot_delete(self) -> V2Event:
        return self._event("ONIMBOTV2DELETE")

    def context_get(self, context: dict[str, Any] | None = None) -> V2Event:
        return self._event(
            "ONIMBOTV2CONTEXTGET",
            dialogId=str(self.user_id),
            context=context or {"entityId": 164, "entityType": "task", "source": "link"},
            **self._in_chat(False),
        )

    def command_add(
        self,
        command: str = "help",
        params: str = "",
        *,
        command_id: int = 78,
        context: str = "textarea",
        group: bool = False,
    ) -> V2Event:
        text = f"/{command} {params}".strip()
        return self._event(
            "ONIMBOTV2COMMANDADD",
            command={
                "id": command_id,
                "command": f"/{command}",
                "params": params,
                "context": context,
            },
            message=self.message(text, group=group),
            **self._in_chat(group),
        )

    def reaction_change(
        self, message_id: int, reaction: str = "like", *, action: str = "add", group: bool = True
    ) -> V2Event:
        message = self.message(
            "Hello! How can I help?", message_id=message_id, group=group, author=self.bot_id
        )
        return self._event(
            "ONIMBOTV2REACTIONCHANGE",
            reaction=reaction,
            action=action,
            message=message,
            **self._in_chat(group),
        )

    def every_event(self) -> list[V2Event]:
        """One event of every ``ONIMBOTV2*`` type the reference lists."""
        return [
            self.message_add(),
            self.message_update(789, "edited"),
            self.message_delete(789),
            self.join_chat(),
            self.bot_delete(),
            self.context_get(),
            self.command_add("help", "topic"),
            self.reaction_change(789),
        ]

    def enqueue(self, fake: Any, event: V2Event) -> int:
        """Queue ``event`` in ``fake``'s Event.get log for this bot; returns its eventId."""
        return int(fake.v2.enqueue(self.member_id, self.bot_id, event.type, event.data))
