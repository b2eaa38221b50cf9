"""HandlerRun rows and final statuses written per batch: the worker's bookkeeping in one commit.

Run inline, :class:`imbot_app.dispatch.runner.Recorder` writes a run when it starts, again when it
ends, and the event's status after that: three commits for an event with one handler, which
is most of what a worker does when handlers are quick.  :class:`BufferedRecorder` keeps the
finished runs and statuses of a batch and writes them in one transaction (one INSERT for the
runs, one UPDATE for the processed events).

What that must not cost is the guarantee that a handler which finished is not run again after
a crash.  So the buffer is also written (from the worker's main thread, see
:meth:`BufferedRecorder.flush_if_slow`) as soon as a handler has been running for
``slow_after`` seconds, together with that handler's own "running" row: a worker killed in a
slow handler has recorded every handler that finished before it, and the running one is
found "abandoned" by the worker that takes the event over.  What a crash can still repeat is
a handler that finished within ``slow_after`` of it, as a crash between a handler's return
and its commit always could.  A failed run is written at once: ``handler_failed`` receivers
get a saved row.
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import datetime

from django.db import transaction
from django.utils import timezone

from imbot_app.dispatch import claims
from imbot_app.dispatch.event_run import Recorder
from imbot_app.models import Event, HandlerRun

logger = logging.getLogger("imbot_app.worker")

RUN_FIELDS = ["status", "error", "traceback", "duration_ms", "stopped"]


class BufferedRecorder(Recorder):
    """A :class:`~imbot_app.dispatch.runner.Recorder` that writes when flushed; thread-safe."""

    def __init__(self, *, slow_after: float = 0.2) -> None:
        self.slow_after = slow_after
        self._lock = threading.RLock()
        self._runs: list[HandlerRun] = []  # finished, not written
        self._processed: dict[str, list[int]] = {}  # token -> event ids
        self._other: list[tuple[int, str, str, str]] = []  # (id, token, status, error)
        self._current: HandlerRun | None = None
        self._current_since = 0.0

    # ------------------------------------------------------------ the Recorder interface

    def started(self, run: HandlerRun) -> None:
        with self._lock:
            self._current = run
            self._current_since = time.monotonic()

    def finished(self, run: HandlerRun) -> None:
        with self._lock:
            self._current = None
            if run.pk is not None:  # written as running by a flush while it ran
                run.save(update_fields=RUN_FIELDS)
            else:
                self._runs.append(run)
            if run.status == HandlerRun.Status.FAILED:
                self._flush()

    def finish_event(
        self, event_id: int, token: str, *, status: str, error: str, now: datetime
    ) -> bool:
        with self._lock:
            if status == Event.Status.PROCESSED and not error:
                self._processed.setdefault(token, []).append(event_id)
            else:
                self._other.append((event_id, token, status, error))
        return True

    # ------------------------------------------------------------ writing

    @property
    def pending(self) -> int:
        """Runs and statuses not written yet."""
        with self._lock:
            return len(self._runs) + sum(map(len, self._processed.values())) + len(self._other)

    def flush(self) -> None:
        """Write what is buffered, in one transaction."""
        with self._lock:
            self._flush()

    def flush_if_slow(self) -> bool:
        """Called from another thread: write the buffer, and the running handler's row, once
        that handler has run for ``slow_after`` seconds.  Whether anything was written."""
        with self._lock:
            current = self._current
            if current is None or time.monotonic() - self._current_since < self.slow_after:
                return False
            if current.pk is not None and not self.pending:
                return False
            self._flush(current)
            return True

    def _flush(self, running: HandlerRun | None = None) -> None:
        runs, processed, other = self._runs, self._processed, self._other
        if not runs and not processed and not other and (running is None or running.pk):
            return
        self._runs, self._processed, self._other = [], {}, []
        new_running = running is not None and running.pk is None
        try:
            self._write(runs, processed, other, running if new_running else None)
        except BaseException:
            # Nothing was written: keep it all for the next flush.
            for run in [*runs, *([running] if new_running and running else [])]:
                run.pk = None
            self._runs = runs + self._runs
            for token, ids in processed.items():
                self._processed.setdefault(token, []).extend(ids)
            self._other = other + self._other
            raise

    @staticmethod
    def _write(
        runs: list[HandlerRun],
        processed: dict[str, list[int]],
        other: list[tuple[int, str, str, str]],
        running: HandlerRun | None,
    ) -> None:
        now = timezone.now()
        with transaction.atomic():
            if runs:
                HandlerRun.objects.bulk_create(runs)
            if running is not None:
                running.save()
            for token, ids in processed.items():
                updated = claims.finish(
                    ids, token, status=Event.Status.PROCESSED, error="", now=now
                )
                if updated != len(ids):
                    logger.warning(
                        "%d of %d events lost their claim before their status could be set",
                        len(ids) - updated,
                        len(ids),
                    )
            for event_id, token, status, error in other:
                claims.finish([event_id], token, status=status, error=error, now=now)
