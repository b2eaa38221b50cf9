"""Deleting old events, so the events table does not grow forever (``imbot_prune``).

Only the delivery log goes: each Event and its HandlerRuns.  What the events left behind is
history and stays: messages and command invocations point at their event with ``SET_NULL``,
chats, people, bots and portals are untouched.

Deletion runs in batches of ids (keyset pagination, oldest first), one transaction per batch,
so a large prune never holds a long lock nor loads the table into memory, and an interrupted
prune has still deleted whole batches.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from django.db import transaction
from django.db.models import QuerySet

from imbot_app.dispatch.replay import iter_event_ids
from imbot_app.models import Event, HandlerRun

__all__ = ["DEFAULT_BATCH_SIZE", "PruneSummary", "expired_events", "prune_events"]

DEFAULT_BATCH_SIZE = 1000


@dataclass
class PruneSummary:
    events: int = 0
    handler_runs: int = 0


def expired_events(cutoff: datetime, *, keep_failed: bool = False) -> QuerySet[Event]:
    """Events received before ``cutoff`` (failed ones kept if asked: someone may replay them)."""
    events = Event.objects.filter(received_at__lt=cutoff)
    if keep_failed:
        events = events.exclude(status=Event.Status.FAILED)
    return events


def prune_events(
    events: QuerySet[Event],
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
    on_batch: Callable[[int], None] | None = None,
) -> PruneSummary:
    """Delete ``events`` and their handler runs, batch by batch; ``on_batch(n)`` after each."""
    summary = PruneSummary()
    for ids in iter_event_ids(events, chunk_size=batch_size):
        with transaction.atomic():
            # Only the ids are loaded; Django's collector deletes the HandlerRuns and clears
            # Message.event / CommandInvocation.event with one statement each.
            _, per_model = Event.objects.filter(pk__in=ids).only("pk").delete()
        summary.events += per_model.get(Event._meta.label, 0)
        summary.handler_runs += per_model.get(HandlerRun._meta.label, 0)
        if on_batch is not None:
            on_batch(len(ids))
    return summary
