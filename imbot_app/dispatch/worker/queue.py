"""The Event table as a queue: claim the oldest waiting events, wake workers, count the backlog.

A batch is claimed with one statement that both picks and claims (``UPDATE ... RETURNING``),
using the claim columns :func:`imbot_app.dispatch.runner.run_event` uses, so a worker, a Celery
task,
a replay and the admin's Replay button all respect each other's claims.  On PostgreSQL the
pick is ``FOR UPDATE SKIP LOCKED``: workers on any number of machines each get different
events without waiting for one another.  SQLite has one writer at a time, so the same
statement without the locking clause is already exclusive.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import connection
from django.utils import timezone

from imbot_app.conf import imbot_settings
from imbot_app.models import Event

logger = logging.getLogger("imbot_app.worker")

_CLAIM = """
WITH picked AS (
    SELECT {id} FROM {table}
    WHERE {status} = %s AND ({expires} IS NULL OR {expires} <= %s)
    ORDER BY {id}
    LIMIT %s
    {lock}
)
UPDATE {table}
SET {claimed_by} = %s, {expires} = %s, {attempts} = {attempts} + 1
WHERE {id} IN (SELECT {id} FROM picked)
  AND {status} = %s AND ({expires} IS NULL OR {expires} <= %s)
RETURNING {id}
"""


def _claim_sql() -> str:
    q = connection.ops.quote_name
    lock = "FOR UPDATE SKIP LOCKED" if connection.vendor == "postgresql" else ""
    return _CLAIM.format(
        table=q(Event._meta.db_table),
        id=q("id"),
        status=q("status"),
        expires=q("claim_expires_at"),
        claimed_by=q("claimed_by"),
        attempts=q("dispatch_attempts"),
        lock=lock,
    )


def claim_batch(token: str, *, now: datetime, lease: timedelta, size: int) -> list[int]:
    """Claim up to ``size`` of the oldest waiting events for ``token``; their ids, oldest first.

    Waiting: ``received`` with no claim, or one that expired (its holder died).
    """
    adapt = connection.ops.adapt_datetimefield_value
    params = [
        Event.Status.RECEIVED,
        adapt(now),
        size,
        token,
        adapt(now + lease),
        Event.Status.RECEIVED,
        adapt(now),
    ]
    with connection.cursor() as cursor:
        cursor.execute(_claim_sql(), params)
        return sorted(row[0] for row in cursor.fetchall())


def renew(token: str, event_ids: list[int], *, lease: timedelta) -> int:
    """Push the claims ``token`` holds on ``event_ids`` forward by a lease (the heartbeat)."""
    if not event_ids:
        return 0
    return Event.objects.filter(pk__in=event_ids, claimed_by=token).update(
        claim_expires_at=timezone.now() + lease
    )


def notify_workers() -> None:
    """Wake idle workers (PostgreSQL ``NOTIFY``; SQLite workers poll, so nothing to do).

    Called from the endpoint's on-commit hook, so the event is visible when they look.
    """
    if connection.vendor != "postgresql":
        return
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_notify(%s, '')", [imbot_settings.WORKER_CHANNEL])


#: The backlog is counted up to this many events (a count reads every row it counts).
BACKLOG_COUNT_CAP = 100_000


@dataclass(frozen=True)
class Backlog:
    """Events not yet run (received: waiting, or being run right now) and the oldest's age."""

    waiting: int  # at most cap + 1
    oldest_wait: float | None  # seconds
    cap: int = BACKLOG_COUNT_CAP

    @property
    def waiting_text(self) -> str:
        return f"{self.cap}+" if self.waiting > self.cap else str(self.waiting)

    def describe(self) -> str:
        oldest = "-" if self.oldest_wait is None else f"{self.oldest_wait:.1f} s"
        return f"waiting {self.waiting_text}, oldest wait {oldest}"


def backlog(now: datetime | None = None, *, cap: int = BACKLOG_COUNT_CAP) -> Backlog:
    """Two queries on the partial ``imbot_event_waiting`` index, the count bounded."""
    now = now or timezone.now()
    waiting = Event.objects.filter(status=Event.Status.RECEIVED)
    oldest = waiting.order_by("pk").values_list("received_at", flat=True).first()
    count = waiting.order_by()[: cap + 1].count()
    age = max((now - oldest).total_seconds(), 0.0) if oldest is not None else None
    return Backlog(count, age, cap)
