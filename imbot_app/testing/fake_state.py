"""The fake Bitrix24's state: what it records, the tokens it issued, each portal's rows.

Shared by :mod:`imbot_app.testing.fake` and the mixins that answer its methods.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import ThreadingHTTPServer
from typing import Any

Answer = tuple[int, dict[str, Any]]


@dataclass(frozen=True)
class RecordedCall:
    """One request: the REST method (``oauth/token`` for refreshes) and its parameters."""

    method: str
    params: dict[str, Any]
    token: str | None
    in_batch: bool = False
    # Made through an inbound webhook URL (``/rest/<user id>/<code>/<method>``), not a token.
    webhook: bool = False


@dataclass
class FakeToken:
    member_id: str
    user_id: int
    client_id: str
    refresh_token: str
    expired: bool = False
    webhook: bool = False  # an inbound-webhook caller (v2 methods then need a botToken)


@dataclass
class FakePortal:
    member_id: str
    domain: str
    bots: dict[int, dict[str, Any]] = field(default_factory=dict)
    commands: dict[int, dict[str, Any]] = field(default_factory=dict)
    messages: dict[int, dict[str, Any]] = field(default_factory=dict)
    # event.bind: (EVENT, handler URL) pairs, in the order they were bound.
    bindings: list[tuple[str, str]] = field(default_factory=list)
    bucket_tat: float = 0.0


@dataclass
class Fault:
    """An error a method answers, for one portal or all, ``count`` more times."""

    method: str
    member_id: str | None
    count: int
    answer: Answer


class FakeShared:
    """The state FakeBitrix24 sets up in ``__init__``, declared once for the mixins that use it.

    Why: the OAuth, fault and method mixins each read and write this state; declaring it here
    lets mypy check them without every mixin repeating the list.
    """

    calls: list[RecordedCall]
    installs: dict[str, dict[str, Any]]
    client_id: str
    client_secret: str
    _tokens: dict[str, FakeToken]
    _refresh: dict[str, str]
    _portals: dict[str, FakePortal]
    _ids: Iterator[int]
    _faults: list[Answer]
    _method_faults: list[Fault]
    _throttled: int
    _rate: tuple[float, int] | None
    _lock: threading.RLock


class QueuedServer(ThreadingHTTPServer):
    # Many callers connect at once in the race tests; the default backlog of 5 drops some.
    request_queue_size = 128


def by_id(rows: dict[int, dict[str, Any]], p: dict[str, Any], key: str) -> dict[str, Any] | None:
    """The bot, command or message a call names by ``key`` (BOT_ID ...), if the portal has it."""
    try:
        return rows.get(int(p.get(key, 0)))
    except (TypeError, ValueError):
        return None


def delete_by_id(
    rows: dict[int, dict[str, Any]], p: dict[str, Any], key: str, error: str, description: str
) -> Answer:
    """Delete the row a call names by ``key``, or answer Bitrix24's error when there is none.

    One body for the ``*.unregister``/``*.delete`` methods that differ only in the table and error.
    """
    row = by_id(rows, p, key)
    if row is None:
        return error_answer(400, error, description)
    del rows[row["ID"]]
    return 200, {"result": True}


def update_by_id(
    rows: dict[int, dict[str, Any]],
    p: dict[str, Any],
    key: str,
    error: str,
    description: str,
    apply: Callable[[dict[str, Any], dict[str, Any]], None],
) -> Answer:
    """Apply a call's ``FIELDS`` to the row it names by ``key``, as the ``*.update`` methods do.

    The lookup and the two errors (no such row, no fields) are the same for bots and commands;
    only ``apply`` (which fields may change) differs.
    """
    row = by_id(rows, p, key)
    if row is None:
        return error_answer(400, error, description)
    fields = p.get("FIELDS")
    if not isinstance(fields, dict) or not fields:
        return error_answer(400, "WRONG_REQUEST", "Fields are not specified")
    apply(row, fields)
    return 200, {"result": True}


def error_answer(status: int, error: str, description: str) -> Answer:
    return status, {"error": error, "error_description": description}


def yn_flag(value: Any, default: str = "N") -> str:
    text = str(value if value is not None else default).upper()
    return "Y" if text in ("Y", "1", "TRUE") else "N"
