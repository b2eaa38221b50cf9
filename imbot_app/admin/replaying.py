"""Replay from the admin: the "Replay selected events" action and the event page's button.

Both run :func:`imbot_app.dispatch.replay.replay_events` with ``force=True`` (every handler again,
also of processed events) inside the request, and report each event's outcome through the
messages framework.  A request is no place for a long job, so the action refuses more than
:data:`MAX_EVENTS` events and points to ``manage.py imbot_replay``.
"""

from __future__ import annotations

from collections.abc import Sequence

from django.contrib import messages
from django.http import HttpRequest

from imbot_app.dispatch.replay import ReplayResult, ReplayStatus, ReplaySummary, replay_events

__all__ = ["MAX_EVENTS", "MAX_MESSAGES", "replay_and_report"]

MAX_EVENTS = 200  # per admin request; more with manage.py imbot_replay
MAX_MESSAGES = 20  # one message per event up to this many, then only the summary

LEVELS = {
    ReplayStatus.PROCESSED: messages.SUCCESS,
    ReplayStatus.FAILED: messages.ERROR,
    ReplayStatus.SKIPPED: messages.WARNING,
}


def replay_and_report(request: HttpRequest, event_ids: Sequence[int]) -> ReplaySummary:
    """Replay (forced) and tell the user how each event and the whole batch went."""
    results: list[ReplayResult] = []
    summary = replay_events(event_ids, force=True, on_result=results.append)
    for result in results[:MAX_MESSAGES]:
        detail = f": {result.detail}" if result.detail else ""
        messages.add_message(
            request, LEVELS[result.status], f"Event #{result.event_id} {result.status}{detail}"
        )
    if len(results) > 1:
        level = messages.ERROR if summary.failed else messages.SUCCESS
        messages.add_message(
            request, level, f"Replayed {summary.total} events: {summary.describe()}"
        )
    return summary


def too_many_message(count: int) -> str:
    return (
        f"{count} events selected; the admin replays at most {MAX_EVENTS} at a time. "
        "Narrow the selection, or run: manage.py imbot_replay --force --id ... "
        "(or --since / --event / --status filters)."
    )
