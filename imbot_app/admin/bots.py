"""Bots with their commands inline, and commands with a way to their invocations."""

from __future__ import annotations

from django.contrib import admin
from django.db.models import Prefetch, QuerySet
from django.http import HttpRequest

from imbot_app.admin.base import ReadOnlyInline, RecordAdmin, rows_link
from imbot_app.models import Bot, Command

__all__ = ["BotAdmin", "CommandAdmin"]


class CommandInline(ReadOnlyInline):
    """A bot's commands (a handful), linked to their own pages."""

    model = Command
    fields = ("command_id", "command", "title", "common", "registered_at", "deleted_at")


@admin.register(Bot)
class BotAdmin(RecordAdmin):
    list_display = ("__str__", "bot_id", "code", "name", "portal", "command_list", "deleted_at")
    list_select_related = ("portal",)
    list_filter = ("portal",)
    search_fields = ("code", "name", "=bot_id")
    inlines = (CommandInline,)
    fields = (
        "portal",
        "bot_id",
        "code",
        "name",
        "type",
        "openline",
        "api",  # v1 or v2 (Chatbots 2.0); its sealed bot_token is never shown
        "event_mode",
        "registered_at",
        "deleted_at",
        "created_at",
    )
    readonly_fields = fields

    def get_queryset(self, request: HttpRequest) -> QuerySet[Bot]:
        commands = Command.objects.order_by("command")
        return super().get_queryset(request).prefetch_related(Prefetch("commands", commands))

    @admin.display(description="commands")
    def command_list(self, obj: Bot) -> str:
        return " ".join(str(command) for command in obj.commands.all()) or "-"


@admin.register(Command)
class CommandAdmin(RecordAdmin):
    list_display = (
        "__str__",
        "command_id",
        "title",
        "bot",
        "portal",
        "registered_at",
        "deleted_at",
        "invocations",
    )
    list_select_related = ("bot", "portal")
    list_filter = ("portal",)
    search_fields = ("command", "title")
    fields = (
        "portal",
        "bot",
        "command_id",
        "command",
        "title",
        "common",
        "registered_at",
        "deleted_at",
        "created_at",
        "invocations",
    )
    readonly_fields = fields
    invocations = rows_link("invocations", "commandinvocation", "command__id__exact", "who ran it")
