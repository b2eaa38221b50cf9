"""Portals and their OAuth credentials.  Token values never reach a page or a form.

A portal's application token and every access/refresh token are shown as a masked hint
(``abcd…wxyz``) from read-only display methods; no form field holds them, so neither the HTML
nor a saved form can carry them.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.contrib.admin.utils import flatten_fieldsets
from django.db.models import OuterRef, Prefetch, QuerySet, Subquery
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString, mark_safe

from imbot_app.admin.badges import badge
from imbot_app.admin.base import ReadOnlyInline
from imbot_app.admin.masking import mask
from imbot_app.admin.secrets import SecretLookupsRefused
from imbot_app.lifecycle.registration_wait import WAITING, is_waiting
from imbot_app.models import Bot, Credential, Portal

__all__ = ["CredentialAdmin", "PortalAdmin"]

# Portal fields an operator may change by hand; everything else comes from Bitrix24.
EDITABLE = ("status", "language", "rate_limit", "rate_burst")


def registration_badge(portal: Portal) -> SafeString:
    if is_waiting(portal):
        return badge("received", WAITING)
    if portal.registration_error:
        return badge("failed", "registration failed")
    if portal.registered_at:
        return badge("registered")
    return badge("received", "not registered")


class BotInline(ReadOnlyInline):
    """The portal's bots (a handful), linked to their own pages with their commands."""

    model = Bot
    fields = ("bot_id", "code", "name", "registered_at", "deleted_at")


@admin.register(Portal)
class PortalAdmin(SecretLookupsRefused):
    list_display = (
        "__str__",
        "member_id",
        "status_badge",
        "language",
        "bot_list",
        "token_expiry",
        "registration",
    )
    list_filter = ("status", "webhook")
    search_fields = ("domain", "member_id")
    inlines = (BotInline,)
    fieldsets = (
        (
            None,
            {
                "fields": (
                    "domain",
                    "member_id",
                    "status",
                    "webhook",
                    "language",
                    "plan",
                    "app_version",
                )
            },
        ),
        (
            "Registration",
            {"fields": ("registration", "registered_at", "registration_error", "bound_events")},
        ),
        (
            "Connection",
            {
                "fields": (
                    "client_endpoint",
                    "server_endpoint",
                    "application_token_hint",
                    "installer_user_id",
                    "tokens",
                )
            },
        ),
        ("REST budget", {"fields": ("rate_limit", "rate_burst")}),
        ("Dates", {"fields": ("installed_at", "uninstalled_at", "created_at", "updated_at")}),
    )

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return [name for name in flatten_fieldsets(self.fieldsets) if name not in EDITABLE]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # portals come from ONAPPINSTALL

    def get_queryset(self, request: HttpRequest) -> QuerySet[Portal]:
        latest_expiry = (
            Credential.objects.filter(portal=OuterRef("pk"), expires_at__isnull=False)
            .order_by("-expires_at")
            .values("expires_at")[:1]
        )
        return (
            super()
            .get_queryset(request)
            .annotate(latest_token_expiry=Subquery(latest_expiry))
            .prefetch_related(Prefetch("bots", queryset=Bot.objects.order_by("bot_id")))
        )

    @admin.display(description="status", ordering="status")
    def status_badge(self, obj: Portal) -> SafeString:
        return badge(obj.status, obj.get_status_display())

    @admin.display(description="bots")
    def bot_list(self, obj: Portal) -> str:
        return ", ".join(str(bot) for bot in obj.bots.all()) or "-"

    @admin.display(description="latest token expiry", ordering="latest_token_expiry")
    def token_expiry(self, obj: Portal) -> Any:
        return getattr(obj, "latest_token_expiry", None)

    @admin.display(description="registration")
    def registration(self, obj: Portal) -> SafeString:
        return registration_badge(obj)

    @admin.display(description="application token")
    def application_token_hint(self, obj: Portal) -> str:
        return mask(obj.application_token)

    @admin.display(description="tokens of the installer and the bots")
    def tokens(self, obj: Portal) -> SafeString:
        """The credentials REST calls use (the bots', the installer's): hints and expiry."""
        users = [bot.bot_id for bot in obj.bots.all()]
        if obj.installer_user_id:
            users.append(obj.installer_user_id)
        credentials = Credential.objects.filter(portal=obj, user_id__in=users).order_by("user_id")
        rows = format_html_join(
            "",
            "<tr><td>{}</td><td><code>{}</code></td><td><code>{}</code></td><td>{}</td></tr>",
            (
                (c.user_id, mask(c.access_token), mask(c.refresh_token), c.expires_at or "-")
                for c in credentials
            ),
        )
        everything = (
            reverse(f"{self.admin_site.name}:imbot_app_credential_changelist")
            + f"?portal__id__exact={obj.pk}"
        )
        return format_html(
            '<table class="imbot-tokens"><thead><tr><th>user</th><th>access</th><th>refresh</th>'
            "<th>expires</th></tr></thead><tbody>{}</tbody></table>"
            '<p><a href="{}">every credential of this portal</a></p>',
            rows or mark_safe('<tr><td colspan="4">none</td></tr>'),
            everything,
        )


@admin.register(Credential)
class CredentialAdmin(SecretLookupsRefused):
    """One token set per portal and user, shown only as hints; read-only."""

    list_display = ("portal", "user_id", "access_token_hint", "expires_at", "updated_at")
    list_select_related = ("portal",)
    list_filter = ("portal",)
    search_fields = ("=user_id",)
    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER  # one credential per person: a big table
    fields = (
        "portal",
        "user_id",
        "access_token_hint",
        "refresh_token_hint",
        "expires_at",
        "scope",
        "updated_at",
    )
    readonly_fields = fields

    @admin.display(description="access token")
    def access_token_hint(self, obj: Credential) -> str:
        return mask(obj.access_token)

    @admin.display(description="refresh token")
    def refresh_token_hint(self, obj: Credential) -> str:
        return mask(obj.refresh_token)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
