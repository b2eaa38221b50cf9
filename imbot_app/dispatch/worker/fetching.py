"""``imbot_worker``'s fetch thread: poll ``imbot.v2.Event.get`` for every fetch-mode bot.

A Chatbots 2.0 bot in fetch mode (``Bot.api = "v2"``, ``event_mode = "fetch"``, not deleted,
on an installed portal) has no public address: Bitrix24 keeps its events in a queue, and this
thread pulls them.  Every worker process runs one :class:`Fetcher`; they share the bots through
the lease of :mod:`imbot_app.dispatch.fetch_lease` (one conditional UPDATE decides), so however
many workers run, on however many machines, one bot is polled by one of them at a time.

Each poll is :func:`imbot_app.dispatch.fetch.poll_bot`: the page is stored through the
webhook's own store and its offset advanced in one transaction, and only the *next*
``Event.get`` sends that offset (which is what deletes the events in Bitrix24).  When to poll a
bot again is the poll's own answer (``PollResult.next_poll_in``, also kept as
``BotFetchState.next_poll_at``): ``IMBOT_FETCH_IDLE_INTERVAL`` on an empty queue,
``IMBOT_FETCH_BUSY_INTERVAL`` (at least 2 s) while ``hasMore``, exponential backoff after
429 / 503 / network errors.  The thread sleeps until the earliest bot is due (a tick at most).

Handlers: fetched events are stored ``received``, exactly like posted ones, and *this worker's
own queue* runs them: the runners are woken as soon as a page commits (and, on PostgreSQL,
every worker through NOTIFY).  So a fetched event gets the claims, retries, HandlerRun records
and crash recovery every other event gets, and a page is never held up by its handlers.  In
Celery mode each stored event is sent as a task instead.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from django.db import DatabaseError, close_old_connections, connection
from django.db.models import Min, QuerySet
from django.utils import timezone

from imbot_app.conf import imbot_settings
from imbot_app.dispatch.fetch import PollOutcome, PollResult, due_states, poll_bot, poller_name
from imbot_app.dispatch.hooks import CELERY, enqueue
from imbot_app.dispatch.worker.queue import notify_workers
from imbot_app.models import Bot, BotFetchState, Portal

logger = logging.getLogger("imbot_app.fetch")

#: The longest the thread sleeps between looks at the bots (new bots, a lease freed early).
TICK = 1.0
#: How often the fetch states of newly registered fetch-mode bots are created.
SYNC_EVERY = 5.0
#: Bots polled per look; the rest wait for the next one (a tick later at most).
BATCH = 50


def fetch_bots() -> QuerySet[Bot]:
    """The bots a worker polls: v2, fetch mode, not deleted, on an installed portal."""
    return Bot.objects.filter(
        api="v2",
        event_mode="fetch",
        deleted_at__isnull=True,
        portal__status=Portal.Status.INSTALLED,
    )


def sync_states() -> int:
    """Create the fetch state (offset 0) of every fetch-mode bot that has none; how many."""
    missing = list(
        fetch_bots().filter(fetch_state__isnull=True).values_list("pk", flat=True)[:1000]
    )
    BotFetchState.objects.bulk_create(
        [BotFetchState(bot_id=pk) for pk in missing], ignore_conflicts=True
    )
    return len(missing)


def due(now: datetime) -> list[BotFetchState]:
    """The states due now whose bot still qualifies, oldest first; their leases free."""
    states = due_states(now).filter(
        bot__api="v2",
        bot__event_mode="fetch",
        bot__deleted_at__isnull=True,
        bot__portal__status=Portal.Status.INSTALLED,
    )
    return list(states[:BATCH])


@dataclass
class FetchCounters:
    polls: int = 0
    stored: int = 0
    failures: int = 0
    last_error: str = ""
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, result: PollResult) -> None:
        with self.lock:
            self.polls += 1
            self.stored += result.stored
            if result.outcome == PollOutcome.FAILED:
                self.failures += 1
                self.last_error = result.error[:200]

    def describe(self) -> str:
        return f"fetched {self.stored} in {self.polls} poll(s), {self.failures} failed"


class Fetcher(threading.Thread):
    """The worker's one fetch thread (see the module's doc)."""

    def __init__(
        self,
        *,
        stopping: threading.Event,
        wake_runners: Callable[[], None],
        limit: int | None = None,
    ) -> None:
        super().__init__(name="imbot-fetch", daemon=True)
        self.stopping = stopping
        self.wake_runners = wake_runners
        self.limit = limit
        self.owner = poller_name()
        self.counters = FetchCounters()
        self.celery = imbot_settings.DISPATCH == CELERY
        self._next_sync = 0.0

    def run(self) -> None:
        try:
            while not self.stopping.is_set():
                try:
                    wait = self.tick()
                except DatabaseError:
                    logger.exception("fetch: database error; trying again in a tick")
                    close_old_connections()
                    wait = TICK
                self.stopping.wait(wait)
        finally:
            connection.close()

    def tick(self) -> float:
        """Poll every bot due now; the seconds until the next one is (a tick at most)."""
        clock = timezone.now().timestamp()
        if clock >= self._next_sync:
            sync_states()
            self._next_sync = clock + SYNC_EVERY
        for state in due(timezone.now()):
            if self.stopping.is_set():
                break
            self.poll(state)
        upcoming = BotFetchState.objects.filter(bot__in=fetch_bots()).aggregate(
            first=Min("next_poll_at")
        )["first"]
        if upcoming is None:
            return TICK
        return max(0.01, min(TICK, (upcoming - timezone.now()).total_seconds()))

    def poll(self, state: BotFetchState) -> PollResult:
        bot = state.bot
        result = poll_bot(
            state, owner=self.owner, bot_token=bot.bot_token or None, limit=self.limit
        )
        self.counters.add(result)
        if result.event_ids:
            self._dispatch(result.event_ids)
        if result.outcome == PollOutcome.POLLED:
            logger.info(
                "fetched %s event(s) of bot %s (%s new, offset %s%s)",
                result.fetched,
                bot.bot_id,
                result.stored,
                result.offset,
                ", more waiting" if result.has_more else "",
            )
        elif result.outcome == PollOutcome.FAILED:
            logger.warning(
                "fetch of bot %s failed, next try in %.1f s: %s",
                bot.bot_id,
                result.next_poll_in,
                result.error[:300],
            )
        return result

    def _dispatch(self, event_ids: tuple[int, ...]) -> None:
        """Hand the page's committed events to the handlers (see the module's doc)."""
        try:
            if self.celery:
                for event_id in event_ids:
                    enqueue(event_id)
                return
            self.wake_runners()
            notify_workers()
        except Exception:
            # Stored and committed: the queue (or the Celery sweep) picks them up regardless.
            logger.exception("fetched events stored, but waking their handlers failed")
