"""DRF parsers for Bitrix24's two body formats, enforcing the size, field and depth limits.

Each parser reads at most ``IMBOT_MAX_BODY_BYTES + 1`` bytes, so an oversized body is refused
without being held in memory, and turns :class:`~imbot_app.wire.WireError` into a 400 that
names the problem.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import IO, Any

from rest_framework import status
from rest_framework.exceptions import APIException, ParseError
from rest_framework.parsers import BaseParser

from imbot_app import wire
from imbot_app.conf import imbot_settings


class BodyTooLarge(APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_code = "body_too_large"
    default_detail = "the body is larger than IMBOT_MAX_BODY_BYTES"


class WireParseError(ParseError):
    """A 400 carrying the wire error's stable code."""

    def __init__(self, error: wire.WireError) -> None:
        super().__init__(detail=error.message, code=error.code)


def read_limited(stream: IO[bytes] | None) -> bytes:
    """Read the whole body, or raise :class:`BodyTooLarge` past the configured limit."""
    if stream is None:
        return b""
    limit = int(imbot_settings.MAX_BODY_BYTES)
    body = stream.read(limit + 1)
    if len(body) > limit:
        raise BodyTooLarge(f"the body is larger than IMBOT_MAX_BODY_BYTES ({limit} bytes)")
    return body


class _LimitedParser(BaseParser):
    decode: Any = None

    def parse(
        self,
        stream: IO[Any] | None,
        media_type: str | None = None,
        parser_context: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        body = read_limited(stream)
        try:
            decoded: dict[str, Any] = type(self).decode(
                body,
                max_fields=int(imbot_settings.MAX_FIELDS),
                max_depth=int(imbot_settings.MAX_DEPTH),
            )
        except wire.WireError as error:
            raise WireParseError(error) from None
        return decoded


class PhpFormParser(_LimitedParser):
    """``application/x-www-form-urlencoded`` with PHP bracket keys, decoded like ``parse_str``."""

    media_type = "application/x-www-form-urlencoded"
    decode = staticmethod(wire.decode_form)


class LimitedJSONParser(_LimitedParser):
    """``application/json`` whose top level is an object."""

    media_type = "application/json"
    decode = staticmethod(wire.decode_json)
