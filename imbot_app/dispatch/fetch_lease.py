"""One poller per bot: the lease on a :class:`~imbot_app.models.BotFetchState` row.

A poller holds a bot while its ``claimed_by`` names it and ``claim_until`` lies ahead.  Taking
the lease is one conditional UPDATE, so the database decides between pollers racing for a bot
(threads, processes, machines alike); a dead poller's lease simply runs out.
"""

from __future__ import annotations

import os
import socket
import uuid
from datetime import datetime, timedelta

from django.db.models import Q, QuerySet
from django.utils import timezone

from imbot_app.conf import imbot_settings
from imbot_app.models import Bot, BotFetchState

__all__ = ["claim", "due_states", "poller_name", "release", "state_for"]


def poller_name() -> str:
    """``host:pid:nonce``: unique per poller, so a restarted process never inherits a lease."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def state_for(bot: Bot) -> BotFetchState:
    """The bot's fetch state, created (offset 0: "send none") on first use."""
    state, _ = BotFetchState.objects.select_related("bot__portal").get_or_create(bot=bot)
    return state


def claim(state: BotFetchState, owner: str, *, now: datetime | None = None) -> bool:
    """Take (or renew) the bot's lease for ``IMBOT_FETCH_LEASE`` seconds; one UPDATE.

    Succeeds when the lease is free, expired, or already ``owner``'s: the database decides,
    so two pollers racing for one bot never both win.
    """
    now = now or timezone.now()
    until = now + timedelta(seconds=float(imbot_settings.FETCH_LEASE))
    free = Q(claim_until__isnull=True) | Q(claim_until__lt=now) | Q(claimed_by=owner)
    taken = BotFetchState.objects.filter(free, pk=state.pk).update(
        claimed_by=owner, claim_until=until
    )
    return taken == 1


def release(state: BotFetchState, owner: str) -> None:
    BotFetchState.objects.filter(pk=state.pk, claimed_by=owner).update(
        claimed_by="", claim_until=None
    )


def due_states(now: datetime | None = None) -> QuerySet[BotFetchState]:
    """States whose next poll is due and whose lease is free: what a worker loop picks from."""
    now = now or timezone.now()
    return (
        BotFetchState.objects.filter(Q(next_poll_at__isnull=True) | Q(next_poll_at__lte=now))
        .filter(Q(claim_until__isnull=True) | Q(claim_until__lt=now))
        .select_related("bot__portal")
        .order_by("next_poll_at", "pk")
    )
