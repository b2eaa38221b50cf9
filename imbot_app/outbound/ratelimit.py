"""A client-side copy of Bitrix24's leaky bucket, per portal, shared through Django's cache.

Bitrix24 lets a portal make a burst of requests (50, or 250 on Enterprise) that drains at a fixed
rate (2/s, or 5/s); past it every call gets 503 ``QUERY_LIMIT_EXCEEDED``.  Waiting on our side
before sending is cheaper than being refused, and keeps every process of a deployment inside one
budget: the bucket lives in the cache (Redis or Memcached in production), not in memory.

The bucket is kept as one number, the theoretical arrival time of the next request (GCRA): a
request may go when ``tat - now <= (burst - 1) / rate``, and moves ``tat`` on by ``1 / rate``.
The read-modify-write is guarded by a short cache lock (``cache.add`` is atomic on every backend).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable

from django.core.cache import caches

from imbot_app.conf import imbot_settings

LOCK_SECONDS = 5


class LeakyBucket:
    """The budget of one portal: ``rate`` requests per second with bursts of ``burst``."""

    def __init__(
        self,
        key: str,
        rate: float,
        burst: int,
        *,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("rate must be positive and burst at least 1")
        self.key = f"imbot:bucket:{key}"
        self.rate = rate
        self.burst = burst
        self._clock = clock
        self._sleep = sleep

    @property
    def _cache(self):  # type: ignore[no-untyped-def]
        return caches[imbot_settings.RATE_LIMIT_CACHE]

    def try_acquire(self) -> float:
        """Take a slot now and return 0, or return how many seconds until one is free."""
        cache = self._cache
        lock_key = f"{self.key}:lock"
        token = uuid.uuid4().hex
        while not cache.add(lock_key, token, LOCK_SECONDS):
            self._sleep(0.002)
        try:
            now = self._clock()
            interval = 1.0 / self.rate
            tolerance = (self.burst - 1) * interval
            tat = max(float(cache.get(self.key) or 0.0), now)
            if tat - now > tolerance:
                return tat - now - tolerance
            cache.set(self.key, tat + interval, timeout=int(self.burst * interval) + 60)
            return 0.0
        finally:
            if cache.get(lock_key) == token:
                cache.delete(lock_key)

    def acquire(self) -> float:
        """Wait until a slot is free, take it, and return the seconds waited."""
        waited = 0.0
        while (delay := self.try_acquire()) > 0:
            self._sleep(delay)
            waited += delay
        return waited
