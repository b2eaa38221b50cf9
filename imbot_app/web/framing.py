"""Who may show a page in a frame: Bitrix24's own sites and the portal's, nobody else.

The install page must be framed (Bitrix24 opens it in an iframe), so it is exempt from Django's
``X-Frame-Options: DENY``; X-Frame-Options cannot name a list of sites, so without something
else *any* site could frame it (clickjacking).  ``Content-Security-Policy: frame-ancestors``
can: it names Bitrix24's cloud zones (``https://*.bitrix24.com`` ...), the portal's own domain
once ``app.info`` confirmed it (an on-premise portal lives on its own domain), and whatever the
project adds in ``IMBOT_FRAME_ANCESTORS``.  The request's ``DOMAIN`` is never used: it is
unsigned, and trusting it would let any site that names itself there frame the page.

No django-csp: one header on one view does not need a middleware and its settings.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import wraps
from typing import Any

from django.http import HttpResponseBase

from imbot_app.conf import imbot_settings

__all__ = [
    "BITRIX24_CLOUD_ZONES",
    "allow_bitrix24_framing",
    "frame_ancestors",
    "framed_by_bitrix24",
]

#: Bitrix24's cloud portals live on subdomains of these zones (the list Bitrix24's own product
#: code keeps in ``Bitrix\Landing\Help::$domains``).
BITRIX24_CLOUD_ZONES = (
    "bitrix24.com",
    "bitrix24.ru",
    "bitrix24.by",
    "bitrix24.kz",
    "bitrix24.ua",
    "bitrix24.de",
    "bitrix24.es",
    "bitrix24.com.br",
    "bitrix24.pl",
    "bitrix24.fr",
    "bitrix24.cn",
    "bitrix24.in",
    "bitrix24.eu",
    "bitrix24.com.tr",
    "bitrix24.it",
    "bitrix24.id",
    "bitrix24.vn",
    "bitrix24.jp",
)

# A host name (with an optional port): nothing that could end the directive or add another.
_HOST = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,62}\.)*[a-z0-9-]{1,63}(?::[0-9]{1,5})?", re.ASCII)
# A source the project may add: a scheme and host, wildcards allowed, or a CSP keyword.
_SOURCE = re.compile(r"(?:https?://[a-z0-9*.:-]+|'self'|'none')", re.ASCII | re.IGNORECASE)


def frame_ancestors(portal_domain: str = "") -> str:
    """The ``frame-ancestors`` directive: Bitrix24's zones, the portal, the configured extras."""
    sources = ["'self'", *(f"https://*.{zone}" for zone in BITRIX24_CLOUD_ZONES)]
    host = portal_domain.strip().lower()
    if host and _HOST.fullmatch(host) and not host.endswith(BITRIX24_CLOUD_ZONES):
        sources.append(f"https://{host}")
    for extra in imbot_settings.FRAME_ANCESTORS:
        if not _SOURCE.fullmatch(str(extra)):
            raise ValueError(f"IMBOT_FRAME_ANCESTORS: {extra!r} is not a CSP source")
        sources.append(str(extra))
    return "frame-ancestors " + " ".join(sources)


def allow_bitrix24_framing(response: HttpResponseBase, portal_domain: str = "") -> None:
    """Let Bitrix24 (and the portal) frame ``response``, and no one else."""
    response["Content-Security-Policy"] = frame_ancestors(portal_domain)
    response.xframe_options_exempt = True  # type: ignore[attr-defined]


def framed_by_bitrix24(view: Callable[..., Any]) -> Callable[..., Any]:
    """View decorator: every response gets the policy, unless the view already set its own."""

    @wraps(view)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        response = view(*args, **kwargs)
        if "Content-Security-Policy" not in response:
            allow_bitrix24_framing(response)
        return response

    return wrapped
