"""Coloured status badges, so a list of events or runs reads at a glance.

Inline styles: the changelist needs no extra stylesheet, and a project's admin theme cannot
lose them.
"""

from __future__ import annotations

from django.utils.html import format_html
from django.utils.safestring import SafeString

__all__ = ["badge"]

COLOURS = {
    "received": "#5c6f82",
    "running": "#1f6fb2",
    "processed": "#2e7d32",
    "succeeded": "#2e7d32",
    "registered": "#2e7d32",
    "installed": "#2e7d32",
    "failed": "#c62828",
    "invalid": "#b45309",
    "reauth_required": "#b45309",
    "uninstalled": "#5c6f82",
    "in": "#1f6fb2",
    "out": "#6a1b9a",
}
DEFAULT_COLOUR = "#5c6f82"


def badge(status: str, label: str | None = None) -> SafeString:
    """``<span class="imbot-badge imbot-badge-failed" ...>failed</span>``."""
    colour = COLOURS.get(status, DEFAULT_COLOUR)
    return format_html(
        '<span class="imbot-badge imbot-badge-{}" style="background:{};color:#fff;'
        "padding:1px 7px;border-radius:9px;font-size:11px;font-weight:600;"
        'white-space:nowrap">{}</span>',
        status,
        colour,
        label if label is not None else status,
    )
