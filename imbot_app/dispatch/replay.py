"""Running stored events' handlers again: the loop the admin and ``imbot_replay`` share.

Every run goes through :func:`imbot_app.dispatch.runner.run_event`, or for many events
:func:`imbot_app.dispatch.runner.run_events` (:func:`replay_chunk`, the same runs with the
bookkeeping shared by a batch of events), so a replay has the same guarantees as a first
delivery: a claim per event (a replay racing a worker backs off and is
reported as skipped), one :class:`~imbot_app.models.HandlerRun` per handler, one handler's
exception never stopping the others, and the event's status set at the end.

Two ways to replay, the difference being the handlers that already succeeded:

* **resume** (``force=False``): events still ``received`` (never run, or their process died)
  and ``failed`` ones.  A failed event is put back to ``received`` and run unforced, so
  ``run_event`` skips the handlers that succeeded before and runs only the ones that failed
  or never ran: a user is not answered twice.  ``processed`` and ``invalid`` events are
  skipped.
* **force** (``force=True``): every handler anew, for processed and failed events too (what
  the admin's Replay does, and ``imbot_replay --force``).  ``invalid`` events never run: their
  payload does not parse.

Events are read by id in chunks (keyset pagination), never all at once, so a replay of a
million events holds one chunk of ids in memory.
"""

from __future__ import annotations

import enum
import logging
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from contextlib import closing
from dataclasses import dataclass, field
from datetime import datetime
from itertools import islice

from django.db.models import Q, QuerySet
from django.utils import timezone

from imbot_app import signals
from imbot_app.dispatch import context as ctx
from imbot_app.dispatch import loading
from imbot_app.dispatch.claims import DispatchResult, Outcome
from imbot_app.dispatch.event_run import live_receivers
from imbot_app.dispatch.routing import Route, handler_path
from imbot_app.dispatch.runner import BATCH_SIZE, run_event, run_events
from imbot_app.models import Event, HandlerRun
from imbot_app.protocol import event_class_for

__all__ = [
    "DEFAULT_CHUNK_SIZE",
    "ReplayResult",
    "ReplayStatus",
    "ReplaySummary",
    "Selection",
    "iter_event_ids",
    "iter_event_statuses",
    "planned_handlers",
    "reopen_failed",
    "replay_chunk",
    "replay_event",
    "replay_events",
    "would_run",
]

logger = logging.getLogger("imbot_app.replay")

DEFAULT_CHUNK_SIZE = 500

# What a resume replay picks when no status is asked for; force adds processed events.
RESUMABLE = (Event.Status.RECEIVED, Event.Status.FAILED)
FORCEABLE = (Event.Status.RECEIVED, Event.Status.FAILED, Event.Status.PROCESSED)

# Why run_event did not run an event, in words for the summary.
SKIP_REASONS = {
    Outcome.ALREADY_DONE: "already processed (use force to run it again)",
    Outcome.BUSY: "being run by another process",
    Outcome.CLAIM_LOST: "taken over by another process",
    Outcome.INVALID: "invalid payload",
    Outcome.MISSING: "no such event",
}


class ReplayStatus(enum.StrEnum):
    PROCESSED = "processed"
    FAILED = "failed"
    SKIPPED = "skipped"


@dataclass(frozen=True)
class ReplayResult:
    """What replaying one event gave: processed, failed (with why) or skipped (with why)."""

    event_id: int
    status: ReplayStatus
    detail: str = ""
    # One "handler: error" per failed handler, for a report of one line each.
    handler_errors: tuple[str, ...] = ()


@dataclass
class ReplaySummary:
    """Counts over a replay, and the first few failures to show."""

    processed: int = 0
    failed: int = 0
    skipped: int = 0
    skipped_reasons: Counter[str] = field(default_factory=Counter)
    failures: list[ReplayResult] = field(default_factory=list)
    max_failures_kept: int = 100

    @property
    def total(self) -> int:
        return self.processed + self.failed + self.skipped

    def add(self, result: ReplayResult) -> None:
        if result.status == ReplayStatus.PROCESSED:
            self.processed += 1
        elif result.status == ReplayStatus.FAILED:
            self.failed += 1
            if len(self.failures) < self.max_failures_kept:
                self.failures.append(result)
        else:
            self.skipped += 1
            self.skipped_reasons[result.detail] += 1

    def describe(self) -> str:
        """``processed 10, failed 2, skipped 3 (3 already processed ...)``."""
        text = f"processed {self.processed}, failed {self.failed}, skipped {self.skipped}"
        if self.skipped_reasons:
            reasons = ", ".join(f"{n} {why}" for why, n in self.skipped_reasons.most_common())
            text += f" ({reasons})"
        return text


@dataclass(frozen=True)
class Selection:
    """Which events a replay takes: the command line's filters, combined with AND.

    Without ``ids`` and ``statuses`` a resume replay takes received and failed events and a
    forced one processed events too.  With ``ids`` and no ``statuses`` every listed event is
    tried, and the ones that cannot run are reported as skipped.
    """

    ids: tuple[int, ...] = ()
    since: datetime | None = None
    until: datetime | None = None
    names: tuple[str, ...] = ()
    member_ids: tuple[str, ...] = ()
    statuses: tuple[str, ...] = ()
    force: bool = False

    def queryset(self) -> QuerySet[Event]:
        events = Event.objects.all()
        if self.ids:
            events = events.filter(pk__in=self.ids)
        if self.since is not None:
            events = events.filter(received_at__gte=self.since)
        if self.until is not None:
            events = events.filter(received_at__lt=self.until)
        if self.names:
            events = events.filter(name__in=[n.upper() for n in self.names])
        if self.member_ids:
            events = events.filter(portal__member_id__in=self.member_ids)
        if self.statuses:
            events = events.filter(status__in=self.statuses)
        elif not self.ids:
            events = events.filter(status__in=FORCEABLE if self.force else RESUMABLE)
        return events


def iter_event_ids(
    events: QuerySet[Event], *, chunk_size: int = DEFAULT_CHUNK_SIZE
) -> Iterator[list[int]]:
    """The ids of ``events`` in ascending chunks: ``WHERE id > last ORDER BY id LIMIT n``.

    Keyset pagination: each chunk is one indexed query however far in, and rows that change
    status while being replayed are neither skipped nor seen twice.
    """
    last = 0
    while True:
        chunk = list(
            events.filter(pk__gt=last).order_by("pk").values_list("pk", flat=True)[:chunk_size]
        )
        if not chunk:
            return
        yield chunk
        last = chunk[-1]


def iter_event_statuses(
    events: QuerySet[Event], *, chunk_size: int = DEFAULT_CHUNK_SIZE
) -> Iterator[list[tuple[int, str]]]:
    """Like :func:`iter_event_ids`, with each event's status as read (saves a query each:
    :func:`replay_event` only tries to reopen events it knows were failed)."""
    last = 0
    while True:
        chunk = list(
            events.filter(pk__gt=last).order_by("pk").values_list("pk", "status")[:chunk_size]
        )
        if not chunk:
            return
        yield chunk
        last = chunk[-1][0]


def reopen_failed(event_id: int) -> bool:
    """Put a failed, unclaimed event back to ``received``, for an unforced (resuming) run.

    ``run_event`` only claims ``received`` events unless forced, and a forced run starts every
    handler anew; a reopened event is claimed normally and its succeeded handlers are skipped.
    Conditional on the claim being free, so an event some process is running is left alone.
    """
    return bool(_reopen(Q(pk=event_id)))


def _reopen(which: Q) -> int:
    """:func:`reopen_failed` for the events ``which`` selects, in one UPDATE."""
    now = timezone.now()
    return (
        Event.objects.filter(which, status=Event.Status.FAILED)
        .filter(Q(claim_expires_at__isnull=True) | Q(claim_expires_at__lte=now))
        .update(status=Event.Status.RECEIVED)
    )


def replay_event(event_id: int, *, force: bool, status: str | None = None) -> ReplayResult:
    """Run one event's handlers again (see the module docstring for ``force``); never raises.

    ``status``, when the caller read it, spares the attempt to reopen an event that was not
    failed.  An error outside the handlers (the database, say) counts as a failure of this
    event, so a loop over many events goes on.
    """
    try:
        if not force and status in (None, Event.Status.FAILED):
            reopen_failed(event_id)
        return _replayed(run_event(event_id, force=force))
    except Exception as exc:
        logger.exception("replaying event %s failed outside its handlers", event_id)
        return ReplayResult(event_id, ReplayStatus.FAILED, f"{type(exc).__name__}: {exc}")


def replay_chunk(chunk: Iterable[tuple[int, str | None]], *, force: bool) -> Iterator[ReplayResult]:
    """:func:`replay_event` for each ``(event id, status)`` of a chunk, in order; never raises.

    The same results, faster: events go through :func:`~imbot_app.dispatch.runner.run_events` in
    batches of :data:`~imbot_app.dispatch.runner.BATCH_SIZE`, and a resume reopens a batch's failed
    events in one UPDATE just before running it.  An error outside the handlers counts as a
    failure of the event it happened on, and the rest of the chunk goes on.  Each id is
    replayed once.
    """
    statuses: dict[int, str | None] = {}
    for event_id, status in chunk:
        statuses.setdefault(event_id, status)
    ids = iter(statuses)
    while batch := list(islice(ids, BATCH_SIZE)):
        yield from _replay_batch(batch, statuses, force=force)


def _replay_batch(
    ids: list[int], statuses: dict[int, str | None], *, force: bool
) -> Iterator[ReplayResult]:
    remaining = ids
    while remaining:
        done: set[int] = set()
        try:
            if not force:
                reopenable = [i for i in remaining if statuses[i] in (None, Event.Status.FAILED)]
                if reopenable:
                    _reopen(Q(pk__in=reopenable))
            with closing(run_events(remaining, force=force)) as results:
                for result in results:
                    replayed = _replayed(result)
                    done.add(result.event_id)
                    yield replayed
            return
        except Exception as exc:
            failing = next(i for i in remaining if i not in done)
            logger.exception("replaying event %s failed outside its handlers", failing)
            yield ReplayResult(failing, ReplayStatus.FAILED, f"{type(exc).__name__}: {exc}")
            done.add(failing)
            remaining = [i for i in remaining if i not in done]


def _replayed(result: DispatchResult) -> ReplayResult:
    """What :func:`replay_event` makes of a run's result."""
    if result.outcome == Outcome.ALREADY_DONE and _is_failed(result.event_id):
        # Still failed, so not reopened: another process holds its claim.
        return ReplayResult(result.event_id, ReplayStatus.SKIPPED, SKIP_REASONS[Outcome.BUSY])
    return _result(result)


def _is_failed(event_id: int) -> bool:
    return Event.objects.filter(pk=event_id, status=Event.Status.FAILED).exists()


def _result(result: DispatchResult) -> ReplayResult:
    if result.outcome == Outcome.PROCESSED:
        return ReplayResult(result.event_id, ReplayStatus.PROCESSED)
    if result.outcome == Outcome.FAILED:
        errors = [
            f"{run.handler}: {run.error}"
            for run in result.runs
            if run.status == HandlerRun.Status.FAILED
        ]
        detail = "; ".join(errors) or _stored_error(result.event_id)
        return ReplayResult(result.event_id, ReplayStatus.FAILED, detail, tuple(errors))
    return ReplayResult(result.event_id, ReplayStatus.SKIPPED, SKIP_REASONS[result.outcome])


def _stored_error(event_id: int) -> str:
    """The event's own error (e.g. its payload no longer parses) when no handler failed."""
    return str(Event.objects.filter(pk=event_id).values_list("error", flat=True).first() or "")


def replay_events(
    event_ids: Iterable[int],
    *,
    force: bool,
    on_result: Callable[[ReplayResult], None] | None = None,
) -> ReplaySummary:
    """Replay each event in turn (chunk by chunk); failures are counted and the loop goes on."""
    summary = ReplaySummary()
    ids = iter(event_ids)
    while chunk := list(islice(ids, DEFAULT_CHUNK_SIZE)):
        for result in replay_chunk(((event_id, None) for event_id in chunk), force=force):
            summary.add(result)
            if on_result is not None:
                on_result(result)
    return summary


# --------------------------------------------------------------------------- dry runs


def would_run(event: Event, *, force: bool) -> str | None:
    """Why a replay would skip ``event`` (by its stored status), or None if it would run it."""
    if event.status == Event.Status.INVALID:
        return SKIP_REASONS[Outcome.INVALID]
    if event.status == Event.Status.PROCESSED and not force:
        return SKIP_REASONS[Outcome.ALREADY_DONE]
    return None


def planned_handlers(event: Event) -> list[str]:
    """The handlers a run of ``event`` would call now, highest priority first.

    Built like the dispatcher builds its list: receivers of ``event_received`` and of the
    event's kind signal whose route filters match the stored event (nothing is called and
    nothing is sent).  Raises :class:`imbot_app.dispatch.loading.ContextUnavailable` when the stored
    payload no longer parses.
    """
    event_class = event_class_for(event.name)
    loaded = loading.load(event, sender=ctx.PendingSender())
    planned: list[tuple[int, str]] = []
    for receiver in live_receivers(signals.event_received, event_class):
        planned.extend(_if_matches(receiver, loaded.primary))
    kind = signals.kind_signal(event_class)
    if kind is not None:
        receivers = live_receivers(kind[0], event_class)
        for item in loaded.items:
            if isinstance(item, ctx.MessageContext) and item.is_from_bot:
                continue
            for receiver in receivers:
                planned.extend(_if_matches(receiver, item))
    planned.sort(key=lambda entry: -entry[0])  # stable: ties keep their connection order
    return [path for _, path in planned]


def _if_matches(receiver: object, context: ctx.EventContext) -> list[tuple[int, str]]:
    if isinstance(receiver, Route):
        if receiver.match(context) is None:
            return []
        return [(receiver.priority, receiver.path)]
    return [(0, handler_path(receiver))]
