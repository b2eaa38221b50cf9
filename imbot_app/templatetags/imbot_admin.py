"""Template tags of imbot_app's admin pages: ``{% load imbot_admin %}``.

``{% imbot_overview %}`` draws the events-per-hour chart on the app's index page (only for
users allowed to see events); ``{{ text|bbcode }}`` renders Bitrix24 BB codes safely;
``{{ status|imbot_badge }}`` draws a status badge.
"""

from __future__ import annotations

from typing import Any

from django import template
from django.utils.safestring import SafeString

from imbot_app.admin.bbcode import render_bbcode

register = template.Library()


@register.inclusion_tag("admin/imbot_app/includes/overview.html", takes_context=True)
def imbot_overview(context: dict[str, Any]) -> dict[str, Any]:
    from imbot_app.admin import overview

    request = context.get("request")
    user = getattr(request, "user", None)
    allowed = user is not None and (
        user.has_perm("imbot_app.view_event") or user.has_perm("imbot_app.change_event")
    )
    return {"overview": overview.build() if allowed else None}


@register.filter(name="bbcode")
def bbcode(text: str) -> SafeString:
    return render_bbcode(str(text or ""))


@register.filter(name="imbot_badge")
def imbot_badge(status: str) -> SafeString:
    """A status as the coloured badge the lists use: ``{{ run.status|imbot_badge }}``."""
    from imbot_app.admin.badges import badge

    return badge(str(status))
