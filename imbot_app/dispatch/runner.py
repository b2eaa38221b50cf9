"""Running the handlers of a stored event, recorded, at most once each.

The on-commit hook (:mod:`imbot_app.dispatch.hooks`), the Celery task and the worker all end in
:func:`run_event`; a replay uses :func:`run_events`, which runs each of many events the same
way with the bookkeeping around the handlers (claim, loading, lookups) shared by a batch.

:func:`run_event` is safe to call any number of times, from any number of processes:

1. It **claims** the event with one conditional UPDATE: only an event still ``received``
   (or, when forced, already processed or failed) whose previous claim is free or has
   expired can be claimed.  A second delivery of the same task, or a replay racing a worker,
   finds the claim taken and backs off (:attr:`Outcome.BUSY` says for how long).
2. It rebuilds the contexts from the database (:func:`imbot_app.dispatch.loading.load`).
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

import logging
from collections.abc import Callable, Generator, Iterable, Iterator
from datetime import datetime, timedelta

from django.db.models import Q
from django.utils import timezone

from imbot_app import events as ev
from imbot_app.conf import imbot_settings
from imbot_app.dispatch import claims, loading
from imbot_app.dispatch.claims import DispatchResult, Outcome
from imbot_app.dispatch.event_run import IMMEDIATE, EventRun, Recorder, has_handlers
from imbot_app.models import Event, Message
from imbot_app.outbound import calls

logger = logging.getLogger("imbot_app.dispatch")


# --------------------------------------------------------------------------- running


def run_event(
    event_id: int, *, force: bool = False, parsed: ev.BitrixEvent | None = None
) -> DispatchResult:
    """Run the handlers of a stored event once; see the module docstring for the guarantees.

    ``force`` runs an event that was already processed or failed again, every handler anew
    (what a replay asks for).  Database errors in the bookkeeping propagate (the Celery task
    retries them); handler exceptions never do.
    """
    token = claims.new_token()
    lease = timedelta(seconds=imbot_settings.DISPATCH_LEASE)
    now = timezone.now()
    if not claims.claim(Q(pk=event_id), token=token, lease=lease, force=force, now=now):
        return claims.not_claimed(event_id, force=force, now=now)
    try:
        event = Event.objects.select_related("portal").get(pk=event_id)
        run = EventRun(event, token=token, lease=lease, force=force, claimed_at=now)
        return run.run(parsed)
    except BaseException:
        claims.release(event_id, token)
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
        self.token = token or claims.new_token()
        self.claimed_at = claimed_at  # set: already claimed by the caller
        self.lease = timedelta(seconds=imbot_settings.DISPATCH_LEASE)
        self.recorder: Recorder = IMMEDIATE
        self._make_sender: Callable[[], calls.Sender] | None = None

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
                run = EventRun(
                    event, token=self.token, lease=self.lease, force=self.force, claimed_at=now
                )
                run.recorder = self.recorder
                result = self._run_one(run, parsed.get(event_id), messages)
                pending.discard(event_id)
                yield result
        finally:
            if pending:
                claims.release_many(sorted(pending), self.token)

    def _claim_and_load(self, now: datetime) -> dict[int, Event]:
        if self.claimed_at is not None:
            rows = Event.objects.select_related("portal").filter(
                pk__in=self.ids, claimed_by=self.token
            )
            return {event.pk: event for event in rows}
        claimed = claims.claim(
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
            event_id: claims.why_not_claimed(
                event_id, rows.get(event_id), force=self.force, now=now
            )
            for event_id in event_ids
        }

    def _prefetch(
        self, events: list[Event]
    ) -> tuple[dict[int, ev.BitrixEvent], dict[loading.MessageKey, Message]]:
        """The typed events of those with handlers, and the messages their contexts hold.

        A payload that no longer parses is left to :func:`~imbot_app.dispatch.loading.load`, which
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
                parsed[event.pk] = loading.parse_stored(event)
            except loading.ContextUnavailable:
                continue
        wanted = [
            key
            for event in events
            if event.pk in parsed and (key := loading.message_key(event, parsed[event.pk]))
        ]
        return parsed, loading.prefetch_messages(wanted)

    def _run_one(
        self,
        run: EventRun,
        parsed: ev.BitrixEvent | None,
        messages: dict[loading.MessageKey, Message],
    ) -> DispatchResult:
        if not run._renew_claim():
            logger.warning("lost the claim on event %s to another process", run.event.pk)
            return DispatchResult(run.event.pk, Outcome.CLAIM_LOST)
        return run.run(parsed, messages=messages, make_sender=self._sender)

    def _sender(self) -> calls.Sender:
        """``IMBOT_SENDER`` is resolved once per batch, when an event first needs a sender."""
        if self._make_sender is None:
            self._make_sender = calls.sender_factory()
        return self._make_sender()
