"""One event's handlers, run in priority order, each recorded as a HandlerRun.

:class:`EventRun` is what :func:`~imbot_app.dispatch.runner.run_event` and a batch of
:func:`~imbot_app.dispatch.runner.run_events` do for each claimed event: rebuild its contexts,
collect the receivers of ``event_received`` and of the kind signal (routes included), skip
those that already succeeded in an earlier attempt, run the rest with the claim renewed before
each, and set the event's status.
"""

from __future__ import annotations

import logging
import time
import traceback
from collections.abc import Callable, MutableMapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from asgiref.sync import async_to_sync, iscoroutinefunction
from django.dispatch import Signal
from django.utils import timezone

from imbot_app import events as ev
from imbot_app import signals
from imbot_app.dispatch import claims, loading
from imbot_app.dispatch import context as ctx
from imbot_app.dispatch.claims import DispatchResult, Outcome, worker_name
from imbot_app.dispatch.routing import NO_ARGUMENTS, Match, Route, handler_path
from imbot_app.logsafe import safe, safe_text
from imbot_app.models import Event, HandlerRun, Message
from imbot_app.outbound import calls
from imbot_app.protocol import event_class_for

logger = logging.getLogger("imbot_app.dispatch")

ABANDONED = "abandoned: the process running this handler stopped before it finished"


def has_handlers(name: str) -> bool:
    """Whether any receiver or route listens for events called ``name``."""
    event_class = event_class_for(name)
    kind = signals.kind_signal(event_class)
    if signals.event_received.has_listeners(event_class):
        return True
    return kind is not None and kind[0].has_listeners(event_class)


class Recorder:
    """Where an :class:`EventRun` writes its HandlerRun rows and the event's final status.

    This one writes each at once (three commits for an event with one handler); imbot_worker
    hands batches a recorder that buffers them (:mod:`imbot_app.dispatch.worker.recorder`).
    """

    def started(self, run: HandlerRun) -> None:
        run.save()

    def finished(self, run: HandlerRun) -> None:
        run.save(update_fields=["status", "error", "traceback", "duration_ms", "stopped"])

    def finish_event(
        self, event_id: int, token: str, *, status: str, error: str, now: datetime
    ) -> bool:
        """Set the event's status and release the claim, if still ours; whether it was."""
        return bool(claims.finish([event_id], token, status=status, error=error, now=now))


IMMEDIATE = Recorder()


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

    def call(self, sender: Any, match: Match | Exception) -> Any:
        if isinstance(match, Exception):
            raise match  # its filter failed: recorded as this handler's run, failed
        if isinstance(self.receiver, Route):
            return self.receiver.invoke(self.context, match)
        named = {"signal": self.signal, "sender": sender, self.keyword: self.context}
        if iscoroutinefunction(self.receiver):
            return async_to_sync(self.receiver)(**named)
        return self.receiver(**named)


@dataclass
class EventRun:
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
        messages: MutableMapping[loading.MessageKey, Message] | None = None,
        make_sender: Callable[[], calls.Sender] | None = None,
    ) -> DispatchResult:
        """Run the handlers; ``messages`` and ``make_sender`` are what a batch prepared."""
        if not has_handlers(self.event.name):
            return self._finish()
        try:
            loaded = loading.load(
                self.event, parsed=parsed, messages=messages, make_sender=make_sender
            )
        except loading.ContextUnavailable as exc:
            logger.error("event %s cannot be dispatched: %s", self.event.pk, exc)
            return self._finish(error=str(exc))
        succeeded = self._previous_attempts()
        sender = loaded.event_class
        seen: dict[str, int] = {}
        for candidate in self._candidates(loaded):
            if loaded.state.stopped:
                break
            try:
                match: Match | Exception | None = candidate.match()
            except Exception as exc:  # e.g. PatternTimeout: the handler's failure, not the event's
                match = exc
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

    def _candidates(self, loaded: loading.LoadedEvent) -> list[_Candidate]:
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
        match: Match | Exception,
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
                safe(self.event.name),
                safe_text(run.error),
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
