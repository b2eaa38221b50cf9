"""Celery mode's safety net: events still ``received`` after ``IMBOT_REQUEUE_AFTER`` go again.

The endpoint sends a task once the event is committed; if the broker is down at that moment
the event is stored but no task exists.  The sweep finds such events in the table (received,
unclaimed, older than ``IMBOT_REQUEUE_AFTER`` seconds) and sends their tasks again.  A task
for an event that meanwhile ran finds it processed and does nothing, so sending one twice is
harmless.  It runs in ``imbot_worker`` (when ``IMBOT_DISPATCH = "celery"``) and as the Celery
beat task ``imbot_app.requeue_stranded`` (:mod:`imbot_app.tasks`).
"""

from __future__ import annotations

import logging
import time
from datetime import timedelta
from typing import TYPE_CHECKING

from django.db import DatabaseError, close_old_connections
from django.db.models import Q
from django.utils import timezone

from ..conf import imbot_settings
from ..dispatch import enqueue
from ..models import Event

if TYPE_CHECKING:
    from .loop import Worker

logger = logging.getLogger("imbot_app.worker")

#: Events sent per sweep at most; the next sweep takes the next ones.
SWEEP_LIMIT = 1000


def requeue_stranded(*, older_than: float | None = None, limit: int = SWEEP_LIMIT) -> int:
    """Send the tasks of stranded events again, oldest first; how many were sent.

    Stops at the first event the broker refuses (it is still down): the rest wait for the
    next sweep.
    """
    seconds = float(imbot_settings.REQUEUE_AFTER if older_than is None else older_than)
    now = timezone.now()
    stranded = list(
        Event.objects.filter(
            status=Event.Status.RECEIVED, received_at__lte=now - timedelta(seconds=seconds)
        )
        .filter(Q(claim_expires_at__isnull=True) | Q(claim_expires_at__lte=now))
        .order_by("pk")
        .values_list("pk", flat=True)[:limit]
    )
    sent = 0
    for event_id in stranded:
        try:
            enqueue(event_id)
        except Exception as exc:
            logger.warning(
                "sweep: the broker refused event %s (%s); %d left for the next sweep",
                event_id,
                exc,
                len(stranded) - sent,
            )
            break
        sent += 1
    if sent:
        logger.info("sweep: sent %d stranded event(s) to Celery again", sent)
    return sent


class SweepLoop:
    """``imbot_worker`` in Celery mode: sweep every half ``IMBOT_REQUEUE_AFTER`` (at most 30 s)."""

    def __init__(self, worker: Worker) -> None:
        self.worker = worker

    def run(self) -> int:
        worker = self.worker
        every = min(max(float(imbot_settings.REQUEUE_AFTER) / 2, 0.5), 30.0)
        if worker.options.idle_sleep is not None:
            every = worker.options.idle_sleep
        worker.say(
            f"imbot_worker {worker.name}: Celery mode, re-sending events received more than "
            f"{imbot_settings.REQUEUE_AFTER} s ago every {every:g} s"
        )
        while not worker.stopping.is_set():
            try:
                sent = requeue_stranded()
            except DatabaseError:
                logger.exception("sweep failed; trying again on the next round")
                close_old_connections()
                sent = 0
            worker.counters.add(done=sent)
            if worker.options.once:
                break
            deadline = time.monotonic() + every
            while not worker.stopping.is_set() and time.monotonic() < deadline:
                worker.stopping.wait(0.1)
        worker.say(f"imbot_worker {worker.name} stopped: re-sent {worker.counters.done}")
        return 0
