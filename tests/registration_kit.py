"""What the registration tests share: the declared echo bot, settings pointing at the fake."""

from __future__ import annotations

import copy
from typing import Any

from imbot_app.models import Portal
from imbot_app.testing import EventFactory, FakeBitrix24

PUBLIC_URL = "https://bot.example.com"
HANDLER_URL = f"{PUBLIC_URL}/imbot/events/"
APP_EVENTS = ["ONAPPINSTALL", "ONAPPUPDATE", "ONAPPUNINSTALL"]

ECHO: dict[str, Any] = {
    "code": "echobot",
    "name": "Echo bot",
    "color": "GREEN",
    "commands": [
        {
            "command": "echo",
            "title": {"en": "Repeat a text", "de": "Einen Text wiederholen"},
            "params": {"en": "text"},
            "common": True,
        },
        {"command": "help", "title": "What I can do"},
    ],
}


def echo(**changes: Any) -> dict[str, Any]:
    """A copy of :data:`ECHO` with top-level keys changed."""
    bot = copy.deepcopy(ECHO)
    bot.update(changes)
    return bot


def configure(settings: Any, fake: FakeBitrix24, *bots: dict[str, Any]) -> None:
    """Registration on, against the fake: its OAuth server, its client id, a public URL."""
    settings.IMBOT_CLIENT_ID = fake.client_id
    settings.IMBOT_CLIENT_SECRET = fake.client_secret
    settings.IMBOT_OAUTH_SERVERS = [fake.rest_url]
    settings.IMBOT_PUBLIC_URL = PUBLIC_URL
    settings.IMBOT_REGISTER_ON_INSTALL = True
    settings.IMBOT_BIND_EVENTS = list(APP_EVENTS)
    settings.IMBOT_RATE_LIMIT, settings.IMBOT_RATE_BURST = 1000.0, 1000
    settings.IMBOT_BOTS = list(bots) if bots else [echo()]


def portal_on(fake: FakeBitrix24, **kwargs: Any) -> tuple[EventFactory, Portal]:
    """An installed portal living on the fake, with installer tokens and no bots yet.

    (The factory's own bot, "legacy" #1291, exists only on the fake, as a bot of another app
    would: nothing declared is registered.)
    """
    kwargs.setdefault("bot_code", "legacy")
    events = EventFactory.connected(fake, commands={}, **kwargs)
    return events, Portal.objects.get(member_id=events.member_id)


def rest_calls(fake: FakeBitrix24) -> list[str]:
    """The REST methods called so far (app.info and OAuth refreshes left out)."""
    return [c.method for c in fake.calls if c.method not in ("app.info", "oauth/token")]
