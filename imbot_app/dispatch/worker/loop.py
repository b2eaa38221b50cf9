"""The ``imbot_worker`` process: runner threads, and the main thread that looks after them.

The main thread never runs handlers.  It ticks every :data:`TICK` seconds (or sooner, when a
PostgreSQL notification arrives, which it passes on to the runners) and:

* writes the record of a runner whose handler has run longer than ``slow_after`` (see
  :mod:`.recorder`), so a crash in a slow handler repeats nothing that had finished;
* renews the claims the runners hold every quarter lease: a handler longer than
  ``IMBOT_DISPATCH_LEASE`` keeps its event, and a worker that died stops renewing, so its
  events are taken over one lease later;
* stores this process's :class:`~imbot_app.models.WorkerHeartbeat` every
  :data:`HEARTBEAT_EVERY` seconds, and logs a status line every ``log_every`` seconds;
* in Celery mode, runs the sweep (:mod:`.sweep`) instead of runners.

Beside them one fetch thread (:mod:`.fetching`) polls ``imbot.v2.Event.get`` for every
fetch-mode Chatbots 2.0 bot whose turn has come, and wakes the runners when a page is stored.

SIGTERM and SIGINT set ``stopping``: each runner finishes the event it is in, gives back the
claims of the rest of its batch, writes its record and ends; the process exits 0.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.db import DatabaseError, close_old_connections
from django.utils import timezone

from imbot_app.conf import imbot_settings
from imbot_app.dispatch.claims import worker_name
from imbot_app.dispatch.hooks import CELERY
from imbot_app.dispatch.worker.fetching import Fetcher
from imbot_app.dispatch.worker.listen import Listener
from imbot_app.dispatch.worker.queue import backlog, renew
from imbot_app.dispatch.worker.runner import Counters, Limits, Runner
from imbot_app.models import WorkerHeartbeat

logger = logging.getLogger("imbot_app.worker")

TICK = 0.05
HEARTBEAT_EVERY = 5.0


@dataclass
class Options:
    concurrency: int = 1
    once: bool = False
    max_events: int | None = None
    idle_sleep: float | None = None  # None: IMBOT_WORKER_POLL
    log_every: float = 60.0
    batch_size: int | None = None  # None: IMBOT_WORKER_BATCH
    slow_after: float = 0.2
    listen: bool = True
    fetch: bool = True  # poll Event.get for fetch-mode (Chatbots 2.0) bots: see .fetching
    fetch_limit: int | None = None  # None: IMBOT_FETCH_LIMIT


class Worker:
    def __init__(self, options: Options, *, say: Callable[[str], None] = logger.info) -> None:
        self.options = options
        self.say = say
        self.name = worker_name()
        self.stopping = threading.Event()
        self.counters = Counters()
        self.lease = timedelta(seconds=float(imbot_settings.DISPATCH_LEASE))
        self.poll = (
            options.idle_sleep
            if options.idle_sleep is not None
            else float(imbot_settings.WORKER_POLL)
        )
        self.celery = imbot_settings.DISPATCH == CELERY
        self.runners: list[Runner] = []
        self.started_at = timezone.now()
        self._rates: deque[tuple[float, int]] = deque()
        self.fetcher: Fetcher | None = None

    # ------------------------------------------------------------------ running

    def run(self) -> int:
        """Run until stopped (or ``--once`` / ``--max-events`` is done); the exit status."""
        self._install_signals()
        self.fetcher = self._start_fetcher()
        try:
            return self._run()
        finally:
            self.stopping.set()
            if self.fetcher is not None:
                self.fetcher.join(timeout=float(imbot_settings.FETCH_LEASE))

    def _start_fetcher(self) -> Fetcher | None:
        """The fetch thread (not with ``--once``: that polls each due bot once, here)."""
        if not self.options.fetch:
            return None
        fetcher = Fetcher(
            stopping=self.stopping, wake_runners=self._wake_runners, limit=self.options.fetch_limit
        )
        if self.options.once:
            try:
                fetcher.tick()
            finally:
                close_old_connections()
            return None
        fetcher.start()
        return fetcher

    def _wake_runners(self) -> None:
        for runner in self.runners:
            runner.wake.set()

    def _run(self) -> int:
        if self.celery:
            from imbot_app.dispatch.worker.sweep_loop import SweepLoop

            return SweepLoop(self).run()
        limits = Limits(once=self.options.once, max_events=self.options.max_events)
        size = self.options.batch_size or int(imbot_settings.WORKER_BATCH)
        for index in range(max(1, self.options.concurrency)):
            runner = Runner(
                index,
                counters=self.counters,
                limits=limits,
                stopping=self.stopping,
                batch_size=size,
                lease=self.lease,
                poll=self.poll,
                slow_after=self.options.slow_after,
            )
            self.runners.append(runner)
        listener = Listener(imbot_settings.WORKER_CHANNEL)
        use_listener = self.options.listen and Listener.available() and not self.options.once
        self.say(
            f"imbot_worker {self.name}: {len(self.runners)} runner(s), batches of {size}, "
            f"lease {self.lease.total_seconds():g} s, "
            + ("woken by LISTEN/NOTIFY" if use_listener else f"polling every {self.poll:g} s")
            + (", fetching Event.get for fetch-mode bots" if self.fetcher is not None else "")
        )
        self._heartbeat()
        for runner in self.runners:
            runner.start()
        try:
            self._watch(listener if use_listener else None)
        finally:
            self.stopping.set()
            for runner in self.runners:
                runner.wake.set()
            for runner in self.runners:
                runner.join()
            listener.close()
            self._heartbeat(stopped=True)
            self.say(f"imbot_worker {self.name} stopped: {self.status()}")
        return 1 if any(r.error for r in self.runners) else 0

    def _watch(self, listener: Listener | None) -> None:
        renew_every = max(self.lease.total_seconds() / 4, 0.1)
        next_renew = time.monotonic() + renew_every
        next_heartbeat = time.monotonic() + HEARTBEAT_EVERY
        next_log = time.monotonic() + self.options.log_every
        while not self.stopping.is_set():
            if not any(r.is_alive() for r in self.runners):
                return
            if listener is not None:
                if listener.wait(TICK):
                    for runner in self.runners:
                        runner.wake.set()
            else:
                self.stopping.wait(TICK)
            now = time.monotonic()
            try:
                for runner in self.runners:
                    runner.recorder.flush_if_slow()
                if now >= next_renew:
                    self._renew()
                    next_renew = now + renew_every
                if now >= next_heartbeat:
                    self._heartbeat()
                    next_heartbeat = now + HEARTBEAT_EVERY
                if now >= next_log:
                    self.say(f"imbot_worker {self.name}: {self.status()}")
                    next_log = now + self.options.log_every
            except DatabaseError:
                logger.exception("worker bookkeeping failed; retrying on the next tick")
                close_old_connections()

    def _renew(self) -> None:
        for runner in self.runners:
            held = runner.holding()
            if held is not None:
                renew(held[0], held[1], lease=self.lease)

    # ------------------------------------------------------------------ reporting

    def per_minute(self) -> int:
        """Events finished over the last minute (from samples taken at each heartbeat)."""
        now = time.monotonic()
        self._rates.append((now, self.counters.done))
        while len(self._rates) > 1 and self._rates[1][0] <= now - 60:
            self._rates.popleft()
        first_at, first_done = self._rates[0]
        span = now - first_at
        if span <= 0:
            return 0
        return round((self.counters.done - first_done) * min(60 / span, 60))

    def status(self) -> str:
        c = self.counters
        try:
            waiting = backlog().describe()
        except DatabaseError:
            waiting = "waiting unknown (database error)"
        fetched = f", {self.fetcher.counters.describe()}" if self.fetcher is not None else ""
        return f"done {c.done}, failed {c.failed}, {waiting}{fetched}"

    def _heartbeat(self, *, stopped: bool = False) -> None:
        try:
            WorkerHeartbeat.objects.update_or_create(
                name=self.name[:255],
                defaults={
                    "host": socket.gethostname()[:255],
                    "pid": os.getpid(),
                    "concurrency": len(self.runners),
                    "started_at": self.started_at,
                    "last_seen": timezone.now(),
                    "events_done": self.counters.done,
                    "events_failed": self.counters.failed,
                    "per_minute": self.per_minute(),
                    "stopped": stopped,
                },
            )
        except DatabaseError:
            logger.exception("could not store the worker heartbeat")

    def _install_signals(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return

        def stop(signum: int, frame: Any) -> None:
            if not self.stopping.is_set():
                logger.info("signal %s: finishing the current events, then stopping", signum)
            self.stopping.set()
            for runner in self.runners:
                runner.wake.set()

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
