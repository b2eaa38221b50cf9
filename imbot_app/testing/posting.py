"""Posting events to the endpoint the way Bitrix24's queue server does.

Form-encoded with PHP's ``http_build_query`` rules, byte for byte what Bitrix24 posts, or as
JSON (what a REST call's ``event.get`` or a proxy may hand on).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from imbot_app.wire import encode_form

__all__ = ["EVENTS_PATH", "encode_event", "post_event"]

EVENTS_PATH = "/imbot/events/"


def encode_event(payload: Mapping[str, Any]) -> str:
    """The form body Bitrix24 would send for ``payload`` (PHP ``http_build_query``)."""
    return encode_form(payload)


def post_event(
    client: Any,
    payload: Mapping[str, Any],
    *,
    as_json: bool = False,
    path: str = EVENTS_PATH,
    **extra: Any,
) -> Any:
    """Post an event with Django's test ``client`` (form-encoded unless ``as_json``)."""
    if as_json:
        return client.post(path, json.dumps(payload), content_type="application/json", **extra)
    return client.post(
        path, encode_event(payload), content_type="application/x-www-form-urlencoded", **extra
    )
