"""Faults the fake injects: expired tokens, throttling, failing calls, the leaky bucket."""

from __future__ import annotations

import time
from typing import TypedDict, Unpack

from imbot_app.testing.fake_state import (
    Answer,
    FakePortal,
    FakeShared,
    Fault,
    error_answer,
)


class ErrorSpec(TypedDict, total=False):
    """The error a failing call answers: ``error``, ``description`` and HTTP ``status``.

    One spec for :meth:`FaultInjection.fail_next` and :meth:`FaultInjection.fail_method`, so
    the two keep the same keywords and defaults (Bitrix24's 500 ``INTERNAL_SERVER_ERROR``).
    """

    error: str
    description: str
    status: int


def spec_answer(spec: ErrorSpec) -> Answer:
    return error_answer(
        spec.get("status", 500),
        spec.get("error", "INTERNAL_SERVER_ERROR"),
        spec.get("description", "Internal server error"),
    )


class FaultInjection(FakeShared):
    """Ways to make the fake answer with Bitrix24's errors."""

    def expire(self, access_token: str | None = None) -> None:
        """Expire one access token, or every one issued so far."""
        with self._lock:
            for token, info in self._tokens.items():
                if access_token is None or token == access_token:
                    info.expired = True

    def revoke_refresh_tokens(self) -> None:
        """Every refresh token stops working (the app was reinstalled elsewhere, say)."""
        with self._lock:
            self._refresh.clear()

    def fail_next(self, count: int = 1, **spec: Unpack[ErrorSpec]) -> None:
        """The next ``count`` REST calls answer this error (see :class:`ErrorSpec`)."""
        with self._lock:
            self._faults.extend([spec_answer(spec)] * count)

    def fail_method(
        self,
        method: str,
        *,
        member_id: str | None = None,
        count: int = 1,
        **spec: Unpack[ErrorSpec],
    ) -> None:
        """The next ``count`` calls of ``method`` (on one portal, or any) answer this error."""
        with self._lock:
            self._method_faults.append(Fault(method, member_id, count, spec_answer(spec)))

    def throttle(self, count: int) -> None:
        """The next ``count`` REST calls answer 503 ``QUERY_LIMIT_EXCEEDED``."""
        with self._lock:
            self._throttled += count

    def limit_rate(self, rate: float = 2.0, burst: int = 50) -> None:
        """Enforce Bitrix24's leaky bucket per portal: ``rate``/s with bursts of ``burst``."""
        with self._lock:
            self._rate = (rate, burst)

    def _method_fault(self, method: str, member_id: str) -> Answer | None:
        for fault in self._method_faults:
            if fault.method == method and fault.member_id in (None, member_id):
                fault.count -= 1
                if fault.count <= 0:
                    self._method_faults.remove(fault)
                return fault.answer
        return None

    def _take_slot(self, portal: FakePortal) -> bool:
        if self._rate is None:
            return True
        rate, burst = self._rate
        now = time.monotonic()
        interval = 1.0 / rate
        tat = max(portal.bucket_tat, now)
        if tat - now > (burst - 1) * interval:
            return False
        portal.bucket_tat = tat + interval
        return True
