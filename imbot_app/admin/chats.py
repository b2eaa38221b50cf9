"""Chats with their transcript and members, and the people seen on a portal."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from imbot_app.admin import transcript
from imbot_app.admin.base import RecordAdmin, rows_link
from imbot_app.admin.filters import ChatTypeFilter
from imbot_app.models import Chat, ChatType, ChatUser

__all__ = ["ChatAdmin", "ChatUserAdmin"]


def chat_type_label(value: str) -> str:
    labels = dict(ChatType.choices)
    return str(labels.get(value, value or "-"))


@admin.register(Chat)
class ChatAdmin(RecordAdmin):
    list_display = ("__str__", "dialog_id", "type_label", "entity", "portal", "bot", "created_at")
    list_select_related = ("portal", "bot")
    list_filter = (ChatTypeFilter, "portal")
    search_fields = ("title", "=dialog_id", "entity_id")
    fields = (
        "portal",
        "bot",
        "dialog_id",
        "chat_id",
        "type_label",
        "title",
        "entity",
        "user_count",
        "members",
        "created_at",
        "updated_at",
    )
    readonly_fields = fields

    def change_context(self, request: HttpRequest, object_id: str) -> dict[str, Any]:
        chat = self.get_object(request, object_id)
        if chat is None:
            return {}
        return {"transcript": transcript.build(chat, request, site_name=self.admin_site.name)}

    @admin.display(description="type", ordering="type")
    def type_label(self, obj: Chat) -> str:
        return chat_type_label(obj.type)

    @admin.display(description="entity")
    def entity(self, obj: Chat) -> str:
        return " ".join(part for part in (obj.entity_type, obj.entity_id) if part) or "-"

    @admin.display(description="members (people seen here)")
    def members(self, obj: Chat) -> SafeString:
        people = list(transcript.members(obj)[: transcript.MEMBERS_SHOWN + 1])
        shown = people[: transcript.MEMBERS_SHOWN]
        links = format_html_join(
            ", ",
            '<a href="{}">{}</a>',
            (
                (reverse(f"{self.admin_site.name}:imbot_app_chatuser_change", args=[p.pk]), p)
                for p in shown
            ),
        )
        more = " and more" if len(people) > len(shown) else ""
        return format_html("{}{}", links or "-", more)


@admin.register(ChatUser)
class ChatUserAdmin(RecordAdmin):
    list_display = ("__str__", "user_id", "portal", "work_position", "is_bot", "is_extranet")
    list_select_related = ("portal",)
    list_filter = ("is_bot", "is_extranet", "is_connector", "portal")
    search_fields = ("name", "last_name", "=user_id")
    fields = (
        "portal",
        "user_id",
        "name",
        "first_name",
        "last_name",
        "work_position",
        "gender",
        "is_bot",
        "is_extranet",
        "is_connector",
        "is_network",
        "updated_at",
        "messages",
    )
    readonly_fields = fields
    messages = rows_link("messages", "message", "author", "messages written")
