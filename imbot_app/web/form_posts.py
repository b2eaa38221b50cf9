"""The install page reads no body larger than ``IMBOT_MAX_BODY_BYTES``.

The install page is public and CSRF-exempt (Bitrix24 posts it cross-site).  Django bounds a
url-encoded body (``DATA_UPLOAD_MAX_MEMORY_SIZE``) but not the files of a multipart one: they
are read to the end and spooled to disk, so anyone could fill the server's temporary
directory through ``request.POST``.  Bitrix24's form is a few hundred bytes, so a body
declared larger than ``IMBOT_MAX_BODY_BYTES`` is refused with 413 before it is read (Django
reads no more than the declared Content-Length, and nothing without one).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.http import HttpRequest, HttpResponse

from imbot_app.conf import imbot_settings

__all__ = ["small_bodies_only"]


def _refusal(status: int, reason: str) -> HttpResponse:
    return HttpResponse(reason + "\n", status=status, content_type="text/plain; charset=utf-8")


def small_bodies_only(view: Callable[..., Any]) -> Callable[..., Any]:
    """View decorator: 413 for a body declared larger than IMBOT_MAX_BODY_BYTES."""

    @wraps(view)
    def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> Any:
        declared = request.META.get("CONTENT_LENGTH") or "0"
        try:
            length = int(declared)
        except ValueError:
            return _refusal(400, "the Content-Length header is not a number")
        if length > int(imbot_settings.MAX_BODY_BYTES):
            return _refusal(413, "the body is larger than IMBOT_MAX_BODY_BYTES")
        return view(request, *args, **kwargs)

    return wrapped
