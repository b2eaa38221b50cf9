"""Admin lists never filter on a secret column.

Django's changelist accepts ``?<field>__<lookup>=`` for any local field, so a staff user who
may only *view* portals could recover an application token a character at a time with
``?application_token__startswith=``, however well the pages mask it.  Every imbot admin refuses
a lookup that names a secret column anywhere in its path: Django answers 400
(``DisallowedModelAdminLookup``).
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db.models.constants import LOOKUP_SEP
from django.http import HttpRequest

# Columns holding tokens (or their digests): never a filter, on any model or relation path.
SECRET_COLUMNS = frozenset({"application_token", "access_token", "refresh_token"})


def names_a_secret(lookup: str) -> bool:
    return not SECRET_COLUMNS.isdisjoint(lookup.split(LOOKUP_SEP))


class SecretLookupsRefused(admin.ModelAdmin):
    """Mix in before ``admin.ModelAdmin`` to refuse lookups on :data:`SECRET_COLUMNS`."""

    def lookup_allowed(self, lookup: str, value: str, request: HttpRequest) -> bool:
        if names_a_secret(lookup):
            return False
        allowed: Any = super().lookup_allowed(lookup, value, request)
        return bool(allowed)
