"""The event browser: filters, the redacted payload, handler runs, and Replay.

Events are the biggest table, so the list is built to stay fast at 100,000 rows and more:
no count of the whole table, filters that need no query to list their choices, one join
(the portal), and an index behind every filter (see ``Event.Meta.indexes``).  The change
page shows the handler runs a page at a time instead of as an inline.
"""

from __future__ import annotations

import json
from typing import Any

from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.admin.utils import unquote
from django.contrib.admin.views.main import ChangeList
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import (
    Http404,
    HttpRequest,
    HttpResponseBase,
    HttpResponseNotAllowed,
    HttpResponseRedirect,
)
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html
from django.utils.safestring import SafeString
from django.utils.text import Truncator

from imbot_app.admin import replaying
from imbot_app.admin.badges import badge
from imbot_app.admin.base import RecordAdmin
from imbot_app.admin.filters import EventNameFilter
from imbot_app.admin.lean import deferring_changelist
from imbot_app.admin.messages import event_column
from imbot_app.admin.sections import paginate
from imbot_app.models import Event, HandlerRun

__all__ = ["EventAdmin", "HandlerRunAdmin"]

RUNS_PER_PAGE = 25
RUNS_PARAM = "runs_page"
ERROR_PREVIEW_CHARS = 80
CONFIRMATION_LIST_SIZE = 50


@admin.register(Event)
class EventAdmin(RecordAdmin):
    list_display = (
        "id",
        "name",
        "status_badge",
        "portal",
        "received_at",
        "error_preview",
    )
    list_display_links = ("id", "name")
    list_select_related = ("portal",)
    list_filter = (
        EventNameFilter,
        "status",
        ("received_at", admin.DateFieldListFilter),
        "portal",
    )
    search_fields = ("=id", "=handler_id")
    actions = ("replay_selected",)

    def get_changelist(self, request: HttpRequest, **kwargs: Any) -> type[ChangeList]:
        # The list never shows the payload (up to IMBOT_MAX_BODY_BYTES each): never load it.
        return deferring_changelist("payload")

    fieldsets = (
        (None, {"fields": ("name", "status_badge", "portal", "error", "related")}),
        (
            "Delivery",
            {"fields": ("received_at", "ts", "remote_addr", "handler_id", "dedup_key")},
        ),
        (
            "Dispatch",
            {"fields": ("processed_at", "dispatch_attempts", "claimed_by", "claim_expires_at")},
        ),
        ("Payload (tokens redacted)", {"fields": ("pretty_payload",)}),
    )
    readonly_fields = (
        "name",
        "status_badge",
        "portal",
        "error",
        "related",
        "received_at",
        "ts",
        "remote_addr",
        "handler_id",
        "dedup_key",
        "processed_at",
        "dispatch_attempts",
        "claimed_by",
        "claim_expires_at",
        "pretty_payload",
    )

    # ---------------------------------------------------------------- columns and fields

    @admin.display(description="status", ordering="status")
    def status_badge(self, obj: Event) -> SafeString:
        return badge(obj.status)

    @admin.display(description="error")
    def error_preview(self, obj: Event) -> str:
        return Truncator(obj.error.replace("\n", " ")).chars(ERROR_PREVIEW_CHARS)

    @admin.display(description="payload")
    def pretty_payload(self, obj: Event) -> SafeString:
        text = json.dumps(obj.payload, indent=2, ensure_ascii=False, sort_keys=True)
        return format_html('<pre class="imbot-payload">{}</pre>', text)

    @admin.display(description="what it left")
    def related(self, obj: Event) -> SafeString:
        site = self.admin_site.name
        return format_html(
            '<a href="{}?event={}">its messages</a> · '
            '<a href="{}?event={}">its command invocations</a>',
            reverse(f"{site}:imbot_app_message_changelist"),
            obj.pk,
            reverse(f"{site}:imbot_app_commandinvocation_changelist"),
            obj.pk,
        )

    # ---------------------------------------------------------------- the change page

    def change_context(self, request: HttpRequest, object_id: str) -> dict[str, Any]:
        context: dict[str, Any] = {}
        event_id = _int_or_none(object_id)
        runs = (
            HandlerRun.objects.filter(event_id=event_id) if event_id else HandlerRun.objects.none()
        )
        context["handler_runs"] = paginate(
            runs.order_by("started_at", "id"), request, param=RUNS_PARAM, per_page=RUNS_PER_PAGE
        )
        context["can_replay"] = self.has_replay_permission(request)
        context["replay_url"] = reverse(
            f"{self.admin_site.name}:imbot_app_event_replay", args=[object_id]
        )
        return context

    def get_urls(self) -> list[URLPattern]:
        replay = path(
            "<path:object_id>/replay/",
            self.admin_site.admin_view(self.replay_view),
            name="imbot_app_event_replay",
        )
        return [replay, *super().get_urls()]

    # ---------------------------------------------------------------- replay

    def has_replay_permission(self, request: HttpRequest) -> bool:
        opts = self.opts
        return bool(request.user.has_perm(f"{opts.app_label}.replay_event"))

    def replay_view(self, request: HttpRequest, object_id: str) -> HttpResponseBase:
        """The event page's Replay button (POST): run its handlers again, forced."""
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        if not self.has_replay_permission(request):
            raise PermissionDenied
        event = self.get_object(request, unquote(object_id))
        if event is None:
            raise Http404(f"no event {object_id}")
        replaying.replay_and_report(request, [event.pk])
        change_url = reverse(f"{self.admin_site.name}:imbot_app_event_change", args=[event.pk])
        return HttpResponseRedirect(change_url)

    @admin.action(description="Replay selected events", permissions=["replay"])
    def replay_selected(
        self, request: HttpRequest, queryset: QuerySet[Event]
    ) -> TemplateResponse | None:
        """Ask first (a page listing the events), then replay them and report each one."""
        ids = list(queryset.order_by("pk").values_list("pk", flat=True)[: replaying.MAX_EVENTS + 1])
        too_many = len(ids) > replaying.MAX_EVENTS
        if request.POST.get("confirm") == "yes":
            if too_many:
                self.message_user(
                    request, replaying.too_many_message(queryset.count()), messages.ERROR
                )
                return None
            replaying.replay_and_report(request, ids)
            return None
        count = queryset.count() if too_many else len(ids)
        context = {
            **self.admin_site.each_context(request),
            "title": "Replay events?",
            "opts": self.opts,
            "events": queryset.select_related("portal").order_by("pk")[:CONFIRMATION_LIST_SIZE],
            "count": count,
            "more": max(count - CONFIRMATION_LIST_SIZE, 0),
            "ids": [] if too_many else ids,
            "too_many": replaying.too_many_message(count) if too_many else "",
            "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
        }
        return TemplateResponse(request, "admin/imbot_app/event/replay_confirmation.html", context)


def _int_or_none(value: str) -> int | None:
    text = unquote(value)
    return int(text) if text.isdigit() else None


@admin.register(HandlerRun)
class HandlerRunAdmin(RecordAdmin):
    list_display = (
        "handler",
        "event_link",
        "status_badge",
        "started_at",
        "duration",
        "worker",
        "error_preview",
    )
    list_filter = ("status", ("started_at", admin.DateFieldListFilter))
    search_fields = ("handler",)
    ordering = ("-id",)  # the primary key's index, not a sort of the whole table
    fields = (
        "event_link",
        "handler",
        "status_badge",
        "started_at",
        "duration",
        "worker",
        "stopped",
        "error",
        "traceback_block",
    )
    readonly_fields = fields
    event_link = event_column()

    @admin.display(description="status", ordering="status")
    def status_badge(self, obj: HandlerRun) -> SafeString:
        return badge(obj.status)

    @admin.display(description="duration", ordering="duration_ms")
    def duration(self, obj: HandlerRun) -> str:
        return f"{obj.duration_ms:.1f} ms" if obj.duration_ms is not None else "-"

    @admin.display(description="error")
    def error_preview(self, obj: HandlerRun) -> str:
        return Truncator(obj.error.replace("\n", " ")).chars(ERROR_PREVIEW_CHARS)

    @admin.display(description="traceback")
    def traceback_block(self, obj: HandlerRun) -> SafeString | str:
        if not obj.traceback:
            return "-"
        return format_html('<pre class="imbot-traceback">{}</pre>', obj.traceback)
