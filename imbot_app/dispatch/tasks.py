"""The Celery task behind ``IMBOT_DISPATCH = "celery"``: one task per event, carrying its id only.

Only :func:`imbot_app.dispatch.hooks.enqueue` and Celery's own task discovery import this module, so
imbot_app itself works without Celery installed (``pip install "imbot_app[celery]"``).

Delivery is at least once, and :func:`~imbot_app.dispatch.runner.run_event` makes that safe:

* ``acks_late`` with ``reject_on_worker_lost``: the message is acknowledged only after the
  handlers ran, so a worker killed mid-handler leaves it to be delivered again (with Redis,
  once the broker's ``visibility_timeout`` has passed);
* the redelivered task finds the dead worker's claim, waits for it to expire (retrying with
  a countdown), then runs only the handlers that had not yet succeeded;
* a second copy of a task whose first copy finished finds the event processed and does
  nothing;
* database errors in the bookkeeping are retried with exponential backoff and jitter;
* the claim is renewed every quarter lease while the handlers run
  (:func:`imbot_app.dispatch.worker.heartbeat.keep_claimed`), so a handler longer than
  ``IMBOT_DISPATCH_LEASE`` is not run again by a redelivered copy of its task.
"""

from __future__ import annotations

from typing import Any

from celery import shared_task
from django.db import DatabaseError, close_old_connections

from imbot_app.conf import imbot_settings
from imbot_app.dispatch.claims import Outcome
from imbot_app.dispatch.runner import run_event

#: How often a task may come back because another process holds the event's claim.
BUSY_RETRIES = 20
#: The longest wait between two such attempts, in seconds.
BUSY_COUNTDOWN_MAX = 300.0


@shared_task(
    bind=True,
    name="imbot_app.run_event",
    acks_late=True,
    reject_on_worker_lost=True,
    autoretry_for=(DatabaseError,),
    retry_backoff=1,
    retry_backoff_max=60,
    retry_jitter=True,
    max_retries=8,
    ignore_result=True,
)
def run_event_task(self: Any, event_id: int, force: bool = False) -> str:
    """Run the handlers of event ``event_id`` (see :func:`imbot_app.dispatch.runner.run_event`)."""
    from imbot_app.dispatch.worker.heartbeat import keep_claimed

    try:
        with keep_claimed(event_id):  # a handler longer than the lease keeps its event
            result = run_event(event_id, force=force)
    except DatabaseError:
        # Drop a broken connection so the retry opens a fresh one.
        close_old_connections()
        raise
    if result.outcome is Outcome.BUSY:
        countdown = min(max(result.retry_in or 0.0, 0.5), BUSY_COUNTDOWN_MAX)
        raise self.retry(countdown=countdown, max_retries=BUSY_RETRIES)
    return result.outcome.value


@shared_task(name="imbot_app.requeue_stranded", ignore_result=True)
def requeue_stranded_task() -> int:
    """Celery beat: send events stranded while the broker was down again (see worker.sweep)."""
    from imbot_app.dispatch.worker.sweep import requeue_stranded

    return requeue_stranded(send)


def send(event_id: int, force: bool = False) -> None:
    """Send the task for ``event_id`` (to ``IMBOT_CELERY_QUEUE`` if set)."""
    options: dict[str, Any] = {}
    if imbot_settings.CELERY_QUEUE:
        options["queue"] = imbot_settings.CELERY_QUEUE
    run_event_task.apply_async(args=(event_id,), kwargs={"force": force}, **options)
