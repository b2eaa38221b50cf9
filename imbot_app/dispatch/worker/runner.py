"""One runner thread: claim a batch of waiting events, run their handlers, record, repeat.

A worker process has ``--concurrency`` of these.  Each has its own database connection (Django
connections are per thread) and its own :class:`~.recorder.BufferedRecorder`; the process
around them (:mod:`.loop`) wakes them, renews the claims they hold and flushes the record of a
runner stuck in a slow handler.
"""

from __future__ import annotations

import logging
import threading
import time
from contextlib import closing
from dataclasses import dataclass, field
from datetime import timedelta

from django.db import DatabaseError, close_old_connections, connection
from django.utils import timezone

from imbot_app.dispatch.claims import Outcome, new_token
from imbot_app.dispatch.runner import run_claimed
from imbot_app.dispatch.worker.queue import claim_batch
from imbot_app.dispatch.worker.recorder import BufferedRecorder

logger = logging.getLogger("imbot_app.worker")

FLUSH_RETRIES = 5


@dataclass
class Counters:
    """What the runners did; shared by all of a process's runners."""

    done: int = 0
    failed: int = 0
    claimed: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, *, done: int = 0, failed: int = 0, claimed: int = 0) -> None:
        with self.lock:
            self.done += done
            self.failed += failed
            self.claimed += claimed


@dataclass
class Limits:
    """What makes runners stop besides a signal: ``--once`` and ``--max-events``."""

    once: bool = False
    max_events: int | None = None


class Runner(threading.Thread):
    def __init__(
        self,
        index: int,
        *,
        counters: Counters,
        limits: Limits,
        stopping: threading.Event,
        batch_size: int,
        lease: timedelta,
        poll: float,
        slow_after: float,
    ) -> None:
        super().__init__(name=f"imbot-runner-{index}", daemon=True)
        self.counters = counters
        self.limits = limits
        self.stopping = stopping
        self.batch_size = batch_size
        self.lease = lease
        self.poll = poll
        self.wake = threading.Event()
        self.recorder = BufferedRecorder(slow_after=slow_after)
        self.held: tuple[str, list[int]] | None = None  # the batch's token and ids
        self.held_lock = threading.Lock()
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self._loop()
        except BaseException as exc:  # reported by the loop, which exits non-zero
            logger.exception("runner %s stopped on an error", self.name)
            self.error = exc
        finally:
            connection.close()

    def _loop(self) -> None:
        while not self.stopping.is_set():
            self.wake.clear()
            size = self._next_size()
            if size <= 0:
                return
            try:
                taken = self._batch(size)
            except DatabaseError:
                logger.exception("database error while running a batch; retrying shortly")
                close_old_connections()
                self.stopping.wait(self.poll)
                continue
            if taken:
                continue
            if self.limits.once:
                return
            close_old_connections()
            self.wake.wait(self.poll)

    def _next_size(self) -> int:
        if self.limits.max_events is None:
            return self.batch_size
        with self.counters.lock:
            left = self.limits.max_events - self.counters.claimed
            size = min(self.batch_size, left)
            if size > 0:
                self.counters.claimed += size  # reserved; given back below if unused
            return size

    def _batch(self, size: int) -> int:
        token = new_token()
        now = timezone.now()
        ids = claim_batch(token, now=now, lease=self.lease, size=size)
        if self.limits.max_events is not None and len(ids) < size:
            self.counters.add(claimed=len(ids) - size)
        if not ids:
            return 0
        with self.held_lock:
            self.held = (token, ids)
        try:
            results = run_claimed(ids, token=token, claimed_at=now, recorder=self.recorder)
            with closing(results):
                for result in results:
                    if result.outcome is Outcome.PROCESSED:
                        self.counters.add(done=1)
                    elif result.outcome is Outcome.FAILED:
                        self.counters.add(done=1, failed=1)
                    if self.stopping.is_set():
                        break  # closing() releases the claims of the events not started
        finally:
            self._flush()
            with self.held_lock:
                self.held = None
        return len(ids)

    def _flush(self) -> None:
        for attempt in range(1, FLUSH_RETRIES + 1):
            try:
                self.recorder.flush()
                return
            except DatabaseError:
                if attempt == FLUSH_RETRIES:
                    raise
                logger.exception("could not record a batch (attempt %d); retrying", attempt)
                close_old_connections()
                time.sleep(min(0.5 * attempt, 5.0))

    def holding(self) -> tuple[str, list[int]] | None:
        with self.held_lock:
            return self.held
