"""Decoding Bitrix24's wire format: PHP bracket forms and JSON.

Bitrix24 posts events as ``application/x-www-form-urlencoded`` bodies produced by PHP's
``http_build_query`` (``data[PARAMS][MESSAGE]=...``).  PHP code reads them with ``parse_str``;
this module reproduces ``parse_str`` exactly so that a Python bot sees the same nested mapping a
PHP bot would, with two deliberate differences that make bad input visible instead of silently
mangled: broken percent-encoding and invalid UTF-8 are errors, and the size, depth and field
limits raise instead of truncating.

Values stay the strings that were sent.  Mapping keys are always ``str`` (PHP would turn
``"567"`` into the integer 567; we keep ``"567"`` so bot and command ids stay mapping keys).

Nothing here knows about Django or about events.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import unquote_to_bytes

# The public names are listed once, in imbot_app.wire's __all__ (as for encode.py).

DEFAULT_MAX_DEPTH = 16
DEFAULT_MAX_FIELDS = 1000

_BAD_ESCAPE = re.compile(rb"%(?![0-9A-Fa-f]{2})")
_CANONICAL_INT = re.compile(r"(0|-?[1-9][0-9]*)\Z")
_PHP_INT_MAX = 2**63 - 1
_PHP_INT_MIN = -(2**63)
_SURROGATE = re.compile(r"[\ud800-\udfff]")
_C_SPACE = frozenset(" \t\n\v\f\r")  # C's isspace()


# PHP keeps a NUL character in a value; no database text column can hold one, and no Bitrix24
# event has one, so it is refused rather than silently altered.
NUL_MESSAGE = "the body contains a NUL character (%00), which is not allowed"


class WireError(ValueError):
    """A body that cannot be decoded; ``code`` is a stable machine-readable reason."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


# --------------------------------------------------------------------------- decoding


def _percent_decode(raw: bytes, what: str) -> str:
    """``urldecode`` with strict escapes and strict UTF-8."""
    if b"%" in raw:
        bad = _BAD_ESCAPE.search(raw)
        if bad is not None:
            at = bad.start()
            raise WireError(
                "bad_percent_encoding",
                f"broken percent-encoding in {what} at byte {at}: {raw[at : at + 3]!r}",
            )
        decoded = unquote_to_bytes(raw.replace(b"+", b" "))  # '+' is a space, %2B a plus
    else:
        decoded = raw.replace(b"+", b" ")
    try:
        return decoded.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise WireError("invalid_utf8", f"{what} is not valid UTF-8: {exc.reason}") from None


def _split_key(name: str) -> tuple[str, list[str | None]] | None:
    """Split a PHP variable name into its base and bracket indices, as ``parse_str`` does.

    Returns ``None`` for names PHP ignores (an empty base name).  ``None`` in the index list
    stands for ``[]`` (append).  Follows ``php_register_variable_ex``: the name ends at its first
    NUL (PHP handles it as a C string); leading spaces are skipped; spaces and dots in the base
    become ``_``; ``[]`` and ``[ ]`` (one whitespace character) append; a ``[`` without its
    ``]`` is not an index and turns into ``_``; text after the last ``]`` that does not open a
    new ``[`` is dropped.
    """
    name = name.partition("\x00")[0].lstrip(" ")
    bracket = name.find("[")
    if bracket == -1:
        base = name.replace(" ", "_").replace(".", "_")
        return (base, []) if base else None
    base = name[:bracket].replace(" ", "_").replace(".", "_")
    if not base:
        return None
    indices: list[str | None] = []
    pos = bracket
    while True:
        close = name.find("]", pos + 1)
        if close == -1:
            if not indices:
                # Not an index at all: the '[' and what follows belong to the base name.
                rest = name[pos + 1 :]
                for ch in " .[":
                    rest = rest.replace(ch, "_")
                return base + "_" + rest, []
            return base, indices
        inner = name[pos + 1 : close]
        # PHP skips one isspace() character before looking for ']': "[ ]" appends like "[]".
        indices.append(None if inner == "" or inner in _C_SPACE else inner)
        if close + 1 < len(name) and name[close + 1] == "[":
            pos = close + 1
            continue
        return base, indices


def _php_int_key(key: str) -> int | None:
    """The integer PHP stores ``key`` as (``ZEND_HANDLE_NUMERIC_STR``), or ``None``.

    Only canonical decimals within PHP's 64-bit integer range count: no leading zero, no
    ``+``, no ``-0``.  Anything else stays a string key in PHP too.
    """
    if len(key) > 20 or not _CANONICAL_INT.match(key):
        return None
    value = int(key)
    return value if _PHP_INT_MIN <= value <= _PHP_INT_MAX else None


class _Arrays:
    """The arrays of one ``parse_str`` call, with PHP's ``nNextFreeElement`` for each.

    ``$a[] = v`` uses the largest integer key ever stored in ``$a`` plus one (0 when there is
    none); after ``PHP_INT_MAX`` no next key exists and PHP drops the field.  Keeping the
    counter per array makes appends O(1) instead of a scan over the keys.
    """

    def __init__(self) -> None:
        self._next: dict[int, int] = {}

    def new(self) -> dict[str, Any]:
        node: dict[str, Any] = {}
        # Registered at creation, so a dict reusing a dropped one's id starts afresh.
        self._next[id(node)] = _PHP_INT_MIN
        return node

    def store(self, node: dict[str, Any], key: str, value: Any) -> None:
        node[key] = value
        number = _php_int_key(key)
        if number is not None and number >= self._next[id(node)]:
            self._next[id(node)] = number + 1 if number < _PHP_INT_MAX else _PHP_INT_MAX

    def next_key(self, node: dict[str, Any]) -> str | None:
        """The key ``[]`` appends under, or ``None`` when PHP cannot append."""
        number = self._next[id(node)]
        key = "0" if number == _PHP_INT_MIN else str(number)
        return None if key in node else key


def _assign(
    arrays: _Arrays,
    root: dict[str, Any],
    base: str,
    indices: list[str | None],
    value: str,
) -> None:
    """``php_register_variable_ex`` from the base name down, storing ``value`` at the end."""
    if not indices:
        arrays.store(root, base, value)
        return
    node = root.get(base)
    if not isinstance(node, dict):
        node = arrays.new()
        arrays.store(root, base, node)
    for index in indices[:-1]:
        key = arrays.next_key(node) if index is None else index
        if key is None:
            return  # no next integer key: PHP drops the field
        child = node.get(key)
        if not isinstance(child, dict):
            child = arrays.new()
            arrays.store(node, key, child)
        node = child
    last = indices[-1]
    key = arrays.next_key(node) if last is None else last
    if key is not None:
        arrays.store(node, key, value)


def decode_form(
    body: bytes,
    *,
    max_fields: int = DEFAULT_MAX_FIELDS,
    max_depth: int = DEFAULT_MAX_DEPTH,
) -> dict[str, Any]:
    """Decode a form body into nested dicts exactly as PHP's ``parse_str`` would.

    Raises :class:`WireError` (and nothing else) for broken percent-encoding, invalid UTF-8,
    more than ``max_fields`` fields, or brackets nested deeper than ``max_depth``.
    """
    if not isinstance(body, bytes | bytearray):
        raise WireError("bad_body", "the body must be bytes")
    arrays = _Arrays()
    result = arrays.new()
    fields = 0
    for piece in bytes(body).split(b"&"):
        if not piece:
            continue
        fields += 1
        if fields > max_fields:
            raise WireError("too_many_fields", f"more than {max_fields} fields in the body")
        raw_key, sep, raw_value = piece.partition(b"=")
        key = _percent_decode(raw_key, "a field name")
        value = _percent_decode(raw_value, f"the value of {key[:80]!r}") if sep else ""
        if "\x00" in value:
            raise WireError("nul_character", f"the value of {key[:80]!r}: {NUL_MESSAGE}")
        split = _split_key(key)
        if split is None:
            continue
        base, indices = split
        if len(indices) + 1 > max_depth:
            raise WireError(
                "too_deep", f"field {key[:80]!r} is nested deeper than {max_depth} levels"
            )
        _assign(arrays, result, base, indices, value)
    return result


def _reject_constant(name: str) -> Any:
    raise WireError("bad_json", f"{name} is not valid JSON")


def _finite_float(text: str) -> float:
    """A JSON number; one too large for a float (``1e400``) would become infinity."""
    value = float(text)
    if not math.isfinite(value):
        raise WireError("bad_json", f"the number {text[:40]} is out of range")
    return value


def _check_text(text: str) -> None:
    """Reject the lone surrogates a ``\\ud800`` escape decodes to (PHP's ``json_decode`` does)."""
    if not text.isascii() and _SURROGATE.search(text):
        raise WireError("bad_json", "the body has an unpaired UTF-16 surrogate escape")
    if "\x00" in text:
        raise WireError("nul_character", NUL_MESSAGE)


def _check_json_shape(value: Any, max_fields: int, max_depth: int) -> None:
    """Walk the decoded document without recursion, counting values and depth.

    Every value below the top-level object counts as a field, containers included: counting
    leaves only would let 70,000 empty objects through a 1,000-field limit.
    """
    fields = 0
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > 1:
            fields += 1
            if fields > max_fields:
                raise WireError("too_many_fields", f"more than {max_fields} fields in the body")
        if isinstance(node, dict):
            for key in node:
                _check_text(key)
            children: Iterator[Any] = iter(node.values())
        elif isinstance(node, list):
            children = iter(node)
        else:
            if isinstance(node, str):
                _check_text(node)
            continue
        if depth > max_depth:
            raise WireError("too_deep", f"the body is nested deeper than {max_depth} levels")
        stack.extend((child, depth + 1) for child in children)


def decode_json(
    body: bytes,
    *,
    max_fields: int = DEFAULT_MAX_FIELDS,
    max_depth: int = DEFAULT_MAX_DEPTH,
) -> dict[str, Any]:
    """Decode a JSON body whose top level is an object, with the same limits as forms."""
    if not isinstance(body, bytes | bytearray):
        raise WireError("bad_body", "the body must be bytes")
    try:
        text = bytes(body).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise WireError("invalid_utf8", f"the body is not valid UTF-8: {exc.reason}") from None
    # A cheap upper bound first, so a deeply nested document never reaches the recursive parser.
    if text.count("[") + text.count("{") > max_depth:
        depth = 0
        deepest = 0
        in_string = False
        escaped = False
        for ch in text:
            if in_string:
                if escaped:
                    escaped = False
                elif ch == "\\":
                    escaped = True
                elif ch == '"':
                    in_string = False
            elif ch == '"':
                in_string = True
            elif ch in "[{":
                depth += 1
                deepest = max(deepest, depth)
            elif ch in "]}":
                depth -= 1
        if deepest > max_depth:
            raise WireError("too_deep", f"the body is nested deeper than {max_depth} levels")
    try:
        value = json.loads(text, parse_constant=_reject_constant, parse_float=_finite_float)
    except WireError:
        raise
    except (ValueError, RecursionError) as exc:
        raise WireError("bad_json", f"the body is not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise WireError("bad_json", "the JSON body must be an object")
    _check_json_shape(value, max_fields, max_depth)
    return value
