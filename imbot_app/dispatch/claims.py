"""Claims and leases: which process runs an event's handlers, and for how long.

An event is claimed with one conditional UPDATE (only a ``received`` event, or when forced a
processed or failed one, whose claim is free or expired), under a token naming this process.
The claim expires after ``IMBOT_DISPATCH_LEASE`` seconds unless renewed, so a process that
died holding it blocks the event for at most that long.
"""

from __future__ import annotations

import enum
import logging
import os
import socket
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db import DatabaseError
from django.db.models import F, Q

from imbot_app.models import Event, HandlerRun

logger = logging.getLogger("imbot_app.dispatch")

_HOST = socket.gethostname()


class Outcome(enum.StrEnum):
    """What :func:`run_event` did."""

    PROCESSED = "processed"  # every handler that ran succeeded
    FAILED = "failed"  # at least one handler failed (the others still ran)
    ALREADY_DONE = "already_done"  # processed or failed before, and not forced
    BUSY = "busy"  # another process holds the claim; try again in ``retry_in`` seconds
    CLAIM_LOST = "claim_lost"  # our claim expired mid-way and another process took over
    INVALID = "invalid"  # the event was stored as invalid: nothing to run
    MISSING = "missing"  # no such event


@dataclass(frozen=True)
class DispatchResult:
    event_id: int
    outcome: Outcome
    runs: tuple[HandlerRun, ...] = ()
    retry_in: float | None = None


def worker_name() -> str:
    """``host:pid`` of this process (computed per call: prefork children have their own pid)."""
    return f"{_HOST}:{os.getpid()}"


def new_token() -> str:
    """A claim's owner: this process, plus a random part telling its claims apart."""
    return f"{worker_name()}:{uuid.uuid4().hex[:12]}"


def claim(which: Q, *, token: str, lease: timedelta, force: bool, now: datetime) -> int:
    """Claim the runnable, unclaimed (or expired) events among ``which``: one UPDATE."""
    runnable = [Event.Status.RECEIVED]
    if force:
        runnable += [Event.Status.PROCESSED, Event.Status.FAILED]
    return (
        Event.objects.filter(which, status__in=runnable)
        .filter(Q(claim_expires_at__isnull=True) | Q(claim_expires_at__lte=now))
        .update(
            claimed_by=token,
            claim_expires_at=now + lease,
            dispatch_attempts=F("dispatch_attempts") + 1,
        )
    )


def not_claimed(event_id: int, *, force: bool, now: datetime) -> DispatchResult:
    row = Event.objects.filter(pk=event_id).values("status", "claim_expires_at").first()
    return why_not_claimed(event_id, row, force=force, now=now)


def why_not_claimed(
    event_id: int, row: Mapping[str, Any] | None, *, force: bool, now: datetime
) -> DispatchResult:
    """What an event the claim did not take is doing, from its status and claim."""
    if row is None:
        return DispatchResult(event_id, Outcome.MISSING)
    if row["status"] == Event.Status.INVALID:
        return DispatchResult(event_id, Outcome.INVALID)
    if row["status"] != Event.Status.RECEIVED and not force:
        return DispatchResult(event_id, Outcome.ALREADY_DONE)
    expires = row["claim_expires_at"]
    retry_in = max((expires - now).total_seconds(), 0.0) if expires else 0.0
    return DispatchResult(event_id, Outcome.BUSY, retry_in=retry_in)


def release(event_id: int, token: str) -> None:
    """Give the claim back after an error, so a retry need not wait for the lease (best effort)."""
    release_many([event_id], token)


def release_many(event_ids: list[int], token: str) -> None:
    """:func:`release` for several events, in one UPDATE."""
    try:
        Event.objects.filter(pk__in=event_ids, claimed_by=token).update(
            claimed_by="", claim_expires_at=None
        )
    except DatabaseError:
        logger.warning(
            "could not release the claim on events %s; they expire by themselves", event_ids
        )


def finish(event_ids: list[int], token: str, *, status: str, error: str, now: datetime) -> int:
    """Set the events' status and release their claims, where still ours; how many were."""
    return Event.objects.filter(pk__in=event_ids, claimed_by=token).update(
        status=status,
        processed_at=now,
        error=error[:10_000],
        claimed_by="",
        claim_expires_at=None,
    )
