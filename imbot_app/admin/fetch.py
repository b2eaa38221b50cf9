"""Fetch-mode (Chatbots 2.0) bots: where each one's Event.get polling stands.

Read-only, like every record here: the offset is what the next Event.get sends (and so what
Bitrix24 deletes below), and must only ever move once events are stored.
"""

from __future__ import annotations

from django.contrib import admin
from django.utils.text import Truncator

from imbot_app.admin.base import RecordAdmin
from imbot_app.models import BotFetchState

__all__ = ["BotFetchStateAdmin"]


@admin.register(BotFetchState)
class BotFetchStateAdmin(RecordAdmin):
    list_display = (
        "bot",
        "portal",
        "offset",
        "last_poll_at",
        "lag",
        "events_stored",
        "failures",
        "error",
        "next_poll_at",
        "claimed_by",
    )
    list_select_related = ("bot__portal",)
    search_fields = ("bot__code", "=bot__bot_id")
    fields = (
        "bot",
        "offset",
        "last_poll_at",
        "last_event_at",
        "lag_seconds",
        "events_stored",
        "failures",
        "last_error",
        "next_poll_at",
        "claimed_by",
        "claim_until",
        "updated_at",
    )
    readonly_fields = fields

    @admin.display(description="portal")
    def portal(self, obj: BotFetchState) -> str:
        return str(obj.bot.portal)

    @admin.display(description="lag", ordering="lag_seconds")
    def lag(self, obj: BotFetchState) -> str:
        return "-" if obj.lag_seconds is None else f"{obj.lag_seconds:.1f} s"

    @admin.display(description="last error")
    def error(self, obj: BotFetchState) -> str:
        return Truncator(obj.last_error).chars(80) or "-"
