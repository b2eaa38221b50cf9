"""What every imbot_app ModelAdmin shares."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest, HttpResponse

__all__ = ["RecordAdmin"]


class RecordAdmin(admin.ModelAdmin):
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
