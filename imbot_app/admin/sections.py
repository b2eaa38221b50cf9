"""Paginated parts of a change page (a chat's transcript, an event's handler runs).

Django's inlines show every related row at once, which a chat of 50,000 messages cannot
afford; a :class:`Section` is one page of a queryset plus the links to the other pages, each
keeping the rest of the query string.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.core.paginator import Page, Paginator
from django.db.models import QuerySet
from django.http import HttpRequest

__all__ = ["PageLink", "Section", "paginate"]


@dataclass(frozen=True)
class PageLink:
    label: str
    href: str | None  # None: the current page, or an ellipsis
    current: bool = False


@dataclass(frozen=True)
class Section:
    page: Page[Any]
    links: tuple[PageLink, ...]

    @property
    def rows(self) -> list[Any]:
        return list(self.page.object_list)

    @property
    def count(self) -> int:
        return int(self.page.paginator.count)


def paginate(
    queryset: QuerySet[Any],
    request: HttpRequest,
    *,
    param: str,
    per_page: int,
    last_by_default: bool = False,
) -> Section:
    """The page ``?{param}=N`` asks for (the first, or the last if ``last_by_default``)."""
    paginator = Paginator(queryset, per_page)
    wanted = request.GET.get(param, "")
    default = paginator.num_pages if last_by_default else 1
    number = int(wanted) if wanted.isdigit() else default
    page = paginator.get_page(number)
    links: list[PageLink] = []
    if paginator.num_pages > 1:
        for item in paginator.get_elided_page_range(page.number, on_each_side=2, on_ends=1):
            if item == Paginator.ELLIPSIS:
                links.append(PageLink(str(item), None))
            elif item == page.number:
                links.append(PageLink(str(item), None, current=True))
            else:
                query = request.GET.copy()
                query[param] = str(item)
                links.append(PageLink(str(item), f"?{query.urlencode()}"))
    return Section(page, tuple(links))
