"""The state of a Chatbots 2.0 fetch-mode bot's polling: one row per bot.

Kept apart from :mod:`imbot_app.models` (whose classes it sits beside in the same app, imported
at its end) so the poller's bookkeeping has one home.  See :mod:`imbot_app.protocol.v2.fetch`.
"""

from __future__ import annotations

from django.db import models

from imbot_app.models.portals import Bot


class BotFetchState(models.Model):
    """Where a bot's ``imbot.v2.Event.get`` polling stands, and which process polls it now.

    ``offset`` is what the *next* Event.get sends: Bitrix24 deletes every event below it, so it
    is only written once the events before it are stored (committed).  ``0`` means "send no
    offset" (the first call).  ``claimed_by`` / ``claim_until`` are the one-poller-per-bot
    lease: a process polls a bot only while it holds an unexpired claim, and a claim whose
    holder died simply runs out.
    """

    bot = models.OneToOneField(Bot, on_delete=models.CASCADE, related_name="fetch_state")
    offset = models.BigIntegerField(default=0)
    last_poll_at = models.DateTimeField(null=True, blank=True)
    # When the last poll that fetched something stored it.
    last_event_at = models.DateTimeField(null=True, blank=True)
    # Seconds between the oldest event of the last page being created and its being stored:
    # how far behind the bot is.
    lag_seconds = models.FloatField(null=True, blank=True)
    # Why the last poll failed ("" once one succeeds); consecutive failures drive the backoff.
    last_error = models.TextField(blank=True)
    failures = models.PositiveIntegerField(default=0)
    next_poll_at = models.DateTimeField(null=True, blank=True)
    events_stored = models.PositiveBigIntegerField(default=0)
    claimed_by = models.CharField(max_length=255, blank=True)
    claim_until = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["bot_id"]
        verbose_name = "bot fetch state"
        indexes = [models.Index(fields=["next_poll_at"], name="imbot_fetch_due")]

    def __str__(self) -> str:
        return f"fetch state of bot {self.bot_id} (offset {self.offset})"
