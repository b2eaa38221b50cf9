"""Lists that never load what they do not show: payloads and message texts stay in the database.

A message's text and an event's payload can each be as large as ``IMBOT_MAX_BODY_BYTES``
(1 MB); a list page of 100 rows would load (and JSON-decode) 100 MB to show 80 characters of
each.  The lists defer those columns and take only a prefix of the text in SQL (``Substr``),
so a page costs the same whatever people sent.
"""

from __future__ import annotations

from typing import Any

from django.contrib.admin.views.main import ChangeList
from django.db.models import QuerySet, Value
from django.db.models.functions import Coalesce, NullIf, Substr
from django.http import HttpRequest

__all__ = ["deferring_changelist", "text_prefix"]


def text_prefix(length: int) -> Substr:
    """The first ``length`` characters of a message as shown (its original text, else text)."""
    return Substr(Coalesce(NullIf("text_original", Value("")), "text"), 1, length)


def deferring_changelist(*deferred: str, **annotations: Any) -> type[ChangeList]:
    """A ChangeList whose rows leave ``deferred`` columns unloaded and carry ``annotations``."""

    class DeferringChangeList(ChangeList):
        def get_queryset(self, request: HttpRequest, exclude_parameters: Any = None) -> QuerySet:
            queryset = super().get_queryset(request, exclude_parameters)
            return queryset.defer(*deferred).annotate(**annotations)

    return DeferringChangeList
