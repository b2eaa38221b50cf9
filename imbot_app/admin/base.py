"""What every imbot_app ModelAdmin shares."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.contrib import admin
from django.db.models import Model
from django.http import HttpRequest, HttpResponse
from django.urls import reverse
from django.utils.html import format_html
from django.utils.safestring import SafeString

from imbot_app.admin.secrets import SecretLookupsRefused

__all__ = ["ReadOnlyInline", "RecordAdmin", "rows_link"]


class ReadOnlyInline(admin.TabularInline):
    """Rows shown under their parent (a handful), read-only, each linked to its own page."""

    extra = 0
    max_num = 0
    can_delete = False
    show_change_link = True

    def get_readonly_fields(self, request: Any, obj: Any = None) -> Any:
        return self.fields


def rows_link(
    description: str, model: str, field: str, text: str
) -> Callable[[admin.ModelAdmin, Model], SafeString]:
    """A read-only column linking to ``model``'s change list filtered on ``field=<this row>``.

    Why a factory: "the rows about this one" links differ only in these four words.
    """

    @admin.display(description=description)
    def column(self: admin.ModelAdmin, obj: Model) -> SafeString:
        url = reverse(f"{self.admin_site.name}:imbot_app_{model}_changelist")
        return format_html('<a href="{}?{}={}">{}</a>', url, field, obj.pk, text)

    return column


class RecordAdmin(SecretLookupsRefused):
    """Rows written by Bitrix24's events: looked at, never added or edited by hand.

    Deleting stays allowed (someone may have to erase a person's messages); editing would
    make the history say something that did not happen.
    """

    show_full_result_count = False
    # Facet counts ("Show counts") are one COUNT per filter choice over the whole table.
    show_facets = admin.ShowFacets.NEVER

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def change_context(self, request: HttpRequest, object_id: str) -> dict[str, Any]:
        """What this admin adds to its change page's context; nothing unless overridden."""
        return {}

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        # One override for every admin here: subclasses only say what they add.
        context = {**(extra_context or {}), **self.change_context(request, object_id)}
        return super().change_view(request, object_id, form_url, context)
