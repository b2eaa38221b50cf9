"""Field types every API version uses: Bitrix24's strings to Python values, the ``auth`` block.

Every value a webhook sends is a string ("Y" is ``True``, ids are digits); these DRF fields
convert them once, here at the protocol boundary, and nowhere else.  v1 and v2 webhooks carry
the same ``auth`` block.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from rest_framework import serializers

from imbot_app import events as ev

# --------------------------------------------------------------------------- fields


def text_field(**kwargs: Any) -> serializers.CharField:
    """A string kept exactly as sent: no trimming, blank allowed, optional."""
    kwargs.setdefault("required", False)
    kwargs.setdefault("allow_blank", True)
    return serializers.CharField(trim_whitespace=False, **kwargs)


# Ids are stored in 64-bit columns: a larger number is invalid input, not a database error.
INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1


def int_field(**kwargs: Any) -> serializers.IntegerField:
    kwargs.setdefault("required", False)
    kwargs.setdefault("min_value", INT64_MIN)
    kwargs.setdefault("max_value", INT64_MAX)
    return serializers.IntegerField(**kwargs)


def int_key(key: str) -> int | None:
    """A mapping key that names an id (``data[BOT][<id>]``), or ``None`` if it cannot."""
    try:
        value = int(key)
    except ValueError:
        return None
    return value if INT64_MIN <= value <= INT64_MAX else None


def flag_field(**kwargs: Any) -> serializers.BooleanField:
    """Bitrix24's Y/N flags (DRF reads Y/N, 1/0 and true/false)."""
    kwargs.setdefault("required", False)
    return serializers.BooleanField(**kwargs)


class LenientIntegerField(serializers.Field):
    """An integer that may be missing or unreadable (``ts``/``expires`` masked in real logs).

    An unreadable value becomes ``None`` rather than an error: the raw value stays in the
    stored payload, and refusing a real message because of a timestamp would lose it.
    """

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("required", False)
        kwargs.setdefault("allow_null", True)
        super().__init__(**kwargs)

    def to_internal_value(self, data: Any) -> int | None:
        return _lenient_int(data)

    def to_representation(self, value: Any) -> Any:
        return value


def _lenient_int(data: Any) -> int | None:
    if data is None or isinstance(data, bool):
        return None
    try:
        value = int(str(data).strip())
    except ValueError:
        return None
    return value if INT64_MIN <= value <= INT64_MAX else None


class MappingField(serializers.DictField):
    """A nested mapping (PHP array); empty when absent, as PHP drops empty arrays."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("required", False)
        super().__init__(**kwargs)


# --------------------------------------------------------------------------- blocks

# The text keys of an auth block and their longest allowed values.
_AUTH_TEXT: dict[str, int] = {
    "member_id": 64,
    "application_token": 255,
    "domain": 255,
    "client_endpoint": 255,
    "server_endpoint": 255,
    "access_token": 255,
    "refresh_token": 255,
    "scope": 1024,
    "status": 4,
    "client_id": 255,
}


def clean_auth(data: Any) -> dict[str, Any]:
    """Check an auth block's keys (all optional; unknown ones ignored) and return them.

    A plain function rather than a nested serializer: an event carries up to four auth blocks
    (the user's, and each bot's with its AUTH copy), and DRF would deep-copy twelve fields for
    each on every request.
    """
    if not isinstance(data, Mapping):
        raise serializers.ValidationError(
            f'Expected a dictionary of items but got type "{type(data).__name__}".'
        )
    values: dict[str, Any] = {}
    errors: dict[str, list[str]] = {}
    for key, limit in _AUTH_TEXT.items():
        if key not in data:
            continue
        value = data[key]
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            errors[key] = ["Not a valid string."]
        elif len(text := str(value)) > limit:
            errors[key] = [f"Ensure this field has no more than {limit} characters."]
        else:
            values[key] = text
    if errors:
        raise serializers.ValidationError(errors)
    values["user_id"] = _lenient_int(data.get("user_id"))
    values["expires"] = _lenient_int(data.get("expires"))
    return values


class AuthField(serializers.Field):
    """An ``auth`` block, checked by :func:`clean_auth`."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("required", False)
        super().__init__(**kwargs)

    def to_internal_value(self, data: Any) -> dict[str, Any]:
        return clean_auth(data)

    def to_representation(self, value: Any) -> Any:
        return value


def timestamp(value: int | None) -> datetime | None:
    if value is None:
        return None
    try:
        return datetime.fromtimestamp(value, tz=UTC)
    except (OverflowError, OSError, ValueError):
        return None


def auth_block(values: Mapping[str, Any]) -> ev.AuthBlock:
    return ev.AuthBlock(
        **{key: values.get(key, "") for key in _AUTH_TEXT},
        user_id=values.get("user_id"),
        expires=timestamp(values.get("expires")),
    )
