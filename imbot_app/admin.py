"""Admin registrations. Token values are never shown: only a masked hint."""

from __future__ import annotations

from django.contrib import admin

from .models import (
    Bot,
    Chat,
    ChatUser,
    Command,
    CommandInvocation,
    Credential,
    Event,
    HandlerRun,
    Message,
    Portal,
)


def mask(value: str) -> str:
    """``abcd…wxyz`` for long secrets, a fixed placeholder for short ones, "" for none."""
    if not value:
        return ""
    if len(value) < 16:
        return "•" * 8
    return f"{value[:4]}…{value[-4:]}"


@admin.register(Portal)
class PortalAdmin(admin.ModelAdmin):
    list_display = ["domain", "member_id", "status", "language", "installed_at"]
    list_filter = ["status"]
    search_fields = ["domain", "member_id"]
    exclude = ["application_token"]
    readonly_fields = ["application_token_hint", "created_at", "updated_at"]

    @admin.display(description="application token")
    def application_token_hint(self, obj: Portal) -> str:
        return mask(obj.application_token)


@admin.register(Credential)
class CredentialAdmin(admin.ModelAdmin):
    list_display = ["portal", "user_id", "access_token_hint", "expires_at", "updated_at"]
    list_select_related = ["portal"]
    fields = ("portal", "user_id", "access_token_hint", "refresh_token_hint", "expires_at", "scope")
    readonly_fields = fields

    @admin.display(description="access token")
    def access_token_hint(self, obj: Credential) -> str:
        return mask(obj.access_token)

    @admin.display(description="refresh token")
    def refresh_token_hint(self, obj: Credential) -> str:
        return mask(obj.refresh_token)

    def has_add_permission(self, request: object) -> bool:
        return False


@admin.register(Event)
class EventAdmin(admin.ModelAdmin):
    list_display = ["id", "name", "status", "portal", "received_at"]
    list_filter = ["name", "status", "received_at"]
    list_select_related = ["portal"]
    readonly_fields = [
        "portal",
        "name",
        "handler_id",
        "ts",
        "received_at",
        "remote_addr",
        "dedup_key",
        "payload",
        "error",
        "processed_at",
    ]


for model in (Bot, Command, Chat, ChatUser, Message, CommandInvocation, HandlerRun):
    admin.site.register(model)
