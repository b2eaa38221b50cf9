"""``imbot_app.wire``: PHP's ``parse_str`` and ``http_build_query``, and the JSON twin.

The form decoder must give the nested mapping a PHP bot gets from ``parse_str`` (PHP 8,
``main/php_variables.c``), with string keys only and with broken percent-encoding, invalid
UTF-8 and exceeded limits raising ``WireError``.  Three independent checks hold it to that:

* hand-checked cases (``FORM_CASES``), asserted with their key order;
* a transliteration of ``php_register_variable_ex`` (``_php_parse_str`` below, C-string
  semantics included) that hypothesis compares the decoder with on generated bodies;
* when a ``php`` binary is on the PATH, PHP itself: every hand-checked case, a few thousand
  generated bodies, the corpus and the encoder cases go through real ``parse_str`` /
  ``http_build_query`` (skipped otherwise).
"""

from __future__ import annotations

import base64
import json
import math
import os
import random
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any, cast
from urllib.parse import unquote_to_bytes

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from imbot_app import wire
from imbot_app.wire import WireError, decode_form, decode_json, encode_form, php_urlencode

PHP_INT_MAX = 2**63 - 1
PHP_INT_MIN = -(2**63)
LONG_MAX = str(PHP_INT_MAX)
BIG = 10**6  # limits high enough not to matter


def _ordered(value: Any) -> Any:
    """A decoded tree as nested (key, value) lists, so that comparisons also check key order."""
    if isinstance(value, dict):
        return [(key, _ordered(child)) for key, child in value.items()]
    return value


def _assert_string_tree(value: Any) -> None:
    """What ``decode_form`` returns: dicts with ``str`` keys whose leaves are ``str``."""
    assert isinstance(value, dict)
    for key, child in value.items():
        assert type(key) is str
        if isinstance(child, dict):
            _assert_string_tree(child)
        else:
            assert type(child) is str


def _error(decode: Any, body: Any, **limits: int) -> WireError:
    with pytest.raises(WireError) as info:
        decode(body, **limits)
    error = info.value
    assert isinstance(error, ValueError)
    assert isinstance(error.message, str)
    assert error.message
    assert str(error) == error.message
    return error


# --------------------------------------------------------------------------- hand-checked forms

# (id, body, what parse_str gives, keys as strings, in PHP's order).  Every one of them is also
# run through real PHP by test_php_parse_str_agrees_with_the_hand_checked_cases when PHP is there.
FORM_CASES: list[tuple[str, bytes, dict[str, Any]]] = [
    # Bitrix24 shapes
    (
        "message",
        b"data[PARAMS][MESSAGE]=hello&data[PARAMS][DIALOG_ID]=chat8",
        {"data": {"PARAMS": {"MESSAGE": "hello", "DIALOG_ID": "chat8"}}},
    ),
    (
        "message-encoded-brackets",
        b"data%5BPARAMS%5D%5BMESSAGE%5D=hello&data%5bPARAMS%5d%5bFROM_USER_ID%5d=1",
        {"data": {"PARAMS": {"MESSAGE": "hello", "FROM_USER_ID": "1"}}},
    ),
    (
        "bot-auth",
        b"data[BOT][567][AUTH][access_token]=tok&data[BOT][567][AUTH][domain]=x.bitrix24.ru"
        b"&data[BOT][567][BOT_ID]=567&data[BOT][568][BOT_ID]=568",
        {
            "data": {
                "BOT": {
                    "567": {
                        "AUTH": {"access_token": "tok", "domain": "x.bitrix24.ru"},
                        "BOT_ID": "567",
                    },
                    "568": {"BOT_ID": "568"},
                }
            }
        },
    ),
    ("numeric-keys", b"x[0]=a&x[1]=b&x[10]=c", {"x": {"0": "a", "1": "b", "10": "c"}}),
    ("append", b"x[]=a&x[]=b&x[]=c", {"x": {"0": "a", "1": "b", "2": "c"}}),
    ("append-after-index", b"x[5]=a&x[]=b", {"x": {"5": "a", "6": "b"}}),
    ("append-after-max", b"x[5]=a&x[2]=b&x[]=c", {"x": {"5": "a", "2": "b", "6": "c"}}),
    ("append-after-string-key", b"x[a]=1&x[]=2", {"x": {"a": "1", "0": "2"}}),
    (
        "append-mixed",
        b"x[b]=1&x[]=2&x[7]=3&x[]=4&x[c][]=5&x[c][]=6&x[3]=7&x[]=8",
        {
            "x": {
                "b": "1",
                "0": "2",
                "7": "3",
                "8": "4",
                "c": {"0": "5", "1": "6"},
                "3": "7",
                "9": "8",
            }
        },
    ),
    (
        "append-nested",
        b"a[][x]=1&a[][x]=2&a[1][y]=3",
        {"a": {"0": {"x": "1"}, "1": {"x": "2", "y": "3"}}},
    ),
    (
        # Only canonical integers are integer keys in PHP; the rest do not move the next index.
        "append-non-canonical",
        b"x[007]=a&x[-0]=b&x[1.5]=c&x[+5]=d&x[%205]=e&x[5%20]=f&x[]=g",
        {"x": {"007": "a", "-0": "b", "1.5": "c", " 5": "e", "5 ": "f", "0": "g"}},
    ),
    ("append-after-negative", b"x[-3]=a&x[]=b", {"x": {"-3": "a", "-2": "b"}}),
    (
        # The largest integer key is PHP_INT_MAX: PHP has no next key and drops the field.
        "append-after-php-int-max",
        b"x[" + LONG_MAX.encode() + b"]=a&x[]=b&x[][c]=d&y=1",
        {"x": {LONG_MAX: "a"}, "y": "1"},
    ),
    (
        "append-after-out-of-range",
        b"x[9223372036854775808]=a&x[-9223372036854775809]=b&x[]=c",
        {"x": {"9223372036854775808": "a", "-9223372036854775809": "b", "0": "c"}},
    ),
    (
        "append-after-php-int-min",
        b"x[-9223372036854775808]=a&x[]=b",
        {"x": {"-9223372036854775808": "a", "-9223372036854775807": "b"}},
    ),
    (
        "append-after-huge-number",
        b"x[" + b"1" * 5000 + b"]=a&x[]=b",
        {"x": {"1" * 5000: "a", "0": "b"}},
    ),
    (
        # One whitespace character between the brackets is skipped: "[ ]" appends like "[]".
        "append-space",
        b"a[ ]=1&a[+]=2&a[%09]=3&a[%0A][b]=4&a[  ]=5&a[ x]=6",
        {"a": {"0": "1", "1": "2", "2": "3", "3": {"b": "4"}, "  ": "5", " x": "6"}},
    ),
    ("overwrite", b"a=1&b=2&a=3", {"a": "3", "b": "2"}),
    ("overwrite-nested", b"a[b]=1&a[c]=2&a[b]=3", {"a": {"b": "3", "c": "2"}}),
    ("scalar-then-array", b"a=1&a[b]=2", {"a": {"b": "2"}}),
    ("array-then-scalar", b"a[b]=1&a=2", {"a": "2"}),
    ("nested-scalar-then-array", b"a[b]=1&a[b][c]=2", {"a": {"b": {"c": "2"}}}),
    # A replaced array starts numbering afresh.
    ("array-scalar-array", b"a[5]=x&a=y&a[]=z", {"a": {"0": "z"}}),
    (
        "unknown-keys-kept",
        b"event=ONIMBOTMESSAGEADD&CLIENT_ID=abc&whatever[deep][key]=v&ts=1",
        {
            "event": "ONIMBOTMESSAGEADD",
            "CLIENT_ID": "abc",
            "whatever": {"deep": {"key": "v"}},
            "ts": "1",
        },
    ),
    ("empty-value", b"k=&j[x]=", {"k": "", "j": {"x": ""}}),
    ("no-equals", b"k&j[x]&m=1", {"k": "", "j": {"x": ""}, "m": "1"}),
    ("empty-pieces", b"&&a=1&&b=2&", {"a": "1", "b": "2"}),
    ("empty-body", b"", {}),
    ("only-ampersands", b"&&&", {}),
    ("equals-in-value", b"a=b=c&d==", {"a": "b=c", "d": "="}),
    ("escaped-separators", b"a%3Db=x%26y%3Dz", {"a=b": "x&y=z"}),
    ("plus-is-space", b"m=a+b++c", {"m": "a b  c"}),
    ("percent-2b-is-plus", b"m=%2B79880016681&n=%2b", {"m": "+79880016681", "n": "+"}),
    ("plus-in-index", b"a[b+c]=1&a[b%2Bc]=2", {"a": {"b c": "1", "b+c": "2"}}),
    (
        "raw-utf8",
        "data[PARAMS][MESSAGE]=Привет мир&ключ[подключ]=да".encode(),
        {"data": {"PARAMS": {"MESSAGE": "Привет мир"}}, "ключ": {"подключ": "да"}},
    ),
    (
        "percent-cyrillic",
        b"m=%D0%9F%D1%80%D0%B8%D0%B2%D0%B5%D1%82&l=%d0%bf",
        {"m": "Привет", "l": "п"},
    ),
    ("percent-emoji", b"m=%F0%9F%98%81&e[%F0%9F%98%80]=1", {"m": "\U0001f601", "e": {"😀": "1"}}),
    # PHP reads the name as a C string: it ends at the first NUL.
    ("nul-ends-name", b"a%00b=1&c[d%00e]=2&f[g]%00[h]=3", {"a": "1", "c_d": "2", "f": {"g": "3"}}),
    # PHP name mangling
    ("leading-spaces", b"+a=1&%20%20b=2& c=3", {"a": "1", "b": "2", "c": "3"}),
    ("dot-in-name", b"a.b=1", {"a_b": "1"}),
    ("space-in-name", b"a+b=1&c%20d.e=2", {"a_b": "1", "c_d_e": "2"}),
    ("dot-in-index-kept", b"a[b.c]=1", {"a": {"b.c": "1"}}),
    ("mangle-base-only", b"a.b[c.d][e+f]=1", {"a_b": {"c.d": {"e f": "1"}}}),
    ("leading-dot", b".a=1", {"_a": "1"}),
    ("close-bracket-in-name", b"a]=1&b]c[d]=2", {"a]": "1", "b]c": {"d": "2"}}),
    ("unmatched-bracket", b"a[b=1", {"a_b": "1"}),
    ("unmatched-bracket-mangled", b"a[b.c+d[e=1", {"a_b_c_d_e": "1"}),
    ("unmatched-bracket-at-end", b"a[=1", {"a_": "1"}),
    ("text-after-bracket", b"a[b]c=1", {"a": {"b": "1"}}),
    ("text-after-bracket-then-index", b"a[b]c[d]=1", {"a": {"b": "1"}}),
    ("unmatched-second-bracket", b"a[x][y=1", {"a": {"x": "1"}}),
    ("unmatched-after-append", b"a[][y=1", {"a": {"0": "1"}}),
    ("open-bracket-inside-index", b"a[b[c]=1", {"a": {"b[c": "1"}}),
    ("double-close", b"a[]]=1", {"a": {"0": "1"}}),
    ("empty-base-ignored", b"[a]=1&=2&+[b]=3&%20=4&c=5", {"c": "5"}),
]


@pytest.mark.parametrize(
    ("body", "expected"), [c[1:] for c in FORM_CASES], ids=[c[0] for c in FORM_CASES]
)
def test_decode_form_hand_checked(body: bytes, expected: dict[str, Any]) -> None:
    decoded = decode_form(body)
    assert decoded == expected
    assert _ordered(decoded) == _ordered(expected)
    _assert_string_tree(decoded)


def test_decode_form_accepts_bytearray() -> None:
    # Typed as bytes, but a bytearray (what a streaming reader may hand over) works too.
    assert decode_form(cast(bytes, bytearray(b"a[b]=c"))) == {"a": {"b": "c"}}


def test_numeric_keys_stay_strings() -> None:
    decoded = decode_form(b"data[BOT][567][BOT_ID]=567&data[COMMAND][0][COMMAND]=echo")
    bots = decoded["data"]["BOT"]
    assert list(bots) == ["567"]
    assert 567 not in bots
    assert bots["567"]["BOT_ID"] == "567"
    assert list(decoded["data"]["COMMAND"]) == ["0"]


def test_many_appends_are_numbered_in_order() -> None:
    body = b"&".join(b"x[]=%d" % i for i in range(wire.DEFAULT_MAX_FIELDS))
    decoded = decode_form(body)
    assert list(decoded["x"].items()) == [(str(i), str(i)) for i in range(1000)]


def test_decode_form_rejects_text() -> None:
    error = _error(decode_form, cast(Any, "a=1"))
    assert error.code == "bad_body"


# --------------------------------------------------------------------------- form limits


@pytest.mark.parametrize("max_depth", [1, 2, 3, wire.DEFAULT_MAX_DEPTH])
def test_depth_limit_is_exact(max_depth: int) -> None:
    name = "a" + "[x]" * (max_depth - 1)
    decoded = decode_form(f"{name}=v".encode(), max_depth=max_depth)
    node: Any = decoded["a"]
    for _ in range(max_depth - 1):
        node = node["x"]
    assert node == "v"
    assert _error(decode_form, f"{name}[x]=v".encode(), max_depth=max_depth).code == "too_deep"
    # Appends are levels too.
    appended = "a" + "[]" * (max_depth - 1)
    assert decode_form(f"{appended}=v".encode(), max_depth=max_depth)
    assert _error(decode_form, f"{appended}[]=v".encode(), max_depth=max_depth).code == "too_deep"


def test_default_depth_limit() -> None:
    depth = wire.DEFAULT_MAX_DEPTH
    assert decode_form(("a" + "[b]" * (depth - 1) + "=1").encode())
    error = _error(decode_form, ("a" + "[b]" * depth + "=1").encode())
    assert error.code == "too_deep"


def test_depth_counts_only_real_indices() -> None:
    # An unmatched trailing '[' and text after the last ']' are not levels.
    assert decode_form(b"a[x][y=1", max_depth=2) == {"a": {"x": "1"}}
    assert decode_form(b"a[x]junk=1", max_depth=2) == {"a": {"x": "1"}}
    assert decode_form(b"a[b=1", max_depth=1) == {"a_b": "1"}


def test_too_deep_field_anywhere_rejects_the_body() -> None:
    body = b"ok=1&" + b"a" + b"[x]" * 20 + b"=1"
    assert _error(decode_form, body).code == "too_deep"


@pytest.mark.parametrize("max_fields", [1, 2, 10, wire.DEFAULT_MAX_FIELDS])
def test_field_limit_is_exact(max_fields: int) -> None:
    pieces = [b"f%d=v" % i for i in range(max_fields)]
    decoded = decode_form(b"&".join(pieces), max_fields=max_fields)
    assert len(decoded) == max_fields
    assert decoded[f"f{max_fields - 1}"] == "v"
    more = b"&".join([*pieces, b"extra=1"])
    assert _error(decode_form, more, max_fields=max_fields).code == "too_many_fields"


def test_empty_pieces_are_not_fields() -> None:
    assert decode_form(b"&&a=1&&&", max_fields=1) == {"a": "1"}
    assert _error(decode_form, b"a=1&&b=2", max_fields=1).code == "too_many_fields"


def test_default_field_limit() -> None:
    fields = wire.DEFAULT_MAX_FIELDS
    assert len(decode_form(b"&".join(b"x[]=1" for _ in range(fields)))["x"]) == fields
    error = _error(decode_form, b"&".join(b"x[]=1" for _ in range(fields + 1)))
    assert error.code == "too_many_fields"


BAD_ESCAPES = [b"%", b"%4", b"%zz", b"%g0", b"%4g", b"%%41", b"a%", b"%-1", b"% 1", b"%\xff\xff"]


@pytest.mark.parametrize("escape", BAD_ESCAPES, ids=[e.decode("latin-1") for e in BAD_ESCAPES])
@pytest.mark.parametrize("template", [b"ok=1&%s=v", b"k=%s", b"a[%s]=v", b"a=1&b=x%sy&c=2", b"%s"])
def test_broken_percent_encoding(template: bytes, escape: bytes) -> None:
    error = _error(decode_form, template % escape)
    assert error.code == "bad_percent_encoding"


INVALID_UTF8 = [
    b"%FF",
    b"\xff",
    b"\xc3",
    b"%C3",
    b"x%C3",
    b"%C3%28",
    b"%C0%AF",  # overlong '/'
    b"%ED%A0%80",  # an encoded UTF-16 surrogate
    b"%F4%90%80%80",  # above U+10FFFF
    b"%F0%9F%98",  # a truncated emoji
]


@pytest.mark.parametrize("bad", INVALID_UTF8, ids=[b.decode("latin-1") for b in INVALID_UTF8])
@pytest.mark.parametrize("template", [b"k=%s", b"%s=v", b"a[%s]=v", b"ok=1&%s"])
def test_invalid_utf8(template: bytes, bad: bytes) -> None:
    assert _error(decode_form, template % bad).code == "invalid_utf8"


# --------------------------------------------------------------------------- JSON


def test_decode_json_object_keeps_types() -> None:
    body = (
        b'{"event": "ONIMBOTMESSAGEADD", "data": {"BOT": {"567": {"BOT_ID": 567}}, '
        b'"PARAMS": {"MESSAGE": "\\u041f\\u0440\\u0438\\u0432\\u0435\\u0442 \\ud83d\\ude01", '
        b'"FLOAT": 2.5, "LIST": [1, "2", null], "YES": true, "NO": false, "NONE": null, '
        b'"EMPTY": {}, "BIG": 123456789012345678901234567890}}, "ts": 1551978226}'
    )
    decoded = decode_json(body)
    assert decoded == {
        "event": "ONIMBOTMESSAGEADD",
        "data": {
            "BOT": {"567": {"BOT_ID": 567}},
            "PARAMS": {
                "MESSAGE": "Привет 😁",
                "FLOAT": 2.5,
                "LIST": [1, "2", None],
                "YES": True,
                "NO": False,
                "NONE": None,
                "EMPTY": {},
                "BIG": 123456789012345678901234567890,
            },
        },
        "ts": 1551978226,
    }
    params = decoded["data"]["PARAMS"]
    assert type(decoded["ts"]) is int
    assert type(params["FLOAT"]) is float
    assert type(params["YES"]) is bool
    assert type(decoded["data"]["BOT"]["567"]["BOT_ID"]) is int


def test_decode_json_raw_utf8_and_bytearray() -> None:
    assert decode_json('{"m": "Привет"}'.encode()) == {"m": "Привет"}
    assert decode_json(cast(bytes, bytearray(b'{"a": 1}'))) == {"a": 1}
    assert decode_json(b"  {}  ") == {}


@pytest.mark.parametrize(
    "body",
    [
        b"[]",
        b"[1, 2]",
        b'"string"',
        b"1",
        b"null",
        b"true",
        b"",
        b"   ",
        b"{",
        b'{"a": 1,}',
        b"{'a': 1}",
        b'{"a": 1} x',
        b'{"a" 1}',
        b"\xef\xbb\xbf{}",  # a BOM
        b'{"a": NaN}',
        b'{"a": Infinity}',
        b'{"a": -Infinity}',
        b"NaN",
        b'{"a": 1e400}',
        b'{"a": -1e400}',
        b'{"a": ' + b"1" * 5000 + b"}",  # longer than Python converts to int
        b'{"a": "\\ud800"}',  # an unpaired surrogate escape (PHP refuses it too)
        b'{"\\udc00": 1}',
        b'{"a": ["x\\ude01y"]}',
    ],
)
def test_decode_json_bad_json(body: bytes) -> None:
    assert _error(decode_json, body).code == "bad_json"


@pytest.mark.parametrize(
    "body", [b'{"a": "\xff"}', b'{"a": "\xc3"}', b"\xff", b'{"\xed\xa0\x80": 1}']
)
def test_decode_json_invalid_utf8(body: bytes) -> None:
    assert _error(decode_json, body).code == "invalid_utf8"


def test_decode_json_rejects_text() -> None:
    assert _error(decode_json, cast(Any, "{}")).code == "bad_body"


def _nested_json(levels: int) -> bytes:
    """An object ``levels`` deep: {"a": {"a": ... {"a": 1}}}."""
    return b'{"a": ' * levels + b"1" + b"}" * levels


@pytest.mark.parametrize("max_depth", [1, 2, 5, wire.DEFAULT_MAX_DEPTH])
def test_decode_json_depth_limit_is_exact(max_depth: int) -> None:
    decoded = decode_json(_nested_json(max_depth), max_depth=max_depth)
    node: Any = decoded
    for _ in range(max_depth):
        node = node["a"]
    assert node == 1
    assert _error(decode_json, _nested_json(max_depth + 1), max_depth=max_depth).code == "too_deep"


def test_decode_json_arrays_are_levels() -> None:
    assert decode_json(b'{"a": [[1]]}', max_depth=3) == {"a": [[1]]}
    assert _error(decode_json, b'{"a": [[1]]}', max_depth=2).code == "too_deep"
    assert _error(decode_json, b'{"a": [[]]}', max_depth=2).code == "too_deep"


def test_decode_json_brackets_inside_strings_are_not_levels() -> None:
    text = "[{" * 500 + '\\"' + "}]" * 500
    decoded = decode_json(f'{{"a": "{text}", "b": {{"c": "]]}}"}}}}'.encode(), max_depth=2)
    assert decoded == {"a": text.replace('\\"', '"'), "b": {"c": "]]}"}}


@pytest.mark.parametrize(
    "body",
    [
        b"[" * 100_000,
        b"[" * 100_000 + b"]" * 100_000,
        b'{"a": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
        b"{" * 100_000,
        b'{"a":' * 100_000 + b"1" + b"}" * 100_000,
    ],
    ids=["open", "balanced", "in-object", "braces", "objects"],
)
def test_decode_json_pathological_depth(body: bytes) -> None:
    assert _error(decode_json, body).code == "too_deep"


def test_decode_json_deep_document_with_a_huge_limit_is_still_a_wire_error() -> None:
    # Past the limit check, the parser's own recursion limit must surface as bad_json.
    body = b'{"a": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    assert _error(decode_json, body, max_depth=10**7).code == "bad_json"


def test_decode_json_field_limit_is_exact() -> None:
    body = b'{"a": [1, 2, {"b": "3"}], "c": null, "d": {}, "e": []}'
    # Every value counts, containers too: a, 1, 2, {"b"}, "3", null, {}, [].
    assert decode_json(body, max_fields=8)["a"][2] == {"b": "3"}
    assert _error(decode_json, body, max_fields=7).code == "too_many_fields"
    leaves = b"{" + b", ".join(b'"k%d": %d' % (i, i) for i in range(1000)) + b"}"
    assert len(decode_json(leaves)) == wire.DEFAULT_MAX_FIELDS
    more = leaves[:-1] + b', "extra": 0}'
    assert _error(decode_json, more).code == "too_many_fields"


# --------------------------------------------------------------------------- encoder


ENCODE_CASES: list[tuple[str, dict[Any, Any], str]] = [
    (
        "message",
        {"data": {"PARAMS": {"MESSAGE": "Hi there~!"}}},
        "data%5BPARAMS%5D%5BMESSAGE%5D=Hi+there%7E%21",
    ),
    (
        "bitrix-event",
        {
            "event": "ONIMBOTMESSAGEADD",
            "data": {"BOT": {"567": {"BOT_ID": 567}}, "PARAMS": {"MESSAGE": "+7 (999)"}},
            "ts": 1551978226,
        },
        "event=ONIMBOTMESSAGEADD&data%5BBOT%5D%5B567%5D%5BBOT_ID%5D=567"
        "&data%5BPARAMS%5D%5BMESSAGE%5D=%2B7+%28999%29&ts=1551978226",
    ),
    ("unreserved", {"k": "AZaz09-_.~ !*'()"}, "k=AZaz09-_.%7E+%21%2A%27%28%29"),
    (
        "reserved",
        {"q": 'a&b=c/d?e#f%g+h;i,j:k@l$m[n]o"p<q>r\\s`t^u|v{w}x'},
        "q=a%26b%3Dc%2Fd%3Fe%23f%25g%2Bh%3Bi%2Cj%3Ak%40l%24m%5Bn%5Do%22p%3Cq%3Er%5Cs%60t%5Eu"
        "%7Cv%7Bw%7Dx",
    ),
    ("controls", {"c": "\x00\t\n\r\x7f"}, "c=%00%09%0A%0D%7F"),
    ("key-escaped", {"a&b=c": "x", "a b.c": {"d e": "y"}}, "a%26b%3Dc=x&a+b.c%5Bd+e%5D=y"),
    (
        "utf8",
        {"a b.c": {"d e": "Привет 😀"}},
        "a+b.c%5Bd+e%5D=%D0%9F%D1%80%D0%B8%D0%B2%D0%B5%D1%82+%F0%9F%98%80",
    ),
    (
        "dropped",
        {"a": None, "b": {}, "c": [], "d": {"e": None, "f": {}}, "g": "1", "h": [None]},
        "g=1",
    ),
    ("empty", {}, ""),
    ("empty-string-kept", {"a": "", "b": {"c": ""}}, "a=&b%5Bc%5D="),
    ("list", {"m": [1, "two", [3]]}, "m%5B0%5D=1&m%5B1%5D=two&m%5B2%5D%5B0%5D=3"),
    ("list-keeps-indexes", {"m": [None, "x", {}, "y"]}, "m%5B1%5D=x&m%5B3%5D=y"),
    ("tuple", {"t": ("a", "b")}, "t%5B0%5D=a&t%5B1%5D=b"),
    ("bools", {"h": True, "i": False, "j": [True]}, "h=1&i=0&j%5B0%5D=1"),
    (
        "ints",
        {"n": 5, "neg": -7, "zero": 0, "big": PHP_INT_MAX},
        f"n=5&neg=-7&zero=0&big={LONG_MAX}",
    ),
    ("int-keys", {5: "five", "x": {0: "a", 10: "b"}}, "5=five&x%5B0%5D=a&x%5B10%5D=b"),
    (
        # (string)$float in PHP 8: 14 significant digits, PHP's exponent form, "+" escaped.
        "floats",
        {
            "a": 0.1,
            "b": 1 / 3,
            "c": 1e20,
            "d": 1.0,
            "e": -0.0,
            "f": 1e-7,
            "g": 123456789012345678.0,
            "h": 2.5,
            "i": 1e14,
            "j": 0.0001,
            "k": 10000000000000.0,
            "l": -1.5e-5,
        },
        "a=0.1&b=0.33333333333333&c=1.0E%2B20&d=1&e=-0&f=1.0E-7&g=1.2345678901235E%2B17&h=2.5"
        "&i=1.0E%2B14&j=0.0001&k=10000000000000&l=-1.5E-5",
    ),
    (
        "non-finite",
        {"x": float("nan"), "y": float("inf"), "z": float("-inf")},
        "x=NAN&y=INF&z=-INF",
    ),
]


@pytest.mark.parametrize(
    ("data", "expected"), [c[1:] for c in ENCODE_CASES], ids=[c[0] for c in ENCODE_CASES]
)
def test_encode_form(data: dict[Any, Any], expected: str) -> None:
    assert encode_form(data) == expected


def test_php_urlencode_every_ascii_character() -> None:
    for code in range(128):
        char = chr(code)
        if char.isascii() and (char.isalnum() or char in "-_."):
            expected = char
        elif char == " ":
            expected = "+"
        else:
            expected = f"%{code:02X}"
        assert php_urlencode(char) == expected, repr(char)


def test_php_urlencode_multibyte() -> None:
    assert php_urlencode("é") == "%C3%A9"
    assert php_urlencode("~") == "%7E"
    assert php_urlencode("\U0001f601") == "%F0%9F%98%81"
    assert php_urlencode("") == ""


def test_encode_then_decode_bitrix_event() -> None:
    event = {
        "event": "ONIMCOMMANDADD",
        "data": {
            "COMMAND": {"103": {"COMMAND": "echo", "COMMAND_PARAMS": "a+b & c=d"}},
            "PARAMS": {"MESSAGE": "/echo a+b & c=d", "TO_CHAT_ID": 7},
        },
        "auth": {"scope": "imbot,im", "expires_in": 3600},
    }
    assert decode_form(encode_form(event).encode("ascii")) == {
        "event": "ONIMCOMMANDADD",
        "data": {
            "COMMAND": {"103": {"COMMAND": "echo", "COMMAND_PARAMS": "a+b & c=d"}},
            "PARAMS": {"MESSAGE": "/echo a+b & c=d", "TO_CHAT_ID": "7"},
        },
        "auth": {"scope": "imbot,im", "expires_in": "3600"},
    }


# --------------------------------------------------------------------------- a model of PHP

_C_ISSPACE = " \t\n\v\f\r"


class _PhpArray:
    """A PHP array: keys as ``zend_symtable`` stores them (int or str) and nNextFreeElement."""

    def __init__(self) -> None:
        self.table: dict[int | str, Any] = {}
        self.next_free = PHP_INT_MIN


def _zend_key(key: str) -> int | str:
    """``ZEND_HANDLE_NUMERIC_STR``: a decimal without leading zeros, in range, is an int."""
    digits = key[1:] if key.startswith("-") else key
    if not digits or any(not "0" <= ch <= "9" for ch in digits):
        return key
    if digits[0] == "0" and len(key) > 1:  # leading zero, or "-0"
        return key
    if len(digits) > 19:  # MAX_LENGTH_OF_LONG - 1
        return key
    number = int(key)
    return number if PHP_INT_MIN <= number <= PHP_INT_MAX else key


def _php_note_int(array: _PhpArray, key: int | str) -> None:
    if isinstance(key, int) and key >= array.next_free:
        array.next_free = key + 1 if key < PHP_INT_MAX else PHP_INT_MAX


def _php_update(array: _PhpArray, key: str, value: Any) -> None:
    """``zend_symtable_str_update``."""
    stored = _zend_key(key)
    array.table[stored] = value
    _php_note_int(array, stored)


def _php_next_index_insert(array: _PhpArray, value: Any) -> bool:
    """``zend_hash_next_index_insert``: False when the next key is already taken."""
    key = 0 if array.next_free == PHP_INT_MIN else array.next_free
    if key in array.table:
        return False
    array.table[key] = value
    _php_note_int(array, key)
    return True


def _php_register_variable(name: str, value: str, track: _PhpArray) -> None:
    """``php_register_variable_ex`` (PHP 8), on a C string: the name ends at its first NUL."""
    var = [*name, "\0"]

    def cstr(at: int) -> str:
        return "".join(var[at : var.index("\0", at)])

    start = 0
    while var[start] == " ":  # ignore leading spaces in the variable name
        start += 1
    p = start
    ip = -1
    is_array = False
    while var[p] != "\0":
        if var[p] in " .":
            var[p] = "_"
        elif var[p] == "[":
            is_array = True
            ip = p
            var[p] = "\0"
            break
        p += 1
    if p == start:  # empty variable name
        return
    symtable = track
    index: int | None = start
    if is_array:
        while True:
            ip += 1
            index_s: int | None = ip
            if var[ip] in _C_ISSPACE:  # isspace(*ip): one character is skipped
                ip += 1
            if var[ip] == "]":
                index_s = None
            else:
                end = var.index("\0", ip)
                close = next((q for q in range(ip, end) if var[q] == "]"), None)
                if close is None:
                    # not an index; un-terminate the var name
                    assert index_s is not None
                    var[index_s - 1] = "_"
                    q = index_s
                    while var[q] != "\0":
                        if var[q] in " .[":
                            var[q] = "_"
                        q += 1
                    break  # goto plain_var
                var[close] = "\0"
                ip = close
            if index is None:
                child = _PhpArray()
                if not _php_next_index_insert(symtable, child):
                    return
            else:
                found = symtable.table.get(_zend_key(cstr(index)))
                if isinstance(found, _PhpArray):
                    child = found
                else:
                    child = _PhpArray()
                    _php_update(symtable, cstr(index), child)
            symtable = child
            index = index_s
            ip += 1
            if var[ip] == "[":
                var[ip] = "\0"
                continue
            break
    if index is None:
        _php_next_index_insert(symtable, value)
    else:
        _php_update(symtable, cstr(index), value)


_BAD_ESCAPE = re.compile(rb"%(?![0-9A-Fa-f]{2})")


def _php_parse_str(body: bytes) -> dict[str, Any] | str:
    """``parse_str`` on a body, or the WireError code ``decode_form`` must raise for it."""

    track = _PhpArray()
    for piece in body.split(b"&"):
        if not piece:
            continue
        raw_name, sep, raw_value = piece.partition(b"=")
        decoded: list[str] = []
        for raw in (raw_name, raw_value) if sep else (raw_name,):
            if _BAD_ESCAPE.search(raw):
                return "bad_percent_encoding"
            try:
                decoded.append(unquote_to_bytes(raw.replace(b"+", b" ")).decode("utf-8"))
            except UnicodeDecodeError:
                return "invalid_utf8"
        if sep and "\x00" in decoded[1]:
            return "nul_character"  # where decode_form deliberately departs from PHP
        _php_register_variable(decoded[0], decoded[1] if sep else "", track)

    def plain(array: _PhpArray) -> dict[str, Any]:
        return {
            str(key): plain(child) if isinstance(child, _PhpArray) else child
            for key, child in array.table.items()
        }

    return plain(track)


def test_the_php_model_agrees_with_the_hand_checked_cases() -> None:
    # The model is what the properties below compare with: it must be right first.
    for _, body, expected in FORM_CASES:
        assert _ordered(_php_parse_str(body)) == _ordered(expected), body


# --------------------------------------------------------------------------- properties

_FORM_TOKENS = [
    b"[", b"]", b"[]", b"[ ]", b"%5B", b"%5D", b"=", b"&", b"+", b" ", b".", b"a", b"Z", b"0",
    b"9", b"5", b"-", b"-0", b"007", b"-3", LONG_MAX.encode(), b"9223372036854775808",
    b"%", b"%4", b"%zz", b"%41", b"%2B", b"%20", b"%2E", b"%00", b"%09", b"%0B", b"%3D",
    b"%26", b"\xff", b"\xc3", b"\xc3\xa9", b"%C3", b"%C3%A9", b"%D0%9F", b"%F0%9F%98%81",
]  # fmt: skip
_FORM_BODIES = st.lists(st.sampled_from(_FORM_TOKENS), max_size=40).map(b"".join)
_SMALL_ALPHABET = st.lists(st.sampled_from(list(b"[]%=&+aZ09\xff\xc3 ")), max_size=60).map(bytes)
_JSON_TOKENS = [
    b"{", b"}", b"[", b"]", b'"', b":", b",", b" ", b"1", b"-", b".", b"e", b"a", b"\\",
    b"\\u", b"d800", b"true", b"null", b"NaN", b"1e400", b'"k"', b'"v"', b"\xff", b"\xc3",
]  # fmt: skip
_JSON_BODIES = st.lists(st.sampled_from(_JSON_TOKENS), max_size=40).map(b"".join)
_LIMITS = st.fixed_dictionaries({"max_fields": st.integers(1, 5), "max_depth": st.integers(1, 4)})
_FAST = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _total(decode: Any, body: bytes, **limits: int) -> None:
    """``decode`` returns a dict or raises WireError; nothing else."""
    try:
        decoded = decode(body, **limits)
    except WireError as error:
        assert error.code in {
            "bad_percent_encoding",
            "invalid_utf8",
            "too_many_fields",
            "too_deep",
            "bad_json",
            "nul_character",
        }
        assert error.message
        return
    assert isinstance(decoded, dict)
    if decode is decode_form:
        _assert_string_tree(decoded)
    else:
        assert json.loads(json.dumps(decoded)) == decoded  # plain JSON data, encodable
        json.dumps(decoded, ensure_ascii=False).encode("utf-8")


@_FAST
@given(body=st.binary(max_size=200))
def test_decode_form_is_total_on_bytes(body: bytes) -> None:
    _total(decode_form, body)


@_FAST
@given(body=_SMALL_ALPHABET, limits=_LIMITS)
def test_decode_form_is_total_on_small_alphabet(body: bytes, limits: dict[str, int]) -> None:
    _total(decode_form, body)
    _total(decode_form, body, **limits)


@_FAST
@given(body=st.binary(max_size=200))
def test_decode_json_is_total_on_bytes(body: bytes) -> None:
    _total(decode_json, body)


@_FAST
@given(body=st.one_of(_JSON_BODIES, _SMALL_ALPHABET), limits=_LIMITS)
def test_decode_json_is_total_on_json_like_bytes(body: bytes, limits: dict[str, int]) -> None:
    _total(decode_json, body)
    _total(decode_json, body, **limits)


@settings(max_examples=600, deadline=None)
@given(body=st.one_of(_FORM_BODIES, _SMALL_ALPHABET))
def test_decode_form_matches_the_php_model(body: bytes) -> None:
    expected = _php_parse_str(body)
    if isinstance(expected, str):
        assert _error(decode_form, body, max_fields=BIG, max_depth=BIG).code == expected
    else:
        decoded = decode_form(body, max_fields=BIG, max_depth=BIG)
        assert _ordered(decoded) == _ordered(expected)


# Keys PHP itself round-trips through http_build_query + parse_str: not empty, no brackets, no
# NUL (a name ends there), and no single whitespace character as a nested key ("[ ]" appends).
# A top-level name also loses leading spaces and has spaces and dots turned into "_".
_NESTED_KEYS = st.text(min_size=1, max_size=8).filter(
    lambda key: not set(key) & set("[]\x00") and key not in set(_C_ISSPACE)
)
_TOP_KEYS = st.text(min_size=1, max_size=8).filter(lambda key: not set(key) & set("[]\x00 ."))
# NUL is refused in values (no database column holds it), so documents carry none.
_LEAVES = st.one_of(
    st.text(max_size=12).filter(lambda text: "\x00" not in text),
    st.none(),
    st.booleans(),
    st.integers(),
)


def _values(depth: int) -> st.SearchStrategy[Any]:
    if depth == 0:
        return _LEAVES
    child = _values(depth - 1)
    return st.one_of(
        _LEAVES,
        st.dictionaries(_NESTED_KEYS, child, max_size=3),
        st.lists(child, max_size=3),
    )


# Five levels at most (the top-level key plus four), at most 4 * 3**4 leaves: inside the limits.
_DOCUMENTS = st.dictionaries(_TOP_KEYS, _values(4), max_size=4)
assert wire.DEFAULT_MAX_DEPTH >= 5
assert wire.DEFAULT_MAX_FIELDS >= 4 * 3**4


def _normalise(value: Any) -> Any:
    """What parse_str gives back for what http_build_query wrote: strings, lists as dicts."""
    if isinstance(value, dict | list):
        items = value.items() if isinstance(value, dict) else enumerate(value)
        out = {}
        for key, child in items:
            normal = _normalise(child)
            if normal is not None and normal != {}:
                out[str(key)] = normal
        return out
    if value is None:
        return None
    if isinstance(value, bool):
        return "1" if value else "0"
    return str(value)


@settings(max_examples=400, deadline=None)
@given(document=_DOCUMENTS)
def test_encode_decode_round_trip(document: dict[str, Any]) -> None:
    body = encode_form(document)
    assert body.isascii()
    decoded = decode_form(body.encode("ascii"))
    expected = _normalise(document)
    assert decoded == expected
    assert _ordered(decoded) == _ordered(expected)


def test_round_trip_at_the_limits() -> None:
    depth = wire.DEFAULT_MAX_DEPTH
    deep: Any = "bottom"
    for level in range(depth - 1):
        deep = {f"k{level}": deep}
    wide = {f"f{i}": f"v{i}" for i in range(wire.DEFAULT_MAX_FIELDS - 1)}
    document = {"deep": deep, **wide}
    assert decode_form(encode_form(document).encode()) == document


# --------------------------------------------------------------------------- the corpus


def _one(corpus_dir: Path, prefix: str) -> bytes:
    matches = sorted(corpus_dir.glob(f"{prefix}_*.form"))
    if not matches:
        pytest.skip(f"no {prefix}_*.form in the corpus")
    return matches[0].read_bytes()


def test_corpus_crm_contact_add(corpus_dir: Path) -> None:
    decoded = decode_form(_one(corpus_dir, "085"))
    assert decoded["event"] == "ONCRMCONTACTADD"
    assert decoded["event_handler_id"] == "58"
    assert decoded["data"] == {"FIELDS": {"ID": "134806"}}
    assert decoded["auth"]["scope"] == "crm,placement,user_brief"
    assert decoded["auth"]["server_endpoint"] == "https://oauth.bitrix.info/rest/"
    assert decoded["auth"]["user_id"] == "1"
    assert list(decoded) == ["event", "event_handler_id", "data", "ts", "auth"]
    _assert_string_tree(decoded)


def test_corpus_phone_number_keeps_its_plus(corpus_dir: Path) -> None:
    decoded = decode_form(_one(corpus_dir, "002"))
    assert decoded["event"] == "ONIMBOTMESSAGEADD"
    assert decoded["data"]["PARAMS"]["MESSAGE"] == "+79880016681"
    assert decoded["data"]["PARAMS"]["MESSAGE_ORIGINAL"] == "+79880016681"
    assert list(decoded["data"]["BOT"]) == ["22"]
    assert decoded["data"]["BOT"]["22"]["AUTH"]["domain"] == "b24-9bd55y.bitrix24.ru"
    assert decoded["data"]["USER"]["NAME"] == "Гость"
    assert decoded["data"]["USER"]["LAST_NAME"] == ""
    assert decoded["auth"]["scope"] == "imbot,imopenlines"


def test_corpus_curl_raw_utf8(corpus_dir: Path) -> None:
    decoded = decode_form(_one(corpus_dir, "022"))
    assert decoded["data"]["PARAMS"]["MESSAGE"] == "Привет"
    assert decoded["data"]["PARAMS"]["DIALOG_ID"] == "405"


def test_corpus_emoji(corpus_dir: Path) -> None:
    decoded = decode_form(_one(corpus_dir, "015"))
    assert decoded["data"]["PARAMS"]["MESSAGE"] == "\U0001f601"
    assert decoded["data"]["PARAMS"]["PARAMS"]["LARGE_FONT"] == "Y"


def _manifest_formats(corpus_dir: Path) -> dict[str, str]:
    manifest = corpus_dir / "MANIFEST.md"
    if not manifest.is_file():
        return {}
    rows = re.findall(r"^\| \d+ \| `([^`]+)` \| [^|]+ \| ([^|]+) \|", manifest.read_text(), re.M)
    return {name: fmt.strip() for name, fmt in rows}


def test_corpus_forms_decode_and_http_build_query_ones_re_encode_exactly(
    corpus_dir: Path,
) -> None:
    formats = _manifest_formats(corpus_dir)
    forms = sorted(corpus_dir.glob("*.form"))
    assert forms
    re_encoded = 0
    for path in forms:
        body = path.read_bytes()
        decoded = decode_form(body)
        _assert_string_tree(decoded)
        assert decoded, path.name
        # Bodies written by http_build_query (the converted dumps, and the genuine wire
        # capture #085) come back byte for byte: same order, same escapes, empty values kept.
        fmt = formats.get(path.name, "")
        if fmt.startswith(("print_r-converted", "php-array-converted")) or path.name.startswith(
            "085_"
        ):
            assert encode_form(decoded).encode() == body, path.name
            re_encoded += 1
    if formats:
        assert re_encoded >= 20


def test_corpus_json_decodes(corpus_dir: Path) -> None:
    documents = sorted(corpus_dir.glob("*.json"))
    assert documents
    for path in documents:
        decoded = decode_json(path.read_bytes())
        assert decoded, path.name


# --------------------------------------------------------------------------- real PHP, if any

_PHP = shutil.which("php")
# CI (.ci/run) installs php-cli and sets IMBOT_REQUIRE_PHP=1: there a missing PHP fails the
# comparison tests instead of skipping them.
needs_php = pytest.mark.skipif(
    _PHP is None and not os.environ.get("IMBOT_REQUIRE_PHP"), reason="no php binary on the PATH"
)

_PHP_PARSE_STR = r"""
function tree($v) {
    if (!is_array($v)) { return base64_encode($v); }
    $out = [];
    foreach ($v as $k => $x) { $out[] = [base64_encode((string) $k), tree($x)]; }
    return $out;
}
$out = [];
foreach (json_decode(stream_get_contents(STDIN)) as $body) {
    parse_str(base64_decode($body), $result);
    $out[] = tree($result);
}
echo json_encode($out);
"""

_PHP_BUILD_QUERY = r"""
$out = [];
foreach (json_decode(stream_get_contents(STDIN), true) as $data) {
    $out[] = http_build_query($data);
}
echo json_encode($out);
"""


def _run_php(script: str, payload: Any) -> Any:
    assert _PHP is not None
    completed = subprocess.run(  # noqa: S603 - a fixed script, our own input
        [_PHP, "-d", "max_input_vars=100000", "-d", "max_input_nesting_level=1000", "-r", script],
        input=json.dumps(payload),
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    return json.loads(completed.stdout)


def _php_trees(bodies: list[bytes]) -> list[Any]:
    return _run_php(_PHP_PARSE_STR, [base64.b64encode(body).decode() for body in bodies])


def _as_php_tree(value: Any) -> Any:
    if isinstance(value, dict):
        return [[base64.b64encode(k.encode()).decode(), _as_php_tree(v)] for k, v in value.items()]
    return base64.b64encode(value.encode()).decode()


@needs_php
def test_php_parse_str_agrees_with_the_hand_checked_cases() -> None:
    trees = _php_trees([body for _, body, _ in FORM_CASES])
    for (case, _, expected), tree in zip(FORM_CASES, trees, strict=True):
        assert tree == _as_php_tree(expected), case


@needs_php
def test_php_parse_str_agrees_on_generated_bodies() -> None:
    generator = random.Random(20240601)
    tokens = [token for token in _FORM_TOKENS if isinstance(_php_parse_str(b"k=" + token), dict)]
    bodies = []
    for _ in range(3000):
        body = b"".join(generator.choice(tokens) for _ in range(generator.randint(1, 30)))
        try:
            decode_form(body, max_fields=BIG, max_depth=BIG)
        except WireError:
            continue  # PHP tolerates what we refuse
        bodies.append(body)
    assert len(bodies) > 2000
    for body, tree in zip(bodies, _php_trees(bodies), strict=True):
        assert _as_php_tree(decode_form(body, max_fields=BIG, max_depth=BIG)) == tree, body


@needs_php
def test_php_parse_str_agrees_on_the_corpus(corpus_dir: Path) -> None:
    bodies = [path.read_bytes() for path in sorted(corpus_dir.glob("*.form"))]
    for body, tree in zip(bodies, _php_trees(bodies), strict=True):
        assert _as_php_tree(decode_form(body)) == tree


@needs_php
def test_php_http_build_query_agrees_with_the_encoder_cases() -> None:
    # JSON carries every case but NaN/INF; lists and int keys reach PHP as arrays either way.
    cases = [
        (case, data, expected)
        for case, data, expected in ENCODE_CASES
        if all(not isinstance(v, float) or math.isfinite(v) for v in data.values())
    ]
    built = _run_php(_PHP_BUILD_QUERY, [data for _, data, _ in cases])
    for (case, _, expected), query in zip(cases, built, strict=True):
        assert query == expected, case


@pytest.mark.parametrize(
    ("decode", "body"),
    [
        (decode_form, b"a=x%00y"),
        (decode_form, b"data[PARAMS][MESSAGE]=%00"),
        (decode_json, b'{"a": "x\\u0000y"}'),
        (decode_json, b'{"a\\u0000": "x"}'),
    ],
)
def test_nul_characters_are_refused(decode: Any, body: bytes) -> None:
    """PHP would keep them; PostgreSQL text and jsonb columns cannot hold them."""
    error = _error(decode, body)
    assert error.code == "nul_character"
    assert "NUL" in error.message
