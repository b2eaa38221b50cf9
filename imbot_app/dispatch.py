"""Running the handlers of a stored event: inline or through Celery, recorded, at most once each.

:func:`event_stored` is the hook the endpoint gives :func:`~imbot_app.store.store_event`; it
runs only after the event's transaction has committed and starts handlers the way
``IMBOT_DISPATCH`` says: ``"inline"`` runs them right there, in the web process;
``"worker"`` only wakes ``imbot_worker`` (:mod:`imbot_app.worker`), which claims batches from
the Event table and runs them through :func:`run_claimed`; ``"celery"`` sends one task
carrying only the event id (:mod:`imbot_app.tasks`).  Inline and Celery end in
:func:`run_event`; a replay uses :func:`run_events`, which runs each of many events the same
way with the bookkeeping around the handlers (claim, loading, lookups) shared by a batch.

:func:`run_event` is safe to call any number of times, from any number of processes:

1. It **claims** the event with one conditional UPDATE: only an event still ``received``
   (or, when forced, already processed or failed) whose previous claim is free or has
   expired can be claimed.  A second delivery of the same task, or a replay racing a worker,
   finds the claim taken and backs off (:attr:`Outcome.BUSY` says for how long).
2. It rebuilds the contexts from the database (:func:`imbot_app.context.load`).
3. It runs every receiver of :data:`~imbot_app.signals.event_received` and of the event's
   kind signal, highest ``priority`` first, each recorded as a
   :class:`~imbot_app.models.HandlerRun` (running, then succeeded or failed with the
   traceback).  One handler's exception never stops the others; it is sent through
   :data:`~imbot_app.signals.handler_failed`.  Handlers that already *succeeded* for this
   event in an earlier, interrupted attempt are skipped, so a worker killed mid-event and
   redelivered does not run a finished handler twice; a handler left ``running`` by a dead
   process is marked failed ("abandoned") and run again.
4. It sets the event ``processed`` (or ``failed`` if a handler failed), stamps
   ``processed_at`` and releases the claim.

The claim lasts ``IMBOT_DISPATCH_LEASE`` seconds and is renewed before each handler, so a
process that died holding it blocks the event for at most that long.
"""

from __future__ import annotations

import enum
import logging
import os
import socket
import time
import traceback
import uuid
from collections.abc import Callable, Generator, Iterable, Iterator, Mapping, MutableMapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from asgiref.sync import async_to_sync, iscoroutinefunction
from django.db import DatabaseError
from django.db.models import F, Q
from django.dispatch import Signal
from django.utils import timezone

from . import context as ctx
from . import events as ev
from . import signals
from .conf import imbot_settings
from .models import Event, HandlerRun, Message
from .routing import NO_ARGUMENTS, Match, Route, handler_path

logger = logging.getLogger("imbot_app.dispatch")

INLINE = "inline"
CELERY = "celery"
WORKER = "worker"
MODES = (INLINE, WORKER, CELERY)

_HOST = socket.gethostname()

# The typed event class each known event name parses to: the signals' ``sender``.
EVENT_CLASSES: dict[str, type[ev.BitrixEvent]] = {
    ev.MESSAGE_ADD: ev.MessageAdd,
    ev.MESSAGE_UPDATE: ev.MessageUpdate,
    ev.MESSAGE_DELETE: ev.MessageDelete,
    ev.COMMAND_ADD: ev.CommandAdd,
    ev.BOT_JOIN_CHAT: ev.BotJoinChat,
    ev.BOT_DELETE: ev.BotDelete,
    ev.APP_INSTALL: ev.AppInstall,
    ev.APP_UPDATE: ev.AppUpdate,
    ev.APP_UNINSTALL: ev.AppUninstall,
}

ABANDONED = "abandoned: the process running this handler stopped before it finished"


class Outcome(enum.StrEnum):
    """What :func:`run_event` did."""

    PROCESSED = "processed"  # every handler that ran succeeded
    FAILED = "failed"  # at least one handler failed (the others still ran)
    ALREADY_DONE = "already_done"  # processed or failed before, and not forced
    BUSY = "busy"  # another process holds the claim; try again in ``retry_in`` seconds
    CLAIM_LOST = "claim_lost"  # our claim expired mid-way and another process took over
    INVALID = "invalid"  # the event was stored as invalid: nothing to run
    MISSING = "missing"  # no such event


@dataclass(frozen=True)
class DispatchResult:
    event_id: int
    outcome: Outcome
    runs: tuple[HandlerRun, ...] = ()
    retry_in: float | None = None


def worker_name() -> str:
    """``host:pid`` of this process (computed per call: prefork children have their own pid)."""
    return f"{_HOST}:{os.getpid()}"


# --------------------------------------------------------------------------- starting


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
            from .worker.queue import notify_workers

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
            event.name,
            mode,
        )


def event_class_for(name: str) -> type[ev.BitrixEvent]:
    """The typed event class an event name parses to: the ``sender`` of its signals."""
    return EVENT_CLASSES.get(name, ev.GenericEvent)


def has_handlers(name: str) -> bool:
    """Whether any receiver or route listens for events called ``name``."""
    event_class = event_class_for(name)
    kind = signals.kind_signal(event_class)
    if signals.event_received.has_listeners(event_class):
        return True
    return kind is not None and kind[0].has_listeners(event_class)


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
    from .tasks import run_event_task

    options: dict[str, Any] = {}
    if imbot_settings.CELERY_QUEUE:
        options["queue"] = imbot_settings.CELERY_QUEUE
    run_event_task.apply_async(args=(event_id,), kwargs={"force": force}, **options)


# --------------------------------------------------------------------------- running


def run_event(
    event_id: int, *, force: bool = False, parsed: ev.BitrixEvent | None = None
) -> DispatchResult:
    """Run the handlers of a stored event once; see the module docstring for the guarantees.

    ``force`` runs an event that was already processed or failed again, every handler anew
    (what a replay asks for).  Database errors in the bookkeeping propagate (the Celery task
    retries them); handler exceptions never do.
    """
    token = _new_token()
    lease = timedelta(seconds=imbot_settings.DISPATCH_LEASE)
    now = timezone.now()
    if not _claim(Q(pk=event_id), token=token, lease=lease, force=force, now=now):
        return _not_claimed(event_id, force=force, now=now)
    try:
        event = Event.objects.select_related("portal").get(pk=event_id)
        run = _EventRun(event, token=token, lease=lease, force=force, claimed_at=now)
        return run.run(parsed)
    except BaseException:
        _release(event_id, token)
        raise


# Events claimed together by run_events: enough to spread the claim and load over many,
# few enough that a batch's rows are read shortly before its events run.
BATCH_SIZE = 100


def run_events(
    event_ids: Iterable[int], *, force: bool = False
) -> Generator[DispatchResult, None, None]:
    """:func:`run_event` for many events, one result per event as it finishes (a generator).

    The handlers of each event run exactly as :func:`run_event` runs them, with the same
    guarantees (claim and lease, one HandlerRun per handler, succeeded handlers skipped
    unless forced, the status set per event).  What is shared is the bookkeeping around them:
    up to :data:`BATCH_SIZE` events are claimed with one conditional UPDATE under one token,
    read with their portals in one SELECT, their stored messages in one more, and the events
    not claimed are looked at in one query.  A batch's claim runs from when it is taken, so
    before each event starts its claim is renewed when half the lease is gone; an event
    another process took over meanwhile is left alone and reported :attr:`Outcome.CLAIM_LOST`.
    Its rows are read when the batch is claimed, not when the event starts (a message two
    events of the batch share is read again for the second).

    Ids are taken once each, in the order given.  An exception (a database error in the
    bookkeeping) propagates, as from :func:`run_event`, once the claims of that event and of
    the rest of its batch are released; so are the claims of events not reached when the
    caller stops iterating.
    """
    ids = list(dict.fromkeys(event_ids))
    for start in range(0, len(ids), BATCH_SIZE):
        yield from _Batch(ids[start : start + BATCH_SIZE], force=force).run()


def run_claimed(
    event_ids: list[int], *, token: str, claimed_at: datetime, recorder: Recorder
) -> Generator[DispatchResult, None, None]:
    """:func:`run_events` for events the caller already claimed under ``token`` (imbot_worker).

    ``recorder`` takes the HandlerRun rows and final statuses (the worker batches them);
    everything else is as :func:`run_events` does it.
    """
    batch = _Batch(event_ids, force=False, token=token, claimed_at=claimed_at)
    batch.recorder = recorder
    yield from batch.run()


class _Batch:
    """Events claimed together; :meth:`run` yields a :class:`DispatchResult` for each."""

    def __init__(
        self,
        event_ids: list[int],
        *,
        force: bool,
        token: str | None = None,
        claimed_at: datetime | None = None,
    ) -> None:
        self.ids = event_ids
        self.force = force
        self.token = token or _new_token()
        self.claimed_at = claimed_at  # set: already claimed by the caller
        self.lease = timedelta(seconds=imbot_settings.DISPATCH_LEASE)
        self.recorder: Recorder = IMMEDIATE
        self._make_sender: Callable[[], ctx.Sender] | None = None

    def run(self) -> Iterator[DispatchResult]:
        now = self.claimed_at or timezone.now()
        events = self._claim_and_load(now)
        pending = set(events)  # claimed, not finished: released if we stop early
        try:
            others = self._not_claimed([i for i in self.ids if i not in events], now=now)
            parsed, messages = self._prefetch(list(events.values()))
            for event_id in self.ids:
                event = events.get(event_id)
                if event is None:
                    yield others[event_id]
                    continue
                run = _EventRun(
                    event, token=self.token, lease=self.lease, force=self.force, claimed_at=now
                )
                run.recorder = self.recorder
                result = self._run_one(run, parsed.get(event_id), messages)
                pending.discard(event_id)
                yield result
        finally:
            if pending:
                _release_many(sorted(pending), self.token)

    def _claim_and_load(self, now: datetime) -> dict[int, Event]:
        if self.claimed_at is not None:
            rows = Event.objects.select_related("portal").filter(
                pk__in=self.ids, claimed_by=self.token
            )
            return {event.pk: event for event in rows}
        claimed = _claim(
            Q(pk__in=self.ids), token=self.token, lease=self.lease, force=self.force, now=now
        )
        if not claimed:
            return {}
        rows = Event.objects.select_related("portal").filter(pk__in=self.ids, claimed_by=self.token)
        return {event.pk: event for event in rows}

    def _not_claimed(self, event_ids: list[int], *, now: datetime) -> dict[int, DispatchResult]:
        if not event_ids:
            return {}
        rows = {
            row["pk"]: row
            for row in Event.objects.filter(pk__in=event_ids).values(
                "pk", "status", "claim_expires_at"
            )
        }
        return {
            event_id: _why_not_claimed(event_id, rows.get(event_id), force=self.force, now=now)
            for event_id in event_ids
        }

    def _prefetch(
        self, events: list[Event]
    ) -> tuple[dict[int, ev.BitrixEvent], dict[ctx.MessageKey, Message]]:
        """The typed events of those with handlers, and the messages their contexts hold.

        A payload that no longer parses is left to :func:`~imbot_app.context.load`, which
        fails the event with the reason when its turn comes.
        """
        parsed: dict[int, ev.BitrixEvent] = {}
        listened: dict[str, bool] = {}
        for event in events:
            if event.name not in listened:
                listened[event.name] = has_handlers(event.name)
            if not listened[event.name]:
                continue
            try:
                parsed[event.pk] = ctx.parse_stored(event)
            except ctx.ContextUnavailable:
                continue
        wanted = [
            key
            for event in events
            if event.pk in parsed and (key := ctx.message_key(event, parsed[event.pk]))
        ]
        return parsed, ctx.prefetch_messages(wanted)

    def _run_one(
        self,
        run: _EventRun,
        parsed: ev.BitrixEvent | None,
        messages: dict[ctx.MessageKey, Message],
    ) -> DispatchResult:
        if not run._renew_claim():
            logger.warning("lost the claim on event %s to another process", run.event.pk)
            return DispatchResult(run.event.pk, Outcome.CLAIM_LOST)
        return run.run(parsed, messages=messages, make_sender=self._sender)

    def _sender(self) -> ctx.Sender:
        """``IMBOT_SENDER`` is resolved once per batch, when an event first needs a sender."""
        if self._make_sender is None:
            self._make_sender = ctx.sender_factory()
        return self._make_sender()


class Recorder:
    """Where an :class:`_EventRun` writes its HandlerRun rows and the event's final status.

    This one writes each at once (three commits for an event with one handler); imbot_worker
    hands batches a recorder that buffers them (:mod:`imbot_app.worker.recorder`).
    """

    def started(self, run: HandlerRun) -> None:
        run.save()

    def finished(self, run: HandlerRun) -> None:
        run.save(update_fields=["status", "error", "traceback", "duration_ms", "stopped"])

    def finish_event(
        self, event_id: int, token: str, *, status: str, error: str, now: datetime
    ) -> bool:
        """Set the event's status and release the claim, if still ours; whether it was."""
        return bool(
            Event.objects.filter(pk=event_id, claimed_by=token).update(
                status=status,
                processed_at=now,
                error=error[:10_000],
                claimed_by="",
                claim_expires_at=None,
            )
        )


IMMEDIATE = Recorder()


def _new_token() -> str:
    """A claim's owner: this process, plus a random part telling its claims apart."""
    return f"{worker_name()}:{uuid.uuid4().hex[:12]}"


def _claim(which: Q, *, token: str, lease: timedelta, force: bool, now: datetime) -> int:
    """Claim the runnable, unclaimed (or expired) events among ``which``: one UPDATE."""
    runnable = [Event.Status.RECEIVED]
    if force:
        runnable += [Event.Status.PROCESSED, Event.Status.FAILED]
    return (
        Event.objects.filter(which, status__in=runnable)
        .filter(Q(claim_expires_at__isnull=True) | Q(claim_expires_at__lte=now))
        .update(
            claimed_by=token,
            claim_expires_at=now + lease,
            dispatch_attempts=F("dispatch_attempts") + 1,
        )
    )


def _not_claimed(event_id: int, *, force: bool, now: datetime) -> DispatchResult:
    row = Event.objects.filter(pk=event_id).values("status", "claim_expires_at").first()
    return _why_not_claimed(event_id, row, force=force, now=now)


def _why_not_claimed(
    event_id: int, row: Mapping[str, Any] | None, *, force: bool, now: datetime
) -> DispatchResult:
    """What an event the claim did not take is doing, from its status and claim."""
    if row is None:
        return DispatchResult(event_id, Outcome.MISSING)
    if row["status"] == Event.Status.INVALID:
        return DispatchResult(event_id, Outcome.INVALID)
    if row["status"] != Event.Status.RECEIVED and not force:
        return DispatchResult(event_id, Outcome.ALREADY_DONE)
    expires = row["claim_expires_at"]
    retry_in = max((expires - now).total_seconds(), 0.0) if expires else 0.0
    return DispatchResult(event_id, Outcome.BUSY, retry_in=retry_in)


def _release(event_id: int, token: str) -> None:
    """Give the claim back after an error, so a retry need not wait for the lease (best effort)."""
    _release_many([event_id], token)


def _release_many(event_ids: list[int], token: str) -> None:
    """:func:`_release` for several events, in one UPDATE."""
    try:
        Event.objects.filter(pk__in=event_ids, claimed_by=token).update(
            claimed_by="", claim_expires_at=None
        )
    except DatabaseError:
        logger.warning(
            "could not release the claim on events %s; they expire by themselves", event_ids
        )


def live_receivers(signal: Signal, sender: Any) -> list[Callable[..., Any]]:
    """The receivers ``signal.send(sender)`` would call, in the order it would call them.

    Django offers no public way to call receivers one by one, which recording each run
    needs, so this reads ``Signal._live_receivers`` (Django >= 5.0: sync and async lists);
    ``tests/test_signals.py`` guards it.
    """
    sync_receivers, async_receivers = signal._live_receivers(sender)
    return [*sync_receivers, *async_receivers]


@dataclass
class _Candidate:
    """One receiver to call with one context, in priority order."""

    receiver: Callable[..., Any]
    signal: Signal
    keyword: str
    context: ctx.EventContext
    suffix: str = ""

    @property
    def priority(self) -> int:
        return self.receiver.priority if isinstance(self.receiver, Route) else 0

    @property
    def path(self) -> str:
        target = self.receiver.handler if isinstance(self.receiver, Route) else self.receiver
        return handler_path(target)

    def match(self) -> Match | None:
        if isinstance(self.receiver, Route):
            return self.receiver.match(self.context)
        return NO_ARGUMENTS

    def call(self, sender: Any, match: Match) -> Any:
        if isinstance(self.receiver, Route):
            return self.receiver.invoke(self.context, match)
        named = {"signal": self.signal, "sender": sender, self.keyword: self.context}
        if iscoroutinefunction(self.receiver):
            return async_to_sync(self.receiver)(**named)
        return self.receiver(**named)


@dataclass
class _EventRun:
    """One claimed pass over an event's handlers."""

    event: Event
    token: str
    lease: timedelta
    force: bool
    claimed_at: datetime
    runs: list[HandlerRun] = field(default_factory=list)
    recorder: Recorder = IMMEDIATE

    def __post_init__(self) -> None:
        self.claim_expires_at = self.claimed_at + self.lease
        self.worker = worker_name()

    def run(
        self,
        parsed: ev.BitrixEvent | None = None,
        *,
        messages: MutableMapping[ctx.MessageKey, Message] | None = None,
        make_sender: Callable[[], ctx.Sender] | None = None,
    ) -> DispatchResult:
        """Run the handlers; ``messages`` and ``make_sender`` are what a batch prepared."""
        if not has_handlers(self.event.name):
            return self._finish()
        try:
            loaded = ctx.load(self.event, parsed=parsed, messages=messages, make_sender=make_sender)
        except ctx.ContextUnavailable as exc:
            logger.error("event %s cannot be dispatched: %s", self.event.pk, exc)
            return self._finish(error=str(exc))
        succeeded = self._previous_attempts()
        sender = loaded.event_class
        seen: dict[str, int] = {}
        for candidate in self._candidates(loaded):
            if loaded.state.stopped:
                break
            match = candidate.match()
            if match is None:
                continue
            key = candidate.path + candidate.suffix
            seen[key] = seen.get(key, 0) + 1
            if seen[key] > 1:
                key = f"{key}#{seen[key]}"
            key = key[:255]
            if key in succeeded:
                loaded.state.stopped = succeeded[key]
                continue
            if not self._renew_claim():
                logger.warning("lost the claim on event %s to another process", self.event.pk)
                return DispatchResult(self.event.pk, Outcome.CLAIM_LOST, tuple(self.runs))
            self._call(candidate, key, sender, match, loaded.state)
        failed = [run for run in self.runs if run.status == HandlerRun.Status.FAILED]
        error = "; ".join(f"{run.handler}: {run.error}" for run in failed)
        return self._finish(error=error)

    # ---------------------------------------------------------------- steps

    def _candidates(self, loaded: ctx.LoadedEvent) -> list[_Candidate]:
        sender = loaded.event_class
        candidates = [
            _Candidate(r, signals.event_received, signals.EVENT_KEYWORD, loaded.primary)
            for r in live_receivers(signals.event_received, sender)
        ]
        kind = signals.kind_signal(sender)
        if kind is not None:
            signal, keyword = kind
            receivers = live_receivers(signal, sender)
            several = len(loaded.items) > 1
            for item in loaded.items:
                if isinstance(item, ctx.MessageContext) and item.is_from_bot:
                    logger.debug("event %s: message written by a bot, skipped", self.event.pk)
                    continue
                suffix = f"[{item.command_id}]" if several and hasattr(item, "command_id") else ""
                candidates.extend(_Candidate(r, signal, keyword, item, suffix) for r in receivers)
        # sorted() is stable: equal priorities keep the order they were connected in.
        return sorted(candidates, key=lambda c: -c.priority)

    def _previous_attempts(self) -> dict[str, bool]:
        """Handlers that already succeeded (and whether they stopped the rest); abandon runs.

        Nothing to look at on a first, unforced attempt: no run of this event exists yet.
        """
        if self.event.dispatch_attempts <= 1 and not self.force:
            return {}
        HandlerRun.objects.filter(event=self.event, status=HandlerRun.Status.RUNNING).update(
            status=HandlerRun.Status.FAILED, error=ABANDONED
        )
        if self.force:
            return {}
        return dict(
            HandlerRun.objects.filter(
                event=self.event, status=HandlerRun.Status.SUCCEEDED
            ).values_list("handler", "stopped")
        )

    def _renew_claim(self) -> bool:
        """Push the claim's expiry forward when half the lease is gone (one UPDATE, rarely)."""
        now = timezone.now()
        if self.claim_expires_at - now > self.lease / 2:
            return True
        renewed = Event.objects.filter(pk=self.event.pk, claimed_by=self.token).update(
            claim_expires_at=now + self.lease
        )
        self.claim_expires_at = now + self.lease
        return bool(renewed)

    def _call(
        self,
        candidate: _Candidate,
        key: str,
        sender: Any,
        match: Match,
        state: ctx.DispatchState,
    ) -> None:
        run = HandlerRun(
            event=self.event,
            handler=key,
            status=HandlerRun.Status.RUNNING,
            started_at=timezone.now(),
            worker=self.worker,
        )
        self.recorder.started(run)
        self.runs.append(run)
        started = time.perf_counter()
        try:
            candidate.call(sender, match)
        except Exception as exc:
            run.status = HandlerRun.Status.FAILED
            run.error = f"{type(exc).__name__}: {exc}"
            run.traceback = traceback.format_exc()
            failure: Exception | None = exc
        else:
            run.status = HandlerRun.Status.SUCCEEDED
            failure = None
        run.duration_ms = (time.perf_counter() - started) * 1000
        run.stopped = state.stopped
        self.recorder.finished(run)
        if failure is not None:
            logger.error(
                "handler %s failed for event %s (%s): %s",
                key,
                self.event.pk,
                self.event.name,
                run.error,
                exc_info=failure,
            )
            target = (
                candidate.receiver.handler
                if isinstance(candidate.receiver, Route)
                else candidate.receiver
            )
            for receiver, response in signals.handler_failed.send_robust(
                sender=target,
                handler=key,
                exception=failure,
                context=candidate.context,
                run=run,
            ):
                if isinstance(response, Exception):
                    logger.error("handler_failed receiver %r raised %r", receiver, response)

    def _finish(self, error: str = "") -> DispatchResult:
        status = Event.Status.FAILED if error else Event.Status.PROCESSED
        now = timezone.now()
        updated = self.recorder.finish_event(
            self.event.pk, self.token, status=status, error=error, now=now
        )
        runs = tuple(self.runs)
        if not updated:
            logger.warning("event %s: claim lost before its status could be set", self.event.pk)
            return DispatchResult(self.event.pk, Outcome.CLAIM_LOST, runs)
        self.event.status = status
        self.event.processed_at = now
        self.event.error = error
        outcome = Outcome.FAILED if error else Outcome.PROCESSED
        return DispatchResult(self.event.pk, outcome, runs)
