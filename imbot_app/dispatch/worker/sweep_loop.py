"""``imbot_worker`` in Celery mode: no handlers here, only the sweep, every few seconds.

Runs :func:`~imbot_app.dispatch.worker.sweep.requeue_stranded` with the Celery sender until the
worker is asked to stop.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any, Protocol

from django.db import DatabaseError, close_old_connections

from imbot_app.conf import imbot_settings
from imbot_app.dispatch.hooks import enqueue
from imbot_app.dispatch.worker.sweep import requeue_stranded


class Worker(Protocol):
    """What the sweep reads of :class:`~imbot_app.dispatch.worker.loop.Worker`."""

    name: str
    options: Any
    counters: Any
    stopping: threading.Event

    def say(self, text: str) -> None: ...


logger = logging.getLogger("imbot_app.worker")


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
                sent = requeue_stranded(enqueue)
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
