"""The Bot rows registration writes, and the botToken a Chatbots 2.0 bot names itself with.

Split from :mod:`imbot_app.lifecycle.registration` (which makes the REST calls) so both API
versions' steps share one way of recording a bot: its id, its declared kind, its API version
and event mode, and (v2 on an inbound-webhook portal) its sealed ``bot_token``.
"""

from __future__ import annotations

import secrets
from typing import Any

from django.db import transaction
from django.utils import timezone

from imbot_app import errors
from imbot_app.lifecycle.specs import BotSpec
from imbot_app.models import Bot, Command, Portal
from imbot_app.protocol import MAX_BOT_TOKEN

__all__ = ["as_id", "bot_token_for", "forget_bot", "needs_bot_token", "new_bot_token", "store_bot"]


def needs_bot_token(portal: Portal, api: str) -> bool:
    """A v2 bot registered through an inbound webhook names itself with a botToken; an OAuth
    application's bots belong to the application, and v1 has no botToken."""
    return api == "v2" and portal.webhook


def new_bot_token() -> str:
    """A fresh botToken: 40 URL-safe random characters (Bitrix24's maximum)."""
    return secrets.token_urlsafe(MAX_BOT_TOKEN)[:MAX_BOT_TOKEN]


def bot_token_for(portal: Portal, code: str) -> str:
    """The botToken to register ``code`` with: the one it last had on this portal, if any.

    Bitrix24 keeps a bot's owner by its botToken, so a bot registered again (its row deleted
    here by an unregister or a lost database row) must show the same token, or its code is
    "already taken"; a code never registered gets a new token.
    """
    rows = Bot.objects.filter(portal=portal, code=code, api="v2").order_by("-created_at", "-id")
    for row in rows:
        if row.bot_token:
            return row.bot_token
    return new_bot_token()


def store_bot(portal: Portal, spec: BotSpec, bot_id: int, bot_token: str = "") -> Bot:
    """Record that ``spec`` is registered as ``bot_id`` (a new row, or the row come back)."""
    now = timezone.now()
    with transaction.atomic():
        # Bitrix24 drops a bot's commands with the bot: those of the code's other rows, and of
        # this id's row if it was deleted, are gone.
        others = Bot.objects.filter(portal=portal, code=spec.code).exclude(bot_id=bot_id)
        deleted = Bot.objects.filter(portal=portal, bot_id=bot_id, deleted_at__isnull=False)
        for bots in (others, deleted):
            Command.objects.filter(bot__in=bots, deleted_at__isnull=True).update(deleted_at=now)
        others.filter(deleted_at__isnull=True).update(deleted_at=now)
        row, _ = Bot.objects.update_or_create(
            portal=portal,
            bot_id=bot_id,
            defaults={
                "code": spec.code,
                "name": spec.display_name[:255],
                "type": spec.type,
                "openline": spec.openline,
                "api": spec.api,
                "event_mode": spec.event_mode,
                "bot_token": bot_token,
                "spec_hash": "",
                "registered_at": now,
                "deleted_at": None,
            },
        )
    return row


def forget_bot(row: Bot) -> None:
    """The bot and its commands are gone from the portal (rows kept, marked deleted)."""
    now = timezone.now()
    with transaction.atomic():
        Command.objects.filter(bot=row, deleted_at__isnull=True).update(deleted_at=now)
        Bot.objects.filter(pk=row.pk).update(deleted_at=now)


def as_id(result: Any, method: str) -> int:
    """The id Bitrix24 answered a registration with (refused if it is not one)."""
    if isinstance(result, bool) or not isinstance(result, int | str):
        raise errors.BitrixError("INVALID_RESULT", f"expected an id, got {result!r}", method=method)
    try:
        return int(result)
    except ValueError:
        raise errors.BitrixError(
            "INVALID_RESULT", f"expected an id, got {result!r}", method=method
        ) from None
