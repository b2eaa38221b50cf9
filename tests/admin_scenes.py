"""Conversations stored the way real ones are, for the admin, replay and prune tests.

Events go through the endpoint (``deliver``), handlers run and answer through the fake
Bitrix24 with :class:`~imbot_app.outbound.sender.RestSender`, so the history holds both directions,
command invocations, handler runs (one handler fails on demand) and events of every status.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from imbot_app import on_command, on_message
from imbot_app.dispatch.context import CommandContext, MessageContext
from imbot_app.models import Chat, Event
from imbot_app.testing import EventFactory, FakeBitrix24

ROUTES_NAME = "tests.admin_scenes"


@dataclass
class Switch:
    """Makes the ``flaky`` handler raise while on (a bug, later fixed)."""

    broken: bool = False
    calls: list[int] = field(default_factory=list)


def connect_handlers(switch: Switch) -> None:
    """Routes of the scenes: a reply to every message, /echo, and a handler that may fail.

    Call inside ``isolated_routes``.
    """

    @on_message(priority=10)
    def answer(message: MessageContext) -> None:
        message.reply(f"you said: {message.text}")

    @on_message(regex=r"fail", priority=0)
    def flaky(message: MessageContext) -> None:
        switch.calls.append(message.event.pk)
        if switch.broken:
            raise RuntimeError("the weather service is down")

    @on_command("echo")
    def echo(command: CommandContext) -> None:
        command.answer(command.params or "(nothing)")


def send_replies_to(fake: FakeBitrix24, settings: Any) -> None:
    """Replies really go to ``fake`` (RestSender) and are stored as outgoing messages."""
    settings.IMBOT_SENDER = "imbot_app.outbound.sender.RestSender"
    settings.IMBOT_CLIENT_ID = fake.client_id
    settings.IMBOT_CLIENT_SECRET = fake.client_secret
    settings.IMBOT_RATE_LIMIT, settings.IMBOT_RATE_BURST = 1000.0, 1000


def connected_portal(fake: FakeBitrix24, **kwargs: Any) -> EventFactory:
    kwargs.setdefault("member_id", secrets.token_hex(16))
    return EventFactory.connected(fake, commands={"echo": 103, "help": 105}, **kwargs)


def talk(
    factory: EventFactory,
    deliver: Callable[..., Any],
    texts: list[str],
    *,
    chat_id: int | None = None,
) -> list[Event]:
    """Post each text as a message (``/echo x`` as a command) and return the stored events."""
    events = []
    for text in texts:
        if text.startswith("/echo"):
            payload = factory.command("echo", text.removeprefix("/echo").strip(), chat_id=chat_id)
        else:
            payload = factory.message(text, chat_id=chat_id)
        response = deliver(payload)
        events.append(Event.objects.get(pk=response.json()["event_id"]))
    return events


def chat_of(event: Event) -> Chat:
    message = event.messages.select_related("chat").get(direction="in")
    return message.chat
