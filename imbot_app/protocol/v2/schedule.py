"""When a fetch-mode bot is polled next: Bitrix24's intervals, and backoff after errors.

Bitrix24 asks for 5-30 s between polls of an empty queue and at least 2 s between calls while
``hasMore``, and exponential backoff on 429 / 503 ``QUERY_LIMIT_EXCEEDED``.  The settings are
checked when read (and by a system check), so a value outside those bounds fails loudly.
"""

from __future__ import annotations

import random
from collections.abc import Callable

from django.core.exceptions import ImproperlyConfigured

from imbot_app.conf import imbot_settings
from imbot_app.protocol.v2.methods import MAX_EVENT_LIMIT

__all__ = ["backoff_delay", "busy_interval", "fetch_limit", "idle_interval"]

MIN_IDLE, MAX_IDLE = 5.0, 30.0
MIN_BUSY = 2.0
MAX_LIMIT = MAX_EVENT_LIMIT


def _within(setting: str, value: float, low: float, high: float, why: str) -> None:
    """Refuse a fetch setting outside what Bitrix24 asks for, saying what it asks."""
    if not low <= value <= high:
        raise ImproperlyConfigured(f"IMBOT_{setting} is {value:g}; Bitrix24 asks for {why}")


def idle_interval() -> float:
    """``IMBOT_FETCH_IDLE_INTERVAL``, which Bitrix24 wants between 5 and 30 seconds."""
    value = float(imbot_settings.FETCH_IDLE_INTERVAL)
    why = f"{MIN_IDLE:g}-{MAX_IDLE:g} s between polls of an empty queue"
    _within("FETCH_IDLE_INTERVAL", value, MIN_IDLE, MAX_IDLE, why)
    return value


def busy_interval() -> float:
    """``IMBOT_FETCH_BUSY_INTERVAL``: the pause while ``hasMore`` (never under 2 s)."""
    value = float(imbot_settings.FETCH_BUSY_INTERVAL)
    why = f"at least {MIN_BUSY:g} s between calls while hasMore"
    _within("FETCH_BUSY_INTERVAL", value, MIN_BUSY, float("inf"), why)
    return value


def fetch_limit() -> int:
    """``IMBOT_FETCH_LIMIT``: events per Event.get, 1 to 1000."""
    value = int(imbot_settings.FETCH_LIMIT)
    _within("FETCH_LIMIT", value, 1, MAX_LIMIT, f"1-{MAX_LIMIT} events per call")
    return value


def backoff_delay(failures: int, *, rng: Callable[[], float] = random.random) -> float:
    """Seconds to wait after ``failures`` consecutive failed polls: doubling from
    ``IMBOT_FETCH_BACKOFF`` up to ``IMBOT_FETCH_MAX_BACKOFF``, times a jitter of 0.5-1.5 (so
    many bots throttled together do not all come back at once), never under 2 s."""
    base = float(imbot_settings.FETCH_BACKOFF)
    cap = float(imbot_settings.FETCH_MAX_BACKOFF)
    delay = min(cap, base * 2 ** max(0, failures - 1))
    return max(MIN_BUSY, delay * (0.5 + rng()))
