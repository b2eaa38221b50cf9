"""The on-commit hook: how a stored event's handlers start (``IMBOT_DISPATCH``).

:func:`event_stored` is what the endpoint gives :func:`~imbot_app.inbound.store.store_event`; it
runs only after the event's transaction has committed: ``"inline"`` runs the handlers right
there, in the web process; ``"worker"`` only wakes ``imbot_worker``
(:mod:`imbot_app.dispatch.worker`), which claims batches from the Event table and runs them
through :func:`~imbot_app.dispatch.runner.run_claimed`; ``"celery"`` sends one task carrying only
the event id
(:mod:`imbot_app.dispatch.tasks`).  Both end in :func:`~imbot_app.dispatch.runner.run_event`.
"""

from __future__ import annotations

import logging

from django.utils import timezone

from imbot_app import events as ev
from imbot_app.conf import imbot_settings
from imbot_app.dispatch.event_run import has_handlers
from imbot_app.dispatch.runner import run_event
from imbot_app.logsafe import safe
from imbot_app.models import Event

logger = logging.getLogger("imbot_app.dispatch")

INLINE = "inline"
CELERY = "celery"
WORKER = "worker"
MODES = (INLINE, WORKER, CELERY)


def event_stored(event: Event, parsed: ev.BitrixEvent | None = None) -> None:
    """``store_event``'s on-commit hook: start the handlers as ``IMBOT_DISPATCH`` says.

    ``parsed`` is the typed event the endpoint already built; run inline, the handlers reuse
    it instead of parsing the stored payload again (a Celery worker has only the id).

    Never raises: the webhook has already stored the event and must answer 200.  If handlers
    cannot be started (broker down, database gone) the event stays ``received`` and is logged,
    for a replay to pick up.
    """
    mode = imbot_settings.DISPATCH
    try:
        if mode == WORKER:
            from imbot_app.dispatch.worker.queue import notify_workers

            notify_workers()
        elif mode == CELERY:
            enqueue(event.pk)
        elif has_handlers(event.name):
            run_event(event.pk, parsed=parsed)
        else:
            mark_processed_without_handlers(event.pk)
    except Exception:
        logger.exception(
            "event %s (%s) is stored but its handlers could not be started in %s mode; "
            "it stays 'received' until replayed",
            event.pk,
            safe(event.name),
            mode,
        )


def mark_processed_without_handlers(event_id: int) -> bool:
    """Nothing listens: set a still-unclaimed ``received`` event processed, in one query."""
    return bool(
        Event.objects.filter(
            pk=event_id, status=Event.Status.RECEIVED, claim_expires_at__isnull=True
        ).update(status=Event.Status.PROCESSED, processed_at=timezone.now())
    )


def enqueue(event_id: int, *, force: bool = False) -> None:
    """Send the Celery task for ``event_id`` (to ``IMBOT_CELERY_QUEUE`` if set).

    Celery is imported here and only here, so imbot_app works without it installed.
    """
    from imbot_app.dispatch.tasks import send

    send(event_id, force=force)
