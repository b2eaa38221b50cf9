"""List filters that stay cheap on tables of 100,000 rows.

Django's default filter for a foreign key lists every related row in the sidebar (every chat,
every event...) and ``AllValuesFieldListFilter`` runs ``SELECT DISTINCT`` over the whole
table on each page.  These filters know their choices without asking the database, or take
the related row's id from the URL (``?chat=12``) and name only that one row.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db.models import Model, QuerySet
from django.http import HttpRequest

from imbot_app.models import Chat, ChatType, ChatUser, CommandInvocation, Event
from imbot_app.protocol import EVENT_CLASSES

__all__ = [
    "AuthorFilter",
    "ChatFilter",
    "ChatTypeFilter",
    "EventFilter",
    "EventNameFilter",
    "InvocationContextFilter",
]


class RelatedIdFilter(admin.SimpleListFilter):
    """Rows pointing at one related row, given by id in the URL; no choices listed.

    Links elsewhere in the admin (a chat's "all messages", an event's "its messages") set the
    parameter; the sidebar then shows that row with "All" to drop it.
    """

    related_model: type[Model]
    field_name: str

    def has_output(self) -> bool:
        # Shown, and applied (Django applies only filters with output), when set in the URL.
        return bool(self.value())

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        value = self.value()
        if not value or not value.isdigit():
            return []
        row = self.related_model._default_manager.filter(pk=int(value)).first()
        return [(value, str(row) if row is not None else f"#{value} (gone)")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        value = self.value()
        if not value:
            return queryset
        if not value.isdigit():
            return queryset.none()
        return queryset.filter(**{f"{self.field_name}_id": int(value)})


class ChatFilter(RelatedIdFilter):
    title = "chat"
    parameter_name = "chat"
    related_model = Chat
    field_name = "chat"


class AuthorFilter(RelatedIdFilter):
    title = "author"
    parameter_name = "author"
    related_model = ChatUser
    field_name = "author"


class EventFilter(RelatedIdFilter):
    title = "event"
    parameter_name = "event"
    related_model = Event
    field_name = "event"


OTHER = "_other"


class EventNameFilter(admin.SimpleListFilter):
    """The events imbot_app knows, plus "other" for the rest; no DISTINCT over the table."""

    title = "event"
    parameter_name = "name"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        choices = [(name, name) for name in sorted(EVENT_CLASSES)]
        value = self.value()
        if value and value != OTHER and value not in EVENT_CLASSES:
            choices.append((value, value))
        choices.append((OTHER, "other"))
        return choices

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        value = self.value()
        if not value:
            return queryset
        if value == OTHER:
            return queryset.exclude(name__in=list(EVENT_CLASSES))
        return queryset.filter(name=value)


class ChatTypeFilter(admin.SimpleListFilter):
    """Bitrix24's chat type letters by name (the field stores the bare letter)."""

    title = "type"
    parameter_name = "type"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [(str(value), str(label)) for value, label in ChatType.choices]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        value = self.value()
        return queryset.filter(type=value) if value else queryset


class InvocationContextFilter(admin.SimpleListFilter):
    """Typed, keyboard button or context menu (the field stores Bitrix24's word)."""

    title = "from"
    parameter_name = "context"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [(str(value), str(label)) for value, label in CommandInvocation.Context.choices]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        value = self.value()
        return queryset.filter(context=value) if value else queryset
