"""Celery mode's safety net: events still ``received`` after ``IMBOT_REQUEUE_AFTER`` go again.

The endpoint sends a task once the event is committed; if the broker is down at that moment
the event is stored but no task exists.  The sweep finds such events in the table (received,
unclaimed, older than ``IMBOT_REQUEUE_AFTER`` seconds) and sends their tasks again.  A task
for an event that meanwhile ran finds it processed and does nothing, so sending one twice is
harmless.  It runs in ``imbot_worker`` (when ``IMBOT_DISPATCH = "celery"``) and as the Celery
beat task ``imbot_app.requeue_stranded`` (:mod:`imbot_app.dispatch.tasks`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import timedelta

from django.db.models import Q
from django.utils import timezone

from imbot_app.conf import imbot_settings
from imbot_app.models import Event

logger = logging.getLogger("imbot_app.worker")

#: Events sent per sweep at most; the next sweep takes the next ones.
SWEEP_LIMIT = 1000


def requeue_stranded(
    send: Callable[[int], object], *, older_than: float | None = None, limit: int = SWEEP_LIMIT
) -> int:
    """Send the tasks of stranded events again with ``send(event_id)``, oldest first; how many.

    ``send`` is the Celery task's sender (``dispatch.hooks.enqueue``), given rather than
    imported so the task module and the sweep do not import each other.

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
            send(event_id)
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
