"""Messages (both directions) and command invocations: searchable, filtered cheaply."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.contrib import admin
from django.contrib.admin.views.main import ChangeList
from django.db.models.functions import Substr
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html
from django.utils.safestring import SafeString
from django.utils.text import Truncator

from imbot_app.admin.badges import badge
from imbot_app.admin.base import RecordAdmin
from imbot_app.admin.bbcode import render_bbcode
from imbot_app.admin.filters import AuthorFilter, ChatFilter, EventFilter, InvocationContextFilter
from imbot_app.admin.lean import deferring_changelist
from imbot_app.models import CommandInvocation, Message

__all__ = ["CommandInvocationAdmin", "MessageAdmin", "event_column", "event_link"]

PREVIEW_CHARS = 80


def event_link(site_name: str, event_id: int | None) -> SafeString | str:
    """A link to the event a row came with, from its id alone (no join)."""
    if not event_id:
        return "-"
    url = reverse(f"{site_name}:imbot_app_event_change", args=[event_id])
    return format_html('<a href="{}">event #{}</a>', url, event_id)


def event_column() -> Callable[[admin.ModelAdmin, Any], SafeString | str]:
    """The read-only "event" column of every admin whose rows have an ``event_id``.

    One definition for messages, invocations and handler runs, so the link reads the same.
    """

    @admin.display(description="event")
    def column(self: admin.ModelAdmin, obj: Any) -> SafeString | str:
        return event_link(self.admin_site.name, obj.event_id)

    return column


@admin.register(Message)
class MessageAdmin(RecordAdmin):
    list_display = (
        "message_id",
        "chat",
        "direction_badge",
        "author",
        "preview",
        "created_at",
        "event_link",
    )
    list_display_links = ("message_id", "preview")
    list_select_related = ("chat", "author")
    list_filter = (
        "direction",
        ("created_at", admin.DateFieldListFilter),
        "portal",
        ChatFilter,
        AuthorFilter,
        EventFilter,
    )
    search_fields = ("text",)
    ordering = ("-created_at",)
    fields = (
        "portal",
        "chat",
        "bot",
        "author",
        "message_id",
        "direction_badge",
        "rendered",
        "text_original",
        "created_at",
        "edited_at",
        "deleted_at",
        "event_link",
    )
    readonly_fields = fields

    @admin.display(description="direction", ordering="direction")
    def direction_badge(self, obj: Message) -> SafeString:
        return badge(obj.direction)

    def get_changelist(self, request: HttpRequest, **kwargs: Any) -> type[ChangeList]:
        # Texts may be 1 MB each: the list loads the preview's characters only.
        return deferring_changelist(
            "text", "text_original", text_head=Substr("text", 1, PREVIEW_CHARS + 1)
        )

    @admin.display(description="text")
    def preview(self, obj: Message) -> str:
        text = getattr(obj, "text_head", None)
        if text is None:
            text = obj.text
        return Truncator(text.replace("\n", " ")).chars(PREVIEW_CHARS) or "(empty)"

    @admin.display(description="text, as shown in the chat")
    def rendered(self, obj: Message) -> SafeString:
        return render_bbcode(obj.text_original or obj.text)

    # Not called "event": a model field of that name would win and load each row's Event.
    event_link = event_column()


@admin.register(CommandInvocation)
class CommandInvocationAdmin(RecordAdmin):
    list_display = ("__str__", "chat", "user", "context", "created_at", "event_link")
    list_select_related = ("command", "chat", "user")
    list_filter = (
        InvocationContextFilter,
        ("created_at", admin.DateFieldListFilter),
        "command",
        EventFilter,
    )
    search_fields = ("params",)
    fields = (
        "command",
        "params",
        "context",
        "chat",
        "user",
        "message_id",
        "created_at",
        "event_link",
    )
    readonly_fields = fields

    event_link = event_column()
