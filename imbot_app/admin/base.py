"""What every imbot_app ModelAdmin shares."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from imbot_app.admin.secrets import SecretLookupsRefused

__all__ = ["RecordAdmin"]


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
