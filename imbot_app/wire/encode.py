"""PHP's ``http_build_query``, as PHP writes it: the other half of :mod:`imbot_app.wire`.

Used by the test kit to build events byte for byte the way Bitrix24 sends them, and by the REST
client for form bodies.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from typing import Any


def php_urlencode(text: str) -> str:
    """PHP's ``urlencode``: letters, digits and ``-_.`` stay; space is ``+``; the rest is %XX."""
    out = []
    for byte in text.encode("utf-8"):
        if (
            0x30 <= byte <= 0x39
            or 0x41 <= byte <= 0x5A
            or 0x61 <= byte <= 0x7A
            or byte in (0x2D, 0x5F, 0x2E)
        ):
            out.append(chr(byte))
        elif byte == 0x20:
            out.append("+")
        else:
            out.append(f"%{byte:02X}")
    return "".join(out)


def _php_float(value: float) -> str:
    """PHP 8's ``(string)$float``: ``zend_gcvt`` with ``precision=14``.

    14 significant digits, trailing zeros dropped, exponent form ``1.0E+20`` / ``1.0E-7`` when
    the decimal exponent is below -4 or above 13; ``-0``, ``INF``, ``-INF`` and ``NAN`` as PHP
    writes them.
    """
    if math.isnan(value):
        return "NAN"
    if math.isinf(value):
        return "INF" if value > 0 else "-INF"
    sign = "-" if math.copysign(1.0, value) < 0 else ""
    mantissa, _, exponent = f"{abs(value):.13e}".partition("e")
    digits = mantissa.replace(".", "").rstrip("0") or "0"
    point = int(exponent) + 1 if digits != "0" else 1  # digits are 0.DIGITS * 10**point
    if (point < -3) if point < 0 else (point > 14):
        power = point - 1
        return f"{sign}{digits[0]}.{digits[1:] or '0'}E{'-' if power < 0 else '+'}{abs(power)}"
    if point <= 0:
        return f"{sign}0.{'0' * -point}{digits}"
    whole = digits[:point].ljust(point, "0")
    fraction = digits[point:]
    return f"{sign}{whole}.{fraction}" if fraction else f"{sign}{whole}"


def _scalar(value: Any) -> str | None:
    """A scalar as ``http_build_query`` writes it, or ``None`` for a value it leaves out."""
    if value is None:
        return None
    if value is True:
        return "1"
    if value is False:
        return "0"
    if isinstance(value, float):
        return _php_float(value)
    return str(value)


def _pairs(prefix: str, value: Any) -> Iterator[tuple[str, str]]:
    if isinstance(value, Mapping):
        for key, child in value.items():
            yield from _pairs(f"{prefix}[{key}]", child)
    elif isinstance(value, list | tuple):
        for index, child in enumerate(value):
            yield from _pairs(f"{prefix}[{index}]", child)
    else:
        text = _scalar(value)
        if text is not None:
            yield prefix, text


def encode_form(data: Mapping[str, Any]) -> str:
    """PHP's ``http_build_query``: nested mappings become ``a%5Bb%5D=v`` pairs.

    As in PHP, ``None`` and empty arrays are left out, booleans become ``1``/``0``, and lists
    are indexed from 0.
    """
    parts = []
    for key, value in data.items():
        for name, text in _pairs(str(key), value):
            parts.append(f"{php_urlencode(name)}={php_urlencode(text)}")
    return "&".join(parts)
