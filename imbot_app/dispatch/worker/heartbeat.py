"""A claim heartbeat for one event run outside imbot_worker (the Celery task).

:func:`imbot_app.dispatch.runner.run_event` renews its claim before each handler only, so a single
handler longer than ``IMBOT_DISPATCH_LEASE`` would let the claim expire and a redelivered task
run the event again.  :func:`keep_claimed` renews, from a thread, every quarter lease, the
claim this process holds on the event (its tokens start with ``host:pid:``) while the block
runs.  imbot_worker renews its batches' claims itself (:mod:`.loop`).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

from django.db import DatabaseError, connection
from django.utils import timezone

from imbot_app.conf import imbot_settings
from imbot_app.dispatch.claims import worker_name
from imbot_app.models import Event

logger = logging.getLogger("imbot_app.worker")


@contextmanager
def keep_claimed(event_id: int) -> Iterator[None]:
    lease = timedelta(seconds=float(imbot_settings.DISPATCH_LEASE))
    every = max(lease.total_seconds() / 4, 0.1)
    prefix = f"{worker_name()}:"
    done = threading.Event()

    def beat() -> None:
        try:
            while not done.wait(every):
                try:
                    Event.objects.filter(
                        pk=event_id,
                        status=Event.Status.RECEIVED,
                        claimed_by__startswith=prefix,
                    ).update(claim_expires_at=timezone.now() + lease)
                except DatabaseError:
                    logger.warning("could not renew the claim on event %s", event_id)
        finally:
            connection.close()

    thread = threading.Thread(target=beat, name=f"imbot-claim-{event_id}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()
