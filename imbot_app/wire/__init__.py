"""Bitrix24's wire format: PHP bracket forms and JSON, both ways (layer 1).

Bitrix24 posts events as ``application/x-www-form-urlencoded`` bodies produced by PHP's
``http_build_query`` (``data[PARAMS][MESSAGE]=...``).  :mod:`.decode` reproduces PHP's
``parse_str`` exactly, with bounds; :mod:`.encode` is ``http_build_query`` as PHP writes it.
Nothing here knows about Django or about events.
"""

from imbot_app.wire.decode import (
    DEFAULT_MAX_DEPTH,
    DEFAULT_MAX_FIELDS,
    NUL_MESSAGE,
    WireError,
    decode_form,
    decode_json,
)
from imbot_app.wire.encode import encode_form, php_urlencode

__all__ = [
    "DEFAULT_MAX_DEPTH",
    "DEFAULT_MAX_FIELDS",
    "NUL_MESSAGE",
    "WireError",
    "decode_form",
    "decode_json",
    "encode_form",
    "php_urlencode",
]
